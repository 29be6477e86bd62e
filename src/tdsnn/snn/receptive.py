"""The receptive fields of chosen neurons, and their pre-activations summed again in
float64 from them: the repair, the spot check and the exact test of :mod:`.certified`
read the layer's inputs here, independently of the convolution that computed ``A``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..coding import spike_value
from .layers import SpikingSynapse

REPAIR_CHUNK = 1 << 18  # elements gathered at a time by the repair (small: no fresh pages)


def _cached(layer: SpikingSynapse, attr: str, extra: tuple, build: Callable[[], object]):
    """``build()`` cached on ``layer`` under ``attr``, rebuilt when the weights change (their
    storage or version) or ``extra`` does."""
    w = layer.dnn_weight
    key = (w.data_ptr(), w._version, *map(str, extra))
    cached = getattr(layer, attr, None)
    if cached is None or cached[0] != key:
        cached = (key, build())
        setattr(layer, attr, cached)
    return cached[1]


def _weights(layer: SpikingSynapse, device: torch.device) -> dict[str, Tensor]:
    """Cached per layer: ``||W_c||_2`` (rounded up) and ``|b_c|`` per output channel
    (float32), and the float64 rows of ``W`` in receptive-field order (channel, kh, kw:
    :class:`ReceptiveFields`) with the bias appended."""

    def build() -> dict[str, Tensor]:
        w64 = layer.dnn_weight.detach().double().to(device)
        rows = w64.reshape(w64.shape[0], -1)
        bias = layer.dnn_bias
        b64 = torch.zeros(w64.shape[0], dtype=torch.float64, device=device)
        if bias is not None:
            b64 = bias.detach().double().to(device)
        return {
            "norm": (rows.norm(dim=1) * (1.0 + 1e-6)).float(),
            "l1": rows.abs().sum(dim=1) * (1.0 + 1e-6),
            "bias_abs": b64.abs().float(),
            "rows64": torch.cat([rows, b64[:, None]], dim=1),
        }

    return _cached(layer, "_certify_cache", (device,), build)


def _field_sums(layer: SpikingSynapse, t_in: Tensor, where: Tensor) -> Tensor:
    """``W G + b`` in float64 for the neurons at ``where`` (any order),
    from their receptive fields, with the float64 ``G`` of the reference: only float64's
    own rounding is left.  The fields are gathered as float32 spike times (half the bytes
    of float64 values, which matters in a random gather) and turned into ``G`` by
    :func:`values64`."""
    rows = _weights(layer, t_in.device)["rows64"]  # (C_out, K + 1): bias last
    bias = rows[where[:, 1], -1]
    samples, local = torch.unique(where[:, 0], return_inverse=True)
    if samples.shape[0] < t_in.shape[0]:  # the table holds only the samples needed
        t_in = t_in.index_select(0, samples)
        where = torch.cat([local[:, None], where[:, 1:]], dim=1)
    top = float(t_in.max()) if t_in.numel() else 0.0
    fields = ReceptiveFields(layer, t_in, fill=-math.inf)  # padding: G = exp(-inf) = 0
    out = torch.empty(where.shape[0], dtype=torch.float64, device=t_in.device)
    per_chunk = max(1, REPAIR_CHUNK // rows.shape[1])
    for start in range(0, where.shape[0], per_chunk):
        chunk = where[start : start + per_chunk]
        values = values64(fields.at(chunk), layer.L, top)
        weights = rows.index_select(0, chunk[:, 1])[:, :-1]
        torch.sum(values.mul_(weights), dim=1, out=out[start : start + len(chunk)])
    out += bias
    return out


TABLE_TIMES = 1 << 16  # spike times up to this get their float64 G from a table


def values64(times: Tensor, L: float, top: float) -> Tensor:
    """:func:`~tdsnn.coding.spike_value` in float64 of integer spike times ``times`` (all
    ``<= top``; ``-inf``, silence or padding, gives 0), the same numbers: looked up in a
    table of every time up to ``top``, several times cheaper than a float64 ``exp`` each."""
    if times.numel() == 0 or not 0.0 <= top < TABLE_TIMES:  # also NaN
        return spike_value(times, L, torch.float64)
    steps = torch.arange(int(top) + 1, dtype=torch.float64, device=times.device)
    table = torch.cat([steps.new_zeros(1), spike_value(steps, L, torch.float64)])
    index = times.add(1.0).clamp_(min=0.0).to(torch.int32)  # 0: silent, k + 1: time k
    return table.index_select(0, index.reshape(-1)).reshape(times.shape)


class ReceptiveFields:
    """The inputs of chosen neurons as rows ordered like the weight rows (channel of the
    group, kh, kw), gathered from the padded input (padding reads as ``fill``).

    The padded input is viewed as overlapping runs of ``kw`` inputs (one kernel row), so
    a receptive field is ``channels x kh`` row reads at fixed offsets from its corner:
    one pad copy per layer and one index per kernel row, no per-layer table.
    """

    def __init__(self, layer: SpikingSynapse, source: Tensor, fill: float = 0.0) -> None:
        self.layer = layer
        if layer.kind == "linear":
            self.table = source
            return
        left, right, top, bottom = _padding(layer)
        if left or right or top or bottom:
            source = F.pad(source, (left, right, top, bottom), value=fill)
        flat = source.contiguous().reshape(-1)
        batch, channels, tall, wide = source.shape
        groups = layer.conv_args["groups"]
        kh, kw = layer.dnn_weight.shape[2:]
        dh, dw = layer.conv_args["dilation"]
        span = (kw - 1) * dw + 1
        # Row r of the table: the kw inputs flat[r], flat[r + dw], ... (a strided view).
        self.table = flat.as_strided((max(flat.numel() - span + 1, 0), kw), (1, dw))
        plane = tall * wide
        per_group = channels // groups
        device = source.device
        channel = torch.arange(per_group, device=device) * plane
        dy = torch.arange(kh, device=device) * (dh * wide)
        self.offsets = (channel[:, None] + dy[None, :]).reshape(-1)  # (channel, dy) rows
        self.sample, self.group, self.wide = channels * plane, per_group * plane, wide
        self.outs_per_group = layer.dnn_weight.shape[0] // groups

    def at(self, where: Tensor) -> Tensor:
        """One row per neuron index row of ``where``."""
        if self.layer.kind == "linear":
            return self.table.index_select(0, where[:, 0])
        sh, sw = self.layer.conv_args["stride"]
        n, c, i, j = where.t()
        corner = n * self.sample + (c // self.outs_per_group) * self.group
        corner = corner + i * (sh * self.wide) + j * sw
        rows = (corner[:, None] + self.offsets[None, :]).reshape(-1)
        return self.table.index_select(0, rows).reshape(where.shape[0], -1)


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


def _pool_fields(layer: SpikingSynapse, t_in: Tensor, where: Tensor) -> tuple[Tensor, Tensor]:
    """Average pooling: the float64 ``G`` of each chosen neuron's window (padding 0) and
    its divisor."""
    args = layer.pool_args
    (kh, kw), (sh, sw) = _pair2(args["kernel_size"]), _pair2(args["stride"] or args["kernel_size"])
    ph, pw = _pair2(args["padding"])
    g = spike_value(t_in, layer.L, torch.float64)
    ones = torch.ones_like(g[:1, :1])
    valid = F.avg_pool2d(ones, **dict(args, divisor_override=1))
    divisor = (valid / F.avg_pool2d(ones, **args)).round_()[0, 0]
    out_h, out_w = valid.shape[2:]
    padded = F.pad(g, (pw, pw + kw + sw * out_w, ph, ph + kh + sh * out_h))  # ceil_mode room
    n, c, i, j = where.t()
    dy = torch.arange(kh, device=g.device)
    dx = torch.arange(kw, device=g.device)
    y = (i * sh)[:, None, None] + dy[None, :, None]
    x = (j * sw)[:, None, None] + dx[None, None, :]
    values = padded[n[:, None, None], c[:, None, None], y, x].reshape(where.shape[0], -1)
    return values, divisor[i, j]


def _pair2(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
