"""``prepare`` for networks that are not a chain: residual sums, shortcuts, concatenation.

The G-DNN of a graph (design note, "Residual networks") applies ``G`` exactly once to
every population (the network input and every ReLU output) before any synapse, and
forms a residual sum inside the receiving neuron: for a basic block,
``out = ReLU(conv2(G(h)) + shortcut(G(x)))``, where an identity shortcut delivers
``G(x)`` with weight 1 and a projection shortcut is an ordinary synapse layer on
``G(x)``.  Max-pool, flatten and concatenation act on the ``G`` values (``G`` is
monotone, so ``max`` and ``G`` commute).  The result is a :class:`GraphGDNN`: an
ordinary module to fine-tune, which :func:`tdsnn.convert` turns into a graph SNN.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .coding import GCoding, check_coding, check_min_time
from .errors import UnsupportedModelError
from .folding import fold_batchnorm, fold_input_affine, scale_input
from .junctions import Concat, Sum
from .tracing import INPUT, POOL_SYNAPSES, SUPPORTED_TEXT, SYNAPSE_LAYERS, Node

_WEIGHTED = (nn.Conv2d, nn.Linear)
_REMOVED = (nn.Dropout, nn.Dropout2d, nn.Identity)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


class GraphGDNN(nn.Sequential):
    """A prepared network that is a graph: ``wiring`` lists every node's inputs.

    Its modules are registered in execution order, so iterating it gives the layers
    in that order (as for the chain :class:`~tdsnn.prepare.GDNN`); ``forward`` walks
    ``wiring``.  Attributes as for ``GDNN``: ``L``, ``input_scale``,
    ``activation_scales`` (empty: not supported on graphs), ``coding``, ``min_time``.
    """

    def __init__(
        self,
        nodes: Sequence[tuple[str, nn.Module, tuple[str, ...]]],
        L: float,
        input_scale: float = 1.0,
        coding: str = "paper",
        min_time: int = 1,
    ) -> None:
        super().__init__()
        self.wiring: list[tuple[str, tuple[str, ...]]] = []
        for name, module, inputs in nodes:
            self.add_module(name, module)
            self.wiring.append((name, tuple(inputs)))
        self.L = L
        self.input_scale = float(input_scale)
        self.activation_scales: tuple[float, ...] = ()
        self.coding = check_coding(coding)
        self.min_time = check_min_time(min_time, self.coding)
        self.source_names: dict[str, str] = {}

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        values = {INPUT: x}
        modules = self._modules
        for name, inputs in self.wiring:
            values[name] = modules[name](*(values[i] for i in inputs))
        return values[self.wiring[-1][0]]

    def synapse_layers(self) -> list[nn.Module]:
        """The Conv2d / Linear / average-pool layers, in execution order."""
        return [m for m in self if isinstance(m, SYNAPSE_LAYERS)]


class _Graph:
    """A mutable copy of the traced nodes, with the rewrites prepare needs."""

    def __init__(self, nodes: list[Node]) -> None:
        self.order = [n.name for n in nodes]
        self.module = {n.name: n.module for n in nodes}
        self.inputs = {n.name: tuple(n.inputs) for n in nodes}
        self.label = {n.name: n.label for n in nodes}
        self.output = self.order[-1]

    def consumers(self, name: str) -> list[str]:
        return [n for n in self.order if name in self.inputs[n]]

    def users(self, name: str) -> int:
        """How many times ``name`` is read (the output counts once)."""
        return sum(self.inputs[n].count(name) for n in self.order) + (name == self.output)

    def bypass(self, name: str, by: str) -> None:
        """Remove ``name``; its readers read ``by`` instead."""
        for n in self.order:
            self.inputs[n] = tuple(by if i == name else i for i in self.inputs[n])
        if self.output == name:
            self.output = by
        self.order.remove(name)

    def insert_after(self, name: str, new: str, module: nn.Module, readers: list[str]) -> None:
        """Put ``module`` (named ``new``) between ``name`` and ``readers``."""
        self.order.insert(self.order.index(name) + 1, new)
        self.module[new], self.inputs[new], self.label[new] = module, (name,), new
        for n in readers:
            self.inputs[n] = tuple(new if i == name else i for i in self.inputs[n])
        if self.output == name and not readers:
            self.output = new

    def is_value(self, name: str) -> bool:
        """A population (or a reshaping / joining of populations): non-negative spikes."""
        if name == INPUT:
            return True
        m = self.module[name]
        if isinstance(m, (nn.ReLU, nn.MaxPool2d, Concat)):
            return True
        return isinstance(m, nn.Flatten) and self.is_value(self.inputs[name][0])

    def what(self, name: str) -> str:
        if name == INPUT:
            return "the network input"
        return f"'{self.label[name]}' ({type(self.module[name]).__name__})"


def prepare_graph(
    nodes: list[Node],
    L: float,
    *,
    input_mean: Sequence[float] | None,
    input_std: Sequence[float] | None,
    input_scale: float,
    activation_scales: object,
    compensate: bool,
    coding: str,
    gain: float,
    min_time: int = 1,
) -> GraphGDNN:
    """The G-DNN of a traced graph (see the module docstring); arguments as for prepare,
    ``gain`` the expected gain ``kappa`` of ``G``."""
    if activation_scales is not None and not _all_one(activation_scales):
        raise UnsupportedModelError(
            "activation_scales are not supported on networks with sums or concatenations "
            "(an identity shortcut has no weight to fold them into); use input_scale"
        )
    graph = _Graph(nodes)
    _remove_and_fold(graph)
    _place_relus(graph)
    _check_structure(graph)
    _fold_input(graph, input_mean, input_std, input_scale)
    if compensate:
        _compensate(graph, gain, coding == "sparse")
    prepared = GraphGDNN(_with_g(graph, L, coding, min_time), L, input_scale, coding, min_time)
    return prepared


def _all_one(value: object) -> bool:
    if isinstance(value, Tensor) or hasattr(value, "tolist"):
        value = value.tolist()  # type: ignore[union-attr]
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(isinstance(v, (int, float)) and float(v) == 1.0 for v in values)


def _remove_and_fold(graph: _Graph) -> None:
    """Drop Dropout / Identity, fold every BatchNorm into the conv or linear before it,
    and merge nested sums (``a + b + c``) into one."""
    for name in list(graph.order):
        module = graph.module[name]
        if isinstance(module, GCoding):
            raise UnsupportedModelError(
                f"layer '{graph.label[name]}' is already a GCoding: the model was prepared "
                "before; pass the prepared model to tdsnn.convert"
            )
        if isinstance(module, _REMOVED):
            graph.bypass(name, graph.inputs[name][0])
        elif isinstance(module, _BATCHNORMS):
            source = graph.inputs[name][0]
            layer = graph.module.get(source)
            if not isinstance(layer, _WEIGHTED) or graph.users(source) != 1:
                raise UnsupportedModelError(
                    f"BatchNorm '{graph.label[name]}' follows {graph.what(source)}, not a "
                    "Conv2d/Linear read only by it, so it cannot be folded into weights; place "
                    "BatchNorm right after a conv or linear layer"
                )
            if module.running_mean is None or module.running_var is None:
                raise UnsupportedModelError(
                    f"BatchNorm '{graph.label[name]}' has no running statistics "
                    "(track_running_stats=False)"
                )
            if bool((module.running_var + module.eps <= 0).any()):
                raise UnsupportedModelError(
                    f"BatchNorm '{graph.label[name]}' has running_var + eps <= 0"
                )
            graph.module[source] = fold_batchnorm(layer, module)
            graph.bypass(name, source)
        elif isinstance(module, SYNAPSE_LAYERS + (nn.MaxPool2d,)):
            graph.module[name] = copy.deepcopy(module)
    for name in list(graph.order):
        if name in graph.order and isinstance(graph.module[name], Sum):
            merged: list[str] = []
            for branch in graph.inputs[name]:
                inner = graph.module.get(branch)
                if isinstance(inner, Sum) and graph.users(branch) == 1:
                    merged.extend(graph.inputs[branch])
                    graph.order.remove(branch)
                else:
                    merged.append(branch)
            graph.inputs[name] = tuple(merged)


def _place_relus(graph: _Graph) -> None:
    """A ReLU after every hidden synapse layer read by anything but a ReLU or a sum;
    ReLUs of activations (already >= 0) removed; the output's ReLU dropped."""
    for name in list(graph.order):
        module = graph.module[name]
        if isinstance(module, nn.ReLU) and graph.is_value(graph.inputs[name][0]):
            graph.bypass(name, graph.inputs[name][0])
    last = graph.output
    if isinstance(graph.module.get(last), nn.ReLU) and graph.users(last) == 1:
        warnings.warn(
            "the ReLU after the output layer is dropped: the SNN reads its output out as a "
            "potential, which may be negative",
            stacklevel=4,
        )
        graph.bypass(last, graph.inputs[last][0])
    for name in list(graph.order):
        module = graph.module[name]
        if not isinstance(module, SYNAPSE_LAYERS) or name == graph.output:
            continue
        readers = graph.consumers(name)
        if len(readers) == 1 and isinstance(graph.module[readers[0]], (nn.ReLU, Sum)):
            continue
        weighted = isinstance(module, _WEIGHTED)
        if weighted and any(isinstance(graph.module[r], (nn.ReLU, Sum)) for r in readers):
            raise UnsupportedModelError(
                f"the output of {graph.what(name)} is read by several nodes "
                f"({', '.join(graph.label[r] for r in readers)}); a synapse layer's "
                "pre-activation can feed one ReLU or one sum only"
            )
        if weighted:
            warnings.warn(
                f"no ReLU after hidden layer '{graph.label[name]}': one is inserted, since the "
                "SNN encodes only non-negative activations; fine-tune the prepared model",
                stacklevel=4,
            )
        # (average pooling of activations is >= 0: its ReLU changes nothing)
        graph.insert_after(name, f"{name}_relu", nn.ReLU(), readers)
    for name in list(graph.order):  # ReLUs that now read a ReLU
        if isinstance(graph.module[name], nn.ReLU) and graph.is_value(graph.inputs[name][0]):
            graph.bypass(name, graph.inputs[name][0])


def _check_structure(graph: _Graph) -> None:
    """What the SNN can realise: sums of synapse outputs and activations into one ReLU,
    pooling and joining of activations only, a synapse group at the output."""
    if not any(isinstance(graph.module[n], SYNAPSE_LAYERS) for n in graph.order):
        raise UnsupportedModelError(f"the model has no Conv2d, Linear or AvgPool2d layer; {SUPPORTED_TEXT}")
    out = graph.output
    if out == INPUT or not isinstance(graph.module[out], SYNAPSE_LAYERS + (Sum,)):
        raise UnsupportedModelError(
            f"the model's output is {graph.what(out)}; it must be a synapse layer (Conv2d, "
            "Linear, average pooling) or a sum of them, read out as potentials"
        )
    for name in graph.order:
        module, inputs = graph.module[name], graph.inputs[name]
        if isinstance(module, Sum):
            for branch in inputs:
                if graph.is_value(branch):
                    continue
                inner = graph.module.get(branch)
                if not isinstance(inner, _WEIGHTED) or graph.users(branch) != 1:
                    raise UnsupportedModelError(
                        f"sum '{graph.label[name]}' adds {graph.what(branch)}: a branch of a "
                        "sum must be a Conv2d/Linear read only by the sum (a synapse of the "
                        f"receiving neuron) or an activation (an identity shortcut); {SUPPORTED_TEXT}"
                    )
            readers = graph.consumers(name)
            relu = len(readers) == 1 and isinstance(graph.module[readers[0]], nn.ReLU)
            if not (relu or (name == out and not readers)):
                raise UnsupportedModelError(
                    f"sum '{graph.label[name]}' feeds "
                    f"{', '.join(graph.what(r) for r in readers) or 'the output and more'} "
                    "without a ReLU: its branches can carry negative values, which a spiking "
                    f"neuron cannot send; put a ReLU after the sum; {SUPPORTED_TEXT}"
                )
        elif isinstance(module, (SYNAPSE_LAYERS, nn.MaxPool2d, Concat, nn.Flatten)):
            for source in inputs:
                if not graph.is_value(source):
                    raise UnsupportedModelError(
                        f"{graph.what(name)} reads {graph.what(source)}, which is not an "
                        f"activation (a ReLU output or the input); put a ReLU before it; {SUPPORTED_TEXT}"
                    )
        elif not isinstance(module, nn.ReLU):
            raise UnsupportedModelError(
                f"layer '{graph.label[name]}' ({type(module).__name__}) cannot be part of a "
                f"G-DNN graph; {SUPPORTED_TEXT}"
            )


def _input_readers(graph: _Graph) -> list[str]:
    """The layers that take the network input (through flattens)."""
    found, frontier = [], [INPUT]
    while frontier:
        source = frontier.pop()
        for reader in graph.consumers(source):
            if isinstance(graph.module[reader], nn.Flatten):
                frontier.append(reader)
            else:
                found.append(reader)
    return found


def _fold_input(
    graph: _Graph,
    input_mean: Sequence[float] | None,
    input_std: Sequence[float] | None,
    input_scale: float,
) -> None:
    """Fold the input normalisation and ``input_scale`` into every layer reading the input."""
    normalise = input_mean is not None or input_std is not None
    if normalise and (input_mean is None or input_std is None):
        raise UnsupportedModelError("give both input_mean and input_std, or neither")
    if not normalise and input_scale == 1.0:
        return
    for reader in _input_readers(graph):
        module = graph.module[reader]
        if not isinstance(module, _WEIGHTED):
            raise UnsupportedModelError(
                f"the input normalisation / input_scale cannot be folded into "
                f"{graph.what(reader)}, which reads the network input: only a Conv2d or "
                "Linear reading the input can absorb it"
            )
        if normalise:
            assert input_mean is not None and input_std is not None
            graph.module[reader] = fold_input_affine(module, input_mean, input_std, input_scale)
        else:
            graph.module[reader] = scale_input(module, input_scale)


@torch.no_grad()
def _compensate(graph: _Graph, kappa: float, sparse: bool) -> None:
    """Rescale weights so that the G-DNN starts near the DNN (ours, not the paper's).

    Each activation ``y`` of the G-DNN is tracked as about ``gain * y_dnn + offset``;
    ``G(y)`` is about ``kappa (1 + offset + gain y_dnn)`` (sparse: without the ``1 +
    offset``, which depends on which inputs fire).  A synapse branch divides that gain
    out and subtracts the offset through its bias; a sum with an identity shortcut
    cannot rescale the shortcut, so its other branches take the shortcut's gain instead
    and the sum's bias absorbs the shortcut's offset.
    """
    relation: dict[str, tuple[float, float]] = {INPUT: (1.0, 0.0)}

    def seen(source: str) -> tuple[float, float]:
        gain, offset = relation[source]
        return kappa * gain, 0.0 if sparse else kappa * (1.0 + offset)

    for name in graph.order:
        module, inputs = graph.module[name], graph.inputs[name]
        if isinstance(module, (nn.MaxPool2d, nn.Flatten, Concat)):
            relation[name] = relation[inputs[0]]
        elif isinstance(module, nn.ReLU):
            relation[name] = relation[inputs[0]]
        elif isinstance(module, POOL_SYNAPSES):
            relation[name] = seen(inputs[0])
        elif isinstance(module, _WEIGHTED) and graph.consumers(name) and isinstance(
            graph.module[graph.consumers(name)[0]], Sum
        ):
            continue  # compensated with its sum
        elif isinstance(module, _WEIGHTED):
            _rescale(graph, name, *seen(inputs[0]), target=1.0)
            relation[name] = (1.0, 0.0)
        elif isinstance(module, Sum):
            identities = [b for b in inputs if graph.is_value(b)]
            target = seen(identities[0])[0] if identities else 1.0
            shift = sum(seen(b)[1] for b in identities)
            weighted = [b for b in inputs if not graph.is_value(b)]
            for branch in weighted:
                _rescale(graph, branch, *seen(graph.inputs[branch][0]), target=target)
            if weighted and shift:
                first = graph.module[weighted[0]]
                first.bias.sub_(shift)
            relation[name] = (target, 0.0)


def _rescale(graph: _Graph, name: str, gain: float, offset: float, target: float) -> None:
    """``W' = W target / gain``, ``b' = target b - offset W' 1``: the branch reads
    ``G ~ gain x + offset`` and yields ``target (W x + b)``."""
    module = copy.deepcopy(graph.module[name])
    row_sums = module.weight.sum(dim=tuple(range(1, module.weight.dim())))
    if module.bias is None:
        module.bias = nn.Parameter(torch.zeros_like(row_sums))
    module.weight.mul_(target / gain)
    module.bias.mul_(target).sub_(row_sums * (target * offset / gain))
    graph.module[name] = module


def _with_g(
    graph: _Graph, L: float, coding: str, min_time: int = 1
) -> list[tuple[str, nn.Module, tuple[str, ...]]]:
    """The nodes with ``G`` after the input (``min_time`` 1) and after every ReLU that is read."""
    out: list[tuple[str, nn.Module, tuple[str, ...]]] = []
    renamed: dict[str, str] = {}

    def read(source: str) -> str:
        return renamed.get(source, source)

    if graph.consumers(INPUT):
        out.append(("input_G", GCoding(L, coding), (INPUT,)))
        renamed[INPUT] = "input_G"
    for name in graph.order:
        module = graph.module[name]
        out.append((name, module, tuple(read(i) for i in graph.inputs[name])))
        if isinstance(module, nn.ReLU) and graph.consumers(name):
            out.append((f"{name}_G", GCoding(L, coding, min_time), (name,)))
            renamed[name] = f"{name}_G"
    if out[-1][0] != graph.output:
        raise UnsupportedModelError(f"the model's output {graph.what(graph.output)} is not its last node")
    return out
