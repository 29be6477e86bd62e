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
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "performance" / "contention.json"
POLICIES = ("ACTIVE", "PASSIVE")


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
    print(json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"), "threads": 2, "rows": rows}))


def main() -> int:
    here = Path(__file__).resolve().parent
    import common as c

    results = []
    with c.busy_core():
        for policy in POLICIES:
            env = dict(os.environ, OMP_WAIT_POLICY=policy)
            done = subprocess.run([sys.executable, str(here / "contention.py"), "--child"], env=env,
                                  capture_output=True, text=True, check=True, cwd=here)  # fmt: skip
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    OUT.write_text(json.dumps({"other_core": "busy (a spinning process)", "runs": results}, indent=1))
    for run in results:
        for row in run["rows"]:
            print(f"{run['policy']:8s} {row['network']:7s} batch {row['batch']:3d}: DNN "
                  f"{row['dnn_ms']:.1f} ms, certified {row['certified_ms']:.1f} ms "
                  f"({row['dnn_ms'] / row['certified_ms']:.2f}x), float32 {row['float32_ms']:.1f} ms "
                  f"({row['dnn_ms'] / row['float32_ms']:.2f}x)")  # fmt: skip
    print(OUT)
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        sys.exit(main())
