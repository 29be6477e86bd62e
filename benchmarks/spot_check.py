"""What the run-time spot check of certified precision costs, and what thread contention
does to the certified closed form against the DNN.

    python benchmarks/spot_check.py [--threads 1 2] [--batch-sizes 32 256]

Random-weight LeNet-5 and VGG-11-style (width 0.25) networks at L = 5, inputs in
[0, 4]: the DNN forward, the certified closed form with ``spot_checks=0`` (the
default) and ``spot_checks=16``, timed interleaved (median) in one run; the ratios
are measured together.  With ``--busy`` a second process keeps one core busy half of
the time (4 ms on, 4 ms off), as a shared machine would.  Writes
``docs/performance/spot_check.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys

import common as c
import torch

import tdsnn
from tdsnn.models import lenet5, vgg_cifar

OUT = c.DOCS / "performance" / "spot_check.json"


def measure(threads: list[int], batches: list[int], timing: c.TimingConfig) -> list[dict]:
    torch.manual_seed(0)
    nets = [("LeNet-5", lenet5(), (1, 28, 28)),
            ("VGG-11-style w0.25", vgg_cifar(width=0.25, depth=11), (3, 32, 32))]  # fmt: skip
    rows = []
    for name, model, shape in nets:
        model.eval()
        snn = tdsnn.convert(tdsnn.prepare(model, 5.0).eval())
        for n in threads:
            torch.set_num_threads(n)
            for batch in batches:
                x = torch.rand(batch, *shape) * 4.0

                def dnn(model=model, x=x):
                    with torch.no_grad():
                        return model(x)

                fns = {
                    "dnn": dnn,
                    "certified": lambda snn=snn, x=x: snn.run(x, spot_checks=0),
                    "certified+spot": lambda snn=snn, x=x: snn.run(x, spot_checks=16),
                }
                t = {k: v["median_s"] for k, v in c.time_interleaved(fns, timing).items()}
                rows.append({
                    "network": name, "threads": n, "batch": batch, "dnn_ms": 1e3 * t["dnn"],
                    "certified_over_dnn": t["dnn"] / t["certified"],
                    "spot_check_cost": t["certified+spot"] / t["certified"] - 1.0,
                })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| network | threads | batch | DNN (ms) | certified / DNN images/s | spot check (16) cost |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['network']} | {r['threads']} | {r['batch']} | {r['dnn_ms']:.1f} | "
                     f"{r['certified_over_dnn']:.2f}x | {100 * r['spot_check_cost']:+.1f} % |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--busy", action="store_true", help="one core half busy meanwhile")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    timing = c.TimingConfig(target_s=0.3 if args.quick else 1.5, min_repeats=5)
    if args.busy:
        with c.busy_core(duty=0.5):
            rows = measure(args.threads, args.batch_sizes, timing)
    else:
        rows = measure(args.threads, args.batch_sizes, timing)
    result = {"machine": c.machine_info(), "busy": args.busy, "rows": rows}
    if OUT.exists():
        previous = json.loads(OUT.read_text())
        runs = {k: v for k, v in previous.items() if k in ("idle", "busy")}
    else:
        runs = {}
    runs["busy" if args.busy else "idle"] = result
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(runs, indent=1) + "\n")
    print(table(rows))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
