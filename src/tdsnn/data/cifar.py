"""CIFAR-10 from the python (pickle) or binary batch folders, with a restricted unpickler.

The python batches are pickles, and unpickling can run arbitrary code.  :class:`SafeUnpickler`
resolves only the few globals that numpy array reconstruction needs, each wrapped so it can
only rebuild plain arrays; anything else (``os.system``, ``builtins.eval``, ...) raises
:class:`DatasetError` before it is called.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdsnn.data.errors import DatasetError

__all__ = [
    "CIFAR10_CLASSES",
    "SafeUnpickler",
    "cifar10_class_names",
    "find_cifar10_dir",
    "load_cifar10",
    "safe_load_pickle",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

_PIXELS = 3 * 32 * 32
_RECORD = 1 + _PIXELS  # binary version: 1 label byte + 3072 pixel bytes
_MAX_PICKLE_BYTES = 1 << 30
_PY_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_BIN_FILES = {k: [f + ".bin" for f in v] for k, v in _PY_FILES.items()}
_SUBDIRS = ("", "cifar-10-batches-py", "cifar-10-batches-bin")

# --- restricted unpickling ---------------------------------------------------------------

_real_reconstruct: Callable[..., Any] = np.ndarray.__reduce__(np.zeros(0))[0]


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` so a pickle can name the type but never call it."""


_NDARRAY = _NdarrayToken()


def _safe_reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    """``_reconstruct`` limited to what ``ndarray.__reduce__`` emits: an empty plain array."""
    if subtype is not _NDARRAY or tuple(shape) != (0,):  # type: ignore[arg-type]
        raise DatasetError("pickle asks for a non-standard numpy array reconstruction")
    return _real_reconstruct(np.ndarray, (0,), dtype)


def _safe_frombuffer(
    buf: object, dtype: np.dtype, shape: tuple[int, ...], order: str
) -> np.ndarray:
    """Protocol-5 array reconstruction: a view of in-band bytes, bounded by the file size."""
    if not isinstance(buf, bytes | bytearray | pickle.PickleBuffer) or not isinstance(
        dtype, np.dtype
    ):
        raise DatasetError("pickle asks for a non-standard numpy array reconstruction")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _safe_dtype(spec: object, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(spec, align, copy)  # type: ignore[call-overload]
    if dtype.hasobject:
        raise DatasetError("pickle asks for a numpy object dtype, which could hold anything")
    return dtype


_LATIN1 = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"})


def _safe_encode(text: object, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles of bytes: text to latin-1 only."""
    latin1 = isinstance(encoding, str) and encoding.lower().replace("_", "-") in _LATIN1
    if not isinstance(text, str) or not latin1:
        raise DatasetError("pickle asks for _codecs.encode with something other than latin-1")
    return text.encode("latin-1")


_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _safe_encode,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that only resolves numpy array reconstruction; everything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(f"refusing to load global {module}.{name} from a pickle") from None


def safe_load_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler` (``encoding="bytes"``, like Python 2 files)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_PICKLE_BYTES:
            raise DatasetError(f"{path}: {size} bytes is too large for a CIFAR batch file")
        data = path.read_bytes()  # a BytesIO never over-allocates for a hostile length field
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    try:
        return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    except Exception as exc:  # hostile data can raise anything: report it
        raise DatasetError(f"{path}: not a valid pickle: {type(exc).__name__}: {exc}") from exc


# --- batch readers -------------------------------------------------------------------------


def _get(batch: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DatasetError(f"{path}: batch has no {key!r} entry (keys: {sorted(map(repr, batch))})")


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        bad = int(np.argmax((labels < 0) | (labels > 9)))
        raise DatasetError(f"{path}: labels must be in 0..9, found {labels[bad]} at index {bad}")


def _read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_load_pickle(path)
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict batch, found {type(batch).__name__}")
    data = _get(batch, "data", path)
    labels = _get(batch, "labels", path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or (data.shape[1] != _PIXELS)
    ):
        found = (
            f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        )
        raise DatasetError(f"{path}: 'data' must be a uint8 N x {_PIXELS} array, found {found}")
    if not isinstance(labels, list | np.ndarray) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in labels
    ):
        raise DatasetError(f"{path}: 'labels' must be a list of integers")
    label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(label_array) != len(data):
        raise DatasetError(f"{path}: {len(data)} images but {len(label_array)} labels")
    _check_labels(label_array, path)
    return data, label_array


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    size = path.stat().st_size
    if size == 0 or size % _RECORD:
        raise DatasetError(
            f"{path}: binary CIFAR-10 file size must be a positive multiple of {_RECORD} "
            f"(1 label byte + {_PIXELS} pixel bytes), found {size} bytes"
        )
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].astype(np.int64)
    _check_labels(labels, path)
    return records[:, 1:], labels


def find_cifar10_dir(root: str | os.PathLike[str], split: str) -> tuple[Path, bool] | None:
    """Folder holding all batches of ``split`` under ``root`` and whether it is the python format.

    Looks in ``root`` itself and in the archive folders ``cifar-10-batches-py``/``-bin``.
    """
    if split not in _PY_FILES:
        raise DatasetError(f"unknown split {split!r}: expected 'train' or 'test'")
    for sub in _SUBDIRS:
        folder = Path(root) / sub
        for names, is_python in ((_PY_FILES[split], True), (_BIN_FILES[split], False)):
            if all((folder / n).is_file() for n in names):
                return folder, is_python
    return None


def load_cifar10(
    root: str | os.PathLike[str], split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load CIFAR-10 ``split``: (uint8 images N x 3 x 32 x 32, int64 labels N).

    ``root`` is the python batches folder (``data_batch_1..5``, ``test_batch``) or the binary
    one (``data_batch_1.bin`` ... ``test_batch.bin``), or a folder containing either.
    """
    found = find_cifar10_dir(root, split)
    if found is None:
        raise DatasetError(
            f"CIFAR-10 {split!r} split not found in {root}: expected "
            f"{', '.join(_PY_FILES[split])} (python version) or "
            f"{', '.join(_BIN_FILES[split])} (binary version)"
        )
    folder, is_python = found
    names = _PY_FILES[split] if is_python else _BIN_FILES[split]
    reader = _read_python_batch if is_python else _read_binary_batch
    parts = [reader(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(images), torch.from_numpy(labels)


def cifar10_class_names(root: str | os.PathLike[str]) -> list[str]:
    """Class names from ``batches.meta`` (python) or ``batches.meta.txt`` (binary) in ``root``.

    Falls back to the fixed CIFAR-10 names when neither file is present.
    """
    for sub in _SUBDIRS:
        folder = Path(root) / sub
        if (folder / "batches.meta").is_file():
            meta = safe_load_pickle(folder / "batches.meta")
            names = (
                _get(meta, "label_names", folder / "batches.meta")
                if isinstance(meta, dict)
                else None
            )
            if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
                raise DatasetError(
                    f"{folder / 'batches.meta'}: 'label_names' must be a list of names"
                )
            decoded = [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
            return _checked_names(decoded, folder / "batches.meta")
        if (folder / "batches.meta.txt").is_file():
            text = (folder / "batches.meta.txt").read_text(encoding="utf-8")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            return _checked_names(lines, folder / "batches.meta.txt")
    return list(CIFAR10_CLASSES)


def _checked_names(names: list[str], path: Path) -> list[str]:
    if len(names) != 10:
        raise DatasetError(f"{path}: expected 10 class names, found {len(names)}")
    return names
