"""Shared helpers of the benchmark suite.

* machine information printed beside every figure;
* the benchmark networks (:class:`NetSpec`), their training with a plain loop and
  their cache under ``benchmarks/.cache/`` (or a CLI run folder, ``--run-dir``);
* G-DNN fine-tuning per leak constant ``L``;
* interleaved wall-clock timing (median of repeats) and peak-memory probes, each
  configuration in a fresh subprocess (Linux ``VmHWM`` after ``clear_refs``).

Run as ``python benchmarks/common.py --probe JSON`` it is the memory probe itself.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F
from torch import nn

import tdsnn
from tdsnn.checkpoint import load_checkpoint, save_checkpoint
from tdsnn.data import load_dataset, to_float
from tdsnn.models import build_model
from tdsnn.scales import calibrate_activation_scales

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
CACHE = BENCH / ".cache"
DOCS = ROOT / "docs"
IMG = DOCS / "img"

# Warnings that prepare() gives for every padded CIFAR network; the docs say it once.
warnings.filterwarnings("ignore", message="input normalisation folded into the padded conv")
warnings.filterwarnings("ignore", message="the ReLU after the output layer is dropped")

MODES = ("dnn", "gdnn", "closed_form", "closed_form_f32", "closed_form_f64", "clocked")
MODE_LABELS = {
    "dnn": "DNN forward (float32)",
    "gdnn": "G-DNN forward (float32)",
    "closed_form": "SNN closed_form (certified, default)",
    "closed_form_f64": "SNN closed_form (float64)",
    "closed_form_f32": "SNN closed_form (float32)",
    "clocked": "SNN clocked (certified, default)",
    "clocked_f64": "SNN clocked (float64)",
}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    from tdsnn.process import cpu_model as model

    return model()


def usable_cores() -> int:
    from tdsnn.process import usable_cores as cores

    return cores()


def machine_info() -> dict:
    """What the figures were measured on (read at call time)."""
    from tdsnn.process import is_allocator_variable

    malloc = {k: v for k, v in os.environ.items() if is_allocator_variable(k)}
    info = {
        "allocator": "environment" if malloc else "default",  # glibc's, see tdsnn.process
        "allocator_env": malloc,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tdsnn": tdsnn.__version__,
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
    }
    try:
        info["memory_gib"] = round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        )
    except (ValueError, OSError, AttributeError):
        pass
    try:
        info["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    try:
        from importlib.metadata import version

        import spikingjelly  # noqa: F401

        info["spikingjelly"] = version("spikingjelly")
    except Exception:  # noqa: BLE001 - optional peer
        info["spikingjelly"] = None
    return info


def machine_line(info: dict) -> str:
    return (
        f"CPU: {info['cpu']} ({info['usable_cores']} usable cores), torch {info['torch']}, "
        f"torch.get_num_threads()={info['torch_threads']}, load average {info.get('loadavg')}"
    )


DEFAULT_THREADS = 1


def set_threads(threads: int | None) -> int:
    """Fix torch's intra-op threads (default 1: see ``thread_check``)."""
    threads = threads or DEFAULT_THREADS
    torch.set_num_threads(threads)
    return threads


def thread_check(repeats: int = 20) -> list[dict]:
    """Spread of one DNN forward (VGG-11-style, width 0.25, batch 32) at 1 and at all cores.

    On a machine shared with other processes, several intra-op threads wait for each
    other whenever one is descheduled: the median and the tail grow and the figures stop
    being repeatable.  This records the evidence behind the default of one thread.
    """
    from tdsnn.models import vgg_cifar

    torch.manual_seed(0)
    model = vgg_cifar(width=0.25, depth=11).eval()
    x = torch.randn(32, 3, 32, 32)
    before = torch.get_num_threads()
    out = []
    try:
        for threads in sorted({1, usable_cores()}):
            torch.set_num_threads(threads)
            times = []
            with torch.no_grad():
                model(x)
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - t0)
            times.sort()
            out.append({"threads": threads, "min_ms": 1e3 * times[0], "median_ms": 1e3 * median(times),
                        "p90_ms": 1e3 * times[int(0.9 * (len(times) - 1))], "max_ms": 1e3 * times[-1]})
    finally:
        torch.set_num_threads(before)
    return out


# ----------------------------------------------------------------------------- data


@cache
def dataset(name: str, split: str):
    return load_dataset(name, split)


def raw_images(ds, n: int | None = None, offset: int = 0) -> torch.Tensor:
    """Float pixels in [0, 1]: the G-DNN's and the SNN's input."""
    end = len(ds) if n is None else min(len(ds), offset + n)
    return to_float(ds.images[offset:end])


def normalise(x: torch.Tensor, ds) -> torch.Tensor:
    """(x - mean) / std: the DNN's input."""
    mean = torch.tensor(ds.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(ds.std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def repeat_to(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of ``x`` repeated as needed."""
    reps = math.ceil(n / x.shape[0])
    return x.repeat((reps,) + (1,) * (x.dim() - 1))[:n].contiguous()


# ----------------------------------------------------------------------------- networks


@dataclass
class NetSpec:
    """A benchmark network: a zoo architecture, its kwargs and its data set."""

    key: str
    arch: str
    kwargs: dict
    dataset: str
    label: str
    # training recipe of the plain loop (used when no run folder is given)
    lr: float = 0.05
    batch: int = 128
    augment: bool = False
    run_dir: str | None = None
    # "auto": per-layer activation scales calibrated on training images (tdsnn.scales)
    activation_scales: str | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28) if self.dataset == "mnist" else (3, 32, 32)


def default_specs(vgg_width: float = 0.25, vgg_depth: int = 11, alex_width: float = 0.25):
    """The three networks of the suite, keyed by role."""
    return {
        "lenet5": NetSpec("lenet5", "lenet5", {}, "mnist", "LeNet-5 (MNIST, 1x28x28)", lr=0.05),
        "vgg": NetSpec(
            f"vgg{vgg_depth}_w{vgg_width:g}",
            "vgg_cifar",
            {"width": vgg_width, "depth": vgg_depth, "batch_norm": True},
            "cifar10",
            f"VGG-{vgg_depth}-style, width {vgg_width:g} (CIFAR-10, 3x32x32)",
            lr=0.05,
            augment=True,
            activation_scales="auto",
        ),
        "alexnet": NetSpec(
            f"alexnet_w{alex_width:g}",
            "alexnet_cifar",
            {"width": alex_width, "batch_norm": True},
            "cifar10",
            f"AlexNet-style, width {alex_width:g} (CIFAR-10, 3x32x32)",
            lr=0.05,
            augment=True,
            activation_scales="auto",
        ),
        "resnet20": NetSpec(
            "resnet20_w1",
            "resnet20_cifar",
            {"width": 1.0},
            "cifar10",
            "ResNet-20 (CIFAR-10, 3x32x32, identity + projection shortcuts)",
            lr=0.05,
            augment=True,
        ),
    }


def apply_run_dirs(specs: dict[str, NetSpec], run_dirs: list[str] | None) -> None:
    """Attach CLI run folders (``dnn.safetensors`` + sidecar) to the spec of their architecture.

    The suite feeds the DNN ``(pixel/255 - mean) / std`` with the data set's statistics and
    the SNN ``pixel/255``; a run trained otherwise (other normalisation, ``input_scale`` != 1,
    activation scales) is refused rather than measured wrongly.
    """
    from tdsnn.checkpoint import load_metadata

    role_of = {"lenet5": "lenet5", "vgg_cifar": "vgg", "alexnet_cifar": "alexnet",
               "resnet20_cifar": "resnet20"}
    for run_dir in run_dirs or []:
        meta = load_metadata(Path(run_dir) / "dnn.safetensors")
        arch = meta.get("architecture") or meta.get("model")
        if arch not in role_of:
            raise SystemExit(f"--run-dir {run_dir}: architecture {arch!r} is not benchmarked")
        kwargs = dict(meta.get("arch_kwargs") or {})
        old = specs[role_of[arch]]
        data = meta.get("dataset") or old.dataset
        if isinstance(data, dict):
            data = data.get("name", old.dataset)
        ds = dataset(data, "test")
        norm = meta.get("normalization") or {}
        if [round(v, 4) for v in norm.get("mean", [])] != [round(v, 4) for v in ds.mean] or [
            round(v, 4) for v in norm.get("std", [])
        ] != [round(v, 4) for v in ds.std]:
            raise SystemExit(f"--run-dir {run_dir}: normalisation {norm} is not {data}'s "
                             f"(mean {ds.mean}, std {ds.std}); not supported by the benchmarks")
        gpath = Path(run_dir) / "gdnn_L5.safetensors"
        if gpath.exists():
            gmeta = load_metadata(gpath)
            scales = [float(v) for v in gmeta.get("activation_scales") or []]
            if float(gmeta.get("input_scale", 1.0)) != 1.0 or any(v != 1.0 for v in scales):
                raise SystemExit(f"--run-dir {run_dir}: gdnn_L5 uses input_scale / activation "
                                 "scales other than 1; not supported by the benchmarks")
        tag = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:6]
        label = old.label if {k: v for k, v in kwargs.items() if k != "num_classes"} == old.kwargs \
            else f"{arch} {kwargs} ({data})"
        specs[role_of[arch]] = NetSpec(
            f"{old.key}_run{tag}", arch, kwargs, data, label + " [run folder]", run_dir=str(run_dir)
        )


def build(spec: NetSpec) -> nn.Module:
    return build_model(spec.arch, **spec.kwargs)


@dataclass
class TrainConfig:
    epochs: float = 2.0
    limit: int | None = None  # training images used per epoch (None: all)
    seed: int = 0
    eval_samples: int | None = None  # test images for the accuracy (None: all)


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip per image and a random shift (pad 4) per batch."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    dy, dx = (int(v) for v in torch.randint(-4, 5, (2,), generator=gen))
    x = F.pad(x, (4, 4, 4, 4))
    return x[:, :, 4 + dy : 4 + dy + x.shape[2] - 8, 4 + dx : 4 + dx + x.shape[3] - 8]


@torch.no_grad()
def accuracy(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y, batch=500) -> float:
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += int((fn(x[i : i + batch]).argmax(dim=1) == y[i : i + batch]).sum())
    return 100.0 * correct / max(1, x.shape[0])


def train_loop(
    model: nn.Module,
    forward_input: Callable[[torch.Tensor], torch.Tensor],
    ds_train,
    *,
    epochs: float,
    lr: float,
    batch: int,
    augment: bool,
    seed: int,
    limit: int | None,
    optimizer: str = "sgd",
    label: str = "",
) -> float:
    """A plain training loop (SGD + one-cycle, or Adam + cosine); returns seconds spent."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(ds_train) if limit is None else min(limit, len(ds_train))
    steps_per_epoch = math.ceil(n / batch)
    total = max(1, int(round(epochs * steps_per_epoch)))
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4
        )
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    model.train()
    start = time.perf_counter()
    step = 0
    while step < total:
        order = torch.randperm(len(ds_train), generator=gen)[:n]
        for i in range(0, n, batch):
            if step >= total:
                break
            idx = order[i : i + batch]
            x = to_float(ds_train.images[idx])
            if augment:
                x = _augment(x, gen)
            loss = F.cross_entropy(model(forward_input(x)), ds_train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0 or step == total:
                log(f"  [{label}] step {step}/{total} loss {float(loss.detach()):.3f} "
                    f"({time.perf_counter() - start:.0f} s)")
    model.eval()
    return time.perf_counter() - start


def dnn_path(spec: NetSpec, cfg: TrainConfig) -> Path:
    if spec.run_dir:
        return Path(spec.run_dir) / "dnn.safetensors"
    key = _key(spec.arch, spec.kwargs, spec.dataset, spec.lr, spec.batch, spec.augment,
               cfg.epochs, cfg.limit, cfg.seed)
    return CACHE / "models" / f"{spec.key}_dnn_{key}.safetensors"


def load_into(model: nn.Module, path: Path) -> tuple[nn.Module, dict]:
    """Load a saved checkpoint into ``model`` (eval mode); its metadata, with the source."""
    state, meta = load_checkpoint(path)
    model.load_state_dict(state)
    model.eval()
    meta = dict(meta)
    meta.setdefault("source", str(path))
    return model, meta


def get_dnn(spec: NetSpec, cfg: TrainConfig) -> tuple[nn.Module, dict]:
    """The trained DNN of ``spec``: from its run folder, the cache, or trained now."""
    path = dnn_path(spec, cfg)
    if path.exists():
        model, meta = load_into(build(spec), path)
        if "test_accuracy" not in meta:
            ds = dataset(spec.dataset, "test")
            x = normalise(raw_images(ds, cfg.eval_samples), ds)
            meta["test_accuracy"] = accuracy(model, x, ds.labels[: x.shape[0]])
        return model, meta
    if spec.run_dir:
        raise SystemExit(f"{path} not found")
    torch.manual_seed(cfg.seed)
    model = build(spec)
    ds_train = dataset(spec.dataset, "train")
    log(f"training {spec.label} for {cfg.epochs:g} epochs (limit {cfg.limit}) ...")
    seconds = train_loop(
        model, lambda x: normalise(x, ds_train), ds_train, epochs=cfg.epochs, lr=spec.lr,
        batch=spec.batch, augment=spec.augment, seed=cfg.seed, limit=cfg.limit, label=spec.key,
    )
    ds = dataset(spec.dataset, "test")
    acc = accuracy(model, normalise(raw_images(ds), ds), ds.labels)
    meta = {
        "architecture": spec.arch, "arch_kwargs": spec.kwargs, "dataset": spec.dataset,
        "normalization": {"mean": list(ds.mean), "std": list(ds.std)},
        "epochs": cfg.epochs, "train_limit": cfg.limit, "seed": cfg.seed, "lr": spec.lr,
        "batch": spec.batch, "augment": spec.augment, "train_seconds": round(seconds, 1),
        "test_accuracy": acc, "test_samples": len(ds), "source": "trained by benchmarks",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model.state_dict(), meta)
    log(f"  {spec.key}: test accuracy {acc:.2f} % after {seconds:.0f} s -> {path}")
    return model, meta


CALIBRATION_IMAGES = 512


def make_gdnn(spec: NetSpec, dnn: nn.Module, L: float) -> tdsnn.GDNN:
    """``tdsnn.prepare`` with the data set's normalisation folded in; with
    ``activation_scales="auto"``, scales calibrated on the first training images."""
    ds = dataset(spec.dataset, "test")
    scales = None
    if spec.activation_scales == "auto":
        train = dataset(spec.dataset, "train")
        scales = calibrate_activation_scales(
            dnn, raw_images(train, CALIBRATION_IMAGES), input_mean=ds.mean, input_std=ds.std
        )
    return tdsnn.prepare(
        dnn, L=L, input_mean=ds.mean, input_std=ds.std, activation_scales=scales
    ).eval()


def gdnn_path(spec: NetSpec, cfg: TrainConfig, L: float, steps: int) -> Path:
    if spec.run_dir and float(L) == 5.0 and (Path(spec.run_dir) / "gdnn_L5.safetensors").exists():
        return Path(spec.run_dir) / "gdnn_L5.safetensors"
    key = _key(str(dnn_path(spec, cfg)), float(L), steps, FINETUNE_BATCH, spec.activation_scales)
    return CACHE / "models" / f"{spec.key}_gdnn_L{L:g}_s{steps}_{key}.safetensors"


FINETUNE_BATCH = 64


def get_gdnn(
    spec: NetSpec, cfg: TrainConfig, dnn: nn.Module, L: float, steps: int, lr: float = 1e-4
) -> tuple[tdsnn.GDNN, dict]:
    """The G-DNN at leak ``L``, fine-tuned for ``steps`` Adam steps of 64 images (0: just prepared)."""
    gdnn = make_gdnn(spec, dnn, L)
    if steps <= 0:
        return gdnn, {"L": L, "finetune_steps": 0, "source": "prepared, not fine-tuned"}
    path = gdnn_path(spec, cfg, L, steps)
    if path.exists():
        return load_into(gdnn, path)
    ds_train = dataset(spec.dataset, "train")
    log(f"fine-tuning the G-DNN of {spec.key} at L={L:g} for {steps} steps ...")
    seconds = train_loop(
        gdnn, lambda x: x, ds_train, epochs=steps / math.ceil(len(ds_train) / FINETUNE_BATCH),
        lr=lr, batch=FINETUNE_BATCH, augment=spec.augment, seed=cfg.seed + 1, limit=None,
        optimizer="adam", label=f"{spec.key} L={L:g}",
    )
    meta = {"L": L, "finetune_steps": steps, "batch": FINETUNE_BATCH, "lr": lr,
            "finetune_seconds": round(seconds, 1),
            "source": "fine-tuned by benchmarks"}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, gdnn.state_dict(), meta)
    return gdnn, meta


def models(
    role: str, spec: NetSpec, cfg: TrainConfig, steps: int, prepared: dict | None = None
) -> tuple[nn.Module, dict, tdsnn.GDNN, dict]:
    """(DNN, its metadata, G-DNN at L=5, its metadata) of a network: from ``prepared``
    (role -> (spec, cfg, dnn, meta, gdnn, gmeta), filled by run_all) or loaded now."""
    if prepared and role in prepared:
        return prepared[role][2:]
    dnn, meta = get_dnn(spec, cfg)
    gdnn, gmeta = get_gdnn(spec, cfg, dnn, 5.0, steps)
    return dnn, meta, gdnn, gmeta


def save_figure(fig, path: Path, machine: dict, fontsize: int = 7) -> Path:
    """Title a benchmark figure with the machine, write it as a PNG and close it."""
    import matplotlib.pyplot as plt

    fig.suptitle(machine_line(machine), fontsize=fontsize)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- timing


SPIN = """
import sys, time
on, off = 0.004 * float(sys.argv[1]), 0.004 * (1 - float(sys.argv[1]))
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < on:
        pass
    if off:
        time.sleep(off)
"""


@contextmanager
def busy_core(duty: float = 1.0) -> Iterator[None]:
    """A second process that keeps one core busy while the block runs, as another user of a
    shared machine would: it spins all the time (``duty = 1``) or ``duty`` of every 4 ms."""
    hog = subprocess.Popen([sys.executable, "-c", SPIN, str(duty)])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()



def mode_callables(
    modes, dnn: nn.Module, gdnn: nn.Module, snn: tdsnn.SNN, x_raw: torch.Tensor, x_norm
) -> dict[str, Callable[[], object]]:
    """One zero-argument callable per mode, on inputs prepared beforehand."""
    table = {
        "dnn": lambda: dnn(x_norm),
        "gdnn": lambda: gdnn(x_raw),
        "closed_form": lambda: snn.run(x_raw, backend="closed_form", precision="certified"),
        "closed_form_f64": lambda: snn.run(x_raw, backend="closed_form", precision="float64"),
        "closed_form_f32": lambda: snn.run(x_raw, backend="closed_form", precision="float32"),
        "clocked": lambda: snn.run(x_raw, backend="clocked", precision="certified"),
        "clocked_f64": lambda: snn.run(x_raw, backend="clocked", precision="float64"),
    }

    def wrap(fn):
        def call():
            with torch.no_grad():
                return fn()

        return call

    return {m: wrap(table[m]) for m in modes}


@dataclass
class TimingConfig:
    warmup: int = 1
    min_repeats: int = 3
    max_repeats: int = 30
    target_s: float = 1.0  # wall time aimed at per callable (repeats = target / one call)


def time_interleaved(fns: dict[str, Callable[[], object]], cfg: TimingConfig) -> dict[str, dict]:
    """Median wall time of each callable, repeats interleaved round-robin.

    Every callable is warmed up, then timed ``n`` times with ``n`` chosen from its
    warm-up time (``target_s``, clamped to [min_repeats, max_repeats]); the rounds
    interleave the callables so that a change of machine load hits all of them.
    """
    first: dict[str, float] = {}
    for name, fn in fns.items():
        for _ in range(max(1, cfg.warmup)):
            t0 = time.perf_counter()
            fn()
            first[name] = time.perf_counter() - t0
    counts = {
        name: int(min(cfg.max_repeats, max(cfg.min_repeats, math.ceil(cfg.target_s / max(t, 1e-6)))))
        for name, t in first.items()
    }
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(max(counts.values())):
        for name, fn in fns.items():
            if round_ < counts[name]:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {
        name: {"median_s": median(ts), "min_s": min(ts), "max_s": max(ts), "repeats": len(ts)}
        for name, ts in times.items()
    }


# ----------------------------------------------------------------------------- memory


MEMORY_METHOD = (
    "peak resident-set growth of one call in a fresh Python process: Linux VmHWM after "
    "resetting it to the current RSS (/proc/self/clear_refs = 5) just before the call, "
    "minus that RSS; the model, the input batch and the imports are loaded before the reset "
    "and excluded, and freed heap is returned to the OS first (glibc malloc_trim); memory "
    "reused from the allocator's free lists does not show, so read it as a lower bound"
)


def _status_kib(field_name: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(field_name + r":\s+(\d+)", text).group(1))


@dataclass
class ProbeSpec:
    """Everything a fresh process needs to rebuild one configuration."""

    arch: str
    kwargs: dict
    dataset: str
    L: float
    batch: int
    mode: str
    threads: int
    seed: int = 0
    dnn_path: str | None = None
    gdnn_path: str | None = None
    extra: dict = field(default_factory=dict)


def materialise(p: ProbeSpec) -> tuple[nn.Module, tdsnn.GDNN, tdsnn.SNN, object]:
    """Build (DNN, G-DNN, SNN, test set) from a probe spec, deterministically."""
    torch.manual_seed(p.seed)
    dnn = build_model(p.arch, **p.kwargs)
    if p.dnn_path:
        dnn.load_state_dict(load_checkpoint(p.dnn_path)[0])
    dnn.eval()
    ds = dataset(p.dataset, "test")
    gdnn = tdsnn.prepare(dnn, L=p.L, input_mean=ds.mean, input_std=ds.std)
    if p.gdnn_path:
        gdnn.load_state_dict(load_checkpoint(p.gdnn_path)[0])
    gdnn.eval()
    return dnn, gdnn, tdsnn.convert(gdnn), ds


def _probe_main(spec_json: str) -> None:
    p = ProbeSpec(**json.loads(spec_json))
    torch.set_num_threads(p.threads)
    dnn, gdnn, snn, ds = materialise(p)
    x_raw = repeat_to(raw_images(ds, min(p.batch, len(ds))), p.batch)
    x_norm = normalise(x_raw, ds)
    fn = mode_callables([p.mode], dnn, gdnn, snn, x_raw, x_norm)[p.mode]
    gc.collect()
    try:  # hand freed heap back to the OS, so that the call's allocations show in the RSS
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    method = "VmHWM"
    try:
        Path("/proc/self/clear_refs").write_text("5")
        baseline = _status_kib("VmRSS")
    except OSError:
        import resource

        method = "ru_maxrss"
        baseline = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    if method == "VmHWM":
        peak = _status_kib("VmHWM")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del out
    print(json.dumps({"baseline_mib": baseline / 1024, "peak_delta_mib": (peak - baseline) / 1024,
                      "method": method, "first_call_s": seconds}))


def probe_memory(p: ProbeSpec, timeout: float = 900) -> dict:
    """Run one configuration in a fresh interpreter; return its peak RSS growth (MiB)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", json.dumps(asdict(p))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"peak_delta_mib": float("nan"), "error": "timeout"}
    if proc.returncode != 0:
        return {"peak_delta_mib": float("nan"), "error": proc.stderr.strip()[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- output


def fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in row) + " |")
    return "\n".join(lines)


def write_json(path: Path, obj) -> Path:
    """Write ``obj`` as indented JSON (a benchmark's artefact), making the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    return path


def save_json(name: str, obj) -> Path:
    """The raw results of a benchmark, kept in the (ignored) cache."""
    return write_json(CACHE / "results" / f"{name}.json", obj)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a few-minute version")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default 1; see common.thread_check)")
    parser.add_argument("--vgg-width", type=float, default=0.25)
    parser.add_argument("--vgg-depth", type=int, default=11, choices=(11, 13, 16))
    parser.add_argument("--alexnet-width", type=float, default=0.25)
    parser.add_argument("--train-epochs", type=float, default=None,
                        help="epochs of the plain training loop for the VGG network (default 2; "
                             "quick: 1 epoch of 5k images); LeNet-5 and AlexNet get 1 (see "
                             "common.train_configs)")
    parser.add_argument("--finetune-steps", type=int, default=None,
                        help="Adam steps (batch 64, lr 1e-4) of the per-L G-DNN fine-tune "
                             "(default 300, quick 10)")
    parser.add_argument("--run-dir", action="append", default=None,
                        help="a `tdsnn train` run folder (dnn.safetensors [+ gdnn_L5.safetensors]) "
                             "to benchmark instead of a self-trained model; repeatable")


def train_configs(args) -> dict[str, TrainConfig]:
    """Training recipe per role from the common arguments.

    The VGG network is the CIFAR network of the peer comparison: it gets
    ``--train-epochs`` (default 2) epochs; LeNet-5 one epoch; the AlexNet-style network
    and ResNet-20 only serve the throughput table, so one pass over 20,000 images.  ``--quick``
    trains on small subsets (10k / 5k / 5k images).
    """
    quick = args.quick and args.train_epochs is None
    vgg_epochs = args.train_epochs if args.train_epochs is not None else (1.0 if args.quick else 2.0)
    return {
        "lenet5": TrainConfig(epochs=1.0, limit=10_000 if quick else None),
        "vgg": TrainConfig(epochs=vgg_epochs, limit=5_000 if quick else None),
        "alexnet": TrainConfig(epochs=1.0, limit=5_000 if quick else 20_000),
        # ResNet-20 only serves the throughput table, like the AlexNet-style network
        "resnet20": TrainConfig(epochs=1.0, limit=5_000 if quick else 20_000),
    }


def finetune_steps(args) -> int:
    if args.finetune_steps is not None:
        return args.finetune_steps
    return 10 if args.quick else 1000


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probe", required=True, help="JSON ProbeSpec (internal)")
    _probe_main(parser.parse_args().probe)


def setup(args, specs=None):
    """Threads, network specs (run folders applied), training configs and fine-tune steps."""
    threads = set_threads(args.threads)
    if specs is None:
        specs = default_specs(args.vgg_width, args.vgg_depth, args.alexnet_width)
        apply_run_dirs(specs, args.run_dir)
    return threads, specs, train_configs(args), finetune_steps(args)


def parse_args(doc: str, add_args, argv=None):
    """The argument parser every benchmark script shares: common options plus its own."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    add_args(parser)
    return parser.parse_args(argv)
