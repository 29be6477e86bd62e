"""Choosing LAMBDA without the test set: the sparse coding's targets of issue 9.

The sparse-coding results in docs/results.md chose LAMBDA and the epochs among settings
scored on the 10,000 test images, which favours the chosen setting.  Here the choice is
made on held-out training images instead, and the test set is read once:

1. the DNN trains on the first ``train_images - holdout`` training images
   (``tdsnn train --train-limit``); the next ``holdout`` images are held out;
2. every LAMBDA (at every earliest spike time of ``--min-time``) is fine-tuned (sparse
   coding, the same images), converted, and scored on the held-out images only (``tdsnn evaluate --split holdout``, closed form); with
   ``--paper-reference`` the paper coding is fine-tuned and scored the same way;
3. the rule, fixed before any score: among the settings that meet the targets on the
   held-out images, the one with the fewest synaptic events (``--rule sparsest``, the
   default) or the most accurate (``--rule accurate``); if none does, the one with the
   lowest held-out error (ties: fewer events).  The targets: LeNet-5's (SNN error
   <= 0.8 %, <= 0.3 spikes per neuron, events <= 0.3x the DNN's MACs), or with
   ``--paper-reference`` the CIFAR-10 one (within 0.5 points of the paper coding's
   accuracy, events <= 0.35x the DNN's MACs);
4. the chosen setting alone (and the paper coding, the reference) is scored on the test set.

Writes ``docs/performance/sparsity_select.json``; the run folders stay in ``--out``::

    python benchmarks/sparsity_select.py --out runs/sparse_select
    python benchmarks/sparsity_select.py --out runs/vgg05_select --dataset cifar10 \\
        --model vgg_cifar --arch-kwargs '{"width": 0.5, "depth": 11}' --dnn-epochs 6 --L 8 \\
        --activation-scale auto --lambdas 0.6,0.8,1 --epochs 4 --paper-reference \\
        --test-backends closed_form --json docs/performance/sparsity_select_vgg05.json
    python benchmarks/sparsity_select.py ... --lambdas 0.6,1 --min-time 4,6   # a grid of both
    python benchmarks/sparsity_select.py --out /tmp/select --train-images 1200 --holdout 200 \\
        --lambdas 0.1,0.2 --epochs 1 --dnn-epochs 1 --test-limit 200     # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results_tables import chosen_min_time
from sparsity_tradeoff import _lambdas, _positive, summary

ROOT = Path(__file__).resolve().parents[1]
JSON_OUT = ROOT / "docs" / "performance" / "sparsity_select.json"
# issue 9's LeNet-5 targets; the error in percent, compared at the 0.01 % of 10,000 images
TARGETS = {"error_pct": 0.8, "spikes_per_neuron": 0.3, "events_per_mac": 0.3}
RULES = {
    "sparsest": ("fewest synaptic events among the settings that meet all three targets on the "
                 "held-out images, else the lowest held-out error"),
    # events per image carry over from held-out to test images to the third decimal, accuracy
    # differences of a few tenths do not: this rule spends the margin on the noisy half
    "accurate": ("highest held-out accuracy among the settings that meet all three targets on "
                 "the held-out images, else the lowest held-out error"),
}  # fmt: skip


RELATIVE = {"gap_points": 0.5, "events_per_mac": 0.35}  # issue 9's CIFAR-10 target


def gap(row: dict[str, Any], paper: dict[str, Any]) -> float:
    """Accuracy points below the paper coding, at the 0.01 points of 10,000 images."""
    return round(100.0 * (paper["snn_top1"] - row["snn_top1"]), 2)


def meets(row: dict[str, Any], paper: dict[str, Any] | None = None) -> bool:
    """All three LeNet-5 targets of issue 9 (error, spikes per neuron, events per MAC), or
    with the paper coding's ``paper`` row the CIFAR-10 ones (accuracy gap, events)."""
    if paper is not None:
        return (gap(row, paper) <= RELATIVE["gap_points"]
                and row["events_per_mac"] <= RELATIVE["events_per_mac"])  # fmt: skip
    return (round(100.0 * (1.0 - row["snn_top1"]), 2) <= TARGETS["error_pct"]
            and row["spikes_per_neuron"] <= TARGETS["spikes_per_neuron"]
            and row["events_per_mac"] <= TARGETS["events_per_mac"])  # fmt: skip


def choose(rows: list[dict[str, Any]], paper: dict[str, Any] | None = None,
           rule: str = "sparsest") -> dict[str, Any]:  # fmt: skip
    """A rule of ``RULES`` (step 3 of the module doc), applied to the held-out rows."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {sorted(RULES)}")
    passing = [r for r in rows if meets(r, paper)]
    if passing and rule == "accurate":
        return min(passing, key=lambda r: (1.0 - r["snn_top1"], r["synaptic_events_per_image"]))
    if passing:
        return min(passing, key=lambda r: r["synaptic_events_per_image"])
    return min(rows, key=lambda r: (1.0 - r["snn_top1"], r["synaptic_events_per_image"]))


def _one(
    dnn_dir: Path, work: Path, *, coding: str, lam: float, L: float, epochs: int,
    holdout: int, activation_scales: str | None, progress: bool, distill: float = 0.0,
    resume: bool = False, min_time: int = 1,
) -> dict[str, Any]:
    """Fine-tune one setting from a copy of the DNN, convert it, score it on the held-out
    images (with ``resume``: reuse that score if the folder has it, made alike)."""  # fmt: skip
    from tdsnn.pipeline import convert_run, evaluate_run, finetune
    from tdsnn.runfolder import l_tag

    done = work / f"evaluation_holdout_{l_tag(L)}.json"
    setting = {"coding": coding, "lambda": lam, **({"min_time": min_time} if min_time > 1 else {})}
    if resume and done.is_file() and _made_alike(work, dnn_dir, L, epochs, coding, lam, distill,
                                                 min_time):  # fmt: skip
        held = json.loads(done.read_text())
        if held.get("samples") == holdout:
            return {**setting, **summary(held), "seconds": 0.0, "reused": True}
    work.mkdir(parents=True, exist_ok=True)
    for name in ("dnn.safetensors", "dnn.json"):
        shutil.copy2(dnn_dir / name, work / name)
    start = time.perf_counter()
    finetune(work, L=L, epochs=epochs, coding=coding, sparsity=lam, force=True,
             activation_scales=activation_scales, progress=progress, distill=distill,
             min_time=min_time)  # fmt: skip
    convert_run(work, L=L)
    held = evaluate_run(work, L=L, backends=("closed_form",), limit=holdout, split="holdout",
                        progress=progress)  # fmt: skip
    return {**setting, **summary(held), "seconds": time.perf_counter() - start}


def _folder(lam: float, min_time: int) -> str:
    return f"lambda_{lam:g}" + (f"_t{min_time}" if min_time > 1 else "")


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
    dataset: str = "mnist",
    model: str = "lenet5",
    arch_kwargs: dict[str, Any] | None = None,
    activation_scales: str | None = None,
    paper_reference: bool = False,
    test_backends: tuple[str, ...] = ("closed_form", "clocked"),
    distill: float = 0.0,
    dnn: Path | None = None,
    resume: bool = False,
    min_times: Sequence[int] = (1,),
    rule: str = "sparsest",
) -> dict[str, Any]:
    """Steps 1-4 of the module doc; returns the artefact.  ``min_times``: the earliest spike
    times (``tdsnn.prepare``'s ``min_time``) each LAMBDA is tried at, a grid of both (the
    paper reference has none).  ``rule``: a key of ``RULES``.  ``distill``: every fine-tuning
    (the paper reference's too) distils the DNN with this weight; ``dnn``: a run folder
    whose DNN was trained as step 1 would train it (checked), used instead of training;
    ``resume``: settings already scored on the held-out images alike are not redone."""
    from tdsnn.pipeline import evaluate_run, train_dnn
    from tdsnn.stages import load_split

    total = len(load_split(dataset, "train").labels)
    train_images = total if train_images is None else min(train_images, total)
    if not 0 < holdout < train_images:
        raise SystemExit(f"--holdout must be in 1..{train_images - 1}, got {holdout}")
    first = train_images - holdout
    dnn_dir = out / "dnn"
    tick = time.perf_counter()
    if dnn is not None:
        dnn_dir = dnn
        _check_dnn(dnn, dataset=dataset, model=model, arch_kwargs=arch_kwargs or {},
                   epochs=dnn_epochs, seed=seed, train_limit=first)  # fmt: skip
    else:
        train_dnn(dnn_dir, dataset=dataset, model=model, arch_kwargs=arch_kwargs,
                  epochs=dnn_epochs, seed=seed, train_limit=first, force=True,
                  progress=progress)  # fmt: skip
    common = dict(L=L, epochs=epochs, holdout=holdout, activation_scales=activation_scales,
                  progress=progress, distill=distill, resume=resume)  # fmt: skip
    paper = (_one(dnn_dir, out / "paper", coding="paper", lam=0.0, **common)
             if paper_reference else None)  # fmt: skip
    rows = []
    for k in min_times:
        for lam in lambdas:
            row = _one(dnn_dir, out / _folder(lam, k), coding="sparse", lam=lam, min_time=k,
                       **common)  # fmt: skip
            rows.append({**row, "meets_targets": meets(row, paper)})
    chosen = choose(rows, paper, rule)
    chosen_k = chosen.get("min_time", 1)

    def scored(work: Path, backends: tuple[str, ...]) -> dict[str, Any]:
        test = evaluate_run(work, L=L, backends=backends, limit=test_limit, progress=progress)
        row = {**summary(test), "reproduce": test["reproduce"]}
        if "clocked" in backends:
            row["snn_top1_clocked"] = test["accuracy"]["snn"]["clocked"]["top1"]
            row["agreement_clocked"] = test["agreement"]["clocked"]
        return row

    test = scored(out / _folder(chosen["lambda"], chosen_k), test_backends)
    paper_test = scored(out / "paper", ("closed_form",)) if paper is not None else None
    test["meets_targets"] = meets(test, paper_test)
    return {
        "model": model,
        "arch_kwargs": arch_kwargs or {},
        "dataset": dataset,
        "L": L,
        "finetune_epochs": epochs,
        "distill": distill,
        "min_times": list(min_times),
        "dnn_epochs": dnn_epochs,
        "activation_scales": activation_scales,
        "seed": seed,
        "trained_on": first,
        "held_out": {"first": first, "count": holdout},
        "targets": RELATIVE if paper is not None else TARGETS,
        "rule": RULES[rule],
        "rule_name": rule,
        "paper_holdout": paper,
        "holdout": rows,
        "chosen_lambda": chosen["lambda"],
        "chosen_min_time": chosen_k,
        "test": test,
        "paper_test": paper_test,
        "seconds": time.perf_counter() - tick,
    }


def _made_alike(work: Path, dnn_dir: Path, L: float, epochs: int, coding: str, lam: float,
                distill: float, min_time: int = 1) -> bool:  # fmt: skip
    """Whether ``work`` holds a fine-tuning of this setting from this very DNN."""
    from tdsnn.runfolder import l_tag

    try:
        recipe = json.loads((work / f"gdnn_{l_tag(L)}.json").read_text())["metadata"]["finetune"]
        same_dnn = (work / "dnn.safetensors").read_bytes() == (dnn_dir / "dnn.safetensors").read_bytes()
    except (OSError, KeyError, ValueError):
        return False
    want = {"L": L, "epochs": epochs, "coding": coding, "sparsity": lam, "distill": distill}
    return (same_dnn and all(recipe.get(k) == v for k, v in want.items())
            and recipe.get("min_time", 1) == min_time)  # fmt: skip


def _check_dnn(run: Path, **expected: Any) -> None:
    """Refuse a ``--dnn`` folder whose DNN was not trained as step 1 would train it."""
    meta = json.loads((run / "dnn.json").read_text())["metadata"]
    got = {"dataset": meta.get("dataset"), "model": meta.get("architecture"),
           "arch_kwargs": {k: v for k, v in (meta.get("arch_kwargs") or {}).items()
                           if k != "num_classes"},  # set from the data set
           "epochs": meta["train"].get("epochs"),
           "seed": meta["train"].get("seed"), "train_limit": meta.get("train_limit")}  # fmt: skip
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    if wrong:
        raise SystemExit(f"--dnn {run}: trained otherwise than asked (got, asked): {wrong}")


def _min_times(text: str) -> list[int]:
    """``--min-time``: comma-separated earliest spike times, each at least 1."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1 or len(set(values)) < len(values):
        raise argparse.ArgumentTypeError(f"expected distinct integers of at least 1, got {text!r}")
    return values


def _name(row: dict[str, Any]) -> str:
    k = row.get("min_time", 1)
    return f"LAMBDA {row['lambda']:g}" + (f", k {k}" if k > 1 else "")


def table(data: dict[str, Any]) -> str:
    """The printed table: every setting on the held-out images, then the chosen on test
    (the paper coding beside each, where it is the reference)."""
    head = (f"{'setting':>20}{'images':>10}{'SNN err. %':>12}{'spikes/neuron':>15}"
            f"{'events/MAC':>12}{'targets':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]
    chosen = _name({"lambda": data["chosen_lambda"], "min_time": chosen_min_time(data)})
    rows = [(data["paper_holdout"], "paper", "held out")] if data["paper_holdout"] else []
    rows += [(r, _name(r), "held out") for r in data["holdout"]]
    rows += [(data["paper_test"], "paper", "test")] if data["paper_test"] else []
    rows += [(data["test"], chosen, "test")]
    for r, name, where in rows:
        mark = "" if name == "paper" else ("met" if r["meets_targets"] else "missed")
        lines.append(f"{name:>20}{where:>10}{100 * (1 - r['snn_top1']):>12.2f}"
                     f"{r['spikes_per_neuron']:>15.3f}{r['events_per_mac']:>12.3f}{mark:>9}")  # fmt: skip
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
    parser.add_argument("--dataset", default="mnist", help="data set (default mnist)")
    parser.add_argument("--model", default="lenet5", help="model of the zoo (default lenet5)")
    parser.add_argument("--arch-kwargs", type=json.loads, help="model options as JSON")
    parser.add_argument("--activation-scale", choices=["auto"], default=None,
                        help="per-layer activation scales from data (default: 1)")  # fmt: skip
    parser.add_argument("--paper-reference", action="store_true",
                        help="also fine-tune the paper coding; targets relative to it")
    parser.add_argument("--test-backends", type=lambda s: tuple(s.split(",")),
                        default=("closed_form", "clocked"),
                        help="simulators for the chosen setting on the test set")  # fmt: skip
    parser.add_argument("--distill", type=float, default=0.0,
                        help="distil the DNN in every fine-tuning with this weight (default 0)")
    parser.add_argument("--dnn", type=Path,
                        help="a run folder with the step-1 DNN already trained (checked)")
    parser.add_argument("--min-time", type=_min_times, default=[1],
                        help="earliest spike times, comma-separated: every LAMBDA is tried at "
                             "each (default 1)")  # fmt: skip
    parser.add_argument("--resume", action="store_true",
                        help="reuse the held-out scores of settings already fine-tuned alike in --out")
    parser.add_argument("--rule", choices=sorted(RULES), default="sparsest",
                        help="how the held-out scores choose (default sparsest): "
                             + "; ".join(f"{k}: {v}" for k, v in RULES.items()))  # fmt: skip
    parser.add_argument("--json", type=Path, default=JSON_OUT, help=f"default {JSON_OUT}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    data = select(args.out, args.lambdas, holdout=args.holdout, train_images=args.train_images,
                  epochs=args.epochs, dnn_epochs=args.dnn_epochs, L=args.L, seed=args.seed,
                  test_limit=args.test_limit, progress=not args.quiet, dataset=args.dataset,
                  model=args.model, arch_kwargs=args.arch_kwargs,
                  activation_scales=args.activation_scale, paper_reference=args.paper_reference,
                  test_backends=args.test_backends, distill=args.distill, dnn=args.dnn,
                  resume=args.resume, min_times=args.min_time, rule=args.rule)  # fmt: skip
    print(table(data))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
