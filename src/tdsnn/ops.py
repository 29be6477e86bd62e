"""Operation counts and energy, in the paper's conventions (Table 2, Table 3).

DNN (paper): a synapse layer with fan-in ``M`` and ``N`` outputs costs ``M*N``
multiplications and ``(M-1)*N`` additions; a max-pool output of a ``k*k`` window
costs ``k*k - 1`` additions (comparisons); activations cost nothing.

SNN: every synaptic event (one spike reaching one target, the bias neuron's
included) is one addition, every tick reaching a neuron that has not fired yet
is one addition, a simplified max-pool neuron adds once per input spike and
never multiplies, and every leak step of an LIF neuron is one multiplication.
Which steps count as leak steps is a convention:

* ``"presentation"`` (the paper's, default): every LIF neuron leaks at every
  step of the whole presentation (the latency of the inference);
* ``"own"``: a neuron leaks only in its own two periods, from the first step
  of its inhibitory period until it fires (the output layer: until read-out);
* ``"hardware"``: the Discussion's deployment (Table 3): no ticking neuron,
  ``(M-1)*N`` additions and ``N*T`` multiplications per synapse layer with
  ``T`` its inhibitory period (``T_o`` in Table 3), max-pool compared as in the DNN.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .errors import ConversionError, SpikeInputError

CONVENTIONS = ("presentation", "own", "hardware")


@dataclass
class LayerOps:
    """Multiplications and additions of one layer, summed over ``samples`` inputs."""

    name: str
    kind: str
    mul: int
    add: int


@dataclass
class OpCounts:
    """Operation counts of a whole network under one convention."""

    convention: str
    samples: int
    layers: list[LayerOps] = field(default_factory=list)

    @property
    def mul(self) -> int:
        return sum(layer.mul for layer in self.layers)

    @property
    def add(self) -> int:
        return sum(layer.add for layer in self.layers)

    @property
    def total(self) -> int:
        return self.mul + self.add

    def per_sample(self) -> dict[str, float]:
        """Average multiplications, additions and total per input."""
        n = max(self.samples, 1)
        return {"mul": self.mul / n, "add": self.add / n, "total": self.total / n}

    def energy_pj(self, energy: EnergyModel | None = None) -> float:
        """Estimated energy per input in picojoules (see :class:`EnergyModel`)."""
        return (energy or EnergyModel()).energy_pj(self)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(self.per_sample())
        return out


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, default: 45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014).

    A multiply-accumulate costs ``mac_pj`` (4.6 pJ) and an accumulate ``ac_pj`` (0.9 pJ),
    so one multiplication alone costs ``mac_pj - ac_pj`` (3.7 pJ).
    """

    mac_pj: float = 4.6
    ac_pj: float = 0.9

    def __post_init__(self) -> None:
        for name in ("mac_pj", "ac_pj"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                math.isfinite(value) and value >= 0
            ):
                raise ConversionError(f"EnergyModel.{name} must be a finite number >= 0, got {value!r}")
        if self.mac_pj < self.ac_pj:
            raise ConversionError(
                f"EnergyModel.mac_pj ({self.mac_pj}) must be >= ac_pj ({self.ac_pj}): a "
                "multiply-accumulate includes the accumulate"
            )

    def energy_pj(self, ops: OpCounts) -> float:
        n = max(ops.samples, 1)
        return (ops.mul * (self.mac_pj - self.ac_pj) + ops.add * self.ac_pj) / n


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def synapse_fan_in(module: nn.Module) -> int:
    """``M``: inputs summed into one output neuron (padding positions included)."""
    if isinstance(module, nn.Conv2d):
        return int(module.weight[0].numel())
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    if isinstance(module, nn.AvgPool2d):
        kh, kw = _pair(module.kernel_size)
        return kh * kw
    raise TypeError(f"not a synapse layer: {type(module).__name__}")


def dnn_layer_ops(module: nn.Module, outputs: int, name: str) -> LayerOps | None:
    """DNN cost of one layer producing ``outputs`` values for one input, or None."""
    if isinstance(module, (nn.Conv2d, nn.Linear, nn.AvgPool2d)):
        m = synapse_fan_in(module)
        kind = {nn.Conv2d: "conv", nn.Linear: "linear", nn.AvgPool2d: "avgpool"}[type(module)]
        return LayerOps(name, kind, mul=m * outputs, add=(m - 1) * outputs)
    if isinstance(module, nn.MaxPool2d):
        kh, kw = _pair(module.kernel_size)
        return LayerOps(name, "maxpool", mul=0, add=(kh * kw - 1) * outputs)
    return None


@torch.no_grad()
def count_dnn_ops(model: nn.Module, input_shape: tuple[int, ...]) -> OpCounts:
    """Count a DNN's operations for one input of shape ``input_shape`` (no batch dim).

    Needs no data: the model runs once on zeros with hooks on its Conv2d, Linear,
    AvgPool2d and MaxPool2d layers.  Other layers (ReLU, BatchNorm, G) are free.
    """
    try:
        shape = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise SpikeInputError(
            f"input_shape must be positive integer sizes without the batch dim, got {input_shape!r}"
        )
    found: list[LayerOps] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d)):

            def hook(mod, _inputs, output, name=name):
                ops = dnn_layer_ops(mod, int(output[0].numel()), name)
                if ops is not None:
                    found.append(ops)

            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        model(torch.zeros((1, *shape), dtype=dtype, device=device))
    except RuntimeError as exc:
        raise SpikeInputError(f"input_shape {shape} does not fit the model: {exc}") from exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return OpCounts("dnn", 1, found)


@dataclass
class SNNLayerEvents:
    """What one SNN layer did over a batch, from which every convention is derived.

    ``neurons`` is per input; every other count is summed over the batch.
    """

    name: str
    kind: str  # "conv", "linear", "avgpool", "maxpool" or "maxpool_leaky"
    neurons: int
    is_output: bool = False
    fan_in: int = 0  # M (synapse layers) or k*k (max-pool)
    synaptic_adds: int = 0  # spikes reaching synapses, bias-neuron spikes included
    tick_adds: int = 0  # ticks reaching not-yet-fired neurons
    own_leaks: int = 0  # leak steps inside the neurons' own periods
    inhibit_steps: int = 0  # sum over the batch of this layer's T_il
    clipped: int = 0  # neurons forced to fire at a static end of the active period

    def merge(self, other: SNNLayerEvents) -> None:
        self.clipped += other.clipped
        self.synaptic_adds += other.synaptic_adds
        self.tick_adds += other.tick_adds
        self.own_leaks += other.own_leaks
        self.inhibit_steps += other.inhibit_steps


@dataclass
class SNNOps:
    """Per-layer SNN events of one run; :meth:`counts` turns them into operation counts."""

    samples: int
    latency_steps: int  # sum over the batch of the latency
    layers: list[SNNLayerEvents]

    def counts(self, convention: str = "presentation") -> OpCounts:
        """Operation counts under ``convention`` (see the module docstring)."""
        if convention not in CONVENTIONS:
            raise ConversionError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        out = OpCounts(f"snn-{convention}", self.samples)
        for ev in self.layers:
            if ev.kind == "maxpool":
                if convention == "hardware":
                    add = (ev.fan_in - 1) * ev.neurons * self.samples
                else:
                    add = ev.synaptic_adds
                out.layers.append(LayerOps(ev.name, ev.kind, 0, add))
                continue
            if convention == "hardware" and ev.kind == "maxpool_leaky":
                add, mul = (ev.fan_in - 1) * ev.neurons * self.samples, 0  # compared off-SNN
            elif convention == "hardware":
                add = (ev.fan_in - 1) * ev.neurons * self.samples
                mul = ev.neurons * ev.inhibit_steps
            else:
                add = ev.synaptic_adds + ev.tick_adds
                mul = ev.neurons * self.latency_steps if convention == "presentation" else ev.own_leaks
            out.layers.append(LayerOps(ev.name, ev.kind, mul, add))
        return out

    def merge(self, other: SNNOps) -> None:
        """Add the events of another batch run on the same network."""
        self.samples += other.samples
        self.latency_steps += other.latency_steps
        for mine, theirs in zip(self.layers, other.layers, strict=True):
            mine.merge(theirs)


def compare_ops(dnn: OpCounts, snn: OpCounts, energy: EnergyModel | None = None) -> dict:
    """The ratios of Table 2 (DNN / SNN, per input) and the energy ratio."""
    d, s = dnn.per_sample(), snn.per_sample()

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("inf")

    return {
        "dnn_mul": d["mul"],
        "dnn_add": d["add"],
        "snn_mul": s["mul"],
        "snn_add": s["add"],
        "mul_ratio": ratio(d["mul"], s["mul"]),
        "add_ratio": ratio(d["add"], s["add"]),
        "total_ratio": ratio(d["total"], s["total"]),
        "dnn_energy_pj": dnn.energy_pj(energy),
        "snn_energy_pj": snn.energy_pj(energy),
        "energy_ratio": ratio(dnn.energy_pj(energy), snn.energy_pj(energy)),
    }
