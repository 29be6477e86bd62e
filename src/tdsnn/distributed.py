"""Data-parallel helpers: the same training and evaluation code on 1 or N processes.

Launch with ``torchrun --nproc_per_node=N -m tdsnn.cli ...``: :func:`init_distributed`
reads ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` and joins the process group (gloo on
CPU, nccl on GPU); with one process nothing is initialised and every helper is a
no-op.

The data order does not depend on the number of processes: every step takes one
*global* batch of ``B`` samples from the epoch's permutation (seeded by
``seed + epoch``, as :class:`~torch.utils.data.DistributedSampler` does), rank
``r`` takes its ``B / N`` share of it, and DistributedDataParallel averages the
gradients, which equals the gradient of the mean loss over the global batch.  So
N processes reach the weights of one process, up to float summation order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler, TensorDataset

from .errors import TDSNNError

__all__ = [
    "DistContext",
    "DistributedError",
    "ShardSampler",
    "all_reduce",
    "barrier",
    "cleanup",
    "context",
    "init_distributed",
    "make_eval_loader",
    "make_train_loader",
    "print0",
    "set_epoch",
    "unwrap",
    "wrap_model",
]


class DistributedError(TDSNNError, RuntimeError):
    """The process group cannot be set up as asked (bad device, batch not divisible, ...)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, shows progress bars and writes files."""
        return self.rank == 0


def _resolve_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    name = str(device or "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DistributedError("--device cuda was asked for, but CUDA is not available here")
        return torch.device("cuda", local_rank if name == "cuda" else torch.device(name).index)
    if name != "cpu":
        raise DistributedError(f"device must be 'cpu' or 'cuda', got {name!r}")
    return torch.device("cpu")


def context(device: str | torch.device | None = None) -> DistContext:
    """The current context: from the initialised process group, else one process."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistContext(
            dist.get_rank(), dist.get_world_size(), local, _resolve_device(device, local)
        )
    return DistContext(device=_resolve_device(device, 0))


def _env_int(name: str, default: int, low: int, high: int | None = None) -> int:
    """An integer environment variable in ``low..high``, or a DistributedError naming it."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise DistributedError(f"{name}={text!r} is not an integer") from None
    if value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise DistributedError(f"{name}={value} is out of range ({span})")
    return value


def init_distributed(device: str | torch.device | None = "cpu") -> DistContext:
    """Join the process group when launched by torchrun (``WORLD_SIZE > 1``).

    Uses gloo for CPU tensors and nccl for CUDA (``env://`` rendezvous, as torchrun
    sets it up).  Returns the one-process context otherwise.
    """
    world = _env_int("WORLD_SIZE", 1, 1)
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return context(device)
    if "RANK" not in os.environ:
        raise DistributedError(
            f"WORLD_SIZE={world} is set but RANK is not: launch with torchrun, which sets "
            "RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (or unset WORLD_SIZE)"
        )
    _env_int("RANK", 0, 0, world - 1)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise DistributedError(f"WORLD_SIZE={world} is set but {name} is not (use torchrun)")
    _env_int("MASTER_PORT", 0, 1, 65535)
    local = _env_int("LOCAL_RANK", 0, 0)
    resolved = _resolve_device(device, local)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return context(device)


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def print0(*args, **kwargs) -> None:
    """``print`` on rank 0 only."""
    if context().is_main:
        print(*args, **kwargs)


def all_reduce(values: Tensor, op: str = "sum") -> Tensor:
    """Reduce ``values`` over all ranks (``sum``, ``min`` or ``max``); identity on one process.

    The tensor is reduced on the process group's device and returned on its own.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    ops = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
    backend = dist.get_backend()
    work = values.detach().clone()
    if backend == "nccl":
        work = work.to(torch.device("cuda", torch.cuda.current_device()))
    else:
        work = work.cpu()
    dist.all_reduce(work, op=ops[op])
    return work.to(values.device)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """Move ``model`` to the context's device; wrap it in DDP when there are several ranks."""
    model = model.to(ctx.device)
    if not ctx.distributed or isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints store)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + N, ...`` of ``range(length)``: each sample on one rank, no padding.

    Evaluation must see every test sample exactly once, so unlike
    :class:`DistributedSampler` nothing is repeated to even out the shards.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def make_train_loader(
    inputs: Tensor,
    labels: Tensor,
    global_batch: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    ctx: DistContext | None = None,
) -> DataLoader:
    """Batches of ``global_batch / world_size`` samples per rank, in a seeded per-epoch order.

    Call :func:`set_epoch` before every epoch (``train`` does).  The order is a pure
    function of ``(seed, epoch)``, which makes resumption and multi-process runs
    reproduce a single uninterrupted process.  Batches are gathered by indexing the
    tensors once per batch (no per-sample collation).
    """
    ctx = ctx or context()
    if global_batch < 1:
        raise DistributedError(f"batch size must be positive, got {global_batch}")
    if global_batch % ctx.world_size:
        raise DistributedError(
            f"batch size {global_batch} is not divisible by the {ctx.world_size} processes"
        )
    dataset = TensorDataset(inputs, labels)
    sampler = DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle, seed=seed
    )
    batches = BatchSampler(sampler, global_batch // ctx.world_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, generator=torch.Generator())


def make_eval_loader(
    inputs: Tensor, labels: Tensor, batch_size: int, *, ctx: DistContext | None = None
) -> DataLoader:
    """In-order batches of this rank's shard (see :class:`ShardSampler`)."""
    ctx = ctx or context()
    dataset = TensorDataset(inputs, labels)
    shard = ShardSampler(len(dataset), ctx.rank, ctx.world_size)
    batches = BatchSampler(shard, batch_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, generator=torch.Generator())


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the loader's (possibly nested) sampler which epoch starts (its shuffling seed)."""
    candidates = [getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)]
    for candidate in list(candidates):
        candidates.append(getattr(candidate, "sampler", None))
    for candidate in candidates:
        if hasattr(candidate, "set_epoch"):
            candidate.set_epoch(epoch)
