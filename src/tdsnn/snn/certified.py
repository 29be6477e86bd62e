"""Certified float32: float32 speed with float64 spike times.

``T`` is a ceiling (eq. 10), so rounding matters only for a neuron whose
pre-activation ``A = W G(x) + b`` lies within the rounding error of a level
boundary ``exp(k/L) - 1``.  A dot product of ``n`` terms, in any summation
order, is off by at most ``gamma_n (|W| G + |b|)`` with ``gamma_n = n u / (1 - n u)``
(Higham, *Accuracy and Stability of Numerical Algorithms*, section 3.1); by
Cauchy-Schwarz ``|W| G <= ||W_c|| ||G_patch||``, and ``||G_patch||`` costs one
single-channel window sum.

A layer runs in float32; every neuron whose float32 ``A`` is farther than that
bound from a boundary provably has the spike time of the float64 computation.
The few others (typically well under 1 %) are recomputed in float64 from their
receptive field.  The result equals the float64 simulator's spike times; the
number of recomputed neurons is reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..coding import spike_value
from .layers import SpikingSynapse

U32 = 2.0**-24  # unit roundoff of float32
U64 = 2.0**-53  # unit roundoff of float64
REPAIR_CHUNK = 1 << 18  # elements gathered at a time by the repair (small: no fresh pages)
COARSE_CHUNK = 1 << 18  # elements per slice of the boundary test
FULL_FLOAT64_SHARE = 0.2  # above this share of uncertain neurons, redo the layer in float64
# Below this many multiply-accumulates a float64 layer costs less than the certified
# pass's fixed overhead (measured on CPU, benchmarks/): such layers simply run in float64.
SMALL_LAYER_MACS = 1 << 24


@dataclass
class Certification:
    """What the certified pass did in one layer."""

    neurons: int
    uncertain: int  # flagged by the cheap per-position test
    gathered: int  # still uncertain after the per-neuron bound: receptive field summed
    recomputed: int  # still uncertain after that: recomputed with float64 G
    full_float64: bool  # the layer ran in float64 (a small layer, or the bound too wide)


@contextmanager
def ieee_float32() -> Iterator[None]:
    """Plain IEEE float32 in convolutions and matrix products (no TF32 or bf16 shortcut),
    which the error bound assumes; the previous settings are restored afterwards."""
    backends = [torch.backends.mkldnn, torch.backends.cudnn, torch.backends.cuda]
    knobs = [getattr(b, op) for b in backends for op in ("conv", "matmul") if hasattr(b, op)]
    knobs = [k for k in knobs if hasattr(k, "fp32_precision")]
    saved = [k.fp32_precision for k in knobs]
    try:
        for knob in knobs:
            knob.fp32_precision = "ieee"
        yield
    finally:
        for knob, value in zip(knobs, saved):
            knob.fp32_precision = value


def certified_spike_times(
    layer: SpikingSynapse, t_in: Tensor, t_max: float
) -> tuple[Tensor, Certification]:
    """``T(ReLU(A))`` of a hidden synapse layer as float32 times equal to float64's.

    ``t_in`` holds the layer's input spike times (integer values, float32), all
    ``<= t_max`` (the inhibitory period bounds them).
    """
    if layer.kind == "avgpool":  # no weights to bound, and cheap: run it in float64
        return _full_float64(layer, t_in)
    if _macs(layer, t_in) < SMALL_LAYER_MACS:
        return _full_float64(layer, t_in)
    g = spike_value(t_in, layer.L, torch.float32)
    with ieee_float32():
        A = layer.affine(g)
    g_error = (2.0 * t_max / layer.L + 4.0) * U32  # t * (1/L) rounds twice, exp a few ulp
    found = near_boundaries(layer, A, g, t_in, _error_factor(layer, g_error), g_error)
    if found is None:
        return _full_float64(layer, t_in)
    t, where, better, report = found
    if where.shape[0]:
        t[tuple(where.t())] = _times64(better, layer.L).to(t.dtype)
    return t, report


def near_boundaries(
    layer: SpikingSynapse, A: Tensor, g: Tensor, t_in: Tensor, gamma: float, g_error: float
) -> tuple[Tensor, Tensor, Tensor, Certification] | None:
    """Find the neurons whose ``T`` an error of ``A`` could change, and pin their ``A`` down.

    ``A`` is an estimate of the pre-activation with ``|A - A_exact| <= gamma (|W| G + |b|)``,
    ``g`` the float32 ``G`` of the inputs, ``g_error`` its relative error.  Returns ``T(A)`` for all neurons (its dtype), the indices of the uncertain
    ones, their pre-activations accurate enough that ``T`` of them is float64's, and a
    report; or None when the bound is too wide to help (run the layer in float64).
    """
    L = layer.L
    if math.isinf(gamma):
        return None
    # Per position, a bound of |W_c| G + |b_c| valid for every channel c there.
    w_norm, b_abs = _weight_norms(layer, A.device)
    patch = _patch_norm(layer, g)
    size = patch * float(w_norm.max())
    size.add_(float(b_abs.max()))
    # delta: gamma |W| G plus the float32 error of the test itself (E = exp(t/L), the
    # subtractions), all relative to 1 + |A| <= 1 + size.
    slack = g_error + 8.0 * U32
    delta = size.mul_(gamma + 2.0 * slack).add_(2.0 * slack)
    t, flat = _coarse_test(A, delta, L)
    report = Certification(int(t.numel()), int(flat.shape[0]), 0, 0, False)
    if flat.shape[0] > FULL_FLOAT64_SHARE * t.numel():
        return None
    flagged = torch.stack(torch.unravel_index(flat, t.shape), dim=1)
    # Per flagged neuron: its own bound, and T at both ends of A +- bound in float64.
    better = A.reshape(-1)[flat].double()
    channel = flagged[:, 1]
    size = w_norm[channel].double() * _patch_at(layer, patch, flagged).double()
    size = (size + b_abs[channel].double()) * (1.0 + 1e-6)  # >= |W_c| G + |b_c|
    bound = size * gamma
    open_ = (~_settled(better, bound, L)).nonzero().squeeze(1)
    report.gathered = int(open_.shape[0])
    if open_.shape[0] == 0:
        return t, flagged, better, report
    # The rest: their receptive fields summed again, in float64 (error: mostly the float32
    # error of G, a few ulp, against n ulp for the float32 sum).
    open_ = open_[torch.argsort(channel[open_], stable=True)]
    a = _field_sums(layer, g, flagged[open_])
    n = layer.fan_in() + 1
    bound = size[open_] * (g_error * 1.01 + 8.0 * n * U64)
    better[open_] = a
    todo = open_[~_settled(a, bound, L)]
    report.recomputed = int(todo.shape[0])
    if todo.shape[0]:  # exact: float64 G from the input spike times
        better[todo] = _field_sums(layer, t_in, flagged[todo], exact=True)
    return t, flagged, better, report


def _coarse_test(A: Tensor, delta: Tensor, L: float) -> tuple[Tensor, Tensor]:
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
        near = gap < high[start : start + step]
        # The distance to the lower boundary, minus 1 (t = 0 has none: clamped, it stays > 0).
        torch.add(clamped, upper, alpha=shrink, out=gap)
        near.logical_or_(gap < low[start : start + step])
        hits = near.reshape(-1).nonzero().squeeze(1)  # logical order (channels-last too)
        if hits.numel():
            found.append(hits + start * per_sample)
    flat = torch.cat(found) if found else torch.empty(0, dtype=torch.long, device=A.device)
    return t, flat


def _settled(a: Tensor, bound: Tensor, L: float) -> Tensor:
    """Where ``T`` is the same at both ends of ``a +- bound`` (float64, widened by its own
    rounding): there ``T(a)`` is certain."""
    bound = bound + 1e-12 * (1.0 + a.abs())
    return _times64(a - bound, L) == _times64(a + bound, L)


def _times64(A: Tensor, L: float) -> Tensor:
    return torch.ceil(L * torch.log1p(A.clamp(min=0)))


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


def _full_float64(layer: SpikingSynapse, t_in: Tensor) -> tuple[Tensor, Certification]:
    A = layer.affine(spike_value(t_in, layer.L, torch.float64))
    t = _times64(A, layer.L).float()
    n = int(t.numel())
    return t, Certification(n, n, n, n, True)


def _error_factor(layer: SpikingSynapse, g_error: float) -> float:
    """``gamma`` with ``|A_float32 - A_float64| <= gamma (|W| G + |b|)`` for this layer.

    Covers the float32 sum of ``n`` products and the bias (``gamma_{n+1}``), the
    float32 error ``g_error`` of ``G``, the float64 sum's own error, and the float32
    error of computing the bound itself.
    """
    n = layer.fan_in() + 1
    if n * U32 >= 0.01:
        return math.inf  # bound useless: the caller falls back to float64
    gamma = 1.01 * n * U32 / (1.0 - n * U32) + g_error + 4.0 * n * U64
    return gamma * (1.0 + 2.0 * gamma)


def _weights(layer: SpikingSynapse, device: torch.device) -> dict[str, Tensor]:
    """Cached per layer: ``||W_c||_2`` (rounded up) and ``|b_c|`` per output channel
    (float32), and the float64 rows of ``W`` in receptive-field order (kh, kw, channel)
    with the bias appended."""
    w = layer.dnn_weight
    key = (w.data_ptr(), w._version, str(device))
    cached = getattr(layer, "_certify_cache", None)
    if cached is None or cached[0] != key:
        w64 = w.detach().double().to(device)
        rows = w64.permute(0, 2, 3, 1) if w64.dim() == 4 else w64
        rows = rows.reshape(w64.shape[0], -1)
        bias = layer.dnn_bias
        b64 = torch.zeros(w64.shape[0], dtype=torch.float64, device=device)
        if bias is not None:
            b64 = bias.detach().double().to(device)
        values = {
            "norm": (rows.norm(dim=1) * (1.0 + 1e-6)).float(),
            "bias_abs": b64.abs().float(),
            "rows64": torch.cat([rows, b64[:, None]], dim=1),
        }
        cached = (key, values)
        layer._certify_cache = cached
    return cached[1]


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


def _field_sums(
    layer: SpikingSynapse, source: Tensor, where: Tensor, exact: bool = False
) -> Tensor:
    """``W G + b`` in float64 for the neurons at ``where`` (rows sorted by output channel),
    from their receptive fields in ``source``.

    ``source`` is the float32 ``G``: the products of float32 numbers are exact in float64,
    so only the float32 error of ``G`` (and float64's own) is left.  With ``exact``, it
    holds the input spike times and ``G`` is computed in float64.
    """
    rows = _weights(layer, source.device)["rows64"]  # (C_out, K + 1): bias last
    # Padding is silence, G = 0: a spike time of -inf there.
    fields = ReceptiveFields(layer, source, fill=-math.inf if exact else 0.0)
    out = torch.empty(where.shape[0], dtype=torch.float64, device=source.device)
    per_chunk = max(1, REPAIR_CHUNK // rows.shape[1])
    for start in range(0, where.shape[0], per_chunk):
        chunk = where[start : start + per_chunk]
        values = fields.at(chunk)
        values = spike_value(values, layer.L, torch.float64) if exact else values.double()
        channels, counts = torch.unique_consecutive(chunk[:, 1], return_counts=True)
        if len(channels) * 8 > len(chunk):  # few rows per channel: gather the weights too
            weights = rows.index_select(0, chunk[:, 1])[:, :-1]
            out[start : start + len(chunk)] = (values * weights).sum(dim=1)
            continue
        first = start
        for channel, count in zip(channels.tolist(), counts.tolist()):
            torch.mv(values[first - start : first - start + count], rows[channel, :-1],
                     out=out[first : first + count])
            first += count
    out += rows[where[:, 1], -1]
    return out


class ReceptiveFields:
    """The inputs of chosen neurons as rows ordered like the weight rows (kh, kw, channel),
    from a table of the padded input built once per layer; padding reads as ``fill``."""

    def __init__(self, layer: SpikingSynapse, source: Tensor, fill: float = 0.0) -> None:
        self.layer = layer
        if layer.kind == "linear":
            self.table = source
            return
        # A (sample, group, y, x) x (channels of the group) table, so that each receptive
        # field is kh * kw contiguous row reads.
        self.groups = groups = layer.conv_args["groups"]
        left, right, top, bottom = _padding(layer)
        batch, channels, height, width = source.shape
        per_group = channels // groups
        self.tall, self.wide = height + top + bottom, width + left + right
        table = source.new_full((batch, groups, self.tall, self.wide, per_group), fill)
        table[:, :, top : top + height, left : left + width] = source.reshape(
            batch, groups, per_group, height, width
        ).permute(0, 1, 3, 4, 2)
        self.table = table.reshape(-1, per_group)
        kh, kw = layer.dnn_weight.shape[2:]
        dilation = layer.conv_args["dilation"]
        self.dy = torch.arange(kh, device=source.device) * dilation[0]
        self.dx = torch.arange(kw, device=source.device) * dilation[1]
        self.outs_per_group = layer.dnn_weight.shape[0] // groups

    def at(self, where: Tensor) -> Tensor:
        """One row per neuron index row of ``where``."""
        if self.layer.kind == "linear":
            return self.table.index_select(0, where[:, 0])
        stride = self.layer.conv_args["stride"]
        n, c, i, j = where.t()
        plane = (n * self.groups + c // self.outs_per_group) * self.tall
        y = (plane + i * stride[0])[:, None] + self.dy  # (m, kh)
        at = (y[:, :, None] * self.wide + (j * stride[1])[:, None, None] + self.dx).reshape(-1)
        return self.table.index_select(0, at).reshape(where.shape[0], -1)


def _padding(layer: SpikingSynapse) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of the conv, as ``F.pad`` takes it."""
    padding = layer.conv_args["padding"]
    kh, kw = layer.dnn_weight.shape[2:]
    dilation = layer.conv_args["dilation"]
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        total_h, total_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
        return (total_w // 2, total_w - total_w // 2, total_h // 2, total_h - total_h // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (pw, pw, ph, ph)
