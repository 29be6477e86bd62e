"""Class-per-sub-folder image trees (ImageNet layout ``root/<class>/<image>``) decoded by Pillow."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tdsnn.data.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_MODES = {1: "L", 3: "RGB"}
# Only the decoders these extensions need (the JPEG one also opens multi-picture JPEGs).
_FORMATS = ("PNG", "JPEG", "BMP")


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode, convert to ``mode`` and resize (bilinear) one image; errors name the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_FORMATS) as image:
                image.load()
                converted = image.convert(mode)
        resized = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except (
        OSError,
        SyntaxError,
        ValueError,
        UnidentifiedImageError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        raise DatasetError(f"{path}: cannot decode image: {exc}") from exc
    array = np.asarray(resized, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_image_folder(
    root: str | os.PathLike[str], size: tuple[int, int] = (32, 32), channels: int = 3
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load ``root/<class>/<image>.png|jpg|jpeg|bmp`` into memory.

    Class indices follow the sorted sub-folder names.  Every image is converted to RGB
    (``channels=3``) or grey (``channels=1``) and resized bilinearly to ``size`` = (H, W).
    Returns (uint8 images N x C x H x W, int64 labels N, class names).
    """
    root = Path(root)
    if channels not in _MODES:
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if len(size) != 2 or min(size) < 1:
        raise DatasetError(f"size must be (H, W) with positive sizes, got {size}")
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a directory")
    class_dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not class_dirs:
        raise DatasetError(
            f"image folder {root} has no class sub-folders: expected root/<class>/<image> "
            f"with extensions {sorted(IMAGE_EXTENSIONS)}"
        )
    files: list[tuple[Path, int]] = []
    for index, folder in enumerate(class_dirs):
        images = _list_images(folder)
        if not images:
            raise DatasetError(
                f"class folder {folder} contains no images "
                f"(expected files with extensions {sorted(IMAGE_EXTENSIONS)})"
            )
        files.extend((path, index) for path in images)
    out = np.empty((len(files), channels, size[0], size[1]), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        out[i] = _decode(path, _MODES[channels], (int(size[0]), int(size[1])))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return torch.from_numpy(out), labels, [p.name for p in class_dirs]
