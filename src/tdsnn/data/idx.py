"""Reader for the IDX format of MNIST-like data sets (raw or gzip-compressed).

IDX layout: ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the
big-endian payload.  The reader validates every field and the exact payload length, and never
allocates more than the file can actually hold, so a hostile header cannot exhaust memory.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tdsnn.data.errors import DatasetError

__all__ = ["IDX_DTYPES", "read_idx"]

#: IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
# DEFLATE cannot compress better than 1032:1 (a 258-byte match in 2 bits), so a gzip file of
# C bytes never decompresses to more than C * 1032 bytes: a cheap bound checked before reading.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20


def _read_exact_header(stream: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise DatasetError(
            f"{path}: truncated IDX header: expected {n} bytes of {what}, found {len(data)}"
        )
    return data


def _parse_header(stream: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    magic = _read_exact_header(stream, 4, path, "magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file: magic must start with 0x00 0x00, found "
            f"0x{magic[0]:02x} 0x{magic[1]:02x}"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DatasetError(f"{path}: unknown IDX dtype code 0x{code:02x} (expected one of {known})")
    if ndim == 0:
        raise DatasetError(f"{path}: IDX header declares 0 dimensions (expected at least 1)")
    raw_dims = _read_exact_header(stream, 4 * ndim, path, f"{ndim} dimension sizes")
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    return IDX_DTYPES[code], dims


def _read_limited(stream: BinaryIO, limit: int) -> bytearray:
    """Read at most ``limit`` bytes in chunks, so memory follows the real data, not a header."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip detected by its magic bytes, not its name) into a native array.

    Raises :class:`DatasetError` naming ``path`` for a bad magic number, an unknown dtype code,
    a truncated or over-long payload, or a header declaring more data than the file can hold.
    """
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise DatasetError(f"{path}: not a regular file: expected an IDX file")
        file_size = info.st_size
        with open(path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _read_gzip(stream, path, file_size)
            return _read_raw(raw, path, file_size)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: IDX file not found") from exc
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot read IDX file: {exc}") from exc


def _read_raw(stream: BinaryIO, path: Path, file_size: int) -> np.ndarray:
    dtype, dims = _parse_header(stream, path)
    header = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
    found = file_size - header
    if found != expected:
        kind = "truncated" if found < expected else "over-long"
        raise DatasetError(
            f"{path}: {kind} IDX file: header declares shape {dims} of {dtype.name} "
            f"({expected} payload bytes), found {found} payload bytes"
        )
    payload = _read_limited(stream, expected)
    if len(payload) != expected:  # the file changed under us
        raise DatasetError(f"{path}: expected {expected} payload bytes, read {len(payload)}")
    return _to_native(payload, dtype, dims)


def _read_gzip(stream: BinaryIO, path: Path, file_size: int) -> np.ndarray:
    dtype, dims = _parse_header(stream, path)
    header = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
    if header + expected > file_size * _MAX_DEFLATE_RATIO:
        raise DatasetError(
            f"{path}: truncated or hostile IDX file: header declares shape {dims} of "
            f"{dtype.name} ({expected} payload bytes), more than a {file_size}-byte gzip "
            f"file can hold"
        )
    payload = _read_limited(stream, expected + 1)
    if len(payload) != expected:
        kind = "truncated" if len(payload) < expected else "over-long"
        found = f"{len(payload)}" if len(payload) < expected else "more"
        raise DatasetError(
            f"{path}: {kind} IDX file: header declares shape {dims} of {dtype.name} "
            f"({expected} payload bytes), found {found} payload bytes after decompression"
        )
    return _to_native(payload, dtype, dims)


def _to_native(payload: bytearray, dtype: np.dtype, dims: tuple[int, ...]) -> np.ndarray:
    array = np.frombuffer(payload, dtype=dtype).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    else:
        array = array.view(dtype.newbyteorder("="))
    return array
