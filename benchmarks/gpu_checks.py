"""GPU checks, for a session lent a CUDA machine (one prepared run).

1. Exactness on CUDA: random networks, both simulators in float64 on the GPU against
   the float64 G-DNN reference on the CPU (spike times neuron by neuron, logits).
2. Throughput on the GPU: DNN, G-DNN, closed_form (float32/float64) and clocked for
   LeNet-5 and the full-width CIFAR VGG-16, measured in the same run.
3. Full-width VGG-16 (vgg_cifar width 1) on CIFAR-10: train the DNN, prepare and
   fine-tune the G-DNN at L=5, convert, evaluate DNN, G-DNN and both simulators on the
   test images. The data comes from ``--data`` (xz files written by ``--export``).

Usage (here):  python benchmarks/gpu_checks.py --export .gpudata --train 10000 --test 10000
Usage (GPU):   PYTHONPATH=src python3 benchmarks/gpu_checks.py --data .gpudata --out $OUT
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import tdsnn
from tdsnn.models import lenet5, vgg_cifar
from tdsnn.testing import random_case, reference_spike_times

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def export(folder: Path, n_train: int, n_test: int) -> None:
    from tdsnn.data import load_dataset

    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        data = load_dataset("cifar10", split)
        x = data.images[:n].numpy()
        y = data.labels[:n].numpy().astype(np.uint8)
        with lzma.open(folder / f"cifar10_{split}.xz", "wb", preset=6) as f:
            f.write(y.tobytes())
            f.write(x.tobytes())
        print(split, x.shape)


def load(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    raw = lzma.open(folder / f"cifar10_{split}.xz").read()
    n = len(raw) // 3073
    y = torch.frombuffer(bytearray(raw[:n]), dtype=torch.uint8).long()
    x = torch.frombuffer(bytearray(raw[n:]), dtype=torch.uint8).reshape(n, 3, 32, 32)
    return x, y


def check_exactness(device: torch.device, networks: int) -> dict:
    neurons = mismatched = 0
    worst = 0.0
    for seed in range(networks):
        case = random_case(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gdnn = tdsnn.prepare(case.model, L=case.L).eval()
        ref_times, ref_logits = reference_spike_times(gdnn, case.inputs)
        snn = tdsnn.convert(gdnn).to(device)
        for backend in ("closed_form", "clocked"):
            result = snn.run(case.inputs.to(device), backend=backend)
            for got, want in zip(result.spike_times, ref_times):
                neurons += want.numel()
                mismatched += int((got.cpu().long() != want).sum())
            scale = float(ref_logits.abs().max()) or 1.0
            worst = max(worst, float((result.logits.cpu() - ref_logits).abs().max()) / scale)
    return {"networks": networks, "neurons": neurons, "mismatched": mismatched,
            "max_logit_error_rel": worst}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rate(fn, x, repeats=5) -> float:
    fn(x)
    _sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        _sync()
        times.append(time.perf_counter() - t0)
    return x.shape[0] / sorted(times)[len(times) // 2]


def throughput(device: torch.device, batch_sizes: list[int]) -> list[dict]:
    rows = []
    for name, model, shape in (("lenet5", lenet5(), (1, 28, 28)),
                               ("vgg16_cifar_w1", vgg_cifar(width=1.0), (3, 32, 32))):
        model = model.to(device).eval()
        gdnn = tdsnn.prepare(model, L=5.0).to(device).eval()
        snn = tdsnn.convert(gdnn).to(device)
        for batch in batch_sizes:
            x = torch.rand(batch, *shape, device=device)
            with torch.no_grad():
                dnn = rate(model, x)
                g = rate(gdnn, x)
            cf32 = rate(lambda v, s=snn: s.run(v, precision="float32"), x)
            cf64 = rate(lambda v, s=snn: s.run(v, precision="float64"), x)
            certified = rate(lambda v, s=snn: s.run(v), x)
            clocked = rate(lambda v, s=snn: s.run(v, backend="clocked"), x, repeats=1)
            latency = float(snn.run(x).latency.float().mean())
            row = {"network": name, "batch": batch, "dnn": dnn, "gdnn": g, "closed_form_f32": cf32,
                   "closed_form_f64": cf64, "closed_form": certified, "clocked": clocked,
                   "latency": latency,
                   "cf32_over_dnn": cf32 / dnn, "clocked_cost_vs_latency_x_dnn": (dnn / clocked) / latency}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def batches(x, y, size, shuffle, gen=None):
    order = torch.randperm(len(x), generator=gen) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), size):
        idx = order[i : i + size]
        yield x[idx], y[idx]


def augment(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    i, j = np.random.randint(0, 9, size=2)
    return padded[:, :, i : i + 32, j : j + 32]


def fit(model, x, y, epochs, lr, transform, device, label, adam=False):
    if adam:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * math.ceil(len(x) / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        model.train()
        total = correct = 0
        for xb, yb in batches(x, y, 128, True, gen):
            xb = transform(augment(xb.to(device).float() / 255))
            yb = yb.to(device)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(yb)
            correct += int((out.argmax(1) == yb).sum())
        print(f"{label} epoch {epoch + 1}/{epochs} train acc {correct / total:.4f}", flush=True)


@torch.no_grad()
def accuracy(fn, x, y, device, size=500):
    correct = 0
    for xb, yb in batches(x, y, size, False):
        correct += int((fn(xb.to(device)).argmax(1).cpu() == yb).sum())
    return correct / len(x)


def vgg16_full_width(folder: Path, device: torch.device, epochs: int, ft_epochs: int,
                     input_scale: float, limit: int | None = None, target: float = 32.0) -> dict:
    xtr, ytr = load(folder, "train")
    xte, yte = load(folder, "test")
    if limit:
        xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:limit], yte[:limit]
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    torch.manual_seed(0)
    model = vgg_cifar(width=1.0, depth=16).to(device)
    t0 = time.time()
    fit(model, xtr, ytr, epochs, 0.05, lambda v: (v - mean) / std, device, "dnn")
    model.eval()
    dnn_time = time.time() - t0
    dnn_acc = accuracy(lambda v: model((v.float() / 255 - mean) / std), xte, yte, device)
    from tdsnn.scales import calibrate_activation_scales

    calib = xtr[:2000].to(device).float() / 255 * input_scale
    scales = calibrate_activation_scales(
        model, calib, target=target, input_mean=MEAN, input_std=STD, input_scale=input_scale
    )
    gdnn = tdsnn.prepare(model, L=5.0, input_mean=MEAN, input_std=STD, input_scale=input_scale,
                         activation_scales=scales)
    gdnn = gdnn.to(device)
    gdnn_before = accuracy(lambda v: gdnn.eval()(v.float() / 255 * input_scale), xte, yte, device)
    t0 = time.time()
    fit(gdnn, xtr, ytr, ft_epochs, 1e-4, lambda v: v * input_scale, device, "gdnn", adam=True)
    ft_time = time.time() - t0
    gdnn.eval()
    snn = tdsnn.convert(gdnn).to(device)
    out = {"train_images": len(xtr), "test_images": len(xte), "epochs": epochs,
           "finetune_epochs": ft_epochs, "input_scale": input_scale, "dnn_top1": dnn_acc,
           "gdnn_top1_before_finetune": gdnn_before, "activation_scales": scales, "dnn_train_s": dnn_time, "finetune_s": ft_time}
    g64 = gdnn.double()
    gdnn_pred, snn_pred = [], {"closed_form": [], "clocked": []}
    latency, ops = [], {}
    for xb, _ in batches(xte, yte, 500, False):
        v = xb.to(device).double() / 255 * input_scale
        gdnn_pred.append(g64(v).argmax(1).cpu())
        for backend in snn_pred:
            t0 = time.time()
            result = snn.run(v, backend=backend)
            out[f"{backend}_s"] = out.get(f"{backend}_s", 0.0) + time.time() - t0
            snn_pred[backend].append(result.predictions.cpu())
            if backend == "closed_form":
                latency.append(result.latency.cpu())
                if "events" in ops:
                    ops["events"].merge(result.ops)
                else:
                    ops["events"] = result.ops
    gdnn_pred = torch.cat(gdnn_pred)
    out["gdnn_top1"] = float((gdnn_pred == yte).float().mean())
    for backend, preds in snn_pred.items():
        preds = torch.cat(preds)
        out[f"snn_{backend}_top1"] = float((preds == yte).float().mean())
        out[f"agreement_{backend}"] = float((preds == gdnn_pred).float().mean())
    lat = torch.cat(latency).float()
    out["latency_mean"] = float(lat.mean())
    out["latency_max"] = float(lat.max())
    dnn_ops = tdsnn.count_dnn_ops(model.cpu(), (3, 32, 32))
    for convention in ("presentation", "own", "hardware"):
        out[f"ratios_{convention}"] = tdsnn.compare_ops(dnn_ops, ops["events"].counts(convention))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, help="write the CIFAR-10 subset here and stop")
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--data", type=Path, default=Path(".gpudata"))
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--input-scale", type=float, default=8.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--target", type=float, default=32.0, help="activation-scale target")
    parser.add_argument("--skip", default="", help="comma list: exactness,throughput")
    parser.add_argument("--limit", type=int, help="smoke test: use this many images")
    parser.add_argument("--batches", default="32,256", help="throughput batch sizes")
    args = parser.parse_args()
    if args.export:
        export(args.export, args.train, args.test)
        return
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__}
    t0 = time.time()
    skip = set(args.skip.split(","))
    report["exactness"] = {} if "exactness" in skip else check_exactness(device, args.networks)
    print("exactness", json.dumps(report["exactness"]), f"{time.time() - t0:.0f}s", flush=True)
    batch_sizes = [int(b) for b in args.batches.split(",")]
    report["throughput"] = [] if "throughput" in skip else throughput(device, batch_sizes)
    report["vgg16_full_width"] = vgg16_full_width(
        args.data, device, args.epochs, args.finetune_epochs, args.input_scale, args.limit,
        args.target,
    )
    print(json.dumps(report["vgg16_full_width"], indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_checks.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
