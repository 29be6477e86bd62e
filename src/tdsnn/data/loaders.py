"""Turn an :class:`ImageDataset` into float tensors and a plain ``DataLoader``."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from tdsnn.data.errors import DatasetError
from tdsnn.data.registry import ImageDataset

__all__ = ["make_loader", "to_float"]


def to_float(images: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, ``scale``] (``images / 255 * scale``; 255 maps to scale)."""
    if images.dtype != torch.uint8:
        raise DatasetError(f"to_float expects uint8 images, got {images.dtype}")
    return images.to(torch.float32) / 255.0 * scale


def make_loader(
    dataset: ImageDataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    scale: float = 1.0,
    limit: int | None = None,
    distributed: bool = False,
) -> DataLoader:
    """DataLoader of (float images in [0, ``scale``], int64 labels), in-process (no workers).

    ``limit`` keeps the first ``limit`` samples.  Shuffling is reproducible from ``seed``.
    With ``distributed=True`` a :class:`DistributedSampler` (needs an initialised process
    group) splits the data between ranks; call ``loader.sampler.set_epoch(e)`` every epoch.
    """
    if batch_size < 1:
        raise DatasetError(f"batch_size must be positive, got {batch_size}")
    if limit is not None and limit < 1:
        raise DatasetError(
            f"limit must be >= 1 (a loader of {dataset.name} needs a sample), got {limit}"
        )
    end = len(dataset) if limit is None else min(limit, len(dataset))
    tensors = TensorDataset(to_float(dataset.images[:end], scale), dataset.labels[:end])
    if distributed:
        sampler = DistributedSampler(tensors, shuffle=shuffle, seed=seed)
        return DataLoader(tensors, batch_size=batch_size, sampler=sampler)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(tensors, batch_size=batch_size, shuffle=shuffle, generator=generator)
