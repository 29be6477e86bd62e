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
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..coding import bias_spike_time, spike_value, tick_weight
from ..errors import SpikeInputError
from ..ops import SNNLayerEvents
from .certified import Certification, Found, near_boundaries
from .junction import group_fan_in, junction_found
from .layers import SpikingLeakyMaxPool, SpikingMaxPool, SpikingSynapse
from .level_test import U32, U64
from .ranges import Float32RangeError

# Default bound on the time steps of one presentation (its latency, the sum of all
# periods): every step costs a conv of the batch, and the step histograms grow with it.
# Networks at the paper's L = 5 need tens to hundreds of steps; raise it per call with
# snn.run(..., max_steps=N).
MAX_STEPS = 100_000
MAX_ACTIVE_STEPS = MAX_STEPS  # the bound of an active period run on its own


def check_max_steps(max_steps: object) -> int:
    """``max_steps`` as a positive int (None: :data:`MAX_STEPS`), or a refusal."""
    if max_steps is None:
        return MAX_STEPS
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 1:
        raise SpikeInputError(f"max_steps must be a positive integer, got {max_steps!r}")
    return int(max_steps)


def _too_long(name: str, what: str, step: float, max_steps: int) -> SpikeInputError:
    return SpikeInputError(
        f"clocked simulation: {what} of layer '{name}' would end at step {step:.0f} of the "
        f"presentation, past max_steps={max_steps}; pass snn.run(..., max_steps=N) with a "
        "larger N (time and memory grow with the steps), or use backend='closed_form', which "
        "has no time loop"
    )


class StepBudget(NamedTuple):
    """What is left of ``max_steps`` for a layer's active period, per sample."""

    left: Tensor
    max_steps: int


def take_steps(elapsed: Tensor, period: Tensor, max_steps: int, name: str) -> Tensor:
    """``elapsed + period`` (per sample), refused before a period that would end past
    ``max_steps``."""
    reach = elapsed + period.to(elapsed.dtype)
    worst = float(reach.max())
    if not worst <= max_steps:
        raise _too_long(name, "the inhibitory period", worst, max_steps)
    return reach


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape((-1,) + (1,) * (like.dim() - 1))


def spikes_per_step(t_in: Tensor, fanout: Tensor, steps: int) -> list[int]:
    """Synaptic events delivered at each step ``0 .. steps-1``: the fan-out of every input
    neuron that spikes then (one histogram of the spike times, exact integers)."""
    weights = fanout.to(torch.float64).expand_as(t_in).reshape(-1)
    # Silent neurons (-inf, sparse coding) are counted past the end and dropped.
    index = torch.where(t_in >= 0, t_in, float(steps)).reshape(-1).long()
    hist = torch.bincount(index, weights=weights, minlength=steps + 1)
    return [int(round(v)) for v in hist[:steps].tolist()]


def inhibitory_period(
    drive: Callable[..., Tensor],
    t_in: Tensor | list[Tensor],
    t_il: Tensor,
    fanout: Tensor | list[Tensor],
    decay: float,
    bias: tuple[int, Tensor] | None = None,
    spike_dtype: torch.dtype | None = None,
) -> tuple[Tensor, int, int]:
    """Steps ``t = 0 .. T_il`` (per sample): leak, then add the ``drive`` of the spikes
    arriving at ``t`` (and the bias neuron's weight at its time); firing is inhibited.

    ``t_in`` may be a list (one per branch of a group: each source's spikes, delayed
    into the group's frame); ``drive`` then takes one spike tensor per branch.  Spikes
    are 0/1 tensors of ``spike_dtype`` (default: that of ``t_in``); the potentials are
    kept in the dtype of ``t_in``.  Returns the potentials, the synaptic events and the
    leak steps.
    """
    t_ins = list(t_in) if isinstance(t_in, (list, tuple)) else [t_in]
    fanouts = list(fanout) if isinstance(fanout, (list, tuple)) else [fanout]
    dtype = t_ins[0].dtype
    spike_dtype = spike_dtype or dtype
    V: Tensor | None = None  # None: still all zero
    leak_steps = 0  # leak steps summed over samples (times the neurons at the end)
    batch = t_ins[0].shape[0]
    last = int(t_il.max())
    all_in_period = int(t_il.min())  # up to this step every sample is still integrating
    per_branch = [spikes_per_step(t, f, last + 1) for t, f in zip(t_ins, fanouts, strict=True)]
    events = [sum(column) for column in zip(*per_branch, strict=True)]
    synaptic = sum(events)

    def step_drive(t: int | None) -> Tensor:
        spikes = [
            (x == t).to(spike_dtype) if t is not None else torch.zeros_like(x, dtype=spike_dtype)
            for x in t_ins
        ]
        return drive(*spikes)

    for t in range(last + 1):
        if t > 0:
            if t <= all_in_period:
                leak_steps += batch
                if V is not None:
                    V.mul_(decay)
            else:
                in_period = t <= t_il
                leak_steps += int(in_period.sum())
                if V is not None:
                    V = torch.where(_per_sample(in_period, V), V * decay, V)
        if events[t]:
            step = step_drive(t)
            V = step.to(dtype) if V is None else V.add_(step)
        if bias is not None and t == bias[0]:
            if V is None:
                V = torch.zeros_like(step_drive(None), dtype=dtype)
            V.add_(bias[1].reshape((1, -1) + (1,) * (V.dim() - 2)))
            synaptic += int(V[0].numel()) * batch
    if V is None:  # no input spike at all (sparse coding) and no bias neuron
        V = torch.zeros_like(step_drive(None), dtype=dtype)
    return V, synaptic, leak_steps * int(V[0].numel())


def _group_drive(layer: SpikingSynapse) -> Callable[..., Tensor]:
    """The potential change of one step: every branch's spikes through its synapses."""
    if not layer.shortcuts:
        return layer.synaptic_input

    def drive(*spikes: Tensor) -> Tensor:
        total = layer.synaptic_input(spikes[0])
        for branch, s in zip(layer.shortcuts, spikes[1:], strict=True):
            total = total + branch.synaptic_input(s)
        return total

    return drive


def run_synapse(
    layer: SpikingSynapse,
    t_in: Tensor | list[Tensor],
    t_il: Tensor,
    limit: int | None,
    fanout: Tensor | list[Tensor],
    dtype: torch.dtype,
    certificates: list[Certification] | None = None,
    budget: StepBudget | None = None,
) -> tuple[Tensor, SNNLayerEvents]:
    """Simulate one synapse layer through its inhibitory and active periods.

    ``budget`` bounds the active period: a layer whose neurons would fire later is
    refused before the period is stepped (see :func:`active_period`).

    With ``certificates`` (a list to append to; potentials in float64), a hidden conv or
    linear layer sums each step's spikes through its weights in float32 (the spikes are
    0/1 and the weights float32, so only the sum rounds) and accumulates the potentials
    in float64; before the release, the potentials of the neurons whose firing step that
    rounding could change are recomputed (:func:`.certified.near_boundaries`), so the
    firing steps are those of the float64 simulation.
    """
    L = layer.L
    decay = math.exp(-1.0 / L)
    bias = None
    if layer.bias_neuron_weight is not None:
        bias = (bias_spike_time(L), layer.bias_neuron_weight.to(dtype))
    certify = certificates is not None and not layer.is_output
    junction = isinstance(t_in, (list, tuple))
    # average pooling and groups with shortcuts sum in float64
    float32_sums = certify and layer.kind != "avgpool" and not junction
    spike_dtype = torch.float32 if float32_sums else dtype
    fanouts = [f.to(dtype) for f in fanout] if junction else fanout.to(dtype)
    drive = _group_drive(layer)
    V, synaptic, leaks = inhibitory_period(
        drive, t_in, t_il, fanouts, decay, bias, spike_dtype
    )
    pinned = None
    if certify:
        found = _certify_potentials(layer, V, t_in, t_il, float32_sums=float32_sums)
        if found is None:  # the bound is too wide: step again in float64, certify that
            V, _, _ = inhibitory_period(drive, t_in, t_il, fanouts, decay, bias)
            found = _certify_potentials(layer, V, t_in, t_il, float32_sums=False)
            assert found is not None  # the float64 bound is never too wide
        certificates.append(found.report)
        pinned = _pins(found, V)
    neurons = int(V[0].numel())
    events = SNNLayerEvents(
        name=layer.name,
        kind=layer.kind,
        neurons=neurons,
        is_output=layer.is_output,
        fan_in=group_fan_in(layer),
        synaptic_adds=synaptic,
        inhibit_steps=int(t_il.sum()),
    )
    if layer.is_output:
        events.own_leaks = leaks
        # Read out the potential, rescaled by exp(T_il/L) to the G-DNN's logits.
        # (the factor in float64: in float32 it overflows long before the product does)
        scale = torch.exp(t_il.to(torch.float64) / L)
        return (V.to(torch.float64) * _per_sample(scale, V)).to(dtype), events
    # Active period: tau = 0 releases the inhibition; ticks from tau = 1 on.
    w_tick = _per_sample(tick_weight(t_il.to(dtype), L), V)
    if not bool((w_tick > 0).all()):  # exp(-T_il/L) underflowed
        what = f"the tick weight of layer '{layer.name}' (exp(-T_il/L) at T_il={float(t_il.max()):g})"
        if dtype == torch.float32:
            raise Float32RangeError(what)
        raise SpikeInputError(f"{what} underflows {dtype}; the weights or the input are far too large")
    t_out, ticks, events.clipped = active_period(
        V, w_tick, decay, limit, layer.name, budget, pinned
    )
    if layer.coding == "sparse":  # at threshold before tau = min_time (default: at the
        t_out.masked_fill_(t_out < layer.min_time, -math.inf)  # release): silenced
    events.tick_adds = ticks
    events.own_leaks = leaks + ticks
    return t_out, events


def _certify_potentials(
    layer: SpikingSynapse, V: Tensor, t_in: Tensor, t_il: Tensor, float32_sums: bool
) -> Found | None:
    """Pin down, in place, the potentials at the release whose firing step rounding could
    change.  ``V = -exp(-T_il/L) A`` (eq. 8), so this is the closed form's boundary test on
    ``A``; the decisions keep a margin for the rounding of the active period's steps, and
    the neurons that even float64 cannot decide are pinned to the exact test's step.

    ``float32_sums``: each step's spikes were summed in float32 (else in float64).
    Returns None when the float32 bound is too wide (the caller steps again in float64).
    """
    n_all = int(V.numel())
    if not bool(torch.isfinite(V).all()):  # a float32 step sum overflowed: redo in float64
        return None if float32_sums else _refuse_overflow(layer)
    scale = _per_sample(torch.exp(t_il.to(V.dtype) / layer.L), V)
    A = V.neg().mul_(scale)
    steps = float(t_il.max()) + 1.0
    t_active = float(torch.log1p(A.clamp(min=0).max()).mul(layer.L).ceil()) if n_all else 0.0
    margin = 4.0 * (t_active + 2.0) * U64
    if isinstance(t_in, (list, tuple)):  # a group with shortcuts: float64 sums
        found = junction_found(
            layer, A, list(t_in), 8.0 * (group_fan_in(layer) + 2 + steps) * U64, margin
        )
        return _pin_potentials(found, V, scale, float32_sums=False)
    n = layer.fan_in() + 2  # the sum, and a float64 weight rounded to float32
    if float32_sums:
        g = spike_value(t_in, layer.L, torch.float32)
        gamma = 1.01 * n * U32 / (1.0 - n * U32) + 8.0 * (n + steps) * U64
        g_error = (2.0 * max(float(t_in.max()), 0.0) / layer.L + 4.0) * U32
    else:
        g = spike_value(t_in, layer.L, torch.float64)
        gamma = 8.0 * (n + steps) * U64
        g_error = 0.0
    # The active period multiplies and adds once per step: its rounding, relative to
    # 1 + A, stays below 4 (steps + 2) u for as many steps as the slowest neuron takes
    # (the margin above).
    found = near_boundaries(
        layer, A, g, t_in, gamma * (1.0 + 2.0 * gamma), g_error, margin, float32_sums
    )
    return _pin_potentials(found, V, scale, float32_sums)


def _pin_potentials(found: Found | None, V: Tensor, scale: Tensor, float32_sums: bool) -> Found | None:
    """Write the better pre-activations of the flagged neurons back into ``V``."""
    if found is None:
        return None
    where = found.where
    if where.shape[0]:
        V[tuple(where.t())] = -found.better / scale.reshape(-1)[where[:, 0]]
    if not float32_sums:
        found.report.full_float64 = True
    return found


def _refuse_overflow(layer: SpikingSynapse) -> None:
    raise SpikeInputError(
        f"layer '{layer.name}': potentials overflow float64 (NaN or infinite); the weights "
        "or the input are far too large"
    )


def _pins(found: Found, V: Tensor) -> tuple[tuple[Tensor, ...], Tensor] | None:
    """Indices into ``V`` and firing steps of the neurons the exact test decided."""
    if found.exact_at.shape[0] == 0:
        return None
    where = found.where[found.exact_at]
    return tuple(where.t()), found.exact_t.to(V.device)


def active_period(
    V: Tensor,
    w_tick: Tensor,
    decay: float,
    limit: int | None,
    name: str,
    budget: StepBudget | None = None,
    pinned: tuple[tuple[Tensor, ...], Tensor] | None = None,
) -> tuple[Tensor, int, int]:
    """Release the inhibition: fire at ``tau = 0`` where ``V >= 0``, then tick and leak.

    ``pinned`` (indices, steps): neurons whose pre-activation lies closer to a level
    boundary than float64 resolves; they cross the threshold at the step that exact
    arithmetic gives (certified precision), the others where their float64 ``V`` does.

    Returns the firing steps, the ticks delivered to not-yet-fired neurons (each also
    a leak step) and how many neurons a static ``limit`` forced to fire.  ``V`` is
    updated in place (a fired neuron's potential is not read again).  Before stepping,
    the last firing step is predicted in closed form (``L ln(1 - V (1 - a) / w_tick)``,
    eq. 7) and the period refused if it would pass the ``budget`` (per sample; default
    :data:`MAX_ACTIVE_STEPS`), or if the potentials are not finite.
    """
    if not bool(torch.isfinite(V).all()):
        raise SpikeInputError(
            f"layer '{name}': potentials overflow {V.dtype} (NaN or infinite); the weights or "
            "the input are far too large"
        )
    waiting = V < 0
    if pinned is not None:
        pin_at, pin_t = pinned
        waiting[pin_at] = pin_t > 0
    max_steps = MAX_ACTIVE_STEPS if budget is None else budget.max_steps
    cap = max_steps if budget is None else int(budget.left.max())
    if bool(waiting.any()):
        L = -1.0 / math.log(decay)
        # -V (1 - a) / w_tick is the pre-activation A (eq. 8); fired neurons clamp to 0.
        ratio = V.to(torch.float64, copy=True).neg_().mul_((1.0 - decay) / w_tick.double())
        last = ratio.clamp_(min=0).log1p_().mul_(L).ceil_().flatten(1).amax(dim=1)
        if not bool(torch.isfinite(last).all()):
            raise SpikeInputError(
                f"layer '{name}': a pre-activation -V exp(T_il/L) overflows float64; the weights "
                "or the input are far too large"
            )
        if limit is not None:
            last.clamp_(max=limit)
        allowed = torch.full_like(last, cap) if budget is None else budget.left.double()
        over = last > allowed
        if bool(over.any()):
            sample = int(over.double().argmax())
            raise SpikeInputError(
                f"clocked simulation: the active period of layer '{name}' needs "
                f"{float(last[sample]):.0f} steps (sample {sample}), but only "
                f"{float(allowed[sample]):.0f} are left of max_steps={max_steps}; pass "
                "snn.run(..., max_steps=N) with a larger N (time and memory grow with the "
                "steps), or use backend='closed_form', which has no time loop"
            )
    below = torch.empty_like(waiting)
    t_out = torch.zeros_like(V)  # +1 for every step a neuron is still waiting
    ticks = clipped = tau = 0
    while True:
        n_waiting = int(waiting.sum())
        if n_waiting == 0:
            break
        tau += 1
        if tau > cap + 1:  # the prediction is exact up to rounding: a backstop only
            raise SpikeInputError(
                f"clocked simulation: neurons of layer '{name}' did not fire within {cap} "
                "steps; pass snn.run(..., max_steps=N) with a larger N"
            )
        ticks += n_waiting
        V.mul_(decay).add_(w_tick)
        t_out.add_(waiting)
        waiting.logical_and_(torch.lt(V, 0, out=below))
        if pinned is not None:
            waiting[pin_at] = pin_t > tau
        if limit is not None and tau >= limit:
            clipped += int(waiting.sum())
            waiting.zero_()  # the static active period ends: the rest fire now
    return t_out, ticks, clipped


def run_maxpool(
    layer: SpikingMaxPool, t_in: Tensor, fanout: Tensor
) -> tuple[Tensor, SNNLayerEvents]:
    """Integrate-and-fire max-pool neurons: threshold = number of inputs in the window.

    Sparse coding: the threshold is the number of the window's inputs that fire (their
    silence is decided at their layer's release, before any of them spikes); a window
    whose inputs are all silent stays silent.
    """
    sparse = layer.coding == "sparse"
    if sparse:
        threshold = layer.window_count((t_in >= 0).to(t_in.dtype))
    else:
        threshold = layer.window_count(torch.ones_like(t_in[:1]))
    V = torch.zeros_like(layer.window_count(t_in.clamp(min=0)))
    t_out = torch.zeros_like(V)  # +1 for every step a neuron stays below threshold
    last = max(int(t_in.clamp(min=-1).max()), -1)
    events = spikes_per_step(t_in, fanout, last + 1)
    for t in range(last + 1):
        if events[t]:
            V.add_(layer.window_count((t_in == t).to(t_in.dtype)))
        t_out.add_(V < threshold)
    if sparse:
        t_out.masked_fill_(threshold == 0, -math.inf)
    events_total = sum(events)
    return t_out, SNNLayerEvents(
        name=layer.name,
        kind="maxpool",
        neurons=int(V[0].numel()),
        fan_in=layer.kernel_area(),
        synaptic_adds=events_total,
    )


def run_leaky_maxpool(
    layer: SpikingLeakyMaxPool,
    t_in: Tensor,
    t_il: Tensor,
    fanout: Tensor,
    budget: StepBudget | None = None,
) -> tuple[Tensor, SNNLayerEvents]:
    """Leaky max-pool neurons, stepped: inputs weigh ``-1``, ticks ``r`` (eqs. 12-13)."""
    decay = math.exp(-1.0 / layer.L)
    dtype = t_in.dtype
    ratio = torch.tensor([layer.tick_ratio(int(t)) for t in t_il], dtype=dtype, device=t_in.device)
    V, synaptic, leaks = inhibitory_period(
        lambda spikes: -layer.window_count(spikes), t_in, t_il, fanout.to(dtype), decay
    )
    t_out, ticks, _ = active_period(V, _per_sample(ratio, V), decay, None, layer.name, budget)
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
