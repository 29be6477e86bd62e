"""Training-time augmentation (tdsnn.augment) and its use in training and the pipeline."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from clitools import one_line_error, run_cli
from torch import nn

from tdsnn import pipeline as P
from tdsnn.augment import augment_batch, flip_crop, step_generator
from tdsnn.distributed import make_train_loader
from tdsnn.errors import TDSNNError
from tdsnn.training import TrainingError, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _candidates(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every flip and crop of one image that flip_crop may return, by their definition."""
    _c, h, w = image.shape
    out = []
    for flipped in (image, image.flip(2)):
        padded = F.pad(flipped, (pad, pad, pad, pad))
        out += [padded[:, i : i + h, j : j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_every_image_is_one_flip_and_crop_of_its_own(dtype):
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(24, 3, 9, 7, generator=gen) * 200).to(dtype) + 1  # no zero pixels
    out = flip_crop(x, torch.Generator().manual_seed(5), pad=2)
    assert out.shape == x.shape and out.dtype == dtype
    for n in range(x.shape[0]):
        assert any(torch.equal(out[n], c) for c in _candidates(x[n], 2)), n
    # both flips and several offsets occur, and the border brings zeros in
    flips = [torch.equal(out[n], x[n].flip(2)) for n in range(x.shape[0])]
    assert int((out == 0).any(dim=(1, 2, 3)).sum()) > x.shape[0] // 2
    assert len({tuple(out[n].flatten().tolist()) for n in range(24)}) == 24
    assert not all(flips)


def test_it_is_a_function_of_seed_and_step():
    x = torch.rand(16, 1, 8, 8)
    a, b = augment_batch(x, "flip-crop", 3, 7), augment_batch(x, "flip-crop", 3, 7)
    assert torch.equal(a, b)
    assert not torch.equal(a, augment_batch(x, "flip-crop", 3, 8))
    assert not torch.equal(a, augment_batch(x, "flip-crop", 4, 7))
    assert augment_batch(x, "none", 3, 7) is x
    assert torch.equal(flip_crop(x, step_generator(3, 7)), a)


def test_bad_input_is_refused():
    with pytest.raises(TDSNNError, match="N x C x H x W"):
        flip_crop(torch.rand(3, 8, 8))
    net = nn.Linear(4, 2)
    loader = make_train_loader(torch.rand(8, 4), torch.zeros(8, dtype=torch.long), 4, seed=0)
    with pytest.raises(TrainingError, match="none, flip-crop"):
        train(net, loader, epochs=1, progress=False, augment="mixup")


def _conv_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 8, 8, generator=gen)
    y = (x[:, 0, :4].sum(dim=(1, 2)) > x[:, 0, 4:].sum(dim=(1, 2))).long()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    return net, make_train_loader(x, y, 16, seed=0)


def test_training_with_augmentation_is_repeatable_and_resumes_exactly(tmp_path):
    def weights(net):
        return [p.detach().clone() for p in net.parameters()]

    net, loader = _conv_problem()
    start = copy.deepcopy(net)
    train(net, loader, epochs=2, lr=1e-2, progress=False, augment="flip-crop")
    again = copy.deepcopy(start)
    train(again, loader, epochs=2, lr=1e-2, progress=False, augment="flip-crop")
    plain = copy.deepcopy(start)
    train(plain, loader, epochs=2, lr=1e-2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(net), weights(again)))
    assert any(not torch.equal(a, b) for a, b in zip(weights(net), weights(plain)))
    # stopped after 5 steps (mid-epoch) and resumed: the weights of the uninterrupted run
    state = tmp_path / "state.safetensors"
    resumed = copy.deepcopy(start)
    history = train(resumed, loader, epochs=2, lr=1e-2, progress=False, augment="flip-crop",
                    checkpoint_path=state, max_steps=5)  # fmt: skip
    assert not history["completed"]
    resumed = copy.deepcopy(start)
    train(resumed, loader, epochs=2, lr=1e-2, progress=False, augment="flip-crop",
          checkpoint_path=state, resume=True)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(weights(net), weights(resumed)))


def test_the_pipeline_records_it_and_refuses_to_resume_without_it(tmp_path, capsys):
    run = tmp_path / "run"
    tiny = ["--train-limit", "128", "--test-limit", "32", "--quiet", "--threads", "1"]
    assert run_cli("train", "--out", run, "--epochs", "1", "--augment", "flip-crop", *tiny) == 0
    assert json.loads((run / "dnn.json").read_text())["metadata"]["train"]["augment"] == "flip-crop"
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    assert run_cli("finetune", "--from", run, "--epochs", "1", "--augment", "flip-crop",
                   "--quiet", "--threads", "1") == 0  # fmt: skip
    assert json.loads((run / "gdnn_L5.json").read_text())["metadata"]["finetune"]["augment"] == "flip-crop"
    stopped = P.finetune(other, L=5.0, epochs=1, progress=False, augment="flip-crop", max_steps=1)
    assert not stopped["completed"]
    with pytest.raises(P.PipelineError, match="augment: 'flip-crop' -> 'none'"):
        P.finetune(other, L=5.0, epochs=1, progress=False, resume=True)
    with pytest.raises(P.PipelineError, match="none, flip-crop"):
        P.train_dnn(tmp_path / "bad", epochs=1, augment="cutout", progress=False)
    assert run_cli("train", "--out", tmp_path / "x", "--augment", "mixup") == 2
    assert "invalid choice" in one_line_error(capsys)
