"""Run folders: file names, one writer at a time, recovery of interrupted saves, JSON results.

A run folder holds data only: ``.safetensors`` tensors, JSON sidecars and JSON
results.  Nothing read from it is ever imported, unpickled or executed (the
models are rebuilt by :mod:`tdsnn.rebuild`).  This module gives the folder's
guarantees:

* **one writer** - :func:`run_lock` takes an exclusive ``flock`` on
  ``<run>/.tdsnn.lock`` for the whole of a stage; a second process gets a
  :class:`PipelineError` naming the holder (pid, host, command, start time).
  The lock is advisory and per folder; it is re-entrant inside one process
  (``run`` calls ``train``, ``finetune``, ... which each take it);
* **nothing half-written** - every file is written to a hidden temporary file
  and renamed into place; when the lock is taken, the leftovers of saves that a
  crash interrupted are recovered or removed (:func:`recover_leftovers`);
* **nothing lost** - a JSON result that cannot be written into the folder (a
  read-only folder, a full disk) is written to a fallback folder that the error
  message names (:func:`write_json`).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, recover_interrupted_saves
from .coding import check_leak
from .errors import TDSNNError
from .files import atomic_write

__all__ = [
    "LOCK_NAME",
    "MAX_JSON_BYTES",
    "PipelineError",
    "check_L",
    "check_run_dir",
    "dnn_path",
    "fallback_dir",
    "gdnn_path",
    "l_tag",
    "make_run_dir",
    "read_json",
    "recover_leftovers",
    "require",
    "run_lock",
    "snn_path",
    "state_path",
    "write_json",
]

LOCK_NAME = ".tdsnn.lock"
MAX_JSON_BYTES = 64 << 20  # no sidecar or result of tdsnn comes near this


class PipelineError(TDSNNError, ValueError):
    """A run folder, stage or option is missing or inconsistent."""


# ------------------------------------------------------------------------------ paths

PathLike = str | os.PathLike[str]


def l_tag(L: float) -> str:
    """File-name tag of a leak constant: 5 -> 'L5', 2.5 -> 'L2.5'."""
    return f"L{float(L):g}"


def dnn_path(run_dir: PathLike) -> Path:
    return Path(run_dir) / "dnn.safetensors"


def gdnn_path(run_dir: PathLike, L: float) -> Path:
    return Path(run_dir) / f"gdnn_{l_tag(L)}.safetensors"


def snn_path(run_dir: PathLike, L: float) -> Path:
    return Path(run_dir) / f"snn_{l_tag(L)}.safetensors"


def state_path(final: Path) -> Path:
    """The resumable training state written next to a stage's final checkpoint."""
    return final.with_name(final.name.replace(".safetensors", ".state.safetensors"))


def check_run_dir(run_dir: PathLike) -> Path:
    """An existing run folder, or a PipelineError saying how to make one."""
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise PipelineError(f"run folder {str(run)!r} is a file, not a folder")
    if not run.is_dir():
        raise PipelineError(f"run folder {str(run)!r} not found (train a model there first)")
    return run


def make_run_dir(out_dir: PathLike) -> Path:
    """Create the run folder ``out_dir`` (and its parents), or say why it cannot be one."""
    out = Path(out_dir)
    for part in (out, *out.parents):
        if part.exists() and not part.is_dir():
            raise PipelineError(f"--out {str(out)!r}: {str(part)!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(f"cannot create run folder {str(out)!r}: {exc.strerror}") from None
    return out


def require(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise PipelineError(f"{str(path)!r} not found: {hint}")
    return path


def check_L(L: float) -> float:
    """``L`` as a float, or a PipelineError saying why it is unusable."""
    try:
        return check_leak(L)
    except TDSNNError as exc:
        raise PipelineError(str(exc)) from None


# ------------------------------------------------------------------------- locking

_HELD: dict[Path, list[Any]] = {}  # resolved run folder -> [fd or None, depth]


def _holder(fd: int) -> str:
    """What the lock file says about the process that holds it."""
    with suppress(OSError, ValueError, UnicodeDecodeError):
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        if isinstance(info, dict):
            return (
                f"pid {info.get('pid')} on {info.get('host')} "
                f"({info.get('command')}, since {info.get('started')})"
            )
    return "another process"


def _open_lock(run: Path) -> int | None:
    """The lock file's descriptor; None where the folder cannot hold one (read-only)."""
    path = run / LOCK_NAME
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        try:  # a read-only folder with a lock file: still serialise with other readers' writers
            return os.open(path, os.O_RDONLY)
        except OSError:
            return None


@contextmanager
def run_lock(run_dir: PathLike, command: str = "tdsnn") -> Iterator[None]:
    """Hold the run folder's writer lock for the ``with`` block (re-entrant in a process).

    On first entry the leftovers of interrupted saves are recovered.  In a
    multi-process job only the main rank locks (the other ranks do not write).
    """
    from .distributed import context

    run = Path(run_dir)
    key = run.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    if not context().is_main:
        yield
        return
    fd = _open_lock(run)
    if fd is not None:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise PipelineError(
                f"run folder {str(run)!r} is in use by {holder}: wait for it to finish, "
                "or use another folder (a lock left by a killed process is released by the "
                "system, so this process is still running)"
            ) from None
        with suppress(OSError):
            os.ftruncate(fd, 0)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(info).encode("utf-8"))
    _HELD[key] = [fd, 1]
    try:
        recover_leftovers(run)
        yield
    finally:
        del _HELD[key]
        if fd is not None:
            os.close(fd)  # closing releases the flock


_TEMP = re.compile(r"^\..+\.(?:[0-9a-f]{12}\.)?(?:tmp|bak)$")


def recover_leftovers(run: Path) -> list[str]:
    """Finish or undo interrupted checkpoint saves, then remove other temporary files.

    Only hidden files that tdsnn's atomic writers make (``.<name>.<hex>.tmp`` /
    ``.bak``, ``.<name>.tmp``) are touched.  Returns what was done, one line each.
    """
    if not run.is_dir():
        return []
    try:
        done = recover_interrupted_saves(run)
    except (OSError, CheckpointError) as exc:
        return [f"recovery skipped: {exc}"]
    for path in sorted(run.iterdir()):
        if _TEMP.match(path.name) and path.is_file():
            with suppress(OSError):
                path.unlink()
                done.append(f"removed leftover {path.name}")
    return done


# --------------------------------------------------------------------------- JSON


def fallback_dir() -> Path:
    """Where results go that cannot be written into their run folder."""
    return Path(os.environ.get("TDSNN_FALLBACK_DIR") or Path(tempfile.gettempdir()) / "tdsnn-kept")


def _atomic_text(path: Path, text: str) -> None:
    atomic_write(path, text)  # a temporary file in the folder, fsynced, renamed into place


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically; if the folder refuses it, keep it in :func:`fallback_dir`.

    Returns the path written.  When only the fallback worked, raises a
    PipelineError that names both paths, so a finished result is never lost.
    """
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    try:
        _atomic_text(path, text)
        return path
    except OSError as exc:
        first = exc
    kept = fallback_dir() / f"{path.parent.name}-{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        _atomic_text(kept, text)
    except OSError as exc:
        print(text, file=sys.stderr)  # the last place left: the terminal
        raise PipelineError(
            f"cannot write {str(path)!r} ({first.strerror}) nor {str(kept)!r} "
            f"({exc.strerror}); the result was printed above"
        ) from None
    raise PipelineError(
        f"cannot write {str(path)!r} ({first.strerror}); the result was kept in {str(kept)!r}"
    )


def read_json(path: Path, hint: str, kind: type | None = None) -> Any:
    """Parse a JSON file of a run (bounded size and depth), optionally of type ``kind``."""
    require(path, hint)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise PipelineError(f"{str(path)!r} is larger than {MAX_JSON_BYTES >> 20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise PipelineError(f"{str(path)!r} is nested too deeply to be a tdsnn file") from None
    except OSError as exc:
        raise PipelineError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    if kind is not None and not isinstance(data, kind):
        raise PipelineError(
            f"{str(path)!r} holds a JSON {type(data).__name__}, expected a {kind.__name__}"
        )
    return data


def _constant(name: str) -> float:
    """NaN and +-Infinity as Python writes them (tdsnn results may hold them)."""
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]
