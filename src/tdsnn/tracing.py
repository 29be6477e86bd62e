"""Turn a PyTorch model into the flat chain of layers that TDSNN can convert.

torch.fx traces the model; the graph must be a single feed-forward chain (no
residual adds, no concatenations) of the supported layers.  Each node becomes
one module of the returned list, in execution order.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from .coding import GCoding
from .errors import UnsupportedModelError

SYNAPSE_LAYERS = (nn.Conv2d, nn.Linear, nn.AvgPool2d)
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
    "supported: nn.Conv2d, nn.Linear, nn.AvgPool2d (synapse layers), nn.MaxPool2d, "
    "nn.ReLU, nn.Flatten / torch.flatten(x, 1) / x.view(x.size(0), -1), nn.BatchNorm1d/2d "
    "(folded), nn.Dropout (removed), nn.Identity, in a single feed-forward chain"
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
                layers.append((name, child))
        return layers
    try:
        graph_module = fx.symbolic_trace(model)
    except Exception as exc:  # torch.fx raises many kinds of errors
        raise UnsupportedModelError(
            f"{type(model).__name__} cannot be traced by torch.fx ({type(exc).__name__}: {exc}); "
            "write its forward as a plain chain of layers or pass an nn.Sequential; "
            + SUPPORTED_TEXT
        ) from exc
    modules = dict(graph_module.named_modules())
    layers = []
    current: fx.Node | None = None
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise _refuse(f"{type(model).__name__}.forward takes more than one input")
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise _refuse("the model's output is not the end of its layer chain")
            break
        if node.op == "call_method" and node.target in _SIZE_METHODS:
            continue  # only feeds the shape of a view/reshape, checked there
        if node.op == "call_function" and node.target is operator.getitem and _is_size(node.args[0]):
            continue
        inputs = [a for a in node.all_input_nodes if not _is_size(a)]
        if len(inputs) != 1 or inputs[0] is not current:
            what = node.target if node.op != "call_module" else node.target
            kind = getattr(what, "__name__", str(what))
            raise _refuse(
                f"node '{node.name}' ({kind}) does not continue a single chain "
                "(residual adds, concatenations and branches are not supported)"
            )
        if node.op == "call_module":
            module = modules[node.target]
            _check_module(str(node.target), module)
            layers.append((str(node.target), module))
        elif node.op == "call_function" and node.target in _RELU_FUNCTIONS:
            layers.append((node.name, nn.ReLU()))
        elif node.op == "call_function" and node.target in _FLATTEN_FUNCTIONS:
            layers.append((node.name, _flatten_from_call(node)))
        elif node.op == "call_method" and node.target == "flatten":
            layers.append((node.name, _flatten_from_call(node)))
        elif node.op == "call_method" and node.target in ("view", "reshape"):
            layers.append((node.name, _view_as_flatten(node)))
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            layers.append((node.name, nn.ReLU()))
        else:
            kind = getattr(node.target, "__name__", str(node.target))
            raise _refuse(_function_reason(kind, node.name))
        current = node
    return layers


def _is_size(node: object) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target in _SIZE_METHODS:
        return True
    return node.op == "call_function" and node.target is operator.getitem and _is_size(node.args[0])
