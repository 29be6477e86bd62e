"""The Figure-2 pipeline over a run folder: train, prepare + fine-tune, convert, evaluate.

Every stage reads what the previous one wrote and writes pickle-free checkpoints
(``.safetensors`` + JSON sidecar, :mod:`tdsnn.checkpoint`)::

    runs/x/dnn.safetensors            trained DNN                    (train_dnn)
    runs/x/gdnn_L5.safetensors        fine-tuned G-DNN at L=5        (finetune)
    runs/x/snn_L5.safetensors         converted SNN                  (convert_run)
    runs/x/evaluation.json            DNN / G-DNN / SNN metrics      (evaluate_run)
    runs/x/sweep.json                 one evaluation per L           (sweep)
    runs/x/sweep/                     the sweep's own per-L checkpoints
    runs/x/*.state.safetensors        resumable training states

Models are rebuilt from the sidecar (architecture name or ``module:function``
spec, constructor kwargs) plus the tensors, never unpickled.  The G-DNN is rebuilt
by running :func:`tdsnn.prepare` on the DNN architecture with the saved options
and loading its weights; the SNN by converting that G-DNN (static ``T_il`` from
the sidecar) and loading its buffers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import convert as tdsnn_convert
from . import prepare as tdsnn_prepare
from .checkpoint import CheckpointError, load_checkpoint, load_metadata, save_checkpoint
from .coding import check_leak
from .data import ImageDataset, load_dataset, to_float
from .distributed import barrier, context, make_eval_loader, make_train_loader
from .errors import TDSNNError
from .evaluation import BACKENDS, InputSpec, evaluate
from .models import MODELS, build_model, load_user_model
from .prepare import GDNN
from .snn.network import SNN
from .training import seed_everything, train

__all__ = [
    "DEFAULTS",
    "PipelineError",
    "convert_run",
    "dnn_path",
    "evaluate_run",
    "finetune",
    "gdnn_path",
    "inspect_run",
    "load_dnn",
    "load_gdnn",
    "load_snn",
    "report_run",
    "run_all",
    "snn_path",
    "sweep",
    "sweep_dir",
    "train_dnn",
]


class PipelineError(TDSNNError, ValueError):
    """A run folder, stage or option is missing or inconsistent."""


@dataclass(frozen=True)
class Defaults:
    """The main job's recipe (LeNet-5 on MNIST, paper Table 1), chosen by measurement."""

    dataset: str = "mnist"
    model: str = "lenet5"
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    L: float = 5.0
    finetune_epochs: int = 2
    finetune_lr: float = 1e-4
    input_scale: float = 4.0
    activation_scale: float = 1.0
    checkpoint_every: int = 200


DEFAULTS = Defaults()
AUTO_SCALE_IMAGES = 2000  # training images used by --activation-scale auto


# ------------------------------------------------------------------------------ paths


def l_tag(L: float) -> str:
    """File-name tag of a leak constant: 5 -> 'L5', 2.5 -> 'L2.5'."""
    return f"L{float(L):g}"


def dnn_path(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / "dnn.safetensors"


def gdnn_path(run_dir: str | os.PathLike[str], L: float) -> Path:
    return Path(run_dir) / f"gdnn_{l_tag(L)}.safetensors"


def snn_path(run_dir: str | os.PathLike[str], L: float) -> Path:
    return Path(run_dir) / f"snn_{l_tag(L)}.safetensors"


def state_path(final: Path) -> Path:
    """The resumable training state written next to a stage's final checkpoint."""
    return final.with_name(final.name.replace(".safetensors", ".state.safetensors"))


def check_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        raise PipelineError(f"run folder {str(run)!r} not found (train a model there first)")
    return run


def _require(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise PipelineError(f"{str(path)!r} not found: {hint}")
    return path


def check_L(L: float) -> float:
    """``L`` as a float, or a PipelineError saying why it is unusable."""
    try:
        return check_leak(L)
    except TDSNNError as exc:
        raise PipelineError(str(exc)) from None


def find_L(run_dir: Path, kind: str = "gdnn") -> float:
    """The L of the only ``<kind>_L*.safetensors`` of a run (5 if several include it)."""
    found = sorted(
        float(p.stem.split("_L", 1)[1])
        for p in run_dir.glob(f"{kind}_L*.safetensors")
        if not p.name.endswith(".state.safetensors")
    )
    if len(found) == 1:
        return found[0]
    if DEFAULTS.L in found:
        return DEFAULTS.L
    if not found:
        raise PipelineError(
            f"no {kind}_L*.safetensors in {str(run_dir)!r}: run "
            f"`tdsnn {'finetune' if kind == 'gdnn' else 'convert'} --from {run_dir}` first"
        )
    raise PipelineError(
        f"{str(run_dir)!r} holds {kind} checkpoints for L = "
        f"{', '.join(f'{v:g}' for v in found)}: choose one with --L"
    )


# ------------------------------------------------------------------------------- data


def load_split(
    name: str, split: str, data_dir: str | None = None, limit: int | None = None
) -> ImageDataset:
    """A data-set split, cut to its first ``limit`` samples."""
    data = load_dataset(name, split, data_dir)
    if limit is not None:
        if limit < 1:
            raise PipelineError(f"a sample limit must be >= 1, got {limit}")
        data = ImageDataset(
            data.images[:limit],
            data.labels[:limit],
            data.num_classes,
            data.class_names,
            data.name,
            data.mean,
            data.std,
        )
    return data


def _float_images(data: ImageDataset) -> Tensor:
    return to_float(data.images)  # pixel/255; each network's transform is applied on the fly


def _normalization(
    meta: dict[str, Any],
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    norm = meta.get("normalization")
    if not norm:
        return None, None
    return tuple(norm["mean"]), tuple(norm["std"])


# ----------------------------------------------------------------------------- models


def model_info(
    dataset: ImageDataset,
    model: str | None,
    model_spec: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """What the sidecar needs to rebuild the architecture (no weights)."""
    kwargs = dict(arch_kwargs or {})
    data_shape = [int(s) for s in dataset.images.shape[1:]]
    if model_spec:
        shape = [int(s) for s in input_shape] if input_shape else data_shape
        info = {"architecture": None, "model_spec": _absolute_spec(model_spec)}
    else:
        if model not in MODELS:
            raise PipelineError(f"unknown model {model!r}; available: {', '.join(sorted(MODELS))}")
        shape = list(MODELS[model][1])
        kwargs = {"num_classes": dataset.num_classes, **kwargs}
        info = {"architecture": model, "model_spec": None}
    if shape != data_shape:
        raise PipelineError(
            f"model {model_spec or model!r} takes inputs of shape {tuple(shape)} but "
            f"{dataset.name} images are {tuple(data_shape)}"
        )
    return {**info, "arch_kwargs": kwargs, "input_shape": shape}


def _absolute_spec(spec: str) -> str:
    """Make a file spec absolute so that later stages find it from any directory."""
    module, sep, attr = spec.rpartition(":")
    if sep and (module.endswith(".py") or "/" in module) and Path(module).is_file():
        return f"{Path(module).resolve()}:{attr}"
    return spec


def build_architecture(meta: dict[str, Any]) -> nn.Module:
    """An untrained model of the architecture recorded in a sidecar."""
    kwargs = dict(meta.get("arch_kwargs") or {})
    if meta.get("model_spec"):
        return load_user_model(meta["model_spec"], **kwargs)
    name = meta.get("architecture")
    if not name:
        raise PipelineError("the checkpoint's sidecar names no architecture or model spec")
    return build_model(name, **kwargs)


def _load(path: Path, hint: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    _require(path, hint)
    return load_checkpoint(path)


def load_dnn(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """The trained DNN of a run and its metadata."""
    run = check_run_dir(run_dir)
    state, meta = _load(dnn_path(run), f"train a model first (`tdsnn train --out {run}`)")
    model = build_architecture(meta)
    model.load_state_dict(state)
    return model.eval(), meta


def prepare_from(dnn: nn.Module, meta: dict[str, Any]) -> GDNN:
    """``tdsnn.prepare`` with the options recorded in a G-DNN sidecar."""
    mean, std = _normalization(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already reported when the G-DNN was first made
        return tdsnn_prepare(
            dnn,
            meta["L"],
            input_mean=mean,
            input_std=std,
            input_scale=meta["input_scale"],
            activation_scales=meta["activation_scales"],
            compensate=meta.get("compensate", True),
        )


def load_gdnn(
    run_dir: str | os.PathLike[str], L: float | None = None
) -> tuple[GDNN, dict[str, Any]]:
    """The fine-tuned G-DNN of a run at ``L`` (default: the only one there)."""
    run = check_run_dir(run_dir)
    L = check_L(L) if L is not None else find_L(run, "gdnn")
    state, meta = _load(gdnn_path(run, L), f"run `tdsnn finetune --from {run} --L {L:g}` first")
    gdnn = prepare_from(build_architecture(meta), meta)
    gdnn.load_state_dict(state)
    return gdnn.eval(), meta


def load_snn(run_dir: str | os.PathLike[str], L: float | None = None) -> tuple[SNN, dict[str, Any]]:
    """The converted SNN of a run at ``L`` (self-contained: no G-DNN file needed)."""
    run = check_run_dir(run_dir)
    L = check_L(L) if L is not None else find_L(run, "snn")
    state, meta = _load(snn_path(run, L), f"run `tdsnn convert --from {run} --L {L:g}` first")
    gdnn = prepare_from(build_architecture(meta), meta)
    snn = tdsnn_convert(gdnn, t_il=meta.get("static_t_il"))
    snn.load_state_dict(state)
    return snn.eval(), meta


# ---------------------------------------------------------------------------- training


def _check_fresh(final: Path, resume: bool, force: bool) -> None:
    if final.exists() and not (resume or force):
        raise PipelineError(
            f"{str(final)!r} exists: pass --resume to continue that run or --force to replace it"
        )


def _check_resumable(state: Path, recipe: dict[str, Any]) -> None:
    """Refuse to resume a training state made with another recipe (the order would differ)."""
    if not state.is_file():
        return
    try:
        saved = load_metadata(state).get("recipe")
    except CheckpointError:
        return
    if saved is not None and saved != recipe:
        changed = sorted(k for k in set(saved) | set(recipe) if saved.get(k) != recipe.get(k))
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {recipe.get(k)!r}" for k in changed)
        raise PipelineError(
            f"cannot resume {str(state)!r}: it was made with other settings ({details}); "
            "resume with the same settings or start afresh with --force"
        )


def _train_stage(
    model: nn.Module,
    final: Path,
    train_data: ImageDataset,
    test_data: ImageDataset | None,
    transform: Callable[[Tensor], Tensor],
    recipe: dict[str, Any],
    metadata: dict[str, Any],
    *,
    resume: bool,
    progress: bool,
    device: str,
    max_steps: int | None,
    checkpoint_every: int,
    desc: str,
) -> dict[str, Any]:
    """Run :func:`tdsnn.training.train` for one stage with its checkpoint next to ``final``."""
    ctx = context(device)
    state = state_path(final)
    if resume:
        _check_resumable(state, recipe)
    loader = make_train_loader(
        _float_images(train_data),
        train_data.labels,
        recipe["batch_size"],
        seed=recipe["seed"],
        ctx=ctx,
    )
    eval_loader = None
    if test_data is not None:
        eval_loader = make_eval_loader(_float_images(test_data), test_data.labels, 1000, ctx=ctx)
    return train(
        model,
        loader,
        epochs=recipe["epochs"],
        lr=recipe["lr"],
        optimizer=recipe["optimizer"],
        weight_decay=recipe["weight_decay"],
        scheduler=recipe["scheduler"],
        checkpoint_path=state,
        checkpoint_every=checkpoint_every,
        resume=resume,
        progress=progress,
        eval_loader=eval_loader,
        metadata={**metadata, "recipe": recipe},
        input_transform=transform,
        max_steps=max_steps,
        seed=recipe["seed"],
        device=ctx.device,
        desc=desc,
    )


def _metrics(history: dict[str, Any]) -> dict[str, Any]:
    last = history["epochs"][-1] if history["epochs"] else {}
    return {k: v for k, v in last.items() if k.startswith(("train_", "eval_"))}


def _save_final(final: Path, model: nn.Module, metadata: dict[str, Any]) -> None:
    if context().is_main:
        save_checkpoint(final, model.state_dict(), metadata)
    barrier()


def train_dnn(
    out_dir: str | os.PathLike[str],
    *,
    dataset: str = DEFAULTS.dataset,
    model: str | None = DEFAULTS.model,
    model_spec: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    data_dir: str | None = None,
    epochs: int = DEFAULTS.epochs,
    lr: float = DEFAULTS.lr,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    scheduler: str = "cosine",
    batch_size: int = DEFAULTS.batch_size,
    seed: int = 0,
    normalize: bool = True,
    train_limit: int | None = None,
    test_limit: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
    max_steps: int | None = None,
    checkpoint_every: int = DEFAULTS.checkpoint_every,
) -> dict[str, Any]:
    """Train the DNN (Figure 2, first step) into ``out_dir/dnn.safetensors``; return its metadata.

    The DNN sees ``(pixel/255 - mean) / std`` with the data set's statistics when
    ``normalize`` (folded into the first layer later by ``prepare``), else ``pixel/255``.
    """
    out = Path(out_dir)
    final = dnn_path(out)
    _check_fresh(final, resume, force)
    train_data = load_split(dataset, "train", data_dir, train_limit)
    test_data = load_split(dataset, "test", data_dir, test_limit)
    info = model_info(train_data, model, model_spec, arch_kwargs, input_shape)
    seed_everything(seed)
    net = build_architecture(info)
    norm = {"mean": list(train_data.mean), "std": list(train_data.std)} if normalize else None
    spec = InputSpec(*(tuple(norm[k]) for k in ("mean", "std"))) if norm else InputSpec()
    recipe = {
        "epochs": epochs,
        "lr": lr,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "scheduler": scheduler,
        "batch_size": batch_size,
        "seed": seed,
        "train_limit": train_limit,
    }
    meta: dict[str, Any] = {
        "kind": "dnn",
        **info,
        "dataset": train_data.name,
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "num_classes": train_data.num_classes,
        "class_names": list(train_data.class_names),
        "normalization": norm,
        "train_limit": train_limit,
        "test_limit": test_limit,
        "train": recipe,
    }
    out.mkdir(parents=True, exist_ok=True)
    history = _train_stage(
        net, final, train_data, test_data, spec.dnn, recipe, meta,
        resume=resume, progress=progress, device=device, max_steps=max_steps,
        checkpoint_every=checkpoint_every, desc="train DNN",
    )  # fmt: skip
    meta = {**meta, "history": history["epochs"], "metrics": _metrics(history)}
    meta["completed"] = history["completed"]
    if history["completed"]:
        _save_final(final, net.cpu(), meta)
    return meta


def finetune(
    run_dir: str | os.PathLike[str],
    *,
    L: float = DEFAULTS.L,
    epochs: int = DEFAULTS.finetune_epochs,
    lr: float = DEFAULTS.finetune_lr,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    scheduler: str = "cosine",
    input_scale: float = DEFAULTS.input_scale,
    activation_scales: Sequence[float] | float | str | None = None,
    compensate: bool = True,
    batch_size: int | None = None,
    seed: int | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
    data_dir: str | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
    max_steps: int | None = None,
    checkpoint_every: int = DEFAULTS.checkpoint_every,
) -> dict[str, Any]:
    """Prepare the run's DNN at ``L`` and re-train the G-DNN (Figure 2, second step).

    Writes ``gdnn_L<L>.safetensors``; ``epochs=0`` keeps the prepared weights as they are.
    Data options default to those the DNN was trained with.
    """
    L = check_L(L)
    run = check_run_dir(run_dir)
    dnn, dnn_meta = load_dnn(run)
    final = gdnn_path(run, L)
    _check_fresh(final, resume, force)
    data_dir = data_dir if data_dir is not None else dnn_meta.get("data_dir")
    train_limit = train_limit if train_limit is not None else dnn_meta.get("train_limit")
    test_limit = test_limit if test_limit is not None else dnn_meta.get("test_limit")
    train_data = load_split(dnn_meta["dataset"], "train", data_dir, train_limit)
    test_data = load_split(dnn_meta["dataset"], "test", data_dir, test_limit)
    if isinstance(activation_scales, (int, float)):
        activation_scales = float(activation_scales)
    mean, std = _normalization(dnn_meta)
    if activation_scales == "auto":
        from .scales import calibrate_activation_scales

        calibration = to_float(train_data.images[:AUTO_SCALE_IMAGES]) * float(input_scale)
        activation_scales = calibrate_activation_scales(
            dnn, calibration, input_mean=mean, input_std=std, input_scale=input_scale
        )
    gdnn = tdsnn_prepare(
        dnn, L, input_mean=mean, input_std=std, input_scale=input_scale,
        activation_scales=activation_scales, compensate=compensate,
    )  # fmt: skip
    recipe = {
        "epochs": epochs,
        "lr": lr,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "scheduler": scheduler,
        "batch_size": batch_size or dnn_meta["train"]["batch_size"],
        "seed": dnn_meta["train"]["seed"] if seed is None else seed,
        "train_limit": train_limit,
        "L": L,
        "input_scale": float(input_scale),
        "activation_scales": list(gdnn.activation_scales),
        "compensate": compensate,
    }
    meta = {
        key: dnn_meta.get(key)
        for key in (
            "architecture", "model_spec", "arch_kwargs", "input_shape", "dataset", "data_dir",
            "num_classes", "class_names", "normalization",
        )
    }  # fmt: skip
    meta.update(
        {
            "kind": "gdnn",
            "L": L,
            "input_scale": float(input_scale),
            "activation_scales": list(gdnn.activation_scales),
            "compensate": compensate,
            "train_limit": train_limit,
            "test_limit": test_limit,
            "dnn_metrics": dnn_meta.get("metrics", {}),
            "finetune": recipe,
        }
    )
    spec = InputSpec(scale=float(input_scale))
    if epochs > 0:
        history = _train_stage(
            gdnn, final, train_data, test_data, spec.spiking, recipe, meta,
            resume=resume, progress=progress, device=device, max_steps=max_steps,
            checkpoint_every=checkpoint_every, desc=f"fine-tune G-DNN {l_tag(L)}",
        )  # fmt: skip
    else:
        history = {"epochs": [], "completed": True}
    meta.update(
        history=history["epochs"], metrics=_metrics(history), completed=history["completed"]
    )
    if history["completed"]:
        _save_final(final, gdnn.cpu(), meta)
    return meta


# --------------------------------------------------------------- convert and evaluate


def convert_run(
    run_dir: str | os.PathLike[str],
    *,
    L: float | None = None,
    calibrate: int | None = None,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Convert the run's G-DNN into ``snn_L<L>.safetensors`` (Figure 2, last step).

    With ``calibrate=N`` the inhibitory periods are static, fixed on the first N
    training images (design note, section 2); otherwise they are dynamic.
    """
    run = check_run_dir(run_dir)
    gdnn, meta = load_gdnn(run, L)
    calibration = None
    if calibrate is not None:
        if calibrate < 1:
            raise PipelineError(f"--calibrate needs a positive number of images, got {calibrate}")
        data = load_split(meta["dataset"], "train", meta.get("data_dir"), calibrate)
        images = _float_images(data) * float(meta["input_scale"])
        calibration = list(torch.split(images.to(torch.float64), batch_size))
    snn = tdsnn_convert(gdnn, calibration)
    snn_meta = {
        **{k: v for k, v in meta.items() if k not in ("history", "finetune", "kind")},
        "kind": "snn",
        "t_il_mode": snn.t_il_mode,
        "static_t_il": snn.static_t_il,
        "calibration_samples": calibrate,
        "gdnn_metrics": meta.get("metrics", {}),
    }
    save_checkpoint(snn_path(run, meta["L"]), snn.state_dict(), snn_meta)
    return snn_meta


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    L: float | None = None,
    backends: Sequence[str] = BACKENDS,
    limit: int | None = None,
    batch_size: int = 100,
    progress: bool = True,
    device: str = "cpu",
    write_main: bool = True,
    precision: str = "certified",
) -> dict[str, Any]:
    """Evaluate DNN, G-DNN and SNN of a run on the test set; write ``evaluation*.json``.

    Writes ``evaluation_L<L>.json`` and, with ``write_main``, ``evaluation.json``; the
    SNN sidecar gets the headline metrics.
    """
    run = check_run_dir(run_dir)
    L = check_L(L) if L is not None else find_L(run, "snn")
    dnn, dnn_meta = load_dnn(run)
    gdnn, _ = load_gdnn(run, L)
    snn, snn_meta = load_snn(run, L)
    limit = limit if limit is not None else snn_meta.get("test_limit")
    test_data = load_split(snn_meta["dataset"], "test", snn_meta.get("data_dir"), limit)
    mean, std = _normalization(dnn_meta)
    name = dnn_meta.get("architecture") or dnn_meta.get("model_spec") or "model"
    result = evaluate(
        dnn, gdnn, snn, test_data,
        backends=backends, input_scale=snn_meta["input_scale"], input_mean=mean,
        input_std=std, batch_size=batch_size, progress=progress, device=context(device).device,
        model_name=name, dataset_name=test_data.name, precision=precision,
    )  # fmt: skip
    if context().is_main:
        _write_json(run / f"evaluation_{l_tag(L)}.json", result)
        if write_main:
            _write_json(run / "evaluation.json", result)
        headline = {
            "snn_top1": {b: v["top1"] for b, v in result["accuracy"]["snn"].items()},
            "gdnn_top1": result["accuracy"]["gdnn"]["top1"],
            "dnn_top1": result["accuracy"]["dnn"]["top1"],
            "agreement": result["agreement"],
            "latency_mean": result["latency"]["mean"],
            "samples": result["samples"],
        }
        save_checkpoint(snn_path(run, L), snn.state_dict(), {**snn_meta, "metrics": headline})
    return result


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temp file renamed into place)."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(temp, path)


def read_json(path: Path, hint: str) -> Any:
    _require(path, hint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{str(path)!r} is not valid JSON: {exc}") from None


# -------------------------------------------------------------------- sweep and report


def sweep(
    run_dir: str | os.PathLike[str],
    Ls: Sequence[float],
    *,
    epochs: int = DEFAULTS.finetune_epochs,
    lr: float = DEFAULTS.finetune_lr,
    input_scale: float = DEFAULTS.input_scale,
    activation_scales: Sequence[float] | float | None = None,
    backends: Sequence[str] = ("closed_form",),
    calibrate: int | None = None,
    limit: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
    **finetune_kwargs: Any,
) -> list[dict[str, Any]]:
    """Fine-tune, convert and evaluate the same trained DNN at every L (Figure 4).

    Works in ``<run>/sweep/`` (a copy of the DNN checkpoint, then ``gdnn_L*``,
    ``snn_L*`` and ``evaluation_L*.json``), so the main job's files are never
    replaced; the list of evaluations goes to ``<run>/sweep.json``, rewritten after
    every L so that a stopped sweep keeps what it did.  With ``resume`` an L whose
    evaluation exists is not redone and an interrupted fine-tuning continues.
    """
    run = check_run_dir(run_dir)
    Ls = [check_L(L) for L in Ls]
    if not Ls:
        raise PipelineError("give at least one L to sweep")
    _require(dnn_path(run), f"train a model first (`tdsnn train --out {run}`)")
    work = sweep_dir(run)
    if context().is_main:
        _link_dnn(run, work)
    barrier()
    results: list[dict[str, Any]] = []
    for L in Ls:
        done = work / f"evaluation_{l_tag(L)}.json"
        if resume and done.is_file() and snn_path(work, L).is_file():
            results.append(read_json(done, ""))
        else:
            finetune(
                work, L=L, epochs=epochs, lr=lr, input_scale=input_scale,
                activation_scales=activation_scales, resume=resume, force=force or not resume,
                progress=progress, device=device, **finetune_kwargs,
            )  # fmt: skip
            if context().is_main:
                convert_run(work, L=L, calibrate=calibrate)
            barrier()
            results.append(
                evaluate_run(
                    work,
                    L=L,
                    backends=backends,
                    limit=limit,
                    progress=progress,
                    device=device,
                    write_main=False,
                )  # fmt: skip
            )
        if context().is_main:
            _write_json(run / "sweep.json", results)
    return results


def sweep_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`sweep` keeps its per-L checkpoints and evaluations."""
    return Path(run_dir) / "sweep"


def _link_dnn(run: Path, work: Path) -> None:
    """Give the sweep folder the run's DNN checkpoint (a hard link, else a copy)."""
    work.mkdir(exist_ok=True)
    for name in ("dnn.safetensors", "dnn.json"):
        source, target = run / name, work / name
        if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def report_run(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the report of a run (``tdsnn.report.write_report``) from its JSON files."""
    run = check_run_dir(run_dir)
    evaluation = read_json(run / "evaluation.json", f"run `tdsnn evaluate --from {run}` first")
    sweep_file = run / "sweep.json"
    sweep_data = read_json(sweep_file, "") if sweep_file.is_file() else None
    try:
        from .report import write_report
    except ImportError as exc:
        raise PipelineError(f"the report writer is not available: {exc}") from None
    return list(write_report(run, evaluation, sweep_data))


def inspect_run(
    run_dir: str | os.PathLike[str],
    index: int = 0,
    *,
    L: float | None = None,
    backend: str = "clocked",
    out_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Simulate test sample ``index`` with the run's SNN and plot it (``tdsnn.plots``).

    The SNN runs on that one sample only (its result holds it at position 0); the
    files are named after ``index``.
    """
    run = check_run_dir(run_dir)
    snn, meta = load_snn(run, L)
    test = load_dataset(meta["dataset"], "test", meta.get("data_dir"))
    if not 0 <= index < len(test):
        raise PipelineError(f"--index must be in 0..{len(test) - 1}, got {index}")
    x = _float_images(
        ImageDataset(test.images[index : index + 1], test.labels[index : index + 1],
                     test.num_classes, test.class_names, test.name, test.mean, test.std)
    ) * float(meta["input_scale"])  # fmt: skip
    if backend not in BACKENDS:
        raise PipelineError(f"backend must be one of {BACKENDS}, got {backend!r}")
    result = snn.run(x.to(torch.float64), backend=backend)
    result.extras.update(
        label=int(test.labels[index]),
        class_names=list(test.class_names),
        sample_index=index,
        image=test.images[index],
        input_scale=float(meta["input_scale"]),
        L=float(meta["L"]),
    )
    try:
        from .plots import inspect_sample
    except ImportError as exc:
        raise PipelineError(f"the plotting module is not available: {exc}") from None
    target = Path(out_dir) if out_dir is not None else run / "inspect"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".inspect-") as scratch:
        written = inspect_sample(result, 0, Path(scratch))
        return [_renumber(Path(path), index, target) for path in written]


def _renumber(path: Path, index: int, target: Path) -> Path:
    """Move ``raster_0.png`` to ``target/raster_<index>.png``: the plots saw position 0."""
    stem = path.stem[:-2] + f"_{index}" if path.stem.endswith("_0") else path.stem
    final = target / f"{stem}{path.suffix}"
    os.replace(path, final)
    return final


# ---------------------------------------------------------------------------- main job


def run_all(
    out_dir: str | os.PathLike[str],
    *,
    dataset: str = DEFAULTS.dataset,
    model: str | None = DEFAULTS.model,
    L: float = DEFAULTS.L,
    epochs: int = DEFAULTS.epochs,
    finetune_epochs: int = DEFAULTS.finetune_epochs,
    lr: float = DEFAULTS.lr,
    finetune_lr: float = DEFAULTS.finetune_lr,
    input_scale: float = DEFAULTS.input_scale,
    activation_scales: Sequence[float] | float | None = None,
    backends: Sequence[str] = BACKENDS,
    calibrate: int | None = None,
    limit: int | None = None,
    inspect_index: int | None = 0,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """The main job: train, fine-tune at L, convert, evaluate, report and inspect one sample.

    With ``resume`` a finished stage (its final checkpoint exists) is skipped and an
    unfinished one continues from its training state.  Returns the evaluation dict
    with ``timing_s`` extended by the wall time of every stage.
    """
    L = check_L(L)
    out = Path(out_dir)
    stages: dict[str, float] = {}
    main = context().is_main
    start = time.perf_counter()
    if resume and dnn_path(out).is_file():
        log(f"[1/5] DNN: {dnn_path(out)} exists, kept")
    else:
        log(f"[1/5] training {model} on {dataset} for {epochs} epochs")
        meta = train_dnn(
            out, dataset=dataset, model=model, epochs=epochs, lr=lr, resume=resume,
            force=force, progress=progress, device=device, **train_kwargs,
        )  # fmt: skip
        log(f"      DNN test accuracy {meta['metrics'].get('eval_top1', float('nan')):.4f}")
    stages["train"] = time.perf_counter() - start
    tick = time.perf_counter()
    if resume and gdnn_path(out, L).is_file():
        log(f"[2/5] G-DNN: {gdnn_path(out, L)} exists, kept")
    else:
        log(f"[2/5] prepare at L={L:g} (input scale {input_scale:g}) and fine-tune "
            f"{finetune_epochs} epochs")  # fmt: skip
        meta = finetune(
            out, L=L, epochs=finetune_epochs, lr=finetune_lr, input_scale=input_scale,
            activation_scales=activation_scales, resume=resume, force=force,
            progress=progress, device=device,
        )  # fmt: skip
        if meta["metrics"]:
            log(f"      G-DNN test accuracy {meta['metrics'].get('eval_top1', float('nan')):.4f}")
    stages["finetune"] = time.perf_counter() - tick
    tick = time.perf_counter()
    if main:
        log(f"[3/5] convert ({'static' if calibrate else 'dynamic'} T_il)")
        convert_run(out, L=L, calibrate=calibrate)
    barrier()
    stages["convert"] = time.perf_counter() - tick
    tick = time.perf_counter()
    log(f"[4/5] evaluate on the test set with {', '.join(backends)}")
    result = evaluate_run(
        out, L=L, backends=backends, limit=limit, progress=progress, device=device
    )
    stages["evaluate"] = time.perf_counter() - tick
    tick = time.perf_counter()
    if main:
        log("[5/5] report and plots")
        _optional(lambda: report_run(out), "report", log)
        if inspect_index is not None:
            _optional(lambda: inspect_run(out, inspect_index, L=L), "inspect", log)
    stages["report"] = time.perf_counter() - tick
    stages["total"] = time.perf_counter() - start
    result["stages_s"] = stages
    if main:
        _write_json(out / "run_timing.json", stages)
    return result


def _optional(step: Callable[[], list[Path]], what: str, log: Callable[[str], None]) -> None:
    """Run a report/plot step; a missing or failing writer does not lose the evaluation."""
    try:
        paths = step()
    except PipelineError as exc:
        log(f"      {what} skipped: {exc}")
        return
    except Exception as exc:  # the writers are optional extras of the main job
        log(f"      {what} failed: {type(exc).__name__}: {exc}")
        return
    for path in paths:
        log(f"      wrote {path}")


def parse_floats(text: str, what: str) -> list[float]:
    """'1,2,3' -> [1.0, 2.0, 3.0] with a PipelineError naming ``what`` on bad input."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PipelineError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise PipelineError(f"{what} must be finite numbers, got {text!r}")
    return values
