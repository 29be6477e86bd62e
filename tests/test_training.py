"""The training loop: exact resumption, determinism, checkpoints, G-DNN fine-tuning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tdsnn
from tdsnn.checkpoint import load_training_state
from tdsnn.distributed import make_eval_loader, make_train_loader
from tdsnn.training import TrainingError, classify, train

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(dropout: bool = False, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 16),
        nn.ReLU(),
    ]
    if dropout:
        layers.append(nn.Dropout(0.3))
    layers.append(nn.Linear(16, 3))
    return nn.Sequential(*layers)


def tiny_data(n: int = 192, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative 1x8x8 images whose class is the brightest third of the image."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    for k in range(3):
        x[labels == k, :, :, 3 * k : 3 * k + 2] += 1.0
    return x, labels


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y), float((x - y).abs().max())


def _run(tmp_path, name, *, dropout=False, max_steps=None, resume=False, epochs=2, **kw):
    model = tiny_model(dropout)
    x, y = tiny_data()
    loader = make_train_loader(x, y, 24, seed=3)
    history = train(
        model,
        loader,
        epochs=epochs,
        lr=3e-3,
        checkpoint_path=tmp_path / f"{name}.safetensors",
        checkpoint_every=kw.pop("checkpoint_every", 3),
        resume=resume,
        progress=False,
        max_steps=max_steps,
        **kw,
    )
    return model, history


@pytest.mark.parametrize("stop_at", [5, 8, 11])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_after_interruption_gives_the_uninterrupted_weights(tmp_path, stop_at, optimizer):
    # 192 samples / 24 = 8 steps per epoch: stop mid-epoch (5, 11) and on an epoch end (8).
    full, full_history = _run(tmp_path, "full", dropout=True, optimizer=optimizer)
    assert full_history["completed"] and full_history["steps"] == 16
    _, partial = _run(tmp_path, "cut", dropout=True, optimizer=optimizer, max_steps=stop_at)
    assert not partial["completed"] and partial["steps"] == stop_at
    resumed, history = _run(tmp_path, "cut", dropout=True, optimizer=optimizer, resume=True)
    assert history["completed"] and history["resumed_from_step"] == stop_at
    assert_same(params(full), params(resumed))
    # the running epoch statistics survive the interruption too
    for a, b in zip(full_history["epochs"], history["epochs"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-12)
        assert a["train_acc"] == b["train_acc"]


def test_resume_twice_and_from_a_finished_run(tmp_path):
    full, _ = _run(tmp_path, "full")
    _run(tmp_path, "cut", max_steps=3)
    _run(tmp_path, "cut", max_steps=10, resume=True)
    resumed, history = _run(tmp_path, "cut", resume=True)
    assert_same(params(full), params(resumed))
    again, history = _run(tmp_path, "cut", resume=True)  # nothing left to do
    assert history["resumed_from_step"] == 16 and history["completed"]
    assert_same(params(full), params(again))


def test_training_is_deterministic_and_seeded(tmp_path):
    a, _ = _run(tmp_path, "a", dropout=True, seed=7)
    b, _ = _run(tmp_path, "b", dropout=True, seed=7)
    c, _ = _run(tmp_path, "c", dropout=True, seed=8)
    assert_same(params(a), params(b))
    assert any(not torch.equal(p, q) for p, q in zip(params(a), params(c), strict=True))


def test_checkpoint_every_n_steps_and_every_epoch(tmp_path):
    path = tmp_path / "state.safetensors"
    model = tiny_model()
    x, y = tiny_data()
    loader = make_train_loader(x, y, 24, seed=0)
    train(model, loader, epochs=1, lr=1e-3, checkpoint_path=path, checkpoint_every=3,
          progress=False, max_steps=4)  # fmt: skip
    info = load_training_state(path, tiny_model(), restore_rng=False)
    assert info["step"] == 4  # the stop writes a checkpoint
    train(model, loader, epochs=1, lr=1e-3, checkpoint_path=path, checkpoint_every=0,
          progress=False, resume=True)  # fmt: skip
    info = load_training_state(path, tiny_model(), restore_rng=False)
    assert info["step"] == 8 and info["epoch"] == 1
    assert info["metadata"]["train_progress"]["history"][0]["epoch"] == 1


def test_history_has_eval_metrics_and_learns(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    history = train(
        model, make_train_loader(x, y, 32, seed=0), epochs=3, lr=1e-2, progress=False,
        eval_loader=make_eval_loader(x, y, 64),
    )  # fmt: skip
    records = history["epochs"]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "eval_loss", "eval_top1", "eval_top5", "lr", "time_s"):
        assert key in records[-1]
    assert records[-1]["eval_samples"] == 192
    assert records[-1]["eval_top1"] > 0.9  # the task is easy
    assert records[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0
    metrics = classify(model, make_eval_loader(x, y, 50))
    assert metrics["top1"] == pytest.approx(records[-1]["eval_top1"])
    assert metrics["top5"] == 1.0  # 3 classes


def test_finetuning_a_gdnn_uses_the_same_loop(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    train(model, make_train_loader(x, y, 32), epochs=2, lr=1e-2, progress=False)
    gdnn = tdsnn.prepare(model, L=3.0)
    before = params(gdnn)
    history = train(gdnn, make_train_loader(x, y, 32), epochs=1, lr=1e-3, progress=False,
                    eval_loader=make_eval_loader(x, y, 64))  # fmt: skip
    assert any(not torch.equal(p, q) for p, q in zip(before, params(gdnn), strict=True))
    assert history["epochs"][0]["eval_top1"] > 0.8
    snn = tdsnn.convert(gdnn)
    reference = gdnn.double()(x.double()).argmax(1)
    assert torch.equal(snn.run(x).predictions, reference)


def test_input_transform_is_applied():
    x, y = tiny_data()
    seen = []

    def transform(batch):
        seen.append(batch.shape[0])
        return batch * 2

    train(tiny_model(), make_train_loader(x, y, 64), epochs=1, progress=False,
          input_transform=transform)  # fmt: skip
    assert seen == [64, 64, 64]


def test_bad_settings_raise_training_errors(tmp_path):
    x, y = tiny_data()
    loader = make_train_loader(x, y, 32)
    with pytest.raises(TrainingError, match="optimizer"):
        train(tiny_model(), loader, epochs=1, optimizer="rmsprop", progress=False)
    with pytest.raises(TrainingError, match="scheduler"):
        train(tiny_model(), loader, epochs=1, scheduler="step", progress=False)
    with pytest.raises(TrainingError, match="learning rate"):
        train(tiny_model(), loader, epochs=1, lr=0.0, progress=False)
    with pytest.raises(TrainingError, match="loss became"):
        train(tiny_model(), loader, epochs=1, lr=1e30, optimizer="sgd", progress=False)
    _run(tmp_path, "long", epochs=2)
    with pytest.raises(TrainingError, match="beyond"):
        _run(tmp_path, "long", epochs=1, resume=True)
