"""Run the benchmarks whose committed JSON artefacts (``docs/performance/``) the speed
figures of docs/performance.md and the README come from, then regenerate the documents'
tables from the artefacts (``results_tables.py``).

    python benchmarks/run_all.py                       # every step below (~25 min on 2 cores)
    python benchmarks/run_all.py --only throughput spot_check
    python benchmarks/run_all.py --dry-run             # print the commands only

Each step is one script of this folder in its own process, with the arguments below; the
benchmark models are trained on first use and cached under ``benchmarks/.cache/``.  The
SpikingJelly comparison (``peer_spikingjelly.py``) needs trained run folders and about an hour
per network; its commands are in docs/performance.md, section "Peer".  Run this on an
otherwise idle machine: the ratios are measured within one process each, but a busy
machine moves them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PERF = HERE.parent / "docs" / "performance"
ISSUE10 = ["--networks", "lenet5", "vgg", "--batch-sizes", "32", "256", "--no-memory"]
STEPS: dict[str, list[str]] = {
    # 1 thread, every network and batch size: the README's speed table
    "throughput": ["throughput.py", "--no-memory", "--threads", "1",
                   "--json", str(PERF / "throughput.json")],
    # issue 10's configurations with 2 threads, idle and with the other core busy
    "throughput_2threads": ["throughput.py", *ISSUE10, "--threads", "2",
                            "--json", str(PERF / "throughput_2threads.json")],
    "throughput_2threads_busy": ["throughput.py", *ISSUE10, "--threads", "2", "--busy",
                                 "--json", str(PERF / "throughput_2threads_busy.json")],
    # the same with OMP_WAIT_POLICY=PASSIVE (ENV below), as the command line runs
    "throughput_2threads_busy_passive": [
        "throughput.py", *ISSUE10, "--threads", "2", "--busy",
        "--json", str(PERF / "throughput_2threads_busy_passive.json")],
    # ResNet-20 with the memory probes
    "throughput_resnet20": ["throughput.py", "--networks", "resnet20", "--threads", "1",
                            "--json", str(PERF / "throughput_resnet20.json")],
    "contention": ["contention.py"],  # the OpenMP wait policies under a busy core
    "spot_check": ["spot_check.py"],  # what the run-time spot check costs
    # glibc's allocator as it comes against the thresholds of tdsnn's command line
    "allocator": ["compare_engines.py", "--before", str(HERE.parent / "src"),
                  "--after", str(HERE.parent / "src"), "--after-env",
                  "MALLOC_MMAP_THRESHOLD_=1073741824", "MALLOC_TRIM_THRESHOLD_=1073741824",
                  "--float32", "--json", str(PERF / "allocator.json")],
    "scaling": ["scaling.py", "--leaks", "5", "--no-memory", "--json", str(PERF / "scaling.json")],
    "profile": ["profile_engine.py", "--json", str(PERF / "profile.json")],
}  # fmt: skip
# Environment variables of a step's process (read when torch loads, so set before).
ENV: dict[str, dict[str, str]] = {"throughput_2threads_busy_passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    commands = [(ENV.get(name, {}), [sys.executable, str(HERE / STEPS[name][0]), *STEPS[name][1:]])
                for name in args.only]  # fmt: skip
    commands.append(({}, [sys.executable, str(HERE / "results_tables.py")]))
    for env, command in commands:
        print("$ " + "".join(f"{k}={v} " for k, v in env.items()) + " ".join(command[1:]), flush=True)
        if args.dry_run:
            continue
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=HERE, env=dict(os.environ, **env))
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
