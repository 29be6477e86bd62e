"""Neuron groups with several branches (residual sums): their pre-activation and its
certification.

A group's pre-activation is ``A = sum_b W_b G(x_b) + b`` over its branches (the main
synapse and its shortcuts; an identity shortcut has weight 1).  Certified precision
computes it in float64 (design note, "What is certified"): ``|A - A_exact| <=
gamma_n (sum_b |W_b| G_b + |b|)`` with ``n`` the total fan-in, bounded by one number per
layer; the neurons that bound leaves near a level boundary get the exact test on the
concatenation of their receptive fields.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..coding import spike_value
from .certified import U64, Certification, ReceptiveFields, _weights, apply, near_boundaries
from .exact import exact_spike_times
from .layers import SpikingSynapse


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


def junction_spike_times(layer: SpikingSynapse, t_ins: list[Tensor]) -> tuple[Tensor, Certification]:
    """Certified ``T(ReLU(A))`` of a hidden group, computed in float64 (float32 values)."""
    A = group_affine(layer, t_ins, torch.float64)
    found = junction_found(layer, A, t_ins)
    found.report.full_float64 = True
    return apply(found).float(), found.report


def junction_exact(layer: SpikingSynapse, t_ins: list[Tensor], where: Tensor) -> Tensor:
    """The exact test on the neurons at ``where``: every branch's receptive field joined."""
    weights, values = [], []
    for branch, t_in in zip(layer.branches(), t_ins, strict=True):
        if branch.kind == "identity":
            at = tuple(where.t())
            values.append(spike_value(t_in[at], layer.L, torch.float64)[:, None])
            weights.append(torch.ones_like(values[-1]))
            continue
        rows = _weights(branch, t_in.device)["rows64"]
        fields = ReceptiveFields(branch, t_in, fill=-math.inf)
        values.append(spike_value(fields.at(where), layer.L, torch.float64))
        weights.append(rows.index_select(0, where[:, 1])[:, :-1])
    if layer.dnn_bias is None:
        bias = torch.zeros(where.shape[0], dtype=torch.float64, device=where.device)
    else:
        bias = layer.dnn_bias.double().to(where.device)[where[:, 1]]
    return exact_spike_times(torch.cat(weights, dim=1), torch.cat(values, dim=1), bias, layer.L)
