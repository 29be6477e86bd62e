"""Collect the sparse-coding ``tdsnn run`` folders of one DNN into one small artefact, so
that every setting tried is on record next to the one quoted.

    python benchmarks/sparse_runs.py runs/sparse_lenet_0.1 runs/sparse_lenet_0.15 ... \\
        --json docs/results/sparse_lenet/runs.json

For each folder: the penalty LAMBDA, the earliest spike time ``min_time`` (1 for runs made
before it existed) and the fine-tuning epochs (from ``gdnn_L5.json``),
and from ``evaluation.json`` the DNN and SNN errors, spikes per neuron, synaptic events
per image and per DNN multiply-accumulate, and each simulator's agreement with the G-DNN.
Nothing is recomputed: the figures are the runs' own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / "docs" / "results" / "sparse_lenet" / "runs.json"


def summary(run: Path) -> dict:
    """One run folder's setting and figures."""
    meta = json.loads((run / "gdnn_L5.json").read_text())["metadata"]
    ev = json.loads((run / "evaluation.json").read_text())
    if ev.get("coding") != "sparse":
        raise SystemExit(f"{run}: not a sparse-coding run")
    return {
        "run": run.name,
        "lambda": meta["sparsity"],
        "min_time": meta.get("min_time", 1),
        "finetune_epochs": len(meta["history"]),
        "samples": ev["samples"],
        "dnn_error": 1 - ev["accuracy"]["dnn"]["top1"],
        "snn_error": {b: 1 - a["top1"] for b, a in ev["accuracy"]["snn"].items()},
        "agreement": ev["agreement"],
        "spikes_per_neuron": ev["spikes_per_neuron"],
        "synaptic_events_per_image": ev["synaptic_events_per_image"],
        "events_per_mac": ev["events_per_mac"],
        "reproduce": ev["reproduce"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="sparse-coding `tdsnn run` folders")
    parser.add_argument("--json", type=Path, default=DEFAULT, help=f"default {DEFAULT}")
    args = parser.parse_args(argv)
    rows = sorted((summary(run) for run in args.runs),
                  key=lambda r: (r["lambda"], r["min_time"], r["finetune_epochs"]))  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": rows}, indent=1) + "\n")
    for r in rows:
        print(f"LAMBDA {r['lambda']:g}, min_time {r['min_time']}, {r['finetune_epochs']} epochs: SNN error "
              f"{100 * max(r['snn_error'].values()):.2f} %, {r['spikes_per_neuron']:.3f} spikes "
              f"per neuron, {r['events_per_mac']:.3f}x the DNN's MACs")  # fmt: skip
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
