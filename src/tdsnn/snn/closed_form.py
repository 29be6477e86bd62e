"""Closed-form simulator: spike times layer by layer, without stepping through time.

For a hidden synapse layer the neuron fires at ``tau = T(A)`` of its G-DNN
pre-activation ``A = W G(x) + b`` (design note, section 2), so one layer costs
one DNN layer plus element-wise work.  Operation counts follow from the spike
times in closed form: ticks sum to the firing steps, leaks to ``T_il + tau``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..ops import SNNLayerEvents
from .certified import Certification, certified_spike_times
from .junction import group_affine, group_fan_in, junction_spike_times
from .layers import SpikingLeakyMaxPool, SpikingMaxPool, SpikingSynapse
from .ranges import check_times


def run_synapse(
    layer: SpikingSynapse,
    t_in: Tensor | list[Tensor],
    t_il: Tensor,
    limit: int | None,
    fanout: Tensor | list[Tensor],
    dtype: torch.dtype,
    certificates: list[Certification] | None = None,
    spot: tuple[int, torch.Generator, int] | None = None,
) -> tuple[Tensor, SNNLayerEvents]:
    """One synapse layer: output spike times (hidden) or logits (output layer).

    ``t_in`` are the input spike times (all ``<= t_il``; a list, one per branch, for a
    group with shortcuts, in the group's frame), ``t_il`` the per-sample inhibitory
    period, ``limit`` a static end of the active period (or None).  With
    ``certificates`` (a list to append to), the layer runs certified float32
    (:mod:`.certified`; a group with shortcuts: float64, :mod:`.junction`): float64
    spike times; the output layer runs in float64.  ``spot``: (count, generator, least
    multiply-accumulates of a checked layer) of the run-time spot check, done inside the
    certified pass (:func:`.certified.certified_spike_times`,
    :func:`.junction.junction_spike_times`).
    """
    certify = certificates is not None
    t_ins = list(t_in) if isinstance(t_in, (list, tuple)) else [t_in]
    fanouts = list(fanout) if isinstance(fanout, (list, tuple)) else [fanout]
    if layer.is_output:
        A = group_affine(layer, t_ins, torch.float64 if certify else dtype)
        events = _events(layer, A, t_il, fanouts, t_ins)
        events.own_leaks = events.inhibit_steps * events.neurons
        return A, events
    if certify and len(t_ins) > 1:
        t_out, report = junction_spike_times(layer, t_ins, float(t_il.max()), *(spot or ()))
        certificates.append(report)
    elif certify:
        t_out, report = certified_spike_times(layer, t_ins[0], float(t_il.max()), *(spot or ()))
        certificates.append(report)
    else:  # T(ReLU(A)) in place: A is not needed any more.
        A = group_affine(layer, t_ins, dtype)
        t_out = A.clamp_(min=0).log1p_().mul_(layer.L).ceil_()
    check_times(t_out, f"layer '{layer.name}'")
    events = _events(layer, t_out, t_il, fanouts, t_ins)
    if limit is not None:
        events.clipped = int((t_out > limit).sum())
        t_out.clamp_(max=limit)
    total_fire = exact_sum(t_out)  # ticks: silent neurons (T = 0 here) get none
    if layer.coding == "sparse":  # T < min_time (default: A <= 0, T = 0): stays silent
        t_out.masked_fill_(t_out < layer.min_time, -math.inf)
    events.tick_adds = total_fire
    events.own_leaks = events.inhibit_steps * events.neurons + total_fire
    return t_out, events


def exact_sum(times: Tensor) -> int:
    """Sum of integer-valued spike times, exact: per-sample partial sums stay below 2**24
    in float32 (checked), else the sum runs in float64."""
    per_sample = times.flatten(1)
    if times.dtype == torch.float32 and per_sample.shape[1] * float(times.max()) >= 2**24:
        return int(per_sample.sum(dtype=torch.float64))
    return int(per_sample.sum(dim=1).double().sum())


def emitted_events(t_in: Tensor, fanout: Tensor, sparse: bool) -> int:
    """Synaptic events of the input spikes: each emitted spike reaches its fan-out."""
    if not sparse:  # every input neuron fires exactly once (a zero at t = 0)
        return int(round(float(fanout.sum()))) * t_in.shape[0]
    fired = (t_in >= 0).to(torch.float64)
    return int(round(float((fired * fanout.to(torch.float64)).sum())))


def _events(
    layer: SpikingSynapse, out: Tensor, t_il: Tensor, fanouts: list[Tensor], t_ins: list[Tensor]
) -> SNNLayerEvents:
    batch = out.shape[0]
    neurons = int(out[0].numel())
    # The events of the emitted input spikes (every branch's); the bias neuron reaches
    # all outputs.
    sparse = layer.coding == "sparse"
    synaptic = sum(emitted_events(t, f, sparse) for t, f in zip(t_ins, fanouts, strict=True))
    if layer.has_bias:
        synaptic += neurons * batch
    return SNNLayerEvents(
        name=layer.name,
        kind=layer.kind,
        neurons=neurons,
        is_output=layer.is_output,
        fan_in=group_fan_in(layer),
        synaptic_adds=synaptic,
        inhibit_steps=int(t_il.sum()),
    )


def run_maxpool(
    layer: SpikingMaxPool, t_in: Tensor, fanout: Tensor
) -> tuple[Tensor, SNNLayerEvents]:
    """Simplified max-pool neurons fire with the last spike of their window."""
    t_out = layer.pool_times(t_in)  # silent inputs (-inf) lose; all silent stays silent
    events = SNNLayerEvents(
        name=layer.name,
        kind="maxpool",
        neurons=int(t_out[0].numel()),
        fan_in=layer.kernel_area(),
        synaptic_adds=emitted_events(t_in, fanout, layer.coding == "sparse"),
    )
    return t_out, events


def output_scale(t_il: Tensor, L: float, dtype: torch.dtype) -> Tensor:
    """exp(-T_il/L): the factor between the output potential and the G-DNN's logits."""
    return torch.exp(-t_il.to(dtype) / L) if isinstance(t_il, Tensor) else math.exp(-t_il / L)


def run_leaky_maxpool(
    layer: SpikingLeakyMaxPool, t_in: Tensor, t_il: Tensor, fanout: Tensor
) -> tuple[Tensor, SNNLayerEvents]:
    """Leaky max-pool neurons: fire at ``ceil(L ln(1 + S C_L / r))`` after the release,
    with ``S = sum_i exp(-(T_il - t_i)/L)`` over the window (eq. 7 with ``-P = w_k S``)."""
    L = layer.L
    shape = (-1,) + (1,) * (t_in.dim() - 1)
    ratio = torch.tensor(
        [layer.tick_ratio(int(t)) for t in t_il], dtype=t_in.dtype, device=t_in.device
    ).reshape(shape)
    S = layer.window_count(torch.exp((t_in - t_il.reshape(shape)) / L))
    c_l = -math.expm1(-1.0 / L)
    t_out = torch.ceil(L * torch.log1p(S * c_l / ratio))
    check_times(t_out, f"layer '{layer.name}'")
    neurons = int(t_out[0].numel())
    fired = exact_sum(t_out)
    events = SNNLayerEvents(
        name=layer.name,
        kind="maxpool_leaky",
        neurons=neurons,
        fan_in=layer.kernel_area(),
        synaptic_adds=int(round(float(fanout.sum()))) * t_in.shape[0],
        tick_adds=fired,
        own_leaks=int(t_il.sum()) * neurons + fired,
        inhibit_steps=int(t_il.sum()),
    )
    return t_out, events
