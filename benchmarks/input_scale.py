"""The input scale (spiking input = pixel/255 * scale) on LeNet-5 / MNIST at L = 5.

From one trained run folder's DNN, for every scale: the G-DNN's test accuracy straight
after ``tdsnn.prepare`` with and without G-compensation (``compensation.measure``), then
the G-DNN fine-tuned (``--epochs``, compensated), converted and evaluated with the
closed-form simulator on every test image (accuracy, agreement with the G-DNN, latency;
``sparsity_tradeoff.one_setting`` in the paper coding).
Each scale works in its own scratch copy of the DNN, so the run is not modified.
Writes ``docs/performance/input_scale.json``; ``benchmarks/results_tables.py`` turns it
into the table of docs/results.md.

    python benchmarks/input_scale.py --run runs/main --scales 1 2 4 8 16 32 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import compensation
from sparsity_tradeoff import one_setting

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "performance" / "input_scale.json"


def fine_tuned(run: Path, work: Path, scale: float, L: float, epochs: int) -> dict:
    """Fine-tune, convert and evaluate one scale in ``work`` (a copy of the run's DNN)."""
    r = one_setting(run, work, coding="paper", lam=0.0, L=L, epochs=epochs, train_limit=None,
                    test_limit=None, device="cpu", progress=False, input_scale=scale)  # fmt: skip
    return {"gdnn": r["gdnn_top1"], "snn": r["snn_top1"], "agreement": r["agreement"],
            "latency_mean": r["latency_mean"], "samples": r["samples"]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a `tdsnn run` / `tdsnn train` folder")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per scale")
    parser.add_argument("--L", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args(argv)
    before = compensation.measure(args.run, args.scales, args.L)
    with tempfile.TemporaryDirectory(prefix="input-scale-") as scratch:
        for entry in before["scales"]:
            scale = entry["input_scale"]
            entry["fine_tuned"] = fine_tuned(args.run, Path(scratch) / f"s{scale:g}", scale, args.L,
                                             args.epochs)  # fmt: skip
            print(f"scale {scale:g}: fine-tuned G-DNN {entry['fine_tuned']['gdnn']:.4f}, SNN "
                  f"{entry['fine_tuned']['snn']:.4f}, latency {entry['fine_tuned']['latency_mean']:.1f}")
    before["finetune_epochs"] = args.epochs
    args.json.write_text(json.dumps(before, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
