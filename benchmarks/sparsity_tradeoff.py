"""Accuracy against spikes: the sparse coding's sparsity penalty LAMBDA (LeNet-5, L = 5).

From a trained run folder (``tdsnn train``), for every LAMBDA: fine-tune the G-DNN in
sparse coding with the penalty ``LAMBDA * soft fraction of synaptic events``
(:mod:`tdsnn.sparsity`), convert it and evaluate the closed-form SNN on the test set;
the paper's coding (every neuron fires once) is fine-tuned the same way as the
reference point.  Everything happens in a scratch folder (a copy of the run's DNN per
setting), so the given run is not modified.

Writes ``docs/performance/sparsity_tradeoff.json`` (one row per setting: LAMBDA, SNN
accuracy, spikes per neuron, synaptic events per image, events per DNN MAC, agreement
with the G-DNN) and ``docs/img/sparsity_tradeoff.png`` (accuracy against spikes per
neuron), and prints a table::

    python benchmarks/sparsity_tradeoff.py --run runs/main
    python benchmarks/sparsity_tradeoff.py --run runs/main --lambdas 0,1 --epochs 1 \\
        --train-limit 2000 --test-limit 500        # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JSON_OUT = ROOT / "docs" / "performance" / "sparsity_tradeoff.json"
PLOT_OUT = ROOT / "docs" / "img" / "sparsity_tradeoff.png"
LAMBDAS = (0.0, 0.5, 1.0, 2.0)


def _lambdas(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"LAMBDA values must be numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"LAMBDA values must be finite and >= 0, got {text!r}")
    return values


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def one_setting(
    run: Path,
    work: Path,
    *,
    coding: str,
    lam: float,
    L: float,
    epochs: int,
    train_limit: int | None,
    test_limit: int | None,
    device: str,
    progress: bool,
    activation_scales: str | None = None,
    input_scale: float | None = None,
    min_time: int = 1,
) -> dict[str, Any]:
    """Fine-tune, convert and evaluate (closed form) one setting in its own copy of the run
    (``input_scale``: the spiking input's scale, default the pipeline's; ``min_time``: the
    sparse coding's earliest spike time, ``tdsnn.prepare``)."""
    from tdsnn.pipeline import convert_run, evaluate_run, finetune

    work.mkdir(parents=True, exist_ok=True)
    for name in ("dnn.safetensors", "dnn.json"):
        shutil.copy2(run / name, work / name)
    tick = time.perf_counter()
    finetune(
        work, L=L, epochs=epochs, coding=coding, sparsity=lam, train_limit=train_limit,
        test_limit=test_limit, force=True, progress=progress, device=device,
        activation_scales=activation_scales, min_time=min_time,
        **({} if input_scale is None else {"input_scale": input_scale}),
    )  # fmt: skip
    convert_run(work, L=L)
    result = evaluate_run(
        work, L=L, backends=("closed_form",), limit=test_limit, progress=progress, device=device
    )
    return {"coding": coding, "lambda": lam, "min_time": min_time, **summary(result),
            "seconds": time.perf_counter() - tick}  # fmt: skip


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The figures of one ``evaluate_run`` result (closed form) that a trade-off row keeps."""
    return {
        "snn_top1": result["accuracy"]["snn"]["closed_form"]["top1"],
        "gdnn_top1": result["accuracy"]["gdnn"]["top1"],
        "dnn_top1": result["accuracy"]["dnn"]["top1"],
        "agreement": result["agreement"]["closed_form"],
        "spikes_per_neuron": result["spikes_per_neuron"],
        "spikes_per_image": result["spikes_per_sample"],
        "synaptic_events_per_image": result["synaptic_events_per_image"],
        "dnn_macs_per_image": result["dnn_macs_per_image"],
        "events_per_mac": result["events_per_mac"],
        "latency_mean": result["latency"]["mean"],
        "energy_pj_presentation": result["energy_pj"]["snn_presentation"],
        "samples": result["samples"],
    }


def tradeoff(
    run: Path,
    lambdas: Sequence[float] = LAMBDAS,
    *,
    L: float = 5.0,
    epochs: int = 1,
    train_limit: int | None = None,
    test_limit: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    work_dir: Path | None = None,
    activation_scales: str | None = None,
) -> dict[str, Any]:
    """The paper-coding reference and one sparse-coding row per LAMBDA (see the module doc)."""
    from tdsnn.runfolder import check_run_dir

    run = check_run_dir(run)
    if not (run / "dnn.safetensors").is_file():
        raise SystemExit(f"{run}: no dnn.safetensors (make it with `tdsnn train --out {run}`)")
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="sparsity-tradeoff-") as scratch:
        common = dict(L=L, epochs=epochs, train_limit=train_limit, test_limit=test_limit,
                      device=device, progress=progress, activation_scales=activation_scales)  # fmt: skip
        paper = one_setting(run, Path(scratch) / "paper", coding="paper", lam=0.0, **common)
        rows = [
            one_setting(run, Path(scratch) / f"sparse_{i}", coding="sparse", lam=lam, **common)
            for i, lam in enumerate(lambdas)
        ]
    return {
        "run": str(run),
        "model": _model_name(run),
        "L": L,
        "finetune_epochs": epochs,
        "activation_scales": activation_scales,
        "train_limit": train_limit,
        "test_limit": test_limit,
        "backend": "closed_form",
        "paper": paper,
        "sparse": rows,
    }


def _model_name(run: Path) -> str:
    from tdsnn.checkpoint import load_metadata

    meta = load_metadata(run / "dnn.safetensors")
    return str(meta.get("architecture") or meta.get("model_spec") or "model")


def table(data: dict[str, Any]) -> str:
    """The printed table: one line per setting."""
    head = (f"{'coding':<8}{'LAMBDA':>7}{'SNN acc %':>10}{'agree':>8}{'spikes/neuron':>15}"
            f"{'events/image':>14}{'events/MAC':>12}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for row in [data["paper"], *data["sparse"]]:
        lines.append(
            f"{row['coding']:<8}{row['lambda']:>7g}{100 * row['snn_top1']:>10.2f}"
            f"{row['agreement']:>8.4f}{row['spikes_per_neuron']:>15.4f}"
            f"{row['synaptic_events_per_image']:>14.0f}{row['events_per_mac']:>12.4f}"
        )
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> Path:
    """SNN accuracy against spikes per neuron: one point per LAMBDA, the paper's coding marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    rows = data["sparse"]
    xs = [r["spikes_per_neuron"] for r in rows]
    ys = [100 * r["snn_top1"] for r in rows]
    ax.plot(xs, ys, "o-", color="C0", label="sparse coding")
    for r, x, y in zip(rows, xs, ys, strict=True):
        ax.annotate(f"λ={r['lambda']:g}", (x, y), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)  # fmt: skip
    p = data["paper"]
    ax.plot([p["spikes_per_neuron"]], [100 * p["snn_top1"]], "s", color="C3",
            label="paper coding (every neuron fires once)")  # fmt: skip
    ax.set_xlabel("spikes per spiking neuron (input, hidden and max-pool layers)")
    ax.set_ylabel("SNN top-1 accuracy (%)")
    ax.set_xlim(0, 1.05)
    ax.set_title(f"Accuracy vs spikes, L={data['L']:g}, {data['finetune_epochs']} fine-tuning "
                 f"epoch(s), {p['samples']} test images", fontsize=10)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder from `tdsnn train`")
    parser.add_argument("--lambdas", type=_lambdas, default=list(LAMBDAS),
                        help="comma-separated LAMBDA values (default 0,0.5,1,2)")  # fmt: skip
    parser.add_argument("--L", type=float, default=5.0, help="leak constant (default 5)")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (default 1)")
    parser.add_argument("--train-limit", type=_positive, help="fine-tune on the first N images")
    parser.add_argument("--test-limit", type=_positive, help="evaluate the first N test images")
    parser.add_argument("--json", type=Path, default=JSON_OUT, help=f"default {JSON_OUT}")
    parser.add_argument("--plot", type=Path, default=PLOT_OUT, help=f"default {PLOT_OUT}")
    parser.add_argument("--work-dir", type=Path, help="where the scratch folder goes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--activation-scale", choices=["auto"], default=None,
                        help="per-layer activation scales calibrated before fine-tuning (deep networks)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    data = tradeoff(
        args.run, args.lambdas, L=args.L, epochs=args.epochs, train_limit=args.train_limit,
        test_limit=args.test_limit, device=args.device, progress=not args.quiet,
        work_dir=args.work_dir, activation_scales=args.activation_scale,
    )  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    plot(data, args.plot)
    print(table(data))
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
