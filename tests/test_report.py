import copy
import json
import math
import os

import pytest

from tdsnn.report import (
    atomic_write,
    exact_count,
    format_evaluation_table,
    human_count,
    render_markdown,
    write_report,
)

DNN_MUL, DNN_ADD = 2_293_000, 2_288_810


def make_evaluation(L=5.0, model="lenet5", dataset="mnist", snn_top1=0.9890, snn_top5=0.9996):
    """A synthetic evaluation following the schema of an evaluation run."""
    snn_ops = {
        "presentation": {"mul": 1_960_000.0, "add": 3_270_000.5},
        "own": {"mul": 1_200_000.0, "add": 3_000_000.0},
        "hardware": {"mul": 60_000.0, "add": 2_288_810.0},
    }
    for counts in snn_ops.values():
        counts["total"] = counts["mul"] + counts["add"]
    dnn_energy = DNN_MUL * 3.7 + DNN_ADD * 0.9
    energy = {"dnn": dnn_energy}
    ratios = {}
    for conv, s in snn_ops.items():
        energy[f"snn_{conv}"] = s["mul"] * 3.7 + s["add"] * 0.9
        ratios[conv] = {
            "mul_ratio": DNN_MUL / s["mul"],
            "add_ratio": DNN_ADD / s["add"],
            "total_ratio": (DNN_MUL + DNN_ADD) / s["total"],
            "energy_ratio": dnn_energy / energy[f"snn_{conv}"],
        }
    return {
        "model": model,
        "dataset": dataset,
        "L": L,
        "input_scale": 1.0,
        "samples": 10000,
        "accuracy": {
            "dnn": {"top1": 0.9916, "top5": 0.9999},
            "gdnn": {"top1": snn_top1, "top5": snn_top5},
            "snn": {
                "closed_form": {"top1": snn_top1, "top5": snn_top5},
                "clocked": {"top1": snn_top1, "top5": snn_top5},
            },
        },
        "agreement": {"closed_form": 0.9997, "clocked": 1.0},
        "disagreements": {"closed_form": 3, "clocked": 0},
        "latency": {"mean": 17.25, "min": 15, "max": 21},
        "t_il_mean": [4.0, 5.5, 4.25, 3.5],
        "layer_names": ["input", "conv1", "pool1", "conv2", "pool2", "fc3"],
        "spikes_per_sample": 19184.0,
        "spikes_per_layer": {"input": 784.0, "conv1": 11520.0, "pool1": 2880.0, "conv2": 3200.0,
                             "pool2": 800.0, "fc3": 500.0},
        "ops": {"dnn": {"mul": DNN_MUL, "add": DNN_ADD, "total": DNN_MUL + DNN_ADD},
                "snn": snn_ops, "ratios": ratios},
        "energy_pj": energy,
        "clipped": [0, 0, 0, 0],
        "t_il_mode": "dynamic",
        "timing_s": {"dnn": 0.5, "gdnn": 0.7, "closed_form": 4.0, "clocked": 30.0},
    }


def make_sweep(**kwargs):
    return [make_evaluation(L=L, snn_top1=acc, **kwargs) for L, acc in ((1.0, 0.9847), (3.0, 0.9880), (5.0, 0.9890))]


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_write_report_files_and_json(tmp_path):
    evaluation = make_evaluation()
    paths = write_report(tmp_path / "run", evaluation)
    assert [p.name for p in paths] == ["report.md", "report.json"]
    assert all(p.is_file() for p in paths)
    data = json.loads(paths[1].read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert data["evaluation"] == evaluation
    assert data["sweep"] is None
    assert data["paper"]["table1"]["snn_error"] == [0.92, None]
    assert _no_temp_files(tmp_path / "run") == []


def test_markdown_tables_and_paper_values(tmp_path):
    write_report(tmp_path, make_evaluation())
    md = (tmp_path / "report.md").read_text()
    # Table 1 style: our errors (100 - 98.90 = 1.10 %, DNN 0.84 %) beside the paper's 0.92
    assert "| SNN (closed form) | 1.10 | 0.04 | 99.970 | 3 of 10,000 | 0.92 |" in md
    assert "| SNN (clocked) | 1.10 | 0.04 | 100.000 | 0 of 10,000 | 0.92 |" in md
    assert "| DNN | 0.84 | 0.01 | – | – | 0.84 |" in md
    assert "previous SNN (Rueckauer et al. 2017)" in md and "0.56" in md
    # Table 2 style: human and exact counts, ratios, the paper's row
    assert "2293k" in md and "2,293,000" in md and "2,288,810" in md
    assert "| paper, Table 2 (L = 5) | 2239k | 2235k | 1920k | 3194k | 1.17× | 0.700× | 0.875× | – |" in md
    assert "1.17×" in md  # 2293000 / 1960000
    assert "3,270,000.5" in md  # an average keeps its decimal
    for convention in ("presentation (paper's)", "own periods", "hardware (Table 3)"):
        assert f"ours, {convention}" in md
    # energy constants, latency, T_il with layer names, spikes, timing
    assert "4.6 pJ" in md and "0.9 pJ" in md and "45 nm" in md
    assert "mean 17.25 time steps, min 15, max 21" in md
    assert "| 2 | conv2 | 5.50 | 0 |" in md and "| 4 | output | 3.50 | 0 |" in md
    assert "Spikes per input: 19,184" in md and "| conv1 | 11,520 |" in md
    assert "| SNN (clocked) | 30 | 3 |" in md  # 30 s over 10,000 inputs = 3 ms
    assert "Leak constant sweep" not in md


def test_missing_backend_and_sections(tmp_path):
    evaluation = make_evaluation()
    del evaluation["accuracy"]["snn"]["clocked"]
    del evaluation["agreement"]["clocked"]
    del evaluation["disagreements"]["clocked"]
    del evaluation["timing_s"]["clocked"]
    del evaluation["ops"]["snn"]["own"], evaluation["ops"]["ratios"]["own"]
    write_report(tmp_path, evaluation)
    md = (tmp_path / "report.md").read_text()
    assert "SNN (closed form)" in md and "| SNN (clocked)" not in md
    assert "Not run: clocked backend." in md
    assert "ours, own periods" not in md
    assert "closed_form" in format_evaluation_table(evaluation) or "closed form" in format_evaluation_table(evaluation)


def test_minimal_evaluation_does_not_fail(tmp_path):
    minimal = {"model": "custom", "dataset": "mnist", "L": 2.0}
    paths = write_report(tmp_path, minimal)
    md = paths[0].read_text()
    assert "No accuracies" in md and "No operation counts" in md
    assert "none for this model/dataset" in md
    assert format_evaluation_table(minimal).startswith("custom / mnist")


def test_ratios_computed_when_missing_and_infinite_ratio(tmp_path):
    evaluation = make_evaluation()
    del evaluation["ops"]["ratios"]
    evaluation["ops"]["snn"]["hardware"]["mul"] = 0.0
    paths = write_report(tmp_path, evaluation)
    md = paths[0].read_text()
    assert "1.17×" in md and "∞" in md
    evaluation["ops"]["extra"] = {"ratio": math.inf, "nan": math.nan}
    paths = write_report(tmp_path, evaluation)
    data = json.loads(paths[1].read_text())
    assert data["evaluation"]["ops"]["extra"] == {"ratio": None, "nan": None}


def test_percentages_and_fractions_give_the_same_report():
    fractions = make_evaluation()
    percent = copy.deepcopy(fractions)
    acc = percent["accuracy"]
    for entry in (acc["dnn"], acc["gdnn"], *acc["snn"].values()):
        entry["top1"] *= 100
        entry["top5"] *= 100
    percent["agreement"] = {k: v * 100 for k, v in percent["agreement"].items()}
    assert render_markdown(percent) == render_markdown(fractions)


def test_no_paper_reference_for_cifar(tmp_path):
    paths = write_report(tmp_path, make_evaluation(model="vgg_cifar", dataset="cifar10"))
    md = paths[0].read_text()
    assert "paper err." not in md and "paper, Table 2" not in md
    assert json.loads(paths[1].read_text())["paper"] is None


def test_sweep_report(tmp_path):
    sweep = make_sweep()
    paths = write_report(tmp_path, sweep[-1], sweep)
    assert [p.name for p in paths] == ["report.md", "report.json", "sweep_accuracy.png", "sweep_ops.png"]
    assert all(p.stat().st_size > 1000 for p in paths[2:])
    md = paths[0].read_text()
    assert "## Leak constant sweep" in md
    assert "![Accuracy vs L (Figure 4 style)](sweep_accuracy.png)" in md
    assert "](sweep_ops.png)" in md
    # one row per L: L, DNN err, G-DNN err, SNN err, agreement, latency, 4 ratios
    assert "| 1 | 0.84 | 1.53/0.04 | 1.53/0.04 | 99.970 | 17.25 | 1.17× |" in md
    assert "| 3 | 0.84 | 1.20/0.04 |" in md
    assert "L = 1: 98.47; L = 5: 99.08" in md
    data = json.loads(paths[1].read_text())
    assert [e["L"] for e in data["sweep"]] == [1.0, 3.0, 5.0]
    assert _no_temp_files(tmp_path) == []
    # without plots: nothing drawn, nothing linked
    paths = write_report(tmp_path / "noplots", sweep[-1], sweep, plots=False)
    assert len(paths) == 2 and "sweep_ops.png" not in paths[0].read_text()


def test_atomic_write_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "report.md"
    atomic_write(target, "old")
    atomic_write(target, "new")
    assert target.read_text() == "new"

    def failing(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["report.md"]
    # the usual permissions, as if written with open()
    (tmp_path / "plain").write_text("x")
    assert target.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_number_formatting():
    assert human_count(2_239_000) == "2239k"
    assert human_count(357e6) == "357M"
    assert human_count(14_765e6) == "14765M"
    assert human_count(999) == "999"
    assert human_count(None) == "–"
    assert exact_count(2_293_000) == "2,293,000"
    assert exact_count(1234.56) == "1,234.6"


def test_terminal_table():
    text = format_evaluation_table(make_evaluation())
    assert "lenet5 / mnist" in text
    assert "1.10" in text and "0.92" in text  # ours and the paper's top-1 error
    assert "2293k" in text and "2239k" in text
    assert "latency 17.25 steps" in text


def test_synapse_names_from_the_evaluation_schema():
    from tdsnn.report import synapse_layer_names

    evaluation = {"t_il_mean": [9.0, 8.8, 10.9], "layer_names": ["conv1", "fc2", "fc3"]}
    assert synapse_layer_names(evaluation) == ["conv1", "fc2", "fc3"]


def test_paper_comparison_says_what_is_compared(tmp_path):
    from tdsnn.report import paper_comparison

    md = render_markdown(make_evaluation())
    assert "| paper comparison | Lenet [MNIST] (Zhang" in md
    assert "paper err. (%), Table 1 (L = 5)" in md
    assert "Compared: our DNN, G-DNN and SNN errors on 10,000 test images of mnist with the paper's Table 1" in md
    assert "This run is at L" not in md
    md3 = render_markdown(make_evaluation(L=3.0))
    assert "This run is at L = 3, the paper's SNN column at L = 5." in md3
    assert "The paper's SNN figures are at L = 5, this run at L = 3." in md3
    ref, note = paper_comparison(make_evaluation(model="resnet20_cifar", dataset="cifar10"))
    assert ref is None and note.startswith("none for this model/dataset") and "LeNet-5 on MNIST" in note
    data = json.loads(write_report(tmp_path, make_evaluation())[1].read_text())
    assert data["paper_comparison"]["applies"] is True and data["paper_comparison"]["reference"] == "Lenet [MNIST]"


def test_sparse_coding_is_not_compared_with_the_paper(tmp_path):
    from tdsnn.plots.sweep import _sweep_reference

    evaluation = make_evaluation()
    evaluation["coding"] = "sparse"
    paths = write_report(tmp_path, evaluation)
    md = paths[0].read_text()
    for shown_as_if_it_applied in ("paper err.", "paper, Table 2", "previous SNN", "Paper values", "2239k",
                                   "Paper note"):  # fmt: skip
        assert shown_as_if_it_applied not in md
    assert "| paper comparison | Not compared: the paper's Table 1 and Table 2 figures for Lenet [MNIST]" in md
    assert md.count("this run uses sparse coding (zeros silent)") == 3  # settings, Table 1, Table 2
    data = json.loads(paths[1].read_text())
    assert data["paper"] is None
    assert data["paper_comparison"]["applies"] is False
    assert data["paper_comparison"]["reference"] == "Lenet [MNIST]"
    text = format_evaluation_table(evaluation)
    assert "paper err" not in text and "2239k" not in text and "paper comparison: Not compared" in text
    sweep = make_sweep()
    assert _sweep_reference(sweep) is not None
    for e in sweep:
        e["coding"] = "sparse"
    assert _sweep_reference(sweep) is None
    md = render_markdown(sweep[-1], sweep)
    assert "Paper, Figure 4" not in md and "98.47" not in md
