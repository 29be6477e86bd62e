"""An independent float64 reference for the G-DNN of residual / concatenating networks.

Nothing here imports ``tdsnn``.  The reference builds small random networks from a *spec*
(the dataclasses below) as the ``nn.Module`` a user would write (a class whose forward uses
``+`` or ``+=`` for sums, ``torch.cat(..., dim=1)``, ``torch.flatten(x, 1)`` or
``x.view(x.size(0), -1)``, ``F.relu`` / ``nn.ReLU`` / one shared ``nn.ReLU(inplace=True)``,
BatchNorm, ``nn.Identity`` or direct ``+ x`` shortcuts, 1x1 projections, a stem max-pool, and
``nn.AdaptiveAvgPool2d(1)`` or ``x.mean((2, 3))``), and computes, next to that forward and
reading the module's weights, its own float64 forward of the following definition.

Coding (``L`` the leak constant, all arithmetic in float64):

* ``T(x) = ceil(L ln(1 + x))`` for ``x > 0``, computed as ``ceil(L * log1p(x))``.
* paper: ``G(x) = exp(T(max(x, 0)) / L)``: nothing is silent, a zero fires at 0, ``G(0) = 1``.
* sparse: ``G_s(x) = 0`` for ``x <= 0`` (a *silent* neuron, spike time ``-1``), else
  ``exp(T(x) / L)``; ``G`` is computed as ``exp(ceil(L * log1p(x)) * (1/L))``.

The G-DNN:

* A *population* (a set of spiking neurons) is the network input, the output of every ReLU
  (residual sums' ReLUs included), the output of every average pool (``AvgPool2d``,
  ``AdaptiveAvgPool2d(1)``, ``x.mean((2, 3))``) and the output of every max-pool.  ``G`` is
  applied exactly once to a population's values before they enter any synapse: a conv, a
  linear layer, an average pool, or an identity shortcut into a sum.
* A *neuron group* computes ``A = sum over its branches + bias``: a plain layer ``W G(x) + b``;
  a residual sum ``relu(bn2(conv2(h)) + shortcut(x))`` has
  ``A = BN2(conv2(G(h))) + shortcut(G(x))``, where an identity shortcut delivers ``G(x)`` with
  weight 1 and a projection is ``BN(conv1x1(G(x)))`` (or ``conv1x1(G(x))``); a three-way sum
  adds all three branches inside the one receiving neuron.  BatchNorm (eval mode) is folded
  into the conv before it (``s = gamma / sqrt(var + eps)``, ``W' = s W``,
  ``b' = beta + s (b - mean)``).  The group's population value is ``ReLU(A)``, its spike times
  ``T(ReLU(A))`` (paper) or ``-1`` where ``A <= 0`` (sparse).
* Average pooling is a synapse layer with its own neurons: ``A = avg(G(x))``, population value
  ``ReLU(A) = A``.
* Max-pool of a population: the max of the window's *values*, i.e. the window's latest spike
  time (``-1`` when every input is silent); padding is ignored.  It is a new population.
* Concatenation along channels and flatten are not populations: they rearrange the values
  of populations (``G`` is applied later, by the synapse that reads them).
* The last neuron group is the output: its ``A`` are the logits (no ReLU, no ``G``).
* Zero padding (conv or pool) is silence: it contributes 0, not ``G(0)``.

For every population, in forward execution order (the input first), the reference records
the spike times (int64, ``-1`` silent), the float64 pre-activation ``A`` (the value itself for
the input; none for a max-pool, which is exact), a rounding scale (``sum |W'| |G| + bias
scale`` over the branches; ``|beta| + |s| (|b| + |mean|)`` as the bias scale of a folded
BatchNorm, so that a cancelling fold is covered) that says how close to a level boundary a
neuron is (:func:`near_boundary`), and the fan-out of every neuron: how many neurons of the
synapses and max-pools that read it it reaches (zero padding has no neuron).

Synaptic events (summed over the batch): every emitted spike times its fan-out, plus, for
every neuron group with a bias (a conv/linear bias or a folded BatchNorm in any branch), one
bias-neuron spike per sample reaching each of its neurons.

BatchNorm parameters are drawn, by default, on a dyadic grid (``eps = 2**-16``,
``var + eps`` a power of 4, ``gamma``, ``beta``, ``mean`` multiples of 1/64, the conv before it
with weights multiples of 2**-12 and biases multiples of 2**-8), so that folding it in float32
is *exact* whatever the order of operations: the engine's float32 folded weights are then the
reference's, and a spike time may move only within float64 rounding of a level boundary.
``NetSpec.exact_bn = False`` draws ordinary float BatchNorm statistics (default ``eps``); the
fold then rounds in float32 (a relative ~1e-7 of the rounding scale).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

# The coding itself (T, G, G_s, the boundary test) is the chain reference's, which is
# written from the definition too; this module adds the graph.
from sparse_reference import (  # noqa: F401 - re-exported for the tests
    CODINGS,
    SILENT,
    decode,
    encode,
    g_value,
    level,
    near_boundary,
)
from torch import Tensor, nn

EXACT_EPS = 2.0**-16  # BatchNorm eps of the exact (dyadic) BatchNorms


# --------------------------------------------------------------------------------------
# Coding
# --------------------------------------------------------------------------------------


def _check_coding(coding: str) -> str:
    if coding not in CODINGS:
        raise ValueError(f"coding must be one of {CODINGS}, got {coding!r}")
    return coding


# --------------------------------------------------------------------------------------
# The float64 forward of the definition
# --------------------------------------------------------------------------------------


@dataclass
class Value:
    """What a synapse reads: the values of one or more populations (concatenated and/or
    flattened), as spike times, their ``G``, and a probe (ones, no batch dimension, built
    from the populations' probe leaves) through which fan-out is counted."""

    times: Tensor  # int64, batch first
    g: Tensor  # float64 G of the values (0 where silent)
    probe: Tensor  # float64 ones, shape of one sample; requires grad

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.times.shape)


@dataclass
class Branch:
    """One branch into a neuron group: its float64 contribution to ``A`` and rounding scale."""

    a: Tensor
    scale: Tensor
    biased: bool


@dataclass
class Population:
    """What the reference says about one population (batch first)."""

    name: str
    times: Tensor  # int64, -1 = silent
    pre: Tensor | None  # float64 pre-activation A (the value for the input; None: max-pool)
    scale: Tensor | None  # rounding scale (None: exact, a max-pool)
    probe: Tensor = field(repr=False, default=None)  # type: ignore[assignment]
    fanout: Tensor | None = None  # per neuron (no batch)

    def emitted(self) -> Tensor:
        return self.times >= 0


@dataclass
class Run:
    """The reference's answer for one batch."""

    populations: list[Population]
    logits: Tensor
    n_groups: int  # neuron groups with a pre-activation: the hidden ones and the output
    bias_events: int
    names: list[str]

    def spike_times_list(self) -> list[Tensor]:
        return [p.times for p in self.populations]

    @property
    def spike_counts(self) -> list[int]:
        return [int(p.emitted().sum()) for p in self.populations]

    def spike_events(self, times: list[Tensor] | None = None) -> int:
        """Emitted spikes times their fan-out (of ``times``, by default the reference's own)."""
        times = self.spike_times_list() if times is None else times
        total = 0
        for t, p in zip(times, self.populations, strict=True):
            emitted = (t.reshape(p.times.shape) >= 0).to(torch.int64)
            total += int((emitted * p.fanout).sum())
        return total

    @property
    def synaptic_events(self) -> int:
        return self.spike_events() + self.bias_events


def _fold(module: nn.Module, bn: nn.Module | None) -> tuple[Tensor, Tensor | None, Tensor]:
    """Float64 ``W'``, ``b'`` of ``bn(module(.))`` and the bias's rounding scale."""
    w = module.weight.detach().double()
    b = None if module.bias is None else module.bias.detach().double()
    if bn is None:
        return w, b, torch.zeros(w.shape[0], dtype=torch.float64) if b is None else b.abs()
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = torch.ones_like(var) if bn.weight is None else bn.weight.detach().double()
    beta = torch.zeros_like(var) if bn.bias is None else bn.bias.detach().double()
    s = gamma / torch.sqrt(var + bn.eps)
    b0 = torch.zeros_like(mean) if b is None else b
    w = w * s.reshape((-1,) + (1,) * (w.dim() - 1))
    scale = beta.abs() + s.abs() * (b0.abs() + mean.abs())
    return w, beta + (b0 - mean) * s, scale


class GForward:
    """The primitives of the G-DNN forward; a network's ``g_forward(ctx, value)`` calls them
    in its forward execution order.

    ``forced``: spike times, one per population (e.g. the engine's): every population is
    then fed downstream with the forced times instead of its own (so a rounding move
    upstream does not propagate); its own times are still recorded.
    """

    def __init__(
        self, L: float, coding: str, forced: list[Tensor] | None = None, min_time: int = 1
    ) -> None:
        self.L = float(L)
        self.coding = _check_coding(coding)
        self.min_time = int(min_time)  # sparse: hidden neurons with T below it are silent
        self.forced = forced
        self.populations: list[Population] = []
        self.n_groups = 0
        self.bias_events = 0
        self._reach: Tensor | None = None  # sum of every synapse's probe output

    # -- populations ---------------------------------------------------------------------

    def _population(
        self, name: str, times: Tensor, pre: Tensor | None, scale: Tensor | None
    ) -> Value:
        index = len(self.populations)
        probe = torch.ones(times.shape[1:], dtype=torch.float64, requires_grad=True)
        self.populations.append(Population(name, times, pre, scale, probe))
        used = times
        if self.forced is not None:
            if index >= len(self.forced):
                raise AssertionError(
                    f"only {len(self.forced)} forced populations; {name} is #{index}"
                )
            f = self.forced[index].to(torch.int64)
            if f.numel() != times.numel():
                raise AssertionError(
                    f"forced population #{index} ({name}) has shape {tuple(f.shape)}, "
                    f"expected {tuple(times.shape)}"
                )
            used = f.reshape(times.shape)
        return Value(used, decode(used, self.L, self.coding), probe)

    def input(self, x: Tensor) -> Value:
        x = x.double()
        return self._population("input", encode(x, self.L, self.coding), x, x.abs())

    def neurons(self, name: str, *branches: Branch) -> Value:
        """A hidden neuron group: ``A = sum of the branches``; population ``ReLU(A)``."""
        a, scale = self._group(branches)
        times = encode(a.clamp(min=0), self.L, self.coding, self.min_time)
        return self._population(name, times, a, scale)

    def output(self, *branches: Branch) -> Tensor:
        """The output group: its ``A`` are the logits."""
        return self._group(branches)[0]

    def _group(self, branches: tuple[Branch, ...]) -> tuple[Tensor, Tensor]:
        if not branches:
            raise ValueError("a neuron group needs at least one branch")
        shapes = {tuple(b.a.shape) for b in branches}
        if len(shapes) != 1:
            raise ValueError(f"branches of one sum have different shapes: {sorted(shapes)}")
        a = branches[0].a
        scale = branches[0].scale
        for b in branches[1:]:
            a = a + b.a
            scale = scale + b.scale
        self.n_groups += 1
        if any(b.biased for b in branches):
            self.bias_events += int(a.numel())  # one bias spike per neuron of every sample
        return a, scale

    def maxpool(self, name: str, module: nn.MaxPool2d, v: Value) -> Value:
        """A max-pool population: the window's latest spike time (padding ignored)."""
        if module.dilation not in (1, (1, 1)):
            raise ValueError("the reference has no dilated max-pool")
        args = dict(kernel_size=module.kernel_size, stride=module.stride, padding=module.padding)
        times = F.max_pool2d(v.times.double(), ceil_mode=module.ceil_mode, **args)
        self._reached(
            F.avg_pool2d(v.probe[None], ceil_mode=module.ceil_mode, divisor_override=1, **args)
        )
        return self._population(name, times.to(torch.int64), None, None)

    # -- branches (synapses) -------------------------------------------------------------

    def _reached(self, out: Tensor) -> None:
        """Count the probe output of a synapse: its gradient w.r.t. a population's probe leaf
        is, per neuron, how many neurons of the synapse it reaches."""
        with torch.enable_grad():
            total = out.sum()
            self._reach = total if self._reach is None else self._reach + total

    def synapse(self, module: nn.Module, bn: nn.Module | None, v: Value) -> Branch:
        """``BN(module(G(x)))`` for a Conv2d or Linear ``module`` (``bn`` optional)."""
        w, b, bias_scale = _fold(module, bn)
        with torch.enable_grad():
            ones = torch.ones_like(w)
            if isinstance(module, nn.Conv2d):
                if module.padding_mode != "zeros" or isinstance(module.padding, str):
                    raise ValueError("the reference pads convs with zeros, given as numbers")
                args = dict(
                    stride=module.stride,
                    padding=module.padding,
                    dilation=module.dilation,
                    groups=module.groups,
                )
                a = F.conv2d(v.g, w, b, **args)
                scale = F.conv2d(v.g.abs(), w.abs(), bias_scale, **args)
                self._reached(F.conv2d(v.probe[None], ones, None, **args))
            elif isinstance(module, nn.Linear):
                a = v.g @ w.T
                if b is not None:
                    a = a + b
                scale = v.g.abs() @ w.abs().T + bias_scale
                self._reached(v.probe @ ones.T)
            else:
                raise ValueError(f"not a weighted synapse: {type(module).__name__}")
        return Branch(a, scale, b is not None)

    def identity(self, v: Value) -> Branch:
        """An identity shortcut: ``G(x)`` with weight 1 into the receiving neuron."""
        self._reached(v.probe)
        return Branch(v.g, v.g.abs(), False)

    def avgpool(self, module: nn.AvgPool2d, v: Value) -> Branch:
        args = dict(
            kernel_size=module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            ceil_mode=module.ceil_mode,
        )
        a = F.avg_pool2d(
            v.g,
            count_include_pad=module.count_include_pad,
            divisor_override=module.divisor_override,
            **args,
        )
        self._reached(F.avg_pool2d(v.probe[None], divisor_override=1, **args))
        return Branch(a, a.abs(), False)

    def gap(self, v: Value, keepdim: bool) -> Branch:
        """Global average pool over (H, W): ``AdaptiveAvgPool2d(1)`` (``keepdim``) or
        ``x.mean((2, 3))``."""
        a = v.g.mean(dim=(2, 3), keepdim=keepdim)
        self._reached(v.probe)  # every neuron reaches the one pool neuron of its channel
        return Branch(a, a.abs(), False)

    # -- rearranging values (no population) ------------------------------------------------

    def cat(self, values: list[Value]) -> Value:
        with torch.enable_grad():
            probe = torch.cat([v.probe for v in values], dim=0)
        return Value(
            torch.cat([v.times for v in values], dim=1),
            torch.cat([v.g for v in values], dim=1),
            probe,
        )

    def flatten(self, v: Value) -> Value:
        with torch.enable_grad():
            probe = v.probe.flatten(0)
        return Value(v.times.flatten(1), v.g.flatten(1), probe)

    # -- the end ----------------------------------------------------------------------------

    def finish(self, logits: Tensor) -> Run:
        if self._reach is not None:
            self._reach.backward()
        for p in self.populations:
            grad = p.probe.grad
            p.fanout = (
                torch.zeros(p.times.shape[1:], dtype=torch.int64)
                if grad is None
                else grad.round().to(torch.int64)
            )
            p.probe = None  # type: ignore[assignment]
        if self.forced is not None and len(self.forced) != len(self.populations):
            raise AssertionError(
                f"{len(self.forced)} forced populations, the network has {len(self.populations)}"
            )
        return Run(
            populations=self.populations,
            logits=logits.detach(),
            n_groups=self.n_groups,
            bias_events=self.bias_events,
            names=[p.name for p in self.populations],
        )


def chain_g_forward(model: nn.Sequential, ctx: GForward, v: Value) -> Tensor:
    """The G-DNN of an ``nn.Sequential`` chain (Conv2d, Linear, AvgPool2d, MaxPool2d, ReLU,
    Flatten, Dropout; no BatchNorm), named as ``sparse_reference.py`` names its layers."""
    layers = [m for m in model if not isinstance(m, (nn.ReLU, nn.Dropout))]
    synapses = [
        i for i, m in enumerate(layers) if isinstance(m, (nn.Conv2d, nn.Linear, nn.AvgPool2d))
    ]
    prefix = {nn.Conv2d: "conv", nn.Linear: "fc", nn.AvgPool2d: "avgpool"}
    n_syn = n_pool = 0
    for i, m in enumerate(layers):
        if isinstance(m, nn.Flatten):
            v = ctx.flatten(v)
        elif isinstance(m, nn.MaxPool2d):
            n_pool += 1
            v = ctx.maxpool(f"pool{n_pool}", m, v)
        elif i in synapses:
            n_syn += 1
            branch = ctx.avgpool(m, v) if isinstance(m, nn.AvgPool2d) else ctx.synapse(m, None, v)
            if i == synapses[-1]:
                return ctx.output(branch)
            v = ctx.neurons(f"{prefix[type(m)]}{n_syn}", branch)
        else:
            raise ValueError(f"the chain reference has no {type(m).__name__}")
    raise ValueError("the chain has no synapse layer")


class Reference:
    """Float64 forward of the G-DNN of ``model``: a network of this module (it has
    ``g_forward``) or an ``nn.Sequential`` chain without BatchNorm."""

    def __init__(self, model: nn.Module, L: float, coding: str, min_time: int = 1) -> None:
        self.model = model
        self.L = float(L)
        self.coding = _check_coding(coding)
        self.min_time = int(min_time)  # sparse: hidden neurons with T below it are silent
        if hasattr(model, "g_forward"):
            self._forward: Callable[[GForward, Value], Tensor] = model.g_forward
        elif isinstance(model, nn.Sequential):
            self._forward = lambda ctx, v: chain_g_forward(model, ctx, v)
        else:
            raise ValueError(f"no reference forward for {type(model).__name__}")

    def run(self, x: Tensor, forced: list[Tensor] | None = None) -> Run:
        """Spike times of every population, logits and fan-outs of a batch ``x``; with
        ``forced`` (one tensor per population), every population is fed downstream with
        the forced times (see :class:`GForward`)."""
        ctx = GForward(self.L, self.coding, forced, self.min_time)
        logits = self._forward(ctx, ctx.input(x))
        return ctx.finish(logits)


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------


@dataclass
class Style:
    """How the user spelled the forward."""

    relu: str = "functional"  # "functional" (F.relu), "module" (one nn.ReLU per use),
    # "shared" (one nn.ReLU(inplace=True) per module, called at every use)
    add: str = "plus"  # "plus" (out = out + s) or "iadd" (out += s)
    identity: str = "module"  # "module" (self.shortcut = nn.Identity()) or "direct" (+ x)
    gap: str = "adaptive"  # "adaptive" (nn.AdaptiveAvgPool2d(1)) or "mean" (x.mean((2, 3)))
    flatten: str = "flatten"  # after the adaptive pool: "flatten" (torch.flatten(x, 1))
    # or "view" (x.view(x.size(0), -1))

    def describe(self) -> str:
        gap = self.gap if self.gap == "mean" else f"adaptive+{self.flatten}"
        return f"relu={self.relu} add={self.add} identity={self.identity} gap={gap}"


@dataclass
class ConvSpec:
    out: int
    k: int = 3
    stride: int = 1
    bias: bool = True
    bn: bool = False

    def describe(self) -> str:
        return (
            f"{self.out}k{self.k}s{self.stride}{'' if self.bias else 'nb'}{'bn' if self.bn else ''}"
        )


@dataclass
class BlockSpec:
    """``basic``: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``;
    ``dense``: ``cat([x, relu(bn(conv(x)))])`` (or the other order);
    ``avgpool``: ``nn.AvgPool2d(k, stride, pad)``."""

    kind: str
    out: int = 0  # basic: output channels; dense: channels added
    stride: int = 1
    k1: int = 3  # basic: kernel of conv1 (conv2 is 3x3); avgpool: kernel
    bn: bool = False
    bias: bool = True
    shortcut: str = "identity"  # "identity", "projection", "projection_bn"
    shortcut_bias: bool = True  # projection without BN
    cat_first: bool = True  # dense: x first
    pad: int = 0  # avgpool
    count_include_pad: bool = True  # avgpool

    def describe(self) -> str:
        if self.kind == "avgpool":
            return (
                f"avgpool{self.k1}s{self.stride}p{self.pad}{'' if self.count_include_pad else 'x'}"
            )
        norm = "bn" if self.bn else ""
        bias = "" if self.bias else "nb"
        if self.kind == "dense":
            return f"dense+{self.out}{norm}{bias}{'' if self.cat_first else 'r'}"
        short = (
            self.shortcut
            if self.shortcut != "projection" or self.shortcut_bias
            else "projection_nb"
        )
        return f"basic{self.out}k{self.k1}s{self.stride}{norm}{bias}:{short}"


@dataclass
class NetSpec:
    seed: int
    L: float
    in_shape: tuple[int, int, int]
    batch: int
    stem: ConvSpec
    stem_pool: tuple[int, int, int] | None  # (kernel, stride, padding) of a MaxPool2d
    blocks: list[BlockSpec]
    hidden: int | None  # width of a hidden Linear + ReLU after the global pool
    classes: int
    style: Style = field(default_factory=Style)
    exact_bn: bool = True
    high: float = 1.0  # inputs in [0, high)

    def describe(self) -> str:
        pool = "" if self.stem_pool is None else " maxpool{}s{}p{}".format(*self.stem_pool)
        blocks = " ".join(b.describe() for b in self.blocks)
        hidden = "" if self.hidden is None else f" fc{self.hidden}"
        bn = "" if self.exact_bn else " float-bn"
        return (
            f"seed={self.seed} L={self.L} in={self.in_shape} batch={self.batch} "
            f"stem{self.stem.describe()}{pool} | {blocks} |{hidden} fc{self.classes} "
            f"{self.style.describe()}{bn}"
        )


# --------------------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------------------


def _init(module: nn.Module, rng: random.Random, gen: torch.Generator) -> None:
    fan_in = module.weight[0].numel()
    spread = rng.uniform(0.5, 2.0) / math.sqrt(fan_in)
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * spread)
        if module.bias is not None:
            shift = rng.uniform(-1.2, 0.5)  # mostly negative: many silent neurons
            spread_b = rng.uniform(0.2, 1.5)
            module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * spread_b + shift)


def _grid(n: int, low: int, high: int, denominator: int, gen: torch.Generator) -> Tensor:
    return torch.randint(low, high + 1, (n,), generator=gen).double() / denominator


@torch.no_grad()
def _init_bn(bn: nn.BatchNorm2d, conv: nn.Conv2d, exact: bool, gen: torch.Generator) -> None:
    """Random running statistics and affine parameters.  ``exact``: on the dyadic grid of the
    module docstring (the conv's weights and bias are rounded onto it too)."""
    c = bn.num_features
    if exact:
        power = torch.randint(-1, 2, (c,), generator=gen).double()
        bn.running_var.copy_(4.0**power - EXACT_EPS)  # var + eps = 1/4, 1 or 4
        sign = torch.where(torch.rand(c, generator=gen) < 0.1, -1.0, 1.0).double()
        bn.weight.copy_(sign * _grid(c, 16, 96, 64, gen))
        bn.bias.copy_(_grid(c, -64, 24, 64, gen))
        bn.running_mean.copy_(_grid(c, -64, 64, 64, gen))
        conv.weight.copy_((conv.weight.double() * 4096).round().clamp(-8192, 8192) / 4096)
        if conv.bias is not None:
            conv.bias.copy_((conv.bias.double() * 256).round().clamp(-256, 256) / 256)
        assert float(bn.eps) == EXACT_EPS
    else:
        bn.running_var.copy_(torch.rand(c, generator=gen) * 1.7 + 0.3)
        bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
        bn.bias.copy_(torch.rand(c, generator=gen) * 1.2 - 0.8)
        bn.running_mean.copy_(torch.rand(c, generator=gen) * 2 - 1)


def _conv(
    cin: int,
    cout: int,
    k: int,
    stride: int,
    bias: bool,
    bn: bool,
    exact: bool,
    rng: random.Random,
    gen: torch.Generator,
) -> tuple[nn.Conv2d, nn.BatchNorm2d | None]:
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias)
    _init(conv, rng, gen)
    if not bn:
        return conv, None
    norm = nn.BatchNorm2d(cout, eps=EXACT_EPS) if exact else nn.BatchNorm2d(cout)
    _init_bn(norm, conv, exact, gen)
    return conv, norm


def _linear(cin: int, cout: int, bias: bool, rng: random.Random, gen: torch.Generator) -> nn.Linear:
    fc = nn.Linear(cin, cout, bias=bias)
    _init(fc, rng, gen)
    return fc


# --------------------------------------------------------------------------------------
# The networks: the user's forward and, next to it, the reference's g_forward
# --------------------------------------------------------------------------------------


class _Styled(nn.Module):
    """ReLU and global-pool spellings shared by the network classes."""

    def __init__(self, style: Style) -> None:
        super().__init__()
        self.style = style
        if style.relu == "shared":
            self.relu = nn.ReLU(inplace=True)
        elif style.relu == "module":
            self.relus = nn.ModuleDict()
        elif style.relu != "functional":
            raise ValueError(style.relu)

    def _small_case(
        self, seed: int, rng: random.Random, style: Style | None
    ) -> tuple[int, Style]:
        """Style, L, input shape and batch of a small random case; its input channels and
        style."""
        nn.Module.__init__(self)
        _Styled.__init__(self, style if style is not None else random_style(rng))
        self.seed = seed
        self.L = _random_L(rng)
        c = rng.randint(1, 3)
        self.in_shape = (c, rng.randint(6, 10), rng.randint(6, 10))
        self.batch = rng.randint(2, 4)
        return c, self.style

    def _new_relu(self, tag: str) -> None:
        if self.style.relu == "module":
            self.relus[tag] = nn.ReLU()

    def act(self, tag: str, x: Tensor) -> Tensor:
        if self.style.relu == "functional":
            return F.relu(x)
        if self.style.relu == "shared":
            return self.relu(x)
        return self.relus[tag](x)

    def add(self, out: Tensor, other: Tensor) -> Tensor:
        if self.style.add == "iadd":
            out += other
            return out
        return out + other

    def _new_global_pool(self) -> None:
        if self.style.gap == "adaptive":
            self.gap = nn.AdaptiveAvgPool2d(1)

    def global_pool(self, x: Tensor) -> Tensor:
        if self.style.gap == "mean":
            return x.mean((2, 3))
        x = self.gap(x)
        if self.style.flatten == "view":
            return x.view(x.size(0), -1)
        return torch.flatten(x, 1)

    def g_global_pool(self, ctx: GForward, v: Value, name: str = "gap") -> Value:
        keep = self.style.gap == "adaptive"
        v = ctx.neurons(name, ctx.gap(v, keepdim=keep))
        return ctx.flatten(v) if keep else v


def _norm(bn: nn.Module | None, x: Tensor) -> Tensor:
    return x if bn is None else bn(x)


class BasicBlock(_Styled):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""

    def __init__(
        self, cin: int, spec: BlockSpec, style: Style, exact: bool, rng: random.Random, gen
    ) -> None:
        super().__init__(style)
        out = spec.out
        self.conv1, self.bn1 = _conv(
            cin, out, spec.k1, spec.stride, spec.bias, spec.bn, exact, rng, gen
        )
        self.conv2, self.bn2 = _conv(out, out, 3, 1, spec.bias, spec.bn, exact, rng, gen)
        self.kind = spec.shortcut
        self.direct = spec.shortcut == "identity" and style.identity == "direct"
        if spec.shortcut == "identity":
            if spec.stride != 1 or cin != out:
                raise ValueError("an identity shortcut needs stride 1 and equal channels")
            if not self.direct:
                self.shortcut = nn.Identity()
        else:
            with_bn = spec.shortcut == "projection_bn"
            bias = spec.shortcut_bias and not with_bn
            conv, bn = _conv(cin, out, 1, spec.stride, bias, with_bn, exact, rng, gen)
            self.shortcut = conv if bn is None else nn.Sequential(conv, bn)
        self._new_relu("relu1")
        self._new_relu("relu2")

    def forward(self, x: Tensor) -> Tensor:
        out = self.act("relu1", _norm(self.bn1, self.conv1(x)))
        out = _norm(self.bn2, self.conv2(out))
        out = self.add(out, x if self.direct else self.shortcut(x))
        return self.act("relu2", out)

    def g_forward(self, ctx: GForward, v: Value, name: str) -> Value:
        h = ctx.neurons(f"{name}.relu1", ctx.synapse(self.conv1, self.bn1, v))
        main = ctx.synapse(self.conv2, self.bn2, h)
        if self.kind == "identity":
            short = ctx.identity(v)
        elif isinstance(self.shortcut, nn.Sequential):
            short = ctx.synapse(self.shortcut[0], self.shortcut[1], v)
        else:
            short = ctx.synapse(self.shortcut, None, v)
        return ctx.neurons(f"{name}.out", main, short)


class DenseBlock(_Styled):
    """``cat([x, relu(bn(conv(x)))], dim=1)`` (or the new channels first)."""

    def __init__(
        self, cin: int, spec: BlockSpec, style: Style, exact: bool, rng: random.Random, gen
    ) -> None:
        super().__init__(style)
        self.conv, self.bn = _conv(cin, spec.out, 3, 1, spec.bias, spec.bn, exact, rng, gen)
        self.cat_first = spec.cat_first
        self._new_relu("relu")

    def forward(self, x: Tensor) -> Tensor:
        new = self.act("relu", _norm(self.bn, self.conv(x)))
        return torch.cat([x, new] if self.cat_first else [new, x], dim=1)

    def g_forward(self, ctx: GForward, v: Value, name: str) -> Value:
        new = ctx.neurons(f"{name}.relu", ctx.synapse(self.conv, self.bn, v))
        return ctx.cat([v, new] if self.cat_first else [new, v])


class ResNet(_Styled):
    """stem conv (+BN) + ReLU, optional stem max-pool, the blocks, global average pool,
    optional hidden Linear + ReLU, the output Linear."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__(spec.style)
        rng = random.Random(2_147_483_629 * spec.seed + 5)
        gen = torch.Generator().manual_seed(10_007 * spec.seed + 1)
        exact = spec.exact_bn
        c = spec.in_shape[0]
        s = spec.stem
        self.stem, self.stem_bn = _conv(c, s.out, s.k, s.stride, s.bias, s.bn, exact, rng, gen)
        self._new_relu("stem")
        c = s.out
        self.stem_pool = None if spec.stem_pool is None else nn.MaxPool2d(*spec.stem_pool)
        blocks: list[nn.Module] = []
        for b in spec.blocks:
            if b.kind == "basic":
                blocks.append(BasicBlock(c, b, spec.style, exact, rng, gen))
                c = b.out
            elif b.kind == "dense":
                blocks.append(DenseBlock(c, b, spec.style, exact, rng, gen))
                c += b.out
            elif b.kind == "avgpool":
                blocks.append(
                    nn.AvgPool2d(b.k1, b.stride, b.pad, count_include_pad=b.count_include_pad)
                )
            else:
                raise ValueError(b.kind)
        self.blocks = nn.ModuleList(blocks)
        self._new_global_pool()
        self.fc1 = None
        if spec.hidden is not None:
            self.fc1 = _linear(c, spec.hidden, rng.random() < 0.85, rng, gen)
            self._new_relu("fc1")
            c = spec.hidden
        self.fc = _linear(c, spec.classes, rng.random() < 0.85, rng, gen)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act("stem", _norm(self.stem_bn, self.stem(x)))
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        for block in self.blocks:
            x = block(x)
        x = self.global_pool(x)
        if self.fc1 is not None:
            x = self.act("fc1", self.fc1(x))
        return self.fc(x)

    def g_forward(self, ctx: GForward, v: Value) -> Tensor:
        v = ctx.neurons("stem", ctx.synapse(self.stem, self.stem_bn, v))
        if self.stem_pool is not None:
            v = ctx.maxpool("stem_pool", self.stem_pool, v)
        for i, block in enumerate(self.blocks, 1):
            if isinstance(block, nn.AvgPool2d):
                v = ctx.neurons(f"avgpool{i}", ctx.avgpool(block, v))
            else:
                v = block.g_forward(ctx, v, f"block{i}")
        v = self.g_global_pool(ctx, v)
        if self.fc1 is not None:
            v = ctx.neurons("fc1", ctx.synapse(self.fc1, None, v))
        return ctx.output(ctx.synapse(self.fc, None, v))


class ConcatNet(_Styled):
    """Two branches and the stem concatenated, then a conv::

    h = relu(bn(stem(x)))
    a = relu(conv_a(h)); b = maxpool3x3s1p1(h)
    c = torch.cat([a, b, h], dim=1)          (in a random order)
    d = relu(bn_d(conv_d(c)))                (stride 1 or 2)
    logits = fc(global_pool(d))
    """

    def __init__(self, seed: int, style: Style | None = None) -> None:
        rng = random.Random(7_368_787 * seed + 11)
        gen = torch.Generator().manual_seed(30_011 * seed + 7)
        c, style = self._small_case(seed, rng, style)
        c0, ca, cd = rng.randint(2, 5), rng.randint(1, 4), rng.randint(2, 6)
        bn = rng.random() < 0.6
        self.stem, self.stem_bn = _conv(c, c0, 3, 1, not bn, bn, True, rng, gen)
        self.conv_a, _ = _conv(c0, ca, 3, 1, True, False, True, rng, gen)
        self.pool = nn.MaxPool2d(3, 1, 1)
        self.order = rng.sample(["a", "b", "h"], 3)
        stride = rng.choice([1, 2])
        self.conv_d, self.bn_d = _conv(ca + 2 * c0, cd, 3, stride, True, bn, True, rng, gen)
        for tag in ("stem", "a", "d"):
            self._new_relu(tag)
        self._new_global_pool()
        self.fc = _linear(cd, rng.randint(2, 5), True, rng, gen)
        self.description = (
            f"concat seed={seed} L={self.L} in={self.in_shape} batch={self.batch} "
            f"c0={c0} ca={ca} cd={cd} order={''.join(self.order)} s{stride} "
            f"{'bn ' if bn else ''}{style.describe()}"
        )
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        h = self.act("stem", _norm(self.stem_bn, self.stem(x)))
        a = self.act("a", self.conv_a(h))
        b = self.pool(h)
        parts = {"a": a, "b": b, "h": h}
        c = torch.cat([parts[k] for k in self.order], dim=1)
        d = self.act("d", _norm(self.bn_d, self.conv_d(c)))
        return self.fc(self.global_pool(d))

    def g_forward(self, ctx: GForward, v: Value) -> Tensor:
        h = ctx.neurons("stem", ctx.synapse(self.stem, self.stem_bn, v))
        a = ctx.neurons("a", ctx.synapse(self.conv_a, None, h))
        b = ctx.maxpool("b", self.pool, h)
        parts = {"a": a, "b": b, "h": h}
        c = ctx.cat([parts[k] for k in self.order])
        d = ctx.neurons("d", ctx.synapse(self.conv_d, self.bn_d, c))
        return ctx.output(ctx.synapse(self.fc, None, self.g_global_pool(ctx, d)))


class ThreeWayNet(_Styled):
    """A three-way sum, two shortcuts into one neuron::

    x0 = relu(bn0(stem(x)))
    x1 = relu(bn1(conv1(x0)))
    h = relu(bn_a(conv_a(x1)))
    y = relu(bn_b(conv_b(h)) + x1 + proj(x0))     (proj: 1x1 conv, + BN, or identity)
    logits = fc(global_pool(y))
    """

    def __init__(self, seed: int, style: Style | None = None) -> None:
        rng = random.Random(1_000_033 * seed + 13)
        gen = torch.Generator().manual_seed(50_021 * seed + 3)
        c, style = self._small_case(seed, rng, style)
        bn = rng.random() < 0.6
        c1 = rng.randint(2, 6)
        self.proj_kind = rng.choice(["identity", "projection", "projection_bn"])
        c0 = c1 if self.proj_kind == "identity" else rng.randint(2, 6)
        self.stem, self.bn0 = _conv(c, c0, 3, 1, not bn, bn, True, rng, gen)
        self.conv1, self.bn1 = _conv(c0, c1, 3, 1, not bn, bn, True, rng, gen)
        self.conv_a, self.bn_a = _conv(c1, c1, 3, 1, not bn, bn, True, rng, gen)
        self.conv_b, self.bn_b = _conv(c1, c1, 3, 1, not bn, bn, True, rng, gen)
        self.direct = style.identity == "direct"
        if not self.direct:
            self.skip1 = nn.Identity()
        if self.proj_kind == "identity":
            if not self.direct:
                self.skip0 = nn.Identity()
        else:
            with_bn = self.proj_kind == "projection_bn"
            conv, norm = _conv(c0, c1, 1, 1, not with_bn, with_bn, True, rng, gen)
            self.proj = conv if norm is None else nn.Sequential(conv, norm)
        for tag in ("x0", "x1", "h", "y"):
            self._new_relu(tag)
        self._new_global_pool()
        self.fc = _linear(c1, rng.randint(2, 5), True, rng, gen)
        self.description = (
            f"three-way seed={seed} L={self.L} in={self.in_shape} batch={self.batch} "
            f"c0={c0} c1={c1} {self.proj_kind} {'bn ' if bn else ''}{style.describe()}"
        )
        self.eval()

    def _short0(self, x0: Tensor) -> Tensor:
        if self.proj_kind != "identity":
            return self.proj(x0)
        return x0 if self.direct else self.skip0(x0)

    def forward(self, x: Tensor) -> Tensor:
        x0 = self.act("x0", _norm(self.bn0, self.stem(x)))
        x1 = self.act("x1", _norm(self.bn1, self.conv1(x0)))
        h = self.act("h", _norm(self.bn_a, self.conv_a(x1)))
        skip = x1 if self.direct else self.skip1(x1)
        y = self.act("y", _norm(self.bn_b, self.conv_b(h)) + skip + self._short0(x0))
        return self.fc(self.global_pool(y))

    def g_forward(self, ctx: GForward, v: Value) -> Tensor:
        x0 = ctx.neurons("x0", ctx.synapse(self.stem, self.bn0, v))
        x1 = ctx.neurons("x1", ctx.synapse(self.conv1, self.bn1, x0))
        h = ctx.neurons("h", ctx.synapse(self.conv_a, self.bn_a, x1))
        main = ctx.synapse(self.conv_b, self.bn_b, h)
        if self.proj_kind == "identity":
            short0 = ctx.identity(x0)
        elif isinstance(self.proj, nn.Sequential):
            short0 = ctx.synapse(self.proj[0], self.proj[1], x0)
        else:
            short0 = ctx.synapse(self.proj, None, x0)
        y = ctx.neurons("y", main, ctx.identity(x1), short0)
        return ctx.output(ctx.synapse(self.fc, None, self.g_global_pool(ctx, y)))


# --------------------------------------------------------------------------------------
# Random specs and cases
# --------------------------------------------------------------------------------------


def _random_L(rng: random.Random) -> float:
    return float(rng.randint(1, 8)) if rng.random() < 0.4 else round(rng.uniform(1.0, 8.0), 3)


def random_style(rng: random.Random) -> Style:
    return Style(
        relu=rng.choice(["functional", "module", "shared"]),
        add=rng.choice(["plus", "iadd"]),
        identity=rng.choice(["module", "direct"]),
        gap=rng.choice(["adaptive", "mean"]),
        flatten=rng.choice(["flatten", "view"]),
    )


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def random_spec(seed: int, exact_bn: bool = True) -> NetSpec:
    """A tiny random residual network: stem conv (+BN) (+max-pool), 1-3 residual blocks
    (strides 1/2, identity or projection shortcuts, with or without BN), sometimes a dense
    (concatenating) block or an average pool in between, a global average pool, sometimes a
    hidden Linear; 2-6 channels (up to 9 after dense blocks), 6x6 to 10x10 inputs."""
    rng = random.Random(1_000_003 * seed + 29)
    L = _random_L(rng)
    c = rng.randint(1, 3)
    in_h, in_w = rng.randint(6, 10), rng.randint(6, 10)
    h, w = in_h, in_w
    width = rng.randint(2, 6)
    stem_bn = rng.random() < 0.5
    stem = ConvSpec(
        out=width,
        k=3 if rng.random() < 0.8 else 1,
        stride=2 if rng.random() < 0.15 else 1,
        bias=(not stem_bn) or rng.random() < 0.3,
        bn=stem_bn,
    )
    h, w = (_out_size(n, stem.k, stem.stride, stem.k // 2) for n in (h, w))
    stem_pool = None
    if rng.random() < 0.35 and min(h, w) >= 4:
        stem_pool = rng.choice([(2, 2, 0), (3, 2, 1)])
        h, w = (_out_size(n, *stem_pool) for n in (h, w))
    blocks: list[BlockSpec] = []
    channels = width
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.12 and min(h, w) >= 2:
            k, s, p = rng.choice([(2, 2, 0), (3, 2, 1), (2, 1, 0)])
            blocks.append(
                BlockSpec("avgpool", k1=k, stride=s, pad=p, count_include_pad=rng.random() < 0.5)
            )
            h, w = (_out_size(n, k, s, p) for n in (h, w))
        bn = rng.random() < 0.6
        bias = rng.random() < (0.25 if bn else 0.8)
        if rng.random() < 0.15 and channels <= 6:
            blocks.append(
                BlockSpec(
                    "dense", out=rng.randint(1, 3), bn=bn, bias=bias, cat_first=rng.random() < 0.6
                )
            )
            channels += blocks[-1].out
            continue
        stride = 2 if rng.random() < 0.35 and min(h, w) >= 3 else 1
        out = channels if stride == 1 and rng.random() < 0.55 else rng.randint(2, 6)
        if stride == 1 and out == channels and rng.random() < 0.8:
            shortcut = "identity"
        else:
            shortcut = rng.choice(["projection", "projection_bn"])
        blocks.append(
            BlockSpec(
                "basic",
                out=out,
                stride=stride,
                k1=3 if rng.random() < 0.85 else 1,
                bn=bn,
                bias=bias,
                shortcut=shortcut,
                shortcut_bias=rng.random() < 0.7,
            )
        )
        channels = out
        h, w = (_out_size(n, 3, stride, 1) for n in (h, w))
    return NetSpec(
        seed=seed,
        L=L,
        in_shape=(c, in_h, in_w),
        batch=rng.randint(2, 4),
        stem=stem,
        stem_pool=stem_pool,
        blocks=blocks,
        hidden=rng.randint(3, 8) if rng.random() < 0.3 else None,
        classes=rng.randint(2, 5),
        style=random_style(rng),
        exact_bn=exact_bn,
        high=rng.choice([0.5, 1.0, 3.0]),
    )


def random_inputs(
    shape: tuple[int, ...], batch: int, high: float, rng: random.Random, gen: torch.Generator
) -> Tensor:
    """Non-negative inputs in ``[0, high)`` with >= 30 % exact zeros in every sample and, a
    third of the time, one all-zero sample."""
    x = torch.rand((batch, *shape), generator=gen) * high
    x[torch.rand(x.shape, generator=gen) < rng.uniform(0.3, 0.6)] = 0.0
    n = x[0].numel()
    for b in range(batch):
        flat = x[b].reshape(-1)
        need = math.ceil(0.3 * n) - int((flat == 0).sum())
        if need > 0:
            flat[torch.nonzero(flat).flatten()[:need]] = 0.0
    if rng.random() < 0.33:
        x[rng.randrange(batch)] = 0.0
    return x


@dataclass
class Case:
    model: nn.Module
    x: Tensor
    L: float
    description: str


def random_case(seed: int, exact_bn: bool = True, style: Style | None = None) -> Case:
    """The network of :func:`random_spec` (``style`` overrides its spelling), its inputs and
    ``L``."""
    spec = random_spec(seed, exact_bn)
    if style is not None:
        spec = replace(spec, style=style)
    model = ResNet(spec)
    rng = random.Random(seed + 0x5EED)
    gen = torch.Generator().manual_seed(seed + 0xC0FFEE)
    x = random_inputs(spec.in_shape, spec.batch, spec.high, rng, gen)
    return Case(model, x, spec.L, spec.describe())


def _case_of(model: ConcatNet | ThreeWayNet) -> Case:
    rng = random.Random(model.seed + 0xCA7)
    gen = torch.Generator().manual_seed(model.seed + 0xBEEF)
    x = random_inputs(model.in_shape, model.batch, rng.choice([0.5, 1.0, 3.0]), rng, gen)
    return Case(model, x, model.L, model.description)


def concat_case(seed: int, style: Style | None = None) -> Case:
    return _case_of(ConcatNet(seed, style))


def three_way_case(seed: int, style: Style | None = None) -> Case:
    return _case_of(ThreeWayNet(seed, style))
