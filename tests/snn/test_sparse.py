"""The sparse coding (``prepare(..., coding="sparse")``) against an independent float64
reference (``sparse_reference.py``, which does not import tdsnn).

Sparse coding: ``G_s(x) = 0`` for ``x <= 0`` (a silent neuron, spike time ``-1``), else
``exp(T(x)/L)`` with ``T(x) = ceil(L ln(1 + x)) >= 1``.  The paper coding (the default) is
``G(x) = exp(T(max(x, 0))/L)``: nothing is silent.

How spike times are compared: every layer of the reference is fed the *engine's* spike times
of the layer before (``Reference.run(x, forced=...)``), so that a one-step rounding
difference at a level boundary cannot propagate; a difference is allowed only where the
reference's float64 pre-activation lies within 1e-9 (relative to ``|W| |g| + |b|``) of a
level boundary ``exp(k/L) - 1`` (``k = 0``: the boundary to silence), and at most 1e-6 of
all spike times may move.  Logits are compared with the reference's output layer fed with the
engine's last hidden spike times (rtol = atol = 1e-9).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import pytest
import sparse_reference as R
import torch
from torch import nn

import tdsnn
from tdsnn.ops import CONVENTIONS

# small workloads: one thread (OpenMP spin-waiting on a busy machine costs 10x otherwise)
pytestmark = pytest.mark.usefixtures("one_thread")

N_NETWORKS = 200
CHUNKS = 10
PER_CHUNK = N_NETWORKS // CHUNKS
BACKENDS = ("closed_form", "clocked")
MODES = [
    ("closed_form", "certified"),
    ("clocked", "certified"),
    ("closed_form", "float64"),
    ("clocked", "float64"),
]


def _prepare(model: nn.Module, L: float, coding: str | None = "sparse"):
    """The G-DNN with weights left exactly as in ``model`` (no compensation, no
    normalisation); ``coding=None`` leaves the argument out (the default coding)."""
    extra = {} if coding is None else {"coding": coding}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tdsnn.prepare(
            model, L, compensate=False, input_mean=None, input_std=None, **extra
        ).eval()


@dataclass
class Tally:
    neurons: int = 0
    moved: int = 0


def _check(
    result,
    reference: R.Reference,
    x: torch.Tensor,
    what: str,
    tally: Tally,
    t_il: list[int] | None = None,
    own: R.Run | None = None,
) -> R.Run:
    """Compare one engine result with the reference, layer by layer (see module doc).

    ``own``: the reference's run on ``x`` (with the same ``t_il``), if already computed."""
    coding = reference.coding
    assert all(not t.is_floating_point() for t in result.spike_times), what
    got = [t.long() for t in result.spike_times]
    if own is None:
        own = reference.run(x, t_il=t_il)
    assert result.layer_names == own.names, what
    assert len(got) == len(own.layers), what
    ref = reference.run(x, forced=got, t_il=t_il)
    moved_here = 0
    for times, layer in zip(got, ref.layers, strict=True):
        assert times.shape == layer.times.shape, (what, layer.name)
        assert bool((times >= R.SILENT).all()), (what, layer.name, "times below -1")
        if coding == "sparse":
            # a spiking neuron fires at T >= 1; silence is exactly -1
            assert not bool((times == 0).any()), (what, layer.name, "a sparse spike at 0")
        else:
            assert not bool((times < 0).any()), (
                what,
                layer.name,
                "a silent neuron in paper coding",
            )
        diff = times != layer.times
        tally.neurons += times.numel()
        if bool(diff.any()):
            assert layer.scale is not None, (
                what,
                layer.name,
                "max-pool/encoding differs",
                times[diff].tolist(),
                layer.times[diff].tolist(),
            )
            near = R.near_boundary(layer.pre, layer.scale, reference.L)
            far = diff & ~near
            assert not bool(far.any()), (
                what,
                layer.name,
                "spike times differ away from a level boundary",
                f"engine {times[far][:8].tolist()} reference {layer.times[far][:8].tolist()} "
                f"pre-activation {layer.pre[far][:8].tolist()}",
            )
            moved_here += int(diff.sum())
    tally.moved += moved_here
    torch.testing.assert_close(
        result.logits.double(),
        ref.logits,
        rtol=1e-9,
        atol=1e-9,
        msg=lambda m: f"{what}: logits\n{m}",
    )
    # counts from the engine's own spike times (the rule), and equal to the reference's
    emitted = [int((t >= 0).sum()) for t in got]
    assert list(result.spike_counts) == emitted, (what, result.spike_counts, emitted)
    events = ref.bias_events + sum(
        int(((t >= 0).long() * layer.fanout).sum()) for t, layer in zip(got, ref.layers)
    )
    if moved_here == 0:
        assert emitted == own.spike_counts, (what, emitted, own.spike_counts)
        assert events == own.synaptic_events, (what, events, own.synaptic_events)
    synaptic = result.synaptic_events
    assert isinstance(synaptic, int) and not isinstance(synaptic, bool), (what, type(synaptic))
    assert synaptic == events, (
        what,
        "synaptic_events",
        synaptic,
        "expected",
        events,
        "of which bias",
        ref.bias_events,
    )
    return ref


# --------------------------------------------------------------------------------------
# 1. Random networks: both simulators, certified and float64, against the reference
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_sparse_networks_match_the_reference(chunk):
    tally = Tally()
    silent = total = 0
    for seed in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK):
        case = R.random_case(seed)
        reference = R.Reference(case.model, case.L, "sparse")
        own = reference.run(case.x)
        snn = tdsnn.convert(_prepare(case.model, case.L))
        for backend, precision in MODES:
            result = snn.run(case.x, backend=backend, precision=precision)
            what = f"{case.description} {backend}/{precision}"
            _check(result, reference, case.x, what, tally, own=own)
            for t in result.spike_times:
                silent += int((t < 0).sum())
                total += t.numel()
    assert tally.moved <= 1e-6 * tally.neurons, (tally.moved, tally.neurons)
    assert silent >= 0.2 * total  # the generator makes many neurons silent


def test_sparse_simulators_agree_on_t_il_latency_and_ops():
    """Dynamic T_il: max(T(1), last spike of the layer before) per sample, -1 not counting;
    latency the sum of the T_il; both simulators count the same operations, and the
    synaptic additions of ``ops`` are the synaptic events."""
    for seed in range(0, N_NETWORKS, 5):
        case = R.random_case(seed)
        reference = R.Reference(case.model, case.L, "sparse")
        snn = tdsnn.convert(_prepare(case.model, case.L))
        runs = {b: snn.run(case.x, backend=b) for b in BACKENDS}
        for backend, result in runs.items():
            what = f"{case.description} {backend}"
            ref = reference.run(case.x, forced=[t.long() for t in result.spike_times])
            assert torch.equal(result.t_il.long(), ref.t_il), (what, result.t_il, ref.t_il)
            assert result.latency.tolist() == result.t_il.sum(dim=1).tolist(), what
            adds = sum(ev.synaptic_adds for ev in result.ops.layers)
            assert adds == result.synaptic_events, (what, adds, result.synaptic_events)
        a, b = runs["closed_form"], runs["clocked"]
        assert a.synaptic_events == b.synaptic_events, case.description
        for convention in CONVENTIONS:
            ca, cb = a.ops.counts(convention), b.ops.counts(convention)
            assert [(x.mul, x.add) for x in ca.layers] == [(x.mul, x.add) for x in cb.layers], (
                case.description,
                convention,
            )


def test_sparse_gdnn_forward_matches_the_reference():
    """Beyond the brief's minimum: the G-DNN itself (the model one fine-tunes) computes the
    sparse coding: its float64 forward gives the reference's logits, and the float32
    closed form equals its float32 forward bit for bit (as in the paper coding)."""
    for seed in range(0, N_NETWORKS, 4):
        case = R.random_case(seed)
        gdnn = _prepare(case.model, case.L)
        ref = R.Reference(case.model, case.L, "sparse").run(case.x)
        with torch.no_grad():
            logits64 = copy.deepcopy(gdnn).double()(case.x.double())
            logits32 = gdnn(case.x)
        torch.testing.assert_close(
            logits64,
            ref.logits,
            rtol=1e-9,
            atol=1e-9,
            msg=lambda m, d=case.description: f"{d}: G-DNN float64\n{m}",
        )
        result = tdsnn.convert(gdnn).run(case.x, precision="float32")
        assert torch.equal(result.logits, logits32), case.description


# --------------------------------------------------------------------------------------
# 2. Max-pool windows: all, some, none of the inputs silent
# --------------------------------------------------------------------------------------

_L2 = 2.0


def _level_input(k: int) -> float:
    """An input with T(x) = k at L = 2, in the middle of its level."""
    return math.expm1((k - 0.5) / _L2)


def _maxpool_network() -> nn.Sequential:
    conv = nn.Conv2d(1, 1, 1, bias=True)
    fc = nn.Linear(4, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.5)  # a zero input gives A = -0.5: silent; x > 0 gives A > 0.6
        fc.weight.copy_(torch.tensor([[0.5, -1.0, 0.25, 0.125], [-0.75, 0.5, -0.5, 1.0]]))
        fc.bias.copy_(torch.tensor([0.3, -0.2]))
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), fc).eval()


def _maxpool_input() -> torch.Tensor:
    k = [
        [0, 0, 0, 1],  # window (0,0): all silent; window (0,1): two silent
        [0, 0, 0, 3],
        [2, 4, 0, 0],  # window (1,0): none silent; window (1,1): three silent
        [1, 2, 0, 6],
    ]
    x = torch.tensor([[_level_input(v) if v else 0.0 for v in row] for row in k])
    return torch.stack([x[None], torch.zeros(1, 4, 4)])  # second sample: all zeros


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["certified", "float64"])
def test_maxpool_windows_with_silent_inputs(backend, precision):
    model, x = _maxpool_network(), _maxpool_input()
    result = tdsnn.convert(_prepare(model, _L2)).run(x, backend=backend, precision=precision)
    assert result.layer_names == ["input", "conv1", "pool1"]
    t_in = torch.tensor([[-1, -1, -1, 1], [-1, -1, -1, 3], [2, 4, -1, -1], [1, 2, -1, 6]])
    # conv: A = exp(k/2) - 0.5 -> T = 2, 3, 4, 5, 7 for k = 1, 2, 3, 4, 6
    t_conv = torch.tensor([[-1, -1, -1, 2], [-1, -1, -1, 4], [3, 5, -1, -1], [2, 3, -1, 7]])
    t_pool = torch.tensor([[-1, 4], [5, 7]])
    silent = torch.full((4, 4), -1)
    expected = [
        torch.stack([t_in, silent])[:, None],
        torch.stack([t_conv, silent])[:, None],
        torch.stack([t_pool, torch.full((2, 2), -1)])[:, None],
    ]
    for got, want, name in zip(result.spike_times, expected, result.layer_names, strict=True):
        assert torch.equal(got.long(), want), (name, got.tolist())
    assert result.spike_counts == [7, 7, 3]
    # input 7 spikes x 1 (1x1 conv) + conv bias 16 + conv 7 spikes x 1 window + pool 3 spikes
    # x 2 outputs + fc bias 2, for the first sample; the zero sample: the biases, 16 + 2
    assert result.synaptic_events == (7 + 16 + 7 + 6 + 2) + (16 + 2)
    fc = model[-1]
    g = torch.tensor(
        [0.0, math.exp(4 / _L2), math.exp(5 / _L2), math.exp(7 / _L2)], dtype=torch.float64
    )
    w, b = fc.weight.double(), fc.bias.double()
    want_logits = torch.stack([w @ g + b, b])
    torch.testing.assert_close(result.logits.double(), want_logits, rtol=1e-12, atol=1e-12)
    # and the reference agrees with all of the above
    ref = R.Reference(model, _L2, "sparse").run(x)
    assert all(torch.equal(a.times, b) for a, b in zip(ref.layers, expected))
    assert ref.synaptic_events == result.synaptic_events
    torch.testing.assert_close(ref.logits, want_logits, rtol=1e-12, atol=1e-12)


def test_maxpool_reference_by_hand():
    """The hand-computed numbers of the test above, for the reference alone."""
    ref = R.Reference(_maxpool_network(), _L2, "sparse").run(_maxpool_input())
    assert ref.layers[2].times[0, 0].tolist() == [[-1, 4], [5, 7]]
    assert ref.spike_counts == [7, 7, 3]
    assert ref.synaptic_events == 56


# --------------------------------------------------------------------------------------
# 3. The paper coding is unchanged
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", [None, "paper"], ids=["default", "explicit"])
def test_paper_coding_matches_its_reference(coding):
    tally = Tally()
    for seed in range(0, N_NETWORKS, 10):
        case = R.random_case(seed)
        reference = R.Reference(case.model, case.L, "paper")
        snn = tdsnn.convert(_prepare(case.model, case.L, coding))
        for backend in BACKENDS:
            result = snn.run(case.x, backend=backend)
            what = f"{case.description} {backend} coding={coding}"
            assert all(bool((t >= 0).all()) for t in result.spike_times), what
            assert list(result.spike_counts) == [t.numel() for t in result.spike_times], what
            _check(result, reference, case.x, what, tally)
            ref = reference.run(case.x, forced=[t.long() for t in result.spike_times])
            assert torch.equal(result.t_il.long(), ref.t_il), what
    assert tally.moved <= 1e-6 * tally.neurons


def test_paper_and_sparse_codings_differ():
    """Sanity: the two references (and the two engines) are not the same coding."""
    case = R.random_case(1)
    paper = R.Reference(case.model, case.L, "paper").run(case.x)
    sparse = R.Reference(case.model, case.L, "sparse").run(case.x)
    assert bool((sparse.layers[0].times == -1).any())
    assert not bool((paper.layers[0].times == -1).any())
    a = tdsnn.convert(_prepare(case.model, case.L, "paper")).run(case.x)
    b = tdsnn.convert(_prepare(case.model, case.L, "sparse")).run(case.x)
    assert not torch.equal(a.spike_times[0], b.spike_times[0])
    assert sum(b.spike_counts) < sum(a.spike_counts)


def test_default_coding_is_paper():
    case = R.random_case(4)
    gdnn_default = _prepare(case.model, case.L, None)
    gdnn_paper = _prepare(case.model, case.L, "paper")
    a = tdsnn.convert(gdnn_default).run(case.x)
    b = tdsnn.convert(gdnn_paper).run(case.x)
    assert all(torch.equal(u, v) for u, v in zip(a.spike_times, b.spike_times))
    assert torch.equal(a.logits, b.logits)


# --------------------------------------------------------------------------------------
# 4. A whole input of zeros
# --------------------------------------------------------------------------------------


def test_all_zero_input_is_silent_and_driven_by_biases():
    tally = Tally()
    driven = 0
    for seed in range(0, N_NETWORKS, 8):
        case = R.random_case(seed)
        x = torch.zeros_like(case.x)
        reference = R.Reference(case.model, case.L, "sparse")
        snn = tdsnn.convert(_prepare(case.model, case.L))
        for backend in BACKENDS:
            result = snn.run(x, backend=backend)
            what = f"{case.description} zeros {backend}"
            assert bool((result.spike_times[0] == -1).all()), what
            assert result.spike_counts[0] == 0, what
            _check(result, reference, x, what, tally)
            driven += sum(result.spike_counts[1:])
    assert tally.moved <= 1e-6 * tally.neurons
    assert driven > 0  # positive biases make some hidden neurons fire without input


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_zero_input_hand_network(backend):
    L = 3.0
    fc1, fc2 = nn.Linear(4, 3), nn.Linear(3, 2)
    with torch.no_grad():
        fc1.weight.copy_(torch.arange(12.0).reshape(3, 4) - 5)
        fc1.bias.copy_(torch.tensor([0.7, -0.4, 2.5]))
        fc2.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-0.25, 3.0, -1.5]]))
        fc2.bias.copy_(torch.tensor([0.1, -0.3]))
    model = nn.Sequential(fc1, nn.ReLU(), fc2).eval()
    x = torch.zeros(3, 4)
    result = tdsnn.convert(_prepare(model, L)).run(x, backend=backend)
    t = [math.ceil(L * math.log1p(0.7)), -1, math.ceil(L * math.log1p(2.5))]  # 2, -1, 4
    assert t == [2, -1, 4]
    assert result.spike_times[0].long().tolist() == [[-1] * 4] * 3
    assert result.spike_times[1].long().tolist() == [t] * 3
    assert result.spike_counts == [0, 6]
    # per sample: fc1 bias 3, two fc1 spikes x 2 outputs, fc2 bias 2
    assert result.synaptic_events == 3 * (3 + 4 + 2)
    g = torch.tensor([math.exp(2 / L), 0.0, math.exp(4 / L)], dtype=torch.float64)
    want = fc2.weight.double() @ g + fc2.bias.double()
    torch.testing.assert_close(result.logits.double(), want.expand(3, 2), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------
# 5. Static T_il from calibration data
# --------------------------------------------------------------------------------------


def test_static_t_il_from_calibration_in_sparse_coding():
    tally = Tally()
    for seed in range(0, N_NETWORKS, 8):
        case = R.random_case(seed)
        reference = R.Reference(case.model, case.L, "sparse")
        gdnn = _prepare(case.model, case.L)
        dynamic = tdsnn.convert(gdnn).run(case.x)
        snn = tdsnn.convert(gdnn, calibration=[case.x])
        assert snn.t_il_mode == "static"
        ref_dyn = reference.run(case.x, forced=[t.long() for t in dynamic.spike_times])
        expected_static = ref_dyn.t_il.amax(dim=0).tolist()
        assert list(snn.static_t_il) == expected_static, (
            case.description,
            snn.static_t_il,
            expected_static,
        )
        for backend in BACKENDS:
            result = snn.run(case.x, backend=backend)
            what = f"{case.description} static {backend}"
            assert list(result.clipped) == [0] * reference.n_synapses, (what, result.clipped)
            ref = _check(result, reference, case.x, what, tally, t_il=snn.static_t_il)
            assert ref.clipped == [0] * reference.n_synapses, what
            assert all(
                torch.equal(a.long(), b.long())
                for a, b in zip(result.spike_times, dynamic.spike_times)
            ), what
            assert result.latency.tolist() == [sum(snn.static_t_il)] * case.x.shape[0], what
    assert tally.moved <= 1e-6 * tally.neurons


def test_static_t_il_clips_late_spikes_in_sparse_coding():
    """Beyond the brief's minimum: shorter static periods force late spikes at T_il
    (silent neurons stay silent) and ``clipped`` counts them, as the reference does."""
    tally = Tally()
    checked = 0
    for seed in range(0, N_NETWORKS, 4):
        case = R.random_case(seed)
        reference = R.Reference(case.model, case.L, "sparse")
        gdnn = _prepare(case.model, case.L)
        natural = tdsnn.convert(gdnn).run(case.x).t_il.amax(dim=0).tolist()
        t1 = R.bias_time(case.L)
        short = [max(t1, int(v) - 2) for v in natural]
        if short == natural:
            continue
        snn = tdsnn.convert(gdnn, t_il=short)
        for backend in BACKENDS:
            result = snn.run(case.x, backend=backend)
            what = f"{case.description} t_il={short} {backend}"
            ref = _check(result, reference, case.x, what, tally, t_il=short)
            assert list(result.clipped) == ref.clipped, (what, result.clipped, ref.clipped)
        checked += 1
    assert checked >= 10
    assert tally.moved <= 1e-6 * tally.neurons


# --------------------------------------------------------------------------------------
# Edges of the coding: the smallest positive values fire at T = 1, zero and below are silent
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["certified", "float64"])
def test_tiny_values_fire_at_one_and_zero_is_silent(backend, precision):
    L = 4.0
    fc1, fc2 = nn.Linear(3, 4), nn.Linear(4, 2)
    with torch.no_grad():
        fc1.weight.zero_()  # A = b exactly
        fc1.bias.copy_(torch.tensor([1e-30, -1e-30, 0.0, 5.0]))
        fc2.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 0.5], [-1.0, 0.5, 2.0, -0.25]]))
        fc2.bias.copy_(torch.tensor([0.0, 1.0]))
    model = nn.Sequential(fc1, nn.ReLU(), fc2).eval()
    x = torch.tensor([[1e-30, 0.0, 1e-45], [0.0, 0.0, 0.0]])  # 1e-45: a float32 subnormal
    assert float(x[0, 2]) > 0
    result = tdsnn.convert(_prepare(model, L)).run(x, backend=backend, precision=precision)
    t5 = math.ceil(L * math.log1p(5.0))  # 8
    assert result.spike_times[0].long().tolist() == [[1, -1, 1], [-1, -1, -1]]
    assert result.spike_times[1].long().tolist() == [[1, -1, -1, t5]] * 2
    assert result.spike_counts == [2, 4]
    # per sample: input spikes x 4 outputs, fc1 bias 4, fc1 spikes x 2, fc2 bias 2
    assert result.synaptic_events == (2 * 4 + 4 + 2 * 2 + 2) + (0 + 4 + 2 * 2 + 2)
    g = torch.tensor([math.exp(1 / L), 0.0, 0.0, math.exp(t5 / L)], dtype=torch.float64)
    want = fc2.weight.double() @ g + fc2.bias.double()
    torch.testing.assert_close(result.logits.double(), want.expand(2, 2), rtol=1e-12, atol=1e-12)
    ref = R.Reference(model, L, "sparse").run(x)
    assert [t.tolist() for t in ref.spike_times_list()] == [
        t.long().tolist() for t in result.spike_times
    ]


def test_leaky_maxpool_is_refused_in_sparse_coding():
    """docs/design.md (sparse coding): the leaky mapping assumes every input fires."""
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 2)
    ).eval()
    with pytest.raises(ValueError):
        tdsnn.convert(_prepare(model, 5.0), maxpool="leaky")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["certified", "float64", "float32"])
def test_exactly_cancelling_inputs_are_silent(backend, precision):
    """A = 0 exactly (two equal spikes through +w and -w, no bias) is silent in sparse
    coding: the boundary between silence and T = 1 is decided as A <= 0."""
    L = 5.0
    fc1, fc2 = nn.Linear(2, 3, bias=False), nn.Linear(3, 2)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[1.5, -1.5], [0.75, -0.75], [1.0, 1.0]]))
        fc2.weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.25, 2.0, -1.0]]))
        fc2.bias.copy_(torch.tensor([0.5, -0.5]))
    model = nn.Sequential(fc1, nn.ReLU(), fc2).eval()
    x = torch.tensor([[0.7, 0.7], [0.0, 0.0], [2.0, 2.0]])
    result = tdsnn.convert(_prepare(model, L)).run(x, backend=backend, precision=precision)
    ref = R.Reference(model, L, "sparse").run(x)
    hidden = result.spike_times[1].long()
    assert hidden[:, :2].tolist() == [[-1, -1]] * 3
    assert torch.equal(hidden, ref.layers[1].times)
    assert result.spike_counts == ref.spike_counts == [4, 2]
    assert result.synaptic_events == ref.synaptic_events == 4 * 3 + 2 * 2 + 3 * 2
    torch.testing.assert_close(result.logits.double(), ref.logits, rtol=1e-6, atol=1e-6)
