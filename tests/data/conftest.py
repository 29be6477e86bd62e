"""Writers of small, valid data-set files: every test builds its own inputs in tmp_path.

The helpers reach the tests through the ``files`` fixture (works under any pytest import mode).
"""

from __future__ import annotations

import gzip
import pickle
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """The IDX encoding of ``array`` (big-endian), optionally with a forced dtype ``code``."""
    code = IDX_CODES[array.dtype] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_bytes(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist_split(
    root: Path,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    gz: bool = True,
    dotted: bool = False,
) -> None:
    """Write an MNIST-style split (standard or dotted names, raw or gzip) into ``root``."""
    prefix = "train" if split == "train" else "t10k"
    sep = "." if dotted else "-"
    ext = ".gz" if gz else ""
    write_bytes(root / f"{prefix}-images{sep}idx3-ubyte{ext}", idx_bytes(images), gz)
    write_bytes(root / f"{prefix}-labels{sep}idx1-ubyte{ext}", idx_bytes(labels), gz)


def random_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n, dtype=np.uint8),
    )


def random_cifar(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def write_cifar_python(
    root: Path, per_batch: int = 4, protocol: int = 2, meta: bool = True
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a python-version CIFAR-10 folder; returns the expected (data, labels) per split."""
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, list] = {"train": [[], []], "test": [[], []]}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        data, labels = random_cifar(per_batch, seed)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        split = "test" if name == "test_batch" else "train"
        expected[split][0].append(data)
        expected[split][1].append(labels)
    if meta:
        names_b = [n.encode() for n in CLASSES]
        meta_d = {b"num_cases_per_batch": per_batch, b"label_names": names_b, b"num_vis": 3072}
        (root / "batches.meta").write_bytes(pickle.dumps(meta_d, protocol=protocol))
    return {
        k: (np.concatenate(v[0]), np.concatenate([np.asarray(x) for x in v[1]]))
        for k, v in expected.items()
    }


def write_cifar_binary(root: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a binary-version CIFAR-10 folder (1 label byte + 3072 pixels per record)."""
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, list] = {"train": [[], []], "test": [[], []]}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for seed, name in enumerate(names):
        data, labels = random_cifar(per_batch, seed + 10)
        records = np.concatenate([np.asarray(labels, np.uint8)[:, None], data], axis=1)
        (root / name).write_bytes(records.tobytes())
        split = "test" if name == "test_batch.bin" else "train"
        expected[split][0].append(data)
        expected[split][1].append(np.asarray(labels))
    (root / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in expected.items()}


CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def files() -> types.SimpleNamespace:
    """The writer helpers of this module."""
    return types.SimpleNamespace(
        IDX_CODES=IDX_CODES,
        CLASSES=CLASSES,
        idx_bytes=idx_bytes,
        write_bytes=write_bytes,
        write_mnist_split=write_mnist_split,
        random_mnist=random_mnist,
        random_cifar=random_cifar,
        write_cifar_python=write_cifar_python,
        write_cifar_binary=write_cifar_binary,
    )


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a tiny MNIST folder (train 6, test 4 images) under tmp_path/<name>."""

    def make(name: str = "mnist", **kwargs: bool) -> Path:
        root = tmp_path / name
        write_mnist_split(root, "train", *random_mnist(6, 0), **kwargs)
        write_mnist_split(root, "test", *random_mnist(4, 1), **kwargs)
        return root

    return make
