"""Plots of sweeps over the leak constant L and of one input's spikes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never
through ``pyplot``: no display is needed, the global backend is left alone and no
figure stays registered anywhere (each one is dropped after saving).  Files are
written atomically (see :func:`tdsnn.report.atomic_write`).

* :func:`plot_sweep_accuracy` -- accuracy vs L (Figure 4 style);
* :func:`plot_sweep_ops` -- DNN/SNN operation and energy ratios vs L (Figure 5 style);
* :func:`plot_spike_raster` -- one input's spikes in global time, all layers stacked;
* :func:`plot_spike_histograms` -- per layer, the histogram of local spike times;
* :func:`inspect_sample` -- both of the last two.

Time: spike times in :class:`~tdsnn.snn.result.SNNResult` are local to each layer's
period.  The input fires in the first period (the inhibitory period of the first
synapse layer); a hidden synapse layer fires in its active period, which is the next
synapse layer's inhibitory period; a max-pool fires with the layer before it.  So the
offset of a spiking layer is the sum of ``T_il`` of the synapse layers up to it
(:func:`global_spike_times`).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor

from .paper import paper_reference
from .report import (
    CONVENTION_LABELS,
    accuracies,
    agreements,
    atomic_write,
    ops_summary,
    snn_backends,
)
from .snn.result import SNNResult

__all__ = [
    "DPI",
    "MAX_RASTER_NEURONS",
    "global_spike_times",
    "silent_counts",
    "inspect_sample",
    "is_maxpool_name",
    "layer_offsets",
    "plot_spike_histograms",
    "plot_spike_raster",
    "plot_sweep_accuracy",
    "plot_sweep_ops",
]

DPI = 120
MAX_RASTER_NEURONS = 2000


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=DPI))
    finally:
        fig.clear()
    return path


# ----------------------------------------------------------------------------- sweeps


def _sorted_sweep(sweep: Sequence[dict]) -> list[dict]:
    if not sweep:
        raise ValueError("the sweep is empty")
    return sorted(sweep, key=lambda e: float(e.get("L", 0.0)))


def _model_name(sweep: Sequence[dict]) -> tuple[str, str]:
    first = sweep[0]
    return str(first.get("model", "?")), str(first.get("dataset", "?"))


def _series(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot_sweep_accuracy(sweep: Sequence[dict], path: str | os.PathLike) -> Path:
    """Accuracy vs L (Figure 4 style), one evaluation per L.

    The DNN (which does not depend on L) is a horizontal line; the G-DNN and every SNN
    backend are drawn vs L, top-1 solid and top-5 dashed (top-5 only when it is not
    saturated, i.e. some value is below 99.5 %).  The paper's Figure 4 points, where it
    has them for this model, are drawn as stars.
    """
    ordered = _sorted_sweep(sweep)
    model, dataset = _model_name(ordered)
    Ls = np.array([float(e.get("L", np.nan)) for e in ordered])
    accs = [accuracies(e) for e in ordered]
    keys: list[str] = []
    for e in ordered:
        for key in ("gdnn", *snn_backends(e)):
            if key not in keys and any(key in a for a in accs):
                keys.append(key)
    top5_values = [a[k]["top5"] for a in accs for k in a if a[k]["top5"] is not None]
    show_top5 = bool(top5_values) and min(top5_values) < 99.5
    ref = paper_reference(model, dataset)

    fig = _figure(10, 5.5)
    ax = fig.add_subplot()
    styles = {
        "gdnn": dict(color="tab:blue", marker="o", ms=6, label="G-DNN"),
        "closed_form": dict(color="tab:orange", marker="s", ms=5, mfc="none", label="SNN (closed form)"),
        "clocked": dict(color="tab:green", marker="x", ms=7, label="SNN (clocked)"),
    }
    tops = ("top1", "top5") if show_top5 else ("top1",)
    for top in tops:
        dnn_vals = [a.get("dnn", {}).get(top) for a in accs]
        dnn_vals = [v for v in dnn_vals if v is not None]
        if dnn_vals:
            ax.axhline(float(np.mean(dnn_vals)), color="0.35", lw=1.3,
                       ls="-" if top == "top1" else "--", label=f"DNN {top.replace('top', 'top-')}")
        for i, key in enumerate(keys):
            style = dict(styles.get(key, dict(marker="^", label=f"SNN ({key})")))
            label = style.pop("label") + f" {top.replace('top', 'top-')}"
            y = _series([a.get(key, {}).get(top) for a in accs])
            if np.all(np.isnan(y)):
                continue
            ax.plot(Ls, y, ls="-" if top == "top1" else "--", lw=1.6 - 0.3 * i,
                    label=label, **style)
    if ref and ref.figure4:
        for top in tops:
            pts = [(p.L, getattr(p, top)) for p in ref.figure4 if getattr(p, top) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), ls="none", marker="*", ms=13, color="tab:red",
                        mec="black", mew=0.6, alpha=0.85 if top == "top1" else 0.5,
                        label=f"paper SNN {top.replace('top', 'top-')} ({ref.figure4[0].source.split(' (')[0]})")
        dnn_paper = ref.table1.dnn_error
        for top, err in zip(("top1", "top5"), dnn_paper, strict=True):
            if err is not None and top in tops:
                ax.axhline(100 - err, color="tab:red", lw=1.4, ls=":", alpha=0.9, zorder=3,
                           label=f"paper DNN {top.replace('top', 'top-')} (Table 1)")
    ax.set_xlabel("leak constant L")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks(Ls)
    ax.set_xticklabels([f"{v:g}" for v in Ls])
    ax.grid(alpha=0.3)
    ax.set_title(f"Accuracy vs leak constant L: {model} on {dataset} (Figure 4 style)")
    _agreement_note(ax, ordered)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def _agreement_note(ax, ordered: Sequence[dict]) -> None:
    worst = [min(agreements(e).values()) for e in ordered if agreements(e)]
    if worst:
        ax.text(0.99, 0.02, f"SNN/G-DNN agreement >= {min(worst):.2f} % at every L",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.3")


def plot_sweep_ops(sweep: Sequence[dict], path: str | os.PathLike,
                   convention: str = "presentation") -> Path:
    """DNN/SNN ratios of multiplications, additions, total operations and energy vs L.

    Figure 5 style, under one operation-count ``convention``; a ratio above 1 means the
    SNN needs fewer.  The paper's points (Figure 5 total ratio for AlexNet; Table 2 at
    L = 5) are drawn as stars for the paper's ``presentation`` convention.
    """
    ordered = _sorted_sweep(sweep)
    model, dataset = _model_name(ordered)
    Ls = np.array([float(e.get("L", np.nan)) for e in ordered])
    summaries = [ops_summary(e, convention) or {} for e in ordered]
    fig = _figure(10, 5.5)
    ax = fig.add_subplot()
    series = [
        ("mul_ratio", "multiplications", "tab:blue", "o"),
        ("add_ratio", "additions", "tab:orange", "s"),
        ("total_ratio", "total operations", "tab:green", "D"),
        ("energy_ratio", "energy (4.6 pJ/MAC, 0.9 pJ/AC)", "tab:purple", "^"),
    ]
    plotted = []
    for key, label, color, marker in series:
        y = _series([s.get(key) for s in summaries])
        y[~np.isfinite(y)] = np.nan
        if np.all(np.isnan(y)):
            continue
        ax.plot(Ls, y, color=color, marker=marker, lw=1.6, label=f"DNN/SNN {label}")
        plotted.append(y)
    ax.axhline(1.0, color="0.3", lw=1, ls="--", label="break-even (ratio 1)")
    ref = paper_reference(model, dataset)
    if ref and convention == "presentation":
        if ref.figure5:
            ax.plot([p.L for p in ref.figure5], [p.total_ratio for p in ref.figure5], ls="none",
                    marker="*", ms=13, color="tab:green", mec="black", mew=0.6,
                    label="paper total (Figure 5: 1/(1 - reduction))")
        t2 = ref.table2
        for value, color, what in ((t2.mul_ratio, "tab:blue", "mul"), (t2.add_ratio, "tab:orange", "add"),
                                   (t2.total_ratio, "tab:green", "total")):
            ax.plot([t2.L], [value], ls="none", marker="P", ms=10, color=color, mec="black", mew=0.6,
                    label=f"paper {what} (Table 2, L = {t2.L:g})")
    values = np.concatenate(plotted) if plotted else np.array([1.0])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / max(values.min(), 1e-12) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("leak constant L")
    ax.set_ylabel("DNN / SNN (per input)")
    ax.set_xticks(Ls)
    ax.set_xticklabels([f"{v:g}" for v in Ls])
    ax.grid(alpha=0.3, which="both")
    ax.set_title(f"DNN/SNN operations vs L: {model} on {dataset}\n"
                 f"(Figure 5 style, {CONVENTION_LABELS.get(convention, convention)} convention)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


# ----------------------------------------------------------------------------- spikes


def is_maxpool_name(name: str) -> bool:
    """Max-pool layers are named ``pool<n>`` by :func:`tdsnn.prepare` (avg-pools ``avgpool<n>``)."""
    return str(name).startswith("pool")


def _check_index(result: SNNResult, index: int) -> int:
    batch = int(result.t_il.shape[0])
    if not -batch <= index < batch:
        raise IndexError(f"sample index {index} is out of range for a batch of {batch}")
    return index % batch


def layer_offsets(result: SNNResult, index: int) -> list[int]:
    """Global time at which each spiking layer's local time 0 falls, for one input.

    The input's offset is 0; a hidden synapse layer ``j`` (0-based among the synapse
    layers) fires after the inhibitory periods of synapse layers ``0..j``; a max-pool
    shares the offset of the layer before it.
    """
    index = _check_index(result, index)
    t_il = [int(t) for t in result.t_il[index].tolist()]
    names = list(result.layer_names)
    hidden = [n for n in names[1:] if not is_maxpool_name(n)]
    if len(hidden) != len(t_il) - 1:
        raise ValueError(
            f"cannot place layers {names} in time: {len(hidden)} non-max-pool spiking layers "
            f"for {len(t_il)} synapse layers (max-pools must be named 'pool*')"
        )
    offsets, synapses = [], 0
    for k, name in enumerate(names):
        if k > 0 and not is_maxpool_name(name):
            synapses += 1
        offsets.append(sum(t_il[:synapses]))
    return offsets


def global_spike_times(result: SNNResult, index: int) -> list[Tensor]:
    """One input's spike times in global time, one int64 tensor per spiking layer.

    Each tensor has the layer's shape without the batch dimension; global time is the
    local time plus :func:`layer_offsets`.  A silent neuron (sparse coding: spike time
    ``-1``) stays ``-1``: it has no time, global or local.
    """
    offsets = layer_offsets(result, index)
    index = _check_index(result, index)
    out = []
    for t, off in zip(result.spike_times, offsets, strict=True):
        local = t[index].to(torch.int64)
        out.append(torch.where(local < 0, torch.full_like(local, -1), local + off))
    return out


def silent_counts(result: SNNResult, index: int) -> list[tuple[int, int]]:
    """Per spiking layer, ``(silent, total)`` neurons of one input (silent: spike time < 0)."""
    index = _check_index(result, index)
    return [(int((t[index] < 0).sum()), int(t[index].numel())) for t in result.spike_times]


def _boundaries(result: SNNResult, index: int) -> list[int]:
    t_il = [int(t) for t in result.t_il[index].tolist()]
    return [sum(t_il[: i + 1]) for i in range(len(t_il))]


def _subsample(n: int, limit: int = MAX_RASTER_NEURONS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def plot_spike_raster(result: SNNResult, index: int, path: str | os.PathLike) -> Path:
    """Raster of one input's spikes in all spiking layers, in global time.

    Layers are stacked bottom (input) to top, separated by lines and labelled; a layer
    with more than :data:`MAX_RASTER_NEURONS` neurons is subsampled evenly (said in the
    title).  Neurons that fire at local time 0 (value 0: the input's black pixels, the
    silent ReLUs) are drawn in grey.  Vertical lines mark the ends of the inhibitory
    periods (cumulative ``T_il``); the last one is the latency, the read-out.  Silent
    neurons (sparse coding, spike time ``-1``) emit nothing and are not drawn; each
    layer's label and the title say how many there are ("silent: N of M").
    """
    index = _check_index(result, index)
    times = global_spike_times(result, index)
    offsets = layer_offsets(result, index)
    names = list(result.layer_names)
    bounds = _boundaries(result, index)
    latency = int(result.latency[index])
    silent = silent_counts(result, index)

    fig = _figure(10, 7)
    ax = fig.add_subplot()
    base = 0.0
    ticks, labels, sampled = [], [], []
    min_band = 0.04 * sum(len(_subsample(int(t.numel()))) for t in times)
    for k, (t, name) in enumerate(zip(times, names, strict=True)):
        flat = t.flatten().numpy()
        keep = _subsample(flat.size)
        if keep.size < flat.size:
            sampled.append(f"{name} {keep.size:,}/{flat.size:,}")
        band = max(float(keep.size), min_band)
        y = base + (np.arange(keep.size) + 0.5) * band / keep.size
        x = flat[keep].astype(float)
        fired = x >= 0  # silent neurons (-1) have no spike to draw
        y, x = y[fired], x[fired]
        zero = x == offsets[k]
        # one short horizontal dash per spike, 0.6 steps wide: dense layers become bars
        lw = 0.6 if keep.size > 200 else 1.2
        ax.hlines(y[zero], x[zero] - 0.3, x[zero] + 0.3, color="0.72", lw=lw, rasterized=True)
        ax.hlines(y[~zero], x[~zero] - 0.3, x[~zero] + 0.3, color=f"C{k % 10}", lw=lw, rasterized=True)
        ticks.append(base + band / 2)
        labels.append(f"{name}\n{flat.size:,} neurons"
                      + (f"\nsilent: {silent[k][0]:,} of {silent[k][1]:,}" if silent[k][0] else ""))
        base += band
        if k < len(times) - 1:
            ax.axhline(base, color="0.15", lw=0.9)
    start = 0
    for i, b in enumerate(bounds):
        ax.axvline(b, color="tab:red", lw=1.0, ls="--", alpha=0.85, zorder=3)
        ax.text((start + b) / 2, 1.005, f"$T_{{il}}^{{{i + 1}}}$ = {b - start}",
                transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8,
                color="tab:red", clip_on=False)
        start = b
    ax.set_ylim(0, base)
    ax.set_xlim(-0.6, max(latency, 1) + 0.6)
    if latency <= 40:
        ax.set_xticks(range(latency + 1))
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("global time step")
    ax.set_ylabel("neuron index within layer (layers stacked, input at the bottom)")
    handles = [
        Line2D([], [], color="0.65", lw=3, label="fires at local time 0 (value 0)"),
        Line2D([], [], color="C1", lw=3, label="spike (one colour per layer)"),
        Line2D([], [], color="tab:red", ls="--", label="end of an inhibitory period (cumulative $T_{il}$)"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08),
              ncol=3, frameon=False)
    title = (f"Spikes of sample {index} in global time ({result.backend} backend): "
             f"latency {latency} steps, read-out at t = {latency}")
    n_silent, n_total = sum(a for a, _ in silent), sum(b for _, b in silent)
    if n_silent:
        title += f"; silent (not drawn): {n_silent:,} of {n_total:,} neurons"
    if sampled:
        note = "evenly subsampled (neurons shown/total): " + ", ".join(sampled)
        title += "\n" + "\n".join(textwrap.wrap(note, 120))
    ax.set_title(title, fontsize=10, pad=16)
    return _save(fig, path)


def plot_spike_histograms(result: SNNResult, index: int, path: str | os.PathLike) -> Path:
    """One panel per spiking layer: histogram of one input's local spike times.

    Integer bins; the red line is the ``T_il`` that bounds the layer's spikes (the
    inhibitory period of the next synapse layer, i.e. the layer's own active period).
    Silent neurons (sparse coding, spike time ``-1``) are not counted in any bin; each
    panel's title says "silent: N of M".
    """
    index = _check_index(result, index)
    names = list(result.layer_names)
    offsets = layer_offsets(result, index)
    t_il = [int(t) for t in result.t_il[index].tolist()]
    # the T_il that bounds layer k's spikes: that of the synapse layer consuming them
    bound_index = [sum(1 for n in names[1 : k + 1] if not is_maxpool_name(n)) for k in range(len(names))]
    consumers = [n for n in names[1:] if not is_maxpool_name(n)] + ["output"]
    n = len(names)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(4 * ncols, 3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, (t, name) in enumerate(zip(result.spike_times, names, strict=True)):
        ax = axes[k // ncols][k % ncols]
        every = t[index].flatten().to(torch.int64).numpy()
        local = every[every >= 0]  # silent neurons (-1) have no spike time
        bound = t_il[bound_index[k]]
        top = max(int(local.max()) if local.size else 0, bound)
        counts = np.bincount(local, minlength=top + 1)
        steps = np.arange(counts.size)
        ax.bar(steps, counts, width=0.85, color=f"C{k % 10}", label="spikes")
        if counts[0]:
            ax.bar([0], [counts[0]], width=0.85, color="0.7", label="at t = 0 (value 0)")
        ax.axvline(bound, color="tab:red", ls="--", lw=1.2, label=f"$T_{{il}}$ of {consumers[bound_index[k]]} = {bound}")
        ax.set_xlim(-0.7, top + 0.7)
        if top <= 20:
            ax.set_xticks(steps)
        ax.set_title(f"{name}: {every.size:,} neurons, silent: {every.size - local.size:,} of "
                     f"{every.size:,} (global offset {offsets[k]})", fontsize=9)
        ax.set_xlabel("local spike time (step)")
        ax.set_ylabel("neurons")
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
        ax.grid(axis="y", alpha=0.3)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(f"Local spike times of sample {index} ({result.backend}), "
                 f"latency {int(result.latency[index])} steps", fontsize=11)
    return _save(fig, path)


def inspect_sample(result: SNNResult, index: int, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``raster_<index>.png`` and ``histograms_<index>.png`` of one input to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_spike_raster(result, index, out_dir / f"raster_{index}.png"),
        plot_spike_histograms(result, index, out_dir / f"histograms_{index}.png"),
    ]
