"""CIFAR-10 from the python (pickle) or binary batch folders, with a restricted unpickler.

The python batches are pickles, and unpickling can run arbitrary code.  :class:`SafeUnpickler`
resolves only the few globals that numpy array reconstruction needs, each wrapped so it can
only rebuild plain arrays; anything else (``os.system``, ``builtins.eval``, ...) raises
:class:`DatasetError` before it is called.  It also checks every BUILD (a forged dtype state
could otherwise make numpy read past an array's buffer), keeps memory proportional to the file
and bounds tuple nesting; see its docstring.

Batch contents are then validated: ``data`` a uint8 N x 3072 array, ``labels`` N integers in
0..9 (checked before any conversion, so 2**70 is reported, not overflowed), class names 10
distinct printable UTF-8 strings, and a split with no images is refused.
"""

from __future__ import annotations

import io
import os
import pickle
import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

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

_NUM_CLASSES = len(CIFAR10_CLASSES)
_PIXELS = 3 * 32 * 32
_RECORD = 1 + _PIXELS  # binary version: 1 label byte + 3072 pixel bytes
_MAX_PICKLE_BYTES = 1 << 30
_MAX_BINARY_BYTES = 1 << 30  # a real binary batch is 10000 records, 30.7 MB
_MAX_META_BYTES = 1 << 20
_PY_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_BIN_FILES = {k: [f + ".bin" for f in v] for k, v in _PY_FILES.items()}
_SUBDIRS = ("", "cifar-10-batches-py", "cifar-10-batches-bin")

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 40, 40, 40


def _short(value: object) -> str:
    """A bounded ``repr`` for messages: hostile keys may be huge or deeply nested."""
    try:
        return _SHORT.repr(value)
    except Exception:  # a repr of hostile data must never escape
        return f"<{type(value).__name__}>"


# --- restricted unpickling ---------------------------------------------------------------

_real_reconstruct: Callable[..., Any] = np.ndarray.__reduce__(np.zeros(0))[0]
# Plain element types: booleans, integers, floats, complex, fixed-size byte and text strings.
_PLAIN_KINDS = frozenset("biufcSU")
_MAX_DIMS = 32
# Tuples are hashed recursively in C without a depth guard: a dict key nested a million deep
# (a 1 MB pickle) overflows the C stack.  No data set nests tuples more than a few levels.
_MAX_TUPLE_DEPTH = 64
_MESSAGE_CHARS = 300


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` so a pickle can name the type but never call it."""

    __slots__ = ()


_NDARRAY = _NdarrayToken()


def _is_plain_dtype(dtype: object) -> bool:
    """A dtype numpy could have built from its type string alone: no objects, fields, sub-arrays.

    Also compares flags, size and alignment with that canonical dtype, since a dtype's pickled
    state can otherwise claim a sub-array or an item size its buffer does not have (numpy then
    reads past the end of the buffer).
    """
    if not isinstance(dtype, np.dtype):
        return False
    try:
        if (
            dtype.fields is not None
            or dtype.subdtype is not None
            or dtype.hasobject
            or dtype.kind not in _PLAIN_KINDS
            or dtype.metadata is not None
        ):
            return False
        canonical = np.dtype(dtype.str)
        return bool(
            dtype == canonical
            and dtype.itemsize == canonical.itemsize
            and dtype.alignment == canonical.alignment
            and dtype.flags == canonical.flags
        )
    except Exception:  # a hostile dtype may fail to describe itself: not plain
        return False


def _checked_shape(shape: object) -> tuple[int, ...]:
    if (
        not isinstance(shape, tuple | list)
        or len(shape) > _MAX_DIMS
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise DatasetError(
            f"pickle asks for a numpy array whose shape is not up to {_MAX_DIMS} "
            f"non-negative integers"
        )
    return tuple(shape)


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    total = dtype.itemsize
    for n in shape:
        total *= n  # Python ints: no overflow
    return total


def _safe_encode(text: object, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles of bytes: text to latin-1 only."""
    latin1 = isinstance(encoding, str) and encoding.lower().replace("_", "-") in _LATIN1
    if not isinstance(text, str) or not latin1:
        raise DatasetError("pickle asks for _codecs.encode with something other than latin-1")
    return text.encode("latin-1")


_LATIN1 = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"})


def _safe_bytes(*args: object) -> bytes:
    """``bytes()`` as protocol 0-2 pickles spell an empty bytes object; nothing else."""
    if args:
        raise DatasetError("pickle asks for bytes(...) with arguments: only bytes() is rebuilt")
    return b""


class SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so BUILD can be checked
    """Unpickler that only rebuilds plain numpy arrays; everything else is refused.

    Guarantees, for any input bytes:

    * nothing named in the file is imported or called: :meth:`find_class` resolves only
      ``numpy.dtype``, ``numpy.ndarray`` (a token that cannot be called), numpy's two array
      reconstruction helpers, ``_codecs.encode`` to latin-1 and ``bytes()`` (no arguments),
      each replaced by a checked stand-in (a plain dtype, an empty placeholder array, an
      array over exactly its bytes);
    * BUILD (``__setstate__``) is only applied once to a dtype or placeholder array the
      pickle itself just created, with a state that keeps the dtype plain (no objects,
      fields, sub-arrays or forged item sizes, which would let numpy read past a buffer) and
      an array's byte count exact; nothing else may have its state set;
    * memory follows the file: the memo is a dict (the C unpickler allocates a table as large
      as the biggest memo index, so a 7-byte pickle could ask for gigabytes);
    * tuples nest at most :data:`_MAX_TUPLE_DEPTH` deep, so hashing one (as a dict key) cannot
      overflow the C stack.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        # Objects this pickle created that may still receive their one BUILD (by id; the
        # values keep them alive so ids are not reused).
        self._fresh_dtypes: dict[int, np.dtype] = {}
        self._fresh_arrays: dict[int, np.ndarray] = {}
        self._tuple_depths: dict[int, tuple[object, int]] = {}
        self._allowed: dict[tuple[str, str], object] = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy.core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy._core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): self._dtype,
            ("_codecs", "encode"): _safe_encode,
            ("__builtin__", "bytes"): _safe_bytes,
            ("builtins", "bytes"): _safe_bytes,
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise DatasetError(
                f"refusing to load global {_short(module)}.{_short(name)} from a pickle"
            ) from None

    # -- the stand-ins -------------------------------------------------------------------

    def _dtype(self, spec: object, align: object = False, copy: object = False) -> np.dtype:
        if not isinstance(spec, str | bytes) or not all(
            isinstance(flag, bool | int) for flag in (align, copy)
        ):
            raise DatasetError("pickle asks for numpy.dtype of something other than a type name")
        dtype = np.dtype(spec, bool(align), True)  # always a private copy, never a singleton
        if not _is_plain_dtype(dtype):
            raise DatasetError(
                f"pickle asks for numpy dtype {_short(spec)}: only plain numeric and string "
                f"dtypes are accepted, not an object dtype (which could hold anything), "
                f"fields or sub-arrays"
            )
        self._fresh_dtypes[id(dtype)] = dtype
        return dtype

    def _use_dtype(self, dtype: object) -> np.dtype:
        """A plain dtype about to back an array: from now on its state can no longer change."""
        if not _is_plain_dtype(dtype):
            raise DatasetError("pickle asks for a numpy array of a non-plain dtype")
        self._fresh_dtypes.pop(id(dtype), None)
        return dtype  # type: ignore[return-value]

    def _reconstruct(self, subtype: object, shape: object, dtype: object) -> np.ndarray:
        """``_reconstruct`` limited to what ``ndarray.__reduce__`` emits: an empty plain array."""
        if (
            subtype is not _NDARRAY
            or not isinstance(shape, tuple)
            or shape != (0,)
            or not isinstance(dtype, str | bytes)
            or dtype not in ("b", b"b")
        ):
            raise DatasetError("pickle asks for a non-standard numpy array reconstruction")
        array = _real_reconstruct(np.ndarray, (0,), "b")
        self._fresh_arrays[id(array)] = array
        return array

    def _frombuffer(self, buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
        """Protocol-5 array reconstruction: a view of exactly the in-band bytes."""
        if not isinstance(buf, bytes | bytearray | memoryview | pickle.PickleBuffer):
            raise DatasetError("pickle asks for a non-standard numpy array reconstruction")
        dtype = self._use_dtype(dtype)
        dims = _checked_shape(shape)
        if not isinstance(order, str) or order not in ("C", "F"):
            raise DatasetError(f"pickle asks for a numpy array of order {_short(order)}")
        with memoryview(buf) as view:
            found = view.nbytes
        if found != _nbytes(dims, dtype):
            raise DatasetError(
                f"pickle declares a numpy {dtype} array of shape {dims} "
                f"({_nbytes(dims, dtype)} bytes) but holds {found} bytes"
            )
        return np.frombuffer(buf, dtype=dtype).reshape(dims, order=order)  # type: ignore[arg-type]

    # -- BUILD -----------------------------------------------------------------------------

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.dtype) and self._fresh_dtypes.get(id(inst)) is inst:
            del self._fresh_dtypes[id(inst)]
            self._build_dtype(inst, state)
        elif isinstance(inst, np.ndarray) and self._fresh_arrays.get(id(inst)) is inst:
            del self._fresh_arrays[id(inst)]
            self._build_array(inst, state)
        else:
            raise DatasetError(
                f"pickle asks to set the state of a {type(inst).__name__}: only a numpy dtype or "
                f"array the pickle just created may be rebuilt, once"
            )

    dispatch[pickle.BUILD[0]] = _load_build

    # -- tuple nesting -----------------------------------------------------------------------

    def _depth_of(self, item: object) -> int:
        if not isinstance(item, tuple | frozenset):
            return 0
        known = self._tuple_depths.get(id(item))
        return known[1] if known is not None and known[0] is item else 1

    def _check_nesting(self) -> None:
        """Record the depth of the tuple or frozenset just pushed; refuse one nested too deep."""
        top = self.stack[-1]
        depth = 1 + max((self._depth_of(item) for item in top), default=0)
        if depth > _MAX_TUPLE_DEPTH:
            raise DatasetError(
                f"pickle nests tuples more than {_MAX_TUPLE_DEPTH} levels deep, which no data "
                f"set does (and hashing them could overflow the C stack)"
            )
        self._tuple_depths[id(top)] = (top, depth)

    def _nesting_checked(load: Any) -> Any:
        def run(self: SafeUnpickler) -> None:
            load(self)
            self._check_nesting()

        return run

    for _op in (pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3, pickle.FROZENSET):
        dispatch[_op[0]] = _nesting_checked(dispatch[_op[0]])
    del _op, _nesting_checked

    @staticmethod
    def _build_dtype(dtype: np.dtype, state: object) -> None:
        probe = np.dtype(dtype, copy=True)  # try the state on a copy no one else can see
        try:
            probe.__setstate__(state)
        except Exception as exc:
            raise DatasetError(f"pickle holds an invalid numpy dtype state: {exc}") from exc
        if not _is_plain_dtype(probe) or probe.kind != dtype.kind:
            raise DatasetError(
                f"pickle asks to turn numpy dtype {dtype} into a dtype with sub-arrays, fields, "
                f"objects or a forged size: only plain dtypes are accepted"
            )
        dtype.__setstate__(state)
        if not _is_plain_dtype(dtype) or dtype != probe:  # pragma: no cover - defensive
            raise DatasetError("pickle holds an inconsistent numpy dtype state")

    def _build_array(self, array: np.ndarray, state: object) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DatasetError("pickle holds an invalid numpy array state")
        if len(state) == 5:
            version, *rest = state
            if type(version) is not int or version != 1:
                raise DatasetError("pickle holds a numpy array state of an unknown version")
        else:
            rest = list(state)
        shape, dtype, fortran, raw = rest
        dims = _checked_shape(shape)
        dtype = self._use_dtype(dtype)
        if not isinstance(fortran, bool | int) or fortran not in (0, 1):
            raise DatasetError("pickle holds a numpy array state with an invalid order flag")
        if not isinstance(raw, bytes | bytearray):
            raise DatasetError("pickle holds a numpy array whose data are not raw bytes")
        if len(raw) != _nbytes(dims, dtype):
            raise DatasetError(
                f"pickle declares a numpy {dtype} array of shape {dims} "
                f"({_nbytes(dims, dtype)} bytes) but holds {len(raw)} bytes"
            )
        try:
            array.__setstate__((1, dims, dtype, bool(fortran), raw))
        except Exception as exc:
            raise DatasetError(f"pickle holds an invalid numpy array state: {exc}") from exc


def _bounded(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "..."


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
        raise DatasetError(f"{path}: {_bounded(str(exc))}") from exc
    except Exception as exc:  # hostile data can raise anything: report it
        try:
            detail = _bounded(f"{type(exc).__name__}: {exc}")
        except Exception:  # str() of a hostile exception argument may itself fail
            detail = type(exc).__name__
        raise DatasetError(f"{path}: not a valid pickle: {detail}") from exc


# --- batch readers -------------------------------------------------------------------------


def _get(batch: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    keys = sorted(_short(k) for k in list(batch)[:20])
    more = f" and {len(batch) - 20} more" if len(batch) > 20 else ""
    raise DatasetError(f"{path}: batch has no {key!r} entry (keys: {keys}{more})")


def _int_text(value: int) -> str:
    """``str(value)``, bounded: Python refuses to print ints of more than 4300 digits."""
    bits = value.bit_length()
    return str(value) if bits <= 256 else f"an integer of {bits} bits"


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        bad = int(np.argmax((labels < 0) | (labels >= _NUM_CLASSES)))
        raise DatasetError(
            f"{path}: labels must be in 0..{_NUM_CLASSES - 1}, found {labels[bad]} at index {bad}"
        )


def _label_array(labels: object, path: Path) -> np.ndarray:
    """The 'labels' entry as int64, each checked to be a class index 0..9 before conversion."""
    expected = f"a list (or 1-D integer array) of class indices 0..{_NUM_CLASSES - 1}"
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DatasetError(
                f"{path}: 'labels' must be {expected}, found a {labels.dtype} array of shape "
                f"{labels.shape}"
            )
        _check_labels(labels, path)  # compared in the array's own dtype: no wrap-around
        return labels.astype(np.int64)
    if not isinstance(labels, list):
        raise DatasetError(
            f"{path}: 'labels' must be a list of integers ({expected}), "
            f"found {type(labels).__name__}"
        )
    for i, v in enumerate(labels):
        if not isinstance(v, int | np.integer) or isinstance(v, bool | np.bool_):
            raise DatasetError(
                f"{path}: 'labels' must be a list of integers ({expected}), "
                f"found {type(v).__name__} at index {i}"
            )
        if not 0 <= v < _NUM_CLASSES:
            raise DatasetError(
                f"{path}: labels must be in 0..{_NUM_CLASSES - 1}, found {_int_text(int(v))} "
                f"at index {i}"
            )
    return np.asarray(labels, dtype=np.int64)


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
    label_array = _label_array(labels, path)
    if len(label_array) != len(data):
        raise DatasetError(f"{path}: {len(data)} images but {len(label_array)} labels")
    return data, label_array


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        size = path.stat().st_size
        if size == 0 or size % _RECORD:
            raise DatasetError(
                f"{path}: binary CIFAR-10 file size must be a positive multiple of {_RECORD} "
                f"(1 label byte + {_PIXELS} pixel bytes), found {size} bytes"
            )
        if size > _MAX_BINARY_BYTES:
            raise DatasetError(
                f"{path}: {size} bytes is too large for a CIFAR-10 batch file "
                f"(at most {_MAX_BINARY_BYTES})"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if len(raw) != size:  # the file changed under us
        raise DatasetError(f"{path}: expected {size} bytes, read {len(raw)}")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)
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
    if len(labels) == 0:
        raise DatasetError(
            f"CIFAR-10 {split!r} split in {folder} holds no images ({', '.join(names)} are empty)"
        )
    return torch.from_numpy(images), torch.from_numpy(labels)


def cifar10_class_names(root: str | os.PathLike[str]) -> list[str]:
    """Class names from ``batches.meta`` (python) or ``batches.meta.txt`` (binary) in ``root``.

    Falls back to the fixed CIFAR-10 names when neither file is present.  Names must be 10
    distinct, non-empty UTF-8 strings without control characters.
    """
    for sub in _SUBDIRS:
        folder = Path(root) / sub
        meta_path, text_path = folder / "batches.meta", folder / "batches.meta.txt"
        if meta_path.is_file():
            meta = safe_load_pickle(meta_path)
            names = _get(meta, "label_names", meta_path) if isinstance(meta, dict) else None
            if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
                raise DatasetError(
                    f"{meta_path}: 'label_names' must be a list of {_NUM_CLASSES} names "
                    f"(bytes or str)"
                )
            decoded = [_decode_name(n, meta_path, i) for i, n in enumerate(names)]
            return _checked_names(decoded, meta_path)
        if text_path.is_file():
            try:
                if text_path.stat().st_size > _MAX_META_BYTES:
                    raise DatasetError(f"{text_path}: too large for a list of class names")
                raw = text_path.read_bytes()
            except OSError as exc:
                raise DatasetError(f"{text_path}: cannot read: {exc}") from exc
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"{text_path}: class names must be UTF-8 text, one per line: {exc}"
                ) from exc
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            return _checked_names(lines, text_path)
    return list(CIFAR10_CLASSES)


def _decode_name(name: bytes | str, path: Path, index: int) -> str:
    if isinstance(name, str):
        return name
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: label name {index} ({_short(name)}) is not valid UTF-8: {exc.reason} at "
            f"byte {exc.start}; expected UTF-8 class names"
        ) from exc


def _checked_names(names: list[str], path: Path) -> list[str]:
    if len(names) != _NUM_CLASSES:
        raise DatasetError(f"{path}: expected {_NUM_CLASSES} class names, found {len(names)}")
    for i, name in enumerate(names):
        if not name.strip() or not name.isprintable():
            raise DatasetError(
                f"{path}: class name {i} ({_short(name)}) is empty or holds control "
                f"characters: expected printable names"
            )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DatasetError(f"{path}: class name {_short(dup)} appears more than once")
    return names
