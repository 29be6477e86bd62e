"""``prepare``: from a trained CNN to the G-DNN (Figure 2 of the paper).

The G-DNN is the CNN with ``G`` (eq. 11) before every synapse layer and a ReLU
after every hidden one, BatchNorm folded into the weights, Dropout removed and
input normalisation folded into the first layer so that the spiking input is
non-negative.  It is an ordinary ``nn.Sequential``: fine-tune it with any
training loop (the straight-through gradient of ``G`` makes that possible),
then hand it to :func:`tdsnn.convert`.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .coding import GCoding, check_coding, check_leak, check_min_time
from .errors import UnsupportedModelError
from .folding import fold_batchnorm, fold_input_affine, scale_input, scale_output
from .junctions import GlobalAvgPool
from .prepare_graph import GraphGDNN, prepare_graph
from .tracing import POOL_SYNAPSES, SUPPORTED_TEXT, SYNAPSE_LAYERS, is_chain, trace_graph

_WEIGHTED = (nn.Conv2d, nn.Linear)


class GDNN(nn.Sequential):
    """A prepared network: ``G`` before every synapse layer (see :func:`prepare`).

    Attributes: ``L`` (leak constant), ``input_scale`` (the spiking input is
    ``input_scale * pixel/255``-style data in ``[0, input_scale]``),
    ``activation_scales`` (per hidden synapse layer, already folded) and ``coding``
    (``"paper"`` or ``"sparse"``), ``min_time`` (sparse coding: the earliest spike time
    of a hidden neuron, :func:`tdsnn.coding.check_min_time`).
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        L: float,
        input_scale: float = 1.0,
        activation_scales: Sequence[float] = (),
        coding: str = "paper",
        min_time: int = 1,
    ) -> None:
        super().__init__()
        self.source_names: dict[str, str] = {}
        for name, module in _readable_names(layers):
            self.add_module(name, module)
        self.L = L
        self.input_scale = float(input_scale)
        self.activation_scales = tuple(float(s) for s in activation_scales)
        self.coding = check_coding(coding)
        self.min_time = check_min_time(min_time, self.coding)

    def synapse_layers(self) -> list[nn.Module]:
        """The Conv2d / Linear / AvgPool2d layers, in order; the last is the output layer."""
        return [m for m in self if isinstance(m, SYNAPSE_LAYERS)]


_KIND_PREFIX = {nn.Conv2d: "conv", nn.Linear: "fc", nn.AvgPool2d: "avgpool", GlobalAvgPool: "gap"}


def _readable_names(layers: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Name layers conv1, pool1, fc3, ...; G and ReLU after the synapse layer they serve."""
    out: list[tuple[str, nn.Module]] = []
    synapse = pool = 0
    pending_g: GCoding | None = None
    current = "input"
    for _, module in layers:
        if isinstance(module, GCoding):
            pending_g = module
            continue
        if isinstance(module, SYNAPSE_LAYERS):
            synapse += 1
            current = f"{_KIND_PREFIX[type(module)]}{synapse}"
            if pending_g is not None:
                out.append((f"{current}_G", pending_g))
                pending_g = None
            out.append((current, module))
        elif isinstance(module, nn.ReLU):
            out.append((f"{current}_relu", module))
        elif isinstance(module, nn.MaxPool2d):
            pool += 1
            out.append((f"pool{pool}", module))
        elif isinstance(module, nn.Flatten):
            out.append((f"flatten{synapse}", module))
        else:
            raise UnsupportedModelError(f"unexpected layer {type(module).__name__} in a G-DNN")
    return out


def _real(value: object, what: str, positive: bool = False) -> float:
    """``value`` as a finite float (``> 0`` with ``positive``), or a clear refusal."""
    valid = "a finite number > 0" if positive else "a finite number"
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_meta:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UnsupportedModelError(f"{what} must be {valid}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        raise UnsupportedModelError(f"{what} must be {valid}, got {value!r}")
    return number


def _positive(value: float, what: str) -> float:
    return _real(value, what, positive=True)


def _reals(value: object, what: str, positive: bool = False) -> list[float]:
    """A number or a non-empty sequence (list, tuple, 1-D tensor or array) of numbers."""
    if isinstance(value, Tensor) or hasattr(value, "tolist"):
        value = value.tolist()  # type: ignore[union-attr]
    if not isinstance(value, (list, tuple)):
        return [_real(value, what, positive)]
    if not value:
        raise UnsupportedModelError(f"{what} must not be empty")
    return [_real(v, f"{what}[{i}]", positive) for i, v in enumerate(value)]


def _check_parameters(model: nn.Module, what: str) -> None:
    """Refuse weights or statistics that are absent (meta, uninitialised) or not finite."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    for name, tensor in tensors:
        if isinstance(tensor, nn.parameter.UninitializedTensorMixin):
            raise UnsupportedModelError(
                f"{what} '{name}' is uninitialised (a lazy layer); run one forward pass first"
            )
        if tensor.is_meta:
            raise UnsupportedModelError(
                f"{what} '{name}' is on the meta device (it has no values); load real weights "
                "first (e.g. model.to_empty(device='cpu') and load_state_dict)"
            )
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        bad = int((~torch.isfinite(tensor.detach())).sum())
        if bad:
            raise UnsupportedModelError(
                f"{what} '{name}' has {bad} NaN or infinite value(s) out of {tensor.numel()}; "
                "every weight and BatchNorm statistic must be finite"
            )


def _fold_batchnorms(layers: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    out: list[tuple[str, nn.Module]] = []
    for name, module in layers:
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not out or not isinstance(out[-1][1], _WEIGHTED):
                previous = out[-1][0] if out else "the input"
                raise UnsupportedModelError(
                    f"BatchNorm '{name}' follows '{previous}', not a Conv2d/Linear, so it cannot "
                    "be folded into weights; place BatchNorm right after a conv or linear layer"
                )
            if module.running_mean is None or module.running_var is None:
                raise UnsupportedModelError(
                    f"BatchNorm '{name}' has no running statistics (track_running_stats=False)"
                )
            if bool((module.running_var + module.eps <= 0).any()):
                raise UnsupportedModelError(
                    f"BatchNorm '{name}' has running_var + eps <= 0; a variance must be >= 0"
                )
            out[-1] = (out[-1][0], fold_batchnorm(out[-1][1], module))
        elif isinstance(module, (nn.Dropout, nn.Dropout2d, nn.Identity)):
            continue
        elif isinstance(module, GCoding):
            raise UnsupportedModelError(
                f"layer '{name}' is already a GCoding: the model was prepared before; "
                "pass the prepared model to tdsnn.convert"
            )
        else:
            out.append((name, copy.deepcopy(module)))
    return out


def _place_relus(layers: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Keep exactly one ReLU after every hidden synapse layer, none elsewhere."""
    synapse_at = [i for i, (_, m) in enumerate(layers) if isinstance(m, SYNAPSE_LAYERS)]
    if not synapse_at:
        raise UnsupportedModelError(
            f"the model has no Conv2d, Linear or AvgPool2d layer; {SUPPORTED_TEXT}"
        )
    last = synapse_at[-1]
    for name, module in layers[last + 1 :]:
        if isinstance(module, nn.MaxPool2d):
            raise UnsupportedModelError(
                f"MaxPool2d '{name}' follows the output layer; the output layer must be the last "
                "Conv2d/Linear/AvgPool2d"
            )
    out: list[tuple[str, nn.Module]] = []
    for index, (name, module) in enumerate(layers):
        if isinstance(module, nn.ReLU):
            continue
        out.append((name, module))
        if isinstance(module, SYNAPSE_LAYERS) and index != last:
            following = layers[index + 1 : next(j for j in synapse_at if j > index)]
            has_relu = any(isinstance(m, nn.ReLU) for _, m in following)
            if not has_relu and isinstance(module, _WEIGHTED):
                warnings.warn(
                    f"no ReLU after hidden layer '{name}': one is inserted, since the SNN "
                    "encodes only non-negative activations; fine-tune the prepared model",
                    stacklevel=3,
                )
            out.append((f"{name}_relu", nn.ReLU()))
    if any(isinstance(m, nn.ReLU) for _, m in layers[last + 1 :]):
        warnings.warn(
            "the ReLU after the output layer is dropped: the SNN reads its output out as a "
            "potential, which may be negative",
            stacklevel=3,
        )
    return out


def _fold_scales(
    layers: list[tuple[str, nn.Module]],
    input_mean: Sequence[float] | None,
    input_std: Sequence[float] | None,
    input_scale: float,
    activation_scales: Sequence[float],
) -> list[tuple[str, nn.Module]]:
    synapse_at = [i for i, (_, m) in enumerate(layers) if isinstance(m, SYNAPSE_LAYERS)]
    hidden = synapse_at[:-1]
    if len(activation_scales) != len(hidden):
        raise UnsupportedModelError(
            f"activation_scales needs one value per hidden synapse layer ({len(hidden)}), "
            f"got {len(activation_scales)}"
        )
    layers = list(layers)
    pending = input_scale  # factor by which the next weighted layer's input is larger
    normalise = input_mean is not None or input_std is not None
    if normalise and (input_mean is None or input_std is None):
        raise UnsupportedModelError("give both input_mean and input_std, or neither")
    first = True
    scale_of = dict(zip(hidden, activation_scales, strict=True))
    for index in synapse_at:
        name, module = layers[index]
        if isinstance(module, _WEIGHTED):
            if first and normalise:
                assert input_mean is not None and input_std is not None
                module = fold_input_affine(module, input_mean, input_std, pending)
                if isinstance(module, nn.Conv2d) and any(p != 0 for p in _pads(module)):
                    warnings.warn(
                        f"input normalisation folded into the padded conv '{name}': zero padding "
                        "now means pixel value 0 instead of the mean, so border outputs change "
                        "slightly; fine-tune the prepared model",
                        stacklevel=3,
                    )
            elif pending != 1.0:
                module = scale_input(module, pending)
            pending = 1.0
            if index in scale_of and scale_of[index] != 1.0:
                module = scale_output(module, _positive(scale_of[index], f"scale of '{name}'"))
                pending = scale_of[index]
        else:  # AvgPool2d is linear and weightless: scales pass through it
            if first and normalise:
                raise UnsupportedModelError(
                    f"input normalisation cannot be folded into AvgPool2d '{name}': the first "
                    "synapse layer must be a Conv2d or Linear"
                )
            if index in scale_of and scale_of[index] != 1.0:
                raise UnsupportedModelError(
                    f"AvgPool2d '{name}' has no weights to fold an activation scale into"
                )
        first = False
        layers[index] = (name, module)
    return layers


def expected_g_gain(L: float) -> float:
    """kappa = L (exp(1/L) - 1): the mean of G(x) / (1 + x) over a level of G."""
    return L * math.expm1(1.0 / L)


@torch.no_grad()
def _compensate_g(
    layers: list[tuple[str, nn.Module]], L: float, coding: str = "paper"
) -> list[tuple[str, nn.Module]]:
    """Rescale weights so that the G-DNN starts close to the DNN it came from.

    ``G(x)`` is about ``kappa * (1 + x)``, not ``x``: a synapse layer fed by G sees
    its input scaled by ``a`` and shifted by ``c``.  Dividing the weights by ``a`` and
    subtracting ``(c / a) * W 1`` from the bias undoes that on average (exactly away
    from padded borders, up to the quantisation of G), so that fine-tuning starts
    from the trained model's accuracy instead of from a shifted network.  (This is
    ours, not the paper's.)

    Sparse coding: ``G_s(x)`` is about ``kappa (1 + x)`` for ``x > 0`` but 0 for ``x <= 0``,
    so the shift depends on which inputs are active and no bias can undo it: only the
    gain ``a`` is divided out, the shift of the active inputs is left to fine-tuning.
    """
    kappa = expected_g_gain(L)
    sparse = coding == "sparse"
    gain, offset = kappa, 0.0 if sparse else kappa  # the first sees G(u) ~ kappa (1 + u)
    out = []
    for name, module in layers:
        if isinstance(module, _WEIGHTED):
            module = copy.deepcopy(module)
            row_sums = module.weight.sum(dim=tuple(range(1, module.weight.dim())))
            if module.bias is None:
                module.bias = nn.Parameter(torch.zeros_like(row_sums))
            module.bias.sub_(row_sums * (offset / gain))
            module.weight.div_(gain)
            gain, offset = kappa, 0.0 if sparse else kappa  # its ReLU output passes G next
        elif isinstance(module, POOL_SYNAPSES):
            gain, offset = kappa * gain, 0.0 if sparse else kappa * (1.0 + offset)
        out.append((name, module))
    return out


def _check_folded(prepared: nn.Module) -> None:
    """The folds multiply and divide weights: refuse a result that left float range."""
    for name, tensor in prepared.named_parameters():
        bad = int((~torch.isfinite(tensor.detach())).sum())
        if bad:
            raise UnsupportedModelError(
                f"folding the normalisation, scales and G compensation into '{name}' gave "
                f"{bad} non-finite value(s) ({tensor.dtype} overflow): input_std, input_scale "
                "or activation_scales are too extreme for these weights"
            )


def _pads(conv: nn.Conv2d) -> tuple[int, ...]:
    if isinstance(conv.padding, str):
        return (0,) if conv.padding == "valid" else (1,)
    return tuple(conv.padding)


def prepare(
    model: nn.Module,
    L: float = 5.0,
    *,
    input_mean: Sequence[float] | float | None = None,
    input_std: Sequence[float] | float | None = None,
    input_scale: float = 1.0,
    activation_scales: Sequence[float] | float | None = None,
    compensate: bool = True,
    coding: str = "paper",
    min_time: int = 1,
) -> GDNN | GraphGDNN:
    """Return the G-DNN of a trained ``model`` (the model itself is not changed).

    Args:
        model: an ``nn.Sequential`` or a torch.fx-traceable module whose forward is a
            chain of Conv2d, Linear, AvgPool2d, MaxPool2d, ReLU, Flatten, BatchNorm and
            Dropout layers.
        L: the leak constant of eqs. (3)-(11).
        input_mean, input_std: the normalisation the model was trained with
            (``x = (u/input_scale - mean) / std``); folded into the first layer so that
            the SNN's input ``u`` is non-negative.
        input_scale: the spiking input is the model's (un-normalised) input times this
            factor; larger values give ``G`` more levels (and more latency).
        activation_scales: one factor per hidden synapse layer (or one for all) by which
            its activation is multiplied before ``G``; folded into the weights.
        compensate: rescale weights and biases for ``G(x) ~ kappa (1 + x)`` (see
            :func:`expected_g_gain`) so that the G-DNN starts near the DNN's accuracy;
            with False, G is inserted and nothing else changes.
        coding: ``"paper"`` (default; the paper's G, every neuron fires once) or
            ``"sparse"``: ``G_s(x) = 0`` for ``x <= 0`` (the neuron stays silent, its
            synapses carry nothing), ``G(x)`` otherwise, the network input included.
        min_time: sparse coding only (beyond the paper): a hidden neuron whose spike time
            ``T(x)`` would be below ``min_time`` stays silent (default 1: exactly the
            values ``x <= 0``; ``k`` also silences the first ``k - 1`` levels).  The
            network input keeps 1.
    """
    L = check_leak(L)
    coding = check_coding(coding)
    min_time = check_min_time(min_time, coding)
    input_scale = _positive(input_scale, "input_scale")
    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(f"prepare expects an nn.Module, got {type(model).__name__}")
    if input_mean is not None:
        input_mean = _reals(input_mean, "input_mean")
    if input_std is not None:
        input_std = _reals(input_std, "input_std", positive=True)
    if input_mean is not None and input_std is not None and len(input_std) != len(input_mean):
        raise UnsupportedModelError(
            f"input_mean has {len(input_mean)} values and input_std {len(input_std)}; give one "
            "per input channel (or one for all) for both"
        )
    _check_parameters(model, "parameter")
    nodes = trace_graph(model)
    if not is_chain(nodes):
        graph = prepare_graph(
            nodes, L, input_mean=input_mean, input_std=input_std, input_scale=input_scale,
            activation_scales=activation_scales, compensate=compensate, coding=coding,
            gain=expected_g_gain(L), min_time=min_time,
        )  # fmt: skip
        _check_folded(graph)
        graph.train(model.training)
        return graph
    layers = _place_relus(_fold_batchnorms([(n.label, n.module) for n in nodes]))
    hidden_count = sum(isinstance(m, SYNAPSE_LAYERS) for _, m in layers) - 1
    if activation_scales is None:
        scales: list[float] = [1.0] * hidden_count
    elif isinstance(activation_scales, (list, tuple)) or getattr(activation_scales, "ndim", 0):
        scales = _reals(activation_scales, "activation_scales", positive=True)
    else:
        scales = [_positive(activation_scales, "activation_scales")] * hidden_count
    layers = _fold_scales(layers, input_mean, input_std, input_scale, scales)
    if compensate:
        layers = _compensate_g(layers, L, coding)
    with_g: list[tuple[str, nn.Module]] = []
    for name, module in layers:
        if isinstance(module, SYNAPSE_LAYERS):  # the first G encodes the network input
            with_g.append((f"{name}_G", GCoding(L, coding, min_time if with_g else 1)))
        with_g.append((name, module))
    prepared = GDNN(
        with_g, L=L, input_scale=input_scale, activation_scales=scales, coding=coding,
        min_time=min_time,
    )
    _check_folded(prepared)
    prepared.train(model.training)
    return prepared
