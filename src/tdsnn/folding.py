"""Weight folding: BatchNorm, input normalisation and activation scales.

Each fold rewrites the weights of a conv/linear layer so that the network computes
the same function without the folded operation, which the SNN cannot express.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import UnsupportedModelError

WeightedLayer = nn.Conv2d | nn.Linear


@torch.no_grad()
def fold_batchnorm(layer: WeightedLayer, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> WeightedLayer:
    """Return a copy of ``layer`` computing ``bn(layer(x))`` with BN's running statistics."""
    scale = torch.ones_like(bn.running_var) if bn.weight is None else bn.weight.detach().clone()
    shift = torch.zeros_like(bn.running_mean) if bn.bias is None else bn.bias.detach().clone()
    scale = scale / torch.sqrt(bn.running_var + bn.eps)
    out_features = layer.weight.shape[0]
    if scale.numel() != out_features:
        raise UnsupportedModelError(
            f"BatchNorm with {scale.numel()} features follows a layer with {out_features} outputs"
        )
    folded = _copy_with_bias(layer)
    shape = (-1,) + (1,) * (folded.weight.dim() - 1)
    folded.weight.mul_(scale.reshape(shape))
    folded.bias.copy_((folded.bias - bn.running_mean) * scale + shift)
    return folded


def _copy_with_bias(layer: WeightedLayer) -> WeightedLayer:
    """A deep copy of ``layer`` that always has a bias parameter."""
    import copy

    new = copy.deepcopy(layer)
    if new.bias is None:
        new.bias = nn.Parameter(new.weight.new_zeros(new.weight.shape[0]))
    return new


@torch.no_grad()
def fold_input_affine(
    layer: WeightedLayer, mean: Sequence[float], std: Sequence[float], scale: float
) -> WeightedLayer:
    """Fold ``x = (u / scale - mean) / std`` into the first weighted layer.

    The spiking input ``u`` is then non-negative while the layer's output stays that
    of the original model (except at zero-padded borders of a conv, see prepare).
    """
    mean_t = torch.as_tensor(list(mean), dtype=layer.weight.dtype, device=layer.weight.device)
    std_t = torch.as_tensor(list(std), dtype=layer.weight.dtype, device=layer.weight.device)
    if mean_t.numel() != std_t.numel():
        raise UnsupportedModelError("input_mean and input_std must have the same length")
    if torch.any(std_t <= 0):
        raise UnsupportedModelError(f"input_std must be positive, got {list(std)}")
    folded = _copy_with_bias(layer)
    weight = folded.weight
    if isinstance(layer, nn.Conv2d):
        channels = weight.shape[1] * layer.groups
        if layer.groups != 1 and mean_t.numel() != 1:
            raise UnsupportedModelError("per-channel normalisation into a grouped first conv")
        if mean_t.numel() not in (1, channels):
            raise UnsupportedModelError(
                f"input_mean / input_std have {mean_t.numel()} values, but the first conv takes "
                f"{channels} input channel(s): give one value per channel, or a single value"
            )
        per_in = (1, -1, 1, 1) if mean_t.numel() > 1 else (1, 1, 1, 1)
        shift = (weight * (mean_t / std_t).reshape(per_in)).sum(dim=(1, 2, 3))
        weight.div_((std_t * scale).reshape(per_in))
    else:
        if mean_t.numel() != 1:
            raise UnsupportedModelError(
                "per-channel input normalisation needs a Conv2d as first synapse layer; "
                "give a single mean/std for a Linear first layer"
            )
        shift = weight.sum(dim=1) * (mean_t / std_t)
        weight.div_(std_t * scale)
    folded.bias.sub_(shift)
    return folded


@torch.no_grad()
def scale_output(layer: WeightedLayer, factor: float) -> WeightedLayer:
    """Multiply a layer's output (weights and bias) by ``factor > 0``."""
    import copy

    new = copy.deepcopy(layer)
    new.weight.mul_(factor)
    if new.bias is not None:
        new.bias.mul_(factor)
    return new


@torch.no_grad()
def scale_input(layer: WeightedLayer, factor: float) -> WeightedLayer:
    """Divide a layer's weights by ``factor > 0``: it now expects inputs ``factor`` times larger."""
    import copy

    new = copy.deepcopy(layer)
    new.weight.div_(factor)
    return new
