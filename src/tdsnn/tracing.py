"""Turn a PyTorch model into the layers that TDSNN can convert.

torch.fx traces the model.  :func:`trace_graph` returns every node (a module and the
names of its inputs) in execution order, residual sums and concatenations included;
:func:`trace_chain` returns the layers of a single feed-forward chain, which the
chain path of :func:`tdsnn.prepare` takes unchanged.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from .coding import GCoding
from .errors import UnsupportedModelError
from .junctions import Concat, GlobalAvgPool, Sum

SYNAPSE_LAYERS = (nn.Conv2d, nn.Linear, nn.AvgPool2d, GlobalAvgPool)
POOL_SYNAPSES = (nn.AvgPool2d, GlobalAvgPool)  # weightless synapse layers
SUPPORTED_LAYERS = (
    nn.Conv2d,
    nn.Linear,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.Flatten,
    nn.ReLU,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    GCoding,
    GlobalAvgPool,
    Sum,
    Concat,
)
NEGATIVE_ACTIVATIONS = (
    nn.Tanh,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Mish,
)
# Non-negative, but not ReLU: a TDSNN neuron fires at T(ReLU(A)) and computes nothing else.
OTHER_ACTIVATIONS = (nn.Sigmoid, nn.Hardsigmoid, nn.Softplus, nn.Threshold)
SOFTMAX_LAYERS = (nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d)
SUPPORTED_TEXT = (
    "supported: nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.AdaptiveAvgPool2d(1) / x.mean((2, 3)) "
    "(synapse layers), nn.MaxPool2d, nn.ReLU / F.relu, nn.Flatten / torch.flatten(x, 1) / "
    "x.view(x.size(0), -1), nn.BatchNorm1d/2d (folded), nn.Dropout (removed), nn.Identity, "
    "residual sums (a + b, torch.add) into a ReLU and torch.cat(..., dim=1) of activations"
)
_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_}
_FLATTEN_FUNCTIONS = {torch.flatten}
_SIZE_METHODS = {"size"}


_CLIPPING_FUNCTIONS = {"relu6", "hardtanh", "clamp", "clip"}
_NEGATIVE_FUNCTIONS = {
    "tanh", "leaky_relu", "gelu", "silu", "elu", "selu", "celu", "mish", "hardswish", "prelu",
    "rrelu", "softsign", "hardshrink", "softshrink", "tanhshrink",
}  # fmt: skip
_OTHER_FUNCTIONS = {"sigmoid", "softplus", "hardsigmoid", "threshold"}
_SOFTMAX_FUNCTIONS = {"softmax", "log_softmax", "softmin"}


def _refuse(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{what}; {SUPPORTED_TEXT}")


def _function_reason(kind: str, node: str) -> str:
    """The refusal of a functional operation, with the reason for known activations."""
    base = kind.rstrip("_")
    what = f"operation '{kind}' at node '{node}' is not supported"
    if base in _CLIPPING_FUNCTIONS:
        return (
            f"{what}: it clips its output at an upper bound, which a TDSNN neuron (firing at "
            "T(ReLU(A)), unbounded) cannot represent; use ReLU and fine-tune"
        )
    if base in _NEGATIVE_FUNCTIONS:
        return f"{what}: it produces negative activations, which spike times cannot encode; use ReLU"
    if base in _OTHER_FUNCTIONS:
        return f"{what}: a TDSNN neuron fires at T(ReLU(A)), so ReLU is the only activation"
    if base in _SOFTMAX_FUNCTIONS:
        return f"{what}: drop the final softmax, the SNN's logits keep its argmax"
    return what


def _flatten_from_call(node: fx.Node) -> nn.Flatten:
    start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
    end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
    if start != 1 or end != -1:
        raise _refuse(f"flatten at '{node.name}' must keep the batch dimension (start_dim=1)")
    return nn.Flatten(1, -1)


def _view_as_flatten(node: fx.Node) -> nn.Flatten:
    """Accept ``x.view(x.size(0), -1)`` and ``x.reshape(B, -1)`` as a flatten."""
    shape = node.args[1:]
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if len(shape) == 2 and shape[1] == -1:
        return nn.Flatten(1, -1)
    raise _refuse(f"'{node.name}' reshapes to {shape!r}; only a flatten to (batch, -1) is allowed")


def _activation_reason(name: str, module: nn.Module) -> str | None:
    """Why an activation other than ReLU cannot be converted, or None for other layers."""
    kind = type(module).__name__
    if isinstance(module, nn.Hardtanh):  # ReLU6 is Hardtanh(0, 6)
        low = module.min_val
        negative = (
            f"produces negative values (down to {low:g}) and " if low < 0
            else f"raises values below {low:g} to {low:g} and " if low > 0 else ""
        )
        return (
            f"layer '{name}' ({kind}) {negative}clips its output at {module.max_val:g} "
            f"(min(x, {module.max_val:g})): a TDSNN neuron fires at T(ReLU(A)), which grows "
            "without bound, so an upper clip cannot be represented; replace it with nn.ReLU "
            "and fine-tune"
        )
    if isinstance(module, NEGATIVE_ACTIVATIONS):
        return (
            f"layer '{name}' ({kind}) produces negative activations, which reverse temporal "
            "coding cannot represent (a spike time is never negative); use ReLU"
        )
    if isinstance(module, OTHER_ACTIVATIONS):
        return (
            f"layer '{name}' ({kind}) is not supported: a TDSNN neuron fires at T(ReLU(A)), "
            "so ReLU is the only activation the SNN computes; replace it with nn.ReLU and "
            "fine-tune"
        )
    if isinstance(module, SOFTMAX_LAYERS):
        return (
            f"layer '{name}' ({kind}) is not supported: the SNN reads its output out as "
            "potentials (logits); drop the final softmax, the argmax is unchanged"
        )
    return None


def _check_module(name: str, module: nn.Module) -> None:
    reason = _activation_reason(name, module)
    if reason is not None:
        raise _refuse(reason)
    if isinstance(module, SUPPORTED_LAYERS) and type(module) not in SUPPORTED_LAYERS:
        base = next(t for t in SUPPORTED_LAYERS if isinstance(module, t)).__name__
        raise _refuse(
            f"layer '{name}' ({type(module).__name__}) is a subclass of nn.{base}, which may "
            f"compute something else (or hold uninitialised weights); use a plain nn.{base}"
        )
    if isinstance(module, nn.AdaptiveAvgPool2d):
        if module.output_size not in (1, (1, 1), [1, 1]):
            raise _refuse(
                f"layer '{name}': AdaptiveAvgPool2d({module.output_size!r}) is not supported; "
                "only global average pooling, AdaptiveAvgPool2d(1)"
            )
        return
    if not isinstance(module, SUPPORTED_LAYERS):
        raise _refuse(f"layer '{name}' ({type(module).__name__}) is not supported")
    if isinstance(module, nn.MaxPool2d) and module.dilation not in (1, (1, 1)):
        raise _refuse(f"layer '{name}': MaxPool2d with dilation is not supported")
    if isinstance(module, nn.MaxPool2d) and module.return_indices:
        raise _refuse(f"layer '{name}': MaxPool2d(return_indices=True) is not supported")
    if isinstance(module, nn.AvgPool2d) and module.divisor_override is not None:
        raise _refuse(f"layer '{name}': AvgPool2d(divisor_override=...) is not supported")
    if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
        raise _refuse(
            f"layer '{name}': Conv2d(padding_mode='{module.padding_mode}') is not supported; "
            "zero padding is silence in the SNN"
        )


@dataclass
class Node:
    """One traced operation: ``module`` applied to the outputs of ``inputs`` (node names;
    ``"input"`` is the network input).  ``label`` is the name the user knows it by."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]
    label: str


INPUT = "input"
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_CAT_FUNCTIONS = {torch.cat, torch.concat, torch.concatenate}
_MEAN_FUNCTIONS = {torch.mean}


def _as_layer(module: nn.Module) -> nn.Module:
    """The G-DNN's layer for a checked user module (global pooling gets its own class;
    a ReLU a fresh, not in-place one, so that a module used twice becomes two)."""
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return GlobalAvgPool()
    if isinstance(module, nn.ReLU):
        return nn.ReLU()
    return module


def trace_chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return ``(name, module)`` for every layer of ``model`` in execution order.

    Raises :class:`UnsupportedModelError` naming the offending layer when the model
    is not a feed-forward chain of supported layers or cannot be traced.
    """
    if isinstance(model, nn.Sequential):
        layers: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            if isinstance(child, nn.Sequential):
                layers.extend((f"{name}.{n}", m) for n, m in trace_chain(child))
            else:
                _check_module(name, child)
                layers.append((name, _as_layer(child)))
        return layers
    nodes = trace_graph(model)
    node = _off_chain(nodes)
    if node is not None:
        raise _refuse(
            f"node '{node.label}' ({type(node.module).__name__}) does not continue a single "
            "chain (residual adds, concatenations and branches take the graph path)"
        )
    return [(node.label, node.module) for node in nodes]


def _off_chain(nodes: list[Node]) -> Node | None:
    """The first node that does not take the previous one's output alone, if any."""
    previous = INPUT
    for node in nodes:
        if node.inputs != (previous,) or isinstance(node.module, (Sum, Concat)):
            return node
        previous = node.name
    return None


def is_chain(nodes: list[Node]) -> bool:
    """Whether traced nodes form one chain (each node takes the previous one's output)."""
    return _off_chain(nodes) is None


def _safe_name(label: str, taken: set[str]) -> str:
    name = label.replace(".", "_") or "node"
    base, k = name, 1
    while name in taken or name == INPUT:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def trace_graph(model: nn.Module) -> list[Node]:
    """Every operation of ``model`` in execution order, as :class:`Node` s.

    A plain ``nn.Sequential`` of supported layers is returned as a chain without
    tracing; anything else is traced with torch.fx.  Raises
    :class:`UnsupportedModelError` naming the node that is not supported.
    """
    if isinstance(model, nn.Sequential):
        try:
            layers = trace_chain(model)
        except UnsupportedModelError:
            if not _has_blocks(model):
                raise
            layers = None  # a block with its own forward inside: trace it as a graph
        if layers is not None:
            taken: set[str] = set()
            out, previous = [], INPUT
            for label, module in layers:
                name = _safe_name(label, taken)
                out.append(Node(name, module, (previous,), label))
                previous = name
            return out
    try:
        graph_module = fx.symbolic_trace(model)
    except Exception as exc:  # torch.fx raises many kinds of errors
        raise UnsupportedModelError(
            f"{type(model).__name__} cannot be traced by torch.fx ({type(exc).__name__}: {exc}); "
            "write its forward with the supported operations or pass an nn.Sequential; "
            + SUPPORTED_TEXT
        ) from exc
    modules = dict(graph_module.named_modules())
    used: dict[int, str] = {}  # module id -> the node that called it first
    nodes: list[Node] = []
    names: dict[fx.Node, str] = {}
    taken: set[str] = set()
    placeholder = None
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            if placeholder is not None:
                raise _refuse(f"{type(model).__name__}.forward takes more than one input")
            placeholder = node
            names[node] = INPUT
            continue
        if node.op == "output":
            result = node.args[0]
            if not isinstance(result, fx.Node) or result not in names:
                raise _refuse("the model's output must be a single tensor computed by its layers")
            if names[result] == INPUT and not nodes:
                return []  # no layer at all: prepare says what is missing
            if names[result] == INPUT or nodes[-1].name != names[result]:
                raise _refuse("the model's output must be its last operation")
            break
        if node.op == "call_method" and node.target in _SIZE_METHODS:
            continue  # only feeds the shape of a view/reshape, checked there
        if node.op == "call_function" and node.target is operator.getitem and _is_size(node.args[0]):
            continue
        if node.op == "get_attr":
            raise _refuse(f"node '{node.name}' reads a tensor attribute ('{node.target}')")
        inputs = [a for a in node.all_input_nodes if not _is_size(a)]
        if any(a not in names for a in inputs):
            raise _refuse(f"node '{node.name}' takes an input that is not supported")
        label = str(node.target) if node.op == "call_module" else node.name
        made = _node_layers(node, modules)
        if node.op == "call_module":
            module = modules[node.target]
            if id(module) in used and any(True for _ in module.parameters()):
                raise _refuse(
                    f"layer '{node.target}' is called twice (at '{used[id(module)]}' and "
                    f"'{node.name}'): shared weights are not supported; use two layers"
                )
            used.setdefault(id(module), node.name)
            if made[0] is module and id(module) in used and used[id(module)] != node.name:
                made = [copy.deepcopy(module)]  # a stateless layer used again: its own copy
        source = tuple(names[a] for a in _ordered_inputs(node, inputs))
        for k, module in enumerate(made):
            last = k == len(made) - 1
            name = _safe_name(label if last else f"{label}_pool", taken)
            nodes.append(Node(name, module, source, label))
            source = (name,)
        names[node] = nodes[-1].name
    return nodes


def _has_blocks(model: nn.Sequential) -> bool:
    """Whether a Sequential holds a module with children of its own (not a Sequential)."""
    for child in model.children():
        if isinstance(child, nn.Sequential):
            if _has_blocks(child):
                return True
        elif any(True for _ in child.children()):
            return True
    return False


def _ordered_inputs(node: fx.Node, inputs: list[fx.Node]) -> list[fx.Node]:
    """The tensor inputs of ``node`` in argument order (``torch.cat`` takes a list)."""
    if node.op == "call_function" and node.target in _CAT_FUNCTIONS:
        parts = node.args[0] if node.args else node.kwargs.get("tensors", ())
        return [p for p in parts if isinstance(p, fx.Node)]
    return inputs


def _node_layers(node: fx.Node, modules: dict[str, nn.Module]) -> list[nn.Module]:
    """The G-DNN layer(s) that one fx node stands for, or a refusal naming it."""
    tensor_args = [a for a in node.all_input_nodes if not _is_size(a)]
    if node.op == "call_module":
        module = modules[node.target]
        _check_module(str(node.target), module)
        if isinstance(module, (Sum, Concat)):
            raise _refuse(f"layer '{node.target}' ({type(module).__name__}) is internal to tdsnn")
        return [_as_layer(module)]
    target = node.target
    if node.op == "call_function" and target in _RELU_FUNCTIONS:
        return [nn.ReLU()]
    if node.op == "call_method" and target in ("relu", "relu_"):
        return [nn.ReLU()]
    if (node.op == "call_function" and target in _FLATTEN_FUNCTIONS) or (
        node.op == "call_method" and target == "flatten"
    ):
        return [_flatten_from_call(node)]
    if node.op == "call_method" and target in ("view", "reshape"):
        return [_view_as_flatten(node)]
    adds = (node.op == "call_function" and target in _ADD_FUNCTIONS) or (
        node.op == "call_method" and target in ("add", "add_", "__add__", "__iadd__")
    )
    if adds:
        others = [a for a in node.args[1:] if not isinstance(a, fx.Node)]
        if len(tensor_args) < 2 or others or node.kwargs.get("alpha", 1) != 1:
            raise _refuse(
                f"operation '{getattr(target, '__name__', target)}' at node '{node.name}' adds a "
                "constant or a scaled tensor; only sums of activations (residual adds) are "
                "supported"
            )
        return [Sum()]
    if node.op == "call_function" and target in _CAT_FUNCTIONS:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim != 1:
            raise _refuse(f"torch.cat at node '{node.name}' must join channels (dim=1), got {dim}")
        return [Concat()]
    means = (node.op == "call_function" and target in _MEAN_FUNCTIONS) or (
        node.op == "call_method" and target == "mean"
    )
    if means:
        return _mean_layers(node)
    kind = getattr(target, "__name__", str(target))
    raise _refuse(_function_reason(kind, node.name))


def _mean_layers(node: fx.Node) -> list[nn.Module]:
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    keepdim = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
    if isinstance(dims, list):
        dims = tuple(dims)
    if dims not in ((2, 3), (-2, -1), (3, 2), (-1, -2)):
        raise _refuse(
            f"mean at node '{node.name}' over {dims!r}: only global average pooling, "
            "x.mean((2, 3)), is supported"
        )
    return [GlobalAvgPool()] if keepdim else [GlobalAvgPool(), nn.Flatten(1, -1)]


def _is_size(node: object) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target in _SIZE_METHODS:
        return True
    return node.op == "call_function" and node.target is operator.getitem and _is_size(node.args[0])
