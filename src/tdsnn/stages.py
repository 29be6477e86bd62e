"""What the stages of :mod:`tdsnn.pipeline` share: data splits, the architecture record of
a sidecar, the writer-lock decorator, and one training stage with its checks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError, load_metadata, save_checkpoint
from .data import ImageDataset, load_dataset, to_float
from .distributed import barrier, context, make_eval_loader, make_train_loader
from .models import FLEXIBLE_INPUT, MODELS
from .runfolder import (
    PipelineError,
    check_run_dir,
    make_run_dir,
    run_lock,
    state_path,
)
from .training import DISTILL_TEMPERATURE, train

# ------------------------------------------------------------------------------- data


def load_split(
    name: str, split: str, data_dir: str | None = None, limit: int | None = None
) -> ImageDataset:
    """A data-set split, cut to its first ``limit`` samples."""
    data = load_dataset(name, split, data_dir)
    _check_limit(limit)
    return data if limit is None else _samples(data, 0, limit)


def holdout_split(
    name: str, data_dir: str | None, first: int, limit: int | None = None
) -> ImageDataset:
    """The training images from index ``first`` on (those a ``train_limit=first`` run
    never trained on), cut to their first ``limit``: a validation set for choices that
    must not look at the test set."""
    data = load_dataset(name, "train", data_dir)
    _check_limit(limit)
    total = len(data.labels)
    if first >= total:
        raise PipelineError(
            f"no training image is held out: the run trained on the first {first:,} of {total:,}"
        )
    return _samples(data, first, total if limit is None else min(total, first + limit))


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise PipelineError(f"a sample limit must be >= 1, got {limit}")


def _samples(data: ImageDataset, start: int, end: int) -> ImageDataset:
    """Samples ``start`` to ``end - 1`` of ``data``, with its classes and statistics."""
    return ImageDataset(data.images[start:end], data.labels[start:end], data.num_classes,
                        data.class_names, data.name, data.mean, data.std)  # fmt: skip


def float_images(data: ImageDataset) -> Tensor:
    return to_float(data.images)  # pixel/255; each network's transform is applied on the fly


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
        smallest = FLEXIBLE_INPUT.get(model)
        if smallest is not None and len(data_shape) == 3 and min(data_shape[1:]) >= smallest:
            shape = data_shape  # global average pooling: any size, any channel count
            kwargs = {"in_channels": data_shape[0], **kwargs}
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


# ---------------------------------------------------------------------------- locking


def writes_run(command: str, *, create: bool = False):
    """Run a stage while holding its run folder's writer lock (:func:`tdsnn.runfolder.run_lock`).

    The folder is the stage's first argument; with ``create`` it is made first.
    """

    def wrap(stage):
        @functools.wraps(stage)
        def locked(run_dir, *args, **kwargs):
            run = make_run_dir(run_dir) if create else check_run_dir(run_dir)
            with run_lock(run, f"tdsnn {command}"):
                return stage(run_dir, *args, **kwargs)

        return locked

    return wrap


# ---------------------------------------------------------------------------- training


def _check_fresh(final: Path, resume: bool, force: bool) -> None:
    if final.exists() and not (resume or force):
        raise PipelineError(
            f"{str(final)!r} exists: pass --resume to continue that run or --force to replace it"
        )


# Recipe keys added after the first release, with the value that states made before them had.
_RECIPE_DEFAULTS = {"coding": "paper", "sparsity": 0.0, "min_time": 1, "distill": 0.0,
                    "distill_temperature": DISTILL_TEMPERATURE, "augment": "none"}  # fmt: skip


def _check_resumable(state: Path, recipe: dict[str, Any]) -> None:
    """Refuse to resume a training state made with another recipe (the order would differ)."""
    if not state.is_file():
        return
    try:
        saved = load_metadata(state).get("recipe")
    except CheckpointError:
        return
    if isinstance(saved, dict):  # older states: paper coding, no penalty, teacher or augmentation
        saved = {**{k: v for k, v in _RECIPE_DEFAULTS.items() if k in recipe}, **saved}
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
    teacher: nn.Module | None = None,
) -> dict[str, Any]:
    """Run :func:`tdsnn.training.train` for one stage with its checkpoint next to ``final``
    (``teacher``: the distillation teacher of a recipe with ``distill`` > 0)."""
    ctx = context(device)
    state = state_path(final)
    if resume:
        _check_resumable(state, recipe)
    loader = make_train_loader(
        float_images(train_data),
        train_data.labels,
        recipe["batch_size"],
        seed=recipe["seed"],
        ctx=ctx,
    )
    eval_loader = None
    if test_data is not None:
        eval_loader = make_eval_loader(float_images(test_data), test_data.labels, 1000, ctx=ctx)
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
        sparsity=recipe.get("sparsity", 0.0),
        teacher=teacher,
        distill=recipe.get("distill", 0.0),
        distill_temperature=recipe.get("distill_temperature", DISTILL_TEMPERATURE),
        augment=recipe.get("augment", "none"),
        seed=recipe["seed"],
        device=ctx.device,
        desc=desc,
    )


def _check_recipe(recipe: dict[str, Any]) -> None:
    """Refuse training settings that would fail or mislead deep inside the loop."""
    checks = {
        "epochs": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
        "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        "seed": (lambda v: isinstance(v, int) and 0 <= v < 2**63, "an integer in 0..2**63-1"),
        "weight_decay": (
            lambda v: isinstance(v, int | float) and math.isfinite(v) and v >= 0,
            "a finite number >= 0",
        ),
    }
    for name, (check, valid) in checks.items():
        value = recipe[name]
        if isinstance(value, bool) or not check(value):
            raise PipelineError(f"{name} must be {valid}, got {value!r}")


def _check_outputs(
    net: nn.Module, data: ImageDataset, transform: Callable[[Tensor], Tensor], name: Any
) -> None:
    """One image through the untrained model: it must give one score per class of the data."""
    if len(data) == 0:
        raise PipelineError(f"the {data.name} training split has no images")
    was_training = net.training
    try:
        with torch.no_grad():
            out = net.eval()(transform(to_float(data.images[:1])))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise PipelineError(
            f"model {name!r} cannot take {data.name} images {tuple(data.images.shape[1:])}: {exc}"
        ) from None
    finally:
        net.train(was_training)
    if not isinstance(out, Tensor) or tuple(out.shape) != (1, data.num_classes):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise PipelineError(
            f"model {name!r} gives outputs of shape {shape} for one image, but {data.name} "
            f"has {data.num_classes} classes: expected (1, {data.num_classes}) "
            "(check num_classes in --model-kwargs)"
        )


def _metrics(history: dict[str, Any]) -> dict[str, Any]:
    last = history["epochs"][-1] if history["epochs"] else {}
    return {k: v for k, v in last.items() if k.startswith(("train_", "eval_"))}


def _save_final(final: Path, model: nn.Module, metadata: dict[str, Any]) -> None:
    if context().is_main:
        save_checkpoint(final, model.state_dict(), metadata)
    barrier()


