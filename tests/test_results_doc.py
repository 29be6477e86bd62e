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
