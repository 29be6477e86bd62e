"""load_image_folder on small class-per-sub-folder trees written with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tdsnn.data import DatasetError, load_image_folder


def _solid(path: Path, color, size=(20, 12), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    _solid(root / "dog" / "b.png", (0, 0, 255))
    _solid(root / "dog" / "a.bmp", (0, 255, 0), size=(5, 7))
    _solid(root / "cat" / "x.PNG", (255, 0, 0))
    _solid(root / "cat" / "y.jpg", (250, 250, 250))
    _solid(root / "cat" / "z.png", 128, mode="L")
    (root / "cat" / "notes.txt").write_text("not an image, ignored")
    (root / "cat" / ".hidden.png").write_bytes(b"ignored")
    return root


def test_classes_labels_and_pixels(tree: Path) -> None:
    images, labels, names = load_image_folder(tree, size=(8, 6), channels=3)
    assert names == ["cat", "dog"]
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 8, 6)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 0, 0, 1, 1]
    # files are sorted per class: cat/x.PNG, cat/y.jpg, cat/z.png, dog/a.bmp, dog/b.png
    assert (images[0].permute(1, 2, 0) == torch.tensor([255, 0, 0], dtype=torch.uint8)).all()
    assert (images[1].int() - 250).abs().max() <= 3  # JPEG is lossy
    assert (images[2] == 128).all()  # grey converted to RGB
    assert (images[3].permute(1, 2, 0) == torch.tensor([0, 255, 0], dtype=torch.uint8)).all()
    assert (images[4].permute(1, 2, 0) == torch.tensor([0, 0, 255], dtype=torch.uint8)).all()


def test_grey_conversion(tree: Path) -> None:
    images, _, _ = load_image_folder(tree, size=(4, 4), channels=1)
    assert images.shape == (5, 1, 4, 4)
    assert int(images[0, 0, 0, 0]) == 76  # ITU-R 601 luma of pure red
    assert int(images[2, 0, 0, 0]) == 128


def test_bilinear_resize(tmp_path: Path) -> None:
    gradient = np.tile(np.arange(0, 256, 64, dtype=np.uint8), (4, 1))  # 4 x 4, columns 0..192
    path = tmp_path / "r" / "c" / "g.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(gradient).save(path)
    images, _, _ = load_image_folder(tmp_path / "r", size=(2, 8), channels=1)
    expected = np.asarray(Image.fromarray(gradient).resize((8, 2), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(images[0, 0].numpy(), expected)
    assert images[0, 0, 0].tolist() == sorted(images[0, 0, 0].tolist())  # interpolated, monotone


@pytest.mark.parametrize("content", [b"definitely not an image", "truncated"])
def test_corrupted_image_names_the_file(tree: Path, content) -> None:
    bad = tree / "dog" / "c.png"
    if content == "truncated":
        good = (tree / "dog" / "b.png").read_bytes()
        content = good[: len(good) // 2]
    bad.write_bytes(content)
    with pytest.raises(DatasetError, match="cannot decode image") as info:
        load_image_folder(tree)
    assert str(bad) in str(info.value)


def test_other_image_formats_are_not_decoded(tree: Path) -> None:
    bad = tree / "dog" / "gif.png"
    Image.new("RGB", (4, 4)).save(bad, format="GIF")  # a GIF behind a .png name
    with pytest.raises(DatasetError, match="gif.png"):
        load_image_folder(tree)


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load_image_folder(tmp_path)


def test_empty_class_folder(tree: Path) -> None:
    (tree / "emu").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*emu contains no images"):
        load_image_folder(tree)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


@pytest.mark.parametrize(("size", "channels"), [((8, 8), 2), ((0, 8), 3), ((8,), 3)])
def test_bad_arguments(tree: Path, size, channels: int) -> None:
    with pytest.raises(DatasetError):
        load_image_folder(tree, size=size, channels=channels)
