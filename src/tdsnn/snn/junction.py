"""Neuron groups with several branches (residual sums): their pre-activation and its
certification.

A group's pre-activation is ``A = sum_b W_b G(x_b) + b`` over its branches (the main
synapse and its shortcuts; an identity shortcut has weight 1).  Certified precision
computes it in float32 as chain layers are (:func:`junction_spike_times`), small groups
in float64 (design note, "What is certified"): ``|A - A_exact| <= gamma_n (sum_b |W_b|
G_b + |b|)`` with ``n`` the total fan-in; the neurons that bound leaves near a level
boundary are summed again in float64 from the concatenation of their receptive fields,
and those float64 cannot decide get the exact test on it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..coding import spike_value
from .certified import (
    FULL_FLOAT64_SHARE,
    SMALL_LAYER_MACS,
    Certification,
    _macs,
    _patch_at,
    _patch_norm,
    apply,
    near_boundaries,
    split_affine,
    values32,
)
from .exact import exact_spike_times
from .layers import SpikingSynapse
from .level_test import U32, U64, level_test, settled, times64, unravel
from .receptive import REPAIR_CHUNK, ReceptiveFields, _cached, _weights, values64
from .spot_check import compare_spot, spot_neurons


def group_affine(layer: SpikingSynapse, t_ins: list[Tensor], dtype: torch.dtype) -> Tensor:
    """``A`` of the group: the main branch with the bias, plus every shortcut."""
    A = layer.affine(spike_value(t_ins[0], layer.L, dtype))
    for branch, t_in in zip(layer.shortcuts, t_ins[1:], strict=True):
        A = A + branch.affine(spike_value(t_in, layer.L, dtype))
    return A


def group_fan_in(layer: SpikingSynapse) -> int:
    """Inputs summed into one neuron of the group, over all its branches."""
    return sum(branch.fan_in() for branch in layer.branches())


def junction_bound(layer: SpikingSynapse, t_ins: list[Tensor]) -> float:
    """One number ``>= sum_b |W_b| G_b + |b|`` for every neuron of the group (float64 G)."""
    total = 0.0
    for branch, t_in in zip(layer.branches(), t_ins, strict=True):
        top = float(t_in.max()) if t_in.numel() else 0.0
        g_max = math.exp(top / layer.L) if math.isfinite(top) else 0.0
        l1 = 1.0 if branch.kind == "identity" else float(_weights(branch, t_in.device)["l1"].max())
        total += l1 * g_max
    if layer.dnn_bias is not None:
        total += float(layer.dnn_bias.double().abs().max())
    return total * (1.0 + 1e-6)


def junction_found(
    layer: SpikingSynapse, A: Tensor, t_ins: list[Tensor], extra: float = 0.0, margin: float = 0.0
):
    """:func:`.certified.near_boundaries` for a float64 ``A`` of a group: ``extra`` adds
    to the relative error factor (the clocked simulator's steps), ``margin`` widens
    every decision."""
    n = group_fan_in(layer) + len(t_ins) + 2
    gamma = 1.01 * n * U64 / (1.0 - n * U64) + extra
    return near_boundaries(
        layer, A, spike_value(t_ins[0], layer.L, torch.float64), t_ins[0],
        gamma * (1.0 + 2.0 * gamma), 0.0, margin, False,
        scalar=junction_bound(layer, t_ins), exact=lambda where: junction_exact(layer, t_ins, where),
    )  # fmt: skip


def junction_float64_times(layer: SpikingSynapse, t_ins: list[Tensor]) -> tuple[Tensor, Certification]:
    """Certified ``T(ReLU(A))`` of a hidden group, computed in float64 (float32 values)."""
    A = group_affine(layer, t_ins, torch.float64)
    found = junction_found(layer, A, t_ins)
    found.report.full_float64 = True
    return apply(found).float(), found.report


def junction_spike_times(
    layer: SpikingSynapse,
    t_ins: list[Tensor],
    t_max: float,
    spot_checks: int = 0,
    generator: torch.Generator | None = None,
    min_macs: int = 0,
) -> tuple[Tensor, Certification]:
    """Certified ``T(ReLU(A))`` of a hidden group in float32, as the chain layers do.

    ``A`` is summed in float32 over every branch; its error is at most ``gamma_n (sum_b
    |W_b| G_b + |b|)`` with ``n`` the group's fan-in plus its branches, each branch's
    ``|W_b| G_b`` bounded per position by Cauchy-Schwarz (an identity's by the largest
    ``G`` there).  The flagged neurons are summed again in float64 from their joined
    receptive fields (float64 ``G``), and those float64 cannot decide get the exact test;
    ``spot_checks`` random neurons of one sample (from ``generator``; in a group of at
    least ``min_macs`` multiply-accumulates) join that pass and raise :class:`.certified.CertificationError` if their certified time differs.  Small
    groups, or a bound too wide to help, run in float64.
    """
    n = group_fan_in(layer) + len(t_ins) + 2
    macs = sum(_macs(b, t) for b, t in zip(layer.branches(), t_ins, strict=True) if b.kind == "conv")
    if n * U32 >= 0.01 or macs < SMALL_LAYER_MACS or any(b.kind not in ("conv", "identity")
                                                          for b in layer.branches()):
        return junction_float64_times(layer, t_ins)
    L = layer.L
    g = [values32(t, L) for t in t_ins]
    # Each branch as split partial sums (split_affine), the branches added in float32: the
    # longest chain of float32 additions is the longest branch's plus one per branch.
    A, longest = split_affine(layer, g[0])
    for branch, gb in zip(layer.shortcuts, g[1:], strict=True):
        part, terms = split_affine(branch, gb)
        A.add_(part)
        longest = max(longest, terms)
    chain = longest + len(t_ins)
    g_error = (2.0 * t_max / L + 4.0) * U32
    gamma = 1.01 * chain * U32 / (1.0 - chain * U32) + g_error + 4.0 * n * U64
    gamma *= 1.0 + 2.0 * gamma
    parts = _branch_parts(layer, g)
    t, flat = level_test(A, _branch_sizes(layer, parts), gamma, L)
    report = Certification(int(t.numel()), int(flat.shape[0]), 0, 0, False)
    if flat.shape[0] > FULL_FLOAT64_SHARE * t.numel():
        return junction_float64_times(layer, t_ins)
    spot = None
    # (an overflowing float32 A, an infinite or NaN time, is the range check's case)
    if spot_checks > 0 and macs >= min_macs and t.numel() and float(t.max()) < math.inf:
        generator = generator or torch.Generator().manual_seed(0)
        spot = spot_neurons(t.shape, spot_checks, generator, t.device)[1]
    if flat.shape[0] == 0 and spot is None:
        return t, report
    flagged = unravel(flat, t.shape)
    # Per flagged neuron its own bound (each channel's weight norms): where T is the same
    # at both ends of A +- bound, T of the float32 A is certain.
    better = A.reshape(-1)[flat].double()
    open_ = ~settled(better, _neuron_sizes(layer, parts, flagged) * gamma, L)
    t[tuple(flagged.t())] = times64(better, L).to(t.dtype)
    where = flagged[open_]
    report.gathered = int(where.shape[0])
    if spot is not None:
        where = torch.cat([where, spot])
    if where.shape[0] == 0:
        return t, report
    times = torch.empty(where.shape[0], dtype=torch.float64, device=A.device)
    per_chunk = max(1, REPAIR_CHUNK // max(n, 1))
    fields = JoinedFields(layer, t_ins, where)
    for start in range(0, where.shape[0], per_chunk):
        chunk = where[start : start + per_chunk]
        weights, values, bias = fields.at(slice(start, start + per_chunk), where)
        a = (weights * values).sum(dim=1) + bias
        bound = ((weights.abs() * values).sum(dim=1) + bias.abs()) * (2.02 * n * U64)
        open_ = (~settled(a, bound, L)).nonzero().squeeze(1)
        part = times64(a, L)
        if open_.shape[0]:
            report.recomputed += int(open_.shape[0])
            part[open_] = exact_spike_times(weights[open_], values[open_], bias[open_], L)
        times[start : start + len(chunk)] = part
    repaired = report.gathered
    t[tuple(where[:repaired].t())] = times[:repaired].to(t.dtype)
    if spot is not None:  # the certified times there, final, against the reference
        compare_spot(layer, t, spot, times[repaired:], None, silence=False)
        report.spot_checked = int(spot.shape[0])
    return t, report


def _branch_parts(layer: SpikingSynapse, g: list[Tensor]) -> list[Tensor]:
    """Per branch, what bounds its ``|W_b| G_b`` with the channel's weight norm: the
    patch norm ``||G_patch||`` of a synapse (Cauchy-Schwarz), the ``G`` itself of an
    identity (weight 1)."""
    return [gb if branch.kind == "identity" else _patch_norm(branch, gb)
            for branch, gb in zip(layer.branches(), g, strict=True)]  # fmt: skip


def _branch_sizes(layer: SpikingSynapse, parts: list[Tensor]) -> Tensor:
    """Per position, a bound of ``sum_b |W_b| G_b + |b|`` valid for every channel there."""
    total: Tensor | None = None
    for branch, part in zip(layer.branches(), parts, strict=True):
        if branch.kind == "identity":
            size = part.amax(dim=1, keepdim=True)
        else:
            size = part * float(_weights(branch, part.device)["norm"].max())
        total = size if total is None else total.add_(size)
    assert total is not None
    if layer.dnn_bias is not None:
        total = total + float(layer.dnn_bias.double().abs().max()) * (1.0 + 1e-6)
    return total


def _neuron_sizes(layer: SpikingSynapse, parts: list[Tensor], where: Tensor) -> Tensor:
    """Per neuron at ``where``, a float64 bound of ``sum_b |W_b| G_b + |b|`` with its own
    channel's weight norms."""
    channel = where[:, 1]
    total = torch.zeros(where.shape[0], dtype=torch.float64, device=where.device)
    for branch, part in zip(layer.branches(), parts, strict=True):
        if branch.kind == "identity":
            total += part[tuple(where.t())].double()
        else:
            norm = _weights(branch, part.device)["norm"][channel].double()
            total += norm * _patch_at(branch, part, where).double()
    total += _weights(layer, where.device)["bias_abs"][channel].double()
    return total * (1.0 + 1e-6)  # >= the float32 norms' and |b|'s rounding


class JoinedFields:
    """Float64 weights, ``G`` values and bias of chosen neurons of a group: every branch's
    receptive field joined (padding is silence, ``G = 0``), in the order of the group's
    joined weight rows (:func:`joined_rows`).  Built once for the neurons ``where``."""

    def __init__(self, layer: SpikingSynapse, t_ins: list[Tensor], where: Tensor) -> None:
        self.layer, self.t_ins = layer, t_ins
        batch = t_ins[0].shape[0]
        self.samples, self.local = torch.unique(where[:, 0], return_inverse=True)
        few = self.samples.shape[0] * 2 <= batch  # copy only the samples needed
        self.fields = [
            None if b.kind == "identity"
            else ReceptiveFields(b, t.index_select(0, self.samples) if few else t, fill=-math.inf)
            for b, t in zip(layer.branches(), t_ins, strict=True)
        ]  # fmt: skip
        if not few:
            self.local = where[:, 0]
        self.top = max((float(t.max()) for t in t_ins if t.numel()), default=0.0)

    def at(self, rows: slice, where: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``where[rows]``'s weights, values and bias (``where`` as given to the init)."""
        layer, chosen = self.layer, where[rows]
        local = torch.cat([self.local[rows, None], chosen[:, 1:]], dim=1)
        times = [
            t_in[tuple(chosen.t())][:, None] if fields is None else fields.at(local)
            for t_in, fields in zip(self.t_ins, self.fields, strict=True)
        ]  # fmt: skip
        values = values64(torch.cat(times, dim=1), layer.L, self.top)
        joined = joined_rows(layer, chosen.device).index_select(0, chosen[:, 1])
        return joined[:, :-1], values, joined[:, -1]


def joined_rows(layer: SpikingSynapse, device: torch.device) -> Tensor:
    """Per output channel, the float64 weights of every branch in receptive-field order
    (an identity's: one 1), with the bias last; cached, rebuilt when a weight changes."""

    def build() -> Tensor:
        parts = []
        channels = layer.dnn_weight.shape[0]
        for branch in layer.branches():
            if branch.kind == "identity":
                parts.append(torch.ones(channels, 1, dtype=torch.float64, device=device))
            else:
                parts.append(_weights(branch, device)["rows64"][:, :-1])
        parts.append(_weights(layer, device)["rows64"][:, -1:])
        return torch.cat(parts, dim=1)

    versions = tuple((b.dnn_weight.data_ptr(), b.dnn_weight._version)
                     for b in layer.shortcuts if b.dnn_weight is not None)  # fmt: skip
    return _cached(layer, "_joined_cache", (device, versions), build)


def joined_fields(
    layer: SpikingSynapse, t_ins: list[Tensor], where: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """:class:`JoinedFields` of the neurons at ``where``, all at once."""
    return JoinedFields(layer, t_ins, where).at(slice(None), where)


def junction_exact(layer: SpikingSynapse, t_ins: list[Tensor], where: Tensor) -> Tensor:
    """The exact test on the neurons at ``where``: every branch's receptive field joined."""
    return exact_spike_times(*joined_fields(layer, t_ins, where), layer.L)
