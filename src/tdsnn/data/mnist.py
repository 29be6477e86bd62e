"""MNIST and Fashion-MNIST from their standard IDX files (no download, nothing executed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from tdsnn.data.errors import DatasetError
from tdsnn.data.idx import read_idx

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "find_mnist_files",
    "load_fashion_mnist",
    "load_mnist",
]

MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_PREFIX = {"train": "train", "test": "t10k"}


def _candidates(prefix: str, kind: str, rank: int) -> list[str]:
    """Accepted names: ``<prefix>-<kind>-idx<rank>-ubyte``, its dotted variant, each +``.gz``."""
    stems = [f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte"]
    return [stem + ext for stem in stems for ext in ("", ".gz")]


def find_mnist_files(root: str | os.PathLike[str], split: str) -> tuple[Path, Path] | None:
    """Return the (images, labels) files of ``split`` in ``root``, or None if either is missing."""
    if split not in _PREFIX:
        raise DatasetError(f"unknown split {split!r}: expected 'train' or 'test'")
    root = Path(root)
    found: list[Path] = []
    for kind, rank in (("images", 3), ("labels", 1)):
        names = _candidates(_PREFIX[split], kind, rank)
        hit = next((root / n for n in names if (root / n).is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def _load(
    root: str | os.PathLike[str], split: str, dataset: str
) -> tuple[torch.Tensor, torch.Tensor]:
    files = find_mnist_files(root, split)
    if files is None:
        prefix = _PREFIX[split]
        raise DatasetError(
            f"{dataset} {split!r} split not found in {root}: expected "
            f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz] "
            f"(or the dotted names {prefix}-images.idx3-ubyte, {prefix}-labels.idx1-ubyte)"
        )
    image_path, label_path = files
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{image_path}: expected uint8 images of shape N x 28 x 28, "
            f"found {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"{label_path}: expected a uint8 label vector, found {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{dataset} {split!r}: {len(images)} images in {image_path} but "
            f"{len(labels)} labels in {label_path}"
        )
    if len(labels) == 0:
        raise DatasetError(
            f"{dataset} {split!r} split in {root} holds no images ({image_path} declares 0)"
        )
    if int(labels.max()) > 9:
        bad = int(np.argmax(labels > 9))
        raise DatasetError(
            f"{label_path}: labels must be in 0..9, found {int(labels[bad])} at index {bad}"
        )
    return (
        torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
    )


def load_mnist(
    root: str | os.PathLike[str], split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST ``split`` from ``root``: (uint8 images N x 1 x 28 x 28, int64 labels N)."""
    return _load(root, split, "MNIST")


def load_fashion_mnist(
    root: str | os.PathLike[str], split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load Fashion-MNIST ``split`` from ``root`` (same IDX files and names as MNIST)."""
    return _load(root, split, "Fashion-MNIST")
