"""read_idx: round trips, header and length validation, hostile headers."""

from __future__ import annotations

import gzip
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tdsnn.data import DatasetError, read_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_every_dtype(tmp_path: Path, files, dtype, gz: bool) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = files.write_bytes(tmp_path / "a.idx", files.idx_bytes(array), gz)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype)  # native byte order, usable by torch
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_gzip_is_detected_by_magic_not_name(tmp_path: Path, files) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_raw = files.write_bytes(tmp_path / "x.gz", files.idx_bytes(array), gz=False)
    raw_named_gz = files.write_bytes(tmp_path / "x-ubyte", files.idx_bytes(array), gz=True)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


def test_big_endian_payload_is_decoded(tmp_path: Path) -> None:
    data = (
        bytes([0, 0, 0x0C, 1, 0, 0, 0, 2])
        + (258).to_bytes(4, "big")
        + (-1).to_bytes(4, "big", signed=True)
    )
    path = tmp_path / "be.idx"
    path.write_bytes(data)
    assert read_idx(path).tolist() == [258, -1]


def test_zero_length_dimension_is_valid(tmp_path: Path, files) -> None:
    path = files.write_bytes(tmp_path / "e.idx", files.idx_bytes(np.zeros((0, 28), np.uint8)))
    assert read_idx(path).shape == (0, 28)


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic(tmp_path: Path, files, gz: bool) -> None:
    data = bytearray(files.idx_bytes(np.zeros(4, np.uint8)))
    data[1] = 0x01
    path = files.write_bytes(tmp_path / "bad.idx", bytes(data), gz)
    with pytest.raises(DatasetError, match=r"magic must start with 0x00 0x00, found 0x00 0x01"):
        read_idx(path)


@pytest.mark.parametrize("code", [0x00, 0x0A, 0x0F, 0xFF])
def test_unknown_dtype_code(tmp_path: Path, files, code: int) -> None:
    path = files.write_bytes(tmp_path / "d.idx", files.idx_bytes(np.zeros(4, np.uint8), code))
    with pytest.raises(DatasetError, match=rf"unknown IDX dtype code 0x{code:02x}") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_zero_dimensions_rejected(tmp_path: Path) -> None:
    path = tmp_path / "z.idx"
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(DatasetError, match="0 dimensions"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("size", [0, 3, 4, 9])
def test_truncated_header(tmp_path: Path, files, gz: bool, size: int) -> None:
    full = files.idx_bytes(np.zeros((2, 2), np.uint8))  # header is 4 + 8 bytes
    path = files.write_bytes(tmp_path / "h.idx", full[:size], gz)
    with pytest.raises(DatasetError, match="truncated IDX header"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload_reports_expected_and_found(tmp_path: Path, files, gz: bool) -> None:
    full = files.idx_bytes(np.zeros((10, 28, 28), np.uint8))
    path = files.write_bytes(tmp_path / "t.idx", full[:-5], gz)
    with pytest.raises(DatasetError, match=r"truncated IDX file") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "7840 payload bytes" in message and "found 7835" in message


@pytest.mark.parametrize("gz", [False, True])
def test_over_long_payload(tmp_path: Path, files, gz: bool) -> None:
    full = files.idx_bytes(np.zeros((10, 28, 28), np.uint8))
    path = files.write_bytes(tmp_path / "o.idx", full + b"\x00", gz)
    with pytest.raises(DatasetError, match=r"over-long IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupted_gzip_stream(tmp_path: Path, files) -> None:
    data = bytearray(gzip.compress(files.idx_bytes(np.arange(200, dtype=np.uint8))))
    data[-6] ^= 0xFF  # break the CRC-32 in the gzip trailer
    path = tmp_path / "c.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=str(path)):
        read_idx(path)


def test_gzip_stream_cut_short(tmp_path: Path, files) -> None:
    data = gzip.compress(files.idx_bytes(np.arange(200, dtype=np.uint8)))
    path = tmp_path / "s.gz"
    path.write_bytes(data[:-10])
    with pytest.raises(DatasetError, match=str(path)):
        read_idx(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_idx(tmp_path / "nope")


def _hostile_header(dims: list[int]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


def _fails_without_allocating(path: Path, limit_bytes: int) -> str:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DatasetError) as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit_bytes, f"peak {peak} bytes traced while rejecting {path}"
    assert time.perf_counter() - start < 2.0
    return str(info.value)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "dims", [[1000, 1000, 1000], [0xFFFFFFFF] * 4, [0xFFFFFFFF] * 255], ids=["1GB", "2^128", "255d"]
)
def test_hostile_huge_dimensions_fail_fast(tmp_path: Path, files, gz: bool, dims) -> None:
    path = files.write_bytes(tmp_path / "huge.idx", _hostile_header(dims) + b"\x00" * 64, gz)
    message = _fails_without_allocating(path, limit_bytes=1 << 20)
    assert str(path) in message


def test_hostile_gzip_within_deflate_bound_reads_only_real_data(tmp_path: Path, files) -> None:
    # 300 kB of incompressible payload, header declares 200 MB: plausible for the 1032:1
    # deflate bound, so the reader must discover the truncation without allocating 200 MB.
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    path = files.write_bytes(tmp_path / "h.gz", _hostile_header([200, 1000, 1000]) + payload, True)
    message = _fails_without_allocating(path, limit_bytes=20 << 20)
    assert "truncated" in message and "200000000 payload bytes" in message


# ``files`` is a stateless namespace of writers, so sharing it across examples is safe.
_PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.dtype(d) for d in DTYPES]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
)


@_PROPERTY
@given(array=_ARRAYS, gz=st.booleans())
def test_round_trip_property(files, array: np.ndarray, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = files.write_bytes(Path(tmp) / "p.idx", files.idx_bytes(array), gz)
        out = read_idx(path)
    assert out.shape == array.shape and out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


@_PROPERTY
@given(array=_ARRAYS, gz=st.booleans(), data=st.data())
def test_any_truncation_or_extension_is_a_dataset_error(files, array, gz: bool, data) -> None:
    full = files.idx_bytes(array)
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    extra = data.draw(st.binary(min_size=1, max_size=9), label="extra")
    for broken in (full[:cut], full + extra):
        with tempfile.TemporaryDirectory() as tmp:
            path = files.write_bytes(Path(tmp) / "b.idx", broken, gz)
            with pytest.raises(DatasetError):
                read_idx(path)


@_PROPERTY
@given(array=_ARRAYS, data=st.data())
def test_any_header_corruption_is_caught_or_harmless(files, array, data) -> None:
    full = bytearray(files.idx_bytes(array))
    header = 4 + 4 * array.ndim
    pos = data.draw(st.integers(0, header - 1), label="pos")
    full[pos] ^= data.draw(st.integers(1, 255), label="flip")
    with tempfile.TemporaryDirectory() as tmp:
        path = files.write_bytes(Path(tmp) / "c.idx", bytes(full))
        try:
            out = read_idx(path)
        except DatasetError:
            return
    # only a dtype/shape change that keeps the byte count exact can be accepted
    assert out.nbytes == array.nbytes
