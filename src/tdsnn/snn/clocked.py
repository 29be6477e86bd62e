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
from collections.abc import Callable

import torch
from torch import Tensor

from ..coding import bias_spike_time, tick_weight
from ..ops import SNNLayerEvents
from .layers import SpikingLeakyMaxPool, SpikingMaxPool, SpikingSynapse

MAX_ACTIVE_STEPS = 1_000_000


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape((-1,) + (1,) * (like.dim() - 1))


def inhibitory_period(
    drive: Callable[[Tensor], Tensor],
    t_in: Tensor,
    t_il: Tensor,
    fanout: Tensor,
    decay: float,
    bias: tuple[int, Tensor] | None = None,
) -> tuple[Tensor, int, int]:
    """Steps ``t = 0 .. T_il`` (per sample): leak, then add the ``drive`` of the spikes
    arriving at ``t`` (and the bias neuron's weight at its time); firing is inhibited.

    Returns the potentials, the synaptic events and the leak steps.
    """
    V: Tensor | None = None
    synaptic = leaks = 0
    batch = t_in.shape[0]
    for t in range(int(t_il.max()) + 1):
        spikes = (t_in == t).to(fanout.dtype)
        synaptic += int(round(float((spikes * fanout).sum(dtype=torch.float64))))
        step = drive(spikes)
        if V is None:
            V = torch.zeros_like(step)
        if t > 0:
            in_period = t <= t_il
            V = torch.where(_per_sample(in_period, V), V * decay, V)
            leaks += int(in_period.sum()) * int(V[0].numel())
        V = V + step
        if bias is not None and t == bias[0]:
            V = V + bias[1].reshape((1, -1) + (1,) * (V.dim() - 2))
            synaptic += int(V[0].numel()) * batch
    assert V is not None
    return V, synaptic, leaks


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
    bias = None
    if layer.bias_neuron_weight is not None:
        bias = (bias_spike_time(L), layer.bias_neuron_weight.to(dtype))
    V, synaptic, leaks = inhibitory_period(
        layer.synaptic_input, t_in, t_il, fanout.to(dtype), decay, bias
    )
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
    t_out, ticks, events.clipped = active_period(V, w_tick, decay, limit, layer.name)
    events.tick_adds = ticks
    events.own_leaks = leaks + ticks
    return t_out, events


def active_period(
    V: Tensor, w_tick: Tensor, decay: float, limit: int | None, name: str
) -> tuple[Tensor, int, int]:
    """Release the inhibition: fire at ``tau = 0`` where ``V >= 0``, then tick and leak.

    Returns the firing steps, the ticks delivered to not-yet-fired neurons (each also
    a leak step) and how many neurons a static ``limit`` forced to fire.
    """
    fired = V >= 0
    t_out = torch.zeros_like(V)
    ticks = clipped = tau = 0
    while not bool(fired.all()):
        tau += 1
        if tau > MAX_ACTIVE_STEPS:
            raise RuntimeError(f"layer '{name}': neurons did not fire within {tau} steps")
        waiting = ~fired
        ticks += int(waiting.sum())
        V = torch.where(waiting, V * decay + w_tick, V)
        now = waiting & (V >= 0)
        if limit is not None and tau >= limit:
            clipped += int((waiting & ~now).sum())
            now = waiting  # the static active period ends: the rest fire now
        t_out[now] = tau
        fired |= now
    return t_out, ticks, clipped


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
    V, synaptic, leaks = inhibitory_period(
        lambda spikes: -layer.window_count(spikes), t_in, t_il, fanout.to(dtype), decay
    )
    t_out, ticks, _ = active_period(V, _per_sample(ratio, V), decay, None, layer.name)
    leaks += ticks
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
