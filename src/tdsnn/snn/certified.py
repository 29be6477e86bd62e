"""Certified float32: float32 speed with the spike times of the exact reference.

What is certified (design note, "What is certified"): every spike time equals
``T = ceil(L ln(1 + A))`` of the *exact* pre-activation ``A = W G(x) + b`` (float64
weights, the float64 ``G`` values, no rounding in the products and the sum, the
level test decided exactly; :mod:`.exact`).

``T`` is a ceiling (eq. 10), so rounding matters only for a neuron whose
pre-activation lies within the rounding error of a level boundary ``exp(k/L) - 1``.
A dot product of ``n`` terms, in any summation order, is off by at most
``gamma_n (|W| G + |b|)`` with ``gamma_n = n u / (1 - n u)`` (Higham, *Accuracy and
Stability of Numerical Algorithms*, section 3.1); by Cauchy-Schwarz
``|W| G <= ||W_c|| ||G_patch||``, and ``||G_patch||`` costs one single-channel
window sum.  The bound holds for a sum of products formed directly, in any order:
it needs IEEE float32 (no TF32, no reduced-precision reduction) and a direct
convolution (no Winograd or FFT), which :func:`.conditions.certified_conditions` sets up, or
declines to, per device.

A layer runs in float32; every neuron whose float32 ``A`` is farther than that
bound from a boundary provably has the reference spike time (:func:`level_test`, in
level space: one ``log1p`` per neuron, as plain float32 needs anyway).  The few
others (typically 0.1-3 %) are recomputed in float64 from their receptive field
with a float64 bound, and the ones that even float64 cannot decide get the exact
test.  Small layers run in float64 and go through the same float64 bound and exact
test.  The number of neurons at each step is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ..coding import spike_value
from .exact import exact_times_at
from .layers import SpikingSynapse
from .level_test import U32, U64, coarse_test, level_test, settled, settled_times, times64, unravel
from .receptive import _cached, _field_sums, _padding, _weights
from .spot_check import SPOT_CHECK, CertificationError, compare_spot, spot_check, spot_neurons

# Re-exported: the names that callers of the certified pass use.
__all__ = [
    "DEFAULT_SPOT_CHECKS", "SPOT_CHECK", "SPOT_MIN_MACS", "U32", "U64", "Certification",
    "CertificationError", "Found", "apply", "certified_spike_times", "float64_spike_times",
    "level_test", "near_boundaries", "spot_check", "split_affine", "unravel", "values32",
]  # fmt: skip

_LOG2E = 1.0 / math.log(2.0)  # values32: exp(x) = 2^(x log2(e))
FULL_FLOAT64_SHARE = 0.2  # above this share of uncertain neurons, redo the layer in float64
SPLIT_TERMS = 160  # the longest float32 sum of products a certified layer forms (split_affine)
# Below this many multiply-accumulates a float64 layer costs less than the certified
# pass's fixed overhead of about 1 ms (measured on CPU, 2026-12-02: a first conv layer of
# 14 M MACs ran 3x faster certified than in float64, LeNet-5 at batch 1 3x slower): such
# layers simply run in float64.
SMALL_LAYER_MACS = 1 << 23

# The run-time spot check (:mod:`.spot_check`) is on by default on every certified layer of at least SPOT_MIN_MACS multiply-accumulates in
# the batch.  The check's cost is nearly fixed per layer (measured 2026-12-03: 0.15-0.35
# ms, some twenty small tensor operations and 16 receptive fields beside the repair's
# float64 pass that it joins), and a layer of 2**27 multiply-accumulates takes about
# 6-12 ms certified on one CPU thread here: above that size the check costs under 3 %
# (benchmarks/spot_check.py measures the runs).  An explicit ``spot_checks=k`` checks
# every certified layer; the tests do (tests/conftest.py).
DEFAULT_SPOT_CHECKS = SPOT_CHECK
SPOT_MIN_MACS = 1 << 27


@dataclass
class Certification:
    """What the certified pass did in one layer."""

    neurons: int
    uncertain: int  # flagged by the cheap per-position test
    gathered: int  # still uncertain after the per-neuron bound: receptive field summed
    recomputed: int  # still uncertain after that: decided by the exact test (.exact)
    full_float64: bool  # the layer ran in float64 (a small layer, or the bound too wide)
    spot_checked: int = 0  # neurons the run-time spot check compared with the reference


@dataclass
class Found:
    """The outcome of :func:`near_boundaries`: ``T`` of every neuron with the flagged ones
    fixed, the flagged indices, their better pre-activations, and which of them (indices
    into ``where``) the exact test decided, with their exact times."""

    t: Tensor
    where: Tensor
    better: Tensor
    exact_at: Tensor
    exact_t: Tensor
    L: float
    report: Certification = field(repr=False)
    spot: Tensor | None = None  # the spot-checked neurons (flat indices), if any
    spot_t: Tensor | None = None  # their reference T (float64 values)


def certified_spike_times(
    layer: SpikingSynapse,
    t_in: Tensor,
    t_max: float,
    spot_checks: int = 0,
    generator: torch.Generator | None = None,
    min_macs: int = 0,
) -> tuple[Tensor, Certification]:
    """``T(ReLU(A))`` of a hidden synapse layer as float32 times equal to the reference's.

    ``t_in`` holds the layer's input spike times (integer values, float32), all
    ``<= t_max`` (the inhibitory period bounds them).  ``spot_checks``: how many random
    neurons of one random sample (drawn from ``generator``) are recomputed from their
    receptive fields alongside the repair, whose sums they share (:func:`spot_check`'s
    test at a fraction of its cost), if the layer has at least ``min_macs``
    multiply-accumulates; :class:`CertificationError` if one differs.  Run it
    inside :func:`.conditions.certified_conditions`.
    """
    if layer.kind == "avgpool" or (macs := _macs(layer, t_in)) < SMALL_LAYER_MACS:
        return float64_spike_times(layer, t_in)
    g = values32(t_in, layer.L)
    A, terms = split_affine(layer, g)
    g_error = (2.0 * t_max / layer.L + 4.0) * U32  # the argument rounds twice, exp2 one ulp (values32)
    spot = None
    if spot_checks > 0 and macs >= min_macs and A.numel():
        # One float64 bound of |W_c| G + |b_c| for the spot sample (float64's own error is
        # so small that a loose bound decides nearly every neuron).
        size = _l1_bound(layer, A.device) * math.exp(min(t_max / layer.L, 700.0)) * (1.0 + 1e-6)
        if math.isfinite(size):  # else the values overflow: the range check's case
            generator = generator or torch.Generator().manual_seed(0)
            spot = (*spot_neurons(A.shape, spot_checks, generator, A.device), size)
    gamma = _error_factor(layer, g_error, terms)
    found = near_boundaries(layer, A, g, t_in, gamma, g_error, spot=spot)
    if found is None:
        return float64_spike_times(layer, t_in)
    t = apply(found)
    if found.spot is not None and found.spot_t is not None:
        got = t.reshape(-1).index_select(0, found.spot)
        if not torch.equal(got, found.spot_t.to(got.dtype)):
            assert spot is not None
            compare_spot(layer, t, spot[1], found.spot_t, None, silence=False)
        found.report.spot_checked = int(found.spot.shape[0])
    return t, found.report


def _l1_bound(layer: SpikingSynapse, device: torch.device) -> float:
    """``max_c ||W_c||_1 + max_c |b_c|`` (rounded up), cached per layer."""

    def build() -> float:
        values = _weights(layer, device)
        return float(values["l1"].max()) + float(values["bias_abs"].max())

    return _cached(layer, "_l1_cache", (device,), build)


def values32(t: Tensor, L: float) -> Tensor:
    """``G = exp(t/L)`` of spike times ``t`` in float32, computed as ``2^(t log2(e)/L)``:
    about half the cost of ``exp`` on the CPU.  Its relative error against float64's
    ``G`` is at most ``(2 t/L + 2) u`` (the rounded argument, ``exp2`` within one ulp),
    inside the ``g_error`` that the certified bounds allow (``(2 t/L + 4) u``)."""
    return torch.mul(t.float(), _LOG2E / L).exp2_()


def apply(found: Found) -> Tensor:
    """``T`` of every neuron: the flagged ones from their better ``A``, or the exact test."""
    t, where = found.t, found.where
    if where.shape[0]:
        times = times64(found.better, found.L)
        if found.exact_at.shape[0]:
            times[found.exact_at] = found.exact_t
        t[tuple(where.t())] = times.to(t.dtype)
    return t


def float64_spike_times(layer: SpikingSynapse, t_in: Tensor) -> tuple[Tensor, Certification]:
    """The layer in float64, certified against the reference with float64's own bound."""
    g = spike_value(t_in, layer.L, torch.float64)
    A = layer.affine(g)
    n = layer.fan_in() + 2  # the sum, the bias, and (average pooling) the division
    gamma = 1.01 * n * U64 / (1.0 - n * U64)
    found = near_boundaries(layer, A, g, t_in, gamma * (1.0 + 2.0 * gamma), 0.0)
    assert found is not None  # the float64 bound is never too wide to use
    t = apply(found).float()
    found.report.full_float64 = True
    return t, found.report


def near_boundaries(
    layer: SpikingSynapse,
    A: Tensor,
    g: Tensor,
    t_in: Tensor,
    gamma: float,
    g_error: float,
    margin: float = 0.0,
    float32_terms: bool | None = None,
    *,
    scalar: float | None = None,
    exact: Callable[[Tensor], Tensor] | None = None,
    spot: tuple[Tensor, Tensor, float] | None = None,
) -> Found | None:
    """Find the neurons whose ``T`` an error of ``A`` could change, and pin them down.

    ``A`` is an estimate of the pre-activation with ``|A - A_exact| <= gamma (|W| G + |b|)``
    (float32 or float64), ``g`` the ``G`` of the inputs in ``A``'s dtype, ``g_error`` its
    relative error against the float64 ``G`` (0 for float64).  ``margin`` widens every
    decision (relative to ``1 + |A|``), for callers that round further (the clocked
    simulator's steps).  ``float32_terms``: ``A`` carries float32 rounding (default: when
    it is float32; the clocked simulator holds float32 step sums in float64 potentials).
    ``scalar`` (float64 only): one bound of ``|W| G + |b|`` for every neuron, and
    ``exact`` the exact test of chosen neurons, for a group with several branches
    (:mod:`.junction`).  ``spot`` (float32 ``A`` of a synapse layer only): flat indices and
    index rows of neurons to recompute from their receptive fields in the same float64 pass as the
    repair, whatever their bound, and one bound of their ``|W_c| G + |b_c|``, for the
    spot check (``Found.spot_t``: their reference ``T``).  Returns None
    when a float32 bound is too wide to help.
    """
    L = layer.L
    if math.isinf(gamma):
        return None
    low_precision = A.dtype == torch.float32 if float32_terms is None else float32_terms
    u = U32 if A.dtype == torch.float32 else U64  # the precision of the test's arithmetic
    # Per position, a bound of |W_c| G + |b_c| valid for every channel c there.
    if layer.kind == "avgpool" and scalar is None:  # weights >= 0 summing to 1: the bound is A
        size = A.abs().mul_(1.0 + 16.0 * u)
        w_norm = b_abs = patch = None
    elif not low_precision:  # float64's bound is so tight that one number for all will do
        if scalar is None:
            l1, b_abs = _weights(layer, A.device)["l1"], _weights(layer, A.device)["bias_abs"]
            scalar = (float(l1.max()) * float(g.max()) + float(b_abs.max())) * (1.0 + 1e-6)
        size = A.new_full((1,) * A.dim(), scalar)
        w_norm = patch = None
    else:
        w_norm, b_abs = _weight_norms(layer, A.device)
        patch = _patch_norm(layer, g)
        size = None
    if size is None and margin == 0.0 and A.dtype == torch.float32:
        t, flat = level_test(A, patch, gamma, L, w_norm, float(b_abs.max()))
    else:
        if size is None:
            size = patch * float(w_norm.max())
            size.add_(float(b_abs.max()))
        # delta: gamma |W| G plus the error of the test itself (E = exp(t/L), the
        # subtractions, in A's dtype), all relative to 1 + |A| <= 1 + size.
        slack = g_error + 8.0 * u + margin
        delta = size.mul_(gamma + 2.0 * slack).add_(2.0 * slack)
        t, flat = coarse_test(A, delta, L)
    report = Certification(int(t.numel()), int(flat.shape[0]), 0, 0, not low_precision)
    empty = torch.empty(0, dtype=torch.long, device=A.device)
    if low_precision and flat.shape[0] > FULL_FLOAT64_SHARE * t.numel():
        return None
    flagged = unravel(flat, t.shape)
    better = A.reshape(-1)[flat].double()
    checking = spot is not None and patch is not None and w_norm is not None
    if flat.shape[0] == 0 and not checking:
        return Found(t, flagged, better, empty, better, L, report)
    # Per flagged neuron: its own bound, and T at both ends of A +- bound in float64.
    if layer.kind == "avgpool" and scalar is None:
        size = better.abs() * (1.0 + 16.0 * u)
    elif patch is None:
        size = torch.full((flat.shape[0],), scalar, dtype=torch.float64, device=A.device)
    else:
        size = _neuron_bound(layer, w_norm, b_abs, patch, flagged)
    open_ = (~settled(better, size * gamma, L, margin)).nonzero().squeeze(1)
    report.gathered = int(open_.shape[0])
    spot_t = None
    if (open_.shape[0] or checking) and low_precision and layer.kind != "avgpool":
        # Their receptive fields summed again in float64, with the float64 G of the
        # reference: float64's own error only.  ``size`` came from the float32 G, off
        # by at most its relative error g_error.  The spot-checked neurons join the pass.
        n = layer.fan_in() + 1
        rows, sizes, repaired = flagged[open_], size[open_], open_.shape[0]
        if checking:
            assert spot is not None
            rows = torch.cat([rows, spot[1]])
            sizes = torch.cat([sizes, sizes.new_full(spot[0].shape, spot[2])])
        a = _field_sums(layer, t_in, rows)
        bound = sizes * (1.0 + 2.0 * g_error + 1e-5) * (2.02 * n * U64)
        sure, times = settled_times(a, bound, L, margin)
        better[open_] = a[:repaired]
        if checking and bool(torch.isfinite(a[repaired:]).all()):
            # (an overflowing sum is the range check's case: the batch reruns in float64)
            spot_t = times[repaired:]
            if not bool(sure[repaired:].all()):
                undecided = (~sure[repaired:]).nonzero().squeeze(1)
                spot_t[undecided] = exact_times_at(layer, t_in, rows[repaired:][undecided])
        open_ = open_[~sure[:repaired]]
    report.recomputed = int(open_.shape[0])
    exact = exact or (lambda where: exact_times_at(layer, t_in, where))
    exact_t = exact(flagged[open_]) if open_.shape[0] else better[:0]
    spot_flat = spot[0] if spot is not None and spot_t is not None else None
    return Found(t, flagged, better, open_, exact_t, L, report, spot_flat, spot_t)


def _neuron_bound(
    layer: SpikingSynapse, w_norm: Tensor, b_abs: Tensor, patch: Tensor, where: Tensor
) -> Tensor:
    """Per neuron at ``where``, a float64 bound of ``|W_c| G + |b_c|`` with its own
    channel's weight norm (Cauchy-Schwarz on the float32 ``G``)."""
    channel = where[:, 1]
    size = w_norm[channel].double() * _patch_at(layer, patch, where)
    return (size.double() + b_abs[channel].double()) * (1.0 + 1e-6)  # >= |W_c| G + |b_c|


def _macs(layer: SpikingSynapse, t_in: Tensor) -> int:
    """Multiply-accumulates of the layer on this batch."""
    out_features = layer.dnn_weight.shape[0]
    if layer.kind == "linear":
        return t_in.shape[0] * out_features * layer.fan_in()
    (kh, kw), (sh, sw) = layer.dnn_weight.shape[2:], layer.conv_args["stride"]
    (dh, dw), padding = layer.conv_args["dilation"], layer.conv_args["padding"]
    height, width = t_in.shape[2:]
    if padding != "same":
        left, right, top, bottom = _padding(layer)
        height = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
        width = (width + left + right - dw * (kw - 1) - 1) // sw + 1
    return t_in.shape[0] * out_features * height * width * layer.fan_in()


def split_affine(layer: SpikingSynapse, g: Tensor) -> tuple[Tensor, int]:
    """``A = W g + b`` in float32, and the length of the longest chain of float32
    additions in it (the ``n`` of the rounding bound ``gamma_n``).

    A sum of ``n`` products rounds up to ``gamma_n`` of its magnitude, so a layer with a
    long receptive field is computed as ``k`` partial products over groups of input
    channels, each at most ``SPLIT_TERMS`` terms, added in float32: the bound becomes
    ``gamma_{n/k + k}``, which flags several times fewer neurons near a level boundary
    for the cost of ``k`` smaller convolutions (the same multiply-accumulates).
    """
    n = layer.fan_in()
    grouped = layer.kind == "conv" and layer.conv_args["groups"] != 1
    if layer.kind not in ("conv", "linear") or grouped or n <= SPLIT_TERMS:
        return layer.affine(g), n + 2  # the products and the bias, and its float32 rounding
    parts = _weight_parts(layer, g.device, math.ceil(n / SPLIT_TERMS))
    A: Tensor | None = None
    longest = 0
    for (low, high), weight in parts:
        bias = layer.dnn_bias.to(g.dtype) if A is None and layer.dnn_bias is not None else None
        x = g[:, low:high]
        part = (F.conv2d(x, weight, bias, **layer.conv_args) if layer.kind == "conv"
                else F.linear(x, weight, bias))  # fmt: skip
        longest = max(longest, weight[0].numel() + (bias is not None))
        A = part if A is None else A.add_(part)
    assert A is not None
    return A, longest + len(parts) + 1  # the partial sums' additions, the bias rounded


def _weight_parts(layer: SpikingSynapse, device: torch.device, k: int) -> list:
    """The float32 weights split into ``k`` groups of input channels (contiguous, cached)."""
    w = layer.dnn_weight

    def build() -> list:
        channels = w.shape[1]
        edges = [round(i * channels / min(k, channels)) for i in range(min(k, channels) + 1)]
        return [((lo, hi), w[:, lo:hi].detach().float().contiguous().to(device))
                for lo, hi in zip(edges, edges[1:]) if hi > lo]  # fmt: skip

    return _cached(layer, "_split_cache", (device, k), build)


def _error_factor(layer: SpikingSynapse, g_error: float, terms: int | None = None) -> float:
    """``gamma`` with ``|A_float32 - A_float64| <= gamma (|W| G + |b|)`` for this layer.

    Covers the float32 sum of ``n`` products and the bias (``gamma_{n+1}``; ``terms``:
    the longest chain of float32 additions, :func:`split_affine`), the float32 error
    ``g_error`` of ``G``, the float64 sum's own error, and the float32 error of
    computing the bound itself.
    """
    n = layer.fan_in() + 2 if terms is None else terms
    if n * U32 >= 0.01:
        return math.inf  # bound useless: the caller falls back to float64
    gamma = 1.01 * n * U32 / (1.0 - n * U32) + g_error + 4.0 * (layer.fan_in() + 2) * U64
    return gamma * (1.0 + 2.0 * gamma)


def _weight_norms(layer: SpikingSynapse, device: torch.device) -> tuple[Tensor, Tensor]:
    values = _weights(layer, device)
    return values["norm"], values["bias_abs"]


def _patch_norm(layer: SpikingSynapse, g: Tensor) -> Tensor:
    """``||G||_2`` over each output neuron's inputs: (batch, 1) for a linear layer,
    (batch, channels of one group expanded, H, W) for a conv (padding is silent)."""
    if layer.kind == "linear":
        return g.norm(dim=1, keepdim=True)
    groups = layer.conv_args["groups"]
    batch, channels = g.shape[:2]
    square = g.square()
    if groups == 1:
        square = square.sum(dim=1, keepdim=True)
    else:
        square = square.reshape(batch, groups, channels // groups, *g.shape[2:]).sum(dim=2)
    kernel = torch.ones((groups, 1, *layer.dnn_weight.shape[2:]), dtype=g.dtype, device=g.device)
    args = {k: v for k, v in layer.conv_args.items() if k != "groups"}
    patch = F.conv2d(square, kernel, None, groups=groups, **args).clamp_(min=0).sqrt_()
    if groups > 1:
        patch = patch.repeat_interleave(layer.dnn_weight.shape[0] // groups, dim=1)
    return patch


def _patch_at(layer: SpikingSynapse, patch: Tensor, flagged: Tensor) -> Tensor:
    if layer.kind == "linear":
        return patch[flagged[:, 0], 0]
    if patch.shape[1] == 1:
        return patch[flagged[:, 0], 0, flagged[:, 2], flagged[:, 3]]
    return patch[tuple(flagged.t())]
