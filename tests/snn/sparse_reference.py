"""An independent float64 reference for the sparse (and the paper) temporal coding.

Nothing here imports ``tdsnn``: the reference is written from the definition of the G-DNN,
reading the weights of the *original* model (built here, without BatchNorm, so that
``tdsnn.prepare(..., compensate=False)`` without normalisation leaves every weight as it is).

Coding (``L`` the leak constant, all arithmetic in float64):

* ``T(x) = ceil(L ln(1 + x))`` for ``x > 0``.
* sparse: ``G_s(x) = 0`` for ``x <= 0`` (a *silent* neuron, spike time ``-1``), else
  ``exp(T(x) / L)`` (so ``T >= 1``), computed as ``exp(ceil(L log1p(x)) * (1/L))``.
* paper: ``G(x) = exp(T(max(x, 0)) / L)``: nothing is silent, a zero fires at 0, ``G(0) = 1``.
* sparse with an earliest spike time ``k = min_time > 1`` (hidden neurons only, the input
  keeps 1): a hidden neuron whose ``T`` is below ``k`` is silent too, after a static
  ``T_il`` clamp (a spike forced at ``T_il < k`` comes too early and is not emitted; the
  clamp counts as clipped every neuron still waiting at ``T_il``).

Network: ``x -> G -> synapse (Conv2d / Linear / AvgPool2d) -> ReLU -> [MaxPool2d] -> G ->
... -> last synapse layer`` (the logits, no G after it).  Zero padding of a conv or a pool
contributes 0 (no neuron).  A max-pool takes the maximum of its window's ReLU outputs (so its
spike time is the window's largest spike time, ``-1`` when all of them are silent).

Spiking layers, in the order of ``SNNResult.spike_times``: the input encoding, then every
hidden synapse layer and every max-pool layer.  For each the reference records the spike
times, the float64 pre-activation and a rounding scale (``|W| |g| + |b|``) that says how
close to a level boundary a neuron is, and the fan-out of every neuron into the next layer
(the synapse or max-pool neurons it reaches; zero padding has no neuron).

Synaptic events (summed over the batch): every emitted spike times its fan-out, plus, for
every synapse layer with a bias, one bias-neuron spike per sample reaching each of the
layer's neurons.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SILENT = -1
CODINGS = ("paper", "sparse")
SYNAPSES = (nn.Conv2d, nn.Linear, nn.AvgPool2d)
_PREFIX = {nn.Conv2d: "conv", nn.Linear: "fc", nn.AvgPool2d: "avgpool"}


# --------------------------------------------------------------------------------------
# Coding
# --------------------------------------------------------------------------------------


def level(x: Tensor, L: float) -> Tensor:
    """``ceil(L ln(1 + x))`` in float64 (for ``x > 0``; meaningless elsewhere)."""
    return torch.ceil(float(L) * torch.log1p(x.double().clamp(min=0)))


def encode(values: Tensor, L: float, coding: str, min_time: int = 1) -> Tensor:
    """Spike times (int64) of non-negative-or-not values: ``T`` or ``-1`` (sparse: ``<= 0``,
    or ``T < min_time``)."""
    v = values.double()
    t = level(v, L)
    if coding == "sparse":
        t = torch.where((v > 0) & (t >= min_time), t, torch.full_like(t, SILENT))
    elif coding != "paper":
        raise ValueError(f"coding must be one of {CODINGS}, got {coding!r}")
    return t.to(torch.int64)


def decode(times: Tensor, L: float, coding: str) -> Tensor:
    """The float64 value a spike at integer time ``t`` stands for: ``exp(t * (1/L))``;
    a silent neuron (``t < 0``, sparse only) stands for 0."""
    g = torch.exp(times.double() * (1.0 / float(L)))
    if coding == "sparse":
        g = torch.where(times >= 0, g, torch.zeros_like(g))
    return g


def g_value(x: Tensor, L: float, coding: str) -> Tensor:
    """``G_s(x)`` (sparse) or ``G(max(x, 0))`` (paper), straight from the definition."""
    v = x.double()
    g = torch.exp(torch.ceil(float(L) * torch.log1p(v.clamp(min=0))) * (1.0 / float(L)))
    if coding == "sparse":
        g = torch.where(v > 0, g, torch.zeros_like(g))
    return g


def bias_time(L: float) -> int:
    """``T(1)``: when the bias neuron fires."""
    return math.ceil(float(L) * math.log(2.0))


def near_boundary(pre: Tensor, scale: Tensor, L: float, rel: float = 1e-9) -> Tensor:
    """Neurons whose pre-activation lies within ``rel * max(scale, |pre|)`` of a level
    boundary ``exp(k/L) - 1`` (``k >= 0``; ``k = 0`` is the boundary to silence at 0)."""
    a = pre.double()
    u = float(L) * torch.log1p(a.clamp(min=0))
    lo = torch.expm1(torch.floor(u) / float(L))
    hi = torch.expm1(torch.ceil(u) / float(L))
    dist = torch.minimum(torch.minimum((a - lo).abs(), (a - hi).abs()), a.abs())
    return dist <= rel * torch.maximum(scale.double(), a.abs())


# --------------------------------------------------------------------------------------
# Fan-out (independent of any conv: counted per dimension)
# --------------------------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _cover(n_in: int, n_out: int, k: int, s: int, p: int, d: int = 1) -> Tensor:
    """Per input index, how many (output position, kernel tap) pairs land on it."""
    count = torch.zeros(n_in, dtype=torch.int64)
    for o in range(n_out):
        for j in range(k):
            i = o * s - p + j * d
            if 0 <= i < n_in:
                count[i] += 1
    return count


def fan_out(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Tensor:
    """Per neuron of a layer of shape ``in_shape`` (no batch), how many neurons of
    ``module`` (output shape ``out_shape``) it reaches: a conv's receptive fields that
    cover it times the output channels of its group, a Linear's outputs, a pool's windows."""
    if isinstance(module, nn.Linear):
        return torch.full(in_shape, module.out_features, dtype=torch.int64)
    c, h, w = in_shape
    ho, wo = out_shape[-2], out_shape[-1]
    if isinstance(module, nn.Conv2d):
        (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride)
        (ph, pw), (dh, dw) = _pair(module.padding), _pair(module.dilation)
        per_channel = module.out_channels // module.groups
    else:  # AvgPool2d / MaxPool2d: one channel each
        (kh, kw) = _pair(module.kernel_size)
        stride = module.stride if module.stride is not None else module.kernel_size
        (sh, sw), (ph, pw) = _pair(stride), _pair(module.padding)
        (dh, dw) = _pair(getattr(module, "dilation", 1))
        per_channel = 1
    rows = _cover(h, ho, kh, sh, ph, dh)
    cols = _cover(w, wo, kw, sw, pw, dw)
    plane = rows[:, None] * cols[None, :]
    return (plane * per_channel).expand(c, h, w).clone()


# --------------------------------------------------------------------------------------
# The reference network
# --------------------------------------------------------------------------------------


@dataclass
class Step:
    """One layer of the chain: a synapse layer, a max-pool or a flatten."""

    kind: str  # "synapse", "maxpool", "flatten"
    module: nn.Module
    name: str = ""
    weight: Tensor | None = None  # float64
    bias: Tensor | None = None  # float64
    is_output: bool = False


@dataclass
class SpikingLayer:
    """What the reference says about one spiking layer (batch first)."""

    name: str
    times: Tensor  # int64, -1 = silent
    pre: Tensor | None  # float64 pre-activation (the input value for the input layer)
    scale: Tensor | None  # rounding scale |W||g| + |b| (None: exact, e.g. a max-pool)
    natural: Tensor | None = None  # spike times before a static clamp
    fanout: Tensor | None = None  # per neuron (no batch), into the next layer

    def emitted(self) -> Tensor:
        return self.times >= 0


@dataclass
class Run:
    """The reference's answer for one batch."""

    layers: list[SpikingLayer]
    logits: Tensor
    t_il: Tensor  # batch x synapse layers (dynamic: max(T(1), last spike of the layer before))
    clipped: list[int]
    synaptic_events: int
    bias_events: int
    names: list[str] = field(default_factory=list)

    def spike_times_list(self) -> list[Tensor]:
        return [layer.times for layer in self.layers]

    @property
    def spike_counts(self) -> list[int]:
        return [int(layer.emitted().sum()) for layer in self.layers]


class Reference:
    """Float64 forward of the G-DNN of ``model`` (an ``nn.Sequential`` of Conv2d, Linear,
    AvgPool2d, MaxPool2d, ReLU, Flatten, Dropout; no BatchNorm)."""

    def __init__(self, model: nn.Sequential, L: float, coding: str, min_time: int = 1) -> None:
        if coding not in CODINGS:
            raise ValueError(coding)
        self.L = float(L)
        self.coding = coding
        self.min_time = int(min_time)
        steps: list[Step] = []
        n_syn = n_pool = 0
        for module in model:
            if isinstance(module, (nn.ReLU, nn.Dropout)):
                continue
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                raise ValueError("the reference does not fold BatchNorm; build models without it")
            if isinstance(module, SYNAPSES):
                n_syn += 1
                weight = getattr(module, "weight", None)
                bias = getattr(module, "bias", None)
                steps.append(
                    Step(
                        "synapse",
                        module,
                        f"{_PREFIX[type(module)]}{n_syn}",
                        None if weight is None else weight.detach().double().clone(),
                        None if bias is None else bias.detach().double().clone(),
                    )
                )
            elif isinstance(module, nn.MaxPool2d):
                n_pool += 1
                steps.append(Step("maxpool", module, f"pool{n_pool}"))
            elif isinstance(module, nn.Flatten):
                steps.append(Step("flatten", module))
            else:
                raise ValueError(f"unsupported layer {type(module).__name__}")
        synapses = [s for s in steps if s.kind == "synapse"]
        synapses[-1].is_output = True
        self.steps = steps
        self.n_synapses = len(synapses)

    # -- one synapse layer --------------------------------------------------------------

    def _affine(self, step: Step, g: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-activation ``A = W g + b`` and the rounding scale ``|W| |g| + |b|``."""
        m = step.module
        if isinstance(m, nn.AvgPool2d):
            args = dict(
                kernel_size=m.kernel_size,
                stride=m.stride,
                padding=m.padding,
                ceil_mode=m.ceil_mode,
                count_include_pad=m.count_include_pad,
                divisor_override=m.divisor_override,
            )
            a = F.avg_pool2d(g, **args)
            return a, a.abs()
        w, b = step.weight, step.bias
        if isinstance(m, nn.Conv2d):
            args = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)
            a = F.conv2d(g, w, b, **args)
            s = F.conv2d(g.abs(), w.abs(), None if b is None else b.abs(), **args)
        else:
            a = g @ w.T
            s = g.abs() @ w.abs().T
            if b is not None:
                a = a + b
                s = s + b.abs()
        return a, s

    def _out_shape(self, step: Step, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        with torch.no_grad():
            probe = torch.zeros((1, *in_shape), dtype=torch.float64)
            if step.kind == "maxpool":
                return tuple(
                    F.max_pool2d(
                        probe,
                        step.module.kernel_size,
                        step.module.stride,
                        step.module.padding,
                        step.module.dilation,
                        step.module.ceil_mode,
                    ).shape[1:]
                )
            return tuple(self._affine(step, probe)[0].shape[1:])

    # -- the whole network ---------------------------------------------------------------

    @torch.no_grad()
    def run(
        self,
        x: Tensor,
        forced: list[Tensor] | None = None,
        t_il: list[int] | None = None,
    ) -> Run:
        """Reference spike times, logits, ``T_il``, clips and synaptic events of a batch.

        ``forced``: the engine's spike times, one per spiking layer: every layer is then fed
        the *forced* times of the layer before (so a rounding difference upstream does not
        propagate); the reference's own times of every layer are still reported.
        ``t_il``: static inhibitory periods, one per synapse layer: the spike times feeding
        synapse layer ``k`` are clamped to ``t_il[k]`` (silent stays silent); ``clipped[k]``
        counts the spikes cut short (for a hidden layer followed by a max-pool, its own
        neurons, before pooling).
        """
        L, coding = self.L, self.coding
        x = x.double()
        batch = x.shape[0]
        t1 = bias_time(L)
        natural = encode(x, L, coding)
        clipped: list[int] = []
        times = natural
        if t_il is not None:
            clipped.append(int((natural > t_il[0]).sum()))
            times = natural.clamp(max=t_il[0])
        layers = [SpikingLayer("input", times, x, x, natural)]
        index = 0  # spiking layer that feeds the next step

        def fed() -> Tensor:
            return layers[-1].times if forced is None else forced[index].to(torch.int64)

        current = fed()
        source = 0  # the last non-pool spiking layer

        def producer_times() -> Tensor:
            return layers[source].times if forced is None else forced[source].to(torch.int64)

        t_il_rows: list[Tensor] = []
        synapse_index = 0
        bias_events = 0
        logits = None
        for step in self.steps:
            if step.kind == "flatten":
                current = current.flatten(1)
                continue
            in_shape = tuple(current.shape[1:])
            out_shape = self._out_shape(step, in_shape)
            producer = layers[-1]  # (a Linear after a flatten reaches all its outputs)
            producer.fanout = fan_out(step.module, tuple(producer.times.shape[1:]), out_shape)
            if step.kind == "maxpool":
                m = step.module
                pooled = F.max_pool2d(
                    current.double(), m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode
                ).to(torch.int64)
                layers.append(SpikingLayer(step.name, pooled, None, None, pooled))
                index += 1
                current = fed()
                continue
            # synapse layer; its T_il follows the last spike of the synapse (or input) layer
            # before it, before any max-pool (the engine's convention: a floor-mode pool
            # leaves some of that layer's neurons out, and they still fire)
            last = producer_times().flatten(1).amax(dim=1)
            if t_il is None:
                t_il_rows.append(torch.clamp(last, min=t1))
            else:
                t_il_rows.append(torch.full((batch,), int(t_il[synapse_index]), dtype=torch.int64))
            g = decode(current, L, coding)
            a, s = self._affine(step, g)
            if step.bias is not None:
                bias_events += int(a[0].numel()) * batch
            synapse_index += 1
            if step.is_output:
                logits = a
                break
            relu = a.clamp(min=0)
            nat = encode(relu, L, coding, self.min_time)
            t = nat
            if t_il is not None:
                # clipped: every neuron still waiting when the static period ends, also one
                # whose late spike min_time would have silenced anyway
                waiting = encode(relu, L, coding) > t_il[synapse_index]
                clipped.append(int(waiting.sum()))
                t = torch.where(waiting, torch.full_like(nat, t_il[synapse_index]), nat)
                if coding == "sparse":
                    t = torch.where(t < self.min_time, torch.full_like(t, SILENT), t)
            layers.append(SpikingLayer(step.name, t, a, s, nat))
            index += 1
            source = index
            current = fed()
        assert logits is not None
        events = bias_events
        for layer in layers:
            events += int((layer.emitted().to(torch.int64) * layer.fanout).sum())
        return Run(
            layers=layers,
            logits=logits,
            t_il=torch.stack(t_il_rows, dim=1),
            clipped=clipped,
            synaptic_events=events,
            bias_events=bias_events,
            names=[layer.name for layer in layers],
        )


# --------------------------------------------------------------------------------------
# Random networks
# --------------------------------------------------------------------------------------


@dataclass
class Case:
    model: nn.Sequential
    x: Tensor
    L: float
    description: str


def _init(module: nn.Module, rng: random.Random, gen: torch.Generator) -> None:
    fan_in = module.weight[0].numel()
    spread = rng.uniform(0.5, 2.0) / math.sqrt(fan_in)
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * spread)
        if module.bias is not None:
            shift = rng.uniform(-1.2, 0.5)  # mostly negative: many silent neurons
            spread_b = rng.uniform(0.2, 1.5)
            module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * spread_b + shift)


def random_case(seed: int) -> Case:
    """A small random CNN (1-3 convs, some grouped, each with an optional max- or avg-pool,
    mostly 2x2, then flatten and 1-2 Linear) or MLP (1-3 Linear), ``L`` in [1, 8], random
    weights and mostly negative biases, a batch of non-negative inputs with >= 30 % exact
    zeros in every sample and, half of the time, one all-zero sample."""
    rng = random.Random(1_000_003 * seed + 17)
    gen = torch.Generator().manual_seed(seed)
    L = float(rng.randint(1, 8)) if rng.random() < 0.4 else round(rng.uniform(1.0, 8.0), 3)
    layers: list[nn.Module] = []
    parts: list[str] = []
    batch = rng.randint(2, 5)
    if rng.random() < 0.25:
        features = rng.randint(3, 24)
        in_shape: tuple[int, ...] = (features,)
        n_linear = rng.randint(1, 3)
    else:
        c, h, w = rng.randint(1, 3), rng.randint(5, 11), rng.randint(5, 11)
        in_shape = (c, h, w)
        shape = in_shape
        for _ in range(rng.randint(1, 3)):
            c, h, w = shape
            k = rng.randint(1, min(3, h, w))
            stride = rng.randint(1, 2)
            pad = rng.randint(0, 1)
            out = rng.randint(1, 6)
            groups = 1
            if rng.random() < 0.2:
                groups = rng.choice([g for g in (1, 2, 3) if c % g == 0 and out % g == 0])
            conv = nn.Conv2d(c, out, k, stride, pad, groups=groups, bias=rng.random() < 0.85)
            _init(conv, rng, gen)
            layers += [conv, nn.ReLU()]
            parts.append(
                f"conv{out}k{k}s{stride}p{pad}g{groups}{'' if conv.bias is not None else 'nb'}"
            )
            shape = tuple(conv(torch.zeros(1, *shape)).shape[1:])
            if rng.random() < 0.15:
                layers.append(nn.Dropout(0.3))
            if min(shape[1:]) >= 2:
                r = rng.random()
                pool: nn.Module | None = None
                # mostly 2x2 / stride 2; sometimes 2-3 wide, overlapping, padded, ceil mode
                odd = rng.random() < 0.3
                kp = rng.randint(2, min(3, *shape[1:])) if odd else 2
                sp = rng.randint(1, kp) if odd else 2
                pp = rng.randint(0, kp // 2) if odd else 0
                ceil = odd and rng.random() < 0.5
                tag = f"{kp}s{sp}p{pp}{'c' if ceil else ''}"
                if r < 0.35:
                    pool = nn.MaxPool2d(kp, sp, pp, ceil_mode=ceil)
                    layers.append(pool)
                    parts.append(f"maxpool{tag}")
                elif r < 0.5:
                    pool = nn.AvgPool2d(
                        kp, sp, pp, ceil_mode=ceil, count_include_pad=rng.random() < 0.5
                    )
                    layers += [pool, nn.ReLU()]
                    parts.append(f"avgpool{tag}{'' if pool.count_include_pad else 'x'}")
                if pool is not None:
                    shape = tuple(pool(torch.zeros(1, *shape)).shape[1:])
        layers.append(nn.Flatten())
        features = int(torch.Size(shape).numel())
        n_linear = rng.randint(1, 2)
    for i in range(n_linear):
        last = i == n_linear - 1
        out = rng.randint(2, 5) if last else rng.randint(3, 12)
        fc = nn.Linear(features, out, bias=rng.random() < 0.9)
        _init(fc, rng, gen)
        layers.append(fc)
        if not last:
            layers.append(nn.ReLU())
        parts.append(f"fc{out}{'' if fc.bias is not None else 'nb'}")
        features = out
    high = rng.choice([0.5, 1.0, 3.0])
    x = torch.rand((batch, *in_shape), generator=gen) * high
    p_zero = rng.uniform(0.35, 0.75)
    x[torch.rand(x.shape, generator=gen) < p_zero] = 0.0
    n = x[0].numel()
    for b in range(batch):  # at least 30 % exact zeros in every sample
        flat = x[b].reshape(-1)
        need = math.ceil(0.3 * n) - int((flat == 0).sum())
        if need > 0:
            idx = torch.nonzero(flat).flatten()[:need]
            flat[idx] = 0.0
    if rng.random() < 0.5:
        x[rng.randrange(batch)] = 0.0  # a whole zero image
    model = nn.Sequential(*layers).eval()
    desc = f"seed={seed} L={L} in={in_shape} batch={batch} " + "-".join(parts)
    return Case(model, x, L, desc)
