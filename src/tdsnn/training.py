"""One training loop for the DNN and for the G-DNN fine-tuning (Figure 2 of the paper).

Figure 2 trains the DNN, inserts ``G`` (eq. 11) before every synapse layer and
retrains "until the network's loss converges".  Both steps are the same
supervised loop here: :func:`train` takes any classifier (the G-DNN's
straight-through gradient makes it trainable), so fine-tuning is just
``train(gdnn, ..., epochs=1, lr=1e-4)``.

Resumption is exact: the data order is a function of ``(seed, epoch)`` (see
:mod:`tdsnn.distributed`), and a training-state checkpoint (weights, optimizer,
scheduler, RNG and the running epoch statistics) is written every
``checkpoint_every`` steps and at the end of every epoch, so ``resume=True``
continues from the last one and ends with the weights of an uninterrupted run.

In sparse coding (``tdsnn.prepare(..., coding="sparse")``) ``train(..., sparsity=lam)``
adds ``lam`` times the soft fraction of synaptic events (non-silent neurons weighted by fan-out) (:class:`tdsnn.sparsity.SpikePenalty`)
to the loss, so that fine-tuning silences neurons and the SNN needs fewer events.

``train(..., teacher=dnn, distill=alpha)`` adds knowledge distillation (Hinton et al.,
2015; not in the TDSNN paper): the loss becomes ``(1 - alpha) CE + alpha tau^2
KL(softmax(teacher / tau) || softmax(student / tau))``, so that the G-DNN learns the
DNN's whole output distribution, also on training images whose labels it already fits.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .augment import augment_batch, check_augment
from .checkpoint import load_training_state, save_training_state
from .distributed import DistContext, all_reduce, barrier, context, set_epoch, unwrap, wrap_model
from .errors import TDSNNError

__all__ = [
    "DISTILL_TEMPERATURE",
    "OPTIMIZERS",
    "SCHEDULERS",
    "Teacher",
    "TrainingError",
    "build_optimizer",
    "build_scheduler",
    "check_distill",
    "classify",
    "distillation_loss",
    "seed_everything",
    "train",
]

OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("cosine", "none")

InputTransform = Callable[[Tensor], Tensor]
DISTILL_TEMPERATURE = 4.0  # softmax temperature of distillation (Hinton et al.'s usual range)


class TrainingError(TDSNNError, RuntimeError):
    """Training cannot start or go on (bad settings, diverged loss, unusable checkpoint)."""


class Teacher(nn.Module):
    """A frozen classifier that gives distillation targets for the batches of another.

    ``transform`` maps the batch as the data loader yields it (``pixel/255``, before the
    student's ``input_transform``) to the teacher's input, e.g. the DNN's normalisation.
    The teacher stays in eval mode and has no gradients.
    """

    def __init__(self, model: nn.Module, transform: InputTransform | None = None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.transform = transform

    def train(self, mode: bool = True) -> Teacher:  # always in eval mode (BN, dropout)
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x if self.transform is None else self.transform(x))


def distillation_loss(
    student: Tensor, teacher: Tensor, temperature: float = DISTILL_TEMPERATURE
) -> Tensor:
    """``tau^2 KL(softmax(teacher / tau) || softmax(student / tau))``, the mean over the batch
    (the ``tau^2`` keeps its gradient on the scale of cross-entropy's)."""
    target = F.log_softmax(teacher.detach().to(student.dtype) / temperature, dim=1)
    log_student = F.log_softmax(student / temperature, dim=1)
    return F.kl_div(log_student, target, reduction="batchmean", log_target=True) * temperature**2


def check_distill(distill: Any, temperature: Any = DISTILL_TEMPERATURE) -> float:
    """``float(distill)`` if it is a weight in [0, 1] and ``temperature`` is > 0, else a
    TrainingError that says what is wrong."""
    for name, value, ok, valid in (
        ("distill", distill, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
        ("distill temperature", temperature, lambda v: v > 0, "a finite number > 0"),
    ):
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or not ok(value)):  # fmt: skip
            raise TrainingError(f"{name} must be {valid}, got {value!r}")
    return float(distill)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and ``random`` (model initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(
    params, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """Adam or SGD with Nesterov momentum."""
    if not (math.isfinite(lr) and lr > 0):
        raise TrainingError(f"learning rate must be > 0, got {lr}")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay
        )
    raise TrainingError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total_steps: int):
    """Cosine decay to 0 over all steps (stepped once per batch), or None."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if name == "none":
        return None
    raise TrainingError(f"scheduler must be one of {SCHEDULERS}, got {name!r}")


def _topk_correct(logits: Tensor, labels: Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return int((top == labels.unsqueeze(1)).any(dim=1).sum())


@torch.no_grad()
def classify(
    model: nn.Module,
    loader: DataLoader,
    *,
    input_transform: InputTransform | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy and mean loss of ``model`` over ``loader`` (all ranks summed).

    With several processes every rank evaluates its shard and the counts are
    all-reduced, so every rank returns the metrics of the whole set.
    """
    model = unwrap(model)
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else _model_device(model)
    sums = torch.zeros(4, dtype=torch.float64)  # samples, loss sum, top-1, top-5
    with torch.random.fork_rng(devices=[]):  # creating the iterator draws from the RNG
        batches = iter(loader)
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        if input_transform is not None:
            x = input_transform(x)
        if dtype is not None:
            x = x.to(dtype)
        logits = model(x)
        sums += torch.tensor(
            [
                len(y),
                float(F.cross_entropy(logits.float(), y, reduction="sum")),
                _topk_correct(logits, y, 1),
                _topk_correct(logits, y, 5),
            ],
            dtype=torch.float64,
        )
    model.train(was_training)
    sums = all_reduce(sums)
    n = max(float(sums[0]), 1.0)
    return {
        "samples": int(sums[0]),
        "loss": float(sums[1]) / n,
        "top1": float(sums[2]) / n,
        "top5": float(sums[3]) / n,
    }


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _Progress:
    """What a checkpoint needs beyond the tensors: finished epochs and the running epoch."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.loss_sum = 0.0
        self.correct = 0
        self.seen = 0
        self.epoch_time = 0.0
        self.penalty_sum = 0.0  # sparsity penalty (soft fraction of synaptic events) x samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen": self.seen,
            "epoch_time": self.epoch_time,
            "penalty_sum": self.penalty_sum,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Progress:
        out = cls()
        out.history = list(data.get("history", []))
        out.loss_sum = float(data.get("loss_sum", 0.0))
        out.correct = int(data.get("correct", 0))
        out.seen = int(data.get("seen", 0))
        out.epoch_time = float(data.get("epoch_time", 0.0))
        out.penalty_sum = float(data.get("penalty_sum", 0.0))
        return out

    def reset_epoch(self) -> None:
        self.loss_sum, self.correct, self.seen, self.epoch_time = 0.0, 0, 0, 0.0
        self.penalty_sum = 0.0


def _save(
    path: Path | None,
    ctx: DistContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    epoch: int,
    step: int,
    progress: _Progress,
    metadata: Mapping[str, Any] | None,
) -> None:
    if path is None:
        return
    if ctx.is_main:
        meta = {**(metadata or {}), "train_progress": progress.to_dict()}
        save_training_state(path, unwrap(model), optimizer, scheduler, epoch, step, metadata=meta)
    barrier()


def _check_loader(loader: DataLoader) -> int:
    try:
        steps = len(loader)
    except TypeError as exc:
        raise TrainingError(
            "the training loader must have a length (a map-style data set)"
        ) from exc
    if steps == 0:
        raise TrainingError("the training loader yields no batch (empty data set?)")
    return steps


def train(
    model: nn.Module,
    train_loader: DataLoader,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    scheduler: str = "cosine",
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 200,
    resume: bool = False,
    progress: bool = True,
    eval_loader: DataLoader | None = None,
    metadata: Mapping[str, Any] | None = None,
    input_transform: InputTransform | None = None,
    max_steps: int | None = None,
    seed: int | None = 0,
    device: torch.device | str | None = None,
    desc: str = "train",
    sparsity: float = 0.0,
    teacher: nn.Module | None = None,
    distill: float = 0.0,
    distill_temperature: float = DISTILL_TEMPERATURE,
    augment: str = "none",
) -> dict[str, Any]:
    """Train ``model`` in place with cross-entropy; return the history.

    Args:
        model: a classifier (the DNN, or the G-DNN for Figure 2's re-training).
        train_loader: batches ``(x, labels)``; for exact resumption its order must be a
            function of the epoch (:func:`tdsnn.distributed.make_train_loader`).
        epochs, lr, optimizer, weight_decay, scheduler: the recipe (``"adam"`` or
            ``"sgd"``; ``"cosine"`` decays per step to 0, ``"none"`` keeps ``lr``).
        checkpoint_path: training-state file written every ``checkpoint_every`` steps
            and after every epoch (rank 0 only).
        resume: continue from ``checkpoint_path`` if it exists (else start afresh).
        eval_loader: evaluated after every epoch (accuracy goes into the history).
        metadata: stored in the checkpoint's sidecar.
        input_transform: applied to every batch on the device (e.g. normalisation).
        max_steps: stop (after checkpointing) once this many steps are done in total;
            a later ``resume=True`` call carries on.  For tests and time-boxed runs.
        seed: seeds the RNGs of a fresh run (dropout); the data order has its own seed.
        device: where to train (default: where the model is).
        sparsity: weight ``lambda`` of the sparsity penalty (sparse coding only): the loss
            is ``cross_entropy + lambda * P`` with ``P`` the mean over the batch of the
            (soft) fraction of synaptic events (:class:`tdsnn.sparsity.SpikePenalty`),
            which pushes small activations to silence and so cuts the SNN's events.
            ``0`` (default) adds nothing; > 0 for a model without sparse ``GCoding`` is
            refused.  A model in sparse coding gets ``train_penalty`` (the mean ``P``
            of the epoch) in its history whatever ``sparsity`` is.
        teacher, distill, distill_temperature: knowledge distillation (module doc): the
            loss is ``(1 - distill) CE + distill * tau^2 KL`` against ``teacher``'s
            logits on the same batch (a :class:`Teacher`, or any module taking the
            loader's batch; moved to the device, put in eval mode, run without
            gradients).  ``distill`` in [0, 1], 0 (default) adds nothing; > 0 needs a
            teacher.
        augment: ``"none"`` (default) or ``"flip-crop"`` (:mod:`tdsnn.augment`), applied to
            every training batch before ``input_transform``, drawn from a generator seeded
            by ``(seed, step)`` (so resumption stays exact).

    Returns a dict: ``epochs`` (one record per epoch: train loss/accuracy, eval
    metrics, lr, seconds), ``steps``, ``total_steps``, ``completed``,
    ``resumed_from_step`` and ``wall_s``.
    """
    if epochs < 0:
        raise TrainingError(f"epochs must be >= 0, got {epochs}")
    distill = check_distill(distill, distill_temperature)
    try:
        augment = check_augment(augment)
    except TDSNNError as exc:
        raise TrainingError(str(exc)) from None
    if distill > 0 and teacher is None:
        raise TrainingError(f"distill={distill:g} needs a teacher model")
    penalty = _penalty(unwrap(model), sparsity)
    try:
        ctx = context(device if device is not None else _model_device(unwrap(model)))
        steps_per_epoch = _check_loader(train_loader)
        total_steps = epochs * steps_per_epoch
        path = Path(checkpoint_path) if checkpoint_path is not None else None
        net = wrap_model(model, ctx)
        if teacher is not None and distill > 0:
            teacher = teacher.to(ctx.device).eval()
            distiller = (teacher, distill, float(distill_temperature))
        else:
            distiller = None
        opt = build_optimizer(net.parameters(), optimizer, lr, weight_decay)
        sched = build_scheduler(opt, scheduler, total_steps)
        state = _Progress()
        step = 0
        resumed_from: int | None = None
        if resume and path is not None and path.is_file():
            info = load_training_state(path, unwrap(net), opt, sched)
            step = int(info["step"])
            state = _Progress.from_dict(info["metadata"].get("train_progress", {}))
            resumed_from = step
            if step > total_steps:
                raise TrainingError(
                    f"checkpoint {path} is at step {step}, beyond the {total_steps} steps asked for "
                    f"({epochs} epochs of {steps_per_epoch}); use the same data and epochs to resume"
                )
        elif seed is not None:
            seed_everything(seed)
        started = time.perf_counter()
        show = progress and ctx.is_main
        for epoch in range(step // steps_per_epoch, epochs):
            skip = step - epoch * steps_per_epoch
            if skip == 0:
                state.reset_epoch()
            set_epoch(train_loader, epoch)
            net.train()
            with torch.random.fork_rng(devices=[]):  # creating the iterator draws from the RNG
                batches = itertools.islice(iter(train_loader), skip, None)
            bar = tqdm(
                total=steps_per_epoch,
                initial=skip,
                desc=f"{desc} {epoch + 1}/{epochs}",
                disable=not show,
                dynamic_ncols=True,
                leave=True,
            )
            tick = time.perf_counter()
            for x, y in batches:
                # seeded per step: a resumed run sees the same images ("none": x itself)
                x = augment_batch(x, augment, 0 if seed is None else seed, step)
                loss, correct, pen = _step(
                    net, opt, sched, x, y, ctx.device, input_transform, step, penalty, sparsity,
                    distiller,
                )
                step += 1
                state.penalty_sum += pen * len(y)
                state.loss_sum += loss * len(y)
                state.correct += correct
                state.seen += len(y)
                if show:  # shown by update(), at most every 0.1 s
                    bar.set_postfix(
                        loss=f"{state.loss_sum / state.seen:.4f}",
                        acc=f"{state.correct / state.seen:.4f}",
                        lr=f"{opt.param_groups[0]['lr']:.2e}",
                        refresh=False,
                    )
                bar.update(1)
                if step % steps_per_epoch == 0:
                    break
                stop = max_steps is not None and step >= max_steps
                if stop or (checkpoint_every and step % checkpoint_every == 0):
                    state.epoch_time += time.perf_counter() - tick
                    tick = time.perf_counter()
                    _save(path, ctx, net, opt, sched, epoch, step, state, metadata)
                if stop:
                    bar.close()
                    return _result(state, step, total_steps, False, resumed_from, started)
            state.epoch_time += time.perf_counter() - tick
            record = _epoch_record(state, epoch, opt, ctx, penalty is not None)
            if eval_loader is not None:
                record.update(
                    {
                        f"eval_{k}": v
                        for k, v in classify(
                            net, eval_loader, input_transform=input_transform, device=ctx.device
                        ).items()
                    }
                )
            state.history.append(record)
            bar.set_postfix(
                {k: _short(v) for k, v in record.items() if k.startswith(("train_", "eval_"))}
            )
            bar.close()
            _save(path, ctx, net, opt, sched, epoch + 1, step, state, metadata)
            if max_steps is not None and step >= max_steps and step < total_steps:
                return _result(state, step, total_steps, False, resumed_from, started)
        return _result(state, step, total_steps, True, resumed_from, started)

    finally:
        _close(penalty)


def _penalty(model: nn.Module, sparsity: float):
    """The entered :class:`tdsnn.sparsity.SpikePenalty` of a sparse-coding model, else None."""
    from .sparsity import SpikePenalty, has_sparse_coding

    if (
        isinstance(sparsity, bool)
        or not isinstance(sparsity, int | float)
        or not (math.isfinite(sparsity) and sparsity >= 0)
    ):
        raise TrainingError(f"sparsity must be a finite number >= 0, got {sparsity!r}")
    if not has_sparse_coding(model):
        if sparsity > 0:
            raise TrainingError(
                f"sparsity={sparsity:g} needs a G-DNN in sparse coding "
                "(tdsnn.prepare(..., coding='sparse')): this model has no silent neurons"
            )
        return None
    return SpikePenalty(model).__enter__()


def _close(penalty) -> None:
    if penalty is not None:
        penalty.__exit__(None, None, None)


def _short(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _step(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    sched,
    x: Tensor,
    y: Tensor,
    device: torch.device,
    input_transform: InputTransform | None,
    step: int,
    penalty=None,
    sparsity: float = 0.0,
    distiller: tuple[nn.Module, float, float] | None = None,
) -> tuple[float, int, float]:
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    raw = x
    if input_transform is not None:
        x = input_transform(x)
    if penalty is not None:
        penalty.clear()
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    if distiller is not None:
        teacher, alpha, temperature = distiller
        with torch.no_grad():
            target = teacher(raw)
        soft = distillation_loss(logits, target, temperature)
        loss = (1.0 - alpha) * loss + alpha * soft
    pen = 0.0
    if penalty is not None:
        value = penalty.value()
        pen = float(value.detach())
        if sparsity > 0:
            loss = loss + sparsity * value.to(loss.dtype)
        penalty.clear()
    if not torch.isfinite(loss):
        raise TrainingError(
            f"the loss became {float(loss.detach())} at step {step + 1}: lower the learning rate"
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return float(loss.detach()), int((logits.detach().argmax(dim=1) == y).sum()), pen


def _epoch_record(
    state: _Progress,
    epoch: int,
    opt: torch.optim.Optimizer,
    ctx: DistContext,
    with_penalty: bool = False,
) -> dict[str, Any]:
    sums = all_reduce(
        torch.tensor(
            [state.loss_sum, state.correct, state.seen, state.penalty_sum], dtype=torch.float64
        )
    )
    seen = max(float(sums[2]), 1.0)
    extra = {"train_penalty": float(sums[3]) / seen} if with_penalty else {}
    return {
        **extra,
        "epoch": epoch + 1,
        "train_loss": float(sums[0]) / seen,
        "train_acc": float(sums[1]) / seen,
        "lr": float(opt.param_groups[0]["lr"]),
        "time_s": state.epoch_time,
    }


def _result(
    state: _Progress,
    step: int,
    total_steps: int,
    completed: bool,
    resumed_from: int | None,
    started: float,
) -> dict[str, Any]:
    return {
        "epochs": list(state.history),
        "steps": step,
        "total_steps": total_steps,
        "completed": completed,
        "resumed_from_step": resumed_from,
        "wall_s": time.perf_counter() - started,
    }
