"""Where one input's spikes lie in global time: the data of the raster plot, no drawing.

Spike times in :class:`~tdsnn.snn.result.SNNResult` are local to each population's
frame; ``result.extras["release"]`` gives, per population and sample, the global step
at which the frame starts, so a spike's global time is release + local time
(:func:`global_spike_times`).  In a chain that is the sum of ``T_il`` of the synapse
layers up to the population (a result without releases is placed that way); in a graph
(a residual network) it follows the graph: a group starts when the latest of its
sources is released, the others reaching it through delays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..snn.result import SNNResult

MAX_RASTER_NEURONS = 2000

def is_maxpool_name(name: str) -> bool:
    """Max-pool layers are named ``pool<n>`` by :func:`tdsnn.prepare` (avg-pools ``avgpool<n>``)."""
    return str(name).startswith("pool")


def check_index(result: SNNResult, index: int) -> int:
    """``index`` as a position in the batch (negative counts from the end), or IndexError."""
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
    index = check_index(result, index)
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
    index = check_index(result, index)
    out = []
    for t, off in zip(result.spike_times, offsets, strict=True):
        local = t[index].to(torch.int64)
        out.append(torch.where(local < 0, torch.full_like(local, -1), local + off))
    return out


def silent_counts(result: SNNResult, index: int) -> list[tuple[int, int]]:
    """Per spiking layer, ``(silent, total)`` neurons of one input (silent: spike time < 0)."""
    index = check_index(result, index)
    return [(int((t[index] < 0).sum()), int(t[index].numel())) for t in result.spike_times]


def _subsample(n: int, limit: int = MAX_RASTER_NEURONS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def graph_of(result: SNNResult, snn: Any) -> dict | None:
    """The SNN's graph (:func:`tdsnn.evaluation.describe_graph`): from ``snn`` when given,
    else ``result.extras["graph"]`` (``tdsnn inspect`` sets it), else None (a chain is
    assumed)."""
    if snn is not None:
        from ..evaluation import describe_graph

        return describe_graph(snn)
    graph = result.extras.get("graph")
    return graph if isinstance(graph, dict) else None


def coding_of(result: SNNResult, snn: Any) -> str:
    """``snn.coding``, else ``result.extras["coding"]``; else "sparse" if a neuron is silent."""
    coding = getattr(snn, "coding", None) or result.extras.get("coding")
    if coding in ("paper", "sparse"):
        return str(coding)
    return "sparse" if any(bool((t < 0).any()) for t in result.spike_times) else "paper"


def frame_periods(result: SNNResult, index: int, graph: dict | None, offsets: list[int]) -> list[dict]:
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
    and ``receives``; ``periods`` from :func:`frame_periods`; ``shortcuts`` one dict per
    shortcut source with ``from``, ``into``, ``kind``, ``delay`` (steps) and the arrow's
    ends ``x0, y0, x1, y1``: from the source's release at its band's top to the start of
    the receiving group's inhibitory period (release + delay) in the receiver's band.
    ``snn`` (optional) gives the graph and the coding; without it they come from
    ``result.extras`` (``"graph"``, ``"coding"``) or a chain is assumed.
    """
    index = check_index(result, index)
    graph = graph_of(result, snn)
    coding = coding_of(result, snn)
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

    periods = frame_periods(result, index, graph, offsets)
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
