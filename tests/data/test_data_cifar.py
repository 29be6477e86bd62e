"""load_cifar10: python and binary batch folders, and the restricted unpickler."""

from __future__ import annotations

import builtins
import codecs
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tdsnn.data import DatasetError, cifar10_class_names, load_cifar10
from tdsnn.data.cifar import safe_load_pickle


def _check(root: Path, expected) -> None:
    for split in ("train", "test"):
        x, y = load_cifar10(root, split)
        data, labels = expected[split]
        assert x.dtype == torch.uint8 and x.shape == (len(data), 3, 32, 32)
        assert y.dtype == torch.int64
        np.testing.assert_array_equal(x.reshape(len(data), -1).numpy(), data)
        np.testing.assert_array_equal(y.numpy(), labels)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python_batches(tmp_path: Path, files, protocol: int) -> None:
    expected = files.write_cifar_python(tmp_path, protocol=protocol)
    _check(tmp_path, expected)
    assert len(expected["train"][0]) == 20 and len(expected["test"][0]) == 4


def test_channel_layout_is_rgb_planes(tmp_path: Path, files) -> None:
    files.write_cifar_python(tmp_path)
    batch = tmp_path / "test_batch"
    data = np.zeros((1, 3072), np.uint8)
    data[0, 1024 + 33] = 200  # green plane, row 1, column 1
    batch.write_bytes(pickle.dumps({b"data": data, b"labels": [3]}, protocol=2))
    x, y = load_cifar10(tmp_path, "test")
    assert x[0, 1, 1, 1] == 200 and int(x.sum()) == 200 and y.tolist() == [3]


def test_binary_batches(tmp_path: Path, files) -> None:
    _check(tmp_path, files.write_cifar_binary(tmp_path))
    assert cifar10_class_names(tmp_path) == files.CLASSES


@pytest.mark.parametrize("sub", ["cifar-10-batches-py", "cifar-10-batches-bin"])
def test_archive_sub_folder_is_found(tmp_path: Path, files, sub: str) -> None:
    writer = files.write_cifar_python if sub.endswith("py") else files.write_cifar_binary
    _check(tmp_path, writer(tmp_path / sub))


def test_class_names_from_meta_and_fallback(tmp_path: Path, files) -> None:
    files.write_cifar_python(tmp_path / "a")
    assert cifar10_class_names(tmp_path / "a") == files.CLASSES
    files.write_cifar_python(tmp_path / "b", meta=False)
    assert cifar10_class_names(tmp_path / "b") == files.CLASSES


def test_class_names_wrong_count(tmp_path: Path) -> None:
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, 2))
    with pytest.raises(DatasetError, match="expected 10 class names, found 2"):
        cifar10_class_names(tmp_path)


def test_missing_batch(tmp_path: Path, files) -> None:
    files.write_cifar_python(tmp_path)
    (tmp_path / "data_batch_5").unlink()
    with pytest.raises(DatasetError, match=r"'train' split not found .*data_batch_5"):
        load_cifar10(tmp_path, "train")
    assert load_cifar10(tmp_path, "test")[0].shape[0] == 4


def test_binary_size_not_multiple_of_record(tmp_path: Path, files) -> None:
    files.write_cifar_binary(tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match=r"multiple of 3073 .* found 12291 bytes"):
        load_cifar10(tmp_path, "test")


def test_binary_label_out_of_range(tmp_path: Path, files) -> None:
    files.write_cifar_binary(tmp_path)
    path = tmp_path / "test_batch.bin"
    data = bytearray(path.read_bytes())
    data[3073] = 10  # label byte of record 1
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"labels must be in 0\.\.9, found 10 at index 1"):
        load_cifar10(tmp_path, "test")


def _write_test_batch(root: Path, files, batch: object) -> None:
    files.write_cifar_python(root)
    (root / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, "uint8 N x 3072"),
        ({b"data": np.zeros((2, 3072), np.int16), b"labels": [0, 1]}, "uint8 N x 3072"),
        ({b"data": [1, 2, 3], b"labels": [0]}, "found list"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "found 10 at index 1"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 0]}, "found -1 at index 0"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, "x"]}, "list of integers"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "no 'labels' entry"),
        ([1, 2], "expected a dict batch"),
    ],
)
def test_invalid_batch_contents(tmp_path: Path, files, batch, message: str) -> None:
    _write_test_batch(tmp_path, files, batch)
    with pytest.raises(DatasetError, match=message) as info:
        load_cifar10(tmp_path, "test")
    assert str(tmp_path / "test_batch") in str(info.value)


def test_truncated_pickle(tmp_path: Path, files) -> None:
    files.write_cifar_python(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="not a valid pickle"):
        load_cifar10(tmp_path, "test")


class _Exploit:
    """Pickles as a call of ``func(*args)``: what a hostile batch file would contain."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, _Exploit]:
    return {
        "os.system": _Exploit(os.system, f"touch '{marker}'"),
        "builtins.eval": _Exploit(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": _Exploit(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "builtins.exec"])
@pytest.mark.parametrize("protocol", [2, 5])
def test_hostile_pickle_is_refused_and_not_executed(tmp_path: Path, files, kind, protocol) -> None:
    marker = tmp_path / "pwned"
    exploit = _payloads(marker)[kind]
    files.write_cifar_python(tmp_path)
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [exploit]}
    payload = pickle.dumps(batch, protocol=protocol)
    (tmp_path / "test_batch").write_bytes(payload)

    with pytest.raises(DatasetError, match=r"refusing to load global .*(system|eval|exec)"):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()

    # control: the same bytes through plain pickle really do run the payload
    pickle.loads(payload)
    assert marker.exists()


def test_hostile_meta_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    meta = {b"label_names": _Exploit(builtins.eval, f"open({str(marker)!r}, 'w').close()")}
    (tmp_path / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    with pytest.raises(DatasetError, match="refusing"):
        cifar10_class_names(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        # _reconstruct asked for a huge array: numpy would allocate it before any check
        (
            _Exploit(np.ndarray.__reduce__(np.zeros(0))[0], np.ndarray, (10**12,), b"b"),
            "non-standard",
        ),
        # numpy.ndarray called directly with a huge shape
        (_Exploit(np.ndarray, (10**12,)), "not callable"),
        # object arrays could carry anything
        (np.array([1, "x"], dtype=object), "object dtype"),
        # _codecs.encode with a codec other than latin-1
        (_Exploit(codecs.encode, "abc", "rot13"), "latin-1"),
    ],
    ids=["huge-reconstruct", "ndarray-call", "object-dtype", "codecs-rot13"],
)
def test_restricted_numpy_globals(tmp_path: Path, obj, message: str) -> None:
    path = tmp_path / "p"
    path.write_bytes(pickle.dumps({b"data": obj}, protocol=2))
    with pytest.raises(DatasetError, match=message):
        safe_load_pickle(path)


def test_bytes_and_arrays_load_through_every_protocol(tmp_path: Path) -> None:
    value = {b"k": b"\x00\xff", "s": [1, 2.5, None, True], "a": np.arange(6, dtype=np.uint8)}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        out = safe_load_pickle(path)
        assert out[b"k"] == b"\x00\xff" and out["s"] == [1, 2.5, None, True]
        np.testing.assert_array_equal(out["a"], value["a"])
