"""Checkpoints: round trips, atomic writes, integrity checks, exact resume, safe .pt loading."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tdsnn.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    load_metadata,
    load_state_dict_file,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
    save_training_state,
    sidecar_path,
)

METADATA = {
    "architecture": "lenet5",
    "arch_kwargs": {"num_classes": 10, "in_channels": 1},
    "L": 5,
    "dataset": "mnist",
    "normalization": {"mean": [0.1307], "std": [0.3081]},
    "metrics": {"test_acc": 0.9912, "loss": 0.0301},
    "epoch": 12,
}


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "0.weight": torch.randn(4, 3, 3, 3, generator=g),
        "0.bias": torch.randn(4, generator=g),
        "1.running_mean": torch.randn(4, generator=g, dtype=torch.float64),
        "1.num_batches_tracked": torch.tensor(7),
        "2.weight": torch.randn(5, 4, generator=g).t(),  # non-contiguous
        "mask": torch.tensor([True, False]),
    }


def assert_states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


def listing(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# ----------------------------------------------------------------- round trip


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "model.safetensors"
    state = small_state()
    save_checkpoint(path, state, METADATA)
    assert listing(path.parent) == {"model.safetensors", "model.json"}
    loaded, meta = load_checkpoint(path)
    assert_states_equal(loaded, state)
    assert meta == METADATA
    # the sidecar path works as well, and metadata can be read alone
    assert_states_equal(load_checkpoint(sidecar_path(path))[0], state)
    assert load_metadata(path) == METADATA
    doc = json.loads(path.with_suffix(".json").read_text())
    assert doc["tensors_file"] == "model.safetensors" and len(doc["sha256"]) == 64


def test_shared_and_view_tensors_are_saved(tmp_path: Path) -> None:
    base = torch.arange(12.0)
    state = {"a": base, "tied": base, "half": base[:6], "strided": base.view(3, 4)[:, 1]}
    save_checkpoint(tmp_path / "m.safetensors", state, {})
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert_states_equal(loaded, {k: v.contiguous() for k, v in state.items()})


def test_bad_inputs_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    with pytest.raises(CheckpointError, match="JSON-serialisable"):
        save_checkpoint(path, small_state(), {"bad": object()})
    with pytest.raises(CheckpointError, match="not a torch.Tensor"):
        save_checkpoint(path, {"w": [1, 2]}, {})  # type: ignore[dict-item]
    with pytest.raises(CheckpointError, match="reserved prefix"):
        save_checkpoint(path, {"optim/x": torch.zeros(1)}, {})
    with pytest.raises(CheckpointError, match=r"\.json"):
        save_checkpoint(tmp_path / "m.json", small_state(), {})
    assert listing(tmp_path) == set()


# ----------------------------------------------------------------- atomicity


@pytest.mark.parametrize("fail_on", [".safetensors", ".json"])
def test_crash_during_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    path = tmp_path / "model.safetensors"
    old = small_state(0)
    save_checkpoint(path, old, {"epoch": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    real_replace = os.replace
    calls: list[tuple[str, str]] = []

    def crashing_replace(src, dst):  # type: ignore[no-untyped-def]
        calls.append((str(src), str(dst)))
        if str(dst).endswith(fail_on):
            assert Path(src).is_file() and Path(src).stat().st_size > 0  # temp file was written
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(CheckpointError, match="simulated crash"):  # an OSError, reported cleanly
        save_checkpoint(path, small_state(1), {"epoch": 2})
    monkeypatch.setattr(os, "replace", real_replace)

    assert any(dst.endswith(fail_on) for _, dst in calls)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files left
    loaded, meta = load_checkpoint(path)
    assert_states_equal(loaded, old)
    assert meta == {"epoch": 1}


def test_failed_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace

    def fail_json(src, dst):  # type: ignore[no-untyped-def]
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_json)
    with pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint(tmp_path / "m.safetensors", small_state(), {})
    assert listing(tmp_path) == set()


def test_save_writes_tensors_before_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    targets: list[str] = []

    def spy(src, dst):  # type: ignore[no-untyped-def]
        targets.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save_checkpoint(tmp_path / "m.safetensors", small_state(), {})
    assert targets == ["m.safetensors", "m.json"]


# --------------------------------------------------------------- integrity checks


def test_sha_mismatch_detected(tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_checkpoint(a, small_state(0), {"which": "a"})
    save_checkpoint(b, small_state(1), {"which": "b"})
    # pair a's sidecar with b's tensors, as an interrupted overwrite would
    os.replace(b, a)
    with pytest.raises(CheckpointError, match="sha256 .* does not match"):
        load_checkpoint(a)


def test_missing_sidecar_or_tensors(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, small_state(), {})
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar .* is missing"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_invalid_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, small_state(), {})
    sidecar = path.with_suffix(".json")
    sidecar.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    sidecar.write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a tdsnn-checkpoint sidecar"):
        load_checkpoint(path)


def test_corrupted_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, small_state(), {})
    data = bytearray(path.read_bytes())
    data[:8] = (2**40).to_bytes(8, "little")  # absurd header length
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)
    # even with a sidecar whose hash matches the corrupted bytes, reading fails cleanly
    sidecar = path.with_suffix(".json")
    doc = json.loads(sidecar.read_text())
    doc["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="cannot read .* as safetensors"):
        load_checkpoint(path)


# ------------------------------------------------------------- training state


def make_training(seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


def train_steps(model, opt, sched, n: int) -> None:  # type: ignore[no-untyped-def]
    """Training whose data, dropout and lr all depend on RNG / optimizer / scheduler state."""
    model.train()
    for _ in range(n):
        x = torch.randn(8, 6) + random.random() + float(np.random.rand())
        y = torch.randint(0, 3, (8,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_training_state_resumes_identically(tmp_path: Path) -> None:
    path = tmp_path / "train.safetensors"
    model, opt, sched = make_training()
    random.seed(1)
    np.random.seed(2)
    train_steps(model, opt, sched, 3)
    save_training_state(path, model, opt, sched, epoch=1, step=3, metadata={"architecture": "x"})
    train_steps(model, opt, sched, 3)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    # scramble every RNG, then resume from a freshly built model
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    model2, opt2, sched2 = make_training(seed=99)
    info = load_training_state(path, model2, opt2, sched2)
    assert info["epoch"] == 1 and info["step"] == 3
    assert info["metadata"] == {"architecture": "x"}
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    assert sched2.last_epoch == 3
    train_steps(model2, opt2, sched2, 3)
    assert_states_equal(model2.state_dict(), reference)

    # the file is also an ordinary checkpoint holding just the model weights
    weights, meta = load_checkpoint(path)
    assert set(weights) == set(model.state_dict())
    assert meta == {"architecture": "x"}
    assert any(k.startswith("optim/") for k in load_file(str(path)))


def test_training_state_without_rng_restore_differs(tmp_path: Path) -> None:
    """Guard that the resume test above really depends on the RNG being restored."""
    path = tmp_path / "train.safetensors"
    model, opt, sched = make_training()
    train_steps(model, opt, sched, 2)
    save_training_state(path, model, opt, sched)
    train_steps(model, opt, sched, 2)
    model2, opt2, sched2 = make_training(seed=5)
    torch.manual_seed(77)
    load_training_state(path, model2, opt2, sched2, restore_rng=False)
    train_steps(model2, opt2, sched2, 2)
    assert not torch.equal(model2[0].weight, model[0].weight)


def test_weights_only_checkpoint_is_not_a_training_state(tmp_path: Path) -> None:
    model, opt, _ = make_training()
    save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), {})
    with pytest.raises(CheckpointError, match="not a training state"):
        load_training_state(tmp_path / "m.safetensors", model, opt)


def test_rng_state_capture_restore() -> None:
    state = capture_rng_state()
    assert state["torch"].dtype == torch.uint8
    a = (torch.rand(3), random.random(), np.random.rand())
    restore_rng_state(state)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


# --------------------------------------------------------------- bare .pt files


class Evil:
    """Pickles to a call that creates a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_load_pt_state_dict(tmp_path: Path) -> None:
    state = small_state()
    torch.save(state, tmp_path / "w.pt")
    assert_states_equal(load_state_dict_file(tmp_path / "w.pt"), state)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pth")
    assert_states_equal(load_state_dict_file(tmp_path / "wrapped.pth"), state)
    save_checkpoint(tmp_path / "c.safetensors", state, {})
    assert_states_equal(load_state_dict_file(tmp_path / "c.safetensors"), state)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_state_dict_file(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict_file(tmp_path / "missing.pt")


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_malicious_pickle_refused(tmp_path: Path, zipfile: bool) -> None:
    marker = tmp_path / "pwned"
    payload = {"weight": torch.zeros(2), "evil": Evil(marker)}
    path = tmp_path / "evil.pt"
    torch.save(payload, path, _use_new_zipfile_serialization=zipfile)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_state_dict_file(path)
    assert not marker.exists()
