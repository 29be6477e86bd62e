"""``convert``: from a (fine-tuned) G-DNN to a spiking network (Figure 2, last step).

Hidden synapse layers get negated weights, a bias neuron firing at ``T(1)`` and a
ticking neuron (eq. 9); the output layer keeps its weights and is read out as a
potential; max-pool layers become simplified spiking max-pool neurons.  The
inhibitory periods ``T_il`` are dynamic (per sample, Algorithm 1 step 2) unless
calibration data or explicit values fix them per layer (static mode).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from .coding import FLOAT32_EXACT, GCoding, bias_spike_time, check_leak
from .errors import ConversionError, UnsupportedModelError
from .junctions import Concat, Sum
from .prepare import GDNN, _check_parameters
from .prepare_graph import GraphGDNN
from .snn.layers import (
    SpikeConcat,
    SpikeFlatten,
    SpikingLeakyMaxPool,
    SpikingMaxPool,
    SpikingSynapse,
)
from .snn.network import SNN
from .tracing import INPUT, SYNAPSE_LAYERS

MAXPOOL_MAPPINGS = ("simplified", "leaky")


def _snn_layers(prepared: GDNN, maxpool: str = "simplified") -> list[nn.Module]:
    modules = list(prepared)
    synapse_count = sum(isinstance(m, SYNAPSE_LAYERS) for m in modules)
    layers: list[nn.Module] = []
    seen = 0
    previous: nn.Module | None = None
    for name, module in prepared.named_children():
        if isinstance(module, SYNAPSE_LAYERS):
            if not isinstance(previous, GCoding):
                raise UnsupportedModelError(
                    f"synapse layer '{name}' is not preceded by G; build the model with "
                    "tdsnn.prepare"
                )
            if previous.L != prepared.L:
                raise UnsupportedModelError(f"G before '{name}' has L={previous.L}, not {prepared.L}")
            if getattr(previous, "coding", "paper") != getattr(prepared, "coding", "paper"):
                raise UnsupportedModelError(
                    f"G before '{name}' has coding {previous.coding!r}, the G-DNN "
                    f"{prepared.coding!r}; build the model with tdsnn.prepare"
                )
            _check_min_time(previous, prepared, f"before '{name}'", first=seen == 0)
            seen += 1
            layers.append(SpikingSynapse(module, prepared.L, seen == synapse_count, name))
        elif isinstance(module, nn.MaxPool2d) and maxpool == "leaky":
            layers.append(SpikingLeakyMaxPool(module, name, prepared.L))
        elif isinstance(module, nn.MaxPool2d):
            layers.append(SpikingMaxPool(module, name))
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise UnsupportedModelError(f"flatten '{name}' must be Flatten(1, -1)")
            layers.append(SpikeFlatten(name))
        elif not isinstance(module, (GCoding, nn.ReLU)):
            raise UnsupportedModelError(
                f"layer '{name}' ({type(module).__name__}) is not part of a G-DNN; "
                "build the model with tdsnn.prepare"
            )
        previous = module
    return layers


def _check_min_time(g: nn.Module, prepared: nn.Module, where: str, first: bool) -> None:
    """The G of the network input keeps ``min_time`` 1; every other G has the G-DNN's
    (the SNN applies one ``min_time`` to all hidden neurons)."""
    wanted = 1 if first else getattr(prepared, "min_time", 1)
    if getattr(g, "min_time", 1) != wanted:
        what = "the network input" if first else "hidden neurons"
        raise UnsupportedModelError(
            f"G {where} (of {what}) has min_time={g.min_time}, expected {wanted}; build the "
            "model with tdsnn.prepare(..., min_time=k)"
        )


def _graph_layers(prepared: GraphGDNN, maxpool: str) -> tuple[list[nn.Module], list[tuple[int, ...]]]:
    """The SNN of a graph G-DNN: its layers in execution order and the slots each reads.

    A sum becomes one neuron group: its first weighted branch (holding the group's
    bias, the sum of every branch's bias in float64) with the other branches as
    shortcuts; a synapse layer read by a sum is such a branch, not a layer of its own.
    """
    if maxpool == "leaky":
        raise ConversionError(
            "the leaky max-pool mapping is not available for networks with sums or "
            "concatenations; use the default maxpool='simplified'"
        )
    modules = dict(prepared.named_children())
    readers: dict[str, list[str]] = {}
    for name, inputs in prepared.wiring:
        for source in inputs:
            readers.setdefault(source, []).append(name)
    output = prepared.wiring[-1][0]
    slot = {INPUT: 0}
    layers: list[nn.Module] = []
    sources: list[tuple[int, ...]] = []
    branches: dict[str, tuple[nn.Module, str]] = {}

    def add(layer: nn.Module, reads: tuple[int, ...], name: str) -> None:
        layers.append(layer)
        sources.append(reads)
        slot[name] = len(layers)

    for name, inputs in prepared.wiring:
        module = modules[name]
        if isinstance(module, GCoding):
            if module.L != prepared.L or module.coding != prepared.coding:
                raise UnsupportedModelError(
                    f"G '{name}' has L={module.L}, coding {module.coding!r}; the G-DNN "
                    f"L={prepared.L}, {prepared.coding!r}; build the model with tdsnn.prepare"
                )
            _check_min_time(module, prepared, f"'{name}'", first=inputs[0] == INPUT)
            slot[name] = slot[inputs[0]]
        elif isinstance(module, nn.ReLU):
            slot[name] = slot[inputs[0]]
        elif isinstance(module, SYNAPSE_LAYERS):
            if any(isinstance(modules[r], Sum) for r in readers.get(name, [])):
                branches[name] = (module, inputs[0])
                continue
            add(SpikingSynapse(module, prepared.L, name == output, name), (slot[inputs[0]],), name)
        elif isinstance(module, Sum):
            parts = [(*branches.pop(b), b) if b in branches else (None, b, b) for b in inputs]
            parts.sort(key=lambda part: part[0] is None)  # weighted branches first
            is_output = name == output
            label = parts[0][2] if parts[0][0] is not None else name  # the main synapse's name
            main = SpikingSynapse(parts[0][0], prepared.L, is_output, label)
            biases = [m.bias for m, _, _ in parts if m is not None and m.bias is not None]
            if len(biases) > 1:  # one bias neuron for the group: the sum, exact in float64
                main.dnn_bias = torch.stack([b.detach().double() for b in biases]).sum(dim=0)
            elif biases and main.dnn_bias is None:
                main.dnn_bias = biases[0].detach().clone()
            for m, _, branch_name in parts[1:]:
                kind = branch_name if m is not None else f"identity from {branch_name}"
                branch = SpikingSynapse(m, prepared.L, is_output, kind)
                branch.dnn_bias = None
                main.shortcuts.append(branch)
            add(main, tuple(slot[source] for _, source, _ in parts), name)
        elif isinstance(module, nn.MaxPool2d):
            add(SpikingMaxPool(module, name), (slot[inputs[0]],), name)
        elif isinstance(module, nn.Flatten):
            add(SpikeFlatten(name), (slot[inputs[0]],), name)
        elif isinstance(module, Concat):
            add(SpikeConcat(name), tuple(slot[i] for i in inputs), name)
        else:
            raise UnsupportedModelError(
                f"layer '{name}' ({type(module).__name__}) is not part of a G-DNN; build the "
                "model with tdsnn.prepare"
            )
    return layers, sources


def _batches(calibration: Tensor | Iterable) -> Iterable[Tensor]:
    if isinstance(calibration, Tensor):
        yield calibration
        return
    if isinstance(calibration, (str, bytes)) or not isinstance(calibration, Iterable):
        raise ConversionError(
            "calibration must be a tensor or an iterable of tensors or (inputs, labels) "
            f"batches, got {type(calibration).__name__}"
        )
    for item in calibration:
        yield item[0] if isinstance(item, (tuple, list)) else item


def convert(
    prepared: GDNN | GraphGDNN,
    calibration: Tensor | Iterable | None = None,
    *,
    t_il: Sequence[int] | None = None,
    maxpool: str = "simplified",
) -> SNN:
    """Convert a G-DNN made by :func:`tdsnn.prepare` into an :class:`SNN`.

    Args:
        prepared: the G-DNN (fine-tuned or not).
        calibration: optional data (a tensor, or an iterable of tensors or
            ``(inputs, labels)`` batches).  When given, every layer's ``T_il`` is fixed
            to the largest value seen on it (static mode); inputs that would need
            longer are clipped at run time and counted in ``SNNResult.clipped``.
        t_il: explicit static inhibitory periods, one per synapse layer (overrides
            calibration).  Each must be at least ``T(1)``, when the bias neuron fires.
        maxpool: ``"simplified"`` (default; the paper's threshold-N neurons, exact, no
            extra latency) or ``"leaky"`` (LIF neurons with ticking, eqs. 12-14; exact
            only for windows whose last spike ends the period, and only where eq. (14)
            admits a tick ratio; dynamic T_il only).
    """
    if maxpool not in MAXPOOL_MAPPINGS:
        raise ConversionError(f"maxpool must be one of {MAXPOOL_MAPPINGS}, got {maxpool!r}")
    if not isinstance(prepared, (GDNN, GraphGDNN)):
        raise UnsupportedModelError(
            f"convert expects the G-DNN returned by tdsnn.prepare, got {type(prepared).__name__}"
        )
    if maxpool == "leaky" and (t_il is not None or calibration is not None):
        raise ConversionError("the leaky max-pool mapping runs with dynamic T_il only")
    coding = getattr(prepared, "coding", "paper")
    if maxpool == "leaky" and coding == "sparse":
        raise ConversionError(
            "the leaky max-pool mapping (eqs. 12-14) assumes every input fires; with "
            "coding='sparse' use the default maxpool='simplified'"
        )
    L = check_leak(prepared.L)
    _check_parameters(prepared, "G-DNN parameter")
    if isinstance(prepared, GraphGDNN):
        layers, sources = _graph_layers(prepared, maxpool)
    else:
        layers, sources = _snn_layers(prepared, maxpool), None
    min_time = getattr(prepared, "min_time", 1)
    for layer in layers:
        for module in layer.modules():
            if hasattr(module, "coding"):
                module.coding = coding
                module.min_time = min_time
    snn = SNN(layers, L, coding=coding, sources=sources)
    snn.eval()
    n_synapse = len(snn.synapse_layers)
    if n_synapse == 0:
        raise UnsupportedModelError(
            "the G-DNN has no synapse layer (Conv2d, Linear or AvgPool2d); build it with "
            "tdsnn.prepare"
        )
    if t_il is None and calibration is not None:
        observed = torch.zeros(n_synapse, dtype=torch.int64)
        seen = False
        for batch in _batches(calibration):
            result = snn.run(batch, backend="closed_form")
            observed = torch.maximum(observed, result.t_il.amax(dim=0))
            seen = True
        if not seen:
            raise ConversionError("calibration data is empty")
        t_il = observed.tolist()
    if t_il is not None:
        snn.static_t_il = _static_t_il(t_il, snn, L)
    return snn


def _static_t_il(t_il: object, snn: SNN, L: float) -> list[int]:
    """Validate static inhibitory periods: one integer per synapse layer, in
    ``[T(1), 2**24]`` (float32 holds integer spike times exactly up to 2**24)."""
    names = [s.name for s in snn.synapse_layers]
    if isinstance(t_il, Tensor):
        t_il = t_il.tolist() if t_il.dim() == 1 else t_il
    if isinstance(t_il, (str, bytes)) or not isinstance(t_il, Sequence):
        raise ConversionError(
            f"t_il must be a sequence of integers, one per synapse layer ({len(names)}), "
            f"got {type(t_il).__name__}"
        )
    if len(t_il) != len(names):
        raise ConversionError(
            f"t_il needs one value per synapse layer ({len(names)}), got {len(t_il)}"
        )
    floor = bias_spike_time(L)
    values = []
    for name, value in zip(names, t_il, strict=True):
        if isinstance(value, Tensor) and value.numel() == 1 and not value.is_meta:
            value = value.item()
        integral = isinstance(value, numbers.Integral) or (
            isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()
        )
        if isinstance(value, bool) or not integral:
            raise ConversionError(
                f"static T_il of layer '{name}' must be an integer number of steps, got {value!r}"
            )
        value = int(value)
        if value < floor:
            raise ConversionError(
                f"static T_il={value} of layer '{name}' is shorter than T(1)={floor}, when "
                f"the bias neuron fires (L={L:g}); use at least {floor}"
            )
        if value > FLOAT32_EXACT:
            raise ConversionError(
                f"static T_il={value} of layer '{name}' exceeds {FLOAT32_EXACT} (2**24), the "
                "largest spike time float32 holds exactly; use a smaller value"
            )
        values.append(value)
    return values
