"""Certified spike times equal the exact reference (design note, "What is certified"),
in both simulators, where plain float64 does not; the conditions the bound needs; the
run-time spot check.

The reference (tests/snn/exact_reference.py) is written independently of the engine:
exact rational pre-activations and a decimal level test.
"""

from __future__ import annotations

import types
import warnings

import pytest
import torch
from exact_reference import boundary_conv, boundary_linear, reference_layer_times
from torch import nn

import tdsnn
import tdsnn.testing
from tdsnn.snn import certified, closed_form
from tdsnn.snn.certified import CertificationError, certified_conditions

L = 5.0


def _inputs(t_in: torch.Tensor) -> torch.Tensor:
    """Float64 inputs whose spike times (T(x) of the SNN's input layer) are ``t_in``."""
    return torch.where(t_in > 0, torch.expm1((t_in.double() - 0.5) / L), torch.zeros(()))


def _snn(first: nn.Module, head: nn.Module) -> tdsnn.SNN:
    model = nn.Sequential(first, nn.ReLU(), *([nn.Flatten()] if isinstance(first, nn.Conv2d)
                                               else []), head)  # fmt: skip
    gdnn = tdsnn.prepare(model.double(), L, compensate=False).eval()
    return tdsnn.convert(gdnn)


@pytest.fixture(scope="module")
def engineered():
    """A 4096-wide linear layer, 300 of its 1000 neurons within 1e-20 of a boundary."""
    weight, bias, t_in, chosen = boundary_linear(4096, 1000, 300, L=L, seed=3, within=1e-20)
    linear = nn.Linear(4096, 1000)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    snn = _snn(linear, nn.Linear(1000, 10))
    reference = reference_layer_times(weight, bias, t_in, L, kind="linear")[0]
    x = _inputs(t_in)
    assert torch.equal(snn.run(x, precision="float64").spike_times[0][0].long(), t_in[0])
    return snn, x, reference, chosen


@pytest.mark.parametrize("backend", ["closed_form", "clocked"])
def test_the_engineered_boundary_case_meets_the_reference(engineered, backend):
    snn, x, reference, chosen = engineered
    got = snn.run(x, backend=backend, spot_checks=64)
    assert torch.equal(got.spike_times[1][0].long(), reference)
    report = got.extras["certified"][0]
    assert report.recomputed >= 1  # some of them needed the exact test


def test_plain_float64_misses_the_reference_there(engineered):
    """The case has teeth: float64 in PyTorch's summation order disagrees at some of the
    boundary neurons (which is why certified is defined against the exact reference)."""
    snn, x, reference, chosen = engineered
    float64 = snn.run(x, precision="float64").spike_times[1][0].long()
    wrong = (float64 != reference).nonzero().squeeze(1)
    assert wrong.numel() > 0
    assert set(wrong.tolist()) <= set(chosen.tolist())  # only where A sits on a boundary


@pytest.mark.parametrize("big", [0.0, 0.02])
def test_nnpack_is_kept_out_of_certified_convolutions(big):
    """oneDNN off, batch 16, 3x3 kernels: PyTorch would take NNPACK's Winograd kernels,
    whose error the direct-sum bound does not cover; certified runs with NNPACK off and
    meets the reference on neurons placed at boundaries, with a few far larger inputs."""
    weight, bias, t_in, chosen = boundary_conv(16, 8, 8, 12, 3, padding=1, share=0.05,
                                               within=1e-12, L=L, seed=1, big_pixels=big)  # fmt: skip
    conv = nn.Conv2d(8, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    snn = _snn(conv, nn.Linear(8 * 12 * 12, 10))
    reference = reference_layer_times(weight, bias, t_in, L, kind="conv2d", padding=1)
    with torch.backends.mkldnn.flags(enabled=False):
        for backend in ("closed_form", "clocked"):
            got = snn.run(_inputs(t_in), backend=backend, spot_checks=64)
            assert torch.equal(got.spike_times[1].long(), reference), backend
            assert torch._C._get_nnpack_enabled()  # restored after the run


def test_an_unguarded_device_or_old_torch_runs_in_float64_and_says_so(monkeypatch):
    guard, reason = certified_conditions(torch.device("meta"))
    assert guard is None and "not established" in reason
    monkeypatch.setattr(torch.backends.mkldnn, "conv", types.SimpleNamespace())
    guard, reason = certified_conditions(torch.device("cpu"))
    assert guard is None and "torch >= 2.9" in reason
    monkeypatch.setattr(certified, "_WARNED", set())
    case = tdsnn.testing.random_case(3)
    snn = tdsnn.convert(tdsnn.prepare(case.model, L=case.L).eval())
    with pytest.warns(UserWarning, match="runs in float64 instead"):
        result = snn.run(case.inputs)
    assert "fp32_precision" in result.extras["fallback"]
    assert result.extras["precision"] == "certified"
    with _no_warning():
        snn.run(case.inputs)  # said once
    float64 = snn.run(case.inputs, precision="float64")
    for a, b in zip(result.spike_times, float64.spike_times):
        assert torch.equal(a, b)


class _no_warning:
    """Fail if the fallback warning is issued again inside the block."""

    def __enter__(self):
        self._catch = warnings.catch_warnings(record=True)
        self._log = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not [w for w in self._log if "float64 instead" in str(w.message)]


def test_the_guard_sets_ieee_float32_and_nnpack_off_and_restores_them():
    knob = torch.backends.mkldnn.conv
    before = knob.fp32_precision
    guard, _ = certified_conditions(torch.device("cpu"))
    with guard:
        assert knob.fp32_precision == "ieee" and not torch._C._get_nnpack_enabled()
    assert knob.fp32_precision == before and torch._C._get_nnpack_enabled()


def test_the_spot_check_catches_a_wrong_spike_time(monkeypatch):
    case = tdsnn.testing.random_case(5)
    snn = tdsnn.convert(tdsnn.prepare(case.model, L=case.L).eval())
    monkeypatch.setattr(certified, "SMALL_LAYER_MACS", 0)  # certify every layer in float32
    snn.run(case.inputs, spot_checks=64)
    real = closed_form.certified_spike_times

    def off_by_one(layer, t_in, t_max):
        t, report = real(layer, t_in, t_max)
        return t + 1, report

    monkeypatch.setattr(closed_form, "certified_spike_times", off_by_one)
    with pytest.raises(CertificationError, match="reference gives"):
        snn.run(case.inputs, spot_checks=16)
    snn.run(case.inputs, spot_checks=0)  # off: not detected
