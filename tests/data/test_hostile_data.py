"""The data-file family of the hostile-input corpus: odd, broken and malicious data-set files.

Every case must end in a :class:`DatasetError` whose message names the file or field and what
would be valid, or in the correct answer; never another exception, a crash, a hang, a huge
allocation or a silently wrong result.  Sections: folder data sets (class lists, empty splits,
16-bit and odd image files), CIFAR-10 batches (labels, arrays, class names, the restricted
unpickler), IDX files, and the in-memory data set / loader.  All inputs are written in
``tmp_path``.
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
import tempfile
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from tdsnn.data import (
    DatasetError,
    ImageDataset,
    cifar10_class_names,
    load_cifar10,
    load_dataset,
    load_image_folder,
    load_mnist,
    make_loader,
    read_idx,
)
from tdsnn.data import image_folder as image_folder_module
from tdsnn.data.cifar import _read_python_batch, safe_load_pickle

# ``files`` is a stateless namespace of writers, so sharing it across examples is safe.
_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _image(path: Path, color, size=(4, 4), mode="RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **save)
    return path


def _tree(root: Path, classes: dict[str, list]) -> Path:
    for name, colors in classes.items():
        for i, color in enumerate(colors):
            _image(root / name / f"{i}.png", color)
    return root


def _fails_within(func, seconds: float):
    """Run ``func`` in a daemon thread; it must finish (raise or return) within ``seconds``."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = func()
        except BaseException as exc:  # handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (blocked on the file?)"
    return outcome


# ================================================================ folder data sets


RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


class TestFolderClassList:
    """One class list, the training split's, labels every split."""

    def test_test_split_with_fewer_classes_keeps_training_labels(self, tmp_path: Path) -> None:
        _tree(tmp_path / "train", {"blue": [BLUE], "red": [RED]})
        _tree(tmp_path / "test", {"red": [RED, RED]})
        test = load_dataset("folder", "test", root=tmp_path, size=(2, 2))
        assert test.class_names == ["blue", "red"] and test.num_classes == 2
        assert test.labels.tolist() == [1, 1]  # per-split numbering made these 0: 0 % accuracy
        train = load_dataset("folder", "train", root=tmp_path, size=(2, 2))
        red_label = train.labels[(train.images[:, 0, 0, 0] == 255).nonzero()[0, 0]]
        assert int(red_label) == 1

    def test_test_split_with_an_unknown_class_is_refused(self, tmp_path: Path) -> None:
        _tree(tmp_path / "train", {"blue": [BLUE], "red": [RED]})
        _tree(tmp_path / "test", {"blue": [BLUE], "green": [GREEN]})
        with pytest.raises(DatasetError) as info:
            load_dataset("folder", "test", root=tmp_path, size=(2, 2))
        message = str(info.value)
        assert str(tmp_path / "test" / "green") in message
        assert "['blue', 'red']" in message and "'test' split" in message

    def test_explicit_class_list(self, tmp_path: Path) -> None:
        _tree(tmp_path / "t", {"c": [GREEN], "a": [RED]})
        _, labels, names = load_image_folder(tmp_path / "t", size=(2, 2), classes=["a", "b", "c"])
        assert names == ["a", "b", "c"] and labels.tolist() == [0, 2]
        with pytest.raises(DatasetError, match=r"t/c is not a class .*\['a', 'b'\]"):
            load_image_folder(tmp_path / "t", size=(2, 2), classes=["a", "b"])

    @pytest.mark.parametrize("classes", [[], ["a", "a"]])
    def test_class_list_must_be_distinct_and_non_empty(self, tmp_path: Path, classes) -> None:
        _tree(tmp_path / "t", {"a": [RED]})
        with pytest.raises(DatasetError, match="distinct"):
            load_image_folder(tmp_path / "t", classes=classes)

    def test_split_layout_without_the_requested_split(self, tmp_path: Path) -> None:
        _tree(tmp_path / "train", {"a": [RED]})
        with pytest.raises(DatasetError, match=r"split into train/ but has no test/ folder"):
            load_dataset("folder", "test", root=tmp_path, size=(2, 2))

    def test_unsplit_folder_serves_both_splits(self, tmp_path: Path) -> None:
        _tree(tmp_path, {"a": [RED], "b": [BLUE]})
        for split in ("train", "test"):
            ds = load_dataset("folder", split, root=tmp_path, size=(2, 2))
            assert ds.class_names == ["a", "b"] and ds.labels.tolist() == [0, 1]


class TestEmptySplits:
    """A split without samples is refused when it is loaded, naming the split."""

    def test_test_folder_without_class_folders(self, tmp_path: Path) -> None:
        _tree(tmp_path / "train", {"a": [RED]})
        (tmp_path / "test").mkdir()
        with pytest.raises(DatasetError, match=r"'test' split: .*test has no class sub-folders"):
            load_dataset("folder", "test", root=tmp_path)

    def test_test_class_folder_without_images(self, tmp_path: Path) -> None:
        _tree(tmp_path / "train", {"a": [RED]})
        (tmp_path / "test" / "a").mkdir(parents=True)
        (tmp_path / "test" / "a" / "README.txt").write_text("no images here")
        with pytest.raises(
            DatasetError, match=r"'test' split: class folder .*a contains no images"
        ):
            load_dataset("folder", "test", root=tmp_path)

    def test_mnist_split_with_zero_images(self, tmp_path: Path, files) -> None:
        files.write_mnist_split(tmp_path, "test", *files.random_mnist(0, 0))
        with pytest.raises(DatasetError, match=r"MNIST 'test' split .* holds no images"):
            load_mnist(tmp_path, "test")
        with pytest.raises(DatasetError, match=r"'test' split .* holds no images"):
            load_dataset("mnist", "test", root=tmp_path)

    def test_cifar_split_with_zero_images(self, tmp_path: Path, files) -> None:
        files.write_cifar_python(tmp_path)
        empty = {b"data": np.zeros((0, 3072), np.uint8), b"labels": []}
        (tmp_path / "test_batch").write_bytes(pickle.dumps(empty, protocol=2))
        with pytest.raises(DatasetError, match=r"CIFAR-10 'test' split .* holds no images"):
            load_cifar10(tmp_path, "test")

    def test_data_set_cut_to_zero_samples(self) -> None:
        images, labels = (
            torch.zeros(3, 1, 2, 2, dtype=torch.uint8),
            torch.zeros(3, dtype=torch.long),
        )
        ds = ImageDataset(images, labels, 1, ["a"], "toy")
        with pytest.raises(DatasetError, match="toy: the data set holds no samples"):
            ImageDataset(images[:0], labels[:0], 1, ["a"], "toy")
        with pytest.raises(DatasetError, match=r"limit must be >= 1 .*toy"):
            make_loader(ds, batch_size=2, limit=0)


def _png16(path: Path, values: list[int], mode: str) -> Path:
    """A 1-row 16-bit grey PNG written by Pillow from a ``mode`` image."""
    array = np.asarray([values], dtype=">u2" if mode == "I;16B" else "<u2")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes(mode, (len(values), 1), array.tobytes()).save(path)
    return path


class TestSixteenBitImages:
    VALUES = [0, 128, 129, 257, 1000, 30000, 32767, 32768, 65534, 65535]

    @pytest.mark.parametrize("mode", ["I;16", "I;16B"])
    @pytest.mark.parametrize("channels", [1, 3])
    def test_scaled_not_clipped(self, tmp_path: Path, mode: str, channels: int) -> None:
        path = _png16(tmp_path / "r" / "c" / "a.png", self.VALUES, mode)
        with Image.open(path) as check:
            assert check.mode.startswith("I")  # really a 16-bit file
        images, _, _ = load_image_folder(
            tmp_path / "r", size=(1, len(self.VALUES)), channels=channels
        )
        expected = [round(v * 255 / 65535) for v in self.VALUES]
        assert images.shape == (1, channels, 1, len(self.VALUES))
        for c in range(channels):
            assert images[0, c, 0].tolist() == expected  # 30000 was clipped to 255

    def test_mixed_with_eight_bit_images(self, tmp_path: Path) -> None:
        _png16(tmp_path / "r" / "a" / "deep.png", [65535, 0], "I;16")
        _image(tmp_path / "r" / "a" / "flat.png", (10, 20, 30), size=(2, 1))
        images, _, _ = load_image_folder(tmp_path / "r", size=(1, 2), channels=3)
        assert images[0, :, 0, 0].tolist() == [255, 255, 255]
        assert images[1, :, 0, 0].tolist() == [10, 20, 30]

    def test_thirty_two_bit_pixels_out_of_range(self, tmp_path: Path) -> None:
        image = Image.frombytes("I", (2, 1), np.asarray([0, 70000], "<i4").tobytes())
        with pytest.raises(DatasetError, match=r"x\.png: 32-bit integer pixels in 0\.\.70000"):
            image_folder_module._to_eight_bit(image, Path("x.png"))

    def test_float_pixels_are_refused(self) -> None:
        with pytest.raises(DatasetError, match=r"unsupported pixel mode 'F'"):
            image_folder_module._to_eight_bit(Image.new("F", (2, 2)), Path("f.png"))


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1000)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


class TestImageFiles:
    def test_mixed_sizes_and_modes_are_converted(self, tmp_path: Path) -> None:
        root = tmp_path / "r"
        _image(root / "a" / "1.png", (255, 0, 0, 0), size=(7, 3), mode="RGBA")  # alpha dropped
        _image(root / "a" / "2.png", 200, size=(3, 9), mode="L")
        _image(root / "a" / "3.png", 1, size=(5, 5), mode="1")
        _image(root / "a" / "4.png", 0, size=(2, 2), mode="P")  # palette entry 0 is black
        _image(root / "a" / "5.png", (90, 255), size=(4, 4), mode="LA")
        _image(root / "a" / "6.bmp", (1, 2, 3), size=(9, 1))
        images, _, _ = load_image_folder(root, size=(3, 3), channels=3)
        assert images.shape == (6, 3, 3, 3)
        firsts = [images[i, :, 0, 0].tolist() for i in range(6)]
        assert firsts == [[255, 0, 0], [200] * 3, [255] * 3, [0] * 3, [90] * 3, [1, 2, 3]]

    def test_non_image_extension_is_ignored(self, tmp_path: Path) -> None:
        _tree(tmp_path / "r", {"a": [RED]})
        (tmp_path / "r" / "a" / "labels.csv").write_text("x,y\n")
        (tmp_path / "r" / "a" / "sub.png").mkdir()  # a folder named like an image: ignored
        assert load_image_folder(tmp_path / "r", size=(2, 2))[0].shape[0] == 1

    @pytest.mark.parametrize(
        "content", [b"", b"%PDF-1.4 not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40]
    )
    def test_undecodable_image_file(self, tmp_path: Path, content: bytes) -> None:
        _tree(tmp_path / "r", {"a": [RED]})
        bad = tmp_path / "r" / "a" / "z.png"
        bad.write_bytes(content)
        with pytest.raises(DatasetError, match=rf"{re.escape(str(bad))}: cannot decode image"):
            load_image_folder(tmp_path / "r")

    def test_image_symlink_loop(self, tmp_path: Path) -> None:
        _tree(tmp_path / "r", {"a": [RED]})
        loop = tmp_path / "r" / "a" / "loop.png"
        os.symlink(loop, loop)
        with pytest.raises(DatasetError, match=rf"{re.escape(str(loop))}: not a regular .*loop"):
            load_image_folder(tmp_path / "r")

    def test_dangling_image_symlink(self, tmp_path: Path) -> None:
        _tree(tmp_path / "r", {"a": [RED]})
        os.symlink(tmp_path / "gone.png", tmp_path / "r" / "a" / "gone.png")
        with pytest.raises(DatasetError, match=r"gone\.png: not a regular file"):
            load_image_folder(tmp_path / "r")

    def test_fifo_named_like_an_image(self, tmp_path: Path) -> None:
        _tree(tmp_path / "r", {"a": [RED]})
        os.mkfifo(tmp_path / "r" / "a" / "pipe.png")
        outcome = _fails_within(lambda: load_image_folder(tmp_path / "r"), 10)
        assert isinstance(outcome.get("error"), DatasetError), outcome
        assert "pipe.png: not a regular file" in str(outcome["error"])

    def test_class_folder_symlink_loop_does_not_shift_labels(self, tmp_path: Path) -> None:
        # a, b (a symlink loop), c: silently skipping b would give c the label 1 instead of 2
        _tree(tmp_path / "r", {"a": [RED], "c": [BLUE]})
        os.symlink(tmp_path / "r" / "b", tmp_path / "r" / "b")
        with pytest.raises(DatasetError, match=r"r/b: neither a class folder nor a file"):
            load_image_folder(tmp_path / "r")

    def test_class_folder_linking_to_its_parent(self, tmp_path: Path) -> None:
        _tree(tmp_path / "r", {"a": [RED]})
        os.symlink(tmp_path / "r", tmp_path / "r" / "up")
        outcome = _fails_within(lambda: load_image_folder(tmp_path / "r"), 10)
        assert isinstance(outcome.get("error"), DatasetError), outcome
        assert "up contains no images" in str(outcome["error"])

    def test_decompression_bomb_header(self, tmp_path: Path) -> None:
        bomb = _bomb_png(tmp_path / "r" / "a" / "bomb.png", 50_000, 50_000)
        start = time.perf_counter()
        with pytest.raises(DatasetError, match=rf"{re.escape(str(bomb))}: .*decompression bomb"):
            load_image_folder(tmp_path / "r")
        assert time.perf_counter() - start < 2

    def test_pixel_cap_holds_when_pillow_limit_is_off(self, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
        bomb = _bomb_png(tmp_path / "r" / "a" / "bomb.png", 10_000, 10_000)
        with pytest.raises(DatasetError, match=rf"{re.escape(str(bomb))}: 10000 x 10000 image"):
            load_image_folder(tmp_path / "r")


# ================================================================ CIFAR-10 batches


def _test_batch(root: Path, files, batch: object, protocol: int = 2) -> Path:
    files.write_cifar_python(root)
    path = root / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    return path


_DATA2 = np.zeros((2, 3072), np.uint8)


class TestCifarLabels:
    @pytest.mark.parametrize(
        ("labels", "found"),
        [
            ([0, 2**70], "found 1180591620717411303424 at index 1"),
            ([-(2**70), 0], "found -1180591620717411303424 at index 0"),
            ([0, 10**5000], "found an integer of 16610 bits at index 1"),
            ([10, 0], "found 10 at index 0"),
            (np.array([2**63 + 5, 0], np.uint64), "found 9223372036854775813 at index 0"),
            (np.array([3, -4], np.int8), "found -4 at index 1"),
        ],
        ids=["2^70", "-2^70", "10^5000", "10", "uint64", "int8"],
    )
    def test_out_of_range(self, tmp_path: Path, files, labels, found: str) -> None:
        path = _test_batch(tmp_path, files, {b"data": _DATA2, b"labels": labels})
        with pytest.raises(DatasetError, match=r"labels must be in 0\.\.9") as info:
            load_cifar10(tmp_path, "test")
        assert found in str(info.value) and str(path) in str(info.value)

    @pytest.mark.parametrize(
        ("labels", "found"),
        [
            ([True, False], "found bool at index 0"),
            ([0, 1.0], "found float at index 1"),
            ([0, None], "found NoneType at index 1"),
            ((0, 1), "found tuple"),
            ({0: 0, 1: 1}, "found dict"),
            (b"\x00\x01", "found bytes"),
            (np.array([0.0, 1.0]), "found a float64 array of shape (2,)"),
            (np.array([[0, 1]]), "found a int64 array of shape (1, 2)"),
            (np.array([True, False]), "found a bool array"),
        ],
        ids=["bool", "float", "none", "tuple", "dict", "bytes", "floats", "2-d", "bools"],
    )
    def test_wrong_types(self, tmp_path: Path, files, labels, found: str) -> None:
        _test_batch(tmp_path, files, {b"data": _DATA2, b"labels": labels})
        with pytest.raises(DatasetError, match=r"'labels' must be a list") as info:
            load_cifar10(tmp_path, "test")
        assert found in str(info.value)

    def test_integer_array_labels_are_accepted(self, tmp_path: Path, files) -> None:
        _test_batch(tmp_path, files, {b"data": _DATA2, b"labels": np.array([9, 0], np.uint8)})
        assert load_cifar10(tmp_path, "test")[1].tolist() == [9, 0]


class TestCifarArrays:
    @pytest.mark.parametrize(
        ("data", "found"),
        [
            (np.zeros(3072, np.uint8), "uint8 (3072,)"),
            (np.zeros((2, 3, 1024), np.uint8), "uint8 (2, 3, 1024)"),
            (np.zeros((2, 3073), np.uint8), "uint8 (2, 3073)"),
            (np.zeros((2, 3072), np.float32), "float32 (2, 3072)"),
            (np.zeros((2, 3072), bool), "bool (2, 3072)"),
            (b"\x00" * 6144, "found bytes"),
            (None, "found NoneType"),
        ],
        ids=["1-d", "3-d", "3073", "float32", "bool", "bytes", "none"],
    )
    def test_wrong_data(self, tmp_path: Path, files, data, found: str) -> None:
        path = _test_batch(tmp_path, files, {b"data": data, b"labels": [0, 1]})
        with pytest.raises(DatasetError, match=r"'data' must be a uint8 N x 3072 array") as info:
            load_cifar10(tmp_path, "test")
        assert found in str(info.value) and str(path) in str(info.value)

    @pytest.mark.parametrize("batch", [{b"labels": [0]}, {"data": _DATA2}, {}])
    def test_missing_keys(self, tmp_path: Path, files, batch) -> None:
        _test_batch(tmp_path, files, batch)
        with pytest.raises(DatasetError, match=r"batch has no '(data|labels)' entry"):
            load_cifar10(tmp_path, "test")

    def test_str_keys_are_accepted(self, tmp_path: Path, files) -> None:
        _test_batch(tmp_path, files, {"data": _DATA2, "labels": [4, 5]}, protocol=4)
        assert load_cifar10(tmp_path, "test")[1].tolist() == [4, 5]

    def test_hostile_keys_are_reported_briefly(self, tmp_path: Path, files) -> None:
        files.write_cifar_python(tmp_path)
        deep = b")" + b"\x85" * 60  # a key nested 60 tuples deep (within the limit)
        long = _unicode("k" * 10**5)  # a 100 kB key
        ints = b"".join(b"K" + bytes([i]) + b"K\x00" for i in range(30))  # 30 more keys
        data = b"\x80\x02}(" + deep + b"K\x01" + long + b"K\x02" + ints + b"u."
        (tmp_path / "test_batch").write_bytes(data)
        with pytest.raises(DatasetError, match=r"batch has no 'data' entry") as info:
            load_cifar10(tmp_path, "test")
        assert "and 12 more" in str(info.value) and len(str(info.value)) < 1000

    def test_binary_batch_too_large(self, tmp_path: Path, files) -> None:
        files.write_cifar_binary(tmp_path)
        with open(tmp_path / "test_batch.bin", "wb") as handle:  # sparse: costs no disk
            handle.truncate(3073 * 350_000)
        tracemalloc.start()
        try:
            with pytest.raises(
                DatasetError, match=r"test_batch\.bin: 1075550000 bytes is too large"
            ):
                load_cifar10(tmp_path, "test")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20


class TestCifarClassNames:
    def _meta(self, root: Path, names: object) -> Path:
        path = root / "batches.meta"
        path.write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
        return path

    def test_names_not_utf8(self, tmp_path: Path, files) -> None:
        names = [n.encode() for n in files.CLASSES]
        names[3] = b"c\xe4t"  # latin-1, not UTF-8
        path = self._meta(tmp_path, names)
        with pytest.raises(DatasetError, match=r"label name 3 .* is not valid UTF-8") as info:
            cifar10_class_names(tmp_path)
        assert str(path) in str(info.value)

    def test_names_text_not_utf8(self, tmp_path: Path, files) -> None:
        text = "\n".join(files.CLASSES).encode().replace(b"cat", b"c\xe4t")
        (tmp_path / "batches.meta.txt").write_bytes(text)
        with pytest.raises(DatasetError, match=r"batches\.meta\.txt: class names must be UTF-8"):
            cifar10_class_names(tmp_path)

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda n: n[:9] + [n[0]], "appears more than once"),
            (lambda n: n[:9] + [b"   "], "class name 9 .* is empty"),
            (lambda n: n[:9] + [b"tab\there"], "class name 9 .* control characters"),
            (lambda n: n[:9], "expected 10 class names, found 9"),
            (lambda n: n[:9] + [7], "must be a list of 10 names"),
            (lambda n: "airplane", "must be a list of 10 names"),
        ],
        ids=["duplicate", "blank", "control", "nine", "int", "str"],
    )
    def test_invalid_names(self, tmp_path: Path, files, mutate, message: str) -> None:
        self._meta(tmp_path, mutate([n.encode() for n in files.CLASSES]))
        with pytest.raises(DatasetError, match=message):
            cifar10_class_names(tmp_path)

    def test_meta_without_names(self, tmp_path: Path) -> None:
        (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"num_vis": 3072}, protocol=2))
        with pytest.raises(DatasetError, match=r"no 'label_names' entry"):
            cifar10_class_names(tmp_path)


class _Reduce:
    """Pickles as ``func(*args)`` then, with a state, BUILD: how a forged file is written."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]
_U1 = np.dtype("u1")
# A dtype state claiming a 3072-byte sub-array in a 1-byte item: numpy then builds an N x 3072
# uint8 array over N bytes, and reading it leaks (or segfaults on) the memory past the buffer.
_SUBARRAY_STATE = (3, "|", (_U1, (3072,)), None, None, 1, 1, 0)


def _forged_array(kind: str, n: int = 4):
    if kind == "void-subarray":
        dtype = _Reduce(np.dtype, ("V1", False, True), _SUBARRAY_STATE)
        return _Reduce(_FROMBUFFER, (b"\x00" * n, dtype, (n, 3072), "C"))
    if kind == "u1-subarray":
        dtype = _Reduce(np.dtype, ("u1", False, True), _SUBARRAY_STATE)
        return _Reduce(_FROMBUFFER, (b"\x00" * n, dtype, (n, 3072), "C"))
    if kind == "u1-subarray-build":
        dtype = _Reduce(np.dtype, ("u1", False, True), _SUBARRAY_STATE)
        state = (1, (n, 3072), dtype, False, b"\x00" * n)
        return _Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), state)
    if kind == "forged-itemsize":
        dtype = _Reduce(np.dtype, ("u1", False, True), (3, "|", None, None, None, 3072, 1, 0))
        return _Reduce(_FROMBUFFER, (b"\x00" * n, dtype, (n,), "C"))
    if kind == "object-flags":
        dtype = _Reduce(np.dtype, ("u8", False, True), (3, "<", None, None, None, -1, -1, 0x3F))
        return _Reduce(_FROMBUFFER, (b"\x00" * 8 * n, dtype, (n,), "C"))
    if kind == "short-buffer":
        return _Reduce(_FROMBUFFER, (b"\x00" * n, _U1, (n, 3072), "C"))
    if kind == "short-raw-data":
        return _Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (n, 3072), _U1, False, b"x"))
    if kind == "object-raw-data":
        state = (1, (2,), np.dtype("i8"), False, [1, 2])
        return _Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), state)
    raise AssertionError(kind)


class TestRestrictedUnpickler:
    @pytest.mark.parametrize(
        "kind",
        [
            "void-subarray",
            "u1-subarray",
            "u1-subarray-build",
            "forged-itemsize",
            "object-flags",
            "short-buffer",
            "short-raw-data",
            "object-raw-data",
        ],
    )
    def test_forged_arrays_never_reach_past_their_bytes(self, tmp_path: Path, files, kind) -> None:
        path = _test_batch(tmp_path, files, {b"data": _forged_array(kind), b"labels": [0] * 4}, 5)
        with pytest.raises(DatasetError) as info:
            load_cifar10(tmp_path, "test")
        assert str(path) in str(info.value)

    @pytest.mark.parametrize("order", ["build, use, build", "use, build"])
    def test_a_dtype_is_built_once_and_before_use(self, tmp_path: Path, order: str) -> None:
        # BUILD on a dtype already backing an array would change the array's layout in place
        dtype_u1 = b"cnumpy\ndtype\n" + _unicode("u1") + b"\x89\x88\x87Rq\x01"  # memo 1
        state = b"(K\x03" + _unicode("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
        use = (  # numpy._core.numeric._frombuffer(b"\0" * 4, <memo 1>, (4,), "C"), popped
            b"cnumpy._core.numeric\n_frombuffer\n(C\x04\x00\x00\x00\x00h\x01K\x04\x85"
            + _unicode("C")
            + b"tR0"
        )
        first = state + b"b" if order == "build, use, build" else b""
        data = b"\x80\x02" + dtype_u1 + first + use + b"h\x01" + state + b"b."
        prefix = data[: data.index(b"h\x01" + state + b"b.")] + b"."
        assert safe_load_pickle(_write(tmp_path / "ok", prefix)) == np.dtype("u1")  # control
        with pytest.raises(
            DatasetError, match="only a numpy dtype or array the pickle just created"
        ):
            safe_load_pickle(_write(tmp_path / "twice", data))

    @pytest.mark.parametrize(
        "data",
        [
            b"\x80\x02}(K\x01K\x02u}b.",  # BUILD on a dict
            b"\x80\x02cnumpy\nndarray\n}b.",  # BUILD on the ndarray token
            b"\x80\x02cnumpy\ndtype\nN}\x86b.",  # BUILD with slot state on an allowed function
        ],
        ids=["dict", "token", "function"],
    )
    def test_build_on_anything_else_is_refused(self, tmp_path: Path, data: bytes) -> None:
        with pytest.raises(DatasetError, match="set the state of"):
            safe_load_pickle(_write(tmp_path / "p", data))

    def test_memo_index_does_not_allocate(self, tmp_path: Path) -> None:
        # the C unpickler grows its memo table to the largest index: 7 bytes asking for GBs
        path = _write(tmp_path / "memo", b"\x80\x02Nr" + struct.pack("<I", 20_000_000) + b".")
        tracemalloc.start()
        try:
            assert safe_load_pickle(path) is None
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 10 << 20, f"{peak} bytes for a 7-byte pickle"

    @pytest.mark.parametrize("depth", [65, 1_000_000])
    def test_deeply_nested_tuple_key(self, tmp_path: Path, depth: int) -> None:
        # hashing a dict key nested a million deep overflowed the C stack (a segfault)
        path = _write(tmp_path / "deep", b"\x80\x02})" + b"\x85" * depth + b"K\x01s.")
        with pytest.raises(DatasetError, match="nests tuples more than 64 levels"):
            safe_load_pickle(path)

    def test_text_integer_beyond_the_digit_limit(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "int", b"I" + b"9" * 5000 + b"\n.")
        with pytest.raises(DatasetError, match="not a valid pickle: ValueError"):
            safe_load_pickle(path)

    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        array=hnp.arrays(
            dtype=st.sampled_from(
                ["u1", "i1", "<i2", ">i4", "<i8", ">u8", "<f4", ">f8", "?", "<c8", "S3", "<U2"]
            ).map(np.dtype),
            shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        fortran=st.booleans(),
        protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
    )
    def test_plain_arrays_round_trip(self, array: np.ndarray, fortran: bool, protocol: int) -> None:
        array = np.asfortranarray(array) if fortran else array
        blob = pickle.dumps({"a": array}, protocol)
        with tempfile.TemporaryDirectory() as tmp:
            out = safe_load_pickle(_write(Path(tmp) / "a", blob))["a"]
        reference = pickle.loads(blob)["a"]  # what the unrestricted unpickler gives
        assert out.dtype == reference.dtype and out.shape == array.shape
        np.testing.assert_array_equal(out, array)

    @_FUZZ
    @given(data=st.data())
    def test_random_and_mutated_pickles_only_raise_dataset_error(self, data) -> None:
        valid = pickle.dumps(
            {b"data": _DATA2, b"labels": [1, 2]}, protocol=data.draw(st.sampled_from([2, 5]))
        )
        mode = data.draw(st.sampled_from(["random", "prefixed", "mutated"]), label="mode")
        if mode == "mutated":
            blob = bytearray(valid)
            for _ in range(data.draw(st.integers(1, 4))):
                blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
            blob = bytes(blob)
        else:
            blob = data.draw(st.binary(max_size=200), label="bytes")
            blob = (valid[:2] + blob) if mode == "prefixed" else blob
        with tempfile.TemporaryDirectory() as tmp:
            path = _write(Path(tmp) / "test_batch", blob)
            try:
                images, labels = _read_python_batch(path)
            except DatasetError:
                return
        assert images.shape[1] == 3072 and len(images) == len(labels)
        assert ((labels >= 0) & (labels <= 9)).all()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _unicode(text: str) -> bytes:
    """The BINUNICODE opcode pushing ``text``."""
    return b"X" + struct.pack("<I", len(text)) + text.encode()


# ================================================================ IDX files


class TestIdxFiles:
    def test_truncated_body(self, tmp_path: Path, files) -> None:
        full = files.idx_bytes(np.zeros((3, 28, 28), np.uint8))
        path = _write(tmp_path / "t.idx", full[: len(full) // 2])
        with pytest.raises(DatasetError, match=r"truncated IDX file: .*\(2352 payload bytes\)"):
            read_idx(path)

    @pytest.mark.parametrize("gz", [False, True])
    def test_huge_header_is_checked_against_the_file_size(self, tmp_path: Path, files, gz) -> None:
        header = bytes([0, 0, 0x0D, 3]) + np.asarray([60000, 4096, 4096], ">u4").tobytes()
        path = files.write_bytes(tmp_path / "h.idx", header + b"\x00" * 100, gz)
        tracemalloc.start()
        try:
            with pytest.raises(DatasetError, match=re.escape(str(path))):
                read_idx(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20

    @pytest.mark.parametrize("magic", [b"\x1f\x8c\x08\x01", b"\x01\x00\x08\x01", b"PK\x03\x04"])
    def test_wrong_magic(self, tmp_path: Path, magic: bytes) -> None:
        path = _write(tmp_path / "m.idx", magic + b"\x00\x00\x00\x01\x00")
        with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: not an IDX file: magic"):
            read_idx(path)

    def test_label_count_differs_from_image_count(self, tmp_path: Path, files) -> None:
        images, labels = files.random_mnist(4, 0)
        files.write_mnist_split(tmp_path, "test", images, np.concatenate([labels, labels]))
        with pytest.raises(DatasetError, match=r"4 images in .* but 8 labels in"):
            load_mnist(tmp_path, "test")

    def test_fifo(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "pipe.idx")
        outcome = _fails_within(lambda: read_idx(tmp_path / "pipe.idx"), 10)
        assert isinstance(outcome.get("error"), DatasetError), outcome
        assert "not a regular file" in str(outcome["error"])

    def test_directory_and_symlink_loop(self, tmp_path: Path) -> None:
        (tmp_path / "dir.idx").mkdir()
        os.symlink(tmp_path / "loop.idx", tmp_path / "loop.idx")
        with pytest.raises(DatasetError, match="not a regular file"):
            read_idx(tmp_path / "dir.idx")
        with pytest.raises(DatasetError, match="loop.idx: cannot read IDX file"):
            read_idx(tmp_path / "loop.idx")

    @_FUZZ
    @given(
        blob=st.binary(max_size=80), kind=st.sampled_from(["raw", "gzip", "gzip-magic", "header"])
    )
    def test_random_bytes_only_raise_dataset_error(self, blob: bytes, kind: str) -> None:
        if kind == "gzip":
            blob = gzip.compress(blob)
        elif kind == "gzip-magic":
            blob = b"\x1f\x8b" + blob
        elif kind == "header":
            blob = bytes([0, 0, 0x08, 1 + len(blob) % 4]) + blob
        with tempfile.TemporaryDirectory() as tmp:
            path = _write(Path(tmp) / "r.idx", blob)
            try:
                out = read_idx(path)
            except DatasetError:
                return
        assert out.nbytes + 4 + 4 * out.ndim <= len(blob) * 1032


# ================================================================ data set and loader


class TestImageDataset:
    def _tensors(self, labels):
        return torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8), torch.tensor(labels)

    @pytest.mark.parametrize("labels", [[0, 2], [-1, 0]])
    def test_label_outside_the_classes(self, labels) -> None:
        with pytest.raises(DatasetError, match=r"toy: label -?\d at index \d is outside 0\.\.1"):
            ImageDataset(*self._tensors(labels), 2, ["a", "b"], "toy")

    def test_class_count_mismatch(self) -> None:
        with pytest.raises(DatasetError, match="num_classes 3 does not match the 2 class names"):
            ImageDataset(*self._tensors([0, 1]), 3, ["a", "b"], "toy")
