"""Training-time data augmentation: random flips and crops, seeded per step (workflow).

``flip-crop`` is the standard CIFAR-10 augmentation (He et al., 2016): every image is
flipped left-right with probability 1/2 and cropped back to its size at a random offset
of its ``pad``-pixel zero padding.  :func:`tdsnn.training.train` draws it from a
generator seeded by ``(seed, step)`` (:func:`step_generator`), so a run is repeatable and
a resumed run sees the same images as an uninterrupted one.  The teacher of
distillation sees the same augmented batch as the student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import TDSNNError

__all__ = ["AUGMENTATIONS", "augment_batch", "check_augment", "flip_crop", "step_generator"]

AUGMENTATIONS = ("none", "flip-crop")
PAD = 4  # pixels of zero padding that the crop moves within


def check_augment(name: object) -> str:
    """``name`` if it is one of :data:`AUGMENTATIONS`, else a TDSNNError naming them."""
    if not isinstance(name, str) or name not in AUGMENTATIONS:
        raise TDSNNError(f"augment must be one of {', '.join(AUGMENTATIONS)}; got {name!r}")
    return name


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator for the augmentation of training step ``step`` of a run seeded ``seed``."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % 2**63)


def flip_crop(x: Tensor, generator: torch.Generator | None = None, pad: int = PAD) -> Tensor:
    """Per image of the batch ``x`` (N x C x H x W, any dtype): a left-right flip with
    probability 1/2, then an H x W crop of the ``pad``-pixel zero padding at a random offset
    (``generator``: a CPU generator, or None for torch's global one)."""
    if x.dim() != 4:
        raise TDSNNError(f"flip-crop needs a batch of images (N x C x H x W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (offsets[0].view(-1, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (offsets[1].view(-1, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    images = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[images, channels, rows, cols]


def augment_batch(x: Tensor, name: str, seed: int, step: int) -> Tensor:
    """The augmentation ``name`` of step ``step``'s batch (``"none"``: ``x`` itself)."""
    if name == "none":
        return x
    return flip_crop(x, step_generator(seed, step))
