"""Operation counts and energy, in the paper's conventions (Table 2, Table 3).

DNN (paper): a synapse layer with fan-in ``M`` and ``N`` outputs costs ``M*N``
multiplications and ``(M-1)*N`` additions; a max-pool output of a ``k*k`` window
costs ``k*k - 1`` additions (comparisons); activations cost nothing.  Average
pools (global ones included) count as synapse layers; a residual sum of ``k``
tensors of ``N`` values costs ``(k-1)*N`` additions; concatenation is free.

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
from torch import fx, nn

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


_SYNAPSE_KINDS = ((nn.Conv2d, "conv"), (nn.Linear, "linear"), (nn.AvgPool2d, "avgpool"))


def dnn_layer_ops(module: nn.Module, outputs: int, name: str) -> LayerOps | None:
    """DNN cost of one layer producing ``outputs`` values for one input, or None."""
    if isinstance(module, (nn.Conv2d, nn.Linear, nn.AvgPool2d)):
        m = synapse_fan_in(module)
        kind = next(k for t, k in _SYNAPSE_KINDS if isinstance(module, t))  # subclasses too
        return LayerOps(name, kind, mul=m * outputs, add=(m - 1) * outputs)
    if isinstance(module, nn.MaxPool2d):
        kh, kw = _pair(module.kernel_size)
        return LayerOps(name, "maxpool", mul=0, add=(kh * kw - 1) * outputs)
    return None


def _adaptive_avgpool_ops(x: torch.Tensor, out: torch.Tensor, name: str) -> LayerOps:
    """An adaptive average pool as an average pool: each output averages its own window.

    The windows of one axis cover the input, overlapping where the sizes do not
    divide, so the fan-ins summed over the outputs are ``C * sum(rows) * sum(cols)``;
    a global pool (output 1x1) costs ``M*N`` and ``(M-1)*N`` with ``M = H*W``.
    """
    (h, w), (oh, ow) = x.shape[-2:], out.shape[-2:]

    def covered(size: int, out_size: int) -> int:  # sum of window sizes along one axis
        return sum(-(-(i + 1) * size // out_size) - i * size // out_size for i in range(out_size))

    n = int(out.numel())
    mul = n // (oh * ow) * covered(h, oh) * covered(w, ow)
    return LayerOps(name, "avgpool", mul=mul, add=mul - n)


_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_MEAN_FUNCTIONS = (torch.mean,)


def _function_ops(node: fx.Node, args: tuple, kwargs: dict, out: object) -> LayerOps | None:
    """DNN cost of a traced function call: a tensor sum or a global spatial mean, or None."""
    if not isinstance(out, torch.Tensor):
        return None
    is_call = node.op == "call_function"
    if (is_call and node.target in _ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in ("add", "add_")
    ):
        if len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]):
            return LayerOps(node.name, "add", mul=0, add=int(out.numel()))
        return None
    if (is_call and node.target in _MEAN_FUNCTIONS) or (
        node.op == "call_method" and node.target == "mean"
    ):
        x = args[0] if args else None
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or dims is None:
            return None
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if not all(isinstance(d, int) for d in dims) or sorted(d % 4 for d in dims) != [2, 3]:
            return None
        m, n = int(x.shape[2] * x.shape[3]), int(out.numel())
        return LayerOps(node.name, "avgpool", mul=m * n, add=(m - 1) * n)
    if is_call and node.target is nn.functional.adaptive_avg_pool2d and args:
        return _adaptive_avgpool_ops(args[0], out, node.name)
    return None


class _CountingInterpreter(fx.Interpreter):
    """Runs a traced model, appending the cost of each counted function call in order."""

    def __init__(self, module: fx.GraphModule, found: list[LayerOps]) -> None:
        super().__init__(module)
        self.found = found

    def run_node(self, n: fx.Node) -> object:
        out = super().run_node(n)
        if n.op in ("call_function", "call_method"):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            ops = _function_ops(n, args, kwargs, out)
            if ops is not None:
                self.found.append(ops)
        return out


_HOOKED = (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)


class _Tracer(fx.Tracer):
    """The default tracer, but the hooked layers (subclasses too) stay single calls."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _HOOKED) or super().is_leaf_module(m, module_qualified_name)


def _traced(model: nn.Module) -> fx.GraphModule | None:
    """``model`` traced by torch.fx, or None if it needs no tracing or is not traceable.

    A model built only of ``torch.nn`` layers and containers (a plain ``nn.Sequential``,
    a bare layer) calls no functions of its own, so the hooks see all there is to count.
    """
    if isinstance(model, _HOOKED) or all(
        type(m).__module__.startswith("torch.nn.") for m in model.modules()
    ):
        return None
    try:
        return fx.GraphModule(model, _Tracer().trace(model))
    except Exception:  # untraceable (data-dependent control flow, ...): count with hooks only
        return None


@torch.no_grad()
def count_dnn_ops(model: nn.Module, input_shape: tuple[int, ...]) -> OpCounts:
    """Count a DNN's operations for one input of shape ``input_shape`` (no batch dim).

    Needs no data: the model runs once on zeros with hooks on its Conv2d, Linear,
    AvgPool2d, AdaptiveAvgPool2d and MaxPool2d layers.  A model with code of its
    own (not just ``torch.nn`` layers in an ``nn.Sequential``) runs traced by
    ``torch.fx``, so that its tensor sums (residual connections: ``N`` additions per
    extra input, kind ``"add"``) and global means (``x.mean((2, 3))``: an average
    pool) are counted too; one that fx cannot trace is counted with the hooks only.
    Other layers (ReLU, BatchNorm, G, concatenation) are free.  Layers are listed
    in execution order.
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
        if isinstance(module, _HOOKED):

            def hook(mod, inputs, output, name=name):
                if isinstance(mod, nn.AdaptiveAvgPool2d):
                    found.append(_adaptive_avgpool_ops(inputs[0], output, name))
                    return
                ops = dnn_layer_ops(mod, int(output[0].numel()), name)
                if ops is not None:
                    found.append(ops)

            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()  # before tracing: a forward that branches on self.training is traced in eval
    try:
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros((1, *shape), dtype=dtype, device=device)
        traced = _traced(model)
        if traced is not None:
            try:
                _CountingInterpreter(traced, found).run(x)
            except Exception:  # the traced graph does not run: count the model itself
                found.clear()
                traced = None
        if traced is None:
            model(x)
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
