"""The peer: SpikingJelly's rate-coding ANN->SNN conversion against tdsnn's two codings
(the paper's and the sparse one), on the same trained DNNs, two or more per network.

For every trained run folder (``tdsnn train``; ``--run ROLE=FOLDER``, repeatable):

* **ours**: from the run's DNN, the G-DNN fine-tuned by the pipeline (``tdsnn finetune``,
  one setting per folder copy, :func:`sparsity_tradeoff.one_setting`) in the paper
  coding and in the sparse coding (``LAMBDA = 0``) at each L of ``--leaks``
  (``--vgg-leaks`` for the CIFAR network), and in the sparse coding with each penalty of
  ``--lambdas`` at L = ``--sparse-leak`` (5), fine-tuned ``--sparse-epochs`` epochs (default
  ``--epochs``, one); converted and run with the closed form (certified) on the first
  ``--samples`` test images.  Synaptic events: the SNN's own count (every emitted spike
  once per target, the bias neurons' included).
* **theirs**: SpikingJelly (``ann2snn.Converter`` with ``RateCodingRecipe(dataloader,
  mode)``: Conv-BN fusion, ReLU -> integrate-and-fire neurons with soft reset and
  data-based threshold balancing, the recipes of ``SJ_CONFIGS``) converts the same DNN,
  thresholds balanced on ``--calibration-batches`` 100-image training batches.  Their
  SNN runs ``max(--peer-t)`` steps feeding the normalised analog image at every step, the
  output summed over the steps, ``functional.reset_net`` between batches; accuracy and
  synaptic events at every T of ``--peer-t`` (T = 4 included) from that one run.
* ``--reuse-ours JSON``: our points are taken from an earlier artefact of the same DNNs
  (same run folder, test images, DNN accuracy and, where recorded, SHA-256 of
  ``dnn.safetensors``; :func:`reused_ours`) and only the peer is measured again.

Counting rule for SpikingJelly (``SynapticEventCounter``): forward pre-hooks on every
Conv2d / Linear / AvgPool2d / MaxPool2d count, at every time step, each non-zero input
entry times its fan-out (the number of output neurons it reaches; zero padding has no
neuron): one addition per spike reaching one target, exactly tdsnn's rule for synaptic
events.  A layer with a bias adds one addition per output neuron per time step (tdsnn:
the bias neuron's single spike reaches every neuron once).  The first layer receives the
analog image, so its "events" are multiply-accumulates, counted as one operation each
(in the peer's favour), **per step** (what the simulation does) and **once** (the
constant input's first-layer work counted for one step only, as hardware that holds
the first layer's current would do).  Not counted on their side: threshold comparisons
and resets of the IF neurons, the output averaging, and the threshold-balancing scalers
(they fold into weights).

Equal accuracy: within ``--tolerance`` (0.5) % of the DNN on the same images; for each
tool the point with the fewest synaptic events that reaches it.  Writes
``docs/performance/peer.json`` (after every model, so an interrupted run keeps what it
measured) and ``docs/img/peer.png`` (accuracy against synaptic events, every model), and
prints the table of docs/performance.md::

    python benchmarks/peer_spikingjelly.py --run lenet5=runs/main --lambdas 0.7 1 1.5 2 \\
        --sparse-epochs 5 --json runs/peer_lenet0.json        # and runs/lenet_s1 -> peer_lenet1
    python benchmarks/peer_spikingjelly.py --run vgg=runs/cifar_vgg --vgg-leaks 3 5 8 \\
        --lambdas 4 5 6 --sparse-leak 8 --sparse-epochs 4 --json runs/peer_vgg0.json
    python benchmarks/peer_spikingjelly.py --merge runs/peer_lenet0.json runs/peer_lenet1.json \\
        runs/peer_vgg0.json runs/peer_vgg1.json
    python benchmarks/peer_spikingjelly.py --run lenet5=runs/main --samples 100 --leaks 5 \\
        --lambdas --train-limit 2000 --peer-t 4 8 --calibration-batches 1    # a quick look
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common as c
import torch
import torch.nn.functional as F
from results_tables import ROLES, peer_sparse_table
from sparsity_tradeoff import one_setting
from torch import nn

from tdsnn.checkpoint import load_checkpoint, load_metadata
from tdsnn.models import build_model

JSON_OUT = c.DOCS / "performance" / "peer.json"
PLOT_OUT = c.IMG / "peer.png"
# Every T up to 16 (so the peer's match point is its smallest T that gets there, not the next
# power of two), then coarser: all read from one run of max(T) steps, at no extra cost.
PEER_T = (*range(1, 17), 20, 24, 32, 48, 64, 128, 256)
INSTALL_HINT = (
    "SpikingJelly is not installed; the peer comparison is skipped. Install it for the "
    "benchmark only (never as a tdsnn dependency; its declared dependencies would pull a "
    "CUDA build of torch):\n"
    "    pip install --no-deps spikingjelly && pip install loguru requests tqdm"
)
# The recipe settings tried for the peer, best effort: the two documented threshold modes,
# and the channel-wise thresholds with max-pooling moved before the spiking neuron (which
# avoids max-pooling spike trains; RateCodingRecipe allows it only channel-wise).
SJ_CONFIGS: dict[str, dict] = {
    "Max": {"mode": "Max"},
    "99.9%": {"mode": "99.9%"},
    "99.9%, channel-wise, pre-spike max-pool": {
        "mode": "99.9%", "channel_wise": True, "pre_spike_maxpool": True,
    },
}


def spikingjelly_available() -> bool:
    try:
        from spikingjelly.activation_based import ann2snn, functional  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return False
    return True


# ----------------------------------------------------------------------------- counting

SYNAPSE_TYPES = (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d)


@torch.no_grad()
def fanout_map(module: nn.Module, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Per input position (no batch dim): how many output neurons it reaches."""
    if isinstance(module, nn.Linear):
        return torch.full(in_shape, float(module.out_features), dtype=torch.float64)
    with torch.enable_grad():
        ones = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
        if isinstance(module, nn.Conv2d):
            w = torch.ones_like(module.weight, dtype=torch.float64)
            out = F.conv2d(ones, w, None, module.stride, module.padding, module.dilation,
                           module.groups)
        else:  # pooling: a window neuron is reached by every input inside it
            out = F.avg_pool2d(ones, module.kernel_size, module.stride, module.padding,
                               ceil_mode=module.ceil_mode, count_include_pad=True,
                               divisor_override=1)
        (grad,) = torch.autograd.grad(out.sum(), ones)
    return grad[0]


class SynapticEventCounter:
    """Count synaptic events of any network with forward pre-hooks (see the module doc).

    ``with SynapticEventCounter(model) as counter: model(x)`` then ``counter.total``,
    ``counter.per_layer`` (events, bias additions) and ``counter.calls``.
    """

    def __init__(self, model: nn.Module, count_bias: bool = True) -> None:
        self.model = model
        self.count_bias = count_bias
        self.per_layer: dict[str, dict[str, int]] = {}
        self._fanout: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self._handles: list = []

    def _hook(self, name: str):
        def pre_hook(module, inputs):
            x = inputs[0]
            shape = tuple(x.shape[1:])
            key = (name, shape)
            if key not in self._fanout:
                self._fanout[key] = fanout_map(module, shape)
            active = (x != 0).sum(dim=0, dtype=torch.float64)
            events = int(round(float((active * self._fanout[key]).sum())))
            entry = self.per_layer.setdefault(name, {"events": 0, "bias": 0, "calls": 0})
            entry["events"] += events
            entry["calls"] += 1
            bias = getattr(module, "bias", None)
            if self.count_bias and isinstance(bias, torch.Tensor):
                out_per_channel = 1
                if isinstance(module, nn.Conv2d):
                    h = (shape[1] + 2 * module.padding[0] - module.dilation[0] * (module.kernel_size[0] - 1) - 1) // module.stride[0] + 1
                    w = (shape[2] + 2 * module.padding[1] - module.dilation[1] * (module.kernel_size[1] - 1) - 1) // module.stride[1] + 1
                    out_per_channel = h * w
                entry["bias"] += int(bias.numel()) * out_per_channel * int(x.shape[0])

        return pre_hook

    def __enter__(self) -> SynapticEventCounter:
        for name, module in self.model.named_modules():
            if isinstance(module, SYNAPSE_TYPES):
                self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        if not self._handles:
            raise ValueError("no Conv2d / Linear / pooling layer to count")
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def total(self) -> int:
        return sum(e["events"] + e["bias"] for e in self.per_layer.values())

    def first_layer(self) -> int:
        """Events + bias of the first synapse layer (the analog input layer)."""
        if not self.per_layer:
            return 0
        first = next(iter(self.per_layer.values()))
        return first["events"] + first["bias"]


# ----------------------------------------------------------------------------- peer run


def convert_spikingjelly(
    dnn: nn.Module, calibration: list[torch.Tensor], mode: str = "Max", **recipe_kwargs
) -> nn.Module:
    """SpikingJelly's rate-coding conversion of (a copy of) ``dnn``, thresholds from ``calibration``."""
    import logging

    from spikingjelly.activation_based import ann2snn

    logging.getLogger("spikingjelly").setLevel(logging.WARNING)
    recipe = ann2snn.RateCodingRecipe(dataloader=calibration, mode=mode, **recipe_kwargs)
    snn = ann2snn.Converter(recipe=recipe, device="cpu").convert(copy.deepcopy(dnn).eval())
    return snn.eval()


@torch.no_grad()
def run_spikingjelly(
    snn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    t_list=PEER_T,
    batch: int = 100,
    ops_samples: int = 100,
) -> dict:
    """Accuracy, wall time per image and synaptic operations per image at every T in ``t_list``.

    One timed pass without hooks (accuracy and wall time at each T of one run of
    max(T) steps), then one counting pass with hooks on the first ``ops_samples`` images.
    """
    from spikingjelly.activation_based import functional

    t_max = max(t_list)
    wanted = set(t_list)
    correct = dict.fromkeys(t_list, 0)
    seconds = dict.fromkeys(t_list, 0.0)
    # warm-up: one step of one batch
    functional.reset_net(snn)
    snn(x[:batch])
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        functional.reset_net(snn)
        acc_out = None
        elapsed = 0.0
        for t in range(1, t_max + 1):
            t0 = time.perf_counter()
            out = snn(xb)
            acc_out = out if acc_out is None else acc_out + out
            elapsed += time.perf_counter() - t0
            if t in wanted:
                correct[t] += int((acc_out.argmax(dim=1) == yb).sum())
                seconds[t] += elapsed
    n = x.shape[0]
    ops: dict[int, float] = {}
    first_layer_ops: dict[int, float] = {}
    xo = x[:ops_samples]
    with SynapticEventCounter(snn) as counter:
        totals = dict.fromkeys(t_list, 0)
        firsts = dict.fromkeys(t_list, 0)
        for i in range(0, xo.shape[0], batch):
            functional.reset_net(snn)
            base_total, base_first = counter.total, counter.first_layer()
            for t in range(1, t_max + 1):
                snn(xo[i : i + batch])
                if t in wanted:
                    totals[t] += counter.total - base_total
                    firsts[t] += counter.first_layer() - base_first
    for t in t_list:
        ops[t] = totals[t] / xo.shape[0]
        first_layer_ops[t] = firsts[t] / xo.shape[0]
    functional.reset_net(snn)
    return {
        "T": list(t_list),
        "accuracy": [100.0 * correct[t] / n for t in t_list],
        "wall_s_per_image": [seconds[t] / n for t in t_list],
        "ops_per_image": [ops[t] for t in t_list],
        "first_layer_ops_per_image": [first_layer_ops[t] for t in t_list],
        "samples": n,
        "ops_samples": xo.shape[0],
    }


# ----------------------------------------------------------------------------- driver


def load_dnn(run: Path) -> tuple[torch.nn.Module, dict]:
    """The run's trained DNN (eval mode) and its metadata."""
    meta = load_metadata(run / "dnn.safetensors")
    kwargs = dict(meta.get("arch_kwargs") or {})
    model = build_model(meta["architecture"], **kwargs)
    state, _ = load_checkpoint(run / "dnn.safetensors")
    model.load_state_dict(state)
    return model.eval(), meta


def reused_ours(source: Path, role: str, run: Path, model: dict) -> dict:
    """The entry of ``source`` (an artefact of this script) measured on the same DNN, whose
    points of ours are kept while the peer is measured again.

    The same DNN: the same role and run folder, and the same DNN accuracy on the same test
    images (and, where the artefact recorded one, the same SHA-256 of ``dnn.safetensors``);
    anything else is refused, so no point of ours is paired with another DNN's peer run.
    """
    entries = [m for m in json.loads(Path(source).read_text())["models"]
               if m["role"] == role and Path(m["run"]) == Path(run)]  # fmt: skip
    if not entries:
        raise SystemExit(f"{source} holds no {role} model measured on {run}")
    entry = entries[-1]
    same = (entry["samples"] == model["samples"]
            and abs(entry["dnn_accuracy"] - model["dnn_accuracy"]) < 1e-9
            and entry.get("dnn_sha256", model["dnn_sha256"]) == model["dnn_sha256"])  # fmt: skip
    if not same:
        raise SystemExit(
            f"{run}: the DNN differs from the one {source} measured (DNN accuracy "
            f"{entry['dnn_accuracy']:.2f} % there, {model['dnn_accuracy']:.2f} % now, or its hash): "
            "measure ours again (drop --reuse-ours)"
        )
    return entry


def settings(
    leaks: list[float], lambdas: list[float], sparse_leak: float = 5.0,
    min_times: Sequence[int] = (1,),
) -> list[tuple[str, float, float, int]]:
    """(coding, LAMBDA, L, min_time) of our points: both codings at every L, the penalties
    at ``sparse_leak`` and at every earliest spike time of ``min_times``."""  # fmt: skip
    out = [("paper", 0.0, L, 1) for L in leaks] + [("sparse", 0.0, L, 1) for L in leaks]
    return out + [("sparse", lam, sparse_leak, k) for k in min_times for lam in lambdas if lam > 0]


def _key(point: dict) -> tuple:
    """What makes two of our points the same setting (points from before ``min_time`` had 1)."""
    return (point["coding"], point["lambda"], point["L"], point.get("min_time", 1), point["epochs"])


def peer_curves(runs: dict[str, dict]) -> list[dict]:
    """Every SpikingJelly point, with its events counted per step and once."""
    points = []
    for mode, r in runs.items():
        for k, t in enumerate(r["T"]):
            first = r["first_layer_ops_per_image"][k]
            per_step = r["ops_per_image"][k]
            points.append({"recipe": mode, "T": t, "accuracy": r["accuracy"][k],
                           "events_per_step_count": per_step,
                           "events_input_once": per_step - first + first / t,
                           "wall_s_per_image": r["wall_s_per_image"][k]})  # fmt: skip
    return points


def _reaches(points: list[dict], level: float) -> bool:
    return any(p["accuracy"] >= level - 1e-9 for p in points)


def _cheapest(points: list[dict], level: float, key: str) -> dict | None:
    ok = [p for p in points if p["accuracy"] >= level - 1e-9]
    return min(ok, key=lambda p: p[key]) if ok else None


def headline(model: dict, tolerance: float) -> dict:
    """Fewest events at equal accuracy, per coding: within ``tolerance`` % of the DNN when
    both tools get there, else at the best accuracy both reach (``matched`` says which)."""
    keys = ("events_per_step_count", "events_input_once")
    out: dict[str, Any] = {"ours": {}}
    for coding in ("paper", "sparse"):
        mine = [p for p in model["ours"] if p["coding"] == coding]
        level, matched = model["dnn_accuracy"] - tolerance, "within tolerance of the DNN"
        if not (_reaches(mine, level) and _reaches(model["peer"], level)):
            if not mine or not model["peer"]:
                out["ours"][coding] = {"point": None, "theirs": dict.fromkeys(keys), "level": level,
                                       "matched": "no points"}  # fmt: skip
                continue
            level = min(max(p["accuracy"] for p in mine), max(p["accuracy"] for p in model["peer"]))
            matched = "best accuracy both reach"
        best = _cheapest(mine, level, "synaptic_events_per_image")
        theirs = {key: _cheapest(model["peer"], level, key) for key in keys}
        entry: dict[str, Any] = {"point": best, "theirs": theirs, "level": level, "matched": matched}
        for key, t in theirs.items():
            entry[f"ratio_{key}"] = t[key] / best["synaptic_events_per_image"]
        out["ours"][coding] = entry
    return out


def measure_model(role: str, run: Path, args, work: Path) -> dict:
    """Ours and theirs on one trained model."""
    dnn, meta = load_dnn(run)
    ds = c.dataset(meta["dataset"], "test")
    x_raw = c.raw_images(ds, args.samples[role])
    y = ds.labels[: x_raw.shape[0]]
    x_norm = c.normalise(x_raw, ds)
    model: dict[str, Any] = {
        "role": role, "run": str(run), "seed": (meta.get("train") or {}).get("seed"),
        "samples": int(x_raw.shape[0]), "dnn_accuracy": c.accuracy(dnn, x_norm, y),
        "dnn_sha256": hashlib.sha256((run / "dnn.safetensors").read_bytes()).hexdigest(),
        "ours": [], "peer": [],
    }  # fmt: skip
    c.log(f"{run}: DNN {model['dnn_accuracy']:.2f} % on {model['samples']} test images")
    earlier = reused_ours(args.reuse_ours, role, run, model) if args.reuse_ours else None
    if earlier is not None:
        model["ours"], model["ours_from"] = list(earlier["ours"]), str(args.reuse_ours)
    have = {_key(p) for p in model["ours"]}
    scales = "auto" if role == "vgg" else None
    wanted = settings(args.leaks, args.lambdas, args.sparse_leak, args.min_times)
    for coding, lam, L, k in wanted if earlier is None or args.more_ours else ():
        epochs = args.sparse_epochs if lam > 0 else args.epochs
        if (coding, lam, L, k, epochs) in have:  # kept from the earlier artefact
            continue
        tick = time.perf_counter()
        folder = f"{coding}_{lam:g}_L{L:g}" + (f"_t{k}" if k > 1 else "")
        row = one_setting(
            run, work / folder, coding=coding, lam=lam, L=L, epochs=epochs,
            train_limit=args.train_limit, test_limit=model["samples"], device="cpu",
            progress=not args.quiet, activation_scales=scales, min_time=k,
        )  # fmt: skip
        row.update(L=L, epochs=epochs, accuracy=100.0 * row["snn_top1"],
                   seconds=time.perf_counter() - tick)
        model["ours"].append(row)
        c.log(f"  ours {coding} LAMBDA={lam:g} L={L:g} min_time={k}: {row['accuracy']:.2f} %, "
              f"{row['synaptic_events_per_image']:,.0f} events, agreement {row['agreement']:.4f}")
    if spikingjelly_available():
        train = c.dataset(meta["dataset"], "train")
        calibration = [c.normalise(c.raw_images(train, 100, offset=100 * i), train)
                       for i in range(args.calibration_batches)]  # fmt: skip
        runs = {}
        for mode, kwargs in SJ_CONFIGS.items():
            sj = convert_spikingjelly(dnn, calibration, **kwargs)
            runs[mode] = run_spikingjelly(sj, x_norm, y, tuple(args.peer_t), batch=100,
                                          ops_samples=min(args.ops_samples, model["samples"]))
            c.log("  spikingjelly " + mode + ": " + ", ".join(
                f"T={t} {a:.2f} %" for t, a in zip(runs[mode]["T"], runs[mode]["accuracy"], strict=True)))
        model["peer"] = peer_curves(runs)
    model["headline"] = headline(model, args.tolerance)
    model["settings"] = {k: getattr(args, k) for k in (
        "leaks", "lambdas", "min_times", "epochs", "sparse_epochs", "sparse_leak", "train_limit",
        "peer_t", "calibration_batches", "threads")}  # fmt: skip
    if earlier is not None and not args.more_ours:  # our points' settings are the earlier run's
        model["settings"] = {**earlier["settings"], **{k: model["settings"][k] for k in (
            "peer_t", "calibration_batches", "threads")}}  # fmt: skip
    elif earlier is not None:  # the earlier run's points, and those of these settings
        model["settings"]["earlier"] = earlier["settings"]
    model["machine"] = c.machine_info()
    return model


def plot(data: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = data["models"]
    cols = min(2, len(models))
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, models, strict=False):
        for coding, style in (("paper", "o-"), ("sparse", "s-")):
            pts = sorted((p for p in m["ours"] if p["coding"] == coding and not p["lambda"]),
                         key=lambda p: p["L"])  # fmt: skip
            ax.plot([p["synaptic_events_per_image"] for p in pts], [p["accuracy"] for p in pts],
                    style, label=f"tdsnn {coding} coding (L = " + ",".join(f"{p['L']:g}" for p in pts) + ")")
        for marker, k in zip("*PXD", sorted({p.get("min_time", 1) for p in m["ours"]}), strict=False):
            pen = [p for p in m["ours"] if p["lambda"] and p.get("min_time", 1) == k]
            if pen:
                ax.plot([p["synaptic_events_per_image"] for p in pen], [p["accuracy"] for p in pen],
                        marker, ms=8, label=f"tdsnn sparse, L = {pen[0]['L']:g}, LAMBDA = "
                        + ",".join(f"{p['lambda']:g}" for p in pen)
                        + (f", min_time = {k}" if k > 1 else ""))  # fmt: skip
        for k, recipe in enumerate(dict.fromkeys(p["recipe"] for p in m["peer"])):
            pts = [p for p in m["peer"] if p["recipe"] == recipe]
            ax.plot([p["events_per_step_count"] for p in pts], [p["accuracy"] for p in pts], "^-",
                    color=f"C{k + 3}", lw=0.9, label=f"SpikingJelly {recipe} (T = {pts[0]['T']}..{pts[-1]['T']})")
            ax.plot([p["events_input_once"] for p in pts], [p["accuracy"] for p in pts], "^:",
                    color=f"C{k + 3}", lw=0.9, alpha=0.5)
        ax.axhline(m["dnn_accuracy"], color="k", lw=0.8)
        ax.axhline(m["dnn_accuracy"] - data["tolerance"], color="k", lw=0.8, ls=":")
        ax.set_xscale("log")
        peer_best = max([p["accuracy"] for p in m["peer"]], default=m["dnn_accuracy"])
        low = min([p["accuracy"] for p in m["ours"]] + [peer_best])
        ax.set_ylim(max(0.0, low - 8), m["dnn_accuracy"] + 1.5)
        ax.set_xlabel("synaptic events per image (dotted: peer's input once)", fontsize=8)
        ax.set_ylabel(f"accuracy % (first {m['samples']} test images)")
        ax.set_title(f"{ROLES[m['role']]}, {Path(m['run']).name}", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=5, loc="lower right")
    return c.save_figure(fig, path, data["machine"])


def merge(sources: list[Path], out: Path, plot_path: Path) -> int:
    """One artefact from the results of several runs of this script (each model keeps the
    settings and machine it was measured with)."""
    parts = [json.loads(path.read_text()) for path in sources]
    data = {k: v for k, v in parts[0].items() if k != "models"}
    data["sources"] = [str(path) for path in sources]
    data["models"] = [m for part in parts for m in part["models"]]
    for m in data["models"]:  # recomputed from the points, by this version's rule
        m["headline"] = headline(m, data["tolerance"])
    c.write_json(out, data)
    print(peer_sparse_table(data))
    print(f"wrote {out} and {plot(data, plot_path)}")
    return 0


def _run_arg(text: str) -> tuple[str, Path]:
    role, sep, folder = text.partition("=")
    if not sep or role not in ROLES:
        raise argparse.ArgumentTypeError(f"expected ROLE=FOLDER with ROLE in {sorted(ROLES)}, got {text!r}")
    path = Path(folder)
    if not (path / "dnn.safetensors").exists():
        raise argparse.ArgumentTypeError(f"{path} holds no dnn.safetensors (run `tdsnn train`)")
    return role, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=_run_arg, action="append", default=[],
                        help="ROLE=FOLDER (ROLE: lenet5 or vgg), a `tdsnn train` run; repeatable")
    parser.add_argument("--leaks", type=float, nargs="+", default=[1, 2, 3, 5, 8])
    parser.add_argument("--vgg-leaks", type=float, nargs="+", default=[2, 3, 5, 8])
    parser.add_argument("--lambdas", type=float, nargs="*", default=[0.3])
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per setting")
    parser.add_argument("--sparse-epochs", type=int, default=None,
                        help="fine-tuning epochs of the penalised points (default --epochs)")
    parser.add_argument("--sparse-leak", type=float, default=5.0, help="L of the penalised points")
    parser.add_argument("--min-times", type=int, nargs="+", default=[1],
                        help="earliest spike times of the penalised points (default 1)")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None,
                        help="test images (default 1000 MNIST and 1000 CIFAR-10)")
    parser.add_argument("--peer-t", type=int, nargs="+", default=list(PEER_T))
    parser.add_argument("--ops-samples", type=int, default=50, help="images of the peer's counting pass")
    parser.add_argument("--calibration-batches", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=JSON_OUT)
    parser.add_argument("--plot", type=Path, default=PLOT_OUT)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="measure nothing: write the models of these JSON files to --json, replot")
    parser.add_argument("--reuse-ours", type=Path, default=None, metavar="JSON",
                        help="keep our points from this earlier artefact of the same DNNs "
                        "(checked), measure only the peer again")
    parser.add_argument("--more-ours", action="store_true",
                        help="with --reuse-ours: also measure the settings given here that the "
                        "artefact lacks")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.json, args.plot)
    if not args.run:
        parser.error("give --run ROLE=FOLDER (or --merge)")
    args.samples = {role: args.samples or 1000 for role in ROLES}
    if args.sparse_epochs is None:
        args.sparse_epochs = args.epochs
    threads = c.set_threads(args.threads)
    if not spikingjelly_available():
        c.log(INSTALL_HINT + "\nOnly our side is measured.")
    data: dict[str, Any] = {
        "machine": c.machine_info(), "threads": threads, "tolerance": args.tolerance,
        "epochs": args.epochs, "train_limit": args.train_limit, "peer_T": args.peer_t,
        "calibration_batches": args.calibration_batches, "models": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="peer-sparse-") as scratch:
        for k, (role, run) in enumerate(args.run):
            leaks = args.vgg_leaks if role == "vgg" else args.leaks
            sub = argparse.Namespace(**{**vars(args), "leaks": leaks})
            data["models"].append(measure_model(role, run, sub, Path(scratch) / str(k)))
            c.write_json(args.json, data)  # what is measured so far
    print(peer_sparse_table(data))
    print(f"wrote {args.json} and {plot(data, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
