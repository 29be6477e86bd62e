"""The peer: SpikingJelly's rate-coding ANN->SNN conversion against tdsnn, on the same DNN.

SpikingJelly (``ann2snn.Converter`` with ``RateCodingRecipe(dataloader, mode="Max" or
"99.9%")``, and the 99.9% mode with channel-wise thresholds and max-pooling before the
spiking neuron: Conv-BN fusion, ReLU -> integrate-and-fire neurons with soft reset and
data-based threshold balancing) converts the very same trained DNN whose G-DNN tdsnn
converts.  Their SNN is run for T steps feeding the analog (normalised) image at every
step, the output layer's values are averaged (summed) over the steps, and
``functional.reset_net`` is called between batches; accuracy, synaptic operations
and wall time are read out at T = 8, 16, ..., 512 from one run of 512 steps.

Ours: the G-DNN prepared at L = 1..8 (activation scales calibrated for the CIFAR
network) and fine-tuned per L, converted and run with the ``closed_form`` simulator
(certified precision, the default; plain float32 timed too); its synaptic events and
operations come from the SNN's own counters (events: spikes reaching a target, the
figure the peer's counter measures; operations: all additions and multiplications
under the paper's "presentation" convention and under the "own" convention), and its
simulated time is the SNN's latency in time steps.

Counting rule for SpikingJelly (``SynapticEventCounter``): forward pre-hooks on every
Conv2d / Linear / AvgPool2d / MaxPool2d count, at every time step, each non-zero input
entry times its fan-out (the number of output neurons it reaches; zero padding has no
neuron): one addition per spike reaching one target, exactly tdsnn's rule for synaptic
events.  A layer with a bias adds one addition per output neuron per time step (tdsnn:
the bias neuron's single spike reaches every neuron once).  The first layer receives the
analog image, so its "events" are multiply-accumulates; they are counted as one operation
each (in the peer's favour), and every input pixel is an event (the normalised image is
non-zero almost everywhere, as every input neuron of tdsnn fires once).  Not counted on
their side: threshold comparisons and resets of the IF neurons, the output averaging,
and the threshold-balancing scalers (they fold into weights).

    python benchmarks/peer_spikingjelly.py [--quick] [--peer-networks lenet5 vgg]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import common as c
import torch
import torch.nn.functional as F
from torch import nn

import tdsnn

INSTALL_HINT = (
    "SpikingJelly is not installed; the peer comparison is skipped. Install it for the "
    "benchmark only (never as a tdsnn dependency; its declared dependencies would pull a "
    "CUDA build of torch):\n"
    "    pip install --no-deps spikingjelly && pip install loguru requests tqdm"
)
T_LIST = (8, 16, 32, 64, 128, 256, 512)
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
    t_list=T_LIST,
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


@torch.no_grad()
def time_ours(snn: tdsnn.SNN, x: torch.Tensor, batch: int, backend: str, precision: str) -> float:
    """Wall seconds per image of one pass over ``x`` (after a warm-up batch)."""
    snn.run(x[:batch], backend=backend, precision=precision)
    seconds = 0.0
    for i in range(0, x.shape[0], batch):
        t0 = time.perf_counter()
        snn.run(x[i : i + batch], backend=backend, precision=precision)
        seconds += time.perf_counter() - t0
    return seconds / x.shape[0]


@torch.no_grad()
def run_ours(snn: tdsnn.SNN, x: torch.Tensor, y: torch.Tensor, batch: int = 100,
             backend: str = "closed_form") -> dict:
    """Accuracy, wall time per image (default certified precision, and plain float32 for
    closed_form), synaptic events, operations and latency of our SNN on (x, y)."""
    snn.run(x[:batch], backend=backend)  # warm-up (fan-out caches)
    correct = 0
    seconds = 0.0
    ops = None
    latency = []
    for i in range(0, x.shape[0], batch):
        t0 = time.perf_counter()
        result = snn.run(x[i : i + batch], backend=backend)
        seconds += time.perf_counter() - t0
        correct += int((result.predictions == y[i : i + batch]).sum())
        latency.append(result.latency)
        if ops is None:
            ops = result.ops
        else:
            ops.merge(result.ops)
    n = x.shape[0]
    pres, own = ops.counts("presentation"), ops.counts("own")
    lat = torch.cat(latency).double()
    f32 = time_ours(snn, x, batch, backend, "float32") if backend == "closed_form" else None
    return {
        "accuracy": 100.0 * correct / n,
        "wall_s_per_image": seconds / n,
        "wall_s_per_image_f32": f32,
        "synaptic_events": sum(layer.synaptic_adds for layer in ops.layers) / ops.samples,
        "ops_presentation": pres.per_sample()["total"],
        "ops_own": own.per_sample()["total"],
        "adds": pres.per_sample()["add"],
        "mul_presentation": pres.per_sample()["mul"],
        "mul_own": own.per_sample()["mul"],
        "latency_mean": float(lat.mean()),
        "latency_max": int(lat.max()),
        "samples": n,
        "backend": backend,
    }


# ----------------------------------------------------------------------------- headline


def _best(points: list[dict], level: float, ops_key: str) -> dict | None:
    ok = [p for p in points if p["accuracy"] >= level - 1e-9]
    return min(ok, key=lambda p: p[ops_key]) if ok else None


def headline(net: dict, tolerance: float = 0.5) -> dict:
    """Ours vs theirs at equal accuracy: both within ``tolerance`` % of the DNN (same images)."""
    ours = [dict(p, ops=p["synaptic_events"]) for p in net["ours"]]
    theirs = []
    for mode, run in net.get("peer", {}).items():
        for k, t in enumerate(run["T"]):
            theirs.append({"mode": mode, "T": t, "accuracy": run["accuracy"][k],
                           "ops": run["ops_per_image"][k], "wall": run["wall_s_per_image"][k]})
    out: dict = {"dnn_accuracy": net["dnn_accuracy"], "tolerance": tolerance}
    if not theirs:
        out["status"] = "no peer"
        return out
    level = net["dnn_accuracy"] - tolerance
    o, t = _best(ours, level, "ops"), _best(theirs, level, "ops")
    out["status"] = "equal accuracy within tolerance of the DNN"
    if o is None or t is None:
        level = min(max(p["accuracy"] for p in ours), max(p["accuracy"] for p in theirs))
        o, t = _best(ours, level, "ops"), _best(theirs, level, "ops")
        out["status"] = (
            f"{'ours' if _best(ours, net['dnn_accuracy'] - tolerance, 'ops') is None else 'the peer'}"
            f" never comes within {tolerance} % of the DNN; compared at the best accuracy both "
            f"reach ({level:.2f} %)"
        )
    out["level"] = level
    out["ours"] = o
    out["theirs"] = t
    out["events_ratio"] = t["ops"] / o["synaptic_events"]
    out["ops_ratio_presentation"] = t["ops"] / o["ops_presentation"]
    out["ops_ratio_own"] = t["ops"] / o["ops_own"]
    out["wall_ratio"] = t["wall"] / o["wall_s_per_image"]
    if o.get("wall_s_per_image_f32"):
        out["wall_ratio_f32"] = t["wall"] / o["wall_s_per_image_f32"]
    if o.get("clocked_wall_s_per_image"):
        out["wall_ratio_clocked"] = t["wall"] / o["clocked_wall_s_per_image"]
    return out


# ----------------------------------------------------------------------------- driver


def run(args, specs=None, prepared=None) -> dict:
    threads, specs, cfgs, steps = c.setup(args, specs)
    have_sj = spikingjelly_available()
    if not have_sj:
        c.log(INSTALL_HINT)
    t_list = tuple(t for t in T_LIST if t <= args.max_t)
    results: dict = {"machine": c.machine_info(), "threads": threads, "spikingjelly": have_sj,
                     "T": list(t_list), "L": list(args.leaks), "finetune_steps": steps,
                     "networks": []}
    for role in args.peer_networks:
        spec, cfg = specs[role], cfgs[role]
        dnn, dnn_meta, _, _ = c.models(role, spec, cfg, steps, prepared)
        ds = c.dataset(spec.dataset, "test")
        n = args.peer_samples or (100 if args.quick else (1000 if spec.dataset == "mnist" else 500))
        x_raw = c.raw_images(ds, n)
        y = ds.labels[: x_raw.shape[0]]
        x_norm = c.normalise(x_raw, ds)
        net: dict = {"role": role, "label": spec.label, "samples": x_raw.shape[0],
                     "dnn_accuracy": c.accuracy(dnn, x_norm, y),
                     "dnn_test_accuracy": dnn_meta.get("test_accuracy"),
                     "dnn_macs": tdsnn.count_dnn_ops(dnn, spec.input_shape).per_sample()["mul"],
                     "ours": [], "peer": {}}
        c.log(f"peer: {spec.label}: DNN accuracy on {net['samples']} images {net['dnn_accuracy']:.2f} %")
        for L in args.leaks:
            gdnn, gmeta = c.get_gdnn(spec, cfg, dnn, float(L), steps)
            point = run_ours(tdsnn.convert(gdnn), x_raw, y, batch=min(args.peer_batch, n))
            point.update(L=L, finetune_steps=gmeta.get("finetune_steps"))
            net["ours"].append(point)
            c.log(f"  ours L={L}: acc {point['accuracy']:.2f} %, latency {point['latency_mean']:.1f}, "
                  f"ops {point['ops_presentation']:.3g} (own {point['ops_own']:.3g}), "
                  f"{1e3 * point['wall_s_per_image']:.3f} ms/image")
        if have_sj:
            ds_train = c.dataset(spec.dataset, "train")
            calibration = [
                c.normalise(c.raw_images(ds_train, 100, offset=100 * i), ds_train)
                for i in range(args.calibration_batches)
            ]
            for mode, recipe_kwargs in SJ_CONFIGS.items():
                sj = convert_spikingjelly(dnn, calibration, **recipe_kwargs)
                c.log(f"  spikingjelly {mode}: running {max(t_list)} steps on {net['samples']} images ...")
                t0 = time.perf_counter()
                run = run_spikingjelly(sj, x_norm, y, t_list, batch=min(args.peer_batch, n),
                                       ops_samples=min(args.peer_ops_samples, net["samples"]))
                run["run_seconds"] = time.perf_counter() - t0
                net["peer"][mode] = run
                c.log("   " + ", ".join(f"T={t}: {a:.2f} %" for t, a in zip(run["T"], run["accuracy"], strict=True)))
        head = headline(net, args.tolerance)
        if "ours" in head:  # our clocked simulator at the headline L, for the record
            L = head["ours"]["L"]
            gdnn, _ = c.get_gdnn(spec, cfg, dnn, float(L), steps)
            clocked = run_ours(tdsnn.convert(gdnn), x_raw, y, batch=min(args.peer_batch, n),
                               backend="clocked")
            for p in net["ours"]:
                if p["L"] == L:
                    p["clocked_wall_s_per_image"] = clocked["wall_s_per_image"]
            head = headline(net, args.tolerance)
        net["headline"] = head
        results["networks"].append(net)
    results["machine_end"] = c.machine_info()
    c.save_json("peer", results)
    return results


# ----------------------------------------------------------------------------- report


def ours_table(net: dict) -> str:
    headers = ["L", "accuracy %", "latency (steps)", "synaptic events/image",
               "ops/image (presentation)", "ops/image (own)", "closed_form ms/image",
               "plain float32 ms/image"]
    rows = [[p["L"], f"{p['accuracy']:.2f}", f"{p['latency_mean']:.1f}",
             round(p["synaptic_events"]), p["ops_presentation"], p["ops_own"],
             f"{1e3 * p['wall_s_per_image']:.3f}",
             f"{1e3 * (p.get('wall_s_per_image_f32') or float('nan')):.3f}"] for p in net["ours"]]
    return c.markdown_table(headers, rows)


def peer_table(net: dict) -> str:
    headers = ["recipe", "T (steps)", "accuracy %", "synaptic ops/image", "of which input layer",
               "ms/image"]
    rows = []
    for mode, run in net["peer"].items():
        for k, t in enumerate(run["T"]):
            rows.append([mode, t, f"{run['accuracy'][k]:.2f}", run["ops_per_image"][k],
                         run["first_layer_ops_per_image"][k],
                         f"{1e3 * run['wall_s_per_image'][k]:.3f}"])
    return c.markdown_table(headers, rows)


def _decline_note(net: dict) -> str:
    """A sentence when the peer's accuracy peaks early and falls with more steps."""
    falls = []
    n = max(1, net["samples"])
    for mode, run in net["peer"].items():
        acc = run["accuracy"]
        k = max(range(len(acc)), key=acc.__getitem__)
        p = acc[k] / 100.0
        margin = max(2.0, 300.0 * (p * (1 - p) / n) ** 0.5)  # 3 binomial standard errors
        if acc[-1] < acc[k] - margin:
            falls.append(f"{mode}: {acc[k]:.1f} % at T={run['T'][k]}, {acc[-1]:.1f} % at T={run['T'][-1]}")
    if not falls:
        return ""
    return (
        "\nThe peer's accuracy peaks early and then falls as T grows (" + "; ".join(falls) + "). "
        "More steps should only help a rate-coded network, so its steady-state rates are "
        "biased; this is consistent with the known weakness of rate-coded max-pooling (the reason "
        "for the gating of Rueckauer et al. 2017, cited by the paper): max-pooling spike trains "
        "passes the union of the spikes (rates "
        "above the maximum), and max-pooling fluctuating input currents before the neuron "
        "(pre-spike max-pool) picks their noise maxima; the bias compounds over the max-pool "
        "layers. tdsnn's max-pool neurons fire with the last (largest-value) spike of their "
        "window, exactly."
    )


def headline_rows(results: dict) -> list[list]:
    rows = []
    for net in results["networks"]:
        h = net["headline"]
        if "ours" not in h:
            rows.append([net["label"], f"{net['dnn_accuracy']:.2f}", h["status"]] + [""] * 7)
            continue
        o, t = h["ours"], h["theirs"]
        rows.append([
            net["label"], f"{net['dnn_accuracy']:.2f}",
            f"L={o['L']}: {o['accuracy']:.2f} %, {o['latency_mean']:.1f} steps",
            f"{t['mode']}, T={t['T']}: {t['accuracy']:.2f} %",
            f"{h['events_ratio']:.1f}x", f"{h['ops_ratio_presentation']:.1f}x",
            f"{h['wall_ratio']:.1f}x", f"{h.get('wall_ratio_f32', float('nan')):.1f}x",
            f"{h.get('wall_ratio_clocked', float('nan')):.2f}x",
            h["status"],
        ])
    return rows


HEADLINE_HEADERS = [
    "network", "DNN acc % (same images)", "ours (closed_form)", "SpikingJelly",
    "synaptic events: theirs / ours", "theirs / our total ops (presentation)",
    "wall: theirs / ours closed_form", "wall: theirs / ours plain float32",
    "wall: theirs / ours clocked", "how matched",
]


def report(results: dict) -> str:
    parts = [f"Machine: {c.machine_line(results['machine'])}; load average at the end "
             f"{results['machine_end'].get('loadavg')}."]
    if not results["spikingjelly"]:
        parts += ["", "> " + INSTALL_HINT.replace("\n", "\n> ")]
    else:
        parts += ["", c.markdown_table(HEADLINE_HEADERS, headline_rows(results))]
    for net in results["networks"]:
        parts += ["", f"**{net['label']}**: {net['samples']} test images, DNN accuracy on them "
                      f"{net['dnn_accuracy']:.2f} % ({net['dnn_macs'] / 1e6:.2f} M MACs per image), "
                      f"G-DNN fine-tuned {results['finetune_steps']} steps per L.", "",
                  "tdsnn (closed_form, certified precision):", "", ours_table(net)]
        if net["peer"]:
            parts += ["", "SpikingJelly (rate coding, IF neurons, analog input every step):", "",
                      peer_table(net)]
            parts += [line for line in [_decline_note(net)] if line]
    return "\n".join(parts)


def plot(results: dict, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    nets = results["networks"]
    for what, xkey_ours, xkey_peer, xlabel, name in (
        ("ops", "synaptic_events", "ops_per_image", "synaptic events per image (log)", "peer_accuracy_vs_ops.png"),
        ("wall", "wall_s_per_image", "wall_s_per_image", "wall time per image, s (log)", "peer_accuracy_vs_wall.png"),
    ):
        fig, axes = plt.subplots(1, len(nets), figsize=(5.5 * len(nets), 4.2), squeeze=False)
        for ax, net in zip(axes[0], nets, strict=True):
            xs = [p[xkey_ours] for p in net["ours"]]
            ax.plot(xs, [p["accuracy"] for p in net["ours"]], "o-", color="C0",
                    label="tdsnn closed_form (L=1..8)" + (", synaptic events" if what == "ops" else ""))
            for p, x in zip(net["ours"], xs, strict=True):
                ax.annotate(f"L={p['L']}", (x, p["accuracy"]), fontsize=6, xytext=(3, -8),
                            textcoords="offset points")
            if what == "ops":
                ax.plot([p["ops_presentation"] for p in net["ours"]], [p["accuracy"] for p in net["ours"]],
                        "s--", color="C0", alpha=0.5, label="tdsnn, all ops (presentation)")
            else:
                ck = [(p["clocked_wall_s_per_image"], p["accuracy"], p["L"]) for p in net["ours"]
                      if p.get("clocked_wall_s_per_image")]
                if ck:
                    ax.plot([v[0] for v in ck], [v[1] for v in ck], "D", color="C2",
                            label=f"tdsnn clocked (L={ck[0][2]})")
            for k, (mode, run) in enumerate(net["peer"].items()):
                ax.plot(run[xkey_peer], run["accuracy"], "^-", color=f"C{k + 3}",
                        label=f"SpikingJelly rate coding ({mode})")
                for t, x, a in zip(run["T"], run[xkey_peer], run["accuracy"], strict=True):
                    ax.annotate(f"T={t}", (x, a), fontsize=6, xytext=(3, 3), textcoords="offset points")
            ax.axhline(net["dnn_accuracy"], color="k", lw=0.8, label="DNN")
            ax.axhline(net["dnn_accuracy"] - 0.5, color="k", lw=0.8, ls=":", label="DNN - 0.5 %")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"accuracy % ({net['samples']} test images)")
            lo = min([p["accuracy"] for p in net["ours"]] + [net["dnn_accuracy"] - 10])
            ax.set_ylim(max(0, lo - 2), min(100, net["dnn_accuracy"] + 3))
            ax.set_title(net["label"], fontsize=9)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6, loc="lower right")
        paths.append(c.save_figure(fig, directory / name, results["machine"]))
    return paths


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peer-networks", nargs="+", default=None, choices=["lenet5", "vgg", "alexnet"],
                        help="networks compared with the peer (default: lenet5 vgg)")
    parser.add_argument("--peer-samples", type=int, default=None,
                        help="test images for both tools (default: 1000 MNIST, 500 CIFAR-10; quick 100)")
    parser.add_argument("--peer-ops-samples", type=int, default=None,
                        help="images of the peer's operation-counting pass (default 50)")
    parser.add_argument("--peer-batch", type=int, default=100)
    parser.add_argument("--max-t", type=int, default=None, help="largest T of the peer (default 512, quick 128)")
    parser.add_argument("--leaks", type=float, nargs="+", default=None,
                        help="our leak constants (default 1..8, quick 1 3 5 8)")
    parser.add_argument("--calibration-batches", type=int, default=None,
                        help="100-image training batches for the peer's threshold balancing (default 10)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="equal accuracy: within this %% of the DNN")


def fill_defaults(args) -> None:
    quick = args.quick
    if args.peer_networks is None:
        args.peer_networks = ["lenet5", "vgg"]
    if args.peer_ops_samples is None:
        args.peer_ops_samples = 50
    if args.max_t is None:
        args.max_t = 128 if quick else 512
    if args.leaks is None:
        args.leaks = [1, 3, 5, 8] if quick else [1, 2, 3, 4, 5, 6, 7, 8]
    args.leaks = [int(v) if float(v).is_integer() else v for v in args.leaks]
    if args.calibration_batches is None:
        args.calibration_batches = 2 if quick else 10


def main(argv=None) -> None:
    args = c.parse_args(__doc__, add_args, argv)
    fill_defaults(args)
    results = run(args)
    print(report(results))
    for path in plot(results, c.CACHE / "results"):
        print(f"plot: {path}")


if __name__ == "__main__":
    main()
