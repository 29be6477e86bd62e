"""Knowledge distillation of the DNN into the G-DNN during fine-tuning (``distill``)."""

from __future__ import annotations

import copy
import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from clitools import one_line_error, run_cli
from torch import nn

from tdsnn import pipeline as P
from tdsnn.distributed import make_train_loader
from tdsnn.training import Teacher, TrainingError, check_distill, distillation_loss, train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--train-limit", "256", "--test-limit", "64", "--quiet", "--threads", "1"]


def _problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(256, 12, generator=gen)
    y = (x @ torch.randn(12, 3, generator=gen)).argmax(dim=1)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 3))
    return net, make_train_loader(x, y, 32, seed=0)


def test_the_loss_is_the_tempered_kl_divergence():
    gen = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    tau = 3.0
    p = torch.softmax(teacher.double() / tau, dim=1)
    log_q = torch.log_softmax(student.double() / tau, dim=1)
    by_hand = float((p * (p.log() - log_q)).sum(dim=1).mean()) * tau**2
    assert float(distillation_loss(student, teacher, tau)) == pytest.approx(by_hand, rel=1e-5)
    assert float(distillation_loss(teacher, teacher, tau)) == pytest.approx(0.0, abs=1e-6)
    # the teacher is a target: no gradient flows into it
    t = teacher.clone().requires_grad_(True)
    s = student.clone().requires_grad_(True)
    distillation_loss(s, t).backward()
    assert t.grad is None and s.grad is not None and float(s.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("distill", "temperature", "match"),
    [(-0.1, 4.0, "in \\[0, 1\\]"), (1.5, 4.0, "in \\[0, 1\\]"), (math.nan, 4.0, "in \\[0, 1\\]"),
     (True, 4.0, "in \\[0, 1\\]"), ("0.5", 4.0, "in \\[0, 1\\]"), (0.5, 0.0, "temperature"),
     (0.5, math.inf, "temperature")],
)  # fmt: skip
def test_bad_weights_are_refused(distill, temperature, match):
    with pytest.raises(TrainingError, match=match):
        check_distill(distill, temperature)
    net, loader = _problem()
    with pytest.raises(TrainingError, match=match):
        train(net, loader, epochs=1, progress=False, teacher=Teacher(copy.deepcopy(net)),
              distill=distill, distill_temperature=temperature)  # fmt: skip


def test_distill_needs_a_teacher():
    net, loader = _problem()
    with pytest.raises(TrainingError, match="needs a teacher"):
        train(net, loader, epochs=1, progress=False, distill=0.5)


def test_pure_distillation_from_itself_changes_nothing():
    """distill = 1 against a copy of the student: the loss and its gradient are 0 (up to
    rounding), so SGD leaves the weights where they were; labels alone (distill = 0) move
    them.  (Adam would not do: it scales even a rounding-sized gradient to a full step.)"""

    def moved(distill: float) -> tuple[float, float]:
        net, loader = _problem()
        before = copy.deepcopy(net)
        history = train(net, loader, epochs=1, lr=0.1, optimizer="sgd", progress=False,
                        scheduler="none", teacher=Teacher(copy.deepcopy(net)), distill=distill)  # fmt: skip
        change = max(float((a - b).detach().abs().max())
                     for a, b in zip(net.parameters(), before.parameters()))  # fmt: skip
        return change, history["epochs"][-1]["train_loss"]

    still, loss = moved(1.0)
    assert still < 1e-6 and loss == pytest.approx(0.0, abs=1e-6)
    assert moved(0.0)[0] > 1e-3 and moved(0.5)[0] > 1e-3


def test_the_student_moves_towards_the_teacher():
    """Distilling a fixed teacher brings the student's outputs closer to it than labels do."""
    teacher_net, loader = _problem(seed=3)
    x = torch.cat([xb for xb, _ in loader])
    teacher = Teacher(teacher_net, transform=lambda v: v * 2.0)  # sees its own input scale

    def gap(distill: float) -> float:
        student, _ = _problem(seed=0)
        train(student, loader, epochs=3, lr=1e-2, progress=False, scheduler="none",
              teacher=teacher, distill=distill)  # fmt: skip
        with torch.no_grad():
            return float(F.kl_div(torch.log_softmax(student(x), 1),
                                  torch.log_softmax(teacher(x), 1), log_target=True,
                                  reduction="batchmean"))  # fmt: skip

    assert gap(1.0) < 0.5 * gap(0.0)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


# ------------------------------------------------------------------ the pipeline and CLI


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("distill") / "run"
    assert run_cli("train", "--out", run, "--epochs", "1", *TINY) == 0
    return run


def test_finetune_distils_and_records_it(trained, tmp_path):
    run, plain = tmp_path / "run", tmp_path / "plain"
    for folder in (run, plain):
        shutil.copytree(trained, folder, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    assert run_cli("finetune", "--from", run, "--epochs", "1", "--distill", "0.5", "--quiet",
                   "--threads", "1") == 0  # fmt: skip
    assert run_cli("finetune", "--from", plain, "--epochs", "1", "--quiet", "--threads", "1") == 0
    recipe = json.loads((run / "gdnn_L5.json").read_text())["metadata"]["finetune"]
    assert recipe["distill"] == 0.5 and recipe["distill_temperature"] == 4.0
    assert json.loads((plain / "gdnn_L5.json").read_text())["metadata"]["finetune"]["distill"] == 0
    # the teacher changed the fine-tuned weights
    from safetensors.torch import load_file

    a, b = load_file(run / "gdnn_L5.safetensors"), load_file(plain / "gdnn_L5.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # the run's DNN is the teacher and is left as it was
    assert (run / "dnn.safetensors").read_bytes() == (trained / "dnn.safetensors").read_bytes()
    # a stopped fine-tuning resumes only with the same teacher weight
    stopped = tmp_path / "stopped"
    shutil.copytree(trained, stopped, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    meta = P.finetune(stopped, L=5.0, epochs=1, progress=False, distill=0.5, max_steps=2)
    assert not meta["completed"]
    with pytest.raises(P.PipelineError, match="distill: 0.5 -> 0.25"):
        P.finetune(stopped, L=5.0, epochs=1, progress=False, resume=True, distill=0.25)
    assert P.finetune(stopped, L=5.0, epochs=1, progress=False, resume=True, distill=0.5)["completed"]
    with pytest.raises(P.PipelineError, match="in \\[0, 1\\]"):
        P.finetune(run, L=5.0, epochs=1, progress=False, force=True, distill=2.0)


@pytest.mark.parametrize("argv", [["finetune"], ["run", "--epochs", "0"], ["sweep", "--L", "5"]])
def test_a_bad_distill_exits_2_with_one_line(tmp_path, capsys, argv):
    where = ["--out", str(tmp_path / "out")] if argv[0] == "run" else ["--from", str(tmp_path)]
    assert run_cli(*argv, "--distill", "1.5", *where) == 2
    assert "a number in [0, 1]" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_the_report_states_the_teacher(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    assert run_cli("finetune", "--from", run, "--epochs", "1", "--distill", "0.25", "--quiet",
                   "--threads", "1") == 0  # fmt: skip
    assert run_cli("convert", "--from", run) == 0
    assert run_cli("evaluate", "--from", run, "--backends", "closed_form", "--quiet",
                   "--threads", "1") == 0  # fmt: skip
    assert json.loads((run / "evaluation.json").read_text())["reproduce"]["finetune_distill"] == 0.25
    assert run_cli("report", "--from", run) == 0
    assert "distilling the DNN (weight 0.25)" in (run / "report.md").read_text()


def test_a_sweep_resumed_with_another_teacher_weight_is_refused_not_reused(
    trained, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    common = ["sweep", "--from", run, "--L", "2", "--epochs", "1", "--limit", "32", "--quiet",
              "--threads", "1"]  # fmt: skip
    assert run_cli(*common, "--distill", "0.5") == 0
    first = json.loads((run / "sweep.json").read_text())
    assert first[0]["reproduce"]["finetune_distill"] == 0.5
    assert run_cli(*common, "--distill", "0.5", "--resume") == 0  # the same: kept
    assert json.loads((run / "sweep.json").read_text()) == first
    capsys.readouterr()
    assert run_cli(*common, "--resume") == 2  # labels only now: not the saved evaluation
    assert "distill: 0.5 -> 0.0" in one_line_error(capsys)
    assert run_cli(*common, "--force") == 0
    assert json.loads((run / "sweep.json").read_text())[0]["reproduce"]["finetune_distill"] == 0.0
