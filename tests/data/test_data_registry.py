"""load_dataset: root resolution order, error listing, statistics and the embedded MNIST."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tdsnn.data import (
    DATASET_NAMES,
    DatasetError,
    ImageDataset,
    load_dataset,
    registry,
    resolve_root,
)

ENV_VARS = ["TDSNN_MNIST_DIR", "TDSNN_FASHION_MNIST_DIR", "TDSNN_CIFAR10_DIR", "TDSNN_DATA_DIR"]
EMBEDDED_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No env vars, cwd in tmp_path, no system or repository-relative data visible."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(registry, "_repo_root", lambda: tmp_path / "checkout" / "repo")
    monkeypatch.setattr(registry, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "usr-share-fashion")
    return tmp_path


def test_embedded_mnist_is_found_without_configuration(isolated: Path) -> None:
    assert resolve_root("mnist", "test") == registry.EMBEDDED_MNIST_DIR
    ds = load_dataset("mnist", "test")
    assert isinstance(ds, ImageDataset) and ds.name == "mnist" and len(ds) == 10000
    assert ds.images.shape == (10000, 1, 28, 28) and ds.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert ds.num_classes == 10 and ds.class_names == [str(d) for d in range(10)]
    assert ds.mean == (0.1307,) and ds.std == (0.3081,)


def test_embedded_files_are_the_original_mnist() -> None:
    folder = registry.EMBEDDED_MNIST_DIR
    assert (folder / "SOURCE.txt").is_file()
    for name, md5 in EMBEDDED_MD5.items():
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == md5, name


def test_explicit_root_wins(isolated: Path, mnist_dir, monkeypatch) -> None:
    monkeypatch.setenv("TDSNN_MNIST_DIR", str(mnist_dir("env")))
    ds = load_dataset("mnist", "train", root=mnist_dir("explicit"))
    assert len(ds) == 6
    assert resolve_root("mnist", "train", isolated / "explicit") == isolated / "explicit"


def test_explicit_root_may_be_a_general_data_dir(isolated: Path, files) -> None:
    files.write_cifar_binary(isolated / "all" / "cifar10")
    files.write_mnist_split(isolated / "all" / "fashion-mnist", "test", *files.random_mnist(3, 0))
    assert len(load_dataset("cifar10", "test", root=isolated / "all")) == 4
    assert len(load_dataset("fashion-mnist", "test", root=isolated / "all")) == 3


def test_explicit_root_without_files_does_not_fall_back(isolated: Path) -> None:
    with pytest.raises(DatasetError, match="not found in"):
        load_dataset("mnist", "train", root=isolated)


def test_specific_env_var_before_general_one(isolated: Path, files, monkeypatch) -> None:
    files.write_mnist_split(isolated / "specific", "test", *files.random_mnist(3, 0))
    files.write_mnist_split(isolated / "general" / "mnist", "test", *files.random_mnist(2, 0))
    monkeypatch.setenv("TDSNN_DATA_DIR", str(isolated / "general"))
    assert len(load_dataset("mnist", "test")) == 2  # general beats the embedded copy
    monkeypatch.setenv("TDSNN_MNIST_DIR", str(isolated / "specific"))
    assert len(load_dataset("mnist", "test")) == 3


def test_fashion_mnist_sub_folder_of_data_dir(isolated: Path, files, monkeypatch) -> None:
    files.write_mnist_split(isolated / "d" / "fashion-mnist", "train", *files.random_mnist(5, 0))
    monkeypatch.setenv("TDSNN_DATA_DIR", str(isolated / "d"))
    ds = load_dataset("fashion-mnist", "train")
    assert len(ds) == 5 and ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.mean == (0.2860,) and ds.std == (0.3530,)


def test_fashion_mnist_system_folder(isolated: Path, files) -> None:
    files.write_mnist_split(registry.FASHION_MNIST_SYSTEM_DIR, "test", *files.random_mnist(4, 0))
    assert resolve_root("fashion-mnist", "test") == registry.FASHION_MNIST_SYSTEM_DIR
    assert len(load_dataset("fashion_mnist", "test")) == 4


def test_fashion_mnist_missing_lists_places_and_apt_hint(isolated: Path, monkeypatch) -> None:
    monkeypatch.setenv("TDSNN_FASHION_MNIST_DIR", str(isolated / "wrong"))
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", "test")
    message = str(info.value)
    for expected in (
        f"{isolated / 'wrong'} (from $TDSNN_FASHION_MNIST_DIR): no such folder",
        "$TDSNN_DATA_DIR (not set)",
        str(registry.FASHION_MNIST_SYSTEM_DIR),
        "apt-get install dataset-fashion-mnist",
        "--data-dir",
    ):
        assert expected in message


def test_cifar10_missing_lists_every_place(isolated: Path, monkeypatch) -> None:
    (isolated / "empty").mkdir()
    monkeypatch.setenv("TDSNN_DATA_DIR", str(isolated / "empty"))
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", "train")
    message = str(info.value)
    shared = Path("shared") / "data" / "cifar10"
    for expected in (
        "could not find the cifar10 'train' split",
        "$TDSNN_CIFAR10_DIR (not set)",
        f"{isolated / 'empty' / 'cifar10'} (from $TDSNN_DATA_DIR)",
        f"{isolated / shared} (../shared/data/cifar10 from the working directory)",
        f"{isolated / 'checkout' / shared} (../shared/data/cifar10 from the repository root)",
        "--data-dir",
        "TDSNN_CIFAR10_DIR",
    ):
        assert expected in message, expected
    assert "apt-get" not in message


def test_cifar10_beside_working_directory(isolated: Path, files) -> None:
    files.write_cifar_python(isolated / "shared" / "data" / "cifar10")
    ds = load_dataset("cifar10", "test")
    assert len(ds) == 4 and ds.class_names == files.CLASSES and ds.num_classes == 10
    assert ds.images.shape == (4, 3, 32, 32)
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)


def test_cifar10_beside_repository(isolated: Path, files, monkeypatch) -> None:
    files.write_cifar_binary(isolated / "elsewhere" / "shared" / "data" / "cifar10")
    monkeypatch.setattr(registry, "_repo_root", lambda: isolated / "elsewhere" / "repo")
    assert len(load_dataset("CIFAR-10", "train")) == 20


def test_repository_root_is_parent_of_src() -> None:
    root = registry._repo_root()
    if not (root / "src" / "tdsnn" / "data").is_dir():
        pytest.skip("tdsnn is not run from a source checkout")
    assert (root / "src" / "tdsnn" / "data" / "registry.py").samefile(registry.__file__)


def _image_tree(root: Path, colors: dict[str, list[tuple[int, int, int]]]) -> None:
    for cls, values in colors.items():
        (root / cls).mkdir(parents=True)
        for i, color in enumerate(values):
            Image.new("RGB", (4, 4), color).save(root / cls / f"{i}.png")


def test_folder_dataset_statistics_from_train_split(tmp_path: Path) -> None:
    _image_tree(tmp_path / "train", {"a": [(0, 0, 0)], "b": [(255, 255, 255)]})
    _image_tree(tmp_path / "test", {"a": [(255, 0, 0)], "b": [(0, 0, 0)]})
    ds = load_dataset("folder", "test", root=tmp_path, size=(2, 2))
    assert ds.name == "folder" and ds.class_names == ["a", "b"] and ds.num_classes == 2
    assert ds.images.shape == (2, 3, 2, 2) and ds.labels.tolist() == [0, 1]
    assert ds.mean == pytest.approx((0.5, 0.5, 0.5)) and ds.std == pytest.approx((0.5,) * 3)
    train = load_dataset("folder", "train", root=tmp_path / "train", size=(2, 2))
    assert train.mean == ds.mean


def test_folder_needs_root() -> None:
    with pytest.raises(DatasetError, match="needs root"):
        load_dataset("folder", "train")


def test_channel_stats_matches_float_computation() -> None:
    images = torch.randint(0, 256, (7, 3, 5, 4), dtype=torch.uint8, generator=torch.manual_seed(0))
    mean, std = registry.channel_stats(images)
    x = images.double() / 255
    np.testing.assert_allclose(mean, x.mean(dim=(0, 2, 3)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), rtol=1e-12)


@pytest.mark.parametrize(("name", "split"), [("imagenet", "train"), ("mnist", "val")])
def test_unknown_name_or_split(name: str, split: str) -> None:
    with pytest.raises(DatasetError, match="unknown"):
        load_dataset(name, split)


def test_names_and_dataset_validation() -> None:
    assert DATASET_NAMES == ("mnist", "fashion-mnist", "cifar10", "folder")
    with pytest.raises(DatasetError, match="labels must be int64"):
        ImageDataset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3), 1, ["a"], "x")
