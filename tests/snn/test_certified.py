"""Certified float32: spike times equal to float64's, even at level boundaries."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import tdsnn
from tdsnn.coding import spike_value
from tdsnn.snn.certified import U32, certified_spike_times, values32
from tdsnn.snn.conditions import ieee_float32
from tdsnn.snn.layers import SpikingSynapse
from tdsnn.snn.receptive import ReceptiveFields
from tdsnn.testing import random_case


def _float64_times(layer: SpikingSynapse, t_in: torch.Tensor) -> torch.Tensor:
    A = layer.affine(spike_value(t_in.double(), layer.L, torch.float64))
    return torch.ceil(layer.L * torch.log1p(A.clamp(min=0)))


def _on_boundaries(layer: nn.Module, x: torch.Tensor, L: float, gen: torch.Generator) -> None:
    """Set the bias so that one neuron per output channel sits within ~1e-7 (relative)
    of a level boundary exp(k/L) - 1: where float32 rounding decides the spike time."""
    with torch.no_grad():
        A = layer.double()(x.double())
        layer.float()
        first = A[0] if A.dim() == 2 else A[0, :, 0, 0]
        k = torch.randint(0, 12, first.shape, generator=gen).double()
        target = torch.expm1(k / L)
        jitter = (torch.rand(first.shape, generator=gen, dtype=torch.float64) - 0.5) * 4e-7
        target = target * (1 + jitter) + jitter * 1e-2
        layer.bias.copy_((target - (first - layer.bias.double())).float())


def _synapse(module: nn.Module, L: float) -> SpikingSynapse:
    return SpikingSynapse(module, L, is_output=False, name="layer")


@settings(max_examples=60, deadline=None)
@given(
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.sampled_from([0, 1, 2, "same"]),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    L=st.sampled_from([1.0, 2.5, 5.0, 8.0]),
    seed=st.integers(0, 10_000),
    channels=st.sampled_from([4, 40]),  # 40 x 3 x 3 = 360 terms: split into partial sums
)
def test_conv_layers_on_boundaries_match_float64(kernel, stride, padding, dilation, groups, L, seed,
                                                 channels):  # fmt: skip
    if padding == "same":
        stride = 1
    gen = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(channels, 32, kernel, stride, padding, dilation, groups)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.3)
    t_in = torch.randint(0, 15, (3, channels, 7, 7), generator=gen).float()
    g = spike_value(t_in, L, torch.float64)
    _on_boundaries(conv, g, L, gen)
    layer = _synapse(conv, L)
    got, report = certified_spike_times(layer, t_in, float(t_in.max()))
    assert got.dtype == torch.float32
    assert torch.equal(got, _float64_times(layer, t_in).float())
    assert report.uncertain >= report.gathered >= report.recomputed


@settings(max_examples=40, deadline=None)
@given(features=st.integers(1, 300), L=st.sampled_from([1.0, 3.0, 5.0]), seed=st.integers(0, 10_000))
def test_linear_layers_on_boundaries_match_float64(features, L, seed):
    gen = torch.Generator().manual_seed(seed)
    linear = nn.Linear(features, 64)
    t_in = torch.randint(0, 20, (5, features), generator=gen).float()
    _on_boundaries(linear, spike_value(t_in, L, torch.float64), L, gen)
    layer = _synapse(linear, L)
    got, _ = certified_spike_times(layer, t_in, float(t_in.max()))
    assert torch.equal(got, _float64_times(layer, t_in).float())


def test_boundary_cases_reach_the_repair_path_and_need_it():
    """One neuron per output channel of the first of 8 samples sits within ~1e-7 of a
    boundary: 1/8 of the layer, below the share at which it would fall back to float64, so
    the per-neuron repair runs (not the fallback), and plain float32 gets some of them wrong."""
    float32_wrong = certified_wrong = repaired = 0
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        linear = nn.Linear(200, 256)
        t_in = torch.randint(0, 20, (8, 200), generator=gen).float()
        _on_boundaries(linear, spike_value(t_in, 5.0, torch.float64), 5.0, gen)
        layer = _synapse(linear, 5.0)
        want = _float64_times(layer, t_in)  # 1e-7 from a boundary: float64 decides it
        A32 = layer.affine(spike_value(t_in, 5.0, torch.float32))
        plain = torch.ceil(5.0 * torch.log1p(A32.clamp(min=0)))
        got, report = certified_spike_times(layer, t_in, float(t_in.max()))
        assert not report.full_float64  # the repair path, not the fallback
        assert report.uncertain < 0.2 * report.neurons
        float32_wrong += int((plain.double() != want).sum())
        certified_wrong += int((got.double() != want).sum())
        repaired += report.gathered
    assert float32_wrong > 0  # without the repair these would be wrong
    assert repaired > 0
    assert certified_wrong == 0


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, "same"])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_receptive_fields_are_the_unfolded_input(groups, padding, stride, dilation):
    if padding == "same" and stride != 1:
        pytest.skip("'same' padding needs stride 1")
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride, padding, dilation, groups)
    layer = _synapse(conv, 5.0)
    x = torch.rand((2, 4, 8, 8), generator=gen)
    out = conv(x)
    n, c, i, j = torch.meshgrid(*(torch.arange(s) for s in out.shape), indexing="ij")
    where = torch.stack([n, c, i, j], dim=-1).reshape(-1, 4)
    fields = ReceptiveFields(layer, x).at(where)  # rows ordered (channel, kh, kw)
    rows = conv.weight.detach().reshape(6, -1)
    sums = (fields * rows[where[:, 1]]).sum(dim=1) + conv.bias.detach()[where[:, 1]]
    torch.testing.assert_close(sums, out.detach().reshape(-1), rtol=1e-5, atol=1e-5)


def test_network_precisions_agree_and_report():
    case = random_case(7)
    gdnn = tdsnn.prepare(case.model, L=case.L).eval()
    snn = tdsnn.convert(gdnn)
    certified = snn.run(case.inputs)
    exact = snn.run(case.inputs, precision="float64")
    assert certified.extras["precision"] == "certified"
    assert exact.extras["precision"] == "float64"
    for a, b in zip(certified.spike_times, exact.spike_times):
        assert torch.equal(a, b)
    torch.testing.assert_close(certified.logits, exact.logits, rtol=1e-12, atol=1e-12)
    assert certified.logits.dtype == torch.float64
    reports = certified.extras["certified"]
    assert len(reports) == sum(1 for layer in snn.synapse_layers if not layer.is_output)
    assert all(r.neurons > 0 for r in reports)
    clocked = snn.run(case.inputs, backend="clocked")
    assert clocked.extras["precision"] == "certified"
    clocked64 = snn.run(case.inputs, backend="clocked", precision="float64")
    for a, b, c in zip(clocked.spike_times, clocked64.spike_times, exact.spike_times):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert snn.run(case.inputs, precision=torch.float32).extras["precision"] == "float32"
    with pytest.raises(ValueError, match="precision"):
        snn.run(case.inputs, precision="half")


def test_ieee_context_restores_settings():
    knob = torch.backends.cudnn.conv
    before = knob.fp32_precision
    with ieee_float32():
        assert knob.fp32_precision == "ieee"
    assert knob.fp32_precision == before


def test_wide_bounds_fall_back_to_float64():
    """Huge cancelling weights make every neuron uncertain: the layer runs in float64."""
    linear = nn.Linear(2, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1e6, -1e6]] * 4))
        linear.bias.copy_(torch.tensor([0.1, 0.3, 0.5, 0.7]))
    layer = _synapse(linear, 5.0)
    t_in = torch.full((3, 2), 2.0)  # equal inputs: the weights cancel, A = bias
    got, report = certified_spike_times(layer, t_in, float(t_in.max()))
    assert report.full_float64
    assert torch.equal(got, _float64_times(layer, t_in).float())
    assert math.isfinite(float(got.max()))


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(["conv", "linear"]),
    L=st.sampled_from([1.0, 2.5, 5.0]),
    seed=st.integers(0, 10_000),
)
def test_clocked_layers_on_boundaries_match_float64(kind, L, seed):
    """The clocked simulator's float32 synaptic sums, certified, fire as float64 does."""
    from tdsnn.coding import bias_spike_time
    from tdsnn.snn import clocked

    gen = torch.Generator().manual_seed(seed)
    if kind == "conv":
        module = nn.Conv2d(3, 24, 3, 1, 1)
        t_in = torch.randint(0, 12, (4, 3, 6, 6), generator=gen).double()
    else:
        module = nn.Linear(50, 40)
        t_in = torch.randint(0, 12, (4, 50), generator=gen).double()
    _on_boundaries(module, spike_value(t_in, L, torch.float64), L, gen)
    layer = _synapse(module, L)
    fanout = layer.connection_map(tuple(t_in.shape[1:]))
    t_il = torch.clamp(t_in.flatten(1).amax(dim=1), min=bias_spike_time(L))
    reports = []
    got, events = clocked.run_synapse(layer, t_in, t_il, None, fanout, torch.float64, reports)
    want, events64 = clocked.run_synapse(layer, t_in, t_il, None, fanout, torch.float64)
    assert torch.equal(got, want)
    assert torch.equal(got.float(), _float64_times(layer, t_in.float()).float())
    assert (events.synaptic_adds, events.tick_adds) == (events64.synaptic_adds, events64.tick_adds)
    assert len(reports) == 1 and reports[0].neurons == got[0].numel() * got.shape[0]


def test_small_layers_run_in_float64(monkeypatch):
    """Below SMALL_LAYER_MACS the certified pass costs more than float64: it is skipped."""
    from tdsnn.snn import certified

    monkeypatch.setattr(certified, "SMALL_LAYER_MACS", 1 << 24)
    layer = _synapse(nn.Conv2d(3, 8, 3, padding=1), 5.0)
    t_in = torch.randint(0, 9, (2, 3, 8, 8)).float()
    got, report = certified_spike_times(layer, t_in, float(t_in.max()))
    assert report.full_float64
    assert torch.equal(got, _float64_times(layer, t_in).float())
    assert certified._macs(layer, t_in) == 2 * 8 * 8 * 8 * 27
    big = _synapse(nn.Conv2d(64, 64, 3, stride=2, padding=1), 5.0)
    assert certified._macs(big, torch.zeros(256, 64, 32, 32)) == 256 * 64 * 16 * 16 * 576


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["conv", "linear"]), width=st.integers(100, 900),
       seed=st.integers(0, 10_000))  # fmt: skip
def test_split_sums_stay_within_their_rounding_bound(kind, width, seed):
    """``split_affine``'s float32 A is within gamma(terms) (|W| G + |b|) of the exact A, and a
    receptive field longer than SPLIT_TERMS is really split (its bound is shorter)."""
    from tdsnn.snn import certified

    gen = torch.Generator().manual_seed(seed)
    channels = max(1, width // 9) if kind == "conv" else width
    module = nn.Conv2d(channels, 8, 3, padding=1) if kind == "conv" else nn.Linear(channels, 8)
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen))
        module.bias.copy_(torch.randn(8, generator=gen) * 10)
    layer = _synapse(module, 5.0)
    shape = (4, channels, 6, 6) if kind == "conv" else (4, channels)
    t_in = torch.randint(0, 30, shape, generator=gen).float()
    g32 = spike_value(t_in, 5.0, torch.float32)
    A, terms = certified.split_affine(layer, g32)
    fan_in = layer.fan_in()
    if fan_in > certified.SPLIT_TERMS:
        assert terms < fan_in
    g64 = g32.double()  # the G the float32 sum saw, exactly
    w64, b64 = layer.dnn_weight.double(), layer.dnn_bias.double()
    ops = (lambda x, w, b: F.conv2d(x, w, b, padding=1)) if kind == "conv" else F.linear
    exact = ops(g64, w64, b64)  # float64: its own error is far below float32's bound
    size = ops(g64, w64.abs(), b64.abs())
    gamma = 1.01 * terms * certified.U32 / (1.0 - terms * certified.U32)
    assert bool(((A.double() - exact).abs() <= gamma * size * (1 + 1e-6) + 1e-300).all())


@pytest.mark.parametrize("L", [0.3, 1.0, 2.0, 5.0, 8.0, 30.0])
def test_float32_values_stay_within_the_error_the_bounds_allow(L):
    """``values32`` (exp2 of a rounded argument) is off from float64's ``exp(t/L)`` by at
    most ``(2 t/L + 2) u``, inside the ``(2 t/L + 4) u`` of the certified bounds; silent
    neurons (``t = -inf``) are 0."""
    t = torch.cat([torch.arange(0, 600, dtype=torch.float32), torch.tensor([-math.inf])])
    got = values32(t, L).double()
    want = torch.exp(t.double() / L)
    finite = torch.isfinite(got) & (want > 0) & (want < 3e38)
    assert finite.sum() > 10 and got[-1] == 0.0
    rel = ((got - want).abs() / want)[finite]
    assert bool((rel <= (2.0 * t.double()[finite] / L + 2.0) * U32).all())
