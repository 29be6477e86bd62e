"""CPU smoke test of benchmarks/gpu_cifar10.py (the prepared full-CIFAR-10 GPU run) and
benchmarks/gpu_data.py (its chunked data).

A tiny synthetic CIFAR-like set goes through ``pack`` (several checksummed chunks),
``check`` and the whole ``run`` pipeline (1 epoch, a narrow VGG-16, clocked on 16 images)
on the CPU; ``run`` must refuse a pack with a missing or corrupted chunk.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def gc10():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("gpu_cifar10")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def gdata(gc10):
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("gpu_data")
    finally:
        sys.path.remove(str(BENCH))


def _fake_cifar(split: str, n: int):
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    labels = torch.randint(0, 10, (n,), generator=g)
    # class-dependent colour plus noise: a little to learn
    base = (labels.view(-1, 1, 1, 1).float() * 25 + torch.tensor([0.0, 60, 120]).view(1, 3, 1, 1))
    noise = torch.randint(0, 90, (n, 3, 32, 32), generator=g).float()
    images = ((base + noise) % 256).to(torch.uint8)
    return SimpleNamespace(images=images, labels=labels)


@pytest.fixture(scope="module")
def packed(gc10, tmp_path_factory):
    import tdsnn.data

    folder = tmp_path_factory.mktemp("pack")
    original = tdsnn.data.load_dataset
    tdsnn.data.load_dataset = lambda name, split, root=None: _fake_cifar(
        split, {"train": 300, "test": 150}[split]
    )
    try:
        # 0.5 MiB chunks: the 256 training images (786 KB) take two
        rc = gc10.main(["pack", "--out", str(folder), "--train-limit", "256",
                        "--test-limit", "128", "--chunk-mib", "0.5", "--preset", "0"])  # fmt: skip
    finally:
        tdsnn.data.load_dataset = original
    assert rc == 0
    return folder


def test_pack_writes_checksummed_chunks(gdata, packed):
    manifest = json.loads((packed / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 256, "test": 128}
    files = [c["file"] for c in manifest["chunks"]]
    assert len([f for f in files if f.startswith("train_")]) >= 2
    assert (packed / ".gitignore").read_text().strip().endswith("*")
    for chunk in manifest["chunks"]:
        assert (packed / chunk["file"]).stat().st_size == chunk["bytes"] <= 0.5 * 2**20
    data, _ = gdata.load_chunks([packed])
    want = _fake_cifar("train", 300)
    assert torch.equal(data["train"][0], want.images[:256])
    assert torch.equal(data["train"][1], want.labels[:256])
    assert data["test"][0].shape == (128, 3, 32, 32)


def test_run_end_to_end_on_cpu(gc10, packed, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "out"
    rc = gc10.main([
        "run", "--data", str(packed), "--out", str(out), "--device", "cpu", "--threads", "1",
        "--epochs", "1", "--batch", "64", "--finetune-epochs", "1", "--clocked", "16",
        "--width", "0.125", "--calibrate", "128", "--eval-batch", "64",
    ])  # fmt: skip
    assert rc == 0
    report = json.loads((out / "gpu_cifar10_vgg16_paper.json").read_text())
    assert report["complete"] is True
    for key in ("device", "torch", "settings", "wall_s", "data", "dnn", "precision",
                "activation_scales", "dnn_ops_per_image", "closed_form", "clocked", "summary"):
        assert key in report, key  # fmt: skip
    for stage in ("load_data", "train_dnn", "prepare", "finetune", "convert",
                  "evaluate_closed_form", "evaluate_clocked", "total"):
        assert report["wall_s"][stage] >= 0, stage  # fmt: skip
    assert report["settings"]["epochs"] == 1 and report["settings"]["coding"] == "paper"
    s = report["summary"]
    assert s["test_images"] == 128 and s["clocked_images"] == 16
    assert s["closed_form_agree"] == 128 and s["closed_form_disagreements"] == 0
    assert s["clocked_agree"] == 16 and s["clocked_disagreements"] == 0
    assert s["latency_max"] >= s["latency_mean"] > 0
    assert s["dnn_ops_per_image"]["mul"] > 0
    assert set(s["snn_ops_per_image"]) == {"presentation", "own", "hardware"}
    assert s["precision"] == "certified"
    for key in ("dnn_top1", "gdnn_top1", "snn_closed_form_top1", "snn_clocked_top1"):
        assert 0 <= s[key] <= 1
    assert s["snn_closed_form_top1"] == s["gdnn_top1"]


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_run_refuses_missing_or_corrupted_chunks(gc10, packed, tmp_path, capsys):
    broken = _copy(packed, tmp_path / "broken")
    (broken / "train_1.npz.xz").unlink()
    test_chunk = broken / "test_0.npz.xz"
    blob = bytearray(test_chunk.read_bytes())
    blob[100] ^= 0xFF
    test_chunk.write_bytes(bytes(blob))
    out = tmp_path / "out"
    rc = gc10.main(["run", "--data", str(broken), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "refusing to run" in err and "missing chunks: train_1.npz.xz" in err
    assert "corrupted" in err and "test_0.npz.xz" in err
    assert not out.exists()
    # check names them too, and a missing manifest is refused
    assert gc10.main(["check", "--data", str(broken), "--strict"]) == 1
    assert "INCOMPLETE" in capsys.readouterr().out
    (broken / "manifest.json").unlink()
    assert gc10.main(["run", "--data", str(broken), "--out", str(out), "--device", "cpu"]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_chunks_may_be_spread_over_folders(gc10, gdata, packed, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for f in packed.iterdir():
        target = a if f.name.startswith("train_0") or f.name == "manifest.json" else b
        (target / f.name).write_bytes(f.read_bytes())
    state = gdata.inspect_chunks([a, b])
    assert not state["missing"] and not state["corrupt"]
    assert gc10.main(["check", "--data", str(a), str(b), "--strict"]) == 0
    assert gdata.inspect_chunks([a])["missing"]


def test_augment_is_a_per_image_flip_and_crop(gc10):
    torch.manual_seed(0)
    x = torch.randint(1, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = gc10.augment_u8(x)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for n in range(len(x)):
        crops = [padded[n, :, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
        assert any(torch.equal(out[n], c) or torch.equal(out[n], c.flip(2)) for c in crops)
