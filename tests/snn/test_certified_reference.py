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
from tdsnn.snn import certified, conditions
from tdsnn.snn.certified import CertificationError
from tdsnn.snn.conditions import certified_conditions

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
    monkeypatch.setattr(conditions, "_WARNED", set())
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


def test_the_spot_check_catches_a_bound_that_did_not_hold(monkeypatch):
    """The closed form checks its spot sample inside the repair's float64 pass: a float32
    pre-activation off by more than its bound (as a backend outside the bound's
    assumptions would give) makes wrong spike times that the level test cannot see; the
    spot check, summed from the receptive fields, does."""
    case = tdsnn.testing.random_case(5)
    snn = tdsnn.convert(tdsnn.prepare(case.model, L=case.L).eval())
    monkeypatch.setattr(certified, "SMALL_LAYER_MACS", 0)  # certify every layer in float32
    honest = snn.run(case.inputs, spot_checks=64)
    real = certified.split_affine

    def off(layer, g):
        A, terms = real(layer, g)
        return A.mul_(1.05).add_(0.02), terms

    monkeypatch.setattr(certified, "split_affine", off)
    with pytest.raises(CertificationError, match="reference gives"):
        snn.run(case.inputs, spot_checks=64)
    wrong = snn.run(case.inputs, spot_checks=0)  # off: the wrong times go unnoticed
    assert any(not torch.equal(a, b) for a, b in zip(wrong.spike_times, honest.spike_times))
    with pytest.raises(CertificationError):  # the default checks layers of SPOT_MIN_MACS up
        snn.run(case.inputs)
    monkeypatch.setattr(certified, "SPOT_MIN_MACS", 2**62)  # no layer is that large
    snn.run(case.inputs)  # the default leaves these layers unchecked
    with pytest.raises(CertificationError):  # an explicit count checks every layer
        snn.run(case.inputs, spot_checks=16)


def test_the_standalone_spot_check_catches_a_wrong_spike_time():
    """:func:`~tdsnn.snn.certified.spot_check` (the clocked simulator's, after a layer)."""
    case = tdsnn.testing.random_case(5)
    snn = tdsnn.convert(tdsnn.prepare(case.model, L=case.L).eval())
    layer = snn.synapse_layers[0]
    t_in = tdsnn.coding.spike_time_float(case.inputs.double(), case.L, snn.coding).float()
    t_out, _ = certified.float64_spike_times(layer, t_in)
    generator = torch.Generator().manual_seed(0)
    certified.spot_check(layer, t_in, t_out, None, generator, count=64)  # passes
    with pytest.raises(CertificationError, match="reference gives"):
        certified.spot_check(layer, t_in, t_out + 1, None, generator, count=64)


def test_the_default_checks_the_layers_of_spot_min_macs_and_an_explicit_count_every_layer(
    monkeypatch,
):
    case = tdsnn.testing.random_case(5)
    snn = tdsnn.convert(tdsnn.prepare(case.model, L=case.L).eval())
    monkeypatch.setattr(certified, "SMALL_LAYER_MACS", 0)  # certify every layer in float32

    def checked(**options) -> list[int]:
        reports = snn.run(case.inputs, **options).extras["certified"]
        return [r.spot_checked for r in reports if not r.full_float64]

    assert checked(spot_checks=5) and set(checked(spot_checks=5)) == {5}
    assert set(checked(spot_checks=0)) == {0}
    monkeypatch.setattr(certified, "SPOT_MIN_MACS", 2**62)  # the default: no layer that large
    assert set(checked()) == {0}
    monkeypatch.setattr(certified, "SPOT_MIN_MACS", 0)
    assert set(checked()) == {certified.DEFAULT_SPOT_CHECKS}
