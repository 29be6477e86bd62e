"""Whole-test-set evaluation of the three networks of Figure 2: DNN, G-DNN and SNN.

Inputs differ on purpose.  The DNN takes what it was trained on, usually the
normalised pixels ``(pixel/255 - mean) / std``; the G-DNN and the SNN take the raw,
non-negative ``pixel/255 * input_scale``, because :func:`tdsnn.prepare` folded the
normalisation (and the scale) into the first synapse layer.

The G-DNN is evaluated in float64, the precision whose spike times the SNN
simulators reproduce (``clocked`` in float64, ``closed_form`` in certified float32,
proven equal to float64): ``T`` is a ceiling (eq. 10), and in plain float32 a value
within rounding of a level boundary can move one step, which is not a conversion
error.  So ``agreement`` measures the conversion itself and should be exactly 1.0.

The result is a JSON-able dict (schema in :func:`evaluate`) read by the report
and plot writers.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import ImageDataset, to_float
from .distributed import all_reduce, context, make_eval_loader
from .ops import CONVENTIONS, EnergyModel, LayerOps, OpCounts, SNNOps, compare_ops, count_dnn_ops
from .snn.layers import SpikeConcat, SpikeFlatten, SpikingMaxPool, SpikingSynapse
from .snn.network import SNN
from .snn.result import SNNResult
from .summary import graph_line, graph_summary

__all__ = ["InputSpec", "describe_graph", "evaluate", "format_table", "graph_line", "graph_summary"]

BACKENDS = ("closed_form", "clocked")


@dataclass(frozen=True)
class InputSpec:
    """How a batch of ``pixel/255`` values becomes each network's input.

    ``mean``/``std``: the DNN's normalisation (None: the DNN takes ``pixel/255``);
    ``scale``: the spiking input is ``pixel/255 * scale`` (G-DNN and SNN).
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: float = 1.0

    def dnn(self, x: Tensor) -> Tensor:
        if self.mean is None or self.std is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        return (x - mean) / std

    def spiking(self, x: Tensor) -> Tensor:
        return x * self.scale


class _Tally:
    """Sums, minima and maxima kept per rank and reduced over all ranks at the end."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.mins: dict[str, float] = {}
        self.maxs: dict[str, float] = {}

    def add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def low(self, key: str, value: float) -> None:
        self.mins[key] = min(self.mins.get(key, float("inf")), float(value))

    def high(self, key: str, value: float) -> None:
        self.maxs[key] = max(self.maxs.get(key, float("-inf")), float(value))

    def reduce(self) -> None:
        """All-reduce every entry (keys are identical on all ranks by construction)."""
        for table, op in ((self.sums, "sum"), (self.mins, "min"), (self.maxs, "max")):
            keys = sorted(table)
            if not keys:
                continue
            values = all_reduce(torch.tensor([table[k] for k in keys], dtype=torch.float64), op)
            table.update(zip(keys, values.tolist(), strict=True))


def _batches(
    data: ImageDataset | DataLoader | tuple[Tensor, Tensor],
    batch_size: int,
    limit: int | None,
) -> tuple[Iterable[tuple[Tensor, Tensor]], int]:
    """Batches of (pixel/255 floats, labels) of this rank, and their count."""
    if isinstance(data, DataLoader):
        if limit is not None:
            raise ValueError("limit applies to a data set or tensors, not to a DataLoader")
        return data, len(data)
    if isinstance(data, ImageDataset):
        images, labels = data.images, data.labels
    else:
        images, labels = data
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if images.dtype == torch.uint8:
        images = to_float(images)
    loader = make_eval_loader(images, labels, batch_size)
    return loader, len(loader)


def _accuracy(tally: _Tally, key: str, logits: Tensor, labels: Tensor) -> Tensor:
    """Count top-1 and top-5 hits of ``logits``; return the top-1 predictions."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hits = top == labels.unsqueeze(1)
    tally.add(f"{key}.top1", int(hits[:, 0].sum()))
    tally.add(f"{key}.top5", int(hits.any(dim=1).sum()))
    return top[:, 0]


def _timed(tally: _Tally, key: str, fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    tally.add(f"time.{key}", time.perf_counter() - start)
    return out


def _prime(tally: _Tally, snn: SNN, backends: Sequence[str]) -> list[str]:
    """Create every key at zero, so that a rank without samples reduces like the others.

    Returns the names of the spiking layers (the input first), as ``SNNResult`` has them.
    """
    names = ["input"] + [
        layer.name
        for layer in snn.layers
        if isinstance(layer, SpikingMaxPool)
        or (isinstance(layer, SpikingSynapse) and not layer.is_output)
    ]
    keys = ["samples", "latency.sum", "time.dnn", "time.gdnn"]
    for net in ("dnn", "gdnn", *(f"snn.{b}" for b in backends)):
        keys += [f"{net}.top1", f"{net}.top5"]
    keys += [f"agree.{b}" for b in backends] + [f"time.{b}" for b in backends]
    keys += [f"spikes.{name}" for name in names]
    for i in range(len(snn.synapse_layers)):
        keys += [f"t_il.{i}", f"clipped.{i}"]
    keys += [f"ops.{c}.{k}" for c in CONVENTIONS for k in ("mul", "add")]
    keys += ["synaptic_events"]
    delays = _delay_keys(snn)
    keys += delays
    for key in keys:
        tally.add(key, 0)
    tally.low("latency.min", float("inf"))
    tally.high("latency.max", float("-inf"))
    for key in delays:
        tally.low(key, float("inf"))
        tally.high(key, float("-inf"))
    tally.high("neurons", float("-inf"))  # spiking neurons per sample (a constant)
    return names


def _sample_shape(data: ImageDataset | DataLoader | tuple[Tensor, Tensor]) -> tuple[int, ...]:
    """The shape of one input (no batch dimension), for the DNN operation count."""
    if isinstance(data, DataLoader):
        return tuple(data.dataset[0][0].shape)
    images = data.images if isinstance(data, ImageDataset) else data[0]
    return tuple(images.shape[1:])


def _record_snn(tally: _Tally, result: SNNResult) -> None:
    """Latency, T_il, spikes and clipping of one batch (identical for both backends)."""
    latency = result.latency
    tally.add("latency.sum", int(latency.sum()))
    tally.low("latency.min", int(latency.min()))
    tally.high("latency.max", int(latency.max()))
    for i, total in enumerate(result.t_il.sum(dim=0).tolist()):
        tally.add(f"t_il.{i}", total)
    for name, count in zip(result.layer_names, result.spike_counts, strict=True):
        tally.add(f"spikes.{name}", count)
    for i, count in enumerate(result.clipped):
        tally.add(f"clipped.{i}", count)
    tally.add("synaptic_events", int(result.synaptic_events))
    tally.high("neurons", sum(int(t[0].numel()) for t in result.spike_times if t.shape[0]))
    for name, delays in (result.extras.get("delays") or {}).items():
        for j, column in enumerate(delays.to(torch.int64).unbind(dim=1)):
            key = f"delay.{name}.{j}"
            tally.add(key, int(column.sum()))
            tally.low(key, int(column.min()))
            tally.high(key, int(column.max()))


def _delay_keys(snn: SNN) -> list[str]:
    """The tally keys of the delays: one per branch of every layer that joins frames."""
    return [
        f"delay.{layer.name}.{j}"
        for layer, source in zip(snn.layers, snn.sources, strict=True)
        if len(source) > 1
        for j in range(len(source))
    ]


def describe_graph(snn: SNN) -> dict[str, Any]:
    """The SNN's graph as a JSON-able dict (the ``"graph"`` entry of :func:`evaluate`).

    ``{"is_chain", "populations": [{"name", "reads": [[source, kind], ...]}, ...]`` (from
    :meth:`SNN.populations`: the input first, the output group last; kind ``"synapse"``,
    ``"shortcut"`` or ``"pool"``), ``"shortcuts": [{"into", "from", "branch", "kind",
    "synapse", "name"}, ...]`` (every branch of a neuron group but its first: ``into`` the
    receiving population, ``from`` the populations it reads, ``branch`` its index among
    the group's branches (the index of ``SNNResult.extras["delays"][into]``), ``kind``
    ``"identity"`` (weight 1) or ``"projection"`` (a conv or linear synapse, named in
    ``synapse``), ``name`` the branch's own name) and ``"joins": [{"name", "from"}]``
    (channel concatenations, which align frames with delays too)}``.
    """
    holds: list[list[str]] = [["input"]]
    shortcuts: list[dict[str, Any]] = []
    joins: list[dict[str, Any]] = []
    for layer, source in zip(snn.layers, snn.sources, strict=True):
        if isinstance(layer, (SpikeFlatten, SpikeConcat)):
            holds.append([p for s in source for p in holds[s]])
            if isinstance(layer, SpikeConcat):
                joins.append({"name": layer.name, "from": list(holds[-1])})
            continue
        if isinstance(layer, SpikingSynapse):
            for j, (branch, slot) in enumerate(zip(layer.branches(), source, strict=True)):
                if j == 0:
                    continue
                shortcuts.append({
                    "into": layer.name,
                    "from": list(holds[slot]),
                    "branch": j,
                    "kind": "identity" if branch.kind == "identity" else "projection",
                    "synapse": branch.kind,
                    "name": branch.name,
                })  # fmt: skip
        holds.append([layer.name])
    return {
        "is_chain": bool(snn.is_chain),
        "populations": [
            {"name": name, "reads": [[p, kind] for p, kind in reads]}
            for name, reads in snn.populations()
        ],
        "shortcuts": shortcuts,
        "joins": joins,
    }


def _graph_summary(tally: _Tally, snn: SNN, n: float) -> dict[str, Any]:
    """:func:`describe_graph` with the delay of every shortcut and join over the samples
    (``{"min", "max", "mean"}`` steps; constants with static T_il)."""
    graph = describe_graph(snn)
    s = tally.sums

    def delay(name: str, j: int) -> dict[str, float] | None:
        key = f"delay.{name}.{j}"
        if key not in s or not math.isfinite(tally.mins.get(key, math.inf)):
            return None
        return {"min": int(tally.mins[key]), "max": int(tally.maxs[key]), "mean": s[key] / n}

    fixed = snn.connection_delays() if snn.static_t_il is not None else {}
    for shortcut in graph["shortcuts"]:
        shortcut["delay"] = delay(shortcut["into"], shortcut["branch"])
        constant = fixed.get(shortcut["into"])
        if constant is not None and shortcut["branch"] < len(constant):
            value = int(constant[shortcut["branch"]])  # static T_il: one constant
            shortcut["delay"] = {"min": value, "max": value, "mean": float(value)}
    for join in graph["joins"]:
        width = sum(1 for k in s if k.startswith(f"delay.{join['name']}."))
        join["delays"] = [delay(join["name"], j) for j in range(width)]
    return graph


def _op_counts(tally: _Tally, ops: SNNOps | None) -> None:
    if ops is None:
        return
    for convention in CONVENTIONS:
        counts = ops.counts(convention)
        tally.add(f"ops.{convention}.mul", counts.mul)
        tally.add(f"ops.{convention}.add", counts.add)


def _totals(convention: str, mul: float, add: float, samples: int) -> OpCounts:
    """A whole-network OpCounts from reduced totals (for compare_ops and energy)."""
    return OpCounts(convention, samples, [LayerOps("all", "all", int(mul), int(add))])


def evaluate(
    model_dnn: nn.Module,
    gdnn: nn.Module,
    snn: SNN,
    data: ImageDataset | DataLoader | tuple[Tensor, Tensor],
    *,
    backends: Sequence[str] = BACKENDS,
    input_scale: float | None = None,
    input_mean: Sequence[float] | None = None,
    input_std: Sequence[float] | None = None,
    batch_size: int = 100,
    progress: bool = True,
    limit: int | None = None,
    device: torch.device | str | None = None,
    model_name: str = "",
    dataset_name: str | None = None,
    energy: EnergyModel | None = None,
    precision: str = "certified",
) -> dict[str, Any]:
    """Evaluate DNN, G-DNN and SNN (each backend) on a whole test set; return a JSON-able dict.

    Args:
        model_dnn: the trained DNN (takes normalised inputs if ``input_mean`` is given).
        gdnn: the (fine-tuned) G-DNN from :func:`tdsnn.prepare`.
        snn: the SNN from :func:`tdsnn.convert`.
        data: an :class:`ImageDataset`, ``(images, labels)`` (uint8 images or floats in
            [0, 1]) or a DataLoader of ``(pixel/255, labels)`` batches.
        backends: SNN simulators to run (``"closed_form"``, ``"clocked"``).
        input_scale: spiking input is ``pixel/255 * input_scale`` (default: the G-DNN's).
        input_mean, input_std: the DNN's input normalisation (None: none).
        limit: evaluate only the first ``limit`` samples.
        device: where the DNN and G-DNN run (the SNN runs where its buffers are).
        precision: the SNN's arithmetic (:meth:`tdsnn.SNN.run`): ``"certified"`` (default,
            spike times equal to float64's), ``"float64"`` or ``"float32"``.

    Returns ``{"model", "dataset", "L", "input_scale", "samples", "accuracy":
    {"dnn", "gdnn", "snn": {backend}} (each {"top1", "top5"}), "agreement" and
    "disagreements" per backend (SNN prediction == G-DNN prediction), "latency"
    {"mean", "min", "max"} (time steps), "t_il_mean" and "clipped" (per synapse layer,
    named in "layer_names"), "spikes_per_sample", "spikes_per_layer" (input
    included), "ops" {"dnn", "snn": {convention}, "ratios": {convention}} per sample,
    "energy_pj", "t_il_mode", "timing_s", "precision", "coding" ("paper" or "sparse"),
    "spiking_neurons" (per sample: the input's, every hidden synapse layer's and every
    max-pool layer's neurons, the layers of "spikes_per_layer"; the output layer, read
    out by potential, and the bias and ticking neurons are not counted),
    "spikes_per_neuron" (emitted spikes of those neurons / their number, per sample: 1.0
    in the paper's coding, less in sparse coding where silent neurons emit nothing),
    "synaptic_events_per_image" (every emitted spike times its fan-out, the bias
    neurons' included: :attr:`SNNResult.synaptic_events` / samples),
    "dnn_macs_per_image" (the DNN's multiply-accumulates, the multiplications of
    :func:`tdsnn.count_dnn_ops`), "events_per_mac" (their ratio) and, for a graph SNN
    only (a residual network; a chain has no such key), "graph" (the populations and
    shortcut connections, :func:`describe_graph`, each shortcut with its delay in steps
    over the samples, ``{"min", "max", "mean"}``)}``.  The SNN figures
    come from the first backend (both give the same spikes).  ``energy_pj`` follows the
    counted events: its additions are the synaptic events and ticks of
    :meth:`SNNOps.counts`, so silent neurons cost nothing there either.  With several processes each rank
    evaluates its shard and all metrics are reduced, so every rank gets the total.
    """
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        raise ValueError(f"backends must be a non-empty subset of {BACKENDS}, got {list(backends)}")
    ctx = context(device if device is not None else _device_of(model_dnn))
    spec = InputSpec(
        None if input_mean is None else tuple(float(v) for v in input_mean),
        None if input_std is None else tuple(float(v) for v in input_std),
        float(input_scale if input_scale is not None else getattr(gdnn, "input_scale", 1.0)),
    )
    dnn = model_dnn.to(ctx.device).eval()
    reference = copy.deepcopy(gdnn).to(ctx.device, torch.float64).eval()
    snn.eval()
    snn_device = _device_of(snn)
    loader, count = _batches(data, batch_size, limit)
    tally = _Tally()
    names = _prime(tally, snn, backends)
    merged: SNNOps | None = None
    input_shape = _sample_shape(data)
    bar = tqdm(
        total=count, desc="evaluate", disable=not (progress and ctx.is_main), dynamic_ncols=True
    )
    for x, y in loader:
        x, y = x.to(ctx.device), y.to(ctx.device)
        tally.add("samples", len(y))
        with torch.no_grad():
            logits = _timed(tally, "dnn", dnn, spec.dnn(x))
            _accuracy(tally, "dnn", logits, y)
            spiking = spec.spiking(x.to(torch.float64))
            g_logits = _timed(tally, "gdnn", reference, spiking)
        g_pred = _accuracy(tally, "gdnn", g_logits, y)
        for index, backend in enumerate(backends):
            result = _timed(tally, backend, snn.run, spiking.to(snn_device), backend, precision)
            pred = _accuracy(tally, f"snn.{backend}", result.logits.to(ctx.device), y)
            tally.add(f"agree.{backend}", int((pred == g_pred).sum()))
            if index == 0:
                _record_snn(tally, result)
                if merged is None:
                    merged = result.ops
                else:
                    merged.merge(result.ops)
        bar.set_postfix(_postfix(tally, backends), refresh=False)
        bar.update(1)
    bar.close()
    _op_counts(tally, merged)
    tally.reduce()
    if tally.sums["samples"] == 0:
        raise ValueError("the evaluation data is empty")
    dnn_ops = count_dnn_ops(dnn, input_shape)
    summary = _summarise(
        tally, spec, snn, backends, names, dnn_ops, energy, model_name, dataset_name, data
    )
    summary["precision"] = precision
    return summary


def _device_of(module: nn.Module) -> torch.device:
    tensor = next(itertools.chain(module.parameters(), module.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _postfix(tally: _Tally, backends: Sequence[str]) -> dict[str, str]:
    n = max(tally.sums.get("samples", 0.0), 1.0)
    out = {
        "dnn": f"{tally.sums['dnn.top1'] / n:.4f}",
        "gdnn": f"{tally.sums['gdnn.top1'] / n:.4f}",
    }
    for backend in backends:
        short = "cf" if backend == "closed_form" else "clk"
        out[f"snn_{short}"] = f"{tally.sums[f'snn.{backend}.top1'] / n:.4f}"
    out["agree"] = f"{tally.sums[f'agree.{backends[0]}'] / n:.4f}"
    return out


def _summarise(
    tally: _Tally,
    spec: InputSpec,
    snn: SNN,
    backends: Sequence[str],
    names: list[str],
    dnn_ops: OpCounts,
    energy: EnergyModel | None,
    model_name: str,
    dataset_name: str | None,
    data: Any,
) -> dict[str, Any]:
    s, n_float = tally.sums, max(tally.sums["samples"], 1.0)
    n = int(tally.sums["samples"])

    def acc(key: str) -> dict[str, float]:
        return {"top1": s[f"{key}.top1"] / n_float, "top5": s[f"{key}.top5"] / n_float}

    synapse_names = [layer.name for layer in snn.synapse_layers]
    snn_counts = {
        c: _totals(f"snn-{c}", s[f"ops.{c}.mul"], s[f"ops.{c}.add"], n) for c in CONVENTIONS
    }
    ratios = {c: compare_ops(dnn_ops, snn_counts[c], energy) for c in CONVENTIONS}
    spikes = {name: s[f"spikes.{name}"] / n_float for name in names}
    neurons = max(tally.maxs["neurons"], 1.0)
    events = s["synaptic_events"] / n_float
    macs = float(dnn_ops.per_sample()["mul"])
    if dataset_name is None:
        dataset_name = getattr(data, "name", "")
    return {
        "model": model_name,
        "dataset": dataset_name,
        "L": float(snn.L),
        "coding": getattr(snn, "coding", "paper"),
        "input_scale": spec.scale,
        "samples": n,
        "accuracy": {
            "dnn": acc("dnn"),
            "gdnn": acc("gdnn"),
            "snn": {b: acc(f"snn.{b}") for b in backends},
        },
        "agreement": {b: s[f"agree.{b}"] / n_float for b in backends},
        "disagreements": {b: n - int(s[f"agree.{b}"]) for b in backends},
        "latency": {
            "mean": s["latency.sum"] / n_float,
            "min": int(tally.mins["latency.min"]),
            "max": int(tally.maxs["latency.max"]),
        },
        "t_il_mean": [s[f"t_il.{i}"] / n_float for i in range(len(synapse_names))],
        "layer_names": synapse_names,
        "spikes_per_sample": sum(spikes.values()),
        "spikes_per_layer": spikes,
        "spiking_neurons": int(neurons),
        "spikes_per_neuron": sum(spikes.values()) / neurons,
        "synaptic_events_per_image": events,
        "dnn_macs_per_image": macs,
        "events_per_mac": events / macs if macs else float("inf"),
        "ops": {
            "dnn": dnn_ops.per_sample(),
            "snn": {c: snn_counts[c].per_sample() for c in CONVENTIONS},
            "ratios": {
                c: {
                    k: ratios[c][k]
                    for k in ("mul_ratio", "add_ratio", "total_ratio", "energy_ratio")
                }
                for c in CONVENTIONS
            },
        },
        "energy_pj": {
            "dnn": dnn_ops.energy_pj(energy),
            **{f"snn_{c}": snn_counts[c].energy_pj(energy) for c in CONVENTIONS},
        },
        "clipped": [int(s[f"clipped.{i}"]) for i in range(len(synapse_names))],
        "t_il_mode": snn.t_il_mode,
        **({} if snn.is_chain else {"graph": _graph_summary(tally, snn, n_float)}),
        "timing_s": {
            "dnn": s["time.dnn"],
            "gdnn": s["time.gdnn"],
            **{b: s[f"time.{b}"] for b in backends},
        },
    }


def format_table(evaluation: dict[str, Any]) -> str:
    """A plain-text summary of an :func:`evaluate` result (what the CLI prints)."""
    acc = evaluation["accuracy"]
    lines = [
        f"{evaluation['model']} on {evaluation['dataset']}: L={evaluation['L']:g}, "
        f"input_scale={evaluation['input_scale']:g}, {evaluation['samples']} samples, "
        f"T_il {evaluation['t_il_mode']}, {evaluation.get('coding', 'paper')} coding"
        + (f" (sparsity {evaluation['sparsity']:g})" if evaluation.get("sparsity") else ""),
        f"{'network':<18}{'top-1 err %':>12}{'top-5 err %':>12}{'agreement':>11}{'seconds':>9}",
    ]

    def row(label: str, a: dict[str, float], agree: str, seconds: float) -> str:
        return (
            f"{label:<18}{100 * (1 - a['top1']):>12.2f}{100 * (1 - a['top5']):>12.2f}"
            f"{agree:>11}{seconds:>9.1f}"
        )

    timing = evaluation["timing_s"]
    lines.append(row("DNN", acc["dnn"], "", timing["dnn"]))
    lines.append(row("G-DNN (float64)", acc["gdnn"], "", timing["gdnn"]))
    for backend, a in acc["snn"].items():
        agree = f"{evaluation['agreement'][backend]:.4f}"
        lines.append(row(f"SNN {backend}", a, agree, timing[backend]))
    lat = evaluation["latency"]
    lines.append(
        f"latency: mean {lat['mean']:.1f}, min {lat['min']}, max {lat['max']} steps; "
        f"T_il per layer: "
        + ", ".join(
            f"{name} {t:.1f}"
            for name, t in zip(evaluation["layer_names"], evaluation["t_il_mean"], strict=True)
        )
    )
    spikes = f"spikes per sample: {evaluation['spikes_per_sample']:.0f}"
    if "spikes_per_neuron" in evaluation:
        spikes += (
            f" ({evaluation['spikes_per_neuron']:.3f} per neuron); synaptic events per "
            f"sample: {evaluation['synaptic_events_per_image']:.0f} "
            f"({evaluation['events_per_mac']:.3f} per DNN MAC, "
            f"{evaluation['dnn_macs_per_image']:.0f} MACs)"
        )
    lines.append(spikes)
    ops = evaluation["ops"]
    dnn = ops["dnn"]
    lines.append(
        f"ops per sample: DNN mul {dnn['mul'] / 1e3:.0f}k add {dnn['add'] / 1e3:.0f}k; SNN ("
        + "; ".join(
            f"{c}: mul {v['mul'] / 1e3:.0f}k add {v['add'] / 1e3:.0f}k, DNN/SNN total "
            f"{ops['ratios'][c]['total_ratio']:.2f}x"
            for c, v in ops["snn"].items()
        )
        + ")"
    )
    if any(evaluation["clipped"]):
        lines.append(f"clipped spikes (static T_il): {evaluation['clipped']}")
    graph = graph_line(evaluation)
    if graph:
        lines.append(graph)
    return "\n".join(lines)
