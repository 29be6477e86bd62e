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
import numbers

import torch
from torch import Tensor, nn

from .errors import ConversionError

# The range of L the arithmetic represents (docs/design.md, "Input ranges and bounds").
# Lower: exp(1/L) <= e^10 ~ 2.2e4 ~ 2^14.4, the ratio between the silent level G = 1 and the
# next one, stays far below 2^24, so G(0) = 1 still counts in a float32 sum next to it;
# G(x) <= (1 + x) exp(1/L) and the compensation factor L (exp(1/L) - 1) <= 2.2e3 leave
# float32 (max ~ e^88.7) 78 e-folds of room for activations.
# Upper: a spike time is at most L ln(1 + x); with L <= 1e5 every value float32 can hold
# (x < 3.4e38, ln < 88.8) fires before 8.9e6 < 2^24, so spike times are exact float32
# integers, and the level spacing 1/L = 1e-5 stays well above float32's resolution of t/L.
L_MIN = 0.1
L_MAX = 1e5
FLOAT32_EXACT = 2**24  # integers above this are not all representable in float32


def _leak_error(L: object) -> ConversionError:
    return ConversionError(
        f"leak constant L must be a real number in [{L_MIN:g}, {L_MAX:g}] (the range in which "
        f"float32 holds exp(t/L) and every spike time exactly), got {L!r}"
    )


def check_leak(L: object) -> float:
    """Return ``L`` as a float in ``[L_MIN, L_MAX]``, or raise :class:`ConversionError`.

    A real number is accepted (int, float, numpy scalar, one-element real tensor); a bool,
    a string or anything else is refused.
    """
    if type(L) is float and L_MIN <= L <= L_MAX:  # the hot path: G-DNN forwards call this
        return L
    if isinstance(L, Tensor):
        if L.numel() != 1 or L.dtype == torch.bool or L.is_complex() or L.is_meta:
            raise _leak_error(L)
    elif isinstance(L, bool) or not isinstance(L, numbers.Real):
        raise _leak_error(L)
    try:
        value = float(L)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise _leak_error(L) from exc
    if not L_MIN <= value <= L_MAX:  # also refuses NaN
        raise _leak_error(L)
    return value


CODINGS = ("paper", "sparse")
SILENT = -1  # the spike time reported for a neuron that never fires (sparse coding)


def check_coding(coding: object) -> str:
    """``"paper"`` (every neuron fires once, zeros at t = 0) or ``"sparse"`` (zeros are silent)."""
    if not isinstance(coding, str) or coding not in CODINGS:
        raise ConversionError(f"coding must be one of {CODINGS}, got {coding!r}")
    return coding


def check_min_time(min_time: object, coding: str = "sparse") -> int:
    """The earliest local time at which a hidden neuron may spike (sparse coding).

    A neuron whose spike time ``T(x)`` would be below ``min_time`` stays silent: ``1``
    (the default) silences exactly the values ``x <= 0``; ``k > 1`` also the values of
    the first ``k - 1`` levels, ``x <= exp((k - 1)/L) - 1``.  The paper coding has no
    silent neurons, so it accepts only 1.
    """
    if isinstance(min_time, bool) or not isinstance(min_time, numbers.Integral):
        raise ConversionError(f"min_time must be an integer >= 1, got {min_time!r}")
    value = int(min_time)
    if not 1 <= value <= FLOAT32_EXACT:
        raise ConversionError(f"min_time must be an integer in [1, {FLOAT32_EXACT}], got {value}")
    if value != 1 and coding != "sparse":
        raise ConversionError(
            f"min_time={value} silences neurons, which only coding='sparse' has; "
            "the paper coding fires every neuron (min_time=1)"
        )
    return value


def silence_level(L: float, min_time: int = 1) -> tuple[float, float]:
    """Where the silent range of ``G_s`` ends, and the width of the first active level:
    ``(exp((k - 1)/L) - 1, exp(k/L) - exp((k - 1)/L))`` for ``k = min_time`` (``(0, e^{1/L} -
    1)`` for ``k = 1``).  The straight-through gradient and the sparsity penalty use both."""
    edge = math.expm1((min_time - 1) / L)
    return edge, math.exp(min_time / L) - math.exp((min_time - 1) / L)


def spike_time(x: Tensor, L: float) -> Tensor:
    """T(x) of eq. (10) as an int64 tensor; non-positive values fire at 0.

    Computed in the dtype of ``x``: pass float64 for exactness at level boundaries.
    """
    L = check_leak(L)
    return torch.ceil(L * torch.log1p(torch.clamp(x, min=0))).to(torch.int64)


def spike_time_float(x: Tensor, L: float, coding: str = "paper") -> Tensor:
    """T(x) of eq. (10) as integer values in the floating dtype of ``x`` (no int cast).

    The simulators keep spike times in floating tensors (exact up to 2**24 in float32)
    to avoid conversions on the hot path; results are cast to integers once at the end.
    In sparse coding a value ``x <= 0`` is silent: its time is ``-inf`` (no spike; the
    value ``exp(-inf / L) = 0`` it stands for is what :func:`spike_value` gives).
    """
    t = torch.ceil(check_leak(L) * torch.log1p(torch.clamp(x, min=0)))
    if coding == "sparse":
        t.masked_fill_(x <= 0, -math.inf)
    return t


def spike_value(t: Tensor, L: float, dtype: torch.dtype = torch.float64) -> Tensor:
    """The value exp(t / L) that a spike at integer time ``t`` encodes (eq. 11).

    Computed as ``exp(t * (1/L))``, exactly as :func:`g_activation` does, so that the
    closed-form simulator reproduces the G-DNN bit for bit in either precision.
    """
    return torch.mul(t.to(dtype), 1.0 / check_leak(L)).exp_()


def g_activation(x: Tensor, L: float, coding: str = "paper", min_time: int = 1) -> Tensor:
    """G(x) = exp(T(x)/L) (eq. 11), in the dtype of ``x``, without a gradient.

    Sparse coding: ``G_s(x) = 0`` for ``x <= 0`` (a silent neuron), ``G(x)`` otherwise;
    with ``min_time = k > 1``, 0 wherever ``T(x) < k`` (:func:`check_min_time`).
    """
    L = check_leak(L)
    t = torch.ceil(L * torch.log1p(torch.clamp(x, min=0)))
    g = torch.mul(t, 1.0 / L).exp_() if min_time > 1 else t.mul_(1.0 / L).exp_()
    if coding == "sparse":
        g.masked_fill_(x <= 0 if min_time == 1 else t < min_time, 0.0)
    return g


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
    """G in the forward pass, the gradient of ``1 + x`` (for ``x > 0``) backwards.

    Sparse coding adds the jump at 0 (from 0 to ``exp(1/L)``) spread as a triangle of
    half-width ``w = exp(1/L) - 1`` (the first level's width) around 0, so that
    fine-tuning sees that silencing a neuron, or waking it, changes its output.  With
    ``min_time = k > 1`` the silent range ends at ``e = exp((k-1)/L) - 1`` instead: the
    gradient of ``1 + x`` above ``e``, and the jump (0 to ``exp(k/L)``) as a triangle of
    the level's width around ``e`` (:func:`silence_level`).
    """

    @staticmethod
    def forward(ctx, x: Tensor, L: float, coding: str, min_time: int = 1) -> Tensor:  # noqa: D401
        ctx.save_for_backward(x)
        ctx.L, ctx.coding, ctx.min_time = L, coding, min_time
        return g_activation(x, L, coding, min_time)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        if ctx.coding != "sparse":
            return grad_output * (x > 0).to(grad_output.dtype), None, None, None
        edge, width = silence_level(ctx.L, ctx.min_time)
        jump = math.exp(ctx.min_time / ctx.L)
        grad = (x > edge).to(grad_output.dtype)
        grad = grad + (1.0 - (x - edge).abs() / width).clamp_(min=0).mul_(jump / width)
        return grad_output * grad, None, None, None


def g_straight_through(x: Tensor, L: float, coding: str = "paper", min_time: int = 1) -> Tensor:
    """G(x) with a straight-through gradient, for training the G-DNN (Figure 2)."""
    coding = check_coding(coding)
    return _GStraightThrough.apply(x, check_leak(L), coding, check_min_time(min_time, coding))


class GCoding(nn.Module):
    """The activation G of eq. (11) (or ``G_s`` in sparse coding), placed before every
    synapse layer of a G-DNN.  ``min_time``: sparse coding's earliest spike time of the
    neurons it encodes (:func:`check_min_time`; the network input's G keeps 1)."""

    def __init__(self, L: float = 5.0, coding: str = "paper", min_time: int = 1) -> None:
        super().__init__()
        self.L = check_leak(L)
        self.coding = check_coding(coding)
        self.min_time = check_min_time(min_time, self.coding)

    def forward(self, x: Tensor) -> Tensor:
        return g_straight_through(x, self.L, self.coding, self.min_time)

    def extra_repr(self) -> str:
        text = f"L={self.L:g}" + (", coding='sparse'" if self.coding == "sparse" else "")
        return text + (f", min_time={self.min_time}" if self.min_time != 1 else "")
