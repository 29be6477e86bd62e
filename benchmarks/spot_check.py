"""What the run-time spot check of certified precision costs, and what thread contention
does to the certified closed form against the DNN.

    python benchmarks/spot_check.py [--threads 1 2] [--batch-sizes 32 256] [--counts 4 8 16]

Random-weight LeNet-5, VGG-11-style (width 0.25) and ResNet-20 networks at L = 5, inputs in
[0, 4]: the DNN forward and the certified closed form with ``spot_checks=0``, timed
interleaved (median), and the cost of the default (``spot_checks=None``:
``DEFAULT_SPOT_CHECKS`` neurons in each certified layer of at least ``SPOT_MIN_MACS``
multiply-accumulates) and of each count of ``--counts`` (every certified layer) as the
median ratio of back-to-back pairs against ``spot_checks=0`` (alternating order), all
in one run.  On this shared machine medians of separate series moved by 5-20 % between runs
(the heap's state after the previous call counts), which pairs cancel.  With ``--busy`` a second process keeps one core busy half of
the time (4 ms on, 4 ms off), as a shared machine would.  Writes
``docs/performance/spot_check.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import common as c
import torch

import tdsnn
from tdsnn.models import lenet5, resnet20_cifar, vgg_cifar
from tdsnn.snn import certified

OUT = c.DOCS / "performance" / "spot_check.json"


def measure(
    threads: list[int], batches: list[int], timing: c.TimingConfig, counts: list[int]
) -> list[dict]:
    torch.manual_seed(0)
    nets = [("LeNet-5", lenet5(), (1, 28, 28)),
            ("VGG-11-style w0.25", vgg_cifar(width=0.25, depth=11), (3, 32, 32)),
            ("ResNet-20", resnet20_cifar(), (3, 32, 32))]  # fmt: skip
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

                fns = {"dnn": dnn, "certified": lambda snn=snn, x=x: snn.run(x, spot_checks=0)}
                t = {k: v["median_s"] for k, v in c.time_interleaved(fns, timing).items()}
                rounds = max(16, min(60, round(3 * timing.target_s / t["certified"])))
                variants = {"default": lambda snn=snn, x=x: snn.run(x)}
                for k in counts:
                    variants[str(k)] = lambda snn=snn, x=x, k=k: snn.run(x, spot_checks=k)
                costs = {name: paired_cost(fns["certified"], fn, rounds)
                         for name, fn in variants.items()}  # fmt: skip
                reports = [r for r in snn.run(x).extras["certified"] if not r.full_float64]
                rows.append({
                    "network": name, "threads": n, "batch": batch, "dnn_ms": 1e3 * t["dnn"],
                    "certified_over_dnn": t["dnn"] / t["certified"],
                    "spot_check_cost": costs, "rounds": rounds,
                    "float32_layers": len(reports),
                    "checked_by_default": sum(r.spot_checked > 0 for r in reports),
                })  # fmt: skip
    return rows


def paired_cost(base, variant, rounds: int) -> float:
    """Median over ``rounds`` of ``time(variant) / time(base) - 1``, each round timing the
    two back to back in alternating order (ABBA): a slow spell of the shared machine
    hits both halves of a pair, and neither always runs first."""
    base(), variant()
    ratios = []
    for r in range(rounds):
        pair = [base, variant] if r % 2 == 0 else [variant, base]
        seconds = []
        for fn in pair:
            t0 = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
        if r % 2:
            seconds.reverse()
        ratios.append(seconds[1] / seconds[0])
    return statistics.median(ratios) - 1.0


def table(rows: list[dict]) -> str:
    counts = list(rows[0]["spot_check_cost"]) if rows else []
    lines = ["| network | threads | batch | DNN (ms) | certified / DNN images/s | checked by default | "
             + " | ".join(f"spot check ({k}) cost" for k in counts) + " |",
             "| --- " * (6 + len(counts)) + "|"]  # fmt: skip
    for r in rows:
        costs = " | ".join(f"{100 * r['spot_check_cost'][k]:+.1f} %" for k in counts)
        lines.append(f"| {r['network']} | {r['threads']} | {r['batch']} | {r['dnn_ms']:.1f} | "
                     f"{r['certified_over_dnn']:.2f}x | {r['checked_by_default']} of "
                     f"{r['float32_layers']} | {costs} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--busy", action="store_true", help="one core half busy meanwhile")
    parser.add_argument("--counts", type=int, nargs="+", default=[4, 8, 16],
                        help="spot_checks values to time against spot_checks=0")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    timing = c.TimingConfig(target_s=0.3 if args.quick else 1.5, min_repeats=5)
    if args.busy:
        with c.busy_core(duty=0.5):
            rows = measure(args.threads, args.batch_sizes, timing, args.counts)
    else:
        rows = measure(args.threads, args.batch_sizes, timing, args.counts)
    result = {"machine": c.machine_info(), "busy": args.busy, "rows": rows,
              "default_spot_checks": certified.DEFAULT_SPOT_CHECKS,
              "spot_min_macs": certified.SPOT_MIN_MACS}
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
