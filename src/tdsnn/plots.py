"""Plots of sweeps over the leak constant L and of one input's spikes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never
through ``pyplot``: no display is needed, the global backend is left alone and no
figure stays registered anywhere (each one is dropped after saving).  Files are
written atomically (see :func:`tdsnn.report.atomic_write`).

* :func:`plot_sweep_accuracy` -- accuracy vs L (Figure 4 style);
* :func:`plot_sweep_ops` -- DNN/SNN operation and energy ratios vs L (Figure 5 style);
* :func:`plot_spike_raster` -- one input's spikes in global time, all populations stacked,
  with the shortcut connections of a graph SNN (:func:`raster_layout` gives its data);
* :func:`plot_spike_histograms` -- per layer, the histogram of local spike times;
* :func:`inspect_sample` -- both of the last two.

Time: spike times in :class:`~tdsnn.snn.result.SNNResult` are local to each
population's frame; ``result.extras["release"]`` gives, per population and sample, the
global step at which the frame starts, so a spike's global time is release + local
time (:func:`global_spike_times`).  In a chain that is the sum of ``T_il`` of the
synapse layers up to the population (a result without releases is placed that way);
in a graph (a residual network) it follows the graph: a group starts when the latest of
its sources is released, the others reaching it through delays.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor

from .files import atomic_write
from .paper import PaperReference
from .snn.result import SNNResult
from .summary import (
    CONVENTION_LABELS,
    accuracies,
    agreements,
    ops_summary,
    paper_comparison,
    snn_backends,
)

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
    "raster_figure",
    "raster_layout",
]

DPI = 120
MAX_RASTER_NEURONS = 2000


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike, top: float = 0.0) -> Path:
    """Lay out and write ``fig``; ``top``: inches kept free above the axes (a suptitle)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, 1 - top / height) if top else None)
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


def _sweep_reference(sweep: Sequence[dict]) -> PaperReference | None:
    """The paper's figures when they apply to every evaluation of the sweep
    (:func:`tdsnn.report.paper_comparison`: the paper's networks, in its coding)."""
    refs = [paper_comparison(e)[0] for e in sweep]
    return refs[0] if refs and all(r is not None for r in refs) else None


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
    ref = _sweep_reference(ordered)

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
    ref = _sweep_reference(ordered)
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


def _chain_offsets(result: SNNResult, index: int) -> list[int]:
    """A chain's offsets from its periods: cumulative ``T_il`` (results without releases)."""
    t_il = [int(t) for t in result.t_il[index].tolist()]
    names = list(result.layer_names)
    hidden = [n for n in names[1:] if not is_maxpool_name(n)]
    if len(hidden) != len(t_il) - 1:
        raise ValueError(
            f"cannot place layers {names} in time: {len(hidden)} non-max-pool spiking layers "
            f"for {len(t_il)} synapse layers (max-pools must be named 'pool*'), and the "
            "result has no extras['release']"
        )
    offsets, synapses = [], 0
    for k, name in enumerate(names):
        if k > 0 and not is_maxpool_name(name):
            synapses += 1
        offsets.append(sum(t_il[:synapses]))
    return offsets


def layer_offsets(result: SNNResult, index: int) -> list[int]:
    """Global time at which each population's local time 0 falls, for one input.

    This is the population's release, ``result.extras["release"]`` (graphs and chains
    alike).  A result without releases is placed as a chain: the input's offset is 0, a
    hidden synapse layer ``j`` (0-based among the synapse layers) fires after the
    inhibitory periods of synapse layers ``0..j``, a max-pool shares the offset of the
    layer before it.
    """
    index = _check_index(result, index)
    releases = result.extras.get("release")
    if releases is None:
        return _chain_offsets(result, index)
    if len(releases) != len(result.spike_times):
        raise ValueError(
            f"extras['release'] has {len(releases)} entries for {len(result.spike_times)} populations"
        )
    return [int(r[index]) for r in releases]


def global_spike_times(result: SNNResult, index: int) -> list[Tensor]:
    """One input's spike times in global time, one int64 tensor per population.

    Each tensor has the population's shape without the batch dimension; global time is the
    local time plus :func:`layer_offsets` (the population's release).  A silent neuron
    (sparse coding: spike time ``-1``) stays ``-1``: it has no time, global or local.
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


def _subsample(n: int, limit: int = MAX_RASTER_NEURONS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _graph_of(result: SNNResult, snn: Any) -> dict | None:
    """The SNN's graph (:func:`tdsnn.evaluation.describe_graph`): from ``snn`` when given,
    else ``result.extras["graph"]`` (``tdsnn inspect`` sets it), else None (a chain is
    assumed)."""
    if snn is not None:
        from .evaluation import describe_graph

        return describe_graph(snn)
    graph = result.extras.get("graph")
    return graph if isinstance(graph, dict) else None


def _coding_of(result: SNNResult, snn: Any) -> str:
    """``snn.coding``, else ``result.extras["coding"]``; else "sparse" if a neuron is silent."""
    coding = getattr(snn, "coding", None) or result.extras.get("coding")
    if coding in ("paper", "sparse"):
        return str(coding)
    return "sparse" if any(bool((t < 0).any()) for t in result.spike_times) else "paper"


def _periods(result: SNNResult, index: int, graph: dict | None, offsets: list[int]) -> list[dict]:
    """The inhibitory period of every neuron group, ``{"group", "name", "t_il", "end"}``:
    it ends at the release of the group's population (the read-out, for the output)."""
    t_il = [int(t) for t in result.t_il[index].tolist()]
    names = list(result.layer_names)
    latency = int(result.latency[index])
    if graph is not None:
        pops = graph.get("populations") or []
        groups = [p["name"] for p in pops[1:] if not any(k == "pool" for _, k in p.get("reads") or [])]
    else:
        groups = [n for n in names[1:] if not is_maxpool_name(n)] + ["output"]
        if len(groups) != len(t_il) and "release" in result.extras:
            # no graph and unusual names: a group is what starts a new frame (a simplified
            # max-pool shares its producer's; a leaky one makes the count differ)
            groups = [n for k, n in enumerate(names) if k and offsets[k] != offsets[k - 1]]
            groups.append("output")
    if len(groups) != len(t_il):
        return []
    where = dict(zip(names, offsets, strict=True))
    out = []
    for g, (name, t) in enumerate(zip(groups, t_il, strict=True)):
        last = g == len(groups) - 1
        end = latency if last or name not in where else where[name]
        out.append({"group": g + 1, "name": name, "t_il": t, "end": end})
    return out


def _delay_of(result: SNNResult, index: int, shortcut: dict, start: int | None,
              release: int) -> int | None:
    """The delay of one shortcut for sample ``index``: ``extras["delays"]`` when present,
    else the receiving group's start minus the source's release."""
    delays = (result.extras.get("delays") or {}).get(shortcut.get("into"))
    branch = int(shortcut.get("branch", 1))
    if delays is not None and delays.dim() == 2 and branch < delays.shape[1]:
        return int(delays[index, branch])
    return None if start is None else start - release


def raster_layout(result: SNNResult, index: int, snn: Any = None) -> dict:
    """What :func:`plot_spike_raster` draws for sample ``index``, as data.

    Returns ``{"latency", "coding", "graph", "bands", "periods", "shortcuts", "height"}``:
    ``bands`` one dict per population (the input first, stacked bottom to top) with
    ``name``, ``release`` (its frame's start, global steps), ``y0``/``y1`` (the band),
    ``neurons``, ``shown`` (after subsampling), ``silent``, ``x``/``y`` (every drawn spike:
    ``x`` = release + local spike time), ``zero`` (which of them fire at local time 0:
    value 0 in paper coding), ``feeds`` (the populations it reaches through a shortcut)
    and ``receives``; ``periods`` from :func:`_periods`; ``shortcuts`` one dict per
    shortcut source with ``from``, ``into``, ``kind``, ``delay`` (steps) and the arrow's
    ends ``x0, y0, x1, y1``: from the source's release at its band's top to the start of
    the receiving group's inhibitory period (release + delay) in the receiver's band.
    ``snn`` (optional) gives the graph and the coding; without it they come from
    ``result.extras`` (``"graph"``, ``"coding"``) or a chain is assumed.
    """
    index = _check_index(result, index)
    graph = _graph_of(result, snn)
    coding = _coding_of(result, snn)
    times = global_spike_times(result, index)
    offsets = layer_offsets(result, index)
    names = list(result.layer_names)
    silent = silent_counts(result, index)
    latency = int(result.latency[index])
    shortcuts = [] if graph is None or graph.get("is_chain") else list(graph.get("shortcuts") or [])
    feeds: dict[str, list[str]] = {n: [] for n in names}
    receives: dict[str, list[str]] = {n: [] for n in names}
    for c in shortcuts:
        for src in c.get("from") or []:
            feeds.setdefault(src, []).append(str(c.get("into")))
            receives.setdefault(str(c.get("into")), []).append(src)

    bands = []
    base = 0.0
    min_band = 0.04 * sum(len(_subsample(int(t.numel()))) for t in times)
    for k, (t, name) in enumerate(zip(times, names, strict=True)):
        flat = t.flatten().numpy()
        keep = _subsample(flat.size)
        band = max(float(keep.size), min_band)
        y = base + (np.arange(keep.size) + 0.5) * band / keep.size
        x = flat[keep].astype(float)
        fired = x >= 0  # silent neurons (-1) have no spike to draw
        y, x = y[fired], x[fired]
        zero = x == offsets[k] if coding == "paper" else np.zeros(x.shape, dtype=bool)
        bands.append({
            "name": name, "release": offsets[k], "y0": base, "y1": base + band,
            "neurons": int(flat.size), "shown": int(keep.size), "silent": silent[k][0],
            "x": x, "y": y, "zero": zero, "feeds": feeds.get(name, []),
            "receives": receives.get(name, []),
        })  # fmt: skip
        base += band

    periods = _periods(result, index, graph, offsets)
    start_of = {p["name"]: p["end"] - p["t_il"] for p in periods}
    band_of = {b["name"]: b for b in bands}
    arrows = []
    for c in shortcuts:
        into = str(c.get("into"))
        for src in c.get("from") or []:
            if src not in band_of:
                continue
            source = band_of[src]
            delay = _delay_of(result, index, c, start_of.get(into), source["release"])
            target = band_of.get(into)  # None: the output group, above the raster
            y1 = base if target is None else (target["y0"] + target["y1"]) / 2
            x1 = source["release"] + (delay if delay is not None else 0)
            arrows.append({
                "from": src, "into": into, "kind": c.get("kind", "?"), "delay": delay,
                "x0": float(source["release"]), "y0": float(source["y1"]), "x1": float(x1),
                "y1": float(y1),
            })  # fmt: skip
    return {"latency": latency, "coding": coding, "graph": graph, "bands": bands,
            "periods": periods, "shortcuts": arrows, "height": base}  # fmt: skip


def _band_label(band: dict) -> str:
    name = band["name"] + (" \u25b2" if band["feeds"] else "")
    text = f"{name}\n{band['neurons']:,} neurons"
    if band["silent"]:
        text += f", {band['silent']:,} silent"
    return text


def _period_labels(fig: Figure, ax, periods: list[dict]) -> float:
    """Write ``T_il`` above every period that has room: horizontal when they all fit, else
    rotated, dropping any that would overlap one already written.  Returns their height
    in points (for the title's pad)."""
    if not periods:
        return 0.0
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    trans = ax.get_xaxis_transform()
    ordered = sorted(periods, key=lambda p: p["end"] - p["t_il"] / 2)

    def place(rotation: int) -> tuple[list, int]:
        written, boxes, dropped = [], [], 0
        for p in ordered:
            text = ax.text(p["end"] - p["t_il"] / 2, 1.006, f"$T_{{il}}^{{{p['group']}}}$ = {p['t_il']}",
                           transform=trans, ha="center", va="bottom", rotation=rotation,
                           fontsize=8 if rotation == 0 else 7, color="tab:red", clip_on=False,
                           gid=f"t_il:{p['group']}")  # fmt: skip
            box = text.get_window_extent(renderer)
            if any(box.x0 < b.x1 + 3 and b.x0 < box.x1 + 3 for b in boxes):
                text.remove()
                dropped += 1
                continue
            written.append(text)
            boxes.append(box)
        return written, dropped

    written, dropped = place(0)
    if dropped:
        for text in written:
            text.remove()
        written, dropped = place(90)
    heights = [t.get_window_extent(renderer).height for t in written]
    return max(heights, default=0.0) * 72.0 / fig.dpi


def raster_figure(result: SNNResult, index: int, snn: Any = None) -> Figure:
    """The figure of :func:`plot_spike_raster`, not saved (for tests and notebooks).

    Artists carry ``gid``s: ``"spikes:<population>"`` and ``"zero:<population>"`` (the
    spike dashes), ``"shortcut:<source>-><receiver>"`` (the arrows), ``"t_il:<group>"``.
    """
    layout = raster_layout(result, index, snn)
    index = _check_index(result, index)
    bands, latency = layout["bands"], layout["latency"]
    n = len(bands)
    fig = _figure(10, 7) if n <= 8 else _figure(12, min(3.0 + 0.42 * n, 24.0))
    ax = fig.add_subplot()
    ticks, labels = [], []
    for k, band in enumerate(bands):
        x, y, zero = band["x"], band["y"], band["zero"]
        # one short horizontal dash per spike, 0.6 steps wide: dense layers become bars
        lw = 0.6 if band["shown"] > 200 else 1.2
        ax.hlines(y[zero], x[zero] - 0.3, x[zero] + 0.3, color="0.72", lw=lw, rasterized=True,
                  gid=f"zero:{band['name']}")
        ax.hlines(y[~zero], x[~zero] - 0.3, x[~zero] + 0.3, color=f"C{k % 10}", lw=lw,
                  rasterized=True, gid=f"spikes:{band['name']}")
        ticks.append((band["y0"] + band["y1"]) / 2)
        labels.append(_band_label(band))
        if k < n - 1:
            ax.axhline(band["y1"], color="0.15", lw=0.9)
    for p in layout["periods"]:
        ax.axvline(p["end"], color="tab:red", lw=1.0, ls="--", alpha=0.85, zorder=3)
    for arrow in layout["shortcuts"]:
        ax.annotate(
            "", xy=(arrow["x1"], arrow["y1"]), xytext=(arrow["x0"], arrow["y0"]),
            arrowprops=dict(arrowstyle="-|>", color="0.1", lw=1.0, shrinkA=0, shrinkB=0,
                            mutation_scale=9, ls="-" if arrow["kind"] == "identity" else "--"),
            zorder=4, gid=f"shortcut:{arrow['from']}->{arrow['into']}",
        )  # fmt: skip
        if arrow["delay"] is not None:
            ax.text((arrow["x0"] + arrow["x1"]) / 2, (arrow["y0"] + arrow["y1"]) / 2,
                    f"d={arrow['delay']}", fontsize=7, ha="right", va="center", color="0.1",
                    zorder=5, gid=f"delay:{arrow['from']}->{arrow['into']}",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))  # fmt: skip
    ax.set_ylim(0, layout["height"])
    ax.set_xlim(-0.6, max(latency, 1) + 0.6)
    if latency <= 40:
        ax.set_xticks(range(latency + 1))
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=8 if n <= 12 else 7)
    ax.set_xlabel("global time step (a population's spikes: its release + local spike time)")
    ax.set_ylabel("neuron index within layer (layers stacked, input at the bottom)")

    handles = []
    if layout["coding"] == "paper":
        handles.append(Line2D([], [], color="0.65", lw=3, label="fires at local time 0 (value 0)"))
    handles.append(Line2D([], [], color="C1", lw=3, label="spike (one colour per layer)"))
    handles.append(Line2D([], [], color="tab:red", ls="--",
                          label="end of an inhibitory period ($T_{il}$ of a neuron group)"))
    if layout["coding"] == "sparse":
        handles.append(Line2D([], [], ls="none", label="silent neurons (value 0) are not drawn"))
    if layout["shortcuts"]:
        kinds = {a["kind"] for a in layout["shortcuts"]}
        for kind in ("identity", "projection"):
            if kind in kinds:
                handles.append(Line2D(
                    [], [], color="0.1", lw=1.0, ls="-" if kind == "identity" else "--", marker=">",
                    markersize=4, label=f"{kind} shortcut: source release \u2192 receiving group's "
                                        "start, d = delay (steps)"))  # fmt: skip
        handles.append(Line2D([], [], ls="none", label="\u25b2 after a name: the population feeds a shortcut"))
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.085 if n <= 8 else -0.055),
              ncol=3 if len(handles) <= 3 else 2, frameon=False)

    title = (f"Spikes of sample {index} in global time ({result.backend} backend): "
             f"latency {latency} steps, read-out at t = {latency}")
    notes = []
    if layout["shortcuts"]:
        n_short = len({(a["from"], a["into"]) for a in layout["shortcuts"]})
        notes.append(f"graph SNN, {n_short} shortcut connection{'s' if n_short != 1 else ''}")
    n_silent = sum(b["silent"] for b in bands)
    if n_silent:
        n_total = sum(b["neurons"] for b in bands)
        notes.append(f"silent (not drawn): {n_silent:,} of {n_total:,} neurons")
    sampled = sum(1 for b in bands if b["shown"] < b["neurons"])
    if sampled:
        notes.append(f"at most {MAX_RASTER_NEURONS:,} neurons per layer shown, evenly subsampled "
                     f"({sampled} of {n} layers)")
    if notes:
        title += "\n" + "\n".join(textwrap.wrap("; ".join(notes), 100 if n <= 8 else 120))
    ax.set_title(title, fontsize=10)
    height = _period_labels(fig, ax, layout["periods"])
    ax.set_title(title, fontsize=10, pad=6 + height)
    return fig


def plot_spike_raster(result: SNNResult, index: int, path: str | os.PathLike, snn: Any = None) -> Path:
    """Raster of one input's spikes in all populations, in global time.

    Every population is placed at its release (``result.extras["release"]``; a result
    without releases as a chain, at the cumulative ``T_il``), so a spike is drawn at
    release + local time.  Populations are stacked bottom (input) to top, separated by
    lines and labelled; one with more than :data:`MAX_RASTER_NEURONS` neurons is
    subsampled evenly (said in the title).  In the paper's coding, neurons that fire at
    local time 0 (value 0: the input's black pixels, the silent ReLUs) are drawn in grey;
    in sparse coding those neurons are silent (spike time ``-1``), emit nothing and are
    not drawn, and each label and the title say how many there are.  Vertical lines
    mark the ends of the neuron groups' inhibitory periods, labelled with ``T_il`` where
    there is room (rotated or thinned out when crowded); the last one is the latency,
    the read-out.  For a graph SNN (``snn``, or ``result.extras["graph"]``) every
    shortcut connection is an arrow from its source's band (at the source's release) to
    the receiving population's band (at the start of its inhibitory period), labelled
    with its delay ``d`` in steps (``result.extras["delays"]``; dashed: a projection),
    and a ``▲`` after a population's name says that it feeds a shortcut.
    """
    return _save(raster_figure(result, index, snn), path)


def _bounds(result: SNNResult, index: int, graph: dict | None, offsets: list[int],
            periods: list[dict]) -> list[tuple[int, str]]:
    """Per population, the local time by which its spikes must have arrived (the end of
    the inhibitory period of the group that reads it first) and a label saying so."""
    names = list(result.layer_names)
    latency = int(result.latency[index])
    t_il = [int(t) for t in result.t_il[index].tolist()]
    if graph is None and periods:
        # no graph: a population is read by the group whose period starts at its release
        out = []
        for off in offsets:
            starting = [p for p in periods if p["end"] - p["t_il"] == off]
            later = starting or [p for p in periods if p["end"] > off] or periods[-1:]
            p = min(later, key=lambda p: p["end"])
            bound = p["end"] - off
            label = (f"$T_{{il}}$ of {p['name']} = {bound}" if starting
                     else f"end of $T_{{il}}$ of {p['name']}: {bound}")
            out.append((bound, label))
        return out
    if graph is None or len(periods) != len(t_il):
        bound_index = [sum(1 for n in names[1 : k + 1] if not is_maxpool_name(n)) for k in range(len(names))]
        bound_index = [min(b, len(t_il) - 1) for b in bound_index]
        consumers = [n for n in names[1:] if not is_maxpool_name(n)] + ["output"]
        return [(t_il[b], f"$T_{{il}}$ of {consumers[min(b, len(consumers) - 1)]} = {t_il[b]}")
                for b in bound_index]
    pops = graph.get("populations") or []
    output = pops[-1]["name"] if pops else "output"
    readers: dict[str, list[tuple[str, str]]] = {}
    for p in pops:
        for src, kind in p.get("reads") or []:
            readers.setdefault(src, []).append((p["name"], kind))
    release = dict(zip(names, offsets, strict=True))
    period = {p["name"]: p for p in periods}

    def ends(name: str, start: int) -> list[tuple[int, str]]:
        found = []
        for reader, kind in readers.get(name, []):
            if reader in release and reader != output and kind == "pool" and release[reader] == start:
                found += ends(reader, start)  # a simplified max-pool: transparent
            else:
                found.append((latency if reader == output or reader not in release else release[reader], reader))
        return found

    out = []
    for name in names:
        end, reader = min(ends(name, release[name]) or [(latency, output)])
        bound = end - release[name]
        p = period.get(reader)
        if p is not None and p["t_il"] == bound:
            out.append((bound, f"$T_{{il}}$ of {reader} = {bound}"))
        elif p is not None:
            out.append((bound, f"delay {bound - p['t_il']} + $T_{{il}}$ of {reader} = {bound}"))
        else:
            out.append((bound, f"period of {reader}: {bound}"))
    return out


def plot_spike_histograms(result: SNNResult, index: int, path: str | os.PathLike, snn: Any = None) -> Path:
    """One panel per population: histogram of one input's local spike times.

    Integer bins; the red line is the local time by which the population's spikes must
    have arrived: the end of the inhibitory period of the group that reads it (the
    ``T_il`` of the next synapse layer in a chain; for a shortcut source read only later,
    its delay plus that group's ``T_il``).  Silent neurons (sparse coding, spike time
    ``-1``) are not counted in any bin; each panel's title says "silent: N of M".
    """
    index = _check_index(result, index)
    names = list(result.layer_names)
    offsets = layer_offsets(result, index)
    graph = _graph_of(result, snn)
    coding = _coding_of(result, snn)
    bounds = _bounds(result, index, graph, offsets, _periods(result, index, graph, offsets))
    n = len(names)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(4 * ncols, 3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, (t, name) in enumerate(zip(result.spike_times, names, strict=True)):
        ax = axes[k // ncols][k % ncols]
        every = t[index].flatten().to(torch.int64).numpy()
        local = every[every >= 0]  # silent neurons (-1) have no spike time
        bound, bound_label = bounds[k]
        top = max(int(local.max()) if local.size else 0, bound)
        counts = np.bincount(local, minlength=top + 1)
        steps = np.arange(counts.size)
        ax.bar(steps, counts, width=0.85, color=f"C{k % 10}", label="spikes")
        if counts[0] and coding == "paper":
            ax.bar([0], [counts[0]], width=0.85, color="0.7", label="at t = 0 (value 0)")
        ax.axvline(bound, color="tab:red", ls="--", lw=1.2, label=bound_label)
        ax.set_xlim(-0.7, top + 0.7)
        if top <= 20:
            ax.set_xticks(steps)
        ax.set_title(f"{name} (release at global step {offsets[k]})\n{every.size:,} neurons, "
                     f"silent: {every.size - local.size:,} of {every.size:,}", fontsize=9)
        ax.set_xlabel("local spike time (step)")
        ax.set_ylabel("neurons")
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
        ax.grid(axis="y", alpha=0.3)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(f"Local spike times of sample {index} ({result.backend}), "
                 f"latency {int(result.latency[index])} steps", fontsize=11)
    return _save(fig, path, top=0.2)


def inspect_sample(result: SNNResult, index: int, out_dir: str | os.PathLike, snn: Any = None) -> list[Path]:
    """Write ``raster_<index>.png`` and ``histograms_<index>.png`` of one input to ``out_dir``.

    ``snn`` (optional) gives the graph and the coding (else ``result.extras``, see
    :func:`raster_layout`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_spike_raster(result, index, out_dir / f"raster_{index}.png", snn),
        plot_spike_histograms(result, index, out_dir / f"histograms_{index}.png", snn),
    ]
