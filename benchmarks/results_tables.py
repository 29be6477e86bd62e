"""Regenerate the sparse-coding table of docs/results.md from its committed artefacts.

    python benchmarks/results_tables.py            # rewrite the table between the markers
    python benchmarks/results_tables.py --check    # exit 1 if the document differs

Artefacts: ``docs/results/sparse_lenet/evaluation.json`` (the ``tdsnn run`` in sparse
coding; its ``report.json`` beside it) and ``docs/performance/sparsity_tradeoff.json``
(``benchmarks/sparsity_tradeoff.py``: the paper coding and sparse coding at several
LAMBDA from one DNN).  tests/test_results_doc.py keeps the document and the artefacts
in step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results.md"
RUN = ROOT / "docs" / "results" / "sparse_lenet" / "evaluation.json"
TRADEOFF = ROOT / "docs" / "performance" / "sparsity_tradeoff.json"
BEGIN, END = "<!-- sparse:begin -->", "<!-- sparse:end -->"
PAPER_TABLE2 = {"snn_err": 0.92, "dnn_mult": 2239e3, "dnn_add": 2235e3}  # Zhang et al. 2019


def _row(name: str, snn_err: float, spikes: float, events: float, macs: float,
         agreement: str) -> str:  # fmt: skip
    return (f"| {name} | {100 * snn_err:.2f} | {spikes:.3f} | {events / 1e3:,.0f}k | "
            f"{events / macs:.3f}x | {agreement} |")  # fmt: skip


def table() -> str:
    """The Markdown table: the sparse main run, the trade-off points, the paper's Table 2."""
    run = json.loads(RUN.read_text())
    lines = [
        "| setting | SNN err. % | spikes per neuron | synaptic events per image | "
        "events / DNN MACs | agreement with the G-DNN |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    agree = run["agreement"]
    n = run["samples"]
    text = ", ".join(f"{b} {round(v * n):,} / {n:,}" for b, v in agree.items())
    snn = next(iter(run["accuracy"]["snn"].values()))
    lines.append(_row(f"**sparse, LAMBDA = {run['sparsity']:g}** (`tdsnn run`, below)",
                      1 - snn["top1"], run["spikes_per_neuron"],
                      run["synaptic_events_per_image"], run["dnn_macs_per_image"], text))  # fmt: skip
    if TRADEOFF.exists():
        trade = json.loads(TRADEOFF.read_text())
        for r in [trade["paper"], *trade["sparse"]]:
            name = ("paper coding" if r["coding"] == "paper" else
                    f"sparse, LAMBDA = {r['lambda']:g}")  # fmt: skip
            agreement = f"closed_form {round(r['agreement'] * r['samples']):,} / {r['samples']:,}"
            lines.append(_row(f"{name} (trade-off run)", 1 - r["snn_top1"],
                              r["spikes_per_neuron"], r["synaptic_events_per_image"],
                              r["dnn_macs_per_image"], agreement))  # fmt: skip
    lines.append(f"| paper (Table 1-2, its coding) | {PAPER_TABLE2['snn_err']:.2f} | 1 (every "
                 "neuron fires once) | | | |")  # fmt: skip
    return "\n".join(lines)


def doc_table(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    want = table()
    if args.check:
        same = doc_table(text) == want
        print("docs/results.md is up to date" if same else "docs/results.md differs")
        return 0 if same else 1
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + want + "\n" + text[end:])
    print(want)
    return 0


if __name__ == "__main__":
    sys.exit(main())
