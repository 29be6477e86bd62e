"""What G-compensation (ours, not the paper's) does before any fine-tuning.

For each run folder's trained DNN: the G-DNN's test accuracy straight after
``tdsnn.prepare`` (no fine-tuning) with and without ``compensate``, at L = 5 and the run's
input normalisation, for a few input scales, on every test image; the DNN's accuracy
beside it.  Writes ``docs/performance/compensation.json``.

    python benchmarks/compensation.py --run runs/comp_lenet [--run runs/resnet20] [--scales 1 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import tdsnn
from tdsnn.rebuild import load_dnn, normalization
from tdsnn.stages import float_images, load_split

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "performance" / "compensation.json"


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    hits = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
               for i in range(0, len(x), batch))  # fmt: skip
    return hits / len(x)


def measure(run: Path, scales: list[float], L: float) -> dict:
    dnn, meta = load_dnn(run)
    data = load_split(meta["dataset"], "test", meta.get("data_dir"))
    x, y = float_images(data), data.labels
    mean, std = normalization(meta)
    shape = (1, -1, 1, 1)
    dnn_x = (x - torch.tensor(mean).reshape(shape)) / torch.tensor(std).reshape(shape) if mean else x
    row = {"run": run.name, "model": meta.get("architecture"), "dataset": meta["dataset"],
           "samples": len(x), "L": L, "dnn": accuracy(dnn, dnn_x, y), "scales": []}  # fmt: skip
    for scale in scales:
        entry = {"input_scale": scale}
        for compensate in (True, False):
            gdnn = tdsnn.prepare(dnn, L, input_mean=mean, input_std=std, input_scale=scale,
                                 compensate=compensate)  # fmt: skip
            entry["compensated" if compensate else "not_compensated"] = accuracy(gdnn, x * scale, y)
        row["scales"].append(entry)
        print(f"{run.name} scale {scale:g}: DNN {row['dnn']:.4f}, G-DNN compensated "
              f"{entry['compensated']:.4f}, not compensated {entry['not_compensated']:.4f}")
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, type=Path)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--L", type=float, default=5.0)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = [measure(run, args.scales, args.L) for run in args.run]
    OUT.write_text(json.dumps({"L": args.L, "runs": rows}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
