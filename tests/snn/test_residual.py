"""Residual and concatenating networks (sums, identity / projection shortcuts, channel
concatenation, global average pooling) against an independent float64 reference
(``graph_reference.py``, which does not import tdsnn; its module docstring states the
definition of the G-DNN that these tests hold the engine to).

The contract under test: ``tdsnn.prepare(model, L, compensate=False, coding=...)`` (weights
those of the model with BatchNorm folded), ``tdsnn.convert(gdnn)`` (dynamic ``T_il``) or
``tdsnn.convert(gdnn, calibration=x)`` (static), ``snn.run(x, backend=..., precision=...)``
with ``result.spike_times`` one integer tensor per population (the input, then every
population in forward execution order: ReLU outputs, residual sums' ReLUs and average-pool
neurons included, and max-pool outputs; ``-1`` = silent), ``result.logits``,
``result.t_il`` (batch x neuron groups, the output included), ``result.latency`` (batch) and
``result.synaptic_events`` (an int); unsupported models raise ``UnsupportedModelError`` from
``prepare`` naming the fx node.

How spike times are compared (as in ``test_sparse.py``): every population of the reference
is fed the *engine's* spike times of the populations before it
(``Reference.run(x, forced=...)``), so that a one-step rounding move at a level boundary
cannot propagate; a difference is allowed only where the reference's float64 pre-activation
lies within 1e-9 (relative to its rounding scale) of a level boundary, and at most 1e-6 of
the neurons of a test may move.  Logits: within 1e-5 of the sample's largest |logit|.  The
BatchNorms are drawn on a dyadic grid on which folding in float32 is exact (see
``graph_reference``); ``test_float_batchnorm_*`` uses ordinary float statistics and allows
moves within float32 folding error instead.

Section 5 tests the reference alone (no engine): against ``sparse_reference.py`` on chains,
against the users' own forward with G hooked in at every synapse, and by hand.
"""

from __future__ import annotations

import copy
import math
import operator
import warnings
from dataclasses import dataclass

import graph_reference as G
import pytest
import sparse_reference as S
import torch
import torch.nn.functional as F
from torch import fx, nn

import tdsnn
from tdsnn.errors import UnsupportedModelError

# small workloads: one thread (OpenMP spin-waiting on a busy machine costs 10x otherwise)
pytestmark = pytest.mark.usefixtures("one_thread")

N_NETWORKS = 120
CHUNKS = 12
PER_CHUNK = N_NETWORKS // CHUNKS
SPARSE_SEEDS = list(range(0, N_NETWORKS, 4))  # 30 networks in sparse coding
SPARSE_CHUNKS = 3
BACKENDS = ("closed_form", "clocked")
MODES = [("closed_form", "certified"), ("closed_form", "float64"), ("clocked", "certified")]
LOGIT_RTOL = 1e-5
MAX_MOVED = 1e-6  # share of all compared neurons whose spike time may move at a boundary


def _prepare(model: nn.Module, L: float, coding: str):
    """The G-DNN with the model's weights (BatchNorm folded), no compensation, no
    normalisation, input scale 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tdsnn.prepare(model, L, compensate=False, coding=coding).eval()


@dataclass
class Tally:
    neurons: int = 0
    moved: int = 0

    def check(self, what: str = "") -> None:
        assert self.neurons > 0, what
        assert self.moved <= MAX_MOVED * self.neurons, (
            f"{what}: {self.moved} of {self.neurons} spike times moved at level boundaries "
            f"(at most {MAX_MOVED:g} of them may)"
        )


def _layout(got: torch.Tensor, want: torch.Tensor, what: str) -> torch.Tensor:
    """The engine's tensor in the reference's shape: equal shapes, or shapes that differ only
    by singleton dimensions (a global-average-pool population as (B, C) or (B, C, 1, 1))."""
    if tuple(got.shape) != tuple(want.shape):
        squeeze = [d for d in got.shape[1:] if d != 1], [d for d in want.shape[1:] if d != 1]
        assert got.shape[0] == want.shape[0] and squeeze[0] == squeeze[1], (
            what,
            "shape",
            tuple(got.shape),
            "expected",
            tuple(want.shape),
        )
        got = got.reshape(want.shape)
    return got


def _assert_logits(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Within LOGIT_RTOL of the largest |logit| of each sample."""
    got = got.detach().double()
    assert tuple(got.shape) == tuple(want.shape), (what, tuple(got.shape), tuple(want.shape))
    assert bool(torch.isfinite(got).all()), (what, "non-finite logits")
    bound = LOGIT_RTOL * want.abs().amax(dim=1, keepdim=True) + 1e-12
    err = (got - want).abs()
    assert bool((err <= bound).all()), (
        f"{what}: logits differ by up to {float((err / bound).max()):.3g} x the tolerance\n"
        f"engine {got.tolist()}\nreference {want.tolist()}"
    )


def _check(
    result,
    reference: G.Reference,
    x: torch.Tensor,
    what: str,
    tally: Tally,
    own: G.Run | None = None,
    rel: float = 1e-9,
) -> G.Run:
    """Compare one engine result with the reference, population by population (module doc).
    ``own``: the reference's own run on ``x``; ``rel``: the boundary tolerance."""
    coding = reference.coding
    batch = x.shape[0]
    if own is None:
        own = reference.run(x)
    assert all(not t.is_floating_point() for t in result.spike_times), (what, "float times")
    got = [t.long() for t in result.spike_times]
    assert len(got) == len(own.populations), (
        what,
        f"{len(got)} spiking populations, expected {len(own.populations)}: {own.names}",
        list(result.layer_names),
    )
    names = list(result.layer_names)
    assert len(names) == len(got), (what, names)
    assert all(isinstance(n, str) for n in names) and len(set(names)) == len(names), (what, names)
    got = [_layout(t, p.times, f"{what} {p.name}") for t, p in zip(got, own.populations)]
    ref = reference.run(x, forced=got)
    moved_here = 0
    for times, pop, engine_name in zip(got, ref.populations, names, strict=True):
        where = (what, pop.name, engine_name)
        assert bool((times >= G.SILENT).all()), (*where, "times below -1")
        if coding == "sparse":
            assert not bool((times == 0).any()), (*where, "a sparse spike at 0")
        else:
            assert not bool((times < 0).any()), (*where, "a silent neuron in paper coding")
        diff = times != pop.times
        tally.neurons += times.numel()
        if bool(diff.any()):
            assert pop.scale is not None, (
                *where,
                "a max-pool differs",
                times[diff].tolist(),
                pop.times[diff].tolist(),
            )
            far = diff & ~G.near_boundary(pop.pre, pop.scale, reference.L, rel)
            assert not bool(far.any()), (
                *where,
                f"{int(far.sum())} spike times differ away from a level boundary: "
                f"engine {times[far][:8].tolist()} reference {pop.times[far][:8].tolist()} "
                f"pre-activation {pop.pre[far][:8].tolist()}",
            )
            moved_here += int(diff.sum())
    tally.moved += moved_here
    _assert_logits(result.logits, ref.logits, what)
    t_il = result.t_il
    assert tuple(t_il.shape) == (batch, ref.n_groups), (
        what,
        f"t_il shape {tuple(t_il.shape)}, expected (batch, neuron groups) = {(batch, ref.n_groups)}",
    )
    assert tuple(result.latency.shape) == (batch,), (what, tuple(result.latency.shape))
    assert bool((result.latency >= 0).all()), (what, result.latency)
    events = result.synaptic_events
    assert isinstance(events, int) and not isinstance(events, bool), (what, type(events))
    # every emitted spike reaches its fan-out (a shortcut's spikes: one target each), and one
    # bias neuron per group with a bias reaches every neuron of the group
    want = ref.spike_events(got) + ref.bias_events
    assert events == want, (what, "synaptic_events", events, "expected", want)
    return ref


def _run_modes(
    case: G.Case, coding: str, tally: Tally, modes=MODES, rel: float = 1e-9
) -> dict[tuple[str, str], object]:
    reference = G.Reference(case.model, case.L, coding)
    own = reference.run(case.x)
    snn = tdsnn.convert(_prepare(case.model, case.L, coding))
    results = {}
    for backend, precision in modes:
        result = snn.run(case.x, backend=backend, precision=precision)
        what = f"{case.description} {coding} {backend}/{precision}"
        _check(result, reference, case.x, what, tally, own=own, rel=rel)
        results[(backend, precision)] = result
    return results


# --------------------------------------------------------------------------------------
# 1. Random residual networks, both simulators, against the reference
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_residual_networks_paper_coding(chunk):
    tally = Tally()
    for seed in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK):
        _run_modes(G.random_case(seed), "paper", tally)
    tally.check(f"paper chunk {chunk}")


@pytest.mark.parametrize("coding", ["paper", "sparse"])
def test_float32_certified_groups_on_random_networks(coding, monkeypatch):
    """The float32 path of groups with shortcuts (normally taken by large layers only),
    forced on every group: the same spike times as the reference."""
    from tdsnn.snn import certified, junction

    monkeypatch.setattr(junction, "SMALL_LAYER_MACS", 0)
    monkeypatch.setattr(certified, "SMALL_LAYER_MACS", 0)
    tally = Tally()
    for seed in range(0, N_NETWORKS, 4):
        _run_modes(G.random_case(seed), coding, tally, modes=[("closed_form", "certified")])
    tally.check(f"float32 groups {coding}")


@pytest.mark.parametrize("chunk", range(SPARSE_CHUNKS))
def test_random_residual_networks_sparse_coding(chunk):
    tally = Tally()
    silent = total = 0
    for seed in SPARSE_SEEDS[chunk::SPARSE_CHUNKS]:
        case = G.random_case(seed)
        results = _run_modes(case, "sparse", tally)
        for t in results[("closed_form", "certified")].spike_times:
            silent += int((t < 0).sum())
            total += t.numel()
    tally.check(f"sparse chunk {chunk}")
    assert 0.1 * total <= silent <= 0.9 * total, (silent, total)  # the test has teeth


# --------------------------------------------------------------------------------------
# 2. Concatenation and a three-way sum
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", G.CODINGS)
def test_concatenation_network(coding):
    """``cat([relu(conv(h)), maxpool(h), h])`` then a conv: one population each for the
    ReLU and the max-pool, none for the concatenation; h feeds three synapses."""
    tally = Tally()
    for seed in range(6):
        case = G.concat_case(seed)
        _run_modes(case, coding, tally)
        assert G.Reference(case.model, case.L, coding).run(case.x).names == [
            "input", "stem", "a", "b", "d", "gap",
        ]  # fmt: skip
    tally.check(f"concat {coding}")


@pytest.mark.parametrize("coding", G.CODINGS)
def test_three_way_sum_network(coding):
    """``relu(bn(conv(h)) + x1 + proj(x0))``: two shortcuts (from two populations) and the
    main branch summed inside one receiving neuron."""
    tally = Tally()
    for seed in range(6):
        case = G.three_way_case(seed)
        _run_modes(case, coding, tally)
    tally.check(f"three-way {coding}")


# --------------------------------------------------------------------------------------
# 3. Static T_il from calibration data
# --------------------------------------------------------------------------------------


def _static_cases() -> list[G.Case]:
    return [G.random_case(seed) for seed in range(0, N_NETWORKS, 12)] + [
        G.concat_case(1),
        G.three_way_case(1),
    ]


@pytest.mark.parametrize("coding", G.CODINGS)
def test_static_t_il_from_calibration(coding):
    """``convert(gdnn, calibration=x)`` then ``run(x)`` on the same ``x``: the periods cover
    every spike, so the spike times are the reference's; one ``T_il`` per neuron group, the
    same for every sample (the largest the dynamic mode saw), and so the same latency."""
    tally = Tally()
    for case in _static_cases():
        reference = G.Reference(case.model, case.L, coding)
        own = reference.run(case.x)
        gdnn = _prepare(case.model, case.L, coding)
        dynamic = tdsnn.convert(gdnn).run(case.x)
        snn = tdsnn.convert(gdnn, calibration=case.x)
        for backend in BACKENDS:
            what = f"{case.description} {coding} static {backend}"
            result = snn.run(case.x, backend=backend)
            _check(result, reference, case.x, what, tally, own=own)
            t_il = result.t_il.long()
            assert bool((t_il == t_il[0]).all()), (what, t_il.tolist())
            assert t_il[0].tolist() == dynamic.t_il.long().amax(dim=0).tolist(), (
                what,
                t_il[0].tolist(),
                dynamic.t_il.tolist(),
            )
            latency = result.latency.tolist()
            assert latency == [latency[0]] * case.x.shape[0], (what, latency)
    tally.check(f"static {coding}")


# --------------------------------------------------------------------------------------
# The G-DNN itself, and BatchNorm with ordinary float statistics
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", G.CODINGS)
def test_gdnn_float64_forward_gives_the_reference_logits(coding):
    cases = [G.random_case(seed) for seed in range(0, N_NETWORKS, 6)]
    cases += [G.concat_case(2), G.three_way_case(2)]
    for case in cases:
        gdnn = _prepare(case.model, case.L, coding)
        with torch.no_grad():
            logits = copy.deepcopy(gdnn).double()(case.x.double())
        ref = G.Reference(case.model, case.L, coding).run(case.x)
        _assert_logits(logits, ref.logits, f"{case.description} {coding} G-DNN float64")


@pytest.mark.parametrize("coding", G.CODINGS)
def test_float_batchnorm_folds_within_float32_rounding(coding):
    """BatchNorm with default eps and float statistics: folded in float32, the weights
    differ from the float64 fold by ~1e-7 relative, so a spike time may move only within
    2e-6 (of the rounding scale) of a level boundary."""
    tally = Tally()
    for seed in range(500, 510):
        case = G.random_case(seed, exact_bn=False)
        _run_modes(case, coding, tally, modes=[MODES[0], MODES[2]], rel=2e-6)
    assert tally.moved <= 1e-4 * tally.neurons, (tally.moved, tally.neurons)


# --------------------------------------------------------------------------------------
# 4. Refusals
# --------------------------------------------------------------------------------------


class _Product(nn.Module):
    """``a * b`` of two activations: no TDSNN neuron multiplies."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(1, 2, 3, padding=1)
        self.conv_b = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        a = F.relu(self.conv_a(x))
        b = F.relu(self.conv_b(x))
        return self.fc((a * b).mean((2, 3)))


class _Recurrent(nn.Module):
    """An LSTM, then a residual MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.recurrent = nn.LSTM(4, 3, batch_first=True)
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        h = F.relu(self.recurrent(x)[0][:, -1])
        return self.fc2(F.relu(self.fc1(h) + h))


class _SumWithoutReLU(nn.Module):
    """A legitimate residual block, then a sum (``add_1``) that feeds a conv directly: its
    values may be negative, which no spike time encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.tail_conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        h = F.relu(self.stem(x))
        s = F.relu(self.conv1(h) + h)  # add: fine
        t = self.conv2(s) + s  # add_1: no ReLU
        y = F.relu(self.tail_conv(t))
        return self.fc(y.mean((2, 3)))


@pytest.mark.parametrize("coding", G.CODINGS)
def test_refuses_a_product_of_activations(coding):
    with pytest.raises(UnsupportedModelError) as info:
        _prepare(_Product().eval(), 3.0, coding)
    assert "mul" in str(info.value), str(info.value)


@pytest.mark.parametrize("coding", G.CODINGS)
def test_refuses_an_lstm(coding):
    with pytest.raises(UnsupportedModelError) as info:
        _prepare(_Recurrent().eval(), 3.0, coding)
    assert "recurrent" in str(info.value), str(info.value)


@pytest.mark.parametrize("coding", G.CODINGS)
def test_refuses_a_sum_into_a_conv_without_relu(coding):
    """The message names the sum (``add_1``) or the conv it feeds (``tail_conv``)."""
    with pytest.raises(UnsupportedModelError) as info:
        _prepare(_SumWithoutReLU().eval(), 3.0, coding)
    message = str(info.value)
    assert "add_1" in message or "tail_conv" in message, message


# --------------------------------------------------------------------------------------
# 5. The reference alone (no engine)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", G.CODINGS)
def test_reference_agrees_with_sparse_reference_on_chains(coding):
    """On the chains of ``sparse_reference.random_case`` (convs, grouped convs, linear
    layers, padded / overlapping / ceil-mode max- and average pools), the graph reference
    gives the same layer names, spike times, fan-outs, logits and synaptic events."""
    for seed in range(80):
        case = S.random_case(seed)
        chain = S.Reference(case.model, case.L, coding).run(case.x)
        reference = G.Reference(case.model, case.L, coding)
        graph = reference.run(case.x)
        what = f"{case.description} {coding}"
        assert graph.names == chain.names, what
        assert graph.n_groups == chain.t_il.shape[1], what
        for p, layer in zip(graph.populations, chain.layers, strict=True):
            assert torch.equal(p.times, layer.times), (what, p.name)
            assert torch.equal(p.fanout, layer.fanout), (what, p.name)
            if layer.scale is not None:
                torch.testing.assert_close(p.pre, layer.pre, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(p.scale, layer.scale, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(graph.logits, chain.logits, rtol=1e-12, atol=1e-12)
        assert graph.synaptic_events == chain.synaptic_events, what
        assert graph.bias_events == chain.bias_events, what
        forced = reference.run(case.x, forced=graph.spike_times_list())
        assert torch.equal(forced.logits, graph.logits), what


def _g(v: torch.Tensor, L: float, coding: str) -> torch.Tensor:
    t = torch.ceil(L * torch.log1p(v.clamp(min=0)))
    g = torch.exp(t * (1.0 / L))
    return torch.where(v > 0, g, torch.zeros_like(g)) if coding == "sparse" else g


def _t(v: torch.Tensor, L: float, coding: str) -> torch.Tensor:
    t = torch.ceil(L * torch.log1p(v.clamp(min=0)))
    if coding == "sparse":
        t = torch.where(v > 0, t, torch.full_like(t, -1.0))
    return t.long()


def _hooked_forward(model: nn.Module, x: torch.Tensor, L: float, coding: str):
    """The user's own forward, in float64, with ``G`` applied to the input of every synapse
    module (conv, linear, average pools, identity shortcut) and the spike times of every
    population module (ReLU, max-pool, average pools) recorded as they run."""
    m = copy.deepcopy(model).double().eval()
    times = [_t(x.double(), L, coding)]
    handles = []
    for module in m.modules():
        if isinstance(
            module, (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity)
        ):
            handles.append(module.register_forward_pre_hook(lambda _, a: (_g(a[0], L, coding),)))
        if isinstance(module, (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            handles.append(
                module.register_forward_hook(lambda _, a, out: times.append(_t(out, L, coding)))
            )
    with torch.no_grad():
        logits = m(x.double())
    for h in handles:
        h.remove()
    return times, logits


def _hookable_cases() -> list[G.Case]:
    """Networks whose every population is a module output and every identity shortcut an
    ``nn.Identity`` (so that hooks see them all), in the other spellings at random."""
    cases = []
    for seed in range(40):
        style = G.Style(
            relu=("module", "shared")[seed % 2],
            add=("plus", "iadd")[(seed // 2) % 2],
            identity="module",
            gap="adaptive",
            flatten=("flatten", "view")[(seed // 4) % 2],
        )
        cases.append(G.random_case(seed, style=style))
        if seed < 8:
            cases += [G.concat_case(seed, style), G.three_way_case(seed, style)]
    return cases


@pytest.mark.parametrize("coding", G.CODINGS)
def test_reference_agrees_with_the_users_forward_with_g_hooked_in(coding):
    """The reference's own forward (``g_forward``) against the module's forward run with G
    placed by hooks: same populations in the same (execution) order, same spike times, same
    logits.  The BatchNorms run as BatchNorm here, not folded."""
    for case in _hookable_cases():
        times, logits = _hooked_forward(case.model, case.x, case.L, coding)
        ref = G.Reference(case.model, case.L, coding).run(case.x)
        what = f"{case.description} {coding}"
        assert len(times) == len(ref.populations), (what, len(times), ref.names)
        for t, p in zip(times, ref.populations, strict=True):
            assert torch.equal(t.reshape(p.times.shape), p.times), (what, p.name)
        _assert_logits(logits, ref.logits, what)
        torch.testing.assert_close(logits, ref.logits, rtol=1e-9, atol=1e-9)


def test_random_networks_are_traceable_user_models():
    """The generated modules run in float32, trace with torch.fx to the same function, and
    contain the graph shapes the tests are about."""
    seen = {"add": 0, "cat": 0, "mean": 0, "adaptive": 0, "maxpool": 0, "avgpool": 0}
    for seed in range(N_NETWORKS):
        case = G.random_case(seed)
        traced = fx.symbolic_trace(case.model)
        with torch.no_grad():
            torch.testing.assert_close(traced(case.x), case.model(case.x))
        for node in traced.graph.nodes:
            if node.op == "call_function" and node.target is operator.add:
                seen["add"] += 1
            elif node.op == "call_function" and node.target is torch.cat:
                seen["cat"] += 1
            elif node.op == "call_method" and node.target == "mean":
                seen["mean"] += 1
            elif node.op == "call_module":
                module = traced.get_submodule(node.target)
                if isinstance(module, nn.AdaptiveAvgPool2d):
                    seen["adaptive"] += 1
                elif isinstance(module, nn.MaxPool2d):
                    seen["maxpool"] += 1
                elif isinstance(module, nn.AvgPool2d):
                    seen["avgpool"] += 1
    assert seen["add"] >= 150 and seen["cat"] >= 10, seen
    assert min(seen.values()) >= 10, seen


def test_random_networks_cover_the_feature_list():
    """Depth, widths, strides, shortcuts, BatchNorm, stem pools, spellings, L and inputs."""
    specs = [G.random_spec(seed) for seed in range(N_NETWORKS)]
    blocks = [b for s in specs for b in s.blocks]
    basic = [b for b in blocks if b.kind == "basic"]
    count = {
        "identity": sum(b.shortcut == "identity" for b in basic),
        "projection": sum(b.shortcut == "projection" for b in basic),
        "projection_bn": sum(b.shortcut == "projection_bn" for b in basic),
        "stride2": sum(b.stride == 2 for b in basic),
        "bn": sum(b.bn for b in basic),
        "no_bn": sum(not b.bn for b in basic),
        "dense": sum(b.kind == "dense" for b in blocks),
        "avgpool": sum(b.kind == "avgpool" for b in blocks),
        "stem_pool": sum(s.stem_pool is not None for s in specs),
        "hidden_fc": sum(s.hidden is not None for s in specs),
        "L_integer": sum(float(s.L).is_integer() for s in specs),
        "L_fraction": sum(not float(s.L).is_integer() for s in specs),
    }
    for field_name, values in {
        "relu": ("functional", "module", "shared"),
        "add": ("plus", "iadd"),
        "identity": ("module", "direct"),
        "gap": ("adaptive", "mean"),
        "flatten": ("flatten", "view"),
    }.items():
        for value in values:
            count[f"{field_name}={value}"] = sum(
                getattr(s.style, field_name) == value for s in specs
            )
    assert min(count.values()) >= 8, count
    depths = {sum(b.kind == "basic" or b.kind == "dense" for b in s.blocks) for s in specs}
    assert depths == {1, 2, 3}, depths
    assert all(1.0 <= s.L <= 8.0 for s in specs)
    zeros = all_zero = 0
    for seed in range(N_NETWORKS):
        x = G.random_case(seed).x
        assert bool((x >= 0).all())
        zeros += int((x == 0).sum())
        all_zero += int((x.flatten(1) == 0).all(dim=1).sum())
    assert zeros > 0 and all_zero >= 10, (zeros, all_zero)


class _HandResidual(nn.Module):
    """``h = relu(fc1(x)); out = relu(fc2(h) + x); logits = fc3(cat([out, h]))``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(4, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.5], [-1.0, 0.25]]))
            self.fc1.bias.copy_(torch.tensor([0.2, 0.1]))
            self.fc2.weight.copy_(torch.tensor([[0.5, -1.0], [0.75, 0.5]]))
            self.fc2.bias.copy_(torch.tensor([-0.3, 0.4]))
            self.fc3.weight.copy_(torch.tensor([[1.0, -0.5, 0.25, 2.0], [-1.0, 0.5, 1.5, -0.25]]))
            self.fc3.bias.copy_(torch.tensor([0.1, -0.2]))

    def forward(self, x):
        h = F.relu(self.fc1(x))
        out = F.relu(self.fc2(h) + x)
        return self.fc3(torch.cat([out, h], dim=1))

    def g_forward(self, ctx: G.GForward, v: G.Value) -> torch.Tensor:
        h = ctx.neurons("h", ctx.synapse(self.fc1, None, v))
        out = ctx.neurons("out", ctx.synapse(self.fc2, None, h), ctx.identity(v))
        return ctx.output(ctx.synapse(self.fc3, None, ctx.cat([out, h])))


def test_reference_by_hand_residual_sum_and_concatenation():
    """L = 2, x = (0, 1.2): T(1.2) = ceil(2 ln 2.2) = ceil(1.58) = 2, G = e.

    paper:  G(x) = (1, e); A1 = (1 + e/2 + 0.2, -1 + e/4 + 0.1) = (2.559, -0.220):
            h = (2.559, 0), T(h) = (ceil(2.539), 0) = (3, 0), G(h) = (e^1.5, 1);
            A2 = (0.5 e^1.5 - 1 - 0.3 + 1, 0.75 e^1.5 + 0.5 + 0.4 + e) = (1.941, 6.980):
            T = (ceil(2.157), ceil(4.154)) = (3, 5).
    sparse: G(x) = (0, e); A1 = (e/2 + 0.2, e/4 + 0.1) = (1.559, 0.780): T = (2, 2);
            A2 = (0.5 e - e - 0.3 + 0, 0.75 e + 0.5 e + 0.4 + e) = (-1.659, 6.516):
            T = (-1, ceil(4.034)) = (-1, 5).
    logits = W3 (G(out), G(h)) + b3.
    """
    L = 2.0
    x = torch.tensor([[0.0, 1.2]])
    model = _HandResidual().eval()
    e = math.exp
    expected = {
        "paper": ([[0, 2]], [[3, 0]], [[3, 5]], [e(1.5), e(2.5), e(1.5), 1.0]),
        "sparse": ([[-1, 2]], [[2, 2]], [[-1, 5]], [0.0, e(2.5), e(1.0), e(1.0)]),
    }
    for coding, (t_in, t_h, t_out, g_cat) in expected.items():
        ref = G.Reference(model, L, coding).run(x)
        assert ref.names == ["input", "h", "out"]
        assert [p.times.tolist() for p in ref.populations] == [t_in, t_h, t_out], coding
        w3, b3 = model.fc3.weight.double(), model.fc3.bias.double()
        want = w3 @ torch.tensor(g_cat, dtype=torch.float64) + b3
        torch.testing.assert_close(ref.logits[0], want, rtol=1e-12, atol=1e-12)
        assert ref.n_groups == 3
        # fan-out: the input reaches fc1 (2) and the identity (1); h reaches fc2 (2) and
        # fc3 (2); out reaches fc3 (2); bias events: 2 + 2 + 2 (one sample)
        assert [p.fanout.tolist() for p in ref.populations] == [[3, 3], [4, 4], [2, 2]]
        assert ref.bias_events == 6
        emitted = sum(
            int((p.times >= 0).sum()) * (3, 4, 2)[i] for i, p in enumerate(ref.populations)
        )
        assert ref.synaptic_events == emitted + 6


class _HandPools(nn.Module):
    """``logits = fc(maxpool2(x).flatten() ++ x.mean((2, 3)))`` on one 2x2 channel: the
    max-pool population (the latest spike of the window) and the global-average-pool neuron
    (``mean(G(x))``, a population of its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, -2.0]]))
            self.fc.bias.copy_(torch.tensor([0.5]))

    def forward(self, x):
        m = torch.flatten(self.pool(x), 1)
        return self.fc(torch.cat([m, x.mean((2, 3))], dim=1))

    def g_forward(self, ctx: G.GForward, v: G.Value) -> torch.Tensor:
        m = ctx.flatten(ctx.maxpool("pool", self.pool, v))
        gap = ctx.neurons("gap", ctx.gap(v, keepdim=False))
        return ctx.output(ctx.synapse(self.fc, None, ctx.cat([m, gap])))


def test_reference_by_hand_max_pool_and_global_average_pool():
    """L = 1, x = (0, 0.5, 2, 0.1): T = (0 | silent, ceil(0.405) = 1, ceil(1.099) = 2,
    ceil(0.095) = 1); max-pool: 2.  paper: mean G = (1 + e + e^2 + e)/4 = 3.456, T = ceil(
    ln 4.456) = 2; sparse: (0 + e + e^2 + e)/4 = 3.207, T = ceil(ln 4.207) = 2."""
    x = torch.tensor([[[[0.0, 0.5], [2.0, 0.1]]]])
    model = _HandPools().eval()
    e = math.e
    for coding, mean_g in (("paper", (1 + 2 * e + e**2) / 4), ("sparse", (2 * e + e**2) / 4)):
        ref = G.Reference(model, 1.0, coding).run(x)
        first = -1 if coding == "sparse" else 0
        assert ref.names == ["input", "pool", "gap"]
        assert ref.populations[0].times.flatten().tolist() == [first, 1, 2, 1]
        assert ref.populations[1].times.flatten().tolist() == [2]
        assert ref.populations[2].times.flatten().tolist() == [2]
        assert ref.populations[2].pre.item() == pytest.approx(mean_g, rel=1e-12)
        want = 1.0 * e**2 - 2.0 * e**2 + 0.5  # G(pool) = G(gap) = e^2
        assert ref.logits.item() == pytest.approx(want, rel=1e-12)
        assert ref.populations[0].fanout.flatten().tolist() == [2, 2, 2, 2]  # pool + gap
        assert ref.n_groups == 2  # the pool neuron and the output


@pytest.mark.parametrize("coding", G.CODINGS)
def test_reference_coding_is_the_definition(coding):
    """``decode(encode(x))`` is ``G(x)`` straight from the definition (bit for bit, and as
    ``sparse_reference`` computes it), zeros included, for integer and fractional ``L``."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2000, generator=gen, dtype=torch.float64) * 5
    x[::7] = 0.0
    for L in (1.0, 2.5, 3.0, 4.321, 8.0):
        g = G.g_value(x, L, coding)
        assert torch.equal(G.decode(G.encode(x, L, coding), L, coding), g), L
        assert torch.equal(g, S.g_value(x, L, coding)), L
        zero = G.encode(torch.zeros(1), L, coding).item()
        assert zero == (0 if coding == "paper" else -1)
        assert bool((G.encode(x, L, coding)[x > 0] >= 1).all())


def test_both_simulators_count_the_same_operations_on_graphs():
    """Per layer and convention, clocked (counted step by step) equals closed_form (derived
    from the spike times), shortcut synapses included; and static mode's fixed delays are
    the releases' differences."""
    tally = Tally()
    for seed in range(12):
        case = G.random_case(1000 + seed)
        results = _run_modes(case, "paper", tally, modes=[("closed_form", "float64"), ("clocked", "float64")])
        fast, stepped = results[("closed_form", "float64")], results[("clocked", "float64")]
        for convention in ("presentation", "own", "hardware"):
            a, b = fast.ops.counts(convention), stepped.ops.counts(convention)
            assert [(x.name, x.mul, x.add) for x in a.layers] == [(x.name, x.mul, x.add) for x in b.layers]
        assert torch.equal(fast.latency, stepped.latency)
        snn = tdsnn.convert(_prepare(case.model, case.L, "paper"), calibration=case.x)
        static = snn.run(case.x)
        releases = {n: r[0].item() for n, r in zip(static.layer_names, static.extras["release"])}
        for name, delays in snn.connection_delays().items():
            assert min(delays) == 0 and all(d >= 0 for d in delays), (name, delays)
            assert torch.equal(static.extras["delays"][name][0], torch.tensor(delays)), name
        assert releases["input"] == 0
