"""One input's spikes drawn: every population's spikes in global time, with the shortcut
connections of a graph SNN (:func:`.layout.raster_layout` gives the data), and per
layer the histogram of local spike times."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..snn.result import SNNResult
from .figure import new_figure, save_figure
from .layout import (
    MAX_RASTER_NEURONS,
    check_index,
    coding_of,
    frame_periods,
    graph_of,
    is_maxpool_name,
    layer_offsets,
    raster_layout,
)


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
    index = check_index(result, index)
    bands, latency = layout["bands"], layout["latency"]
    n = len(bands)
    fig = new_figure(10, 7) if n <= 8 else new_figure(12, min(3.0 + 0.42 * n, 24.0))
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
    return save_figure(raster_figure(result, index, snn), path)


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
    index = check_index(result, index)
    names = list(result.layer_names)
    offsets = layer_offsets(result, index)
    graph = graph_of(result, snn)
    coding = coding_of(result, snn)
    bounds = _bounds(result, index, graph, offsets, frame_periods(result, index, graph, offsets))
    n = len(names)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4 * ncols, 3 * nrows)
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
    return save_figure(fig, path, top=0.2)


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
