"""Leaky max-pool mapping with a ticking neuron (paper eqs. 12-14, design note section 3).

A max-pool output neuron is an LIF neuron with threshold 0 and leak ``a = exp(-1/L)``
per step. Its ``N`` input synapses all have weight ``-w_k`` and its ticking neuron has
weight ``w_tick``; write ``r = w_tick / w_k`` and ``C_L = 1 - exp(-1/L)``.

Discrete model (design note section 2, with the correction to eq. 5):

* inhibitory period ``t = 0 .. T_m`` (``T_il = T_m``, the window's last spike):
  ``V(t) = a V(t-1) + (sum of weights arriving at t)``, ``V(-1) = 0``, no firing.
  So ``V(T_m) = -w_k S`` with ``S = sum_i exp(-(T_m - t_i)/L)``;
* active period, ``tau = 0`` at release: fire at ``tau = 0`` if ``V >= 0``; for
  ``tau >= 1`` ``V(tau) = a V(tau-1) + w_tick``, fire the first time ``V(tau) >= 0``.

Closed form: ``V(tau) >= 0  <=>  tau >= L ln(1 + S C_L / r)``, hence for ``S > 0`` the
firing step is ``tau* = ceil(L ln(1 + S C_L / r))`` (eq. 7 with ``-P = w_k S``).
It increases with ``S``, so over all patterns with ``max t_i = T_m`` the extremes are
(a) all inputs at ``T_m`` (``S = N``) and (b) one at ``T_m``, the others at 0
(``S = 1 + (N-1) exp(-T_m/L)``).

Derived endpoints (``T_m >= 1``). ``tau* = T_m  <=>  T_m - 1 < L ln(1 + S C_L/r) <= T_m``:

* ``L ln(...) <= T_m`` for case (a)  <=>  ``r >= N C_L / (exp(T_m/L) - 1)`` -- the lower
  bound is **inclusive** (at equality ``V(T_m) = 0`` exactly and the neuron fires, the
  paper's strict ``>`` in eq. 13 is conservative);
* ``L ln(...) > T_m - 1`` for case (b)  <=>  ``r < C_L (1 + (N-1) e^{-T_m/L}) /
  (exp((T_m-1)/L) - 1)`` -- the upper bound is **exclusive** (at equality
  ``V(T_m - 1) = 0`` and the neuron fires one step early);
* ``T_m = 1``: the upper bound is ``+inf`` (``V(0) = -w_k S < 0`` never fires at the
  release) and the lower bound simplifies to ``N exp(-1/L)``; always admissible.
* ``T_m = 0``: the output must fire at the release, but ``V(0) = -N w_k < 0`` for every
  ``w_k > 0``; the earliest possible step is ``tau = 1`` (``r -> inf``). No ratio exists
  (formally the lower bound ``N C_L / (e^0 - 1)`` is ``+inf``), so the solver returns
  ``None``; only the degenerate ``w_k = 0`` (no inhibition at all) would be lossless there.

Eq. (14) (interval non-empty, strict since the interval is ``[low, high)``) rearranges,
with ``a = exp(-1/L)`` and ``q = exp(-T_m/L)``, to the overflow-free form

    ``N a - 1 < (N - 1) q (2 - q)``.

The right side decreases with ``T_m``, so admissibility is monotone: it holds for all
``T_m >= 1`` iff ``N exp(-1/L) <= 1`` (``L <= 1/ln N``), otherwise exactly for
``1 <= T_m <= max_admissible_tm(N, L)``.

Note: the paper allows ``T_m < T_il``; an extra ``D = T_il - T_m`` inhibitory steps scale
``S`` by ``exp(-D/L)``, i.e. the whole interval for ``r`` by ``exp(-D/L)``. This module
follows the project model ``T_il = T_m``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .errors import ConversionError

__all__ = [
    "TickRatioInterval",
    "TableRow",
    "admissible",
    "format_table",
    "max_admissible_tm",
    "simulate_leaky_maxpool",
    "solve_table",
    "tick_ratio_interval",
]


# --------------------------------------------------------------------------- validation
def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool):
        raise ConversionError(f"{name} must be an integer, got bool {value!r}")
    try:
        iv = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ConversionError(f"{name} must be an integer, got {value!r}") from None
    if iv < minimum:
        raise ConversionError(f"{name} must be >= {minimum}, got {iv}")
    return iv


def _check_L(L: object) -> float:
    if isinstance(L, bool):
        raise ConversionError(f"L must be a positive finite number, got bool {L!r}")
    try:
        fL = float(L)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConversionError(f"L must be a positive finite number, got {L!r}") from None
    if not (math.isfinite(fL) and fL > 0.0):
        raise ConversionError(f"L must be a positive finite number, got {L!r}")
    return fL


def _c_l(L: float) -> float:
    """``C_L = 1 - exp(-1/L)`` (eq. 13), computed without cancellation."""
    return -math.expm1(-1.0 / L)


# --------------------------------------------------------------------------- interval
@dataclass(frozen=True)
class TickRatioInterval:
    """Admissible set of ``r = w_tick / w_k`` (eq. 13, endpoints per the discrete model)."""

    low: float
    high: float
    low_inclusive: bool
    high_inclusive: bool

    def contains(self, r: float) -> bool:
        """Whether ``r`` lies in the interval, honouring the inclusivity flags."""
        r = float(r)
        above = r >= self.low if self.low_inclusive else r > self.low
        below = r <= self.high if self.high_inclusive else r < self.high
        return above and below

    def midpoint(self) -> float:
        """A safe ratio well inside: geometric mean, or ``2 * low`` if ``high`` is infinite."""
        if math.isinf(self.high):
            return 2.0 * self.low if self.low > 0.0 else 1.0
        return math.sqrt(self.low * self.high)


def admissible(N: int, L: float, T_m: int) -> bool:
    """Eq. (14): whether some ratio ``w_tick / w_k`` maps the max-pool losslessly.

    Uses the equivalent form ``N e^{-1/L} - 1 < (N-1) q (2-q)``, ``q = e^{-T_m/L}``;
    ``T_m = 0`` is never admissible, ``T_m = 1`` (and ``N = 1``) always is.
    """
    N = _check_int("N", N, 1)
    L = _check_L(L)
    T_m = _check_int("T_m", T_m, 0)
    if T_m == 0:
        return False
    if T_m == 1 or N == 1:
        return True
    a = math.exp(-1.0 / L)
    q = math.exp(-T_m / L)
    return N * a - 1.0 < (N - 1) * q * (2.0 - q)


def tick_ratio_interval(N: int, L: float, T_m: int) -> TickRatioInterval | None:
    """Eq. (13): the interval ``[low, high)`` of admissible ``w_tick / w_k``, or ``None``.

    ``low = C_L N / (e^{T_m/L} - 1)`` (inclusive), ``high = C_L (1 + (N-1) e^{-T_m/L}) /
    (e^{(T_m-1)/L} - 1)`` (exclusive; ``+inf`` for ``T_m = 1``). ``None`` when eq. (14)
    fails, which includes every ``T_m = 0``.
    """
    if not admissible(N, L, T_m):
        return None
    L = float(L)
    c_l = _c_l(L)
    try:
        low = c_l * N / math.expm1(T_m / L)
        if T_m == 1:
            high = math.inf
        else:
            high = c_l * (1.0 + (N - 1) * math.exp(-T_m / L)) / math.expm1((T_m - 1) / L)
    except OverflowError:
        low = high = 0.0
    if not (0.0 < low < high):
        raise ConversionError(
            f"T_m/L = {T_m / L:g} is too large: the ratio interval is not representable in float64"
        )
    return TickRatioInterval(low=low, high=high, low_inclusive=True, high_inclusive=False)


def max_admissible_tm(N: int, L: float) -> int | None:
    """Largest ``T_m`` satisfying eq. (14), or ``None`` if every ``T_m >= 1`` does.

    Solves ``q (2 - q) > c``, ``c = (N e^{-1/L} - 1) / (N - 1)``, i.e.
    ``T_m < -L ln(1 - sqrt(1 - c))``; the result is always ``>= 1``.
    """
    N = _check_int("N", N, 1)
    L = _check_L(L)
    if N == 1:
        return None
    c = (N * math.exp(-1.0 / L) - 1.0) / (N - 1)
    if c <= 0.0:
        return None
    bound = -L * math.log1p(-math.sqrt(1.0 - c))
    t = max(1, math.ceil(bound) - 1)
    # guard the float rounding of the closed form against the exact predicate
    while not admissible(N, L, t) and t > 1:
        t -= 1
    while admissible(N, L, t + 1):
        t += 1
    return t


# --------------------------------------------------------------------------- simulation
def _as_weight(name: str, w: float | Tensor, shape: torch.Size) -> Tensor:
    if isinstance(w, Tensor):
        wt = w.to(torch.float64)
    else:
        if isinstance(w, bool):
            raise ConversionError(f"{name} must be a real number, got bool {w!r}")
        try:
            wt = torch.tensor(float(w), dtype=torch.float64)
        except (TypeError, ValueError):
            raise ConversionError(f"{name} must be a real number, got {w!r}") from None
    if not bool(torch.isfinite(wt).all()):
        raise ConversionError(f"{name} must be finite")
    try:
        return torch.broadcast_to(wt, shape)
    except RuntimeError:
        raise ConversionError(
            f"{name} of shape {tuple(wt.shape)} does not broadcast to {tuple(shape)}"
        ) from None


def simulate_leaky_maxpool(
    spike_times: Tensor,
    T_m: int,
    L: float,
    w_k: float | Tensor,
    w_tick: float | Tensor,
    max_steps: int,
) -> Tensor:
    """Step-by-step float64 simulation of the leaky max-pool neuron (eqs. 12-13 setting).

    ``spike_times``: integer tensor ``[..., N]``, every entry in ``[0, T_m]`` (one spike per
    input; silence is not allowed: it would make the neuron fire early). ``w_k`` and
    ``w_tick`` are scalars or tensors broadcastable to the leading shape ``[...]``; the
    input weights are ``-w_k``. Returns the int64 firing step ``tau`` in
    ``0 .. max_steps`` of the active period, ``-1`` if it did not fire by ``max_steps``.
    """
    if not isinstance(spike_times, Tensor):
        raise ConversionError("spike_times must be a torch.Tensor")
    if (
        spike_times.is_floating_point()
        or spike_times.is_complex()
        or spike_times.dtype == torch.bool
    ):
        raise ConversionError(f"spike_times must have an integer dtype, got {spike_times.dtype}")
    if spike_times.dim() < 1 or spike_times.shape[-1] < 1:
        raise ConversionError("spike_times must have shape [..., N] with N >= 1")
    T_m = _check_int("T_m", T_m, 0)
    L = _check_L(L)
    max_steps = _check_int("max_steps", max_steps, 0)
    st = spike_times.to(torch.int64)
    if st.numel() and (int(st.min()) < 0 or int(st.max()) > T_m):
        raise ConversionError(f"spike_times must lie in [0, T_m] = [0, {T_m}]")
    lead = st.shape[:-1]
    wk = _as_weight("w_k", w_k, lead)
    wt = _as_weight("w_tick", w_tick, lead)
    leak = math.exp(-1.0 / L)

    # inhibitory period t = 0 .. T_m, firing inhibited
    v = torch.zeros(lead, dtype=torch.float64)
    for t in range(T_m + 1):
        arrivals = (st == t).sum(dim=-1).to(torch.float64)
        v = v * leak - wk * arrivals

    # active period: tau = 0 (release, no tick), then one tick per step
    out = torch.full(lead, -1, dtype=torch.int64)
    fired = v >= 0.0
    out[fired] = 0
    for tau in range(1, max_steps + 1):
        v = v * leak + wt
        new = (v >= 0.0) & ~fired
        out[new] = tau
        fired |= new
    return out


# --------------------------------------------------------------------------- table
class TableRow(NamedTuple):
    """One row of :func:`solve_table`."""

    N: int
    L: float
    T_m: int
    interval: TickRatioInterval | None


def solve_table(Ns: list[int], Ls: list[float], T_ms: list[int]) -> list[TableRow]:
    """Rows ``(N, L, T_m, interval-or-None)`` for every combination (eqs. 13-14)."""
    return [
        TableRow(N, L, T_m, tick_ratio_interval(N, L, T_m)) for N in Ns for L in Ls for T_m in T_ms
    ]


def format_table(rows: list[TableRow]) -> str:
    """Markdown table of :func:`solve_table` rows."""
    lines = [
        "| N | L | T_m | admissible | r low (incl.) | r high (excl.) | midpoint |",
        "|---|---|-----|------------|---------------|----------------|----------|",
    ]
    for row in rows:
        iv = row.interval
        if iv is None:
            lines.append(f"| {row.N} | {row.L:g} | {row.T_m} | no | - | - | - |")
        else:
            lines.append(
                f"| {row.N} | {row.L:g} | {row.T_m} | yes | {iv.low:.6g} | {iv.high:.6g} "
                f"| {iv.midpoint():.6g} |"
            )
    return "\n".join(lines)
