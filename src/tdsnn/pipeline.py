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

The sweep, the report, inspection and the main job that chain these stages are
in :mod:`tdsnn.jobs`; what the stages share (data splits, the training stage, the
writer-lock decorator) in :mod:`tdsnn.stages`.  Every stage holds the run folder's writer lock
(:func:`tdsnn.runfolder.run_lock`) and rebuilds models as :mod:`tdsnn.rebuild`
says: from checked sidecars, never by importing anything they name.

A zoo model is rebuilt from its registered name and checked kwargs, a user model
from the spec or callable the user passes now, plus the tensors; nothing is
unpickled.  The G-DNN is rebuilt
by running :func:`tdsnn.prepare` on the DNN architecture with the saved options
and loading its weights; the SNN by converting that G-DNN (static ``T_il`` from
the sidecar) and loading its buffers.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import convert as tdsnn_convert
from . import prepare as tdsnn_prepare
from .augment import check_augment
from .checkpoint import save_checkpoint
from .coding import CODINGS
from .data import to_float
from .distributed import context
from .errors import TDSNNError
from .evaluation import BACKENDS, InputSpec, evaluate
from .process import cpu_model
from .rebuild import (
    ModelSource,
    build_architecture,
    find_L,
    load_dnn,
    load_gdnn,
    load_snn,
    load_weights,
    normalization,
    prepare_from,
)
from .runfolder import (
    PipelineError,
    check_L,
    check_run_dir,
    dnn_path,
    gdnn_path,
    l_tag,
    snn_path,
    write_json,
)
from .stages import (
    _check_fresh,
    _check_outputs,
    _check_recipe,
    _metrics,
    _save_final,
    _train_stage,
    float_images,
    holdout_split,
    load_split,
    model_info,
    writes_run,
)
from .training import DISTILL_TEMPERATURE, Teacher, TrainingError, check_distill, seed_everything

__all__ = [
    "DEFAULTS",
    "PipelineError",
    "convert_run",
    "dnn_path",
    "evaluate_run",
    "check_sparsity_options",
    "finetune",
    "gdnn_path",
    "load_dnn",
    "load_gdnn",
    "load_snn",
    "load_weights",
    "prepare_from",
    "snn_path",
    "train_dnn",
]


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
SPLITS = ("test", "holdout")  # what evaluate_run scores: the test set, or held-out training images


@writes_run("train", create=True)
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
    augment: str = "none",
) -> dict[str, Any]:
    """Train the DNN (Figure 2, first step) into ``out_dir/dnn.safetensors``; return its metadata.

    The DNN sees ``(pixel/255 - mean) / std`` with the data set's statistics when
    ``normalize`` (folded into the first layer later by ``prepare``), else ``pixel/255``.
    ``augment``: ``"none"`` or ``"flip-crop"`` (random flips and 4-pixel crops, seeded per
    step; :mod:`tdsnn.augment`).
    """
    augment = _checked_augment(augment)
    out = Path(out_dir)
    final = dnn_path(out)
    _check_fresh(final, resume, force)
    train_data = load_split(dataset, "train", data_dir, train_limit)
    test_data = load_split(dataset, "test", data_dir, test_limit)
    info = model_info(train_data, model, model_spec, arch_kwargs, input_shape)
    seed_everything(seed)
    net = build_architecture(info, model_spec)
    norm = {"mean": list(train_data.mean), "std": list(train_data.std)} if normalize else None
    spec = InputSpec(*(tuple(norm[k]) for k in ("mean", "std"))) if norm else InputSpec()
    _check_outputs(net, train_data, spec.dnn, model_spec or model)
    recipe = {
        "epochs": epochs,
        "lr": lr,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "scheduler": scheduler,
        "batch_size": batch_size,
        "seed": seed,
        "train_limit": train_limit,
        "augment": augment,
    }
    _check_recipe(recipe)
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


@writes_run("finetune")
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
    model_spec: ModelSource = None,
    coding: str = "paper",
    sparsity: float = 0.0,
    distill: float = 0.0,
    distill_temperature: float = DISTILL_TEMPERATURE,
    augment: str = "none",
    min_time: int = 1,
) -> dict[str, Any]:
    """Prepare the run's DNN at ``L`` and re-train the G-DNN (Figure 2, second step).

    Writes ``gdnn_L<L>.safetensors``; ``epochs=0`` keeps the prepared weights as they are.
    Data options default to those the DNN was trained with.  ``coding`` is the G-DNN's
    spike coding (``"paper"``, or ``"sparse"``: zeros stay silent); ``sparsity`` > 0
    (sparse coding only) adds ``sparsity`` times the soft fraction of synaptic events (non-silent neurons weighted by fan-out)
    (:class:`tdsnn.sparsity.SpikePenalty`) to the fine-tuning loss.  Both go into the
    sidecar, so that later stages rebuild the G-DNN in its coding.  ``distill`` > 0
    (at most 1) distils the run's DNN into the G-DNN: the loss is ``(1 - distill)``
    times cross-entropy plus ``distill`` times the temperature-``distill_temperature``
    distillation loss against the DNN's logits on the same images
    (:func:`tdsnn.training.distillation_loss`; beyond the paper).  ``augment`` as for
    :func:`train_dnn`.  ``min_time`` (sparse coding, beyond the paper): hidden neurons
    whose spike time would be below it stay silent (:func:`tdsnn.prepare`).
    """
    augment = _checked_augment(augment)
    L = check_L(L)
    coding, sparsity = check_sparsity_options(coding, sparsity)
    min_time = check_min_time_option(min_time, coding)
    try:
        distill = check_distill(distill, distill_temperature)
    except TrainingError as exc:
        raise PipelineError(str(exc)) from None
    run = check_run_dir(run_dir)
    dnn, dnn_meta = load_dnn(run, model_spec)
    final = gdnn_path(run, L)
    _check_fresh(final, resume, force)
    data_dir = data_dir if data_dir is not None else dnn_meta.get("data_dir")
    train_limit = train_limit if train_limit is not None else dnn_meta.get("train_limit")
    test_limit = test_limit if test_limit is not None else dnn_meta.get("test_limit")
    train_data = load_split(dnn_meta["dataset"], "train", data_dir, train_limit)
    test_data = load_split(dnn_meta["dataset"], "test", data_dir, test_limit)
    if isinstance(activation_scales, (int, float)):
        activation_scales = float(activation_scales)
    mean, std = normalization(dnn_meta)
    if activation_scales == "auto":
        from .scales import calibrate_activation_scales

        calibration = to_float(train_data.images[:AUTO_SCALE_IMAGES]) * float(input_scale)
        activation_scales = calibrate_activation_scales(
            dnn, calibration, input_mean=mean, input_std=std, input_scale=input_scale
        )
    gdnn = tdsnn_prepare(
        dnn, L, input_mean=mean, input_std=std, input_scale=input_scale,
        activation_scales=activation_scales, compensate=compensate, coding=coding,
        min_time=min_time,
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
        "coding": coding,
        "sparsity": sparsity,
        "min_time": min_time,
        "distill": distill,
        "distill_temperature": float(distill_temperature),
        "augment": augment,
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
            "coding": coding,
            "sparsity": sparsity,
            "min_time": min_time,
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
            teacher=Teacher(copy.deepcopy(dnn), InputSpec(mean, std).dnn) if distill > 0 else None,
        )  # fmt: skip
    else:
        history = {"epochs": [], "completed": True}
    meta.update(
        history=history["epochs"], metrics=_metrics(history), completed=history["completed"]
    )
    if history["completed"]:
        _save_final(final, gdnn.cpu(), meta)
    return meta


def check_run_coding(meta: dict[str, Any], expected: str | None, path: Path) -> str:
    """The coding recorded in a sidecar (``"paper"`` if none: runs made before sparse coding).

    ``expected`` (what the user asked for, or None) must match it.
    """
    recorded = meta.get("coding", "paper")
    if expected is not None and expected != recorded:
        raise PipelineError(
            f"{str(path.with_suffix('.json'))!r} is in {recorded} coding, not {expected}: "
            f"the coding is chosen at finetune (`tdsnn finetune --coding {expected}`); "
            "drop --coding or fine-tune again"
        )
    return recorded


def _checked_augment(augment: Any) -> str:
    try:
        return check_augment(augment)
    except TDSNNError as exc:
        raise PipelineError(str(exc)) from None


def check_min_time_option(min_time: Any, coding: str) -> int:
    """``min_time`` as an int if valid for ``coding``, else a PipelineError."""
    from .coding import check_min_time

    try:
        return check_min_time(min_time, coding)
    except TDSNNError as exc:
        raise PipelineError(f"{exc} (--min-time needs --coding sparse)") from None


def check_sparsity_options(coding: Any, sparsity: Any) -> tuple[str, float]:
    """``(coding, float(sparsity))`` if valid, else a PipelineError saying what is wrong.

    ``coding`` is ``"paper"`` or ``"sparse"``; ``sparsity`` a finite number >= 0, and
    > 0 only with sparse coding (the paper's coding has no silent neuron to push to).
    """
    if not isinstance(coding, str) or coding not in CODINGS:
        raise PipelineError(f"coding must be one of {', '.join(CODINGS)}, got {coding!r}")
    if (
        isinstance(sparsity, bool)
        or not isinstance(sparsity, int | float)
        or not (math.isfinite(sparsity) and sparsity >= 0)
    ):
        raise PipelineError(f"sparsity must be a finite number >= 0, got {sparsity!r}")
    if sparsity > 0 and coding != "sparse":
        raise PipelineError(
            f"sparsity {sparsity:g} needs the sparse coding (--coding sparse): in the "
            "paper's coding every neuron fires once, none can be silenced"
        )
    return coding, float(sparsity)


# --------------------------------------------------------------- convert and evaluate


@writes_run("convert")
def convert_run(
    run_dir: str | os.PathLike[str],
    *,
    L: float | None = None,
    calibrate: int | None = None,
    batch_size: int = 500,
    model_spec: ModelSource = None,
    coding: str | None = None,
) -> dict[str, Any]:
    """Convert the run's G-DNN into ``snn_L<L>.safetensors`` (Figure 2, last step).

    With ``calibrate=N`` the inhibitory periods are static, fixed on the first N
    training images (design note, section 2); otherwise they are dynamic.  The coding
    is the G-DNN's (its sidecar); ``coding``, if given, is only checked against it.
    """
    run = check_run_dir(run_dir)
    gdnn, meta = load_gdnn(run, L, model_spec)
    check_run_coding(meta, coding, gdnn_path(run, meta["L"]))
    calibration = None
    if calibrate is not None:
        if calibrate < 1:
            raise PipelineError(f"--calibrate needs a positive number of images, got {calibrate}")
        data = load_split(meta["dataset"], "train", meta.get("data_dir"), calibrate)
        images = float_images(data) * float(meta["input_scale"])
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


def _recorded_seed(meta: dict[str, Any]) -> int | None:
    """The seed a sidecar's training recipe recorded (None if it has none)."""
    for key in ("train", "finetune"):
        recipe = meta.get(key)
        if isinstance(recipe, dict) and isinstance(recipe.get("seed"), int):
            return recipe["seed"]
    return None


@writes_run("evaluate")
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
    model_spec: ModelSource = None,
    coding: str | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Evaluate DNN, G-DNN and SNN of a run on the test set; write ``evaluation*.json``.

    Writes ``evaluation_L<L>.json`` and, with ``write_main``, ``evaluation.json``; the
    SNN sidecar gets the headline metrics.  A result that the folder refuses is kept
    in :func:`tdsnn.runfolder.fallback_dir` and the error says where.  The coding is
    the SNN's (its sidecar); ``coding``, if given, is only checked against it.

    ``split="holdout"`` evaluates instead on the training images that neither the DNN
    nor the fine-tuning saw (those after their ``train_limit``), for choosing settings
    without the test set; it writes ``evaluation_holdout_L<L>.json`` only.
    """
    if split not in SPLITS:
        raise PipelineError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    run = check_run_dir(run_dir)
    L = check_L(L) if L is not None else find_L(run, "snn")
    dnn, dnn_meta = load_dnn(run, model_spec)
    gdnn, gdnn_meta = load_gdnn(run, L, model_spec)
    snn, snn_meta = load_snn(run, L, model_spec)
    check_run_coding(snn_meta, coding, snn_path(run, L))
    if split == "holdout":
        first = _held_out_from(dnn_meta, gdnn_meta)
        test_data = holdout_split(snn_meta["dataset"], snn_meta.get("data_dir"), first, limit)
    else:
        limit = limit if limit is not None else snn_meta.get("test_limit")
        test_data = load_split(snn_meta["dataset"], "test", snn_meta.get("data_dir"), limit)
    mean, std = normalization(dnn_meta)
    name = dnn_meta.get("architecture") or dnn_meta.get("model_spec") or "model"
    result = evaluate(
        dnn, gdnn, snn, test_data,
        backends=backends, input_scale=snn_meta["input_scale"], input_mean=mean,
        input_std=std, batch_size=batch_size, progress=progress, device=context(device).device,
        model_name=name, dataset_name=test_data.name, precision=precision,
    )  # fmt: skip
    result["sparsity"] = float(snn_meta.get("sparsity", 0.0))  # the fine-tuning's penalty
    # what reproducing the figures needs: the seeds of training and fine-tuning, the threads
    result["reproduce"] = {
        "train_seed": _recorded_seed(dnn_meta),
        "finetune_seed": _recorded_seed(gdnn_meta),
        "finetune_distill": float((gdnn_meta.get("finetune") or {}).get("distill", 0.0)),
        "min_time": int(snn_meta.get("min_time", 1)),  # sparse coding's earliest spike time
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(context(device).device),
        "cpu": cpu_model(),  # float32 training reproduces on the same kind of CPU
    }
    result["split"] = split
    if split == "holdout":
        result["split_first"] = first
        if context().is_main:
            write_json(run / f"evaluation_holdout_{l_tag(L)}.json", result)
        return result
    if context().is_main:
        write_json(run / f"evaluation_{l_tag(L)}.json", result)
        if write_main:
            write_json(run / "evaluation.json", result)
        headline = {
            "snn_top1": {b: v["top1"] for b, v in result["accuracy"]["snn"].items()},
            "gdnn_top1": result["accuracy"]["gdnn"]["top1"],
            "dnn_top1": result["accuracy"]["dnn"]["top1"],
            "agreement": result["agreement"],
            "coding": result["coding"],
            "spikes_per_neuron": result["spikes_per_neuron"],
            "synaptic_events_per_image": result["synaptic_events_per_image"],
            "latency_mean": result["latency"]["mean"],
            "samples": result["samples"],
        }
        save_checkpoint(snn_path(run, L), snn.state_dict(), {**snn_meta, "metrics": headline})
    return result


def _held_out_from(dnn_meta: dict[str, Any], gdnn_meta: dict[str, Any]) -> int:
    """The first training image that neither the DNN nor the fine-tuning saw."""
    limits = [dnn_meta.get("train_limit"), gdnn_meta.get("train_limit")]
    if limits[0] is None:
        raise PipelineError(
            "nothing is held out: the DNN trained on every training image (train it with "
            "a train limit, e.g. `tdsnn train --train-limit 55000`, to hold out the rest)"
        )
    if limits[1] is None or limits[1] > limits[0]:
        raise PipelineError(
            f"the G-DNN was fine-tuned on {'every' if limits[1] is None else limits[1]} "
            f"training image(s), beyond the DNN's first {limits[0]}: nothing is held out"
        )
    return int(limits[0])


def parse_floats(text: str, what: str) -> list[float]:
    """'1,2,3' -> [1.0, 2.0, 3.0] with a PipelineError naming ``what`` on bad input."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PipelineError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise PipelineError(f"{what} must be finite numbers, got {text!r}")
    return values
