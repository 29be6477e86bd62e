"""Class-per-sub-folder image trees (ImageNet layout ``root/<class>/<image>``) decoded by Pillow.

Labels: one class list serves every split.  By default it is the sorted names of the non-hidden
sub-folders of ``root``; when ``classes`` is given (the registry passes the *training* split's
class list when loading any other split), labels index into that list, and a sub-folder whose
name is not in it is refused: a test split may hold a subset of the training classes, never a
class the network was not trained on.

What is accepted: regular files named ``*.png``, ``*.jpg``, ``*.jpeg``, ``*.bmp`` (case-insensitive)
that decode as PNG, JPEG or BMP.  Images of mixed sizes and pixel modes are fine: every image is
converted to grey (``channels=1``) or RGB (``channels=3``) and resized bilinearly.  16-bit grey
images (Pillow modes ``I;16``, ``I;16B``, ``I``, ...) are rescaled to 8 bits as
``round(value * 255 / 65535)`` instead of being clipped at 255 (16-bit RGB(A) and grey+alpha
PNGs are reduced by Pillow itself, to their high byte).  Files with other extensions
and hidden files are ignored; an image name that is not a regular file (broken symlink, symlink
loop, FIFO, device), an image that cannot be decoded (zero bytes, truncated, another format
behind the name) or one with more than :data:`MAX_PIXELS` pixels (a decompression bomb) is a
:class:`DatasetError` naming the file.  Nothing is returned unless every image loaded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tdsnn.data.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "class_folders", "load_image_folder"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
#: Largest image (width x height) decoded, whatever ``PIL.Image.MAX_IMAGE_PIXELS`` is set to.
MAX_PIXELS = 89_478_485  # Pillow's default decompression-bomb limit
_MODES = {1: "L", 3: "RGB"}
# Only the decoders these extensions need (the JPEG one also opens multi-picture JPEGs).
_FORMATS = ("PNG", "JPEG", "BMP")
# 8-bit pixel modes that Image.convert turns into "L" / "RGB" without losing range.
_EIGHT_BIT = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)
_MAX_16 = 65535


def _entry_kind(path: Path) -> str:
    """'dir', 'file' or 'other' (broken symlink, symlink loop, FIFO, socket, device)."""
    try:
        if path.is_dir():
            return "dir"
        if path.is_file():
            return "file"
    except OSError:  # e.g. permission denied on the entry: neither usable folder nor file
        pass
    return "other"


def class_folders(root: str | os.PathLike[str]) -> list[Path]:
    """The non-hidden class sub-folders of ``root``, sorted by name.

    Raises :class:`DatasetError` when ``root`` is not a folder, has no class sub-folders, or has
    an entry that is neither a folder nor a file (a dangling or looping symlink would otherwise
    silently drop a class and shift every later label).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a directory")
    try:
        entries = sorted(
            (p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.name
        )
    except OSError as exc:
        raise DatasetError(f"image folder {root}: cannot list: {exc}") from exc
    folders = []
    for entry in entries:
        kind = _entry_kind(entry)
        if kind == "other":
            raise DatasetError(
                f"{entry}: neither a class folder nor a file (broken symlink, symlink loop or "
                f"special file): expected {root}/<class>/<image>"
            )
        if kind == "dir":
            folders.append(entry)
    if not folders:
        raise DatasetError(
            f"image folder {root} has no class sub-folders: expected root/<class>/<image> "
            f"with extensions {sorted(IMAGE_EXTENSIONS)}"
        )
    return folders


def _list_images(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DatasetError(f"class folder {folder}: cannot list: {exc}") from exc
    images = []
    for p in entries:
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        kind = _entry_kind(p)
        if kind == "other":
            raise DatasetError(
                f"{p}: not a regular file (broken symlink, symlink loop or special file); "
                f"expected an image file"
            )
        if kind == "file":  # a sub-folder named like an image is not an image: ignored
            images.append(p)
    if not images:
        raise DatasetError(
            f"class folder {folder} contains no images "
            f"(expected files with extensions {sorted(IMAGE_EXTENSIONS)})"
        )
    return images


def _to_eight_bit(image: Image.Image, path: Path) -> Image.Image:
    """An 8-bit image: 16-bit grey is rescaled (value * 255 / 65535, rounded), not clipped."""
    if image.mode in _EIGHT_BIT:
        return image
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > _MAX_16):
            raise DatasetError(
                f"{path}: 32-bit integer pixels in {int(values.min())}..{int(values.max())}: "
                f"expected 16-bit values in 0..{_MAX_16}"
            )
        scaled = (values * 255 + _MAX_16 // 2) // _MAX_16  # exact rounding, never a tie
        return Image.fromarray(scaled.astype(np.uint8))
    raise DatasetError(
        f"{path}: unsupported pixel mode {image.mode!r}: expected 8-bit grey, palette, RGB(A) "
        f"or 16-bit grey"
    )


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode, convert to ``mode`` and resize (bilinear) one image; errors name the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise DatasetError(
                        f"{path}: {width} x {height} image exceeds {MAX_PIXELS} pixels "
                        f"(possible decompression bomb)"
                    )
                image.load()
                converted = _to_eight_bit(image, path).convert(mode)
        resized = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except DatasetError:
        raise
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
    root: str | os.PathLike[str],
    size: tuple[int, int] = (32, 32),
    channels: int = 3,
    classes: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load ``root/<class>/<image>.png|jpg|jpeg|bmp`` into memory.

    Class indices follow ``classes`` when given (every sub-folder of ``root`` must be one of
    them; a class may have no folder), else the sorted sub-folder names.  Every image is
    converted to RGB (``channels=3``) or grey (``channels=1``) and resized bilinearly to
    ``size`` = (H, W).  Returns (uint8 images N x C x H x W, int64 labels N, class names).
    """
    root = Path(root)
    if channels not in _MODES:
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if len(size) != 2 or min(size) < 1:
        raise DatasetError(f"size must be (H, W) with positive sizes, got {size}")
    class_dirs = class_folders(root)
    if classes is None:
        names = [p.name for p in class_dirs]
    else:
        names = [str(name) for name in classes]
        if not names or len(set(names)) != len(names):
            raise DatasetError(f"classes must be distinct names, at least one, got {names}")
        unknown = [p for p in class_dirs if p.name not in names]
        if unknown:
            raise DatasetError(
                f"class folder {unknown[0]} is not a class of the training split: "
                f"known classes are {names} (a test split may only hold training classes)"
            )
    label_of = {name: i for i, name in enumerate(names)}
    files: list[tuple[Path, int]] = []
    for folder in class_dirs:
        files.extend((path, label_of[folder.name]) for path in _list_images(folder))
    out = np.empty((len(files), channels, size[0], size[1]), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        out[i] = _decode(path, _MODES[channels], (int(size[0]), int(size[1])))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return torch.from_numpy(out), labels, names
