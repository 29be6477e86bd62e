"""Reverse temporal coding: the spike-time function T and the activation G (eqs. 10-11).

``T(x) = ceil(L * ln(1 + x))`` for ``x > 0`` and ``0`` otherwise: a larger value
fires *later* (reverse coding).  ``G(x) = exp(T(x) / L)`` is the value that a
spike at ``T(x)`` stands for after the leak of the next layer: a logarithmic
quantiser of ``1 + x``.  ``G`` has zero derivative almost everywhere, so the
autograd function uses a straight-through estimator (the gradient of ``1 + x``
for ``x > 0``, zero below), which lets a network with ``G`` inside be trained.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .errors import ConversionError


def check_leak(L: float) -> float:
    """Return ``L`` as a float, or raise if it is not a finite positive number."""
    try:
        value = float(L)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"leak constant L must be a number, got {L!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ConversionError(f"leak constant L must be finite and > 0, got {L!r}")
    return value


def spike_time(x: Tensor, L: float) -> Tensor:
    """T(x) of eq. (10) as an int64 tensor; non-positive values fire at 0.

    Computed in the dtype of ``x``: pass float64 for exactness at level boundaries.
    """
    L = check_leak(L)
    return torch.ceil(L * torch.log1p(torch.clamp(x, min=0))).to(torch.int64)


def spike_time_float(x: Tensor, L: float) -> Tensor:
    """T(x) of eq. (10) as integer values in the floating dtype of ``x`` (no int cast).

    The simulators keep spike times in floating tensors (exact up to 2**24 in float32)
    to avoid conversions on the hot path; results are cast to integers once at the end.
    """
    return torch.ceil(check_leak(L) * torch.log1p(torch.clamp(x, min=0)))


def spike_value(t: Tensor, L: float, dtype: torch.dtype = torch.float64) -> Tensor:
    """The value exp(t / L) that a spike at integer time ``t`` encodes (eq. 11).

    Computed as ``exp(t * (1/L))``, exactly as :func:`g_activation` does, so that the
    closed-form simulator reproduces the G-DNN bit for bit in either precision.
    """
    return torch.mul(t.to(dtype), 1.0 / check_leak(L)).exp_()


def g_activation(x: Tensor, L: float) -> Tensor:
    """G(x) = exp(T(x)/L) (eq. 11), in the dtype of ``x``, without a gradient."""
    L = check_leak(L)
    return torch.ceil(L * torch.log1p(torch.clamp(x, min=0))).mul_(1.0 / L).exp_()


def bias_spike_time(L: float) -> int:
    """T(1): when the bias neuron fires (it encodes the constant input 1)."""
    return math.ceil(check_leak(L) * math.log(2.0))


def tick_weight(t_il: Tensor | float, L: float) -> Tensor | float:
    """w_tick = (1 - exp(-1/L)) * exp(-T_il/L) (eq. 9)."""
    L = check_leak(L)
    if isinstance(t_il, Tensor):
        return (1 - math.exp(-1 / L)) * torch.exp(-t_il / L)
    return (1 - math.exp(-1 / L)) * math.exp(-t_il / L)


class _GStraightThrough(torch.autograd.Function):
    """G in the forward pass, the gradient of ``1 + x`` (for ``x > 0``) backwards."""

    @staticmethod
    def forward(ctx, x: Tensor, L: float) -> Tensor:  # noqa: D401 - autograd API
        ctx.save_for_backward(x)
        return g_activation(x, L)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * (x > 0).to(grad_output.dtype), None


def g_straight_through(x: Tensor, L: float) -> Tensor:
    """G(x) with a straight-through gradient, for training the G-DNN (Figure 2)."""
    return _GStraightThrough.apply(x, check_leak(L))


class GCoding(nn.Module):
    """The activation G of eq. (11), placed before every synapse layer of a G-DNN."""

    def __init__(self, L: float = 5.0) -> None:
        super().__init__()
        self.L = check_leak(L)

    def forward(self, x: Tensor) -> Tensor:
        return g_straight_through(x, self.L)

    def extra_repr(self) -> str:
        return f"L={self.L:g}"
