"""A sparsity regulariser for G-DNN fine-tuning in sparse coding (workflow, not engine).

In sparse coding (``tdsnn.prepare(..., coding="sparse")``) a neuron whose value is
``x <= 0`` stays silent: it emits no spike and its synapses carry no event.  The
SNN's cost (synaptic events, energy) then follows the number of neurons that fire,
so fine-tuning can trade accuracy for events by penalising active neurons.

:class:`SpikePenalty` measures, during the forward pass, a differentiable count of
the non-silent neurons: it hooks every sparse :class:`tdsnn.coding.GCoding` module
and sees the values ``x`` that ``G_s`` turns into spikes.  For one neuron the soft
count is::

    s(x) = clamp(x / w, 0, 1),     w = exp(1/L) - 1   (the width of G's first level)

which is 0 for a silent neuron (``x <= 0``) and 1 for every neuron above the first
level; its gradient ``1/w`` on ``0 < x < w`` pushes small activations below zero, to
silence, without touching the large ones that carry the information.  With
``weight="events"`` (the default) each neuron's ``s`` counts as many times as its
spike reaches targets (the mean fan-out ``f`` of its layer into the next synapse
layer), so the penalty is the soft fraction of the synaptic events that could
happen, ``sum f s / sum f``, which is what the SNN's cost follows; with
``weight="spikes"`` every neuron counts once (the fraction of non-silent neurons).
Both are means over the batch, in [0, 1].  In an exploratory comparison on LeNet-5 /
MNIST (L = 5, 3 fine-tuning epochs; not a committed benchmark) the events weighting
reached a lower error at equal events, hence the default.  The network input is left out: its ``G`` has no gradient path (the data
is what it is), so its spikes cannot be changed by training.

Usage (what :func:`tdsnn.training.train` does with ``sparsity=lambda``)::

    with SpikePenalty(gdnn) as penalty:
        loss = F.cross_entropy(gdnn(x), y) + lam * penalty.value()
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .coding import GCoding, silence_level
from .errors import TDSNNError

__all__ = ["SpikePenalty", "has_sparse_coding", "soft_active"]


def has_sparse_coding(model: nn.Module) -> bool:
    """Whether ``model`` holds at least one ``GCoding`` module in sparse coding."""
    return any(isinstance(m, GCoding) and m.coding == "sparse" for m in model.modules())


def soft_active(x: Tensor, L: float, min_time: int = 1) -> Tensor:
    """``clamp(x / w, 0, 1)`` with ``w = exp(1/L) - 1``: a soft 'this neuron fires' per value.

    With ``min_time = k > 1`` the silent range ends at ``e = exp((k - 1)/L) - 1``:
    ``clamp((x - e) / w_k, 0, 1)`` with ``w_k`` the width of level ``k``
    (:func:`tdsnn.coding.silence_level`)."""
    if min_time == 1:
        return (x / math.expm1(1.0 / L)).clamp(0.0, 1.0)
    edge, width = silence_level(L, min_time)
    return ((x - edge) / width).clamp(0.0, 1.0)


class SpikePenalty:
    """Collects the inputs of a model's sparse ``GCoding`` modules; :meth:`value` is the penalty.

    A context manager: hooks are registered on entry and removed on exit.  Only
    inputs that require a gradient are collected (so the network input, and every
    forward pass under ``torch.no_grad()`` such as an evaluation, is ignored);
    :meth:`clear` forgets what was collected (call it before each training step).
    Raises a :class:`tdsnn.errors.TDSNNError` if the model has no sparse ``GCoding``.
    """

    def __init__(self, model: nn.Module, weight: str = "events") -> None:
        if weight not in ("events", "spikes"):
            raise TDSNNError(f"weight must be 'events' or 'spikes', got {weight!r}")
        self.modules = [
            m for m in model.modules() if isinstance(m, GCoding) and m.coding == "sparse"
        ]
        self.fanout = {id(m): 1.0 for m in self.modules}
        if weight == "events":
            children = list(model.children())
            for module, after in zip(children, children[1:]):
                if id(module) in self.fanout:
                    self.fanout[id(module)] = mean_fanout(after)
        if not self.modules:
            raise TDSNNError(
                "the sparsity penalty needs a G-DNN in sparse coding "
                "(tdsnn.prepare(..., coding='sparse')); this model has no sparse GCoding"
            )
        self._handles: list = []
        self._inputs: list[tuple[Tensor, float, float, int]] = []

    def __enter__(self) -> SpikePenalty:
        for module in self.modules:
            self._handles.append(module.register_forward_pre_hook(self._collect))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.clear()

    def _collect(self, module: GCoding, inputs: tuple) -> None:
        x = inputs[0]
        if isinstance(x, Tensor) and x.requires_grad:
            fan = self.fanout.get(id(module), 1.0)
            self._inputs.append((x, module.L, fan, getattr(module, "min_time", 1)))

    def clear(self) -> None:
        """Forget the inputs collected so far."""
        self._inputs.clear()

    def value(self) -> Tensor:
        """Mean over the batch of the soft fraction of events (or of spikes), differentiable.

        Zero (a tensor without gradient) if nothing was collected.
        """
        if not self._inputs:
            return torch.zeros(())
        total = None
        neurons = 0.0
        batch = self._inputs[0][0].shape[0] if self._inputs[0][0].dim() else 1
        for x, L, fan, min_time in self._inputs:
            count = soft_active(x, L, min_time).sum() * fan
            total = count if total is None else total + count
            neurons += fan * (x[0].numel() if x.dim() else 1)
        return total / (max(batch, 1) * max(neurons, 1.0))


def mean_fanout(layer: nn.Module) -> float:
    """How many targets one input neuron of ``layer`` reaches on average (borders aside)."""
    if isinstance(layer, nn.Linear):
        return float(layer.out_features)
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        sh, sw = layer.stride
        return layer.out_channels / layer.groups * kh * kw / (sh * sw)
    if isinstance(layer, nn.AvgPool2d):
        k = layer.kernel_size if isinstance(layer.kernel_size, tuple) else (layer.kernel_size,) * 2
        st = layer.stride or layer.kernel_size
        st = st if isinstance(st, tuple) else (st, st)
        return k[0] * k[1] / (st[0] * st[1])
    return 1.0
