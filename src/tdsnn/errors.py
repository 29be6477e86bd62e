"""Exceptions raised by tdsnn, one per kind of misuse."""

from __future__ import annotations


class TDSNNError(Exception):
    """Base class of every error tdsnn raises on purpose."""


class UnsupportedModelError(TDSNNError, ValueError):
    """The model contains a layer or a graph shape that TDSNN cannot convert."""


class SpikeInputError(TDSNNError, ValueError):
    """An input given to the SNN is not a valid spike-time encoding source."""


class ConversionError(TDSNNError, ValueError):
    """Conversion parameters (leak constant, static inhibition times, ...) are invalid."""
