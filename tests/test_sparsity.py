"""Sparse coding on the workflow side: the sparsity penalty, the CLI flags, what a run
reports in either coding, old run folders, the inspect plots and the trade-off script."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from clitools import one_line_error, run_cli
from torch import nn

import tdsnn
from tdsnn import pipeline as P
from tdsnn.distributed import make_train_loader
from tdsnn.errors import TDSNNError
from tdsnn.sparsity import SpikePenalty, soft_active
from tdsnn.training import TrainingError, train

pytestmark = pytest.mark.usefixtures("one_thread")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--train-limit", "256", "--test-limit", "64", "--quiet", "--threads", "1"]


# ---------------------------------------------------------------------- the penalty


def _mlp_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(512, 16, generator=gen)
    w = torch.randn(16, 3, generator=gen)
    y = (x @ w).argmax(dim=1)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 3))  # fmt: skip
    return net, x, y


def _active_fraction(gdnn: nn.Module, x: torch.Tensor) -> float:
    """The (hard) fraction of non-silent hidden neurons: G inputs > 0, the input left out."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
             for m in gdnn.modules() if isinstance(m, tdsnn.coding.GCoding)]  # fmt: skip
    with torch.no_grad():
        gdnn.eval()(x)
    for h in hooks:
        h.remove()
    hidden = seen[1:]
    return sum(float((t > 0).sum()) for t in hidden) / sum(t.numel() for t in hidden)


def _finetuned(lam: float) -> tuple[nn.Module, float, dict]:
    net, x, y = _mlp_problem()
    loader = make_train_loader(x, y, 64, seed=0)
    train(net, loader, epochs=3, lr=3e-3, progress=False, scheduler="none")
    gdnn = tdsnn.prepare(net, 5.0, coding="sparse")
    history = train(gdnn, loader, epochs=4, lr=3e-3, progress=False, scheduler="none",
                    sparsity=lam)  # fmt: skip
    return gdnn, _active_fraction(gdnn, x), history


def test_the_penalty_silences_neurons():
    _, free, history0 = _finetuned(0.0)
    _, pushed, history = _finetuned(20.0)
    assert "train_penalty" in history["epochs"][-1] and "train_penalty" in history0["epochs"][-1]
    assert history["epochs"][-1]["train_penalty"] < history["epochs"][0]["train_penalty"]
    assert pushed < 0.6 * free, (free, pushed)


def test_the_penalty_value_is_the_mean_soft_fraction():
    net, x, _ = _mlp_problem()
    gdnn = tdsnn.prepare(net, 5.0, coding="sparse").train()
    with SpikePenalty(gdnn, weight="spikes") as penalty:
        gdnn(x[:8])
        value = penalty.value()
    with SpikePenalty(gdnn) as penalty:  # weight="events": by each layer's fan-out
        gdnn(x[:8])
        by_events = penalty.value()
    assert value.requires_grad
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
             for m in gdnn.modules() if isinstance(m, tdsnn.coding.GCoding)]  # fmt: skip
    with torch.no_grad():
        gdnn(x[:8])
    for h in hooks:
        h.remove()
    hidden = seen[1:]  # the input's G has no gradient path: left out
    expected = sum(float(soft_active(t, 5.0).sum()) for t in hidden) / (
        8 * sum(t[0].numel() for t in hidden)
    )
    assert float(value.detach()) == pytest.approx(expected, rel=1e-5)
    from tdsnn.sparsity import mean_fanout

    children = list(gdnn.children())
    fans = [mean_fanout(after) for module, after in zip(children, children[1:])
            if isinstance(module, tdsnn.coding.GCoding)][1:]  # fmt: skip
    weighted = sum(f * float(soft_active(t, 5.0).sum()) for f, t in zip(fans, hidden)) / (
        8 * sum(f * t[0].numel() for f, t in zip(fans, hidden))
    )
    assert float(by_events.detach()) == pytest.approx(weighted, rel=1e-5)
    assert 0 <= float(value.detach()) <= 1
    assert math.expm1(1 / 5.0) > 0  # the first level's width
    handles = [m._forward_pre_hooks for m in gdnn.modules() if isinstance(m, tdsnn.coding.GCoding)]
    assert all(len(h) == 0 for h in handles)  # the hooks are gone after the block


def test_the_penalty_is_refused_without_sparse_coding():
    net, x, y = _mlp_problem()
    loader = make_train_loader(x, y, 64, seed=0)
    paper = tdsnn.prepare(net, 5.0)
    with pytest.raises(TrainingError, match="sparse coding"):
        train(paper, loader, epochs=1, progress=False, sparsity=1.0)
    with pytest.raises(TrainingError, match="sparse coding"):
        train(net, loader, epochs=1, progress=False, sparsity=0.5)
    with pytest.raises(TrainingError, match="finite number"):
        train(net, loader, epochs=1, progress=False, sparsity=float("nan"))
    with pytest.raises(TDSNNError, match="sparse"):
        SpikePenalty(paper)
    with pytest.raises(P.PipelineError, match="sparse"):
        P.check_sparsity_options("paper", 1.0)
    with pytest.raises(P.PipelineError, match="coding"):
        P.check_sparsity_options("dense", 0.0)


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A DNN trained on 256 images (test limit 64)."""
    run = tmp_path_factory.mktemp("sparse") / "run"
    assert run_cli("train", "--out", run, "--epochs", "1", *TINY) == 0
    return run


def test_sparse_coding_through_finetune_convert_evaluate(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    assert run_cli("finetune", "--from", run, "--epochs", "1", "--coding", "sparse",
                   "--sparsity", "1", "--quiet", "--threads", "1") == 0  # fmt: skip
    gdnn_meta = json.loads((run / "gdnn_L5.json").read_text())["metadata"]
    assert gdnn_meta["coding"] == "sparse" and gdnn_meta["sparsity"] == 1.0
    assert gdnn_meta["finetune"]["coding"] == "sparse"
    assert "train_penalty" in gdnn_meta["history"][-1]
    assert run_cli("convert", "--from", run, "--coding", "sparse") == 0
    assert "sparse coding" in capsys.readouterr().out
    assert run_cli("evaluate", "--from", run, "--quiet", "--threads", "1") == 0
    printed = capsys.readouterr().out
    assert "sparse coding" in printed and "per neuron" in printed
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["coding"] == "sparse" and evaluation["sparsity"] == 1.0
    assert evaluation["agreement"] == {"closed_form": 1.0, "clocked": 1.0}
    assert 0 < evaluation["spikes_per_neuron"] < 1.0  # silent neurons emit nothing
    assert evaluation["synaptic_events_per_image"] > 0
    assert evaluation["events_per_mac"] == pytest.approx(
        evaluation["synaptic_events_per_image"] / evaluation["dnn_macs_per_image"]
    )
    snn_meta = json.loads((run / "snn_L5.json").read_text())["metadata"]
    assert snn_meta["coding"] == "sparse"
    assert snn_meta["metrics"]["coding"] == "sparse"
    # --coding on convert / evaluate is a check against the folder
    assert run_cli("evaluate", "--from", run, "--coding", "paper", "--quiet") == 2
    assert "sparse coding" in one_line_error(capsys)
    # the report states the coding and the figures
    assert run_cli("report", "--from", run) == 0
    report = (run / "report.md").read_text()
    assert "sparse" in report and "synaptic events per DNN MAC" in report
    assert json.loads((run / "report.json").read_text())["coding"] == "sparse"
    # inspect: silent neurons are said, not drawn
    assert run_cli("inspect", "--from", run, "--index", "0", "--backend", "closed_form") == 0
    assert (run / "inspect" / "raster_0.png").is_file()
    # resuming with another coding is refused (the recipe differs)
    with pytest.raises(P.PipelineError, match="already|exists|force"):
        P.finetune(run, L=5.0, epochs=1, progress=False, coding="paper")


def test_min_time_through_finetune_convert_evaluate_report(trained, tmp_path, capsys):
    """``--min-time`` is recorded by finetune, rebuilt by convert and evaluate (both
    simulators agree with the G-DNN), stated by the report, and part of the recipe."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    assert run_cli("finetune", "--from", run, "--epochs", "1", "--coding", "sparse",
                   "--min-time", "3", "--quiet", "--threads", "1") == 0  # fmt: skip
    gdnn_meta = json.loads((run / "gdnn_L5.json").read_text())["metadata"]
    assert gdnn_meta["min_time"] == 3 and gdnn_meta["finetune"]["min_time"] == 3
    gdnn, _ = tdsnn.rebuild.load_gdnn(run)
    assert gdnn.min_time == 3
    assert [m.min_time for m in gdnn.modules() if isinstance(m, tdsnn.coding.GCoding)][1:] == [3] * 3
    assert run_cli("convert", "--from", run) == 0
    snn, _ = tdsnn.rebuild.load_snn(run)
    assert {layer.min_time for layer in snn.synapse_layers} == {3}
    assert run_cli("evaluate", "--from", run, "--quiet", "--threads", "1") == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["reproduce"]["min_time"] == 3
    assert evaluation["agreement"] == {"closed_form": 1.0, "clocked": 1.0}
    result = snn.run(torch.rand(4, 1, 28, 28) * 4, backend="closed_form")
    assert all(bool(((t < 0) | (t >= 3)).all()) for t in result.spike_times[1:])
    capsys.readouterr()
    assert run_cli("report", "--from", run) == 0
    assert "silent below local time 3" in (run / "report.md").read_text()
    # another min_time is another recipe: an unfinished state of this one is not resumed
    with pytest.raises(P.PipelineError, match="already|exists|force"):
        P.finetune(run, L=5.0, epochs=1, progress=False, coding="sparse", min_time=2)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["finetune", "--sparsity", "-1"], "finite number >= 0"),
        (["finetune", "--sparsity", "nan"], "finite number >= 0"),
        (["finetune", "--sparsity", "1"], "--coding sparse"),
        (["finetune", "--coding", "dense"], "invalid choice"),
        (["run", "--sparsity", "1", "--epochs", "0"], "--coding sparse"),
        (["sweep", "--L", "5", "--sparsity", "1"], "--coding sparse"),
        (["finetune", "--min-time", "2"], "--coding sparse"),
        (["finetune", "--coding", "sparse", "--min-time", "0"], "integer in 1..2**24"),
        (["finetune", "--coding", "sparse", "--min-time", "1.5"], "integer in 1..2**24"),
        (["run", "--min-time", "3", "--epochs", "0"], "--coding sparse"),
        (["sweep", "--L", "5", "--min-time", "2"], "--coding sparse"),
    ],
)
def test_bad_sparse_options_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    where = ["--out", str(tmp_path / "out")] if argv[0] == "run" else ["--from", str(tmp_path)]
    assert run_cli(*argv, *where) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_run_made_before_sparse_coding_loads_as_paper(copy_run):
    for name in ("gdnn_L5", "snn_L5"):
        path = copy_run / f"{name}.json"
        doc = json.loads(path.read_text())
        for key in ("coding", "sparsity"):
            doc["metadata"].pop(key, None)
            doc["metadata"].get("finetune", {}).pop(key, None)
        path.write_text(json.dumps(doc))
    gdnn, meta = P.load_gdnn(copy_run)
    assert gdnn.coding == "paper" and "coding" not in meta
    snn, _ = P.load_snn(copy_run)
    assert snn.coding == "paper"
    result = P.evaluate_run(copy_run, backends=("closed_form",), limit=8, progress=False)
    assert result["coding"] == "paper" and result["spikes_per_neuron"] == 1.0
    assert result["sparsity"] == 0.0
    with pytest.raises(P.PipelineError, match="paper coding, not sparse"):
        P.convert_run(copy_run, coding="sparse")


# ------------------------------------------------------------------ the trade-off plot


def test_the_tradeoff_script_end_to_end(trained, tmp_path, capsys):
    sys.path.insert(0, str(BENCH))
    try:
        script = importlib.import_module("sparsity_tradeoff")
    finally:
        sys.path.remove(str(BENCH))
    before = sorted(p.name for p in trained.iterdir())
    out_json, out_png = tmp_path / "tradeoff.json", tmp_path / "tradeoff.png"
    rc = script.main(["--run", str(trained), "--lambdas", "0,4", "--epochs", "1",
                      "--train-limit", "256", "--test-limit", "64", "--json", str(out_json),
                      "--plot", str(out_png), "--work-dir", str(tmp_path), "--quiet"])  # fmt: skip
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert [r["lambda"] for r in data["sparse"]] == [0.0, 4.0]
    assert data["paper"]["coding"] == "paper" and data["paper"]["spikes_per_neuron"] == 1.0
    for row in data["sparse"]:
        assert row["agreement"] == 1.0 and row["samples"] == 64
        assert 0 < row["spikes_per_neuron"] < 1
        assert {"snn_top1", "synaptic_events_per_image", "events_per_mac"} <= set(row)
    assert out_png.is_file() and out_png.stat().st_size > 0
    assert "events/MAC" in capsys.readouterr().out
    assert sorted(p.name for p in trained.iterdir()) == before  # the given run is untouched
