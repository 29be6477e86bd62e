"""``load_dataset(name, split)``: find a data set on disk and return it with its statistics.

Root resolution, first hit wins: the explicit ``root`` (or its ``<name>/`` sub-folder); the
per-data-set environment variable (``TDSNN_MNIST_DIR``, ``TDSNN_FASHION_MNIST_DIR``,
``TDSNN_CIFAR10_DIR``); ``$TDSNN_DATA_DIR/<name>``; then a built-in place (MNIST embedded in the
package, Fashion-MNIST from the Debian package ``dataset-fashion-mnist``, CIFAR-10 in
``../shared/data/cifar10`` beside the working directory or the repository).  Nothing is ever
downloaded.

A ``folder`` data set is ``root/<class>/<image>`` (both splits) or ``root/{train,test}/<class>/``;
the training split's class list labels every split (a test split may lack classes, never add
one).  Every split must hold at least one sample; labels are checked against the classes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdsnn.data.cifar import cifar10_class_names, find_cifar10_dir, load_cifar10
from tdsnn.data.errors import DatasetError
from tdsnn.data.image_folder import load_image_folder
from tdsnn.data.mnist import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    find_mnist_files,
    load_fashion_mnist,
    load_mnist,
)

__all__ = ["DATASET_NAMES", "ImageDataset", "channel_stats", "load_dataset", "resolve_root"]

DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "folder")

#: Folder of the MNIST IDX files shipped inside the package (byte-identical originals).
EMBEDDED_MNIST_DIR = Path(__file__).resolve().parent / "embedded" / "mnist"
#: Where the Debian package ``dataset-fashion-mnist`` installs its IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

# Per-channel mean/std of pixel/255 over the training split (computed on the real files).
_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
_ENV = {
    "mnist": "TDSNN_MNIST_DIR",
    "fashion-mnist": "TDSNN_FASHION_MNIST_DIR",
    "cifar10": "TDSNN_CIFAR10_DIR",
}
_SPLITS = ("train", "test")


@dataclass
class ImageDataset:
    """A whole split in memory: uint8 images N x C x H x W, int64 labels and statistics.

    Validated on construction: at least one sample, one label per image, every label in
    ``0 .. num_classes - 1`` and ``num_classes == len(class_names)``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    class_names: list[str]
    name: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DatasetError(f"{self.name}: images must be uint8 N x C x H x W")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DatasetError(f"{self.name}: labels must be int64 of length N")
        if self.images.shape[0] == 0:
            raise DatasetError(f"{self.name}: the data set holds no samples (expected N >= 1)")
        if self.num_classes != len(self.class_names) or self.num_classes < 1:
            raise DatasetError(
                f"{self.name}: num_classes {self.num_classes} does not match the "
                f"{len(self.class_names)} class names"
            )
        low, high = int(self.labels.min()), int(self.labels.max())
        if low < 0 or high >= self.num_classes:
            bad = int(((self.labels < 0) | (self.labels >= self.num_classes)).nonzero()[0, 0])
            raise DatasetError(
                f"{self.name}: label {int(self.labels[bad])} at index {bad} is outside "
                f"0..{self.num_classes - 1} ({self.num_classes} classes)"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _repo_root() -> Path:
    """The source checkout's root (parent of ``src/``), from this file's location."""
    return Path(__file__).resolve().parents[3]


def _builtin_places(name: str) -> list[tuple[Path, str]]:
    if name == "mnist":
        return [(EMBEDDED_MNIST_DIR, "copy embedded in the tdsnn package")]
    if name == "fashion-mnist":
        return [(FASHION_MNIST_SYSTEM_DIR, "Debian package dataset-fashion-mnist")]
    rel = Path("shared") / "data" / "cifar10"
    return [
        (Path.cwd().parent / rel, "../shared/data/cifar10 from the working directory"),
        (_repo_root().parent / rel, "../shared/data/cifar10 from the repository root"),
    ]


def _has_split(name: str, folder: Path, split: str) -> bool:
    if not folder.is_dir():
        return False
    if name == "cifar10":
        return find_cifar10_dir(folder, split) is not None
    return find_mnist_files(folder, split) is not None


def resolve_root(name: str, split: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding ``split`` of data set ``name`` (see module docstring for the order).

    An explicit ``root`` is used as is, or its ``<name>/`` sub-folder if only that holds the
    split (so one ``--data-dir`` can serve every data set); the loader then reports what is
    missing.  Raises :class:`DatasetError` listing every place looked at when nothing is found.
    """
    if root is not None:
        root = Path(root)
        nested = root / name
        if not _has_split(name, root, split) and _has_split(name, nested, split):
            return nested
        return root
    looked: list[str] = []
    places: list[tuple[Path, str]] = []
    env = _ENV[name]
    for var, sub in ((env, None), ("TDSNN_DATA_DIR", name)):
        value = os.environ.get(var)
        if not value:
            looked.append(f"${var} (not set)")
        else:
            places.append((Path(value) / sub if sub else Path(value), f"from ${var}"))
    places.extend(_builtin_places(name))
    for folder, origin in places:
        if _has_split(name, folder, split):
            return folder
        state = "files missing" if folder.is_dir() else "no such folder"
        looked.append(f"{folder} ({origin}): {state}")
    hint = (
        f"Pass the folder explicitly (--data-dir, or root=...), set ${env}, or set "
        f"$TDSNN_DATA_DIR to a folder containing {name}/."
    )
    if name == "fashion-mnist":
        hint += " On Debian/Ubuntu: apt-get install dataset-fashion-mnist."
    places_text = "\n  - ".join(looked)
    raise DatasetError(
        f"could not find the {name} {split!r} split. Looked in:\n  - {places_text}\n{hint}"
    )


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 ``images``/255, via a 256-bin histogram (no float copy)."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DatasetError("channel_stats expects uint8 images N x C x H x W")
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.zeros(256, dtype=np.float64)
        for start in range(0, images.shape[0], 8192):  # bounded temporary memory
            block = images[start : start + 8192, c].reshape(-1)
            counts += torch.bincount(block, minlength=256).numpy()
        total = counts.sum()
        if total == 0:
            raise DatasetError("cannot compute statistics of an empty data set")
        mean = float(counts @ values / total)
        var = float(counts @ (values - mean) ** 2 / total)
        means.append(mean)
        stds.append(var**0.5)
    return tuple(means), tuple(stds)


def _load_folder(
    split: str, root: str | os.PathLike[str] | None, size: tuple[int, int], channels: int
) -> ImageDataset:
    """A folder data set: ``root/<class>/...`` (both splits) or ``root/{train,test}/<class>/...``.

    The training split's class list defines the labels of every split: a test split is
    labelled with the training classes (it may lack some, it may not add any), and its
    statistics are those of the training split.
    """
    if root is None:
        raise DatasetError(
            "the 'folder' data set needs root=<dir> (--data-dir): a folder of class sub-folders, "
            "optionally split into <dir>/train and <dir>/test"
        )
    base = Path(root)
    is_split = any((base / s).is_dir() for s in _SPLITS)
    folder = base / split if is_split else base
    if is_split and not folder.is_dir():
        present = [s for s in _SPLITS if (base / s).is_dir()]
        raise DatasetError(
            f"folder data set {base} is split into {', '.join(f'{s}/' for s in present)} but has "
            f"no {split}/ folder: expected {base}/{split}/<class>/<image>"
        )
    train_folder = base / "train"
    try:
        if split != "train" and is_split and train_folder.is_dir():
            train_images, _, classes = load_image_folder(train_folder, size=size, channels=channels)
            images, labels, names = load_image_folder(
                folder, size=size, channels=channels, classes=classes
            )
            mean, std = channel_stats(train_images)
        else:
            images, labels, names = load_image_folder(folder, size=size, channels=channels)
            mean, std = channel_stats(images)
    except DatasetError as exc:
        raise DatasetError(f"folder data set, {split!r} split: {exc}") from exc
    return ImageDataset(images, labels, len(names), names, "folder", mean, std)


_LOADERS: dict[str, Callable[[Path, str], tuple[torch.Tensor, torch.Tensor]]] = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    *,
    size: tuple[int, int] = (32, 32),
    channels: int = 3,
) -> ImageDataset:
    """Load ``split`` ('train' or 'test') of ``name`` (one of :data:`DATASET_NAMES`).

    ``size`` and ``channels`` only apply to ``folder`` (images are resized on load).
    """
    key = name.lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}.get(key, key)
    if key not in DATASET_NAMES:
        raise DatasetError(f"unknown data set {name!r}: expected one of {', '.join(DATASET_NAMES)}")
    if split not in _SPLITS:
        raise DatasetError(f"unknown split {split!r}: expected 'train' or 'test'")
    if key == "folder":
        return _load_folder(split, root, size, channels)
    folder = resolve_root(key, split, root)
    images, labels = _LOADERS[key](folder, split)
    if len(labels) == 0:
        raise DatasetError(f"the {key} {split!r} split in {folder} holds no samples")
    if key == "cifar10":
        names = cifar10_class_names(folder)
    else:
        names = list(MNIST_CLASSES if key == "mnist" else FASHION_MNIST_CLASSES)
    mean, std = _STATS[key]
    return ImageDataset(images, labels, len(names), names, key, mean, std)
