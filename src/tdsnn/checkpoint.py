"""Pickle-free, atomically written checkpoints: a ``.safetensors`` file plus a JSON sidecar.

A checkpoint at ``run/model.safetensors`` is two files:

* ``run/model.safetensors`` - every tensor (model weights under their
  ``state_dict`` names; optimizer / scheduler / RNG tensors of a training state
  under the reserved prefixes ``optim/``, ``sched/`` and ``rng/``), written with
  :func:`safetensors.torch.save_file` and read back without pickle;
* ``run/model.json`` - the metadata (architecture and its kwargs, leak constant
  ``L``, dataset, normalisation, metrics, epoch, ...), the non-tensor structure
  of a training state, and the sha256 of the ``.safetensors`` file, so a sidecar
  that does not belong to its tensors file is detected on load.

Both files are written to temporary files in the target directory, flushed and
fsynced, then moved into place with :func:`os.replace`: tensors first, sidecar
last.  If the sidecar cannot be moved into place, the previous tensors file is
restored, so an exception never leaves a mismatched pair.  A crash between the two
renames can; the sha256 check reports it, and :func:`recover_interrupted_saves`
(run when a writer next takes the run folder) finishes or undoes that save.  Both
files get the ordinary mode of a new file (0666 less the umask).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import random
import uuid
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError

from .errors import TDSNNError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "RESERVED_PREFIXES",
    "CheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "load_metadata",
    "load_state_dict_file",
    "load_training_state",
    "recover_interrupted_saves",
    "restore_rng_state",
    "save_checkpoint",
    "save_training_state",
    "sidecar_path",
]

FORMAT = "tdsnn-checkpoint"
FORMAT_VERSION = 1
RESERVED_PREFIXES = ("optim/", "sched/", "rng/")
MAX_SIDECAR_BYTES = 64 << 20  # a sidecar is metadata: far below this

PathLike = str | os.PathLike[str]


class CheckpointError(TDSNNError, ValueError):
    """A checkpoint cannot be written or read (missing, corrupted, mismatched, unsafe)."""


# ----------------------------------------------------------------------------- paths


def sidecar_path(path: PathLike) -> Path:
    """The JSON sidecar of the tensors file ``path`` (``x.safetensors`` -> ``x.json``)."""
    path = Path(path)
    if path.suffix == ".json":
        raise CheckpointError(f"{str(path)!r}: a checkpoint's tensors file cannot end in .json")
    return path.with_suffix(".json")


def _resolve(path: PathLike) -> tuple[Path, Path]:
    """Return ``(tensors file, sidecar)``; a sidecar path is accepted in place of the tensors file."""
    path = Path(path)
    if path.suffix != ".json":
        return path, sidecar_path(path)
    doc = _read_sidecar(path)
    name = doc.get("tensors_file")
    if not isinstance(name, str) or Path(name).name != name:
        raise CheckpointError(f"sidecar {str(path)!r} has no valid 'tensors_file' entry")
    return path.with_name(name), path


# ------------------------------------------------------------------- atomic writing


def _new_temp(directory: Path, name: str) -> tuple[Path, int]:
    """Create an exclusive, hidden temp file next to the target (same filesystem)."""
    temp = directory / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    return temp, fd


def _file_mode() -> int:
    """The mode a new file gets here (0666 less the umask), for every file of a checkpoint."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Persist renames in ``directory`` (POSIX only; a no-op where unsupported)."""
    if os.name != "posix":
        return
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unlink_quietly(path: Path | None) -> None:
    if path is not None:
        with suppress(FileNotFoundError):
            os.unlink(path)


def _prepare_tensors(tensors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Detached, CPU, contiguous tensors; tensors sharing storage are cloned apart."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise CheckpointError(f"tensor names must be strings, got {key!r}")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{key!r} is a {type(value).__name__}, not a torch.Tensor")
        if value.layout != torch.strided:
            raise CheckpointError(f"{key!r}: only dense tensors can be saved, got {value.layout}")
        t = value.detach().cpu()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[key] = t.contiguous()
    return out


def _write_pair(path: PathLike, tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> None:
    """Atomically write ``tensors`` to ``path`` and ``doc`` (+ sha256) to its sidecar."""
    path = Path(path)
    sidecar = sidecar_path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    try:  # fail on unserialisable metadata before touching the disk
        json.dumps(doc, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint metadata is not JSON-serialisable: {exc}") from exc

    temp_tensors: Path | None = None
    temp_json: Path | None = None
    backup: Path | None = None
    try:
        temp_tensors, fd = _new_temp(directory, path.name)
        os.close(fd)
        safetensors.torch.save_file(tensors, str(temp_tensors), metadata={"format": "pt"})
        os.chmod(temp_tensors, _file_mode())  # safetensors writes 0600; the sidecar gets 0644
        _fsync_path(temp_tensors)
        doc = {**doc, "sha256": _sha256(temp_tensors)}

        temp_json, fd = _new_temp(directory, sidecar.name)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, allow_nan=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())

        # Keep the old tensors file reachable so it can be put back if the sidecar rename fails.
        had_previous = path.exists()
        if had_previous:
            backup = directory / f".{path.name}.{uuid.uuid4().hex[:12]}.bak"
            try:
                os.link(path, backup)
            except OSError:  # no hard links here: fall back to sha256 mismatch detection
                backup = None
        os.replace(temp_tensors, path)
        temp_tensors = None
        try:
            os.replace(temp_json, sidecar)
            temp_json = None
        except BaseException:
            if backup is not None:
                os.replace(backup, path)
                backup = None
            elif not had_previous:
                _unlink_quietly(path)
            raise
        _fsync_dir(directory)
    except OSError as exc:  # a full disk, a read-only folder, ...
        raise CheckpointError(
            f"cannot write checkpoint {str(path)!r}: {exc.strerror or exc}; "
            "any previous checkpoint there is unchanged"
        ) from exc
    finally:
        for leftover in (temp_tensors, temp_json, backup):
            _unlink_quietly(leftover)


# ------------------------------------------------------------------------ recovery


def _leftovers(directory: Path, suffix: str) -> list[tuple[Path, Path]]:
    """``(leftover, target)`` for each ``.<target>.<12 hex>.<suffix>`` file of ``directory``."""
    out = []
    for path in sorted(directory.glob(f".*.{suffix}")):
        stem = path.name[1 : -len(suffix) - 1]
        target, dot, tag = stem.rpartition(".")
        if dot and len(tag) == 12 and all(c in "0123456789abcdef" for c in tag) and target:
            out.append((path, directory / target))
    return out


def recover_interrupted_saves(directory: PathLike) -> list[str]:
    """Complete or undo checkpoint saves that a crash cut short in ``directory``.

    A save renames the new tensors file into place, then the new sidecar.  A crash
    between the two renames leaves the new tensors beside the old sidecar, with the
    new sidecar still in its (complete, fsynced) temporary file and the old tensors
    in a ``.bak`` hard link.  If a temporary sidecar matches the tensors file on
    disk (sha256), it is renamed into place (the save is finished); otherwise, if
    a backup matches the current sidecar, it is put back (the save is undone).
    Leftovers are removed.  Returns one line per action.
    """
    directory = Path(directory)
    done: list[str] = []
    for temp, sidecar in _leftovers(directory, "tmp"):
        if sidecar.suffix != ".json":
            continue
        try:
            doc = json.loads(temp.read_text(encoding="utf-8"))
            tensors = directory / doc["tensors_file"]
            complete = (
                doc.get("format") == FORMAT
                and Path(doc["tensors_file"]).name == doc["tensors_file"]
                and tensors.is_file()
                and _sha256(tensors) == doc["sha256"]
            )
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            complete = False
        if complete:
            os.replace(temp, sidecar)
            done.append(f"finished the interrupted save of {sidecar.name}")
    for backup, tensors in _leftovers(directory, "bak"):
        sidecar = tensors.with_suffix(".json")
        try:
            expected = json.loads(sidecar.read_text(encoding="utf-8"))["sha256"]
            mismatched = not tensors.is_file() or _sha256(tensors) != expected
            restore = mismatched and _sha256(backup) == expected
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            restore = False
        if restore:
            os.replace(backup, tensors)
            done.append(f"undid the interrupted save of {tensors.name}")
    for leftover, _ in _leftovers(directory, "tmp") + _leftovers(directory, "bak"):
        _unlink_quietly(leftover)
        done.append(f"removed leftover {leftover.name}")
    return done


# ------------------------------------------------------------------------- reading


def _read_sidecar(sidecar: Path) -> dict[str, Any]:
    if not sidecar.is_file():
        raise CheckpointError(
            f"checkpoint sidecar {str(sidecar)!r} is missing; a tdsnn checkpoint is a "
            ".safetensors file plus a .json sidecar (use load_state_dict_file for bare weights)"
        )
    try:
        if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            raise CheckpointError(
                f"checkpoint sidecar {str(sidecar)!r} is over {MAX_SIDECAR_BYTES >> 20} MiB"
            )
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint sidecar {str(sidecar)!r} is not valid JSON: {exc}"
        ) from exc
    except RecursionError:
        raise CheckpointError(
            f"checkpoint sidecar {str(sidecar)!r} is nested too deeply to be a tdsnn sidecar"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(sidecar)!r}: {exc.strerror}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{str(sidecar)!r} is not a {FORMAT} sidecar")
    if doc.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(sidecar)!r} has format version {doc.get('version')!r}; "
            f"this tdsnn reads version {FORMAT_VERSION}"
        )
    if not isinstance(doc.get("sha256"), str) or not isinstance(doc.get("metadata"), dict):
        raise CheckpointError(f"{str(sidecar)!r} lacks its 'sha256' or 'metadata' entry")
    return doc


def _read_pair(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint; return all its tensors and the sidecar document."""
    tensors_path, sidecar = _resolve(path)
    if not tensors_path.is_file():
        raise CheckpointError(f"checkpoint file {str(tensors_path)!r} not found")
    doc = _read_sidecar(sidecar)
    try:
        actual = _sha256(tensors_path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(tensors_path)!r}: {exc.strerror}") from None
    if actual != doc["sha256"]:
        raise CheckpointError(
            f"sha256 of {str(tensors_path)!r} ({actual[:12]}...) does not match its sidecar "
            f"{str(sidecar)!r} ({doc['sha256'][:12]}...): the pair is mismatched or the "
            "file was modified (e.g. a save was interrupted)"
        )
    try:
        tensors = safetensors.torch.load_file(str(tensors_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read {str(tensors_path)!r} as safetensors: {exc}") from exc
    return tensors, doc


def _split_reserved(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in tensors.items() if not k.startswith(RESERVED_PREFIXES)}


def _check_model_keys(state_dict: Mapping[str, Any]) -> None:
    bad = [k for k in state_dict if isinstance(k, str) and k.startswith(RESERVED_PREFIXES)]
    if bad:
        raise CheckpointError(f"state_dict keys use a reserved prefix {RESERVED_PREFIXES}: {bad}")


# ----------------------------------------------------------------------- public API


def save_checkpoint(
    path: PathLike, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> None:
    """Atomically write ``state_dict`` to ``path`` (safetensors) and ``metadata`` to its sidecar.

    ``metadata`` must be JSON-serialisable; by convention it holds ``architecture``,
    ``arch_kwargs``, ``L``, ``dataset``, ``normalization``, ``metrics`` and ``epoch``.
    """
    _check_model_keys(state_dict)
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tensors_file": Path(path).name,
        "metadata": dict(metadata),
    }
    _write_pair(path, _prepare_tensors(state_dict), doc)


def load_checkpoint(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint; return ``(state_dict, metadata)`` (model tensors only)."""
    tensors, doc = _read_pair(path)
    return _split_reserved(tensors), doc["metadata"]


def load_metadata(path: PathLike) -> dict[str, Any]:
    """Return a checkpoint's metadata from its sidecar alone (no sha256 check, no tensors)."""
    _, sidecar = _resolve(path)
    return _read_sidecar(sidecar)["metadata"]


_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def load_state_dict_file(path: PathLike) -> dict[str, torch.Tensor]:
    """Load a user's bare weights: a ``.safetensors`` file or a ``torch.save``d state dict.

    ``.pt``/``.pth`` files are read with ``torch.load(weights_only=True)``, which
    refuses pickles holding anything but tensors and plain containers.  A dict
    wrapping the weights under ``state_dict``, ``model_state_dict`` or ``model``
    is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} not found")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {str(path)!r}: it contains objects other than tensors and "
            f"plain containers (torch.load weights_only=True failed: {exc})"
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {str(path)!r} as a PyTorch state dict: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(
            f"{str(path)!r} does not hold a state dict (a mapping of names to tensors)"
        )
    return dict(obj)


# ------------------------------------------------------------------ training state
#
# Optimizer / scheduler / RNG states are nested containers of tensors and plain
# values.  They are split into tensors (stored in the safetensors file under a
# reserved prefix) and a JSON skeleton in which tuples, non-string dict keys,
# numpy arrays and tensors are tagged so that decoding restores them exactly.


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        name = key
        while name in tensors:
            name += "_"
        tensors[name] = obj
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{key}/{k}", tensors) for k, v in obj.items()}
        return {
            "__items__": [
                [_encode(k, f"{key}/k{i}", tensors), _encode(v, f"{key}/{k}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    raise CheckpointError(
        f"cannot store {type(obj).__name__} at {key!r} in a checkpoint "
        "(only tensors, numpy arrays, numbers, strings, None and containers of them)"
    )


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        try:
            return tensors[obj["__tensor__"]]
        except KeyError:
            raise CheckpointError(f"checkpoint lacks tensor {obj['__tensor__']!r}") from None
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"]).reshape(obj["shape"])
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def capture_rng_state() -> dict[str, Any]:
    """Snapshot the torch (CPU and CUDA), python ``random`` and numpy global RNG states."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=True),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore RNG states captured by :func:`capture_rng_state` (missing entries are skipped)."""
    if "torch" in state:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        np.random.set_state(tuple(state["numpy"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([t.cpu() for t in cuda_states])


def save_training_state(
    path: PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    epoch: int = 0,
    step: int = 0,
    rng_state: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Atomically save everything needed to resume training exactly.

    The model weights are stored as in :func:`save_checkpoint` (so the file is also
    an ordinary checkpoint); optimizer, scheduler and RNG tensors go under
    ``optim/``, ``sched/`` and ``rng/``, their non-tensor structure into the
    sidecar.  ``rng_state`` defaults to :func:`capture_rng_state` at call time.
    """
    model_state = model.state_dict()
    _check_model_keys(model_state)
    tensors: dict[str, Any] = dict(model_state)
    training: dict[str, Any] = {"epoch": int(epoch), "step": int(step)}
    parts: list[tuple[str, str, Any]] = [
        ("optimizer", "optim", optimizer.state_dict() if optimizer is not None else None),
        ("scheduler", "sched", scheduler.state_dict() if scheduler is not None else None),
        ("rng", "rng", dict(rng_state) if rng_state is not None else capture_rng_state()),
    ]
    for field, prefix, state in parts:
        if state is None:
            continue
        extra: dict[str, torch.Tensor] = {}
        training[field] = _encode(state, prefix, extra)
        tensors.update(extra)
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tensors_file": Path(path).name,
        "metadata": dict(metadata or {}),
        "training": training,
    }
    _write_pair(path, _prepare_tensors(tensors), doc)


def load_training_state(
    path: PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    *,
    restore_rng: bool = True,
    strict: bool = True,
) -> dict[str, Any]:
    """Load a :func:`save_training_state` checkpoint into ``model``/``optimizer``/``scheduler``.

    Restores the saved RNG states too unless ``restore_rng=False``.  Returns
    ``{"epoch", "step", "metadata", "rng_state"}``.
    """
    tensors, doc = _read_pair(path)
    training = doc.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(
            f"{str(path)!r} holds model weights only, not a training state "
            "(written by save_checkpoint, not save_training_state)"
        )
    model.load_state_dict(_split_reserved(tensors), strict=strict)
    for field, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if field not in training:
            raise CheckpointError(f"{str(path)!r} has no saved {field} state")
        target.load_state_dict(_decode(training[field], tensors))
    rng_state = _decode(training["rng"], tensors) if "rng" in training else None
    if restore_rng and rng_state is not None:
        restore_rng_state(rng_state)
    return {
        "epoch": training.get("epoch", 0),
        "step": training.get("step", 0),
        "metadata": doc["metadata"],
        "rng_state": rng_state,
    }
