"""The G-DNN modules that residual networks add to a chain: sums, concatenation and
global average pooling.

They are plain ``nn.Module``s so that a prepared graph (:class:`tdsnn.prepare.GraphGDNN`)
can be fine-tuned like any network.  In the SNN, a :class:`Sum` is not a layer of its
own: its branches become synapses of the one receiving neuron group (design note,
"Residual networks"); :class:`Concat` joins populations without neurons;
:class:`GlobalAvgPool` is an average-pooling synapse layer over the whole map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Sum(nn.Module):
    """The sum of two or more branches (``a + b``, ``torch.add``, ``a + b + c``)."""

    def forward(self, *branches: Tensor) -> Tensor:
        out = branches[0]
        for branch in branches[1:]:
            out = out + branch
        return out


class Concat(nn.Module):
    """Channel concatenation (``torch.cat(..., dim=1)``) of populations."""

    def forward(self, *parts: Tensor) -> Tensor:
        return torch.cat(parts, dim=1)


class GlobalAvgPool(nn.Module):
    """The mean over all positions, keeping ``(N, C, 1, 1)`` (``nn.AdaptiveAvgPool2d(1)``;
    ``x.mean((2, 3))`` is this followed by a flatten)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3), keepdim=True)
