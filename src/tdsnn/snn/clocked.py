"""Clocked simulator: the discrete-time simulation of Algorithm 1, step by step.

Every LIF potential leaks by ``exp(-1/L)`` each step; the spikes arriving at step
``t`` of the inhibitory period add their (negated) weights; the bias neuron fires
at ``T(1)``; after ``T_il`` the ticking neuron adds ``w_tick`` (eq. 9) every step
``tau >= 1`` and a neuron fires the first time its potential reaches 0, once.
Max-pool neurons count the spikes of their window and fire at the last one.
Vectorised over batch and neurons; the loops run over time steps only, and every
operation is counted as it happens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..coding import bias_spike_time, tick_weight
from ..ops import SNNLayerEvents
from .layers import SpikingLeakyMaxPool, SpikingMaxPool, SpikingSynapse

MAX_ACTIVE_STEPS = 1_000_000


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape((-1,) + (1,) * (like.dim() - 1))


def run_synapse(
    layer: SpikingSynapse,
    t_in: Tensor,
    t_il: Tensor,
    limit: int | None,
    fanout: Tensor,
    dtype: torch.dtype,
) -> tuple[Tensor, SNNLayerEvents]:
    """Simulate one synapse layer through its inhibitory and active periods."""
    L = layer.L
    decay = math.exp(-1.0 / L)
    batch = t_in.shape[0]
    t_bias = bias_spike_time(L)
    bias_w = layer.bias_neuron_weight
    fanout = fanout.to(dtype)
    V: Tensor | None = None
    synaptic = 0
    leaks = 0
    # Inhibitory period: t = 0 .. T_il (per sample); firing is inhibited.
    for t in range(int(t_il.max()) + 1):
        in_period = t <= t_il
        spikes = (t_in == t).to(dtype)
        synaptic += int(round(float((spikes * fanout).sum(dtype=torch.float64))))
        drive = layer.synaptic_input(spikes)
        if V is None:
            V = torch.zeros_like(drive)
        if t > 0:
            live = _per_sample(in_period, V)
            V = torch.where(live, V * decay, V)
            leaks += int(in_period.sum()) * int(V[0].numel())
        V = V + drive
        if bias_w is not None and t == t_bias:
            shape = (1, -1, 1, 1) if V.dim() == 4 else (1, -1)
            V = V + bias_w.to(dtype).reshape(shape)
            synaptic += int(V[0].numel()) * batch
    assert V is not None
    neurons = int(V[0].numel())
    events = SNNLayerEvents(
        name=layer.name,
        kind=layer.kind,
        neurons=neurons,
        is_output=layer.is_output,
        fan_in=layer.fan_in(),
        synaptic_adds=synaptic,
        inhibit_steps=int(t_il.sum()),
    )
    if layer.is_output:
        events.own_leaks = leaks
        # Read out the potential, rescaled by exp(T_il/L) to the G-DNN's logits.
        return V * _per_sample(torch.exp(t_il.to(dtype) / L), V), events
    # Active period: tau = 0 releases the inhibition; ticks from tau = 1 on.
    w_tick = _per_sample(tick_weight(t_il.to(dtype), L), V)
    fired = V >= 0
    t_out = torch.zeros_like(V)
    ticks = 0
    tau = 0
    while not bool(fired.all()):
        tau += 1
        if tau > MAX_ACTIVE_STEPS:
            raise RuntimeError(f"layer '{layer.name}': neurons did not fire within {tau} steps")
        waiting = ~fired
        count = int(waiting.sum())
        ticks += count
        leaks += count
        V = torch.where(waiting, V * decay + w_tick, V)
        now = waiting & (V >= 0)
        if limit is not None and tau >= limit:
            events.clipped += int((waiting & ~now).sum())
            now = waiting  # the static active period ends: the rest fire now
        t_out[now] = tau
        fired |= now
    events.tick_adds = ticks
    events.own_leaks = leaks
    return t_out, events


def run_maxpool(
    layer: SpikingMaxPool, t_in: Tensor, fanout: Tensor
) -> tuple[Tensor, SNNLayerEvents]:
    """Integrate-and-fire max-pool neurons: threshold = number of inputs in the window."""
    threshold = layer.window_count(torch.ones_like(t_in[:1]))
    V = torch.zeros_like(layer.window_count(torch.zeros_like(t_in)))
    t_out = torch.full_like(V, -1.0)
    synaptic = 0
    fanout = fanout.to(t_in.dtype)
    for t in range(int(t_in.max()) + 1):
        spikes = (t_in == t).to(t_in.dtype)
        synaptic += int(round(float((spikes * fanout).sum(dtype=torch.float64))))
        V = V + layer.window_count(spikes)
        now = (V >= threshold) & (t_out < 0)
        t_out[now] = t
    events = SNNLayerEvents(
        name=layer.name,
        kind="maxpool",
        neurons=int(V[0].numel()),
        fan_in=layer.kernel_area(),
        synaptic_adds=synaptic,
    )
    return t_out, events


def run_leaky_maxpool(
    layer: SpikingLeakyMaxPool, t_in: Tensor, t_il: Tensor, fanout: Tensor
) -> tuple[Tensor, SNNLayerEvents]:
    """Leaky max-pool neurons, stepped: inputs weigh ``-1``, ticks ``r`` (eqs. 12-13)."""
    decay = math.exp(-1.0 / layer.L)
    dtype = t_in.dtype
    ratio = torch.tensor([layer.tick_ratio(int(t)) for t in t_il], dtype=dtype, device=t_in.device)
    fanout = fanout.to(dtype)
    V: Tensor | None = None
    synaptic = leaks = 0
    for t in range(int(t_il.max()) + 1):
        spikes = (t_in == t).to(dtype)
        synaptic += int(round(float((spikes * fanout).sum(dtype=torch.float64))))
        drive = -layer.window_count(spikes)
        if V is None:
            V = torch.zeros_like(drive)
        if t > 0:
            in_period = t <= t_il
            V = torch.where(_per_sample(in_period, V), V * decay, V)
            leaks += int(in_period.sum()) * int(V[0].numel())
        V = V + drive
    assert V is not None
    w_tick = _per_sample(ratio, V)
    fired = V >= 0
    t_out = torch.zeros_like(V)
    ticks = tau = 0
    while not bool(fired.all()):
        tau += 1
        if tau > MAX_ACTIVE_STEPS:
            raise RuntimeError(f"max-pool '{layer.name}': neurons did not fire within {tau} steps")
        waiting = ~fired
        count = int(waiting.sum())
        ticks += count
        leaks += count
        V = torch.where(waiting, V * decay + w_tick, V)
        now = waiting & (V >= 0)
        t_out[now] = tau
        fired |= now
    events = SNNLayerEvents(
        name=layer.name,
        kind="maxpool_leaky",
        neurons=int(V[0].numel()),
        fan_in=layer.kernel_area(),
        synaptic_adds=synaptic,
        tick_adds=ticks,
        own_leaks=leaks,
        inhibit_steps=int(t_il.sum()),
    )
    return t_out, events
