"""Two threads with the other core busy: the DNN and the SNN under spinning and passive
OpenMP waiting.

libgomp's worker threads spin between parallel regions (``OMP_WAIT_POLICY=ACTIVE``, the
default); when another process holds one of the cores, a spinning or descheduled worker
delays every parallel region.  This script keeps one core busy with a spinning process
and, for each policy (read by the OpenMP runtime when torch loads, hence one child
process per policy), times the DNN forward and the SNN's closed form (certified and
plain float32) with 2 threads on LeNet-5 and the VGG-11-style network (the benchmark
models of ``benchmarks/.cache``, trained on first use), batch 32 and 256, median of 10
calls after a warm-up, every ratio from one process.

    python benchmarks/contention.py          # writes docs/performance/contention.json

The same comparison on an idle machine, with libgomp's own default (``default``: no
variable set, spinning about 300,000 iterations before it sleeps) beside the two
policies, rounds alternating the policies so that a burst of load hits each::

    python benchmarks/contention.py --idle --policies default ACTIVE PASSIVE --rounds 3 \
        --json docs/performance/contention_idle.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "performance" / "contention.json"
POLICIES = ("ACTIVE", "PASSIVE")
# A policy's environment for the OpenMP runtime; ``default`` sets nothing; ``SPIN<n>``:
# libgomp spins ``n`` iterations between parallel regions before it sleeps.
ENVIRONMENTS = {"ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
                "default": {}, "SPIN300": {"GOMP_SPINCOUNT": "300"},
                "SPIN3000": {"GOMP_SPINCOUNT": "3000"}, "SPIN30000": {"GOMP_SPINCOUNT": "30000"}}  # fmt: skip


def _median_ms(fn, repeats: int = 10) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]


def child() -> None:
    """Measure in this process (its OpenMP policy is the one it was started with)."""
    import common as c
    import torch

    import tdsnn

    args = c.parse_args(__doc__, lambda parser: None, ["--threads", "2"])
    _, specs, configs, steps = c.setup(args)
    rows = []
    for role in ("lenet5", "vgg"):
        spec = specs[role]
        dnn, _ = c.get_dnn(spec, configs[role])
        gdnn, _ = c.get_gdnn(spec, configs[role], dnn, 5.0, steps)
        snn = tdsnn.convert(gdnn)
        data = c.dataset(spec.dataset, "test")
        for batch in (32, 256):
            x = c.raw_images(data, batch, 0)
            xn = c.normalise(x, data)
            calls = {"dnn": lambda dnn=dnn, xn=xn: dnn(xn)}
            for precision in ("certified", "float32"):
                calls[precision] = lambda snn=snn, x=x, p=precision: snn.run(x, precision=p)
            with torch.no_grad():
                row = {"network": role, "batch": batch}
                row.update({f"{name}_ms": _median_ms(fn) for name, fn in calls.items()})
            rows.append(row)
    policy = os.environ.get("OMP_WAIT_POLICY") or (
        f"SPIN{os.environ['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in os.environ else "default")
    print(json.dumps({"policy": policy, "threads": 2,
                      "rows": rows}))  # fmt: skip


def _median_row(rows: list[dict]) -> dict:
    """The per-mode median over rounds of one network and batch."""
    out = {k: rows[0][k] for k in ("network", "batch")}
    for key in (k for k in rows[0] if k.endswith("_ms")):
        out[key] = sorted(r[key] for r in rows)[len(rows) // 2]
    if len(rows) > 1:
        out["rounds_ms"] = [{k: r[k] for k in r if k.endswith("_ms")} for r in rows]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", action="store_true", help="leave the other core idle")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=sorted(ENVIRONMENTS))
    parser.add_argument("--rounds", type=int, default=1, help="child processes per policy")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    import common as c

    runs: dict[str, list[dict]] = {policy: [] for policy in args.policies}
    with contextlib.nullcontext() if args.idle else c.busy_core():
        for _ in range(args.rounds):
            for policy in args.policies:
                env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
                env.update(ENVIRONMENTS[policy])
                done = subprocess.run([sys.executable, str(here / "contention.py"), "--child"],
                                      env=env, capture_output=True, text=True, check=True,
                                      cwd=here)  # fmt: skip
                runs[policy].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = []
    for policy, done in runs.items():
        rows = [_median_row([run["rows"][i] for run in done]) for i in range(len(done[0]["rows"]))]
        results.append({"policy": policy, "threads": 2, "rounds": len(done), "rows": rows})
    other = "idle" if args.idle else "busy (a spinning process)"
    args.json.write_text(json.dumps({"other_core": other, "machine": c.machine_info(),
                                     "runs": results}, indent=1))  # fmt: skip
    for run in results:
        for row in run["rows"]:
            print(f"{run['policy']:8s} {row['network']:7s} batch {row['batch']:3d}: DNN "
                  f"{row['dnn_ms']:.1f} ms, certified {row['certified_ms']:.1f} ms "
                  f"({row['dnn_ms'] / row['certified_ms']:.2f}x), float32 {row['float32_ms']:.1f} ms "
                  f"({row['dnn_ms'] / row['float32_ms']:.2f}x)")  # fmt: skip
    print(args.json)
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        sys.exit(main())
