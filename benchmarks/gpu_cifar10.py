"""Full CIFAR-10 on one lent GPU: train a VGG-16 (or ResNet-20) fast, convert it, evaluate.

One prepared run (``run``) on the GPU, in stages, each timed and written to the JSON
artefact as soon as it ends (a run stopped at its limit still returns what it did):

1. load the 50,000 + 10,000 CIFAR-10 images from the chunks that ``pack`` wrote (their
   ``manifest.json`` is checked first: every chunk present, sha256 equal; nothing is
   unpickled: numpy ``allow_pickle=False``; ``gpu_data.load_chunks``);
2. train the DNN (``vgg_cifar(width=1.0, depth=16, batch_norm=True)``, or
   ``resnet20_cifar()``) from scratch: bf16 autocast, channels_last, SGD nesterov with a
   linear one-cycle schedule (peak 0.4, a quarter of the steps up from 0.04, then down
   to 4e-4), weight decay 5e-4, label smoothing 0.1, random flips and 4-pixel-pad random
   crops per image on the GPU (uint8), batch 512, 40 epochs (aim: >= 93 % test accuracy
   in about 1-3 minutes on an H200; the artefact's ``dnn.log`` has the test accuracy
   every 10 epochs; if a run falls short, ``--epochs 60`` costs half as much again);
3. as ``gpu_checks.vgg16_full_width`` does: activation scales calibrated on 2,000
   training images (target 32), ``tdsnn.prepare`` at L = 5 with input scale 8 and the
   chosen ``--coding``, the G-DNN fine-tuned in float32 (``gpu_checks.fit``: Adam 1e-4,
   one-cycle), ``tdsnn.convert``;
4. ``tdsnn.evaluation.evaluate``: DNN (float32), G-DNN (float64, the reference) and the
   SNN's ``closed_form`` on all 10,000 test images, then ``clocked`` on the first
   ``--clocked`` (1,000) test images, each counting the SNN predictions equal to the
   G-DNN's.  The SNN runs in the default (certified) precision; if a probe batch shows
   that it cannot run on this device, in float64 (``precision`` in the artefact says
   which, and why).

The artefact ``OUT/gpu_cifar10_<model>_<coding>.json`` holds the accuracies, agreement
counts, latency (mean / min / max), operation counts (``tdsnn.count_dnn_ops`` and the
SNN's, three conventions), wall time per stage, GPU name, torch version and every setting.

Data transfer (a call carries at most 64 MiB, the ~14 MiB working tree included, and
CIFAR-10 is ~176 MiB of uint8): ``pack`` writes it here as xz-compressed ``.npz`` chunks
of at most ``--chunk-mib`` (45) MiB each -- three train chunks of ~37 MiB and one test
chunk of ~22 MiB -- into a folder that ignores itself (it gets a ``.gitignore`` of
``*``), so that it never travels unless a call carries it, one chunk per call.  The
manifest (and ``check``) lists the chunks actually written: should ``pack`` need more
than these four, carry each extra one the same way.  The chunk code (``pack``, ``check``
and the loading) lives in benchmarks/gpu_data.py; the command line is this script's.

Here (once; about 2-3 minutes on one core; needs CIFAR-10 where ``tdsnn.data`` finds it,
e.g. ../shared/data/cifar10, or ``--data-dir``)::

    . .venv/bin/activate
    python benchmarks/gpu_cifar10.py pack --out benchmarks/.gpudata_full
    python benchmarks/gpu_cifar10.py check --data benchmarks/.gpudata_full

On the device, four ``run`` calls back to back (D = benchmarks/.gpudata_full; a machine
stays warm only ~30 s after a call, and files written there live only while it stays
warm: a call that answers ``warm: false`` started a fresh machine without the chunks
carried before -- then carry them again, from the first one ``check`` reports missing)::

    1. carry [D/.gitignore, D/manifest.json, D/train_0.npz.xz]
       command "python3 benchmarks/gpu_cifar10.py check --data D"      timeout_s 120
       (starts the machine: 1-2 minutes)
    2. the same with D/train_1.npz.xz                                  timeout_s 120
    3. the same with D/train_2.npz.xz                                  timeout_s 120
    4. carry [D/.gitignore, D/manifest.json, D/test_0.npz.xz]
       command "set -o pipefail; export PYTHONUNBUFFERED=1 PYTHONPATH=src;
                python3 benchmarks/gpu_cifar10.py run --data D --out $OUT 2>&1
                | tee $OUT/gpu_cifar10.log"                             timeout_s 600
    then give_back.

(``check`` names each chunk present, missing or corrupted; ``run`` refuses, naming the
missing or corrupted chunks, before it does anything else.  ``--data`` takes several
folders, so chunks may also be carried into different folders.  Always carry the
folder's ``.gitignore`` with a chunk, so that the device sees the folder as ignored and
keeps earlier chunks between calls.)

Expected device time: start 1-2 min, calls 1-3 about 0.5 min each, the run about 4-6 min
(load 10 s, DNN training about 1-3 min, calibrate / prepare 10 s, fine-tuning 3 epochs
about 0.5 min, G-DNN + closed_form on 10,000 images and clocked on 1,000 about 1 min),
about 8-11 of the 15 minutes in all, so there is no room for a second full run:
``--deadline-s`` (default 540 s from the start of ``run``) skips the clocked stage rather
than overrun the call.  ``--coding sparse`` and ``--model resnet20`` run the same way.

A CPU smoke run (tests/test_gpu_cifar10.py)::

    python benchmarks/gpu_cifar10.py pack --out /tmp/d --train-limit 256 --test-limit 128
    python benchmarks/gpu_cifar10.py run --data /tmp/d --out /tmp/o --device cpu \\
        --epochs 1 --batch 64 --finetune-epochs 1 --clocked 16 --width 0.125
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
try:
    import tdsnn
except ImportError:  # on the device without PYTHONPATH=src
    sys.path.insert(0, str(HERE.parent / "src"))
    import tdsnn

import gpu_checks  # noqa: E402  (benchmarks/gpu_checks.py: MEAN, STD, fit, accuracy)
from gpu_data import (  # noqa: E402  (benchmarks/gpu_data.py: the chunked data)
    IMAGE_SHAPE,
    MAX_CHUNK_MIB,
    MIB,
    DataError,
    check,
    load_chunks,
    pack,
)

from tdsnn.augment import flip_crop  # noqa: E402

# ----------------------------------------------------------------------------- training


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def augment_u8(x: torch.Tensor) -> torch.Tensor:
    """Per image: a random horizontal flip and a random 32x32 crop of the 4-pixel zero pad
    (``tdsnn.augment.flip_crop``, torch's global generator)."""
    return flip_crop(x)


def _normalizer(device: torch.device, channels_last: bool):
    mean = torch.tensor(gpu_checks.MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(gpu_checks.STD, device=device).view(1, 3, 1, 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def normalize(x_u8: torch.Tensor) -> torch.Tensor:
        return ((x_u8.float() / 255 - mean) / std).contiguous(memory_format=fmt)

    return normalize


@torch.no_grad()
def _test_top1(model, normalize, x, y, amp, device, size=1000) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    for a in range(0, len(x), size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(normalize(x[a : a + size]))
        correct += (out.argmax(1) == y[a : a + size]).sum()
    return int(correct) / len(x)


def one_cycle(total: int, warm: float = 0.25, start: float = 0.1, end: float = 1e-3):
    """Linear one-cycle factor of the peak rate: ``start`` up to 1 over the first ``warm``
    of the ``total`` steps, then down to ``end`` (any ``total >= 1``, unlike OneCycleLR)."""
    up = max(1, round(warm * total))

    def factor(step: int) -> float:
        if step < up:
            return start + (1 - start) * step / up
        return 1 - (1 - end) * min(1.0, (step - up) / max(1, total - up))

    return factor


def train_dnn(model, xtr, ytr, xte, yte, args, device, amp: bool, channels_last: bool) -> dict:
    """The fast recipe: SGD nesterov, linear one-cycle, label smoothing, flips and crops."""
    normalize = _normalizer(device, channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.weight_decay)  # fmt: skip
    n = len(xtr)
    batch = min(args.batch, n)
    per_epoch = n // batch  # drop the last partial batch (BatchNorm on a tiny batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(args.epochs * per_epoch))
    log = []
    t_start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for k in range(per_epoch):
            idx = order[k * batch : (k + 1) * batch]
            xb, yb = normalize(augment_u8(xtr[idx])), ytr[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(xb)
                loss = F.cross_entropy(out, yb, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach().float() * len(yb)
            correct += (out.argmax(1) == yb).sum()
        seen = per_epoch * batch
        row = {"epoch": epoch + 1, "loss": float(loss_sum) / seen,
               "train_top1": int(correct) / seen}  # fmt: skip
        last = epoch + 1 == args.epochs
        if args.eval_every and ((epoch + 1) % args.eval_every == 0 or last):
            row["test_top1"] = _test_top1(model, normalize, xte, yte, amp, device)
        _sync(device)
        row["s"] = time.perf_counter() - t0
        log.append(row)
        print("dnn " + json.dumps(row), flush=True)
    _sync(device)
    model = model.to(memory_format=torch.contiguous_format).eval()
    return {"model": model, "log": log, "train_s": time.perf_counter() - t_start,
            "steps": args.epochs * per_epoch, "batch": batch}  # fmt: skip


# ----------------------------------------------------------------------------- running


def build_model(args: argparse.Namespace):
    from tdsnn.models import resnet20_cifar, vgg_cifar

    if args.model == "vgg16":
        return vgg_cifar(width=args.width, depth=16, batch_norm=True)
    return resnet20_cifar(width=args.width)


def _settings(args: argparse.Namespace) -> dict:
    out = {}
    for key, value in vars(args).items():
        if key == "func":
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        out[key] = value
    return out


def choose_precision(snn, probe: torch.Tensor, requested: str) -> dict:
    """Run ``requested`` on a probe batch; fall back to float64 if it cannot run here."""
    info = {"requested": requested, "used": requested}
    if requested == "float64":
        return info
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = snn.run(probe, backend="closed_form", precision=requested)
        info["probe_warnings"] = [str(w.message) for w in caught]
        if result.extras.get("fallback"):
            info["used"] = "float64"
            info["why"] = result.extras["fallback"]
    except Exception as exc:  # noqa: BLE001  (any failure of the default: use float64)
        info["used"] = "float64"
        info["why"] = f"{type(exc).__name__}: {exc}"
    return info


def _evaluate(model, gdnn, snn, data, backend, args, precision, limit=None) -> dict:
    from tdsnn.evaluation import evaluate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = evaluate(
            model, gdnn, snn, data, backends=[backend], input_scale=args.input_scale,
            input_mean=gpu_checks.MEAN, input_std=gpu_checks.STD,
            batch_size=args.eval_batch, progress=False, limit=limit,
            device=args.device, model_name=args.model, dataset_name="cifar10",
            precision=precision,
        )  # fmt: skip
    ev["warnings"] = sorted({str(w.message) for w in caught})
    return ev


def run(args: argparse.Namespace) -> dict:
    t_run = time.perf_counter()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    channels_last = args.channels_last == "on" or (
        args.channels_last == "auto" and device.type == "cuda")  # fmt: skip
    out_path = args.out / f"gpu_cifar10_{args.model}_{args.coding}.json"
    wall: dict[str, float] = {}
    report: dict = {
        "script": "benchmarks/gpu_cifar10.py",
        "complete": False,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "python": platform.python_version(),
        "settings": {**_settings(args), "amp_bf16": amp, "channels_last_used": channels_last},
        "wall_s": wall,
    }

    def save() -> None:
        wall["total"] = time.perf_counter() - t_run
        if device.type == "cuda":
            report["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / MIB
        out_path.write_text(json.dumps(report, indent=1) + "\n")

    def stage(name: str, t0: float) -> None:
        _sync(device)
        wall[name] = time.perf_counter() - t0
        total = time.perf_counter() - t_run
        print(f"[{name}] {wall[name]:.1f} s (total {total:.1f} s)", flush=True)
        save()

    # 1. data
    t0 = time.perf_counter()
    data, state = load_chunks(args.data)  # refuses before anything is written
    args.out.mkdir(parents=True, exist_ok=True)
    xtr, ytr = data["train"]
    xte, yte = data["test"]
    if args.train_limit:
        xtr, ytr = xtr[: args.train_limit], ytr[: args.train_limit]
    if args.test_limit:
        xte, yte = xte[: args.test_limit], yte[: args.test_limit]
    xtr_d, ytr_d = xtr.to(device), ytr.to(device)
    xte_d, yte_d = xte.to(device), yte.to(device)
    report["data"] = {"train_images": len(ytr), "test_images": len(yte),
                      "manifest": str(state["manifest_path"]),
                      "chunks": {n: str(path) for n, path in state["found"].items()}}  # fmt: skip
    stage("load_data", t0)

    # 2. DNN
    t0 = time.perf_counter()
    torch.backends.cudnn.benchmark = device.type == "cuda"
    model = build_model(args).to(device)
    trained = train_dnn(model, xtr_d, ytr_d, xte_d, yte_d, args, device, amp, channels_last)
    model = trained["model"]
    report["dnn"] = {"log": trained["log"], "steps": trained["steps"], "batch": trained["batch"],
                     "train_s": trained["train_s"],
                     "top1_end_of_training": trained["log"][-1].get("test_top1")}  # fmt: skip
    stage("train_dnn", t0)

    # 3. calibrate, prepare, fine-tune, convert (float32, no TF32, as gpu_checks)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    t0 = time.perf_counter()
    scales = None
    if args.activation_scales == "auto":
        from tdsnn.scales import calibrate_activation_scales

        calib = xtr_d[: args.calibrate].float() / 255 * args.input_scale
        try:
            scales = calibrate_activation_scales(
                model, calib, target=args.target, input_mean=gpu_checks.MEAN,
                input_std=gpu_checks.STD, input_scale=args.input_scale,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001  (e.g. a graph model: prepare without scales)
            report["calibration_error"] = f"{type(exc).__name__}: {exc}"
            print(f"calibration failed, no activation scales: {exc}", flush=True)
    elif args.activation_scales != "none":
        scales = float(args.activation_scales)
    report["activation_scales"] = scales
    gdnn = tdsnn.prepare(model, L=args.L, input_mean=gpu_checks.MEAN, input_std=gpu_checks.STD,
                         input_scale=args.input_scale, activation_scales=scales,
                         coding=args.coding).to(device)  # fmt: skip
    stage("prepare", t0)
    t0 = time.perf_counter()
    report["gdnn_top1_before_finetune"] = gpu_checks.accuracy(
        lambda v: gdnn.eval()(v.float() / 255 * args.input_scale), xte, yte, device,
        size=args.eval_batch,
    )  # fmt: skip
    stage("gdnn_before_finetune_eval", t0)
    t0 = time.perf_counter()
    if args.finetune_epochs:
        gpu_checks.fit(gdnn, xtr_d, ytr_d, args.finetune_epochs, args.finetune_lr,
                       lambda v: v * args.input_scale, device, "gdnn", adam=True)  # fmt: skip
    gdnn.eval()
    stage("finetune", t0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    snn = tdsnn.convert(gdnn).to(device)
    stage("convert", t0)

    # 4. evaluate
    probe = xte_d[: min(8, len(xte_d))].double() / 255 * args.input_scale
    report["precision"] = choose_precision(snn, probe, args.precision)
    precision = report["precision"]["used"]
    print("precision " + json.dumps(report["precision"]), flush=True)
    dnn_ops = tdsnn.count_dnn_ops(copy.deepcopy(model).cpu(), IMAGE_SHAPE)
    report["dnn_ops_per_image"] = dnn_ops.per_sample()
    t0 = time.perf_counter()
    report["closed_form"] = _evaluate(model, gdnn, snn, (xte, yte), "closed_form", args, precision)
    stage("evaluate_closed_form", t0)
    n_clocked = min(args.clocked, len(yte))
    if n_clocked and time.perf_counter() - t_run > args.deadline_s:
        report["clocked_skipped"] = f"past --deadline-s {args.deadline_s:g} s"
        n_clocked = 0
    if n_clocked:
        t0 = time.perf_counter()
        report["clocked"] = _evaluate(model, gdnn, snn, (xte, yte), "clocked", args, precision,
                                      limit=n_clocked)  # fmt: skip
        stage("evaluate_clocked", t0)
    report["summary"] = summarize(report, dnn_ops)
    report["complete"] = True
    save()
    print(json.dumps(report["summary"], indent=1), flush=True)
    print(f"wrote {out_path}", flush=True)
    return report


def summarize(report: dict, dnn_ops) -> dict:
    cf = report["closed_form"]
    n = cf["samples"]
    s = {
        "dnn_top1": cf["accuracy"]["dnn"]["top1"],
        "gdnn_top1_before_finetune": report["gdnn_top1_before_finetune"],
        "gdnn_top1": cf["accuracy"]["gdnn"]["top1"],
        "snn_closed_form_top1": cf["accuracy"]["snn"]["closed_form"]["top1"],
        "test_images": n,
        "closed_form_agree": n - cf["disagreements"]["closed_form"],
        "closed_form_disagreements": cf["disagreements"]["closed_form"],
        "latency_mean": cf["latency"]["mean"],
        "latency_min": cf["latency"]["min"],
        "latency_max": cf["latency"]["max"],
        "dnn_ops_per_image": dnn_ops.per_sample(),
        "snn_ops_per_image": cf["ops"]["snn"],
        "ops_ratios": cf["ops"]["ratios"],
        "spikes_per_neuron": cf["spikes_per_neuron"],
        "synaptic_events_per_image": cf["synaptic_events_per_image"],
        "precision": report["precision"]["used"],
        "dnn_train_s": report["dnn"]["train_s"],
    }
    ck = report.get("clocked")
    if ck:
        m = ck["samples"]
        s.update({
            "clocked_images": m,
            "snn_clocked_top1": ck["accuracy"]["snn"]["clocked"]["top1"],
            "gdnn_top1_on_clocked_images": ck["accuracy"]["gdnn"]["top1"],
            "clocked_agree": m - ck["disagreements"]["clocked"],
            "clocked_disagreements": ck["disagreements"]["clocked"],
        })  # fmt: skip
    return s


# ----------------------------------------------------------------------------- CLI


def _chunk_mib(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_CHUNK_MIB:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_CHUNK_MIB:g}] MiB")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)

    pk = sub.add_parser("pack", help="write CIFAR-10 as checksummed chunks (here)")
    pk.add_argument("--out", type=Path, required=True)
    pk.add_argument("--data-dir", help="CIFAR-10 folder (default: where tdsnn.data finds it)")
    pk.add_argument("--train-limit", type=int)
    pk.add_argument("--test-limit", type=int)
    pk.add_argument("--chunk-mib", type=_chunk_mib, default=45.0,
                    help="most MiB per chunk file (default 45: one chunk + the ~14 MiB tree "
                    "fit one 64 MiB call)")  # fmt: skip
    pk.add_argument("--compression", choices=("xz", "none"), default="xz")
    pk.add_argument("--preset", type=int, default=6, help="xz preset (0-9)")
    pk.add_argument("--jobs", type=int, default=1, help="chunks compressed at once")
    pk.set_defaults(func=pack)

    ck = sub.add_parser("check", help="list the chunks present, missing or corrupted")
    ck.add_argument("--data", type=Path, nargs="+", required=True)
    ck.add_argument("--strict", action="store_true", help="exit 1 unless complete")
    ck.set_defaults(func=check)

    r = sub.add_parser("run", help="train, prepare, fine-tune, convert, evaluate (the GPU run)")
    r.add_argument("--data", type=Path, nargs="+", required=True,
                   help="folder(s) holding manifest.json and the chunks")  # fmt: skip
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--model", choices=("vgg16", "resnet20"), default="vgg16")
    r.add_argument("--width", type=float, default=1.0, help="channel width factor")
    r.add_argument("--coding", choices=("paper", "sparse"), default="paper")
    r.add_argument("--device", default="cuda")
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--epochs", type=int, default=40)
    r.add_argument("--batch", type=int, default=512)
    r.add_argument("--lr", type=float, default=0.4, help="one-cycle peak learning rate")
    r.add_argument("--weight-decay", type=float, default=5e-4)
    r.add_argument("--label-smoothing", type=float, default=0.1)
    r.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto",
                   help="bf16 autocast for the DNN (auto: on CUDA only)")  # fmt: skip
    r.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto")
    r.add_argument("--eval-every", type=int, default=10, help="DNN test accuracy every N epochs")
    r.add_argument("--L", type=float, default=5.0)
    r.add_argument("--input-scale", type=float, default=8.0)
    r.add_argument("--activation-scales", default="auto", help="auto, none or one factor")
    r.add_argument("--target", type=float, default=32.0, help="activation-scale target")
    r.add_argument("--calibrate", type=int, default=2000, help="training images for the scales")
    r.add_argument("--finetune-epochs", type=int, default=3)
    r.add_argument("--finetune-lr", type=float, default=1e-4)
    r.add_argument("--tf32", action="store_true", help="allow TF32 while fine-tuning")
    r.add_argument("--precision", choices=("certified", "float64", "float32"),
                   default="certified",
                   help="SNN arithmetic (float64 where certified cannot run)")  # fmt: skip
    r.add_argument("--clocked", type=int, default=1000, help="test images for the clocked SNN")
    r.add_argument("--eval-batch", type=int, default=500)
    r.add_argument("--deadline-s", type=float, default=540.0,
                   help="skip the clocked stage if the run is past this many seconds")  # fmt: skip
    r.add_argument("--train-limit", type=int, help="smoke test: first N training images")
    r.add_argument("--test-limit", type=int, help="smoke test: first N test images")
    r.set_defaults(func=run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.func(args)
    except DataError as exc:
        print(f"gpu_cifar10: {exc}", file=sys.stderr, flush=True)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
