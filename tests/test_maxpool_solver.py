"""Tests for the leaky max-pool tick-ratio solver (paper eqs. 12-14)."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdsnn.maxpool_solver import (
    TickRatioInterval,
    admissible,
    format_table,
    max_admissible_tm,
    simulate_leaky_maxpool,
    solve_table,
    tick_ratio_interval,
)

GRID_N = [1, 2, 4, 9]
GRID_L = [1.0, 2.0, 3.0, 5.0, 8.0]
GRID_TM = list(range(1, 13))
R_GRID = torch.logspace(-7, 2, 20_000, dtype=torch.float64)
EDGE = 1e-8  # relative offset of the probes just inside / outside an endpoint
SKIP = 1e-9  # grid points this close (relative) to an endpoint are not judged


def extreme_patterns(N: int, T_m: int, R: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(a) all N inputs at T_m; (b) one at T_m, the other N-1 at 0; repeated R times."""
    a = torch.full((R, N), T_m, dtype=torch.int64)
    b = torch.zeros((R, N), dtype=torch.int64)
    b[:, 0] = T_m
    return a, b


def lossless_mask(N: int, L: float, T_m: int, r: torch.Tensor) -> torch.Tensor:
    """Brute force: which ratios make both extreme cases fire exactly at tau = T_m."""
    a, b = extreme_patterns(N, T_m, r.numel())
    out_a = simulate_leaky_maxpool(a, T_m, L, 1.0, r, max_steps=T_m + 2)
    out_b = simulate_leaky_maxpool(b, T_m, L, 1.0, r, max_steps=T_m + 2)
    return (out_a == T_m) & (out_b == T_m)


# ------------------------------------------------------------------ (1) brute force
@pytest.mark.parametrize("N", GRID_N)
def test_interval_matches_brute_force(N: int) -> None:
    for L in GRID_L:
        for T_m in GRID_TM:
            iv = tick_ratio_interval(N, L, T_m)
            assert (iv is not None) == admissible(N, L, T_m)
            ok = lossless_mask(N, L, T_m, R_GRID)
            if iv is None:
                assert not bool(ok.any()), (N, L, T_m)
                continue
            # midpoint and the probes next to the endpoints
            probes = [iv.midpoint(), iv.low * (1 + EDGE), iv.low * (1 - EDGE)]
            expect = [True, True, False]
            if math.isfinite(iv.high):
                probes += [iv.high * (1 - EDGE), iv.high * (1 + EDGE)]
                expect += [True, False]
            got = lossless_mask(N, L, T_m, torch.tensor(probes, dtype=torch.float64))
            assert got.tolist() == expect, (N, L, T_m, iv)
            # every grid point away from the endpoints agrees with the interval
            r = R_GRID
            near = (r - iv.low).abs() <= SKIP * iv.low
            if math.isfinite(iv.high):
                near |= (r - iv.high).abs() <= SKIP * iv.high
            inside = (r >= iv.low) & (r < iv.high)
            assert torch.equal(ok[~near], inside[~near]), (N, L, T_m, iv)


def _decimal_run(
    n_at_tm: int, n_at_0: int, T_m: int, L: int, r: Decimal, steps: int
) -> list[Decimal]:
    """Exact-ish (60 digits) replay of the discrete model; returns V(tau) for tau = 0..steps."""
    a = (Decimal(-1) / L).exp()
    v = Decimal(0)
    for t in range(T_m + 1):
        v = v * a - (n_at_0 if t == 0 else 0) - (n_at_tm if t == T_m else 0)
    vs = [v]
    for _ in range(steps):
        v = v * a + r
        vs.append(v)
    return vs


@pytest.mark.parametrize(("N", "L", "T_m"), [(4, 5, 2), (4, 5, 3), (9, 3, 2), (2, 8, 5), (1, 2, 7)])
def test_endpoints_inclusivity_high_precision(N: int, L: int, T_m: int) -> None:
    """At r = low case (a) reaches V = 0 exactly at T_m (fires: inclusive); at r = high
    case (b) reaches V = 0 exactly at T_m - 1 (fires early: exclusive)."""
    with localcontext() as ctx:
        ctx.prec = 60
        _check_endpoints_decimal(N, L, T_m)


def _check_endpoints_decimal(N: int, L: int, T_m: int) -> None:
    iv = tick_ratio_interval(N, L, T_m)
    assert iv is not None and iv.low_inclusive and not iv.high_inclusive
    D = Decimal
    a = (D(-1) / L).exp()
    c_l = 1 - a
    low = c_l * N / ((D(T_m) / L).exp() - 1)
    high = c_l * (1 + (N - 1) * (D(-T_m) / L).exp()) / ((D(T_m - 1) / L).exp() - 1)
    assert math.isclose(float(low), iv.low, rel_tol=1e-12)
    assert math.isclose(float(high), iv.high, rel_tol=1e-12)
    va = _decimal_run(N, 0, T_m, L, low, T_m)
    assert abs(va[T_m]) < D("1e-50") and va[T_m - 1] < 0
    vb = _decimal_run(1, N - 1, T_m, L, high, T_m)
    assert abs(vb[T_m - 1]) < D("1e-50") and all(v < 0 for v in vb[: T_m - 1])


def test_paper_eq14_agrees_away_from_equality() -> None:
    for N in range(1, 17):
        for L in [0.3, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 30.0]:
            for T_m in range(2, 40):
                lhs = N / math.expm1(T_m / L)
                rhs = (1 + (N - 1) * math.exp(-T_m / L)) / math.expm1((T_m - 1) / L)
                if abs(lhs - rhs) <= 1e-9 * max(lhs, rhs):
                    continue
                assert admissible(N, L, T_m) == (lhs < rhs), (N, L, T_m)


def test_special_cases_and_monotonicity() -> None:
    for N in GRID_N:
        for L in [0.5, 1.0, 5.0, 20.0]:
            # T_m = 0: impossible; even a huge tick fires one step late
            assert tick_ratio_interval(N, L, 0) is None and not admissible(N, L, 0)
            out = simulate_leaky_maxpool(torch.zeros(1, N, dtype=torch.int64), 0, L, 1.0, 1e12, 5)
            assert out.item() == 1
            # T_m = 1: always admissible, [N e^{-1/L}, inf)
            iv = tick_ratio_interval(N, L, 1)
            assert iv is not None and math.isinf(iv.high)
            assert math.isclose(iv.low, N * math.exp(-1.0 / L), rel_tol=1e-12)
            # admissibility is monotone in T_m and max_admissible_tm is its last True
            flags = [admissible(N, L, t) for t in range(1, 200)]
            t_max = max_admissible_tm(N, L)
            if t_max is None:
                assert all(flags)
                assert N * math.exp(-1.0 / L) <= 1.0
            else:
                assert flags == [t <= t_max for t in range(1, 200)]


# ------------------------------------------------------------------ (2) random patterns
def _random_patterns(N: int, T_m: int, R: int, gen: torch.Generator) -> torch.Tensor:
    """Random spike times in [0, T_m] with max exactly T_m (extremes mixed in)."""
    pats = torch.randint(0, T_m + 1, (R, N), generator=gen)
    pats[torch.arange(R), torch.randint(0, N, (R,), generator=gen)] = T_m
    pats[0] = T_m
    pats[1] = 0
    pats[1, -1] = T_m
    return pats


def test_random_patterns_fire_at_tm() -> None:
    gen = torch.Generator().manual_seed(0)
    for N in [1, 2, 3, 4, 6, 9, 16]:
        for L in [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0]:
            for T_m in range(1, 13):
                iv = tick_ratio_interval(N, L, T_m)
                if iv is None:
                    continue
                pats = _random_patterns(N, T_m, 500, gen)
                out = simulate_leaky_maxpool(pats, T_m, L, 1.0, iv.midpoint(), T_m + 3)
                assert bool((out == T_m).all()), (N, L, T_m)
                # scale invariance: only the ratio matters
                out2 = simulate_leaky_maxpool(pats, T_m, L, 0.37, 0.37 * iv.midpoint(), T_m + 3)
                assert torch.equal(out, out2)


@settings(max_examples=150, deadline=None)
@given(
    N=st.integers(1, 12),
    L=st.floats(0.3, 20.0),
    T_m=st.integers(1, 25),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_patterns_hypothesis(N: int, L: float, T_m: int, seed: int) -> None:
    iv = tick_ratio_interval(N, L, T_m)
    if iv is None:
        return
    gen = torch.Generator().manual_seed(seed)
    pats = _random_patterns(N, T_m, 64, gen)
    out = simulate_leaky_maxpool(pats, T_m, L, 1.0, iv.midpoint(), T_m + 3)
    assert bool((out == T_m).all())


def test_simulator_matches_closed_form() -> None:
    """tau* = ceil(L ln(1 + S C_L / r)), S = sum exp(-(T_m - t_i)/L) (eq. 7)."""
    gen = torch.Generator().manual_seed(1)
    for N in [1, 3, 9]:
        for L in [1.0, 2.5, 5.0]:
            for T_m in [1, 4, 9]:
                pats = torch.randint(0, T_m + 1, (300, N), generator=gen)
                r = torch.exp(torch.empty(300, dtype=torch.float64).uniform_(-6, 2, generator=gen))
                S = torch.exp(-(T_m - pats.to(torch.float64)) / L).sum(-1)
                x = L * torch.log1p(S * (-math.expm1(-1.0 / L)) / r)
                safe = (x - x.round()).abs() > 1e-7
                expect = torch.ceil(x).to(torch.int64)
                expect[expect > 200] = -1
                out = simulate_leaky_maxpool(pats, T_m, L, 1.0, r, 200)
                assert torch.equal(out[safe], expect[safe])


def test_simulator_fires_at_release_when_nonnegative() -> None:
    pats = torch.tensor([[0, 1], [1, 1]])
    out = simulate_leaky_maxpool(pats, 1, 2.0, -1.0, 0.0, 3)  # excitatory inputs
    assert out.tolist() == [0, 0]
    out = simulate_leaky_maxpool(pats, 1, 2.0, 1.0, 0.0, 50)  # no tick: never fires
    assert out.tolist() == [-1, -1]
    out = simulate_leaky_maxpool(torch.ones(2, 3, 4, dtype=torch.int32), 1, 2.0, 1.0, 10.0, 5)
    assert out.shape == (2, 3) and out.dtype == torch.int64


def test_interval_helpers_and_table() -> None:
    iv = TickRatioInterval(1.0, 4.0, True, False)
    assert iv.contains(1.0) and iv.contains(3.999) and not iv.contains(4.0)
    assert not iv.contains(0.999) and iv.midpoint() == 2.0
    inf_iv = TickRatioInterval(3.0, math.inf, True, False)
    assert inf_iv.midpoint() == 6.0 and inf_iv.contains(1e300)
    rows = solve_table([4], [5.0], list(range(0, 11)))
    assert [row.interval is not None for row in rows] == [False, True, True, True] + [False] * 7
    assert rows[2].N == 4 and rows[2].T_m == 2
    text = format_table(rows)
    assert text.count("\n") == len(rows) + 1 and "| 4 | 5 | 3 | yes |" in text


# ------------------------------------------------------------------ (3) invalid inputs
@pytest.mark.parametrize(
    ("N", "L", "T_m"),
    [
        (0, 5.0, 3),
        (-2, 5.0, 3),
        (2.5, 5.0, 3),
        (True, 5.0, 3),
        ("4", 5.0, 3),
        (4, 0.0, 3),
        (4, -1.0, 3),
        (4, math.inf, 3),
        (4, math.nan, 3),
        (4, "x", 3),
        (4, 5.0, -1),
        (4, 5.0, 2.0),
        (4, 5.0, None),
    ],
)
def test_invalid_inputs_raise(N: object, L: object, T_m: object) -> None:
    with pytest.raises(ValueError):
        tick_ratio_interval(N, L, T_m)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        admissible(N, L, T_m)  # type: ignore[arg-type]


def test_invalid_simulation_inputs_raise() -> None:
    good = torch.tensor([[0, 2]])
    bad_calls = [
        dict(spike_times=good.float()),
        dict(spike_times=torch.tensor([[0, 3]])),  # > T_m
        dict(spike_times=torch.tensor([[-1, 2]])),  # silence not allowed
        dict(spike_times=torch.zeros((2, 0), dtype=torch.int64)),
        dict(spike_times=[[0, 2]]),
        dict(T_m=-1),
        dict(L=0.0),
        dict(max_steps=-1),
        dict(w_k=math.nan),
        dict(w_tick=math.inf),
        dict(w_tick=torch.ones(3)),  # does not broadcast to [1]
    ]
    for override in bad_calls:
        kwargs: dict[str, object] = dict(
            spike_times=good, T_m=2, L=5.0, w_k=1.0, w_tick=1.0, max_steps=5
        )
        kwargs.update(override)
        with pytest.raises(ValueError):
            simulate_leaky_maxpool(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        max_admissible_tm(0, 5.0)
    with pytest.raises(ValueError):
        tick_ratio_interval(4, 1e-3, 800)  # admissible, but T_m/L overflows float64
