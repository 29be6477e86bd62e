"""Self-tests of the independent exact reference (``exact_reference.py``), by brute force."""

import math
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exact_reference import (
    boundary_conv,
    boundary_linear,
    exact_preactivation,
    exact_spike_time,
    level_boundary,
    reference_layer_times,
    value,
)

LS = [1.0, 2.5, 5.0, 7.3]


def _float64_times(A: torch.Tensor, L: float) -> torch.Tensor:
    return torch.ceil(L * torch.log1p(A.clamp(min=0))).to(torch.int64)


def _near_boundary(A: torch.Tensor, L: float, rel: float = 1e-9) -> torch.Tensor:
    """Where a float64 pre-activation is within ``rel`` (relative) of some level boundary."""
    x = L * torch.log1p(A.clamp(min=0))
    k = torch.round(x)
    B = torch.expm1(k / L)
    return (A.abs() <= rel) | ((A - B).abs() <= rel * (1 + B.abs()))


def _brute_force(w, g, b) -> Fraction:
    return sum((Fraction(float(a)) * Fraction(float(c)) for a, c in zip(w, g)), Fraction(0)) + (
        Fraction(float(b))
    )


def test_value_is_the_float64_formula():
    t = torch.arange(0, 60)
    for L in LS:
        want = torch.exp(torch.tensor(t.tolist(), dtype=torch.float64) * (1.0 / L))
        got = value(t, L)
        assert got.dtype == torch.float64
        assert torch.equal(got, want)
        assert torch.equal(value(t.float(), L), want)
        for ti, gi in zip(t.tolist(), got.tolist()):
            assert math.isclose(gi, math.exp(ti / L), rel_tol=1e-14)


def test_exact_preactivation_is_exact():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        w = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
        g = rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n)
        w[rng.random(n) < 0.2] = 0.0
        w[0] = 5e-324  # subnormal
        b = float(rng.standard_normal() * 1e-3)
        assert exact_preactivation(w, g, b) == _brute_force(w, g, b)
    assert exact_preactivation([0.0], [1.0], 0.0) == 0
    assert exact_preactivation([0.1], [3.0], -0.3) == Fraction(0.1) * 3 - Fraction(0.3)
    # float32 tensors are read exactly
    w32 = torch.randn(50, generator=torch.Generator().manual_seed(0))
    g64 = value(torch.arange(50) % 7, 5.0)
    assert exact_preactivation(w32, g64, 0.25) == _brute_force(w32.double(), g64, 0.25)
    # cancellation that float64 gets wrong
    assert exact_preactivation([1e20, 1.0, -1e20], [1.0, 1.0, 1.0], 0.0) == 1


def test_exact_spike_time_zero_and_tiny():
    for L in LS:
        assert exact_spike_time(Fraction(0), L) == 0
        assert exact_spike_time(0, L) == 0
        assert exact_spike_time(Fraction(-1, 10**300), L) == 0
        assert exact_spike_time(-5.0, L) == 0
        assert exact_spike_time(Fraction(1, 10**300), L) == 1
        assert exact_spike_time(5e-324, L) == 1
        assert exact_spike_time(Fraction(10**30), L) == math.ceil(L * math.log(1e30))


def test_exact_spike_time_far_from_boundaries_matches_float64():
    rng = np.random.default_rng(2)
    A = 10.0 ** rng.uniform(-6, 6, 4000)
    for L in LS:
        x = L * np.log1p(A)
        far = np.abs(x - np.round(x)) > 1e-6
        assert far.sum() > 3900
        for a in A[far].tolist()[:800]:
            assert exact_spike_time(Fraction(a), L) == math.ceil(L * math.log1p(a))


@pytest.mark.parametrize("L", LS)
def test_exact_spike_time_at_boundaries(L):
    """A within 1e-60 and 1e-150 of exp(k/L) - 1 (the latter needs the precision doubled)."""
    for k in range(1, 25):
        for eps_exp in (60, 150):
            B = level_boundary(k, L, eps_exp + 40)
            eps = Fraction(1, 10**eps_exp) * (1 + B)
            assert exact_spike_time(B + eps, L) == k + 1
            assert exact_spike_time(B - eps, L) == k


def test_exact_spike_time_on_float64_neighbours_of_boundaries():
    """float64 numbers next to the float64 boundary: checked against exp (not ln)."""
    for L in LS:
        for k in range(1, 30):
            b = math.expm1(k * (1.0 / L))
            a = b
            for _ in range(4):
                a = math.nextafter(a, -math.inf)
            for _ in range(9):
                want = k if Fraction(a) <= level_boundary(k, L, 80) else k + 1
                assert exact_spike_time(Fraction(a), L) == want
                a = math.nextafter(a, math.inf)


CONV_CASES = [
    dict(stride=1, padding=0, dilation=1, groups=1),
    dict(stride=2, padding=1, dilation=1, groups=2),
    dict(stride=1, padding="same", dilation=2, groups=1),
    dict(stride=1, padding=(2, 1), dilation=1, groups=4),
    dict(stride=(2, 1), padding="valid", dilation=(1, 2), groups=1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_reference_conv_matches_float64_away_from_boundaries(case):
    gen = torch.Generator().manual_seed(3)
    L = 5.0
    weight = torch.randn((8, 8 // case["groups"], 3, 3), generator=gen) * 0.3
    bias = torch.randn(8, generator=gen) * 0.5
    t_in = torch.randint(0, 12, (3, 8, 9, 9), generator=gen)
    stats = {}
    got = reference_layer_times(weight, bias, t_in, L, kind="conv2d", stats=stats, **case)
    A = F.conv2d(value(t_in, L), weight.double(), bias.double(), **case)
    assert got.shape == A.shape and got.dtype == torch.int64
    near = _near_boundary(A, L)
    assert torch.equal(got[~near], _float64_times(A, L)[~near])
    assert stats["exact"] < 0.01 * stats["neurons"]
    # a subset, in any order, gives the same times
    idx = torch.randperm(got.numel(), generator=gen)[:50]
    sub = reference_layer_times(weight, bias, t_in, L, kind="conv2d", neurons=idx, **case)
    assert torch.equal(sub, got.reshape(-1)[idx])


def test_reference_linear_matches_float64_and_bias_none():
    gen = torch.Generator().manual_seed(4)
    for L in LS:
        weight = torch.randn((40, 30), generator=gen) * 0.4
        t_in = torch.randint(0, 20, (5, 30), generator=gen).float()
        for bias in (torch.randn(40, generator=gen), None):
            got = reference_layer_times(weight, bias, t_in, L, kind="linear")
            A = value(t_in, L) @ weight.double().T
            if bias is not None:
                A = A + bias.double()
            near = _near_boundary(A, L)
            assert got.shape == (5, 40)
            assert torch.equal(got[~near], _float64_times(A, L)[~near])


@pytest.mark.parametrize("case", CONV_CASES[:3])
def test_reference_conv_equals_brute_force_everywhere(case):
    """Every neuron of a tiny conv, recomputed with Fractions from its own receptive field
    (gathered independently, by loops): the float64 filter never lets a wrong time through."""
    gen = torch.Generator().manual_seed(5)
    L = 2.5
    groups = case["groups"]
    weight = torch.randn((4, 4 // groups, 2, 2), generator=gen)
    bias = torch.randn(4, generator=gen)
    t_in = torch.randint(0, 6, (2, 4, 5, 5), generator=gen)
    got = reference_layer_times(weight, bias, t_in, L, kind="conv2d", **case)
    g = value(t_in, L)
    pad = case["padding"]
    dil = case["dilation"]
    st = case["stride"]
    if pad == "same":
        total = dil * (2 - 1)
        top = total // 2
    else:
        top = pad
    cg = 4 // groups
    for n, o, y, x in np.ndindex(*got.shape):
        acc = Fraction(float(bias[o]))
        j = o // (4 // groups)
        for c in range(cg):
            for ky in range(2):
                for kx in range(2):
                    yy = y * st - top + ky * dil
                    xx = x * st - top + kx * dil
                    if 0 <= yy < 5 and 0 <= xx < 5:
                        acc += Fraction(float(weight[o, c, ky, kx])) * Fraction(
                            float(g[n, j * cg + c, yy, xx])
                        )
        assert int(got[n, o, y, x]) == exact_spike_time(acc, L)


def test_boundary_linear_claims():
    start = time.perf_counter()
    weight, bias, t_in, neurons = boundary_linear()
    took = time.perf_counter() - start
    assert took < 5.0
    info = boundary_linear.last
    assert weight.shape == (1000, 4096) and weight.dtype == torch.float64
    assert bias.shape == (1000,) and bias.dtype == torch.float64
    assert t_in.shape == (1, 4096) and t_in.dtype == torch.int64
    assert int(t_in.min()) == 0 and int(t_in.max()) == 10
    assert neurons.numel() == 300 and neurons.unique().numel() == 300
    assert torch.equal(weight.float().double(), weight)  # float32-representable
    assert torch.equal(bias.float().double(), bias)
    assert 0 < info["worst"] <= 1e-20
    assert 100 <= sum(info["above"]) <= 200  # both sides
    # the claims, re-checked from scratch for a few neurons with Fractions only
    g = value(t_in[0], 5.0)
    for j in (0, 1, 150, 299):
        o = int(neurons[j])
        A = _brute_force(weight[o], g, bias[o])
        B = level_boundary(info["k"][j], 5.0, 80)
        assert abs(A - B) <= Fraction(1e-20) * (1 + B)
        assert (A > B) == info["above"][j]
    stats = {}
    times = reference_layer_times(weight, bias, t_in, 5.0, kind="linear", stats=stats)
    assert stats["exact"] >= 300
    assert times.reshape(-1)[neurons].tolist() == info["times"]
    # float64 cannot decide these: it gets many of them wrong
    A64 = value(t_in, 5.0) @ weight.T + bias
    wrong = _float64_times(A64, 5.0) != times
    assert int(wrong.reshape(-1)[neurons].sum()) > 30
    assert not bool(
        wrong.reshape(-1)[torch.ones(1000, dtype=torch.bool).index_fill_(0, neurons, False)].any()
    )


def test_boundary_linear_small_and_coarse():
    weight, bias, t_in, neurons = boundary_linear(64, 20, 10, L=2.5, seed=3, within=1e-9)
    assert 0 < boundary_linear.last["worst"] <= 1e-9
    times = reference_layer_times(weight, bias, t_in, 2.5, kind="linear", neurons=neurons)
    assert times.tolist() == boundary_linear.last["times"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(big_pixels=0.02),
        dict(),
        dict(groups=2, stride=2),
        dict(dilation=2, padding="same", L=2.5, seed=1),
        dict(groups=4, kernel=2, padding=0, within=1e-18),
    ],
)
def test_boundary_conv_claims(kwargs):
    conv_args = {k: kwargs.get(k, d) for k, d in (("stride", 1), ("padding", 1), ("dilation", 1))}
    conv_args["groups"] = kwargs.get("groups", 1)
    L = kwargs.get("L", 5.0)
    within = kwargs.get("within", 1e-12)
    weight, bias, t_in, neurons = boundary_conv(**kwargs)
    info = boundary_conv.last
    assert t_in.shape == (16, 8, 12, 12)
    assert torch.equal(weight.float().double(), weight)
    assert torch.equal(bias.float().double(), bias)
    assert 0 < info["worst"] <= within
    total = F.conv2d(value(t_in, L), weight, bias, **conv_args).numel()
    assert 0.05 <= neurons.numel() / total <= 0.06
    assert 0.3 <= sum(info["above"]) / len(info["above"]) <= 0.7
    times = reference_layer_times(weight, bias, t_in, L, kind="conv2d", **conv_args)
    assert times.reshape(-1)[neurons].tolist() == info["times"]
    A32 = F.conv2d(value(t_in, L).float(), weight.float(), bias.float(), **conv_args)
    wrong32 = _float64_times(A32.double(), L) != times
    assert int(wrong32.reshape(-1)[neurons].sum()) > 0.1 * neurons.numel()
    if kwargs.get("big_pixels"):
        share = float((t_in == 40).double().mean())
        assert 0.01 < share < 0.03
        assert int(t_in.max()) == 40 and int(t_in[t_in != 40].max()) == 6
        # every boundary neuron sees at least one big input
        g = value(t_in, L).double()
        pad = conv_args["padding"]
        cols = F.unfold(F.pad(t_in.double(), (pad,) * 4, value=-1), 3)  # (N, C*9, P)
        P = cols.shape[2]
        n_idx, p_idx = neurons // (8 * P), neurons % P
        assert bool((cols[n_idx, :, p_idx] == 40).any(dim=1).all())
        assert g.max() > 2900
