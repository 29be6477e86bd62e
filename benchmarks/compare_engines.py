"""The certified closed form of two source trees of tdsnn, against the DNN, in one run.

Machine speed drifts from day to day on a shared machine, so an engine change is
measured against the engine before it in the same run: each round times, in a fresh
process per source tree (``PYTHONPATH=TREE``), the DNN forward and the certified closed
form on the same benchmark model and batch (models of ``benchmarks/.cache``, this
folder's ``common.py`` for both), median of interleaved calls; rounds alternate the trees
so that a burst of load hits both.  The ratio to the DNN is taken within each process.

    git worktree add /tmp/before COMMIT
    export TDSNN_DATA_DIR=$PWD/../shared/data   # the older tree looks beside itself otherwise
    python benchmarks/compare_engines.py --before /tmp/before/src --after src \\
        --json docs/performance/engine_ab.json [--networks lenet5 vgg resnet20] [--rounds 3]

The same tree twice with a different environment measures a process setting, e.g.
glibc's allocator thresholds (``tdsnn.process``; ``docs/performance/allocator.json``)::

    python benchmarks/compare_engines.py --before src --after src --after-env \
        MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 --float32 \
        --json docs/performance/allocator.json

Each child also reports its page faults per call (``ru_minflt``) of each mode.  The
children do not inherit glibc's allocator variables (``MALLOC_*``, ``GLIBC_TUNABLES``):
each tree gets only those of its ``--before-env`` / ``--after-env``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent


def measure(role: str, batch: int, threads: int, repeats: int, float32: bool = False) -> dict:
    """This process's tdsnn: DNN and certified closed-form medians (ms), their ratio, and
    each mode's page faults per call (plain float32 closed form too with ``float32``)."""
    import common as c
    import torch

    import tdsnn

    args = c.parse_args(__doc__, lambda parser: None, ["--threads", str(threads)])
    _, specs, configs, steps = c.setup(args)
    dnn, _, gdnn, _ = c.models(role, specs[role], configs[role], steps)
    snn = tdsnn.convert(gdnn)
    data = c.dataset(specs[role].dataset, "test")
    x = c.repeat_to(c.raw_images(data, batch), batch)
    xn = c.normalise(x, data)
    calls = {"dnn": lambda: dnn(xn), "certified": lambda: snn.run(x, backend="closed_form")}
    if float32:
        calls["float32"] = lambda: snn.run(x, backend="closed_form", precision="float32")
    times: dict[str, list[float]] = {name: [] for name in calls}
    faults = dict.fromkeys(calls, 0)
    with torch.no_grad():
        for fn in calls.values():
            fn()
        for _ in range(repeats):
            for name, fn in calls.items():
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
                faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    ms = {name: 1e3 * median(v) for name, v in times.items()}
    out = {"dnn_ms": ms["dnn"], "certified_ms": ms["certified"],
           "ratio": ms["dnn"] / ms["certified"],
           "faults_per_call": {name: n / repeats for name, n in faults.items()},
           "tdsnn": str(Path(tdsnn.__file__).resolve().parents[1])}  # fmt: skip
    if float32:
        out["float32_ms"], out["float32_ratio"] = ms["float32"], ms["dnn"] / ms["float32"]
    return out


def _commit(tree: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="src folder of the older tree")
    parser.add_argument("--after", type=Path, required=True, help="src folder of the newer tree")
    parser.add_argument("--networks", nargs="+", default=["lenet5", "vgg", "resnet20"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 256])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per process")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--before-env",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="environment variables of the before tree's processes",
    )
    parser.add_argument(
        "--after-env",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="environment variables of the after tree's processes",
    )
    parser.add_argument(
        "--float32", action="store_true", help="also time the plain float32 closed form"
    )
    args = parser.parse_args(argv)
    import common as c

    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, tree in trees.items():
        if not (tree / "tdsnn" / "__init__.py").exists():
            parser.error(f"--{name} {tree}: no tdsnn package there")
    extra = {name: _assignments(parser, getattr(args, f"{name}_env")) for name in trees}
    rows = []
    for role in args.networks:
        for batch in args.batch_sizes:
            runs: dict[str, list[dict]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    env = dict(_inherited(), PYTHONPATH=str(tree), OMP_NUM_THREADS=str(args.threads),
                               **extra[name])  # fmt: skip
                    command = [sys.executable, str(Path(__file__).resolve()), "--child", role,
                               str(batch), str(args.threads), str(args.repeats),
                               str(int(args.float32))]  # fmt: skip
                    done = subprocess.run(command, env=env, capture_output=True, text=True,
                                          cwd=HERE)  # fmt: skip
                    if done.returncode:
                        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    if Path(result["tdsnn"]) != tree:
                        raise SystemExit(f"the child imported tdsnn from {result['tdsnn']}, not {tree}")
                    runs[name].append(result)
            row = {"network": role, "batch": batch}
            for name in trees:
                keys = ["ratio", "dnn_ms", "certified_ms"]
                keys += ["float32_ms", "float32_ratio"] if args.float32 else []
                row[name] = {k: median(r[k] for r in runs[name]) for k in keys}
                row[name]["faults_per_call"] = {
                    k: median(r["faults_per_call"][k] for r in runs[name])
                    for k in runs[name][0]["faults_per_call"]
                }  # fmt: skip
                row[name]["rounds"] = runs[name]
            row["gain"] = row["after"]["ratio"] / row["before"]["ratio"]
            rows.append(row)
            c.log(f"{role} batch {batch}: certified / DNN {row['before']['ratio']:.2f}x before, "
                  f"{row['after']['ratio']:.2f}x after ({row['gain']:.2f}x)")  # fmt: skip
    result = {"machine": c.machine_info(), "threads": args.threads, "rounds": args.rounds,
              "repeats": args.repeats, "trees": {k: {"path": str(v), "commit": _commit(v),
                                                     "env": extra[k]}
                                                 for k, v in trees.items()},
              "rows": rows}  # fmt: skip
    if args.json:
        c.write_json(args.json, result)
        print(args.json)
    return 0


def _inherited() -> dict[str, str]:
    """This process's environment without glibc's allocator settings: each tree gets only
    those its ``--*-env`` names, so that a tuned shell does not tune both sides."""
    from tdsnn.process import is_allocator_variable

    return {k: v for k, v in os.environ.items() if not is_allocator_variable(k)}


def _assignments(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` arguments as a dict."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"{item!r}: expected NAME=VALUE")
        out[name] = value
    return out


if __name__ == "__main__":
    if "--child" in sys.argv:
        role, batch, threads, repeats, float32 = sys.argv[2:7]
        print(json.dumps(measure(role, int(batch), int(threads), int(repeats), bool(int(float32)))))
    else:
        sys.exit(main())
