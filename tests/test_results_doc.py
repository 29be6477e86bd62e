"""docs/results.md's sparse-coding table is what its committed artefacts give."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tables():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import results_tables

        return results_tables
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_the_sparse_table_is_the_artefacts():
    tables = _tables()
    assert tables.doc_table(tables.DOC.read_text()) == tables.table(), (
        "run `python benchmarks/results_tables.py` and commit the result"
    )


def test_the_committed_sparse_run_is_a_real_tdsnn_evaluation():
    run = json.loads(_tables().RUN.read_text())
    assert run["coding"] == "sparse" and run["samples"] == 10_000
    assert set(run["agreement"]) == {"closed_form", "clocked"}
    report = json.loads((_tables().RUN.parent / "report.json").read_text())
    assert report["evaluation"]["accuracy"] == run["accuracy"]


def test_the_readme_quotes_the_sparse_run():
    run = json.loads(_tables().RUN.read_text())
    readme = (ROOT / "README.md").read_text()
    snn = next(iter(run["accuracy"]["snn"].values()))
    for figure in (f"{100 * (1 - snn['top1']):.2f} %", f"{run['spikes_per_neuron']:.3f} spikes",
                   f"{run['synaptic_events_per_image'] / 1e3:.0f}k synaptic events",
                   f"{run['events_per_mac']:.3f}x"):  # fmt: skip
        assert figure in readme, figure


def test_the_readme_main_job_table_is_the_committed_run():
    run = json.loads((ROOT / "docs" / "results" / "main" / "evaluation.json").read_text())
    readme = (ROOT / "README.md").read_text()
    acc, n = run["accuracy"], run["samples"]
    lat = run["latency"]
    rows = [
        f"| DNN | {100 * (1 - acc['dnn']['top1']):.2f} % | | |",
        f"| G-DNN | {100 * (1 - acc['gdnn']['top1']):.2f} % | | |",
        f"| SNN, closed form | {100 * (1 - acc['snn']['closed_form']['top1']):.2f} % | "
        f"{round(run['agreement']['closed_form'] * n):,} / {n:,} | "
        f"{lat['mean']:.1f} mean ({lat['min']}-{lat['max']}) |",
        f"| SNN, clocked (Algorithm 1) | {100 * (1 - acc['snn']['clocked']['top1']):.2f} % | "
        f"{round(run['agreement']['clocked'] * n):,} / {n:,} | {lat['mean']:.1f} mean |",
    ]
    for row in rows:
        assert row in readme, row


def test_the_resnet_table_is_the_artefacts():
    tables = _tables()
    assert tables.doc_table(tables.DOC.read_text(), tables.RESNET_MARKS) == tables.resnet_table(), (
        "run `python benchmarks/results_tables.py` and commit the result"
    )


def test_the_committed_resnet_runs_are_real_tdsnn_evaluations():
    folder = _tables().RESNET
    runs = {name: json.loads((folder / name).read_text())
            for name in ("evaluation.json", "evaluation_clocked.json", "evaluation_static.json")}  # fmt: skip
    for name, run in runs.items():
        assert run["model"] == "resnet20_cifar" and run["dataset"] == "cifar10", name
        assert run["L"] == 5.0 and run["coding"] == "paper", name
    assert runs["evaluation.json"]["samples"] == 10_000
    assert set(runs["evaluation.json"]["agreement"]) == {"closed_form"}
    assert set(runs["evaluation_clocked.json"]["agreement"]) == {"clocked"}
    assert runs["evaluation_clocked.json"]["samples"] >= 500
    assert runs["evaluation_static.json"]["t_il_mode"] == "static"
    assert runs["evaluation_static.json"]["samples"] == 10_000
    report = json.loads((folder / "report.json").read_text())
    assert report["evaluation"]["accuracy"] == runs["evaluation.json"]["accuracy"]


def test_the_readme_quotes_the_compensation_artefact():
    data = json.loads((ROOT / "docs" / "performance" / "compensation.json").read_text())
    run = data["runs"][0]
    at4 = next(e for e in run["scales"] if e["input_scale"] == 4)
    readme = (ROOT / "README.md").read_text()
    for figure in (f"DNN {100 * run['dnn']:.2f} %", f"keeps {100 * at4['compensated']:.2f} %",
                   f"falls to {100 * at4['not_compensated']:.2f} %"):  # fmt: skip
        assert figure in readme, figure


def test_the_design_note_quotes_the_compensation_artefact():
    data = json.loads((ROOT / "docs" / "performance" / "compensation.json").read_text())
    run = data["runs"][0]
    at4 = next(e for e in run["scales"] if e["input_scale"] == 4)
    design = (ROOT / "docs" / "design.md").read_text()
    assert (f"between {100 * at4['compensated']:.2f} % and {100 * at4['not_compensated']:.2f} % "
            f"(DNN {100 * run['dnn']:.2f} %") in design  # fmt: skip


def test_the_table2_comparison_is_the_artefacts():
    tables = _tables()
    assert tables.doc_table(tables.DOC.read_text(), tables.TABLE2_MARKS) == tables.table2(), (
        "run `python benchmarks/results_tables.py` and commit the result"
    )


def test_the_readme_quotes_the_resnet_runs():
    folder = _tables().RESNET
    run = json.loads((folder / "evaluation.json").read_text())
    clocked = json.loads((folder / "evaluation_clocked.json").read_text())
    readme = (ROOT / "README.md").read_text()
    acc = run["accuracy"]
    for figure in (f"DNN {100 * acc['dnn']['top1']:.2f} %",
                   f"G-DNN and SNN {100 * acc['snn']['closed_form']['top1']:.2f} %",
                   f"{round(clocked['agreement']['clocked'] * clocked['samples']):,} / "
                   f"{clocked['samples']:,} with clocked",
                   f"latency {run['latency']['mean']:.1f} steps"):  # fmt: skip
        assert figure in readme, figure


def test_the_resnet_notes_quote_the_artefacts():
    folder = _tables().RESNET
    run = json.loads((folder / "evaluation.json").read_text())
    static = json.loads((folder / "evaluation_static.json").read_text())
    doc = _tables().DOC.read_text()
    acc = run["accuracy"]
    ratios = run["ops"]["ratios"]
    for figure in (
        f"clips {sum(static['clipped'])} spikes",
        f"{100 * (acc['dnn']['top1'] - acc['gdnn']['top1']):.2f} points",
        f"{run['events_per_mac']:.2f}x the DNN's {run['dnn_macs_per_image'] / 1e6:.2f} M",
        f"total is {1 / ratios['presentation']['total_ratio']:.2f}x the DNN's",
        f"{ratios['own']['total_ratio']:.2f}x and\n  {ratios['hardware']['total_ratio']:.2f}x fewer",
        f"**Latency**: {run['latency']['mean']:.1f} steps",
    ):
        assert figure in doc, figure


def test_the_resnet_speed_paragraph_quotes_its_benchmark():
    data = json.loads((ROOT / "docs" / "performance" / "throughput_resnet20.json").read_text())
    rows = data["networks"][0]["rows"]
    doc = _tables().DOC.read_text()
    for mode, words in (("closed_form", "precision reaches"), ("closed_form_f32", "float32 reaches")):
        ratios = [r["modes"][mode]["ratio_to_dnn"] for r in rows]
        figure = f"{words} {min(ratios):.2f}-{max(ratios):.2f}x"
        assert figure in doc.replace("\n", " "), figure


def test_the_resnet_notes_quote_the_compensation_artefact():
    data = json.loads((ROOT / "docs" / "performance" / "compensation.json").read_text())
    run = next(r for r in data["runs"] if r["run"] == "resnet20")
    at4 = next(e for e in run["scales"] if e["input_scale"] == 4)
    doc = _tables().DOC.read_text()
    assert f"gives {100 * at4['compensated']:.2f} % with" in doc
    assert f"{100 * at4['not_compensated']:.2f} % (chance) without" in doc


def test_the_readme_speed_table_is_the_committed_benchmark_run():
    tables = _tables()
    assert tables.doc_table(tables.README.read_text(), tables.SPEED_MARKS) == tables.speed_table(), (
        "run `python benchmarks/results_tables.py` and commit the result"
    )


def test_the_readme_peer_figures_are_those_of_the_performance_page():
    """The README quotes the SpikingJelly comparison of docs/performance.md (generated with
    docs/performance/run_all.json by the same run): each quoted ratio appears there."""
    import re

    readme = (ROOT / "README.md").read_text()
    start = readme.index("Against SpikingJelly")
    end = readme.index("The sparse\ncoding (above)", start)
    quoted = re.findall(r"\d+\.\d+x", readme[start:end])
    page = (ROOT / "docs" / "performance.md").read_text()
    assert quoted, "no peer figures found in the README"
    for figure in quoted:
        assert figure in page, figure


def test_the_readme_speed_summary_is_the_table_range():
    data = json.loads(_tables().THROUGHPUT.read_text())
    readme = (ROOT / "README.md").read_text()
    for mode, words in (("closed_form", "images/s in the default precision"),
                        ("closed_form_f32", "in plain float32 in our latest")):  # fmt: skip
        ratios = [r["modes"][mode]["ratio_to_dnn"] for n in data["networks"] for r in n["rows"]]
        figure = f"{min(ratios):.2f}-{max(ratios):.2f}x"
        text = readme.replace("\n", " ")
        assert f"{figure} the DNN's {words}" in text or f"{figure} {words}" in text, figure
