"""Sparse coding with an earliest spike time (``prepare(..., coding="sparse", min_time=k)``)
against the independent float64 references (``sparse_reference.py``, ``graph_reference.py``,
neither imports tdsnn).

With ``min_time = k`` a hidden neuron whose spike time ``T(x)`` would be below ``k`` stays
silent: ``G_s(x) = 0`` for ``T(x) < k``, ``exp(T(x)/L)`` otherwise; the network input keeps
``k = 1``.  Spike times are compared as in ``test_sparse.py``: every layer of the reference is
fed the engine's spike times of the layer before, a difference is allowed only within 1e-9
(relative) of a level boundary, and at most 1e-6 of all spike times may move.
"""

from __future__ import annotations

import math
import random
import warnings

import graph_reference as GR
import pytest
import sparse_reference as R
import torch
from test_residual import MODES as RESIDUAL_MODES
from test_residual import Tally as ResidualTally
from test_residual import _check as residual_check
from test_sparse import MODES, Tally, _check
from torch import nn

import tdsnn
from tdsnn.coding import g_straight_through, silence_level
from tdsnn.errors import TDSNNError
from tdsnn.sparsity import soft_active

pytestmark = pytest.mark.usefixtures("one_thread")

N_NETWORKS = 100
CHUNKS = 5
PER_CHUNK = N_NETWORKS // CHUNKS
FIRST_SEED = 5000  # other networks than test_sparse.py's
BACKENDS = ("closed_form", "clocked")


def _min_time(seed: int) -> int:
    return 2 + random.Random(seed).randrange(3)  # 2, 3 or 4


def _prepare(model: nn.Module, L: float, min_time: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tdsnn.prepare(
            model, L, compensate=False, input_mean=None, input_std=None, coding="sparse",
            min_time=min_time,
        ).eval()  # fmt: skip


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_networks_with_min_time_match_the_reference(chunk):
    tally = Tally()
    silenced = 0  # hidden neurons that fire at 1 <= T < k with k = 1, silent here
    for seed in range(FIRST_SEED + chunk * PER_CHUNK, FIRST_SEED + (chunk + 1) * PER_CHUNK):
        case = R.random_case(seed)
        k = _min_time(seed)
        reference = R.Reference(case.model, case.L, "sparse", k)
        own = reference.run(case.x)
        plain = R.Reference(case.model, case.L, "sparse").run(case.x)
        for a, b in zip(own.layers[1:], plain.layers[1:], strict=True):
            if a.scale is not None:  # synapse layers (a max-pool follows its inputs)
                silenced += int(((a.times < 0) & (b.times >= 1)).sum())
        assert torch.equal(own.layers[0].times, plain.layers[0].times)  # the input keeps 1
        snn = tdsnn.convert(_prepare(case.model, case.L, k))
        for backend, precision in MODES:
            result = snn.run(case.x, backend=backend, precision=precision)
            what = f"{case.description} min_time={k} {backend}/{precision}"
            _check(result, reference, case.x, what, tally, own=own)
            for t in result.spike_times[1:]:
                hidden = t[t >= 0]
                assert not bool((hidden < k).any()), (what, "a hidden spike before min_time")
    assert tally.moved <= 1e-6 * tally.neurons, (tally.moved, tally.neurons)
    assert silenced > 0  # min_time silenced neurons that k = 1 lets fire


def test_min_time_gdnn_forward_matches_the_reference():
    """The G-DNN computes the same coding: its float64 forward gives the reference's logits,
    and the float32 closed form equals its float32 forward bit for bit."""
    for seed in range(FIRST_SEED, FIRST_SEED + N_NETWORKS, 4):
        case = R.random_case(seed)
        k = _min_time(seed)
        gdnn = _prepare(case.model, case.L, k)
        ref = R.Reference(case.model, case.L, "sparse", k).run(case.x)
        with torch.no_grad():
            logits64 = _double(gdnn)(case.x.double())
            logits32 = gdnn(case.x)
        torch.testing.assert_close(logits64, ref.logits, rtol=1e-9, atol=1e-9)
        result = tdsnn.convert(gdnn).run(case.x, precision="float32")
        assert torch.equal(result.logits, logits32), case.description


def _double(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module).double()


def test_static_t_il_with_min_time():
    """Calibrated static periods reproduce the dynamic run; shorter ones force late spikes
    at T_il, and a spike forced before min_time is not emitted, as the reference says."""
    tally = Tally()
    short_checked = 0
    for seed in range(FIRST_SEED, FIRST_SEED + N_NETWORKS, 5):
        case = R.random_case(seed)
        k = _min_time(seed)
        reference = R.Reference(case.model, case.L, "sparse", k)
        gdnn = _prepare(case.model, case.L, k)
        dynamic = tdsnn.convert(gdnn).run(case.x)
        snn = tdsnn.convert(gdnn, calibration=[case.x])
        natural = list(snn.static_t_il)
        for backend in BACKENDS:
            result = snn.run(case.x, backend=backend)
            what = f"{case.description} min_time={k} static {backend}"
            _check(result, reference, case.x, what, tally, t_il=natural)
            assert all(
                torch.equal(a.long(), b.long())
                for a, b in zip(result.spike_times, dynamic.spike_times)
            ), what
        short = [max(R.bias_time(case.L), int(v) - 2) for v in natural]
        if short != natural:
            clipped = tdsnn.convert(gdnn, t_il=short)
            for backend in BACKENDS:
                result = clipped.run(case.x, backend=backend)
                what = f"{case.description} min_time={k} t_il={short} {backend}"
                ref = _check(result, reference, case.x, what, tally, t_il=short)
                assert list(result.clipped) == ref.clipped, what
            short_checked += 1
    assert short_checked >= 5
    assert tally.moved <= 1e-6 * tally.neurons


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["certified", "float64", "float32"])
def test_min_time_by_hand(backend, precision):
    """Hidden values in the middle of levels 1 to 5 at L = 2, with min_time = 3: levels 1
    and 2 are silent, 3 and above fire at their level; the input (T = 1) still fires."""
    L, k = 2.0, 3
    fc1, fc2 = nn.Linear(1, 6), nn.Linear(6, 2)
    levels = [0, 1, 2, 3, 4, 5]
    with torch.no_grad():
        fc1.weight.zero_()  # A = b exactly
        fc1.bias.copy_(torch.tensor([-0.5] + [math.expm1((v - 0.5) / L) for v in levels[1:]]))
        fc2.weight.copy_(torch.arange(12.0).reshape(2, 6) / 10 - 0.5)
        fc2.bias.copy_(torch.tensor([0.25, -0.25]))
    model = nn.Sequential(fc1, nn.ReLU(), fc2).eval()
    x = torch.tensor([[0.1]])  # T = 1 at L = 2: the input fires although 1 < min_time
    result = tdsnn.convert(_prepare(model, L, k)).run(x, backend=backend, precision=precision)
    assert result.spike_times[0].long().tolist() == [[1]]
    assert result.spike_times[1].long().tolist() == [[-1, -1, -1, 3, 4, 5]]
    assert result.spike_counts == [1, 3]
    # input 1 spike x 6, fc1 bias 6, three fc1 spikes x 2, fc2 bias 2
    assert result.synaptic_events == 6 + 6 + 3 * 2 + 2
    g = torch.tensor([0, 0, 0] + [math.exp(t / L) for t in (3, 4, 5)], dtype=torch.float64)
    want = fc2.weight.double() @ g + fc2.bias.double()
    torch.testing.assert_close(result.logits.double()[0], want, rtol=1e-6, atol=1e-6)
    ref = R.Reference(model, L, "sparse", k).run(x)
    assert [t.tolist() for t in ref.spike_times_list()] == [
        t.long().tolist() for t in result.spike_times
    ]


def test_maxpool_windows_with_min_time():
    """A window whose inputs fire only below min_time is silent; one with a later input
    fires with it."""
    L, k = 2.0, 3
    conv = nn.Conv2d(1, 1, 1)
    fc = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.5)  # an input at level v gives A = exp(v/2) - 0.5: T = 2, 4 for v = 1, 3
        fc.weight.copy_(torch.tensor([[1.0, -0.5], [0.25, 1.0]]))
        fc.bias.zero_()
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), fc).eval()
    assert [math.ceil(L * math.log1p(math.exp(v / L) - 0.5)) for v in (1, 3)] == [2, 4]
    mid = [math.expm1((v - 0.5) / L) for v in range(4)]  # T(mid[v]) = v
    # window 1: input levels 1, 1, 0, 1 -> conv T = 2 (silenced by k = 3) or silent: silent;
    # window 2: input levels 1, 3, 0, 1 -> conv T = 2, 4, silent, 2: fires at 4
    x = torch.tensor([[[[mid[1], mid[1], mid[1], mid[3]], [0.0, mid[1], 0.0, mid[1]]]]])
    for backend in BACKENDS:
        result = tdsnn.convert(_prepare(model, L, k)).run(x, backend=backend)
        assert result.spike_times[1].long().tolist() == [[[[-1, -1, -1, 4], [-1, -1, -1, -1]]]]
        assert result.spike_times[2].long().tolist() == [[[[-1, 4]]]]
        ref = R.Reference(model, L, "sparse", k).run(x)
        assert torch.equal(ref.layers[2].times, result.spike_times[2].long())


def test_residual_networks_with_min_time_match_the_graph_reference():
    tally = ResidualTally()
    for seed in range(1, 60, 3):
        case = GR.random_case(seed)
        k = _min_time(seed)
        reference = GR.Reference(case.model, case.L, "sparse", k)
        own = reference.run(case.x)
        snn = tdsnn.convert(_prepare(case.model, case.L, k))
        for backend, precision in RESIDUAL_MODES:
            result = snn.run(case.x, backend=backend, precision=precision)
            what = f"{case.description} min_time={k} {backend}/{precision}"
            residual_check(result, reference, case.x, what, tally, own=own)
            assert not any(bool(((t >= 0) & (t < k)).any()) for t in result.spike_times[1:])
    tally.check("residual min_time")


def test_straight_through_gradient_moves_to_the_silence_edge():
    """The jump from silence to level k sits at exp((k-1)/L) - 1: the gradient is 1 above
    it, a triangle of the level's width around it, 0 far below (k = 1: as before)."""
    L = 4.0
    for k in (1, 2, 5):
        edge, width = silence_level(L, k)
        assert edge == pytest.approx(math.expm1((k - 1) / L))
        assert width == pytest.approx(math.exp(k / L) - math.exp((k - 1) / L))
        x = torch.tensor([edge - 2 * width, edge - width / 2, edge + width / 2, edge + 3 * width],
                         dtype=torch.float64, requires_grad=True)  # fmt: skip
        g = g_straight_through(x, L, "sparse", k)
        assert g.detach().tolist()[:3] == [0.0, 0.0, pytest.approx(math.exp(k / L))]
        g.sum().backward()
        jump = math.exp(k / L) / width
        assert x.grad.tolist() == pytest.approx([0.0, jump / 2, 1.0 + jump / 2, 1.0])
        s = soft_active(x.detach(), L, k)
        assert s.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0])


def test_min_time_is_checked():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(TDSNNError, match="min_time"):
            tdsnn.prepare(model, 5.0, coding="sparse", min_time=bad)
    with pytest.raises(TDSNNError, match="sparse"):
        tdsnn.prepare(model, 5.0, min_time=2)  # the paper coding silences nothing
    assert tdsnn.prepare(model, 5.0, min_time=1).min_time == 1
    gdnn = tdsnn.prepare(model, 5.0, coding="sparse", min_time=3)
    gs = [m for m in gdnn.modules() if isinstance(m, tdsnn.GCoding)]
    assert [g.min_time for g in gs] == [1, 3]  # the input's G keeps 1
    assert "min_time=3" in repr(gs[1])
    gs[1].min_time = 2  # a G-DNN edited by hand: one min_time per SNN, refused
    with pytest.raises(TDSNNError, match="min_time=2, expected 3"):
        tdsnn.convert(gdnn)
