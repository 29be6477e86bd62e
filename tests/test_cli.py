"""The ``tdsnn`` command line: the whole pipeline on a few hundred MNIST images, resumption,
error exits."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from clitools import one_line_error, run_cli
from safetensors.torch import load_file

from tdsnn.cli import build_parser

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = ["--train-limit", "512", "--test-limit", "200", "--quiet", "--threads", "1"]
SCHEMA_KEYS = {
    "model", "dataset", "L", "input_scale", "samples", "accuracy", "agreement",
    "disagreements", "latency", "t_il_mean", "layer_names", "spikes_per_sample",
    "spikes_per_layer", "ops", "energy_pj", "clipped", "t_il_mode", "timing_s", "precision",
    "coding", "sparsity", "spiking_neurons", "spikes_per_neuron", "synaptic_events_per_image",
    "dnn_macs_per_image", "events_per_mac", "reproduce", "split",
}  # fmt: skip




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder with a DNN trained on 512 images and its G-DNN at L=5."""
    run = tmp_path_factory.mktemp("cli") / "run"
    assert run_cli("train", "--out", run, "--epochs", "1", *SMALL) == 0
    assert run_cli("finetune", "--from", run, "--epochs", "1", "--quiet") == 0
    return run


def test_main_job_end_to_end(tmp_path, capsys):
    out = tmp_path / "main"
    rc = run_cli("run", "--out", out, "--epochs", "1", "--finetune-epochs", "1", *SMALL)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "SNN clocked" in printed and "[5/5]" in printed
    for name in ("dnn", "gdnn_L5", "snn_L5"):
        assert (out / f"{name}.safetensors").is_file() and (out / f"{name}.json").is_file()
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert set(evaluation) == SCHEMA_KEYS
    assert evaluation["reproduce"]["train_seed"] == 0 and evaluation["reproduce"]["finetune_seed"] == 0
    assert evaluation["reproduce"]["torch_threads"] >= 1
    assert evaluation["samples"] == 200
    assert evaluation["agreement"] == {"closed_form": 1.0, "clocked": 1.0}
    assert evaluation["accuracy"]["snn"]["clocked"]["top1"] > 0.3  # chance is 0.1
    assert evaluation["accuracy"]["dnn"]["top1"] > 0.3
    assert evaluation["input_scale"] == 4.0 and evaluation["L"] == 5.0
    assert evaluation["coding"] == "paper" and evaluation["spikes_per_neuron"] == 1.0
    sidecar = json.loads((out / "snn_L5.json").read_text())["metadata"]
    for key in ("architecture", "arch_kwargs", "L", "dataset", "normalization", "input_scale",
                "activation_scales", "metrics", "t_il_mode"):  # fmt: skip
        assert key in sidecar
    assert sidecar["metrics"]["agreement"]["clocked"] == 1.0
    assert (out / "run_timing.json").is_file()


def test_resume_after_interruption_gives_the_same_weights(tmp_path, capsys):
    common = ["--epochs", "2", "--train-limit", "128", "--test-limit", "32", "--quiet",
              "--checkpoint-every", "3", "--batch-size", "32"]  # fmt: skip
    assert run_cli("train", "--out", tmp_path / "full", *common) == 0
    assert run_cli("train", "--out", tmp_path / "cut", *common, "--max-steps", "5") == 0
    assert "stopped early" in capsys.readouterr().out
    assert not (tmp_path / "cut" / "dnn.safetensors").exists()
    assert (tmp_path / "cut" / "dnn.state.safetensors").exists()
    assert run_cli("train", "--out", tmp_path / "cut", *common, "--resume") == 0
    full = load_file(tmp_path / "full" / "dnn.safetensors")
    resumed = load_file(tmp_path / "cut" / "dnn.safetensors")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    # the same for fine-tuning
    ft = ["--epochs", "1", "--quiet", "--checkpoint-every", "2", "--batch-size", "32"]
    assert run_cli("finetune", "--from", tmp_path / "full", *ft) == 0
    assert run_cli("finetune", "--from", tmp_path / "cut", *ft, "--max-steps", "3") == 0
    assert run_cli("finetune", "--from", tmp_path / "cut", *ft, "--resume") == 0
    a = load_file(tmp_path / "full" / "gdnn_L5.safetensors")
    b = load_file(tmp_path / "cut" / "gdnn_L5.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stages_one_by_one(trained, tmp_path, capsys, monkeypatch):
    assert run_cli("convert", "--from", trained, "--calibrate", "100") == 0
    assert "static" in capsys.readouterr().out
    assert run_cli("evaluate", "--from", trained, "--backends", "closed_form", "--limit", "60",
                   "--precision", "float64", "--quiet") == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "SNN closed_form" in printed and "evaluation.json" in printed
    evaluation = json.loads((trained / "evaluation.json").read_text())
    assert evaluation["t_il_mode"] == "static" and evaluation["samples"] == 60
    assert evaluation["precision"] == "float64"
    assert (trained / "evaluation_L5.json").is_file()
    assert run_cli("convert", "--from", trained) == 0
    assert "dynamic" in capsys.readouterr().out

    calls = {}
    fake_report = types.ModuleType("tdsnn.report")

    def write_report(run_dir, evaluation, sweep=None):
        calls["report"] = (evaluation["samples"], sweep)
        path = Path(run_dir) / "report.md"
        path.write_text("report")
        return [path]

    fake_report.write_report = write_report
    fake_plots = types.ModuleType("tdsnn.plots")

    def inspect_sample(result, index, out_dir):
        calls["inspect"] = (result.spike_times[0].shape[0], index, result.extras["label"])
        path = out_dir / f"raster_{index}.png"
        path.write_text("png")
        return [path]

    fake_plots.inspect_sample = inspect_sample
    monkeypatch.setitem(sys.modules, "tdsnn.report", fake_report)
    monkeypatch.setitem(sys.modules, "tdsnn.plots", fake_plots)
    assert run_cli("report", "--from", trained) == 0
    assert calls["report"] == (60, None)
    assert (trained / "report.md").read_text() == "report"  # moved in from a scratch folder
    assert run_cli("inspect", "--from", trained, "--index", "7", "--out", tmp_path) == 0
    assert calls["inspect"] == (1, 0, 9)  # MNIST test sample 7 is a 9
    assert (tmp_path / "raster_7.png").is_file()
    assert "raster_7.png" in capsys.readouterr().out


def test_sweep_over_L(trained, capsys):
    rc = run_cli("sweep", "--from", trained, "--L", "2,3", "--epochs", "0", "--limit", "50",
                 "--quiet")  # fmt: skip
    assert rc == 0
    sweep = json.loads((trained / "sweep.json").read_text())
    assert [entry["L"] for entry in sweep] == [2.0, 3.0]
    assert all(entry["agreement"]["closed_form"] == 1.0 for entry in sweep)
    work = trained / "sweep"  # the sweep keeps its checkpoints apart from the main job's
    assert (work / "evaluation_L3.json").is_file() and (work / "snn_L2.safetensors").is_file()
    assert not (trained / "snn_L2.safetensors").exists()
    assert sweep[0]["latency"]["mean"] < sweep[1]["latency"]["mean"]  # larger L, longer periods
    # resuming a finished sweep redoes nothing
    assert run_cli("sweep", "--from", trained, "--L", "2,3", "--epochs", "0", "--limit", "50",
                   "--quiet", "--resume") == 0  # fmt: skip
    assert json.loads((trained / "sweep.json").read_text()) == sweep


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--dataset", "imagenet"], "unknown data set"),
        (["train", "--model", "resnet50"], "unknown model"),
        (["finetune", "--from", "{tmp}/missing"], "not found"),
        (["finetune", "--from", "{tmp}"], "dnn.safetensors"),
        (["evaluate", "--from", "{tmp}"], "snn_L"),
        (["train", "--dataset", "cifar10", "--data-dir", "{tmp}"], "cifar"),
        (["finetune", "--from", "{tmp}", "--L", "0"], "L must be"),
        (["finetune", "--from", "{tmp}", "--L", "-1"], "L must be"),
        (["sweep", "--from", "{tmp}", "--L", "1,x"], "L must be"),
        (["evaluate", "--from", "{tmp}", "--backends", "euler"], "backends"),
        (["evaluate", "--from", "{tmp}", "--precision", "half"], "precision"),
        (["train", "--model-spec", "{tmp}/nothing.py:net"], "not found"),
    ],
)
def test_errors_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "out"), "--quiet"]
    assert run_cli(*argv) == 2
    assert expected.lower() in one_line_error(capsys).lower()


def test_existing_results_are_not_overwritten_silently(trained, capsys):
    assert run_cli("train", "--out", trained, "--quiet") == 2
    assert "--force" in one_line_error(capsys)
    assert run_cli("finetune", "--from", trained, "--quiet") == 2
    assert "--resume" in one_line_error(capsys)
    assert run_cli("inspect", "--from", trained, "--index", "10000") == 2
    assert "--index" in one_line_error(capsys)


def test_help_teaches_the_flow_and_every_subcommand_has_an_example():
    parser = build_parser()
    text = parser.format_help()
    for word in ("Figure 2", "train", "finetune", "convert", "evaluate", "sweep", "report",
                 "inspect", "run", "eq. 11", "torchrun"):  # fmt: skip
        assert word in text
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        assert f"tdsnn {name}" in subparser.format_help(), name


def test_python_dash_m_entry_point(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "tdsnn.cli", "--help"], capture_output=True,
                        text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0 and "Figure 2" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "tdsnn.cli", "convert", "--from",
                          str(tmp_path / "none")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_evaluate_on_the_held_out_training_images(copy_run, capsys):
    assert run_cli("evaluate", "--from", copy_run, "--split", "holdout", "--limit", 20,
                   "--backends", "closed_form", "--quiet") == 0  # fmt: skip
    assert f"wrote {copy_run / 'evaluation_holdout_L5.json'}" in capsys.readouterr().out
    assert json.loads((copy_run / "evaluation_holdout_L5.json").read_text())["samples"] == 20
