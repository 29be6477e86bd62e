"""Process settings for compute-heavy work: OpenMP's wait policy and glibc's allocator.

Both are read when the process starts, so the command line re-executes itself once with
them (:func:`reexec_tuned`); a Python user sets the environment variables before starting
Python, or calls :func:`tune_allocator` for the allocator.

- ``OMP_WAIT_POLICY=PASSIVE`` when the machine is shared (:func:`machine_is_shared`):
  libgomp's idle worker threads sleep instead of spinning.  On a shared machine a
  spinning worker keeps the core another process needs (training slowed down 10-20x,
  the certified SNN 2.5-4.8x, in measurements; ``docs/performance.md``).  On an idle
  machine sleeping costs a wake-up per parallel region, and the certified SNN runs many
  short ones: there passive waiting made it 1.3-2.3x slower with 2 threads, so the
  policy is left to libgomp (spin briefly, then sleep).
- ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` (glibc): by default glibc
  serves a block above a few MiB with a fresh ``mmap`` and returns freed memory at the
  top of the heap to the system, so each activation tensor of a large batch arrives as
  fresh pages that the kernel faults in and zeroes, one 4 KiB page at a time (ResNet-20
  at batch 256: about 23,000 page faults per DNN forward, ``docs/performance/allocator.json``).
  With both thresholds at :data:`ALLOCATOR_BYTES` such blocks come from the heap and
  freed memory is kept for the next batch (``benchmarks/compare_engines.py --after-env``
  measures the DNN and the SNN both ways).
  The cost: freed memory up to that much stays with the process until it ends.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Callable, Mapping, Sequence

ALLOCATOR_BYTES = 1 << 30  # glibc's mmap and trim thresholds under the tuned allocator
MARKER = "TDSNN_TUNED_PROCESS"  # set in the re-executed process: re-execute only once
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def is_glibc() -> bool:
    """Whether this Python runs on glibc (the allocator variables mean nothing elsewhere)."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def is_allocator_variable(name: str) -> bool:
    """Whether an environment variable sets glibc's allocator (``MALLOC_*``,
    ``GLIBC_TUNABLES``)."""
    return name.startswith("MALLOC_") or name == "GLIBC_TUNABLES"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``): training in
    float32 is reproducible on one kind of CPU, not across kinds (their kernels differ)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_is_shared(
    threads: int | None = None, load: float | None = None, cores: int | None = None
) -> bool:
    """Whether other processes occupy cores that this process's ``threads`` (default: every
    usable core, as torch takes) need: the 1-minute load average exceeds the cores left
    over by more than half a core.  ``load`` and ``cores`` default to this machine's; no
    load average (off POSIX) reads as not shared."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return False
    spare = cores - min(threads or cores, cores)
    return load > spare + 0.5


def tuned_environment(
    environ: Mapping[str, str], glibc: bool | None = None, shared: bool | None = None
) -> dict[str, str]:
    """The variables a tuned process adds to ``environ``: only those not already set (an
    explicit ``OMP_WAIT_POLICY=ACTIVE`` or threshold of the user's is respected).
    ``OMP_WAIT_POLICY=PASSIVE`` only on a ``shared`` machine (default:
    :func:`machine_is_shared` now), and not where the user set ``GOMP_SPINCOUNT``."""
    wanted = {}
    if (machine_is_shared() if shared is None else shared) and "GOMP_SPINCOUNT" not in environ:
        wanted["OMP_WAIT_POLICY"] = "PASSIVE"
    if is_glibc() if glibc is None else glibc:
        wanted["MALLOC_MMAP_THRESHOLD_"] = str(ALLOCATOR_BYTES)
        wanted["MALLOC_TRIM_THRESHOLD_"] = str(ALLOCATOR_BYTES)
    return {k: v for k, v in wanted.items() if k not in environ}


def reexec_tuned(
    argv: Sequence[str],
    environ: dict[str, str] | None = None,
    execv: Callable[[str, Sequence[str]], object] = os.execv,
    threads: int | None = None,
) -> bool:
    """Re-execute ``python -m tdsnn.cli argv`` once with :func:`tuned_environment` added
    (the machine judged shared or not for ``threads``, :func:`machine_is_shared`).

    Returns False (and changes nothing) where nothing is missing, where this process is
    already the re-executed one, off POSIX, or when the system refuses the exec; it does
    not return otherwise.
    """
    environ = os.environ if environ is None else environ
    if os.name != "posix" or MARKER in environ:
        return False
    extra = tuned_environment(environ, shared=machine_is_shared(threads))
    if not extra:
        return False
    saved = {k: environ.get(k) for k in (*extra, MARKER)}
    environ.update(extra)
    environ[MARKER] = "1"
    try:
        execv(sys.executable, [sys.executable, "-m", "tdsnn.cli", *argv])
    except OSError:  # cannot re-execute: carry on as we are, the environment as it was
        for key, value in saved.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        return False
    return True  # only when ``execv`` is a stand-in that returns (the tests)


def tune_allocator(threshold: int = ALLOCATOR_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds of this running process (``mallopt``), as
    the command line's environment does: large tensors then reuse heap memory instead
    of fresh pages.  Process-wide and kept until the process ends; returns whether
    glibc accepted both (False off glibc)."""
    if not is_glibc():
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    value = min(int(threshold), 2**31 - 1)
    return bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, value))
