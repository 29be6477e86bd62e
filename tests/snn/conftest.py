"""The simulator tests exercise the certified float32 pass on every layer, however small
(by default, layers under ``SMALL_LAYER_MACS`` multiply-accumulates just run in float64)."""

import pytest

from tdsnn.snn import certified


@pytest.fixture(autouse=True)
def certify_every_layer(monkeypatch):
    monkeypatch.setattr(certified, "SMALL_LAYER_MACS", 0)
