"""The level test: which neurons' spike times an error in their pre-activation could move.

``T = ceil(L ln(1 + A))`` (eq. 10) changes only where ``A`` crosses a level boundary
``exp(k/L) - 1``, so a neuron whose ``A`` lies farther than its error bound from every
boundary keeps its ``T``.  :func:`level_test` decides that for a float32 ``A`` in level
space (one ``log1p`` per neuron, as plain float32 needs anyway), :func:`coarse_test` for an
``A`` in any dtype with an absolute bound, :func:`settled_times` for a few float64 values.
:mod:`.certified` and :mod:`.junction` use them to find the few neurons to repair.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

U32 = 2.0**-24  # unit roundoff of float32
U64 = 2.0**-53  # unit roundoff of float64
# Elements per slice of the boundary test.  Each slice costs some fifteen tensor
# operations, each a parallel region with more than one thread, and under passive
# waiting every region wakes a sleeping worker: 2**20 (4 MiB per float32 temporary)
# against 2**18 in docs/performance.md ("The level test in larger slices").
COARSE_CHUNK = 1 << 20
GROUP = 32  # neurons per group whose largest distance the boundary test reduces


def level_test(
    A: Tensor,
    size: Tensor,
    gamma: float,
    L: float,
    channel_scale: Tensor | None = None,
    offset: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """``T(A)`` of a float32 ``A``, and the flat indices (ascending) of the neurons whose
    ``T`` an error of ``gamma * (size * channel_scale + offset)`` in ``A`` could change
    (``size`` per position, broadcast over channels; ``channel_scale`` per output
    channel, default 1: for a synapse layer ``||G_patch|| ||W_c|| + max |b|``).

    The test runs in level space, ``Y(a) = L ln(1 + max(a, f))`` with ``f = exp(-1/(2L)) -
    1``: ``T = ceil(Y)`` for every ``a`` (``Y`` lies in ``[-1/2, 0]`` for ``a <= 0``).
    With ``c = max(A, f)``, an error ``e`` of ``A`` moves ``Y`` by at most
    ``L e / (1 + c - e)`` (the slope of ``Y`` is ``L / (1 + a)`` above ``f``, 0 below).
    The test uses ``eps = kappa L e / (1 + c)`` with ``kappa = 1 / (1 - 1/(2L))``: a
    neuron it accepts has ``eps < 1/2``, so ``rho = e / (1 + c) < 1/(2L)`` and
    ``L e / (1 + c - e) = L e / ((1 + c)(1 - rho)) <= eps`` (for ``L <= 1/2``, the global
    slope ``L / (1 + f)`` instead).  A neuron is safe when the computed ``Y`` is farther
    than ``eps + eta`` from the nearest integer, ``eta`` bounding float32's own error in
    ``Y`` (``log1p`` within 4 ulp, the product with ``L``, the distance).  One
    transcendental pass and no full-size comparison: the distances are reduced per group
    of 32 neurons (or per plane), and only the groups that come near a boundary are
    searched.  Runs in slices of whole samples, each searched while it is in cache
    (one slice of scratch memory; ``eta`` from the slice's own largest ``T``).
    """
    f32 = torch.finfo(torch.float32)
    floor = float(torch.tensor(math.expm1(-0.5 / L), dtype=torch.float32))
    relative = L > 0.5  # eps relative to 1 + c, per neuron
    kappa = 1.0 / (1.0 - 0.5 / L) if relative else 1.0 / (1.0 + floor)
    factor = gamma * L * kappa * (1.0 + 1e-5)  # error of A -> error of Y (times 1 + c)
    shape = (1, -1) + (1,) * (A.dim() - 2)
    scale = None if channel_scale is None else (channel_scale.to(A.dtype) * factor).reshape(shape)
    eps = size * factor if scale is None else size
    t = torch.empty_like(A)
    if A.numel() == 0:
        return t, torch.empty(0, dtype=torch.long, device=A.device)
    # The distances are reduced per group of GROUP consecutive neurons where a sample's
    # count allows (a group near a boundary is small to search, and torch reduces rows of
    # 32 fast, other short rows several times slower), else per plane (a channel's map,
    # or a sample of a linear layer).  Each slice is searched while it is in cache, so
    # the distances need one slice of scratch, not a tensor of A's size.
    per_sample = max(A[0].numel(), 1)
    plane = A[0, 0].numel() if A.dim() > 2 else per_sample
    width = GROUP if per_sample % GROUP == 0 else max(plane, 1)
    step = max(1, COARSE_CHUNK // per_sample)
    scratch = torch.empty_like(A[:step])
    inverse = torch.empty_like(A[:step]) if relative else None
    found = []
    for start in range(0, A.shape[0], step):
        rows = slice(start, start + step)
        a, part, r = A[rows], t[rows], scratch[: min(step, A.shape[0] - start)]
        torch.clamp(a, min=floor, out=r)
        here = eps if eps.shape[0] == 1 else eps[rows]
        if relative:  # e / (1 + c), per neuron
            assert inverse is not None
            here = torch.add(r, 1.0, out=inverse[: r.shape[0]]).reciprocal_().mul_(here)
        r.log1p_().mul_(L)
        torch.ceil(r, out=part)
        # |Y - T + 1/2| + eps >= 1/2 - eta: within eps + eta of a level boundary, with
        # eta bounding float32's own error in Y for every Y of the slice (|Y| <= top + 1).
        top = float(part.max())
        eta = 10.0 * f32.eps / 2.0 * (abs(top) + 1.0) + 2.0**-22  # u = eps / 2
        threshold = 0.5 - eta - offset * factor / (1.0 + floor)
        r.sub_(part).add_(0.5).abs_()
        r.add_(here) if scale is None else r.addcmul_(here, scale)
        distances = r.reshape(-1, width)
        # NaN distances (an overflowing A) are caught by the range check of the times.
        near_rows = (distances.amax(dim=1) >= threshold).nonzero().squeeze(1)
        if near_rows.shape[0] * 4 > distances.shape[0]:  # most rows: search them all
            hits = (distances.reshape(-1) >= threshold).nonzero().squeeze(1)
        else:
            hit = (distances.index_select(0, near_rows) >= threshold).nonzero()
            hits = near_rows[hit[:, 0]] * distances.shape[1] + hit[:, 1]
        if hits.shape[0]:
            found.append(hits + start * per_sample)
    flat = torch.cat(found) if found else torch.empty(0, dtype=torch.long, device=A.device)
    return t, flat


def coarse_test(A: Tensor, delta: Tensor, L: float) -> tuple[Tensor, Tensor]:
    """``T(A)`` for every neuron, and the flat indices of those within ``delta`` (per sample
    and position, broadcast over channels) of a level boundary.

    T(A) = t for every A in (exp((t-1)/L) - 1, exp(t/L) - 1]: a neuron is safe when
    A +- delta stays inside (for t = 0: when A + delta <= 0).  Runs in slices of a few
    samples, so that the temporaries stay small (cache-resident, no fresh pages).
    """
    floor = math.expm1(-0.5 / L)  # below it T = 0 surely: clamping keeps log1p finite
    shrink = -math.exp(-1.0 / L)
    high, low = delta + 1.0, delta - 1.0
    t = torch.empty_like(A)
    per_sample = A[0].numel()
    step = max(1, COARSE_CHUNK // per_sample)
    found = []
    for start in range(0, A.shape[0], step):
        a, part = A[start : start + step], t[start : start + step]
        clamped = a.clamp(min=floor)
        torch.log1p(clamped, out=part).mul_(L).ceil_()
        upper = torch.mul(part, 1.0 / L).exp_()  # 1 + the level's upper boundary
        gap = torch.sub(upper, a)  # 1 + the distance to the upper boundary
        rows = slice(None) if high.shape[0] == 1 else slice(start, start + step)
        near = gap < high[rows]
        # The distance to the lower boundary, minus 1 (t = 0 has none: clamped, it stays > 0).
        torch.add(clamped, upper, alpha=shrink, out=gap)
        near.logical_or_(gap < low[rows])
        hits = near.reshape(-1).nonzero().squeeze(1)  # logical order (channels-last too)
        if hits.numel():
            found.append(hits + start * per_sample)
    flat = torch.cat(found) if found else torch.empty(0, dtype=torch.long, device=A.device)
    return t, flat


def unravel(flat: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Row-major indices of the flat positions ``flat`` (``m x len(shape)``); a few integer
    operations, where ``torch.unravel_index`` costs more for the small sets used here."""
    columns = []
    for size in reversed(tuple(shape)[1:]):
        columns.append(flat % size)
        flat = flat // size
    columns.append(flat)
    return torch.stack(columns[::-1], dim=1)


def settled(a: Tensor, bound: Tensor, L: float, margin: float = 0.0) -> Tensor:
    """Where ``T`` is the same at both ends of ``a +- bound`` (float64, widened by its own
    rounding and ``margin``, both relative to ``1 + |a|``): there ``T(a)`` is certain."""
    return settled_times(a, bound, L, margin)[0]


def settled_times(
    a: Tensor, bound: Tensor, L: float, margin: float = 0.0
) -> tuple[Tensor, Tensor]:
    """:func:`settled`, and ``T`` at the lower end (``T(a)`` where settled)."""
    bound = bound + (1e-12 + margin) * (1.0 + a.abs())
    low = times64(a - bound, L)
    return low == times64(a + bound, L), low


def times64(A: Tensor, L: float) -> Tensor:
    """``T = ceil(L ln(1 + max(A, 0)))`` (eq. 10) of pre-activations ``A`` in their own dtype."""
    return torch.ceil(L * torch.log1p(A.clamp(min=0)))
