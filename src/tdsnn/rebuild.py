"""Rebuild a run's DNN, G-DNN and SNN from sidecars and tensors, trusting neither.

The trust model (README, "What a run folder may contain"): a run folder is data.

* A sidecar's metadata is checked field by field (:func:`check_metadata`) before
  anything uses it; a wrong type or value is a :class:`PipelineError` naming the
  file and the field.
* A zoo model is rebuilt from its registered name with checked kwargs
  (:func:`tdsnn.models.build_model`).  A user model is rebuilt only from a
  ``--model-spec`` or a Python callable that the user passes at load time, and a
  spec must name the model recorded in the sidecar: the sidecar's own
  ``model_spec`` is never imported or called.
* Tensors are loaded only if their names, shapes and dtypes are exactly the
  model's and every value is finite (:func:`load_weights`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import convert as tdsnn_convert
from . import prepare as tdsnn_prepare
from .checkpoint import CheckpointError, load_checkpoint
from .coding import CODINGS, check_leak
from .errors import TDSNNError
from .models import MODELS, build_model, load_user_model, same_spec
from .prepare import GDNN
from .runfolder import (
    PipelineError,
    check_L,
    check_run_dir,
    dnn_path,
    gdnn_path,
    require,
    snn_path,
)
from .snn.network import SNN

__all__ = [
    "ModelSource",
    "build_architecture",
    "check_metadata",
    "find_L",
    "load_dnn",
    "load_gdnn",
    "load_snn",
    "load_weights",
    "normalization",
    "prepare_from",
]

# What the user names at load time for a run of a user model: a spec or a callable.
ModelSource = str | Callable[..., nn.Module] | None

PathLike = str | os.PathLike[str]

# ------------------------------------------------------------------- metadata


def _int(v: Any, low: int = 0, high: int = 2**63 - 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v: Any) -> bool:
    return _finite(v) and v > 0


def _floats(v: Any, check: Callable[[Any], bool] = _finite) -> bool:
    return isinstance(v, list) and 0 < len(v) <= 4096 and all(check(x) for x in v)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _normalization(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and _floats(v.get("mean"))
        and _floats(v.get("std"), _positive)
        and len(v["mean"]) == len(v["std"])
    )


def _leak(v: Any) -> bool:
    try:
        return _finite(v) and check_leak(v) == v
    except TDSNNError:
        return False


# field -> (check, what is valid); "kinds" say which sidecars must have the field
_COMMON: dict[str, tuple[Callable[[Any], bool], str]] = {
    "architecture": (_optional(lambda v: isinstance(v, str)), "a zoo model name or null"),
    "model_spec": (_optional(lambda v: isinstance(v, str)), "a 'module:function' string or null"),
    "arch_kwargs": (lambda v: isinstance(v, dict), "a JSON object"),
    "input_shape": (
        lambda v: isinstance(v, list) and 1 <= len(v) <= 4 and all(_int(s, 1, 1 << 16) for s in v),
        "a list of 1-4 positive sizes",
    ),
    "dataset": (lambda v: isinstance(v, str) and v != "", "a data set name"),
    "data_dir": (_optional(lambda v: isinstance(v, str)), "a folder path or null"),
    "normalization": (_optional(_normalization), "null or {mean: [...], std: [... > 0]}"),
    "train_limit": (_optional(lambda v: _int(v, 1)), "null or a positive integer"),
    "test_limit": (_optional(lambda v: _int(v, 1)), "null or a positive integer"),
}
_GDNN: dict[str, tuple[Callable[[Any], bool], str]] = {
    "L": (_leak, "a leak constant in the range tdsnn.coding.check_leak accepts"),
    "input_scale": (_positive, "a finite number > 0"),
    "activation_scales": (
        lambda v: v == [] or _floats(v, _positive),
        "a list of finite numbers > 0 (empty: none, as for graphs)",
    ),
    "compensate": (lambda v: isinstance(v, bool), "true or false"),
    "coding": (lambda v: isinstance(v, str) and v in CODINGS, "'paper' or 'sparse'"),
    "min_time": (lambda v: _int(v, 1, 1 << 24), "an integer in 1..2**24"),
}
_SNN: dict[str, tuple[Callable[[Any], bool], str]] = {
    "static_t_il": (
        _optional(lambda v: isinstance(v, list) and 0 < len(v) <= 4096
                  and all(_int(t, 0, 1 << 24) for t in v)),
        "null or a list of integers in 0..2**24",
    ),  # fmt: skip
}
_OPTIONAL = {"architecture", "model_spec", "data_dir", "normalization", "train_limit",
             "test_limit", "compensate", "static_t_il", "coding", "min_time"}  # fmt: skip


def check_metadata(meta: Any, where: PathLike, kind: str) -> dict[str, Any]:
    """``meta`` if it is a valid ``kind`` ('dnn', 'gdnn' or 'snn') sidecar, else a PipelineError."""
    if not isinstance(meta, dict):
        raise PipelineError(f"{str(where)!r}: the sidecar's metadata is not a JSON object")
    fields = dict(_COMMON)
    if kind in ("gdnn", "snn"):
        fields.update(_GDNN)
    if kind == "snn":
        fields.update(_SNN)
    for name, (check, valid) in fields.items():
        if name not in meta:
            if name in _OPTIONAL:
                continue
            raise PipelineError(f"{str(where)!r}: the sidecar lacks the field {name!r} ({valid})")
        if not check(meta[name]):
            raise PipelineError(
                f"{str(where)!r}: field {name!r} is {_short(meta[name])}, expected {valid}"
            )
    if not (meta.get("architecture") or meta.get("model_spec")):
        raise PipelineError(f"{str(where)!r}: the sidecar names no architecture or model spec")
    if kind == "dnn":
        train = meta.get("train")
        if not (isinstance(train, dict) and _int(train.get("batch_size"), 1)
                and _int(train.get("seed"))):  # fmt: skip
            raise PipelineError(
                f"{str(where)!r}: field 'train' must hold the recipe "
                "(an object with an integer 'batch_size' >= 1 and 'seed' >= 0)"
            )
    return meta


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def normalization(meta: dict[str, Any]) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The (mean, std) the DNN was trained with, or (None, None)."""
    norm = meta.get("normalization")
    if not norm:
        return None, None
    return tuple(norm["mean"]), tuple(norm["std"])


# ------------------------------------------------------------------------ models


def build_architecture(
    meta: dict[str, Any], model: ModelSource = None, where: PathLike = "the sidecar"
) -> nn.Module:
    """An untrained model of the architecture recorded in a (checked) sidecar.

    ``model`` is what the user names now for a run of a user model: a
    ``'module:function'`` / ``'file.py:function'`` spec (it must name the recorded
    model) or a callable.  The recorded spec itself is never imported.
    """
    kwargs = dict(meta.get("arch_kwargs") or {})
    recorded = meta.get("model_spec")
    if recorded:
        if model is None:
            raise PipelineError(
                f"{str(where)!r} was made from the user model {recorded!r}; tdsnn never "
                "imports code named in a run folder: pass --model-spec (Python: model=) "
                "naming that model to rebuild it"
            )
        if isinstance(model, str):
            if not same_spec(model, recorded):
                raise PipelineError(
                    f"--model-spec {model!r} does not name the model {recorded!r} that "
                    f"{str(where)!r} was made from (same file name and function, or the same "
                    "module:function)"
                )
            return load_user_model(model, **kwargs)
        if not callable(model):
            raise PipelineError(f"model= must be a spec string or a callable, got {model!r}")
        built = model(**kwargs)
        if not isinstance(built, nn.Module):
            raise PipelineError(f"model= returned a {type(built).__name__}, not an nn.Module")
        return built
    name = meta.get("architecture")
    if model is not None:
        raise PipelineError(
            f"{str(where)!r} holds the zoo model {name!r}: it needs no --model-spec"
        )
    if name not in MODELS:
        raise PipelineError(
            f"{str(where)!r}: unknown architecture {name!r}; available: {', '.join(sorted(MODELS))}"
        )
    return build_model(name, **kwargs)


def load_weights(model: nn.Module, state: dict[str, Tensor], where: PathLike) -> None:
    """``model.load_state_dict(state)`` after checking names, shapes, dtypes and finiteness."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = [f"missing {_names(missing)}" if missing else "",
                 f"unexpected {_names(extra)}" if extra else ""]  # fmt: skip
        raise CheckpointError(
            f"{str(where)!r} does not hold this model's tensors: "
            + "; ".join(p for p in parts if p)
        )
    for key, ref in expected.items():
        got = state[key]
        if got.shape != ref.shape:
            raise CheckpointError(
                f"{str(where)!r}: tensor {key!r} has shape {tuple(got.shape)}, the model "
                f"needs {tuple(ref.shape)}"
            )
        if got.dtype.is_floating_point != ref.dtype.is_floating_point:
            raise CheckpointError(
                f"{str(where)!r}: tensor {key!r} is {got.dtype}, the model needs {ref.dtype}"
            )
        if got.dtype.is_floating_point and not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"{str(where)!r}: tensor {key!r} holds NaN or infinite values")
    model.load_state_dict(state)


def _names(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _load(path: Path, hint: str, kind: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    require(path, hint)
    state, meta = load_checkpoint(path)
    return state, check_metadata(meta, path.with_suffix(".json"), kind)


def find_L(run_dir: Path, kind: str = "gdnn", default: float = 5.0) -> float:
    """The L of the only ``<kind>_L*.safetensors`` of a run (``default`` if several include it)."""
    found: list[float] = []
    for p in run_dir.glob(f"{kind}_L*.safetensors"):
        if p.name.endswith(".state.safetensors"):
            continue
        try:
            found.append(check_leak(float(p.stem.split("_L", 1)[1])))
        except (ValueError, TDSNNError):
            continue  # not a name tdsnn writes
    found.sort()
    if len(found) == 1:
        return found[0]
    if default in found:
        return default
    if not found:
        raise PipelineError(
            f"no {kind}_L*.safetensors in {str(run_dir)!r}: run "
            f"`tdsnn {'finetune' if kind == 'gdnn' else 'convert'} --from {run_dir}` first"
        )
    raise PipelineError(
        f"{str(run_dir)!r} holds {kind} checkpoints for L = "
        f"{', '.join(f'{v:g}' for v in found)}: choose one with --L"
    )


def load_dnn(run_dir: PathLike, model: ModelSource = None) -> tuple[nn.Module, dict[str, Any]]:
    """The trained DNN of a run and its metadata."""
    run = check_run_dir(run_dir)
    path = dnn_path(run)
    state, meta = _load(path, f"train a model first (`tdsnn train --out {run}`)", "dnn")
    net = build_architecture(meta, model, path.with_suffix(".json"))
    load_weights(net, state, path)
    return net.eval(), meta


def prepare_from(dnn: nn.Module, meta: dict[str, Any]) -> GDNN:
    """``tdsnn.prepare`` with the options recorded in a G-DNN sidecar."""
    mean, std = normalization(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already reported when the G-DNN was first made
        return tdsnn_prepare(
            dnn,
            meta["L"],
            input_mean=mean,
            input_std=std,
            input_scale=meta["input_scale"],
            activation_scales=meta["activation_scales"] or None,
            compensate=meta.get("compensate", True),
            coding=meta.get("coding", "paper"),  # runs made before sparse coding: paper
            min_time=meta.get("min_time", 1),  # runs made before min_time: 1
        )


def _prepared(meta: dict[str, Any], model: ModelSource, path: Path) -> GDNN:
    """The G-DNN of a checked sidecar, with engine errors naming the file."""
    where = path.with_suffix(".json")
    net = build_architecture(meta, model, where)
    try:
        return prepare_from(net, meta)
    except PipelineError:
        raise
    except TDSNNError as exc:
        raise PipelineError(f"{str(where)!r}: the recorded options do not fit the model: {exc}") from None


def _stage_checkpoint(
    run_dir: PathLike, L: float | None, kind: str, model: ModelSource
) -> tuple[Path, dict[str, Tensor], dict[str, Any], GDNN]:
    """Path, tensors, checked metadata and rebuilt G-DNN of a run's ``kind`` checkpoint at L."""
    run = check_run_dir(run_dir)
    L = check_L(L) if L is not None else find_L(run, kind)
    path, stage = (gdnn_path(run, L), "finetune") if kind == "gdnn" else (snn_path(run, L), "convert")
    state, meta = _load(path, f"run `tdsnn {stage} --from {run} --L {L:g}` first", kind)
    return path, state, meta, _prepared(meta, model, path)


def load_gdnn(
    run_dir: PathLike, L: float | None = None, model: ModelSource = None
) -> tuple[GDNN, dict[str, Any]]:
    """The fine-tuned G-DNN of a run at ``L`` (default: the only one there)."""
    path, state, meta, gdnn = _stage_checkpoint(run_dir, L, "gdnn", model)
    load_weights(gdnn, state, path)
    return gdnn.eval(), meta


def load_snn(
    run_dir: PathLike, L: float | None = None, model: ModelSource = None
) -> tuple[SNN, dict[str, Any]]:
    """The converted SNN of a run at ``L`` (self-contained: no G-DNN file needed)."""
    path, state, meta, gdnn = _stage_checkpoint(run_dir, L, "snn", model)
    try:
        snn = tdsnn_convert(gdnn, t_il=meta.get("static_t_il"))
    except TDSNNError as exc:
        raise PipelineError(f"{str(path.with_suffix('.json'))!r}: field 'static_t_il': {exc}") from None
    load_weights(snn, state, path)
    return snn.eval(), meta
