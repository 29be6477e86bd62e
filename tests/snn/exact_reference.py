"""An independent, exact reference for spike times: the yardstick the engine is tested against.

Nothing here comes from ``tdsnn``: only :mod:`fractions`, :mod:`decimal`, :mod:`math`,
numpy and torch (torch only to hold tensors and to gather receptive fields with a float64
``unfold``). The definitions (the "certified reference"):

* A spike at integer time ``t`` stands for the float64 number
  ``g = float64(exp(t * (1/L)))``: ``t`` times the float64 reciprocal ``1/L``, then float64
  ``exp`` (:func:`value`). Zero padding of a conv contributes ``g = 0``.
* The pre-activation of a neuron, ``A = sum_i W_i g_i + b`` with float64 weights, inputs and
  bias, is computed *exactly*, as a rational number (:func:`exact_preactivation`).
* Its spike time is ``T = 0`` for ``A <= 0``, else ``T = ceil(L ln(1 + A))``, decided
  exactly (:func:`exact_spike_time`). ``L`` is the float64 number given, ``t / L`` an exact
  rational.

:func:`reference_layer_times` applies this to every neuron of a Conv2d or Linear layer. To
be fast on large layers it first evaluates every neuron in float64 and keeps that result
only where a rigorous error bound proves that rounding cannot change ``T``; the rest are
recomputed exactly. :func:`boundary_linear` and :func:`boundary_conv` build layers in which
chosen neurons sit, provably, within a given relative distance of a level boundary
``exp(k/L) - 1``.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "boundary_conv",
    "boundary_linear",
    "exact_preactivation",
    "exact_spike_time",
    "level_boundary",
    "reference_layer_times",
    "value",
]

_U64 = 2.0**-53  # unit roundoff of float64
_TINY64 = 2.0**-1074  # smallest positive float64 (subnormal)
_BOUNDARY_MARGIN = 1e-9  # relative: the float64 boundaries exp(k/L)-1 are good to ~1e-13
_CHUNK = 1 << 22  # elements per gathered block of receptive fields


# --------------------------------------------------------------------------------------
# Values and exact arithmetic
# --------------------------------------------------------------------------------------


def value(t: torch.Tensor | Sequence[int] | int, L: float) -> torch.Tensor:
    """The float64 value ``g = exp(t * (1/L))`` of integer spike times ``t`` (eq. 11).

    Exactly ``torch.exp(torch.tensor(t, dtype=float64) * (1.0 / L))``: ``t`` is multiplied
    by the float64 reciprocal of ``L`` and the product goes through float64 ``exp``.
    """
    t64 = torch.as_tensor(t).to(torch.float64)
    return torch.exp(t64 * (1.0 / float(L)))


def _as_float64_array(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError("exact arithmetic needs finite numbers")
    return a


def _mantissas(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers ``m`` and ``e`` with ``a == m * 2**e`` exactly (also for subnormals)."""
    frac, exp = np.frexp(a)  # a = frac * 2**exp, 0.5 <= |frac| < 1 (or frac = 0)
    m = np.ldexp(frac, 53).astype(np.int64)  # exact: at most 53 significant bits
    return m, exp.astype(np.int64) - 53


def _exact_dot(w: np.ndarray, v: np.ndarray) -> Fraction:
    """``sum_i w_i v_i`` of two float64 vectors as an exact rational (Python integers)."""
    keep = (w != 0) & (v != 0)
    if not keep.any():
        return Fraction(0)
    mw, ew = _mantissas(w[keep])
    mv, ev = _mantissas(v[keep])
    e = ew + ev
    emin = int(e.min())
    shifts = (e - emin).tolist()
    total = sum((a * b) << s for a, b, s in zip(mw.tolist(), mv.tolist(), shifts))
    if emin >= 0:
        return Fraction(total << emin)
    return Fraction(total, 1 << -emin)


def exact_preactivation(
    weight_row: Sequence[float] | np.ndarray | torch.Tensor,
    values: Sequence[float] | np.ndarray | torch.Tensor,
    bias: float,
) -> Fraction:
    """The exact rational ``sum_i weight_row[i] * values[i] + bias``, without any rounding.

    Every input is read as a float64 number (float32 converts exactly); each float64 is the
    exact rational ``m * 2**e``, and the sum is formed with Python integers on a common
    exponent, so the result is exact whatever the magnitudes (subnormals included).
    """
    w = _as_float64_array(weight_row)
    v = _as_float64_array(values)
    if w.shape != v.shape:
        raise ValueError(f"weight_row has {w.size} entries, values {v.size}")
    b = float(bias)
    if not math.isfinite(b):
        raise ValueError("exact arithmetic needs a finite bias")
    return _exact_dot(w, v) + Fraction(b)


def exact_spike_time(A: Fraction | int | float, L: float) -> int:
    """The exact spike time: 0 for ``A <= 0``, else the least integer ``t >= 0`` with
    ``L ln(1 + A) <= t``, i.e. ``ceil(L ln(1 + A))`` for the rational ``A``.

    ``y = L ln(1 + A)`` is evaluated with :mod:`decimal` at 50 significant digits (the
    decimal ``ln`` is correctly rounded; the division giving ``1 + A`` and the product with
    ``L`` round once each, so ``y`` is off by well under ``1e-(p-2) (|y| + |L|)`` at
    precision ``p``). If ``y`` lies within ``1e-(p-10) max(1, |y|, |L|)`` of an integer, the
    evaluation is repeated at twice the precision, up to 2000 digits, then
    :class:`ArithmeticError` is raised. A tie ``L ln(1 + A) = t`` cannot happen for
    rational ``A > 0``: ``exp`` of a non-zero rational number is irrational
    (Lindemann-Weierstrass), so the loop always ends for any non-pathological ``A``.
    """
    A = Fraction(A)
    if A <= 0:
        return 0
    L = float(L)
    if not (math.isfinite(L) and L > 0):
        raise ValueError(f"L must be a positive finite number, got {L!r}")
    x = 1 + A
    prec = 50
    while prec <= 2000:
        with decimal.localcontext() as ctx:
            ctx.prec = prec
            ctx.Emax = decimal.MAX_EMAX
            ctx.Emin = decimal.MIN_EMIN
            xd = decimal.Decimal(x.numerator) / decimal.Decimal(x.denominator)
            y = decimal.Decimal(L) * xd.ln()
            nearest = y.to_integral_value(rounding=decimal.ROUND_HALF_EVEN)
            scale = max(decimal.Decimal(1), abs(y), decimal.Decimal(L))
            tol = decimal.Decimal(10) ** (10 - prec) * scale
            if abs(y - nearest) > tol:
                return max(0, int(y.to_integral_value(rounding=decimal.ROUND_CEILING)))
        prec *= 2
    raise ArithmeticError(f"L ln(1 + A) is within 1e-1990 of an integer for A = {A}")


def level_boundary(k: int, L: float, digits: int = 60) -> Fraction:
    """``exp(k/L) - 1`` (``k/L`` exact) as a rational, correct to ``digits`` significant
    digits (decimal ``exp`` is correctly rounded)."""
    with decimal.localcontext() as ctx:
        ctx.prec = digits + 5
        x = decimal.Decimal(int(k)) / decimal.Decimal(float(L))
        return Fraction(x.exp() - 1)


# --------------------------------------------------------------------------------------
# Layer reference
# --------------------------------------------------------------------------------------


def _pair(x: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    a, b = x
    return (int(a), int(b))


def _conv_pads(
    padding: int | str | Sequence[int], kernel: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding, as ``nn.Conv2d`` applies it."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":  # PyTorch puts the odd extra column/row on the right/bottom
        th = dilation[0] * (kernel[0] - 1)
        tw = dilation[1] * (kernel[1] - 1)
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    if isinstance(padding, str):
        raise ValueError(f"unknown padding {padding!r}")
    ph, pw = _pair(padding)
    return (pw, pw, ph, ph)


class _Rows:
    """Per output neuron: its weight row, its input values (float64) and its bias."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        t_in: torch.Tensor,
        L: float,
        kind: str,
        stride: int | Sequence[int],
        padding: int | str | Sequence[int],
        dilation: int | Sequence[int],
        groups: int,
    ) -> None:
        t = torch.as_tensor(t_in)
        if t.is_floating_point() and not torch.equal(t, torch.round(t)):
            raise ValueError("t_in must hold integer spike times")
        w = weight.detach().cpu().to(torch.float64)
        out = w.shape[0]
        self.bias = (
            torch.zeros(out, dtype=torch.float64)
            if bias is None
            else bias.detach().cpu().to(torch.float64).reshape(out)
        )
        g = value(t.cpu(), L)
        if kind == "linear":
            if g.dim() != 2 or w.dim() != 2 or w.shape[1] != g.shape[1]:
                raise ValueError(f"linear: weight {tuple(w.shape)}, t_in {tuple(g.shape)}")
            self.out_shape = (g.shape[0], out)
            self.W = w
            self.cols = g.unsqueeze(-1)  # (N, F, 1): one "position"
            self.per_group = w.shape[1]
            self.out_per_group = out
        elif kind in ("conv", "conv2d"):
            if g.dim() != 4 or w.dim() != 4:
                raise ValueError(f"conv: weight {tuple(w.shape)}, t_in {tuple(g.shape)}")
            kernel = (w.shape[2], w.shape[3])
            dil = _pair(dilation)
            st = _pair(stride)
            if g.shape[1] != w.shape[1] * groups or out % groups:
                raise ValueError("channels do not match groups")
            g = F.pad(g, _conv_pads(padding, kernel, dil))  # padding: silence, g = 0
            cols = F.unfold(g, kernel, dilation=dil, padding=0, stride=st)
            ho = (g.shape[2] - dil[0] * (kernel[0] - 1) - 1) // st[0] + 1
            wo = (g.shape[3] - dil[1] * (kernel[1] - 1) - 1) // st[1] + 1
            assert cols.shape[2] == ho * wo
            self.out_shape = (g.shape[0], out, ho, wo)
            self.W = w.reshape(out, -1)  # rows ordered (channel, kh, kw), as unfold's
            self.cols = cols  # (N, C*kh*kw, P)
            self.per_group = w.shape[1] * kernel[0] * kernel[1]
            self.out_per_group = out // groups
        else:
            raise ValueError(f"kind must be 'linear' or 'conv2d', got {kind!r}")
        self.positions = self.cols.shape[2]
        self.numel = math.prod(self.out_shape)

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weights (k, fan_in), inputs (k, fan_in), bias (k,)) of flat output indices."""
        out = self.W.shape[0]
        pos = idx % self.positions
        o = (idx // self.positions) % out
        n = idx // (self.positions * out)
        rows = (o // self.out_per_group) * self.per_group
        rows = rows[:, None] + torch.arange(self.per_group)[None, :]
        x = self.cols[n[:, None], rows, pos[:, None]]
        return self.W[o], x, self.bias[o]


def _gamma(n: int) -> float:
    nu = n * _U64
    if nu >= 0.5:
        return math.inf
    return nu / (1 - nu)


def _float64_pass(
    W: torch.Tensor, X: torch.Tensor, b: torch.Tensor, L: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 spike times and a mask of the neurons for which they are *proven* exact.

    Rigorous bound (Higham, Accuracy and Stability of Numerical Algorithms, sec. 3.1): a
    float64 inner product of ``n`` terms, in any order of summation, with or without FMA, is
    off by at most ``gamma_n sum_i |w_i g_i|``, ``gamma_n = n u / (1 - n u)``, ``u = 2^-53``;
    with the bias as one more term, ``n = fan_in + 1``. Underflowing products add at most
    ``2^-1075`` each. The computed ``S = sum |w_i g_i| + |b|`` is itself at least
    ``(1 - gamma_n)`` times the true one, so ``E = gamma_n S / (1 - gamma_n) + n 2^-1074``
    (inflated by 1e-6 for its own rounding) bounds ``|A_float64 - A_exact|``.

    The float64 candidate ``t = ceil(L log1p(A))`` is accepted when the whole interval
    ``[A - E, A + E]`` lies in its level ``(B_{t-1}, B_t]``, ``B_k = exp(k/L) - 1``, with
    ``B_k`` taken from float64 ``expm1(k * (1/L))`` and widened by a relative margin of
    1e-9: the float64 boundary is off by at most about ``(k/L + 2) 2^-52`` relative (the
    argument ``k * (1/L)`` carries two roundings, ``expm1`` about one ulp), i.e. below
    1.6e-13 for any ``k/L <= 709`` where ``exp`` is finite, far inside the margin; the
    margin also absorbs the rounding of the few comparisons. ``B_0 = 0`` is exact and gets
    no margin. Everything else is flagged for the exact path.
    """
    n = W.shape[1] + 1
    gamma = _gamma(n)
    A = (W * X).sum(dim=1) + b
    S = (W.abs() * X.abs()).sum(dim=1) + b.abs()
    E = (gamma / (1 - gamma) * S + n * _TINY64) * (1 + 1e-6)
    t = torch.ceil(L * torch.log1p(A.clamp(min=0)))
    ok = torch.isfinite(A) & torch.isfinite(E) & torch.isfinite(t)
    t = torch.where(ok, t, torch.zeros_like(t))
    inv = 1.0 / L
    hi = torch.expm1(t * inv)
    lo = torch.expm1((t - 1).clamp(min=0) * inv)
    hi_in = hi - _BOUNDARY_MARGIN * (1 + hi)
    lo_out = torch.where(t > 1, lo + _BOUNDARY_MARGIN * (1 + lo), torch.zeros_like(lo))
    zero = (t == 0) & (A + E <= 0)
    positive = (t >= 1) & (A - E > lo_out) & (A + E < hi_in)
    ok &= zero | positive
    return t.to(torch.int64), ok


def reference_layer_times(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    t_in: torch.Tensor,
    L: float,
    *,
    kind: str,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    neurons: torch.Tensor | None = None,
    stats: dict | None = None,
) -> torch.Tensor:
    """Exact spike times (int64) of a Conv2d (``kind="conv2d"``) or Linear (``"linear"``)
    layer's output neurons, given integer input spike times ``t_in`` ((N, C, H, W) or
    (N, F)).

    ``weight``/``bias`` as in ``nn.Conv2d``/``nn.Linear`` (any float dtype, read exactly as
    float64); ``padding`` an int, a pair, ``"valid"`` or ``"same"`` (zero padding, i.e.
    ``g = 0``). Without ``neurons`` the result has the layer's output shape; with
    ``neurons`` (flat indices into that shape) it is 1-D, in their order.

    Each neuron is first evaluated in float64; its float64 time is kept only where the
    rigorous bound of :func:`_float64_pass` proves it equal to the exact one, and the others
    are recomputed with :func:`exact_preactivation` and :func:`exact_spike_time`. If
    ``stats`` is a dict, it receives ``neurons`` and ``exact`` (how many took the exact
    path).
    """
    L = float(L)
    rows = _Rows(weight, bias, t_in, L, kind, stride, padding, dilation, groups)
    if neurons is None:
        idx = torch.arange(rows.numel, dtype=torch.int64)
    else:
        idx = torch.as_tensor(neurons, dtype=torch.int64).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= rows.numel):
            raise IndexError("neuron index out of range")
    times = torch.empty(idx.numel(), dtype=torch.int64)
    step = max(1, _CHUNK // max(1, rows.per_group))
    exact = 0
    for start in range(0, idx.numel(), step):
        chunk = idx[start : start + step]
        W, X, b = rows.gather(chunk)
        t, ok = _float64_pass(W, X, b, L)
        for j in torch.nonzero(~ok).reshape(-1).tolist():
            A = exact_preactivation(W[j].numpy(), X[j].numpy(), float(b[j]))
            t[j] = exact_spike_time(A, L)
            exact += 1
        times[start : start + step] = t
    if stats is not None:
        stats["neurons"] = int(idx.numel())
        stats["exact"] = exact
    if neurons is None:
        return times.reshape(rows.out_shape)
    return times


# --------------------------------------------------------------------------------------
# Engineered boundary cases
# --------------------------------------------------------------------------------------


def _f32(x: float) -> float:
    """The float32 number nearest to ``x`` (as a Python float)."""
    return float(np.float32(x))


def _place(
    w: np.ndarray,
    patterns: list[np.ndarray],
    targets: list[Fraction],
    tols: list[Fraction],
    slots: list[int],
) -> tuple[np.ndarray, float]:
    """Set the bias and some weights so that ``w . patterns[p] + b`` is within ``tols[p]``
    of ``targets[p]`` for every p, exactly, with float32-representable values only.

    ``slots`` are weight positions free for tuning (their weights are zeroed first). Stage 0
    solves for the bias and ``P - 1`` slot weights, later stages for ``P`` fresh slots each;
    each solution is rounded to float32 and the residual is recomputed exactly, so every
    stage shrinks it by about ``2^-24`` times the conditioning of the small system: a
    cascade of ever smaller float32 weights reaches any precision float32's range allows.
    """
    w = w.copy()
    w[slots] = 0.0
    P = len(patterns)
    r = [targets[p] - _exact_dot(w, patterns[p]) for p in range(P)]
    b = 0.0
    free = list(slots)
    stage = 0
    while any(abs(r[p]) > tols[p] for p in range(P)):
        take = P - 1 if stage == 0 else P
        if len(free) < take:
            raise RuntimeError("ran out of tuning weights before reaching the target")
        use, free = free[:take], free[take:]
        M = np.array([[pat[s] for s in use] for pat in patterns], dtype=np.float64)
        if stage == 0:
            M = np.concatenate([np.ones((P, 1)), M], axis=1)
        x = np.linalg.solve(M, np.array([float(v) for v in r]))
        x32 = [_f32(v) for v in x]
        if stage == 0:
            b, x32 = x32[0], x32[1:]
            r = [r[p] - Fraction(b) for p in range(P)]
        for s, v in zip(use, x32):
            w[s] = v
            r = [r[p] - Fraction(v) * Fraction(float(patterns[p][s])) for p in range(P)]
        stage += 1
        if stage > 40:
            raise RuntimeError("the cascade does not converge")
    return w, b


def _digits(within: float) -> int:
    return 40 + max(0, math.ceil(-math.log10(within)))


def _natural_level(S: float, L: float) -> int:
    return max(1, math.ceil(L * math.log1p(max(S, 0.0))))


def _check_boundary_neurons(
    A: list[Fraction], k: list[int], above: list[bool], L: float, within: float
) -> float:
    """Assert the claims for each neuron; return the largest relative distance reached."""
    worst = 0.0
    digits = _digits(within)
    for a, kk, up in zip(A, k, above):
        B = level_boundary(kk, L, digits)
        rel = abs(a - B) / (1 + B)
        assert 0 < rel <= Fraction(within), (float(rel), within)
        assert (a > B) == up
        assert exact_spike_time(a, L) == (kk + 1 if up else kk)
        worst = max(worst, float(rel))
    return worst


def boundary_linear(
    n_in: int = 4096,
    n_out: int = 1000,
    n_boundary: int = 300,
    L: float = 5.0,
    seed: int = 0,
    within: float = 1e-20,
    t_max: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A Linear layer with ``n_boundary`` output neurons within ``within`` (relative) of a
    level boundary, for one input sample.

    Returns ``(weight (n_out, n_in) float64, bias (n_out,) float64, t_in (1, n_in) int64,
    boundary_neurons)``. Input spike times are uniform in ``0..t_max``; weights are
    ``N(0, 1/n_in)`` rounded to float32 and every weight and bias is float32-representable
    (so a float32 ``nn.Linear`` holds the very same layer). For each boundary neuron, with
    ``B_k = exp(k/L) - 1`` at its natural level ``k >= 1``, the exact pre-activation obeys
    ``3/8 within <= |A - B_k| / (1 + B_k) <= 5/8 within``, half of them above the boundary
    (exact time ``k + 1``), half at or below (time ``k``); this is asserted with exact
    arithmetic before returning. ``boundary_neurons`` lists them (sorted), and, in that
    order, ``boundary_linear.last`` holds ``k``, the side (``above``) and the exact spike
    time (``times``) of each, plus the worst relative distance reached (``worst``).

    Precision reached: the requested one (1e-20 by default, down to about 1e-37). A float32
    or float64 bias alone could only get within one ulp of ``B_k - S`` (2^-24 or 2^-53
    relative); here the bias is followed by a cascade of tuning weights on eight reserved
    inputs per boundary neuron (:func:`_place`): each is the float32 nearest to the
    remaining exact residual over its input value, so each shrinks the residual by about
    2^-24 (1e-20 takes the bias and two or three tuning weights, of sizes ~1e-7, ~1e-14 and
    down to ~1e-20). The boundary itself is evaluated with :mod:`decimal` at 60 digits.
    """
    rng = np.random.default_rng(seed)
    L = float(L)
    t_in = rng.integers(0, t_max + 1, size=(1, n_in)).astype(np.int64)
    g = value(torch.from_numpy(t_in[0]), L).numpy()
    W = (rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)).astype(np.float32)
    W = W.astype(np.float64)
    bias = (rng.standard_normal(n_out) * 0.1).astype(np.float32).astype(np.float64)
    chosen = np.sort(rng.choice(n_out, size=n_boundary, replace=False))
    above = np.zeros(n_boundary, dtype=bool)
    above[rng.choice(n_boundary, size=n_boundary // 2, replace=False)] = True
    digits = _digits(within)
    ks: list[int] = []
    for j, o in enumerate(chosen.tolist()):
        slots = rng.choice(n_in, size=8, replace=False).tolist()
        w = W[o].copy()
        w[slots] = 0.0
        k = _natural_level(float(w @ g), L)
        B = level_boundary(k, L, digits)
        off = Fraction(within) / 2 * (1 + B)
        target = B + off if above[j] else B - off
        W[o], bias[o] = _place(W[o], [g], [target], [Fraction(within) / 8 * (1 + B)], slots)
        ks.append(k)
    A = [exact_preactivation(W[o], g, bias[o]) for o in chosen.tolist()]
    worst = _check_boundary_neurons(A, ks, above.tolist(), L, within)
    assert np.array_equal(W.astype(np.float32).astype(np.float64), W)
    assert np.array_equal(bias.astype(np.float32).astype(np.float64), bias)
    boundary_linear.last = {
        "k": ks,
        "above": above.tolist(),
        "times": [k + 1 if a else k for k, a in zip(ks, above.tolist())],
        "worst": worst,
    }
    return (
        torch.from_numpy(W),
        torch.from_numpy(bias),
        torch.from_numpy(t_in),
        torch.from_numpy(chosen).to(torch.int64),
    )


def boundary_conv(
    n: int = 16,
    c_in: int = 8,
    c_out: int = 8,
    size: int = 12,
    kernel: int = 3,
    *,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
    groups: int = 1,
    share: float = 0.05,
    within: float = 1e-12,
    L: float = 5.0,
    seed: int = 0,
    t_max: int = 6,
    big_pixels: float = 0.0,
    big_value: int = 40,
    n_patterns: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A Conv2d layer in which about ``share`` of the output neurons sit within ``within``
    (relative) of a level boundary.

    Returns ``(weight (c_out, c_in/groups, kernel, kernel) float64, bias (c_out,) float64,
    t_in (n, c_in, size, size) int64, boundary_neurons)`` (flat indices into the output,
    sorted). Every weight and bias is float32-representable.

    Weights and bias are shared by all positions, so a neuron cannot be tuned on its own.
    Instead ``n_patterns`` receptive-field patches of spike times are drawn, and the bias and
    a few weights of every output channel are set (:func:`_place`) so that each patch puts
    that channel within ``within`` of a boundary ``B_k = exp(k/L) - 1``:
    ``3/8 within <= |A - B_k| / (1 + B_k) <= 5/8 within``, on a side drawn per (channel,
    patch), balanced overall. The patches are then painted, at non-overlapping positions
    whose field lies inside the image, until ``share`` of the output neurons see one of them.
    Every neuron whose field (per group) equals a patch is a boundary neuron; the claims are
    asserted exactly for all of them.

    Background spike times are uniform in ``0..t_max``. With ``big_pixels > 0`` that share of
    input pixels (of the background and of each patch, at least one per group slice of
    each patch) fire at ``big_value`` instead: inputs far larger than the rest (``g =
    exp(40/5) ~ 3000`` against at most ``exp(6/5) ~ 3.3``), which inflates the error bound
    of the boundary neurons; their bias then takes the common part of the large sums (a few
    hundred) and tuned weights reach ~10.

    Each channel needs ``P - 1 + P s`` tuning weights (``s = 2 + ceil(-log10(within)/6)``
    stages), so ``n_patterns`` is lowered where the fan-in is too small for them. For each
    boundary neuron (in the order of ``boundary_neurons``) ``boundary_conv.last`` holds
    ``k``, the side (``above``) and the exact spike time (``times``), plus the worst relative
    distance reached (``worst``, about ``within / 2``) and the share of neurons reached.
    """
    rng = np.random.default_rng(seed)
    L = float(L)
    if c_in % groups or c_out % groups:
        raise ValueError("channels must divide by groups")
    cg = c_in // groups
    og = c_out // groups
    kk = kernel * kernel
    fan = cg * kk
    # Tuning weights needed per channel: P - 1 with the bias, then P per further stage,
    # each gaining about 2^-24 (take 6 digits, for the conditioning). Fewer patterns if the
    # fan-in is too small for them.
    stages = 2 + math.ceil(max(0.0, -math.log10(within)) / 6)
    n_patterns = max(1, min(n_patterns, (fan + 1) // (stages + 1)))
    n_slots = min(fan, n_patterns - 1 + n_patterns * stages)

    def draw_times(shape: tuple[int, ...]) -> np.ndarray:
        t = rng.integers(0, t_max + 1, size=shape)
        if big_pixels > 0:
            t[rng.random(shape) < big_pixels] = big_value
        return t.astype(np.int64)

    t_in = draw_times((n, c_in, size, size))
    patches = draw_times((n_patterns, c_in, kernel, kernel))
    if big_pixels > 0:
        for p in range(n_patterns):
            for j in range(groups):
                block = patches[p, j * cg : (j + 1) * cg]
                if not (block == big_value).any():
                    c, y, x = (int(rng.integers(0, s)) for s in block.shape)
                    block[c, y, x] = big_value

    W = (rng.standard_normal((c_out, cg, kernel, kernel)) / math.sqrt(fan)).astype(np.float32)
    W = W.astype(np.float64).reshape(c_out, fan)
    bias = np.zeros(c_out, dtype=np.float64)
    digits = _digits(within)
    sides = np.zeros((c_out, n_patterns), dtype=bool)
    flat = sides.reshape(-1)
    flat[rng.choice(flat.size, size=flat.size // 2, replace=False)] = True
    ks = np.zeros((c_out, n_patterns), dtype=np.int64)
    for o in range(c_out):
        j = o // og
        pats = [
            value(torch.from_numpy(patches[p, j * cg : (j + 1) * cg].reshape(-1)), L).numpy()
            for p in range(n_patterns)
        ]
        # Tuning slots: of a few random draws, take the one whose stage-0 solution (bias and
        # P - 1 weights) is smallest, so the tuned weights stay close to the others in size.
        best = None
        for _ in range(30):
            slots = rng.choice(fan, size=n_slots, replace=False).tolist()
            w = W[o].copy()
            w[slots] = 0.0
            S = [float(w @ pat) for pat in pats]
            shift = max(0.0, -min(S)) + 0.05 * (1 + max(abs(s) for s in S))
            levels = [_natural_level(s + shift, L) for s in S]
            r = [math.expm1(k / L) - s for k, s in zip(levels, S)]
            M = np.array([[1.0] + [pat[s] for s in slots[: n_patterns - 1]] for pat in pats])
            if np.linalg.cond(M) > 1e6:
                continue
            x = np.linalg.solve(M, np.array(r))
            size_ = float(np.abs(x[1:]).max(initial=0.0))
            if best is None or size_ < best[0]:
                best = (size_, slots, levels)
        if best is None:
            raise RuntimeError("no well-conditioned choice of tuning weights; use fewer patterns")
        _, slots, levels = best
        targets, tols = [], []
        for p, k in enumerate(levels):
            B = level_boundary(k, L, digits)
            off = Fraction(within) / 2 * (1 + B)
            targets.append(B + off if sides[o, p] else B - off)
            tols.append(Fraction(within) / 8 * (1 + B))
            ks[o, p] = k
        W[o], bias[o] = _place(W[o], pats, targets, tols, slots)
    weight = W.reshape(c_out, cg, kernel, kernel)

    # Paint the patches at random, non-overlapping positions with fields inside the image.
    pads = _conv_pads(padding, (kernel, kernel), (dilation, dilation))
    span = dilation * (kernel - 1) + 1
    hp = size + pads[2] + pads[3]
    ho = (hp - span) // stride + 1
    positions = ho * ho
    total = n * c_out * positions
    want = math.ceil(share * total / c_out)  # painted positions (all channels at each)
    used = np.zeros((n, size, size), dtype=bool)
    offs = np.arange(kernel) * dilation
    candidates = [
        (s, y, x)
        for s in range(n)
        for y in range(ho)
        for x in range(ho)
        if 0 <= y * stride - pads[2]
        and y * stride - pads[2] + span <= size
        and 0 <= x * stride - pads[0]
        and x * stride - pads[0] + span <= size
    ]
    order = rng.permutation(len(candidates))
    painted = 0
    for i in order.tolist():
        if painted >= want:
            break
        s, y, x = candidates[i]
        ys = y * stride - pads[2] + offs
        xs = x * stride - pads[0] + offs
        if used[s][np.ix_(ys, xs)].any():
            continue
        used[s][np.ix_(ys, xs)] = True
        t_in[s][:, ys[:, None], xs[None, :]] = patches[int(rng.integers(0, n_patterns))]
        painted += 1

    # Find every neuron whose field (in its group) equals a patch; -1 marks padding.
    tt = F.pad(torch.from_numpy(t_in).double(), pads, value=-1.0)
    cols = F.unfold(tt, kernel, dilation=dilation, stride=stride)  # (n, c_in*kk, P)
    hits = torch.zeros((n, c_out, positions), dtype=torch.bool)
    which = torch.full((n, c_out, positions), -1, dtype=torch.int64)
    for j in range(groups):
        block = cols[:, j * fan : (j + 1) * fan, :]
        for p in range(n_patterns):
            pat = torch.from_numpy(patches[p, j * cg : (j + 1) * cg].reshape(-1)).double()
            match = (block == pat[None, :, None]).all(dim=1)  # (n, P)
            for o in range(j * og, (j + 1) * og):
                new = match & ~hits[:, o]
                which[:, o][new] = p
                hits[:, o] |= match
    boundary = torch.nonzero(hits.reshape(-1)).reshape(-1)
    pats_of = which.reshape(-1)[boundary]
    chan = (boundary // positions) % c_out
    # Verify exactly: one exact evaluation per (channel, patch), and the fields themselves.
    rows = _Rows(
        torch.from_numpy(weight),
        torch.from_numpy(bias),
        torch.from_numpy(t_in),
        L,
        "conv2d",
        stride,
        padding,
        dilation,
        groups,
    )
    Wr, Xr, br = rows.gather(boundary)
    cache: dict[tuple[int, int], Fraction] = {}
    kl, up = [], []
    for i in range(boundary.numel()):
        o, p = int(chan[i]), int(pats_of[i])
        key = (o, p)
        if key not in cache:
            cache[key] = exact_preactivation(Wr[i].numpy(), Xr[i].numpy(), float(br[i]))
        j = o // og
        pat_g = value(torch.from_numpy(patches[p, j * cg : (j + 1) * cg].reshape(-1)), L)
        assert torch.equal(Xr[i], pat_g)
        kl.append(int(ks[o, p]))
        up.append(bool(sides[o, p]))
    worst = _check_boundary_neurons(
        list(cache.values()),
        [int(ks[o, p]) for o, p in cache],
        [bool(sides[o, p]) for o, p in cache],
        L,
        within,
    )
    assert np.array_equal(weight.astype(np.float32).astype(np.float64), weight)
    assert np.array_equal(bias.astype(np.float32).astype(np.float64), bias)
    boundary_conv.last = {
        "k": kl,
        "above": up,
        "times": [k + 1 if a else k for k, a in zip(kl, up)],
        "worst": worst,
        "share": boundary.numel() / total,
        "painted": painted,
    }
    return (
        torch.from_numpy(weight),
        torch.from_numpy(bias),
        torch.from_numpy(t_in),
        boundary,
    )
