"""Figures 4-5 of the paper for our networks: accuracy and DNN/SNN operations against L,
LeNet-5 (MNIST) beside the AlexNet-style CIFAR-10 network, from the committed sweeps.

    tdsnn run --threads 1 && tdsnn sweep --from runs/main --L 1,2,3,4,5,6,7,8 --epochs 1 --threads 1
    tdsnn run --dataset cifar10 --model alexnet_cifar --width 0.25 --epochs 6 --finetune-epochs 2 \\
        --L 5 --activation-scale auto --backends closed_form --threads 1 --out runs/cifar_alexnet
    tdsnn sweep --from runs/cifar_alexnet --L 1,2,3,4,5,6,7,8 --epochs 1 --activation-scale auto \\
        --backends closed_form --threads 1
    cp runs/main/sweep.json docs/results/main/ && cp runs/cifar_alexnet/sweep.json docs/results/cifar_alexnet/
    python benchmarks/sweep_figures.py        # docs/img/results/sweep_lenet_alexnet.png

The tables of docs/results.md come from the same two files (``benchmarks/results_tables.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = {
    "LeNet-5, MNIST": ROOT / "docs" / "results" / "main" / "sweep.json",
    "AlexNet-style (width 0.25), CIFAR-10": ROOT / "docs" / "results" / "cifar_alexnet" / "sweep.json",
}
OUT = ROOT / "docs" / "img" / "results" / "sweep_lenet_alexnet.png"


def _series(path: Path) -> dict[str, list[float]]:
    runs = sorted(json.loads(path.read_text()), key=lambda e: float(e["L"]))
    out: dict[str, list[float]] = {k: [] for k in ("L", "dnn", "gdnn", "snn", "mul", "add", "total")}
    for run in runs:
        acc = run["accuracy"]
        ratios = run["ops"]["ratios"]["presentation"]
        out["L"].append(float(run["L"]))
        out["dnn"].append(100 * acc["dnn"]["top1"])
        out["gdnn"].append(100 * acc["gdnn"]["top1"])
        out["snn"].append(100 * next(iter(acc["snn"].values()))["top1"])
        for key in ("mul", "add", "total"):
            out[key].append(ratios[f"{key}_ratio"])
    return out


def figure(out: Path = OUT) -> Path:
    """Two columns (the networks), two rows (accuracy, operation ratios) against L."""
    fig, axes = plt.subplots(2, len(SWEEPS), figsize=(9, 6.5), squeeze=False)
    for column, (label, path) in enumerate(SWEEPS.items()):
        s = _series(path)
        top = axes[0][column]
        top.axhline(s["dnn"][0], color="grey", linestyle=":", label="DNN")
        top.plot(s["L"], s["gdnn"], "o-", label="G-DNN")
        top.plot(s["L"], s["snn"], "x--", label="SNN (closed_form)")
        top.set_title(label, fontsize=9)
        top.set_xlabel("L")
        top.set_ylabel("top-1 accuracy (%)")
        top.legend(fontsize=7)
        bottom = axes[1][column]
        for key, marker in (("mul", "o-"), ("add", "s-"), ("total", "^-")):
            bottom.plot(s["L"], s[key], marker, label=f"DNN/SNN {key}")
        bottom.axhline(1.0, color="grey", linestyle=":")
        bottom.set_yscale("log")
        bottom.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        bottom.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        bottom.set_xlabel("L")
        bottom.set_ylabel("DNN ops / SNN ops (presentation)")
        bottom.legend(fontsize=7)
    fig.suptitle("Accuracy and operations against L (the paper's Figures 4 and 5), "
                 "every SNN prediction checked against its G-DNN", fontsize=9)  # fmt: skip
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> int:
    missing = [str(p) for p in SWEEPS.values() if not p.exists()]
    if missing:
        print("missing sweep artefacts: " + ", ".join(missing), file=sys.stderr)
        return 1
    print(figure())
    return 0


if __name__ == "__main__":
    sys.exit(main())
