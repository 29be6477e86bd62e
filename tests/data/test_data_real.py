"""The real MNIST / CIFAR-10 in <repo>/../shared/data and Fashion-MNIST from Debian (if present).

Each full split is read once per module; tests skip when the data is not on this machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tdsnn.data import cifar10_class_names, load_cifar10, load_fashion_mnist, load_mnist
from tdsnn.data.registry import FASHION_MNIST_SYSTEM_DIR, channel_stats

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MNIST_DIR, CIFAR_DIR = SHARED / "mnist", SHARED / "cifar10"


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    return folder


@pytest.fixture(scope="module")
def mnist():
    root = _need(MNIST_DIR)
    return {split: load_mnist(root, split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def cifar():
    root = _need(CIFAR_DIR)
    return {split: load_cifar10(root, split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def fashion():
    root = _need(FASHION_MNIST_SYSTEM_DIR)
    return {split: load_fashion_mnist(root, split) for split in ("train", "test")}


def _counts(labels) -> list[int]:
    return np.bincount(labels.numpy(), minlength=10).tolist()


def test_mnist_counts_and_labels(mnist) -> None:
    (x, y), (xt, yt) = mnist["train"], mnist["test"]
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert _counts(y) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert _counts(yt) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_train_statistics_match_constants(mnist) -> None:
    mean, std = channel_stats(mnist["train"][0])
    assert mean[0] == pytest.approx(0.1307, abs=5e-5) and std[0] == pytest.approx(0.3081, abs=5e-5)


def test_cifar10_counts_labels_and_names(cifar) -> None:
    (x, y), (xt, yt) = cifar["train"], cifar["test"]
    assert x.shape == (50000, 3, 32, 32) and xt.shape == (10000, 3, 32, 32)
    assert _counts(y) == [5000] * 10 and _counts(yt) == [1000] * 10
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # original data_batch_1 start
    assert cifar10_class_names(CIFAR_DIR)[:3] == ["airplane", "automobile", "bird"]


def test_cifar10_train_statistics_match_constants(cifar) -> None:
    mean, std = channel_stats(cifar["train"][0])
    np.testing.assert_allclose(mean, (0.4914, 0.4822, 0.4465), atol=5e-5)
    np.testing.assert_allclose(std, (0.2470, 0.2435, 0.2616), atol=5e-5)


def test_fashion_mnist_counts_and_statistics(fashion) -> None:
    (x, y), (xt, yt) = fashion["train"], fashion["test"]
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert _counts(y) == [6000] * 10 and _counts(yt) == [1000] * 10
    assert y[:5].tolist() == [9, 0, 0, 3, 0]
    mean, std = channel_stats(x)
    assert mean[0] == pytest.approx(0.2860, abs=5e-5) and std[0] == pytest.approx(0.3530, abs=5e-5)
