"""Random networks and reference spike times, to check exactness on many models.

Used by the test-suite (property-style, over hundreds of seeds) and handy for
users who extend the converter: every network built here is one that
:func:`tdsnn.prepare` accepts, with random shapes, weights, biases and inputs.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .coding import spike_time
from .prepare import GDNN


@dataclass
class RandomCase:
    """A random model, a batch of non-negative inputs and a leak constant."""

    model: nn.Module
    inputs: Tensor
    L: float
    description: str


def _init(module: nn.Module, rng: random.Random, gen: torch.Generator) -> None:
    fan_in = module.weight[0].numel()
    spread = rng.uniform(0.3, 2.5) / math.sqrt(fan_in)
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * spread)
        if module.bias is not None:
            module.bias.copy_((torch.rand(module.bias.shape, generator=gen) * 2 - 1) * rng.uniform(0, 2))


def _batchnorm(features: int, two_d: bool, gen: torch.Generator) -> nn.Module:
    bn = nn.BatchNorm2d(features) if two_d else nn.BatchNorm1d(features)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(features, generator=gen) * 0.5)
        bn.running_var.copy_(torch.rand(features, generator=gen) + 0.5)
        bn.weight.copy_(torch.rand(features, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(features, generator=gen) * 0.3)
    return bn.eval()


def random_case(seed: int) -> RandomCase:
    """Build a random supported network, inputs and ``L`` in [1, 8] from ``seed``."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    L = round(rng.uniform(1.0, 8.0), 3)
    layers: list[nn.Module] = []
    parts: list[str] = []
    batch = rng.randint(1, 4)
    if rng.random() < 0.2:  # a plain MLP on flat inputs
        features = rng.randint(1, 40)
        shape: tuple[int, ...] = (features,)
        input_dims = shape
    else:
        shape = (rng.randint(1, 3), rng.randint(4, 12), rng.randint(4, 12))
        input_dims = shape
        for _ in range(rng.randint(1, 4)):
            c, h, w = shape
            choice = rng.choices(["conv", "maxpool", "avgpool"], weights=[4, 1.5, 1])[0]
            if choice != "conv" and min(h, w) < 2:
                choice = "conv"
            if choice == "conv":
                k = rng.randint(1, min(3, h, w))
                pad = rng.randint(0, k // 2)
                stride = rng.choice([1, 1, 2])
                out = rng.randint(1, 6)
                groups = rng.choice([g for g in (1, 2, 3) if c % g == 0 and out % g == 0])
                conv = nn.Conv2d(c, out, k, stride, pad, groups=groups, bias=rng.random() < 0.8)
                _init(conv, rng, gen)
                layers.append(conv)
                parts.append(f"conv{out}k{k}s{stride}p{pad}g{groups}")
                if rng.random() < 0.3:
                    layers.append(_batchnorm(out, True, gen))
                    parts.append("bn")
                if rng.random() < 0.85:
                    layers.append(nn.ReLU())
                shape = conv(torch.zeros(1, *shape)).shape[1:]
            else:
                k = rng.randint(2, min(3, h, w))
                stride = rng.randint(1, k)
                pad = rng.randint(0, k // 2)
                ceil = rng.random() < 0.3
                if choice == "maxpool":
                    pool: nn.Module = nn.MaxPool2d(k, stride, pad, ceil_mode=ceil)
                else:
                    pool = nn.AvgPool2d(k, stride, pad, ceil_mode=ceil, count_include_pad=rng.random() < 0.5)
                layers.append(pool)
                parts.append(f"{choice}{k}s{stride}p{pad}{'c' if ceil else ''}")
                shape = pool(torch.zeros(1, *shape)).shape[1:]
        layers.append(nn.Flatten())
        shape = (int(torch.Size(shape).numel()),)
    features = shape[0]
    for _ in range(rng.randint(0, 2)):
        out = rng.randint(1, 30)
        fc = nn.Linear(features, out, bias=rng.random() < 0.9)
        _init(fc, rng, gen)
        layers.append(fc)
        if rng.random() < 0.2:
            layers.append(_batchnorm(out, False, gen))
        layers.append(nn.ReLU())
        parts.append(f"fc{out}")
        features = out
    classes = rng.randint(2, 10)
    head = nn.Linear(features, classes, bias=rng.random() < 0.9)
    _init(head, rng, gen)
    layers.append(head)
    parts.append(f"fc{classes}")
    in_shape = (batch, *input_dims)
    high = rng.choice([1.0, 4.0, 30.0])
    x = torch.rand(in_shape, generator=gen) * high
    x[torch.rand(in_shape, generator=gen) < 0.2] = 0.0
    model = nn.Sequential(*layers).eval()
    return RandomCase(model, x, L, f"L={L} " + "-".join(parts))


@torch.no_grad()
def reference_spike_times(gdnn: GDNN, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """Spike times ``T(ReLU(A))`` of every spiking layer of the G-DNN, and its logits.

    Runs a float64 copy of the G-DNN layer by layer: the input encoding first, then
    the ReLU output of each hidden synapse layer and each max-pool output, in the
    order of ``SNNResult.spike_times``.
    """
    model = copy.deepcopy(gdnn).double().eval()
    h = x.double()
    times = [spike_time(h, gdnn.L)]
    for module in model:
        h = module(h)
        if isinstance(module, (nn.ReLU, nn.MaxPool2d)):
            times.append(spike_time(h, gdnn.L))
    return times, h
