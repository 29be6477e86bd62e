"""The layers of a converted SNN: what each holds, not how it is simulated.

* :class:`SpikingSynapse` -- a Conv2d, Linear or AvgPool2d mapped to LIF neurons with
  negated weights, a bias neuron firing at ``T(1)`` and a ticking neuron (eq. 9).
  The output layer keeps its weights' sign and never fires.
* :class:`SpikingMaxPool` -- the paper's simplified max-pool neuron (threshold = the
  number of inputs in the window, unit weights, no leak): it fires with the last
  spike of its window.
* :class:`SpikeFlatten` -- a reshape of spike times; not a neuron layer.
* :class:`SpikeConcat` -- channel concatenation of populations; not a neuron layer.

A neuron group of a residual network is one :class:`SpikingSynapse` (its first branch,
holding the group's bias) with the other branches in ``shortcuts``: synapses from other
populations (a projection conv, or an identity with weight 1) into the same neurons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..coding import spike_value
from ..junctions import GlobalAvgPool


class SpikingSynapse(nn.Module):
    """A synapse layer of the SNN (Conv2d, Linear or AvgPool2d) and its LIF neurons."""

    def __init__(self, source: nn.Module | None, L: float, is_output: bool, name: str) -> None:
        super().__init__()
        self.name = name
        self.L = L
        self.is_output = is_output
        kinds = {nn.Conv2d: "conv", nn.Linear: "linear", nn.AvgPool2d: "avgpool", GlobalAvgPool: "avgpool"}
        self.kind = "identity" if source is None else kinds[type(source)]
        self.global_pool = isinstance(source, GlobalAvgPool)  # kernel = the whole map
        self.coding = "paper"  # set by tdsnn.convert: "sparse" inputs may be silent (-inf)
        self.min_time = 1  # set by tdsnn.convert: sparse coding silences T < min_time
        self.conv_args: dict = {}
        self.pool_args: dict = {}
        self.shortcuts = nn.ModuleList()  # other branches into the same neurons (residual)
        weight = bias = None
        if isinstance(source, nn.Conv2d):
            weight, bias = source.weight, source.bias
            self.conv_args = dict(
                stride=source.stride,
                padding=source.padding,
                dilation=source.dilation,
                groups=source.groups,
            )
        elif isinstance(source, nn.Linear):
            weight, bias = source.weight, source.bias
        elif self.global_pool:
            self.pool_args = dict(kernel_size=(1, 1), stride=(1, 1), padding=0, ceil_mode=False,
                                  count_include_pad=True)  # fmt: skip
        elif source is not None:
            self.pool_args = dict(
                kernel_size=source.kernel_size,
                stride=source.stride,
                padding=source.padding,
                ceil_mode=source.ceil_mode,
                count_include_pad=source.count_include_pad,
            )
        # The DNN's weights W and bias b; the SNN's synapses carry -W (hidden layers).
        self.register_buffer("dnn_weight", None if weight is None else weight.detach().clone())
        self.register_buffer("dnn_bias", None if bias is None else bias.detach().clone())

    @property
    def has_bias(self) -> bool:
        return self.dnn_bias is not None

    def branches(self) -> list[SpikingSynapse]:
        """This synapse and its shortcuts: every synapse into the group's neurons."""
        return [self, *self.shortcuts]

    def bind(self, in_shape: tuple[int, ...]) -> None:
        """Global average pooling: set the window to the whole input map (C, H, W)."""
        if self.global_pool:
            if len(in_shape) != 3:
                raise ValueError(f"global average pooling needs C x H x W input, got {in_shape}")
            size = (int(in_shape[1]), int(in_shape[2]))
            self.pool_args.update(kernel_size=size, stride=size)

    @property
    def synaptic_weight(self) -> Tensor | None:
        """Weights of the SNN synapses: negated, except for the output layer."""
        if self.dnn_weight is None:
            return None
        return self.dnn_weight if self.is_output else -self.dnn_weight

    @property
    def bias_neuron_weight(self) -> Tensor | None:
        """Weight of the bias neuron (fires at T(1), encodes 1): ``-b / G(1)``, in float64
        (the quotient of a float32 bias rounded to float32 would be off by an ulp)."""
        if self.dnn_bias is None:
            return None
        from ..coding import bias_spike_time

        g1 = float(spike_value(torch.tensor(bias_spike_time(self.L)), self.L))
        sign = 1.0 if self.is_output else -1.0
        return sign * self.dnn_bias.double() / g1

    def affine(self, x: Tensor) -> Tensor:
        """``W x + b``, the G-DNN's pre-activation (bias fused as in the G-DNN's own layer)."""
        if self.kind == "identity":
            return x
        if self.kind == "avgpool":
            return F.avg_pool2d(x, **self.pool_args)
        w = self.dnn_weight.to(x.dtype)
        b = None if self.dnn_bias is None else self.dnn_bias.to(x.dtype)
        if self.kind == "conv":
            return F.conv2d(x, w, b, **self.conv_args)
        return F.linear(x, w, b)

    def synaptic_input(self, spikes: Tensor) -> Tensor:
        """Potential change caused by the spikes of one time step through the SNN synapses
        (the negated weights of hidden layers; ``(-W) x`` equals ``-(W x)`` exactly)."""
        if self.kind == "identity":
            return spikes if self.is_output else spikes.neg()
        if self.kind == "avgpool":
            out = F.avg_pool2d(spikes, **self.pool_args)
            return out if self.is_output else out.neg_()
        w = self.synaptic_weight.to(spikes.dtype)
        if self.kind == "conv":
            return F.conv2d(spikes, w, None, **self.conv_args)
        return F.linear(spikes, w)

    def bias_map(self, dtype: torch.dtype) -> Tensor | None:
        """The DNN bias, broadcastable against the layer's output."""
        if self.dnn_bias is None:
            return None
        b = self.dnn_bias.to(dtype)
        return b.reshape(1, -1, 1, 1) if self.kind == "conv" else b

    def fan_in(self) -> int:
        """M, the fan-in of one output neuron (padding included), for the DNN count."""
        if self.kind == "identity":
            return 1
        if self.kind == "linear":
            return int(self.dnn_weight.shape[1])
        if self.kind == "conv":
            return int(self.dnn_weight[0].numel())
        k = _pair(self.pool_args["kernel_size"])
        return k[0] * k[1]

    def connection_map(self, in_shape: tuple[int, ...]) -> Tensor:
        """Per input neuron, how many output neurons it reaches (its fan-out).

        Zero padding has no neuron, so border inputs reach fewer outputs; the sum
        of this map is the number of synaptic events of one presentation.
        """
        if self.kind == "identity":
            return torch.ones(in_shape, dtype=torch.float64)
        if self.kind == "linear":
            return torch.full(in_shape, float(self.dnn_weight.shape[0]), dtype=torch.float64)
        with torch.enable_grad():
            ones = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
            if self.kind == "conv":
                w = torch.ones(self.dnn_weight.shape, dtype=torch.float64)
                out = F.conv2d(ones, w, None, **self.conv_args)
            else:
                args = dict(self.pool_args, divisor_override=1, count_include_pad=True)
                out = F.avg_pool2d(ones, **args)
            (grad,) = torch.autograd.grad(out.sum(), ones)
        return grad.detach()[0]

    def extra_repr(self) -> str:
        role = "output" if self.is_output else "hidden"
        return f"name={self.name!r}, kind={self.kind}, {role}, L={self.L:g}"


class SpikingMaxPool(nn.Module):
    """Simplified spiking max-pool: fires when the last input of its window fires."""

    def __init__(self, source: nn.MaxPool2d, name: str) -> None:
        super().__init__()
        self.name = name
        self.coding = "paper"  # set by tdsnn.convert
        self.min_time = 1
        self.pool_args = dict(
            kernel_size=source.kernel_size,
            stride=source.stride if source.stride is not None else source.kernel_size,
            padding=source.padding,
            ceil_mode=source.ceil_mode,
        )

    def pool_times(self, times: Tensor) -> Tensor:
        """Output spike times: the latest input time in each window (padding ignored)."""
        return window_max(times, **self.pool_args)

    def window_count(self, x: Tensor) -> Tensor:
        """Sum of ``x`` over each window (padding is absent): used by the clocked neurons."""
        return F.avg_pool2d(x, **self.pool_args, count_include_pad=True, divisor_override=1)

    def connection_map(self, in_shape: tuple[int, ...]) -> Tensor:
        """Per input neuron, how many max-pool neurons it reaches."""
        with torch.enable_grad():
            ones = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
            (grad,) = torch.autograd.grad(self.window_count(ones).sum(), ones)
        return grad.detach()[0]

    def kernel_area(self) -> int:
        k = _pair(self.pool_args["kernel_size"])
        return k[0] * k[1]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, {self.pool_args}"


class SpikeConcat(nn.Module):
    """Channel concatenation of populations (axonal delays align their periods)."""

    def __init__(self, name: str = "cat") -> None:
        super().__init__()
        self.name = name

    def forward(self, *times: Tensor) -> Tensor:
        return torch.cat(times, dim=1)


class SpikeFlatten(nn.Module):
    """Flatten spike times (batch dimension kept)."""

    def __init__(self, name: str = "flatten") -> None:
        super().__init__()
        self.name = name

    def forward(self, times: Tensor) -> Tensor:
        return times.flatten(1)


def window_max(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
) -> Tensor:
    """``F.max_pool2d(x, ...)``, the same values, as running maxima of strided views.

    A maximum is exact, so any evaluation order gives PyTorch's result; this one is
    separable (rows, then columns) and streams through memory, several times faster
    than ``max_pool2d`` on CPU for the small windows of CNNs.  Padding and ``ceil_mode``
    windows that overhang the input take the general kernel.
    """
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    if _pair(padding) != (0, 0) or x.dim() != 4 or x.device.type != "cpu":
        return F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode)
    height, width = x.shape[2:]
    if height < kh or width < kw:
        return F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode)
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    if ceil_mode and ((height - kh) % sh or (width - kw) % sw):
        return F.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode)
    rows = x[:, :, 0 : sh * (out_h - 1) + 1 : sh]
    for dy in range(1, kh):
        rows = torch.maximum(rows, x[:, :, dy : dy + sh * (out_h - 1) + 1 : sh])
    out = rows[..., 0 : sw * (out_w - 1) + 1 : sw]
    for dx in range(1, kw):
        out = torch.maximum(out, rows[..., dx : dx + sw * (out_w - 1) + 1 : sw])
    return out.clone() if kh == kw == 1 else out.contiguous()  # never a view of ``x``


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class SpikingLeakyMaxPool(SpikingMaxPool):
    """The paper's leaky max-pool mapping (eqs. 12-14): LIF neurons with ticking.

    Inputs have weight ``-w_k`` (``w_k = 1``), the ticking neuron ``w_tick = r``, with
    ``r`` inside the interval of eq. (13) for the window size ``N``, ``L`` and
    ``T_m = T_il`` (the pool's inhibitory period).  Exact for windows whose last
    spike comes at ``T_il``; other windows fire at a time that only grows with their
    inputs.  It adds one period to the latency, and ``r`` exists only where eq. (14)
    holds (small ``T_il``): the simplified mapping is the default for that reason.
    """

    def __init__(self, source: nn.MaxPool2d, name: str, L: float) -> None:
        super().__init__(source, name)
        self.L = L

    def tick_ratio(self, t_il: int) -> float:
        """A ratio ``w_tick / w_k`` inside eq. (13)'s interval for ``T_m = t_il``."""
        from ..errors import ConversionError
        from ..maxpool_solver import tick_ratio_interval

        interval = tick_ratio_interval(self.kernel_area(), self.L, int(t_il))
        if interval is None:
            raise ConversionError(
                f"leaky max-pool '{self.name}': no w_tick/w_k satisfies eq. (13) for "
                f"N={self.kernel_area()}, L={self.L:g}, T_m={int(t_il)} (eq. 14 fails); use "
                "convert(..., maxpool='simplified')"
            )
        return interval.midpoint()
