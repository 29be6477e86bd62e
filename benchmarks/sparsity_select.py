"""Choosing LAMBDA without the test set: LeNet-5 / MNIST in sparse coding (issue 9).

The sparse-coding results in docs/results.md chose LAMBDA and the epochs among settings
scored on the 10,000 test images, which favours the chosen setting.  Here the choice is
made on held-out training images instead, and the test set is read once:

1. the DNN trains on the first ``train_images - holdout`` training images
   (``tdsnn train --train-limit``); the next ``holdout`` images are held out;
2. every LAMBDA is fine-tuned (sparse coding, the same images), converted, and scored
   on the held-out images only (``tdsnn evaluate --split holdout``, closed form);
3. the rule, fixed before any score: among the settings that meet all three targets on
   the held-out images (SNN error <= 0.8 %, <= 0.3 spikes per neuron, synaptic events
   <= 0.3x the DNN's MACs), the one with the fewest events; if none does, the one with
   the lowest held-out error (ties: fewer events);
4. the chosen setting alone is scored on the test set, with both simulators.

Writes ``docs/performance/sparsity_select.json``; the run folders stay in ``--out``::

    python benchmarks/sparsity_select.py --out runs/sparse_select
    python benchmarks/sparsity_select.py --out /tmp/select --train-images 1200 --holdout 200 \\
        --lambdas 0.1,0.2 --epochs 1 --dnn-epochs 1 --test-limit 200     # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from sparsity_tradeoff import _lambdas, _positive, summary

ROOT = Path(__file__).resolve().parents[1]
JSON_OUT = ROOT / "docs" / "performance" / "sparsity_select.json"
# issue 9's LeNet-5 targets; the error in percent, compared at the 0.01 % of 10,000 images
TARGETS = {"error_pct": 0.8, "spikes_per_neuron": 0.3, "events_per_mac": 0.3}
RULE = ("fewest synaptic events among the settings that meet all three targets on the held-out "
        "images, else the lowest held-out error")  # fmt: skip


def meets(row: dict[str, Any]) -> bool:
    """All three LeNet-5 targets of issue 9 (error, spikes per neuron, events per MAC)."""
    return (round(100.0 * (1.0 - row["snn_top1"]), 2) <= TARGETS["error_pct"]
            and row["spikes_per_neuron"] <= TARGETS["spikes_per_neuron"]
            and row["events_per_mac"] <= TARGETS["events_per_mac"])  # fmt: skip


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule of the module doc, applied to the held-out rows."""
    passing = [r for r in rows if meets(r)]
    if passing:
        return min(passing, key=lambda r: r["synaptic_events_per_image"])
    return min(rows, key=lambda r: (1.0 - r["snn_top1"], r["synaptic_events_per_image"]))


def select(
    out: Path,
    lambdas: list[float],
    *,
    holdout: int,
    train_images: int | None,
    epochs: int,
    dnn_epochs: int,
    L: float,
    seed: int,
    test_limit: int | None,
    progress: bool,
) -> dict[str, Any]:
    """Steps 1-4 of the module doc; returns the artefact."""
    from tdsnn.pipeline import convert_run, evaluate_run, finetune, train_dnn
    from tdsnn.stages import load_split

    total = len(load_split("mnist", "train").labels)
    train_images = total if train_images is None else min(train_images, total)
    if not 0 < holdout < train_images:
        raise SystemExit(f"--holdout must be in 1..{train_images - 1}, got {holdout}")
    first = train_images - holdout
    dnn_dir = out / "dnn"
    tick = time.perf_counter()
    train_dnn(dnn_dir, dataset="mnist", model="lenet5", epochs=dnn_epochs, seed=seed,
              train_limit=first, force=True, progress=progress)  # fmt: skip
    rows = []
    for lam in lambdas:
        work = out / f"lambda_{lam:g}"
        work.mkdir(parents=True, exist_ok=True)
        for name in ("dnn.safetensors", "dnn.json"):
            shutil.copy2(dnn_dir / name, work / name)
        start = time.perf_counter()
        finetune(work, L=L, epochs=epochs, coding="sparse", sparsity=lam, force=True,
                 progress=progress)  # fmt: skip
        convert_run(work, L=L)
        held = evaluate_run(work, L=L, backends=("closed_form",), limit=holdout,
                            split="holdout", progress=progress)  # fmt: skip
        rows.append({"lambda": lam, **summary(held), "meets_targets": meets(summary(held)),
                     "seconds": time.perf_counter() - start})  # fmt: skip
    chosen = choose(rows)
    work = out / f"lambda_{chosen['lambda']:g}"
    test = evaluate_run(work, L=L, backends=("closed_form", "clocked"), limit=test_limit,
                        progress=progress)  # fmt: skip
    return {
        "model": "lenet5",
        "dataset": "mnist",
        "L": L,
        "finetune_epochs": epochs,
        "dnn_epochs": dnn_epochs,
        "seed": seed,
        "trained_on": first,
        "held_out": {"first": first, "count": holdout},
        "targets": TARGETS,
        "rule": RULE,
        "holdout": rows,
        "chosen_lambda": chosen["lambda"],
        "test": {
            **summary(test),
            "snn_top1_clocked": test["accuracy"]["snn"]["clocked"]["top1"],
            "agreement_clocked": test["agreement"]["clocked"],
            "meets_targets": meets(summary(test)),
            "reproduce": test["reproduce"],
        },
        "seconds": time.perf_counter() - tick,
    }


def table(data: dict[str, Any]) -> str:
    """The printed table: every setting on the held-out images, then the chosen on test."""
    head = (f"{'LAMBDA':>7}{'images':>10}{'SNN err. %':>12}{'spikes/neuron':>15}"
            f"{'events/MAC':>12}{'targets':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]
    rows = [(r, "held out") for r in data["holdout"]] + [(data["test"], "test")]
    for r, where in rows:
        lam = data["chosen_lambda"] if where == "test" else r["lambda"]
        lines.append(f"{lam:>7g}{where:>10}{100 * (1 - r['snn_top1']):>12.2f}"
                     f"{r['spikes_per_neuron']:>15.3f}{r['events_per_mac']:>12.3f}"
                     f"{'met' if r['meets_targets'] else 'missed':>9}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the run folders")
    parser.add_argument("--lambdas", type=_lambdas, default=[0.1, 0.125, 0.15, 0.2],
                        help="comma-separated LAMBDA values (default 0.1,0.125,0.15,0.2)")  # fmt: skip
    parser.add_argument("--holdout", type=_positive, default=5000,
                        help="training images held out for the choice (default 5000)")  # fmt: skip
    parser.add_argument("--train-images", type=_positive,
                        help="use only the first N training images (default all)")
    parser.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs (default 6)")
    parser.add_argument("--dnn-epochs", type=int, default=3, help="DNN epochs (default 3)")
    parser.add_argument("--L", type=float, default=5.0, help="leak constant (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-limit", type=_positive, help="score the first N test images")
    parser.add_argument("--json", type=Path, default=JSON_OUT, help=f"default {JSON_OUT}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    data = select(args.out, args.lambdas, holdout=args.holdout, train_images=args.train_images,
                  epochs=args.epochs, dnn_epochs=args.dnn_epochs, L=args.L, seed=args.seed,
                  test_limit=args.test_limit, progress=not args.quiet)  # fmt: skip
    print(table(data))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
