"""load_mnist / load_fashion_mnist on small IDX folders written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tdsnn.data import DatasetError, load_fashion_mnist, load_mnist


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dotted", [False, True])
@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_loads_standard_and_dotted_names(tmp_path: Path, files, gz, dotted, loader) -> None:
    for split, n, seed in (("train", 6, 0), ("test", 4, 1)):
        images, labels = files.random_mnist(n, seed)
        files.write_mnist_split(tmp_path, split, images, labels, gz=gz, dotted=dotted)
        x, y = loader(tmp_path, split)
        assert x.dtype == torch.uint8 and x.shape == (n, 1, 28, 28)
        assert y.dtype == torch.int64 and y.shape == (n,)
        np.testing.assert_array_equal(x[:, 0].numpy(), images)
        np.testing.assert_array_equal(y.numpy(), labels)


def test_default_split_is_train(mnist_dir) -> None:
    assert load_mnist(mnist_dir())[0].shape[0] == 6


def test_count_mismatch(tmp_path: Path, files) -> None:
    images, labels = files.random_mnist(5, 0)
    files.write_mnist_split(tmp_path, "train", images, labels[:4])
    with pytest.raises(DatasetError, match=r"5 images .* but 4 labels"):
        load_mnist(tmp_path, "train")


def test_label_out_of_range(tmp_path: Path, files) -> None:
    images, labels = files.random_mnist(5, 0)
    labels[3] = 10
    files.write_mnist_split(tmp_path, "test", images, labels)
    with pytest.raises(DatasetError, match=r"labels must be in 0\.\.9, found 10 at index 3"):
        load_mnist(tmp_path, "test")


def test_wrong_image_size(tmp_path: Path, files) -> None:
    images = np.zeros((3, 28, 27), np.uint8)
    files.write_mnist_split(tmp_path, "train", images, np.zeros(3, np.uint8))
    with pytest.raises(DatasetError, match=r"N x 28 x 28"):
        load_mnist(tmp_path, "train")


def test_wrong_label_dtype(tmp_path: Path, files) -> None:
    images, _ = files.random_mnist(3, 0)
    files.write_mnist_split(tmp_path, "train", images, np.zeros(3, np.int32))
    with pytest.raises(DatasetError, match=r"uint8 label vector"):
        load_mnist(tmp_path, "train")


def test_images_and_labels_swapped(tmp_path: Path, files) -> None:
    images, labels = files.random_mnist(3, 0)
    files.write_mnist_split(tmp_path, "train", images, labels)
    a, b = tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path, "train")


def test_missing_labels_file_names_expected_files(tmp_path: Path, files) -> None:
    images, labels = files.random_mnist(3, 0)
    files.write_mnist_split(tmp_path, "test", images, labels)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\[\.gz\]") as info:
        load_fashion_mnist(tmp_path, "test")
    assert "Fashion-MNIST" in str(info.value) and str(tmp_path) in str(info.value)


def test_unknown_split(mnist_dir) -> None:
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_mnist(mnist_dir(), "val")


def test_truncated_file_is_reported(tmp_path: Path, files) -> None:
    images, labels = files.random_mnist(3, 0)
    files.write_mnist_split(tmp_path, "train", images, labels, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        load_mnist(tmp_path, "train")
