"""Reports of an evaluation: ``report.md`` (Table 1 / Table 2 style) and ``report.json``.

An *evaluation* is the JSON-able dict an evaluation run produces (model, dataset, L,
accuracies of the DNN, the G-DNN and the SNN backends, agreement, latency, T_il, spikes,
operation counts under the three conventions of :mod:`tdsnn.ops`, energy, timing); a
*sweep* is a list of evaluations, one per leak constant L.  Keys that are missing (a
backend that was not run, no timing, ...) are left out of the report, not guessed.

Accuracies and agreements may be fractions in ``[0, 1]`` or percentages: when every
accuracy of an evaluation is at most 1 they are read as fractions (the same rule, on
its own, for the agreements).

:func:`write_report` writes the files atomically (a temporary file in the same folder,
then ``os.replace``), so a reader never sees half a report.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_write
from .ops import EnergyModel
from .paper import PaperReference, paper_reference
from .summary import (  # noqa: F401 - re-exported: the report's public reading helpers
    BACKEND_LABELS,
    CONVENTION_LABELS,
    DASH,
    _finite,
    _get,
    _not_compared,
    _num,
    _pct,
    _plain,
    _ratio,
    _ref_for,
    _span,
    accuracies,
    agreements,
    conventions,
    errors,
    exact_count,
    graph_line,
    graph_summary,
    human_count,
    human_energy,
    ops_summary,
    paper_comparison,
    snn_backends,
    synapse_layer_names,
)

__all__ = [
    "BACKEND_LABELS",
    "CONVENTION_LABELS",
    "accuracies",
    "agreements",
    "atomic_write",
    "conventions",
    "errors",
    "exact_count",
    "format_evaluation_table",
    "graph_line",
    "graph_summary",
    "human_count",
    "human_energy",
    "ops_summary",
    "paper_comparison",
    "render_markdown",
    "snn_backends",
    "synapse_layer_names",
    "write_report",
]

SWEEP_PLOTS = ("sweep_accuracy.png", "sweep_ops.png")


# ----------------------------------------------------------------------------- markdown


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    rows = [list(map(str, r)) for r in rows]
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _err_pair(top1: float | None, top5: float | None) -> str:
    if top1 is None:
        return DASH
    return _pct(top1) if top5 is None else f"{_pct(top1)}/{_pct(top5)}"


def _coding_text(evaluation: dict) -> str:
    """'paper' / 'sparse' (and the fine-tuning's sparsity penalty, if any)."""
    coding = evaluation.get("coding", "paper")  # evaluations made before sparse coding: paper
    sparsity = _finite(evaluation.get("sparsity"))
    text = str(coding) + (" (zeros silent)" if coding == "sparse" else " (every neuron fires once)")
    recorded = evaluation.get("reproduce")
    distill = _finite(recorded.get("finetune_distill")) if isinstance(recorded, dict) else None
    min_time = recorded.get("min_time") if isinstance(recorded, dict) else None
    if coding == "sparse" and isinstance(min_time, int) and min_time > 1:
        text += f", hidden neurons silent below local time {min_time}"
    return (text + (f", sparsity penalty {_plain(sparsity, 3)}" if sparsity else "")
            + (f", fine-tuned distilling the DNN (weight {distill:g})" if distill else ""))  # fmt: skip


def _sparsity_rows(evaluation: dict) -> list[list[str]]:
    """Spikes per neuron, synaptic events and events per DNN MAC, where the evaluation has them."""
    rows = []
    if evaluation.get("spikes_per_neuron") is not None:
        rows.append(["spikes per spiking neuron", _plain(evaluation["spikes_per_neuron"], 4)])
    if evaluation.get("spiking_neurons") is not None:
        rows.append(["spiking neurons (input, hidden, max-pool)", exact_count(evaluation["spiking_neurons"])])
    if evaluation.get("synaptic_events_per_image") is not None:
        events = evaluation["synaptic_events_per_image"]
        rows.append(["synaptic events per input", f"{exact_count(events)} ({human_count(events)})"])
    if evaluation.get("dnn_macs_per_image") is not None:
        rows.append(["DNN MACs per input", human_count(evaluation["dnn_macs_per_image"])])
    if evaluation.get("events_per_mac") is not None:
        rows.append(["synaptic events per DNN MAC", _plain(evaluation["events_per_mac"], 4)])
    return rows


def _setting_section(evaluation: dict, ref: PaperReference | None) -> str:
    rows = [
        ("L (leak constant)", _plain(evaluation.get("L"), 3)),
        ("input scale", _plain(evaluation.get("input_scale"), 3)),
        ("samples", exact_count(evaluation.get("samples"))),
        ("T_il mode", str(evaluation.get("t_il_mode", DASH))),
        ("coding", _coding_text(evaluation)),
        ("SNN backends", ", ".join(snn_backends(evaluation)) or DASH),
    ]
    network = _network_text(evaluation)
    if network:
        rows.append(("network", network))
    if evaluation.get("graph") and not (graph_summary(evaluation) or {}).get("is_chain", True):
        rows[-1] = ("network", network + " (see Network graph)")
    rows.append(("paper comparison", paper_comparison(evaluation)[1]))
    return _md_table(("setting", "value"), rows, "ll")


def _network_text(evaluation: dict) -> str | None:
    g = graph_summary(evaluation)
    if g is None:
        return None
    if g["is_chain"]:
        return f"chain of {g['populations']} populations (input and output group included)"
    return graph_line(evaluation)


def _delay_text(delay: Any, mode: Any) -> str:
    if not isinstance(delay, dict) or _finite(delay.get("min")) is None:
        return DASH
    span = _span(delay.get("min"), delay.get("max"))
    if mode == "static":
        return f"{span} (fixed)"
    return f"{span} (mean {_plain(delay.get('mean'))})"


def _graph_section(evaluation: dict) -> str | None:
    """Shortcut connections and populations of a graph SNN; None for a chain."""
    graph = evaluation.get("graph")
    g = graph_summary(evaluation)
    if g is None or g["is_chain"]:
        return None
    mode = evaluation.get("t_il_mode")
    parts = [graph_line(evaluation) + "."]
    rows = []
    for c in graph.get("shortcuts") or []:
        if not isinstance(c, dict):
            continue
        kind = str(c.get("kind", DASH))
        if kind == "projection" and c.get("synapse"):
            kind += f" ({c['synapse']}, `{c.get('name', '?')}`)"
        rows.append([", ".join(map(str, c.get("from") or [])) or DASH, str(c.get("into", DASH)), kind,
                     _delay_text(c.get("delay"), mode)])
    if rows:
        how = ("fixed per connection (static T_il)" if mode == "static" else
               "per sample, min–max over the samples (dynamic T_il: they follow each input's periods)")
        parts.append(
            "Shortcut connections: another branch of a residual sum into the receiving neurons; "
            "an identity shortcut delivers the source's spikes with weight 1, a projection "
            "through its own synapses. The delay (steps) aligns the source's frame with the "
            f"receiving group's inhibitory period; it is {how}."
        )
        parts.append(_md_table(("from", "into", "kind", "delay (steps)"), rows, "lllr"))
    pops = [p for p in graph.get("populations") or [] if isinstance(p, dict)]
    if pops:
        prow = []
        for i, pop in enumerate(pops):
            reads = []
            for item in pop.get("reads") or []:
                src, kind = (list(item) + [None, None])[:2]
                reads.append(str(src) if kind in (None, "synapse") else f"{src} ({kind})")
            name = str(pop.get("name", "?")) + (" (output)" if i == len(pops) - 1 and i else "")
            prow.append([str(i), name, ", ".join(reads) or DASH])
        parts.append("Populations (the order of the spike raster, the output group last) and what each reads:")
        parts.append(_md_table(("#", "population", "reads"), prow, "lll"))
    return "\n\n".join(parts)


def _accuracy_section(evaluation: dict, ref: PaperReference | None) -> str:
    err = errors(evaluation)
    agree = agreements(evaluation)
    disagree = evaluation.get("disagreements") or {}
    samples = _num(evaluation.get("samples"))
    headers = ["network", "top-1 err. (%)", "top-5 err. (%)", "agreement with G-DNN (%)", "disagreeing predictions"]
    if ref:
        headers.append(f"paper err. (%), Table 1 (L = {_plain(ref.table2.L)})")
    rows = []
    labels = {"dnn": "DNN", "gdnn": "G-DNN", **BACKEND_LABELS}
    for key, e in err.items():
        row = [labels.get(key, f"SNN ({key})"), _pct(e["top1"]), _pct(e["top5"])]
        if key in ("dnn", "gdnn"):
            row += [DASH, DASH]
        else:
            n = disagree.get(key)
            n_text = exact_count(n) if n is not None else DASH
            if n is not None and samples:
                n_text += f" of {exact_count(samples)}"
            row += [_pct(agree.get(key), 3), n_text]
        if ref:
            t1 = ref.table1
            paper = {"dnn": t1.dnn_error, "gdnn": None}.get(key, t1.snn_error)
            row.append(_err_pair(*paper) if paper else DASH)
        rows.append(row)
    if ref:
        t1 = ref.table1
        rows.append(
            [f"previous SNN ({t1.previous_snn_ref})", DASH, DASH, DASH, DASH, _err_pair(*t1.previous_snn_error)]
        )
    if not rows:
        return "_No accuracies in this evaluation._"
    parts = [_md_table(headers, rows)]
    missing = [b for b in BACKEND_LABELS if b not in err]
    notes = []
    if missing:
        notes.append(f"Not run: {', '.join(missing)} backend.")
    if ref:
        samples_text = f"{exact_count(samples)} test images" if samples else "the test images"
        notes.append(
            f"Compared: our DNN, G-DNN and SNN errors on {samples_text} of {evaluation.get('dataset', '?')} "
            f"with the paper's {ref.table1.source}, row {ref.network} (the paper's errors are "
            f"copied, not re-run): its DNN, its \"Our SNN\" column (network depth "
            f"{ref.table1.depth}, at L = {_plain(ref.table2.L)}) and the previous SNN it cites. "
            "Errors are top-1 or top-1/top-5."
        )
        L = _num(evaluation.get("L"))
        if L is not None and abs(L - ref.table2.L) > 1e-9:
            notes.append(f"This run is at L = {_plain(L, 3)}, the paper's SNN column at L = {_plain(ref.table2.L)}.")
    elif _not_compared(evaluation):
        notes.append(str(_not_compared(evaluation)))
    notes.append(
        "Agreement: the share of inputs on which the SNN's prediction equals the G-DNN's. "
        "With dynamic T_il the conversion is exact, so anything below 100 % is floating-point "
        "rounding at a level boundary; with static T_il clipped spikes can also change a prediction."
    )
    parts.append("\n".join(notes))
    return "\n\n".join(parts)


def _ops_section(evaluation: dict, ref: PaperReference | None) -> str:
    convs = conventions(evaluation)
    dnn = _get(evaluation, "ops", "dnn") or {}
    if not convs and not dnn:
        return "_No operation counts in this evaluation._"
    headers = ["", "DNN_mult", "DNN_add", "SNN_mult", "SNN_add", "DNN_mult/SNN_mult",
               "DNN_add/SNN_add", "DNN_total/SNN_total", "DNN/SNN energy"]
    rows = []
    for conv in convs:
        s = ops_summary(evaluation, conv) or {}
        rows.append([
            f"ours, {CONVENTION_LABELS.get(conv, conv)}",
            human_count(s.get("dnn_mul")), human_count(s.get("dnn_add")),
            human_count(s.get("snn_mul")), human_count(s.get("snn_add")),
            _ratio(s.get("mul_ratio")), _ratio(s.get("add_ratio")),
            _ratio(s.get("total_ratio")), _ratio(s.get("energy_ratio")),
        ])
    if ref:
        t2 = ref.table2
        rows.append([
            f"paper, Table 2 (L = {_plain(t2.L)})",
            human_count(t2.dnn_mul), human_count(t2.dnn_add),
            human_count(t2.snn_mul), human_count(t2.snn_add),
            _ratio(t2.mul_ratio), _ratio(t2.add_ratio), _ratio(t2.total_ratio), DASH,
        ])
    parts = [_md_table(headers, rows)]

    exact_rows = []
    if dnn:
        mul, add = _num(dnn.get("mul")), _num(dnn.get("add"))
        total = _num(dnn.get("total"))
        if total is None and mul is not None and add is not None:
            total = mul + add
        exact_rows.append(["DNN", exact_count(mul), exact_count(add), exact_count(total)])
    for conv in convs:
        s = ops_summary(evaluation, conv) or {}
        exact_rows.append([f"SNN, {CONVENTION_LABELS.get(conv, conv)}", exact_count(s.get("snn_mul")),
                           exact_count(s.get("snn_add")), exact_count(s.get("snn_total"))])
    parts.append("Exact counts per input (SNN counts are averages over the samples):")
    parts.append(_md_table(("", "multiplications", "additions", "total"), exact_rows))
    notes = [
        "Conventions (see `tdsnn.ops`): *presentation* (the paper's) -- every LIF neuron "
        "leaks at every step of the whole presentation; *own periods* -- a neuron leaks only "
        "in its own inhibitory and active periods; *hardware* (Discussion, Table 3) -- no "
        "ticking neuron, `(M-1)·N` additions and `N·T_o` multiplications per synapse layer.",
        "Our DNN counts are computed from the layer shapes, not copied from the paper.",
    ]
    if ref:
        L = _num(evaluation.get("L"))
        if L is not None and abs(L - ref.table2.L) > 1e-9:
            notes.append(f"The paper's Table 2 is at L = {_plain(ref.table2.L)}; this run is at L = {_plain(L, 3)}.")
        notes += [f"Paper note: {n}" for n in ref.notes]
    elif _not_compared(evaluation):
        notes.append(str(_not_compared(evaluation)))
    parts.append("\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts)


def _energy_section(evaluation: dict) -> str:
    energy = evaluation.get("energy_pj") or {}
    if not energy:
        return "_No energy estimate in this evaluation._"
    model = EnergyModel()
    dnn = _finite(energy.get("dnn"))
    rows = []
    for key, value in energy.items():
        label = "DNN" if key == "dnn" else "SNN, " + CONVENTION_LABELS.get(key.removeprefix("snn_"), key)
        x = _finite(value)
        ratio = _ratio(dnn / x) if dnn is not None and x else DASH
        rows.append([label, human_energy(x), exact_count(None if x is None else round(x, 1)), ratio if key != "dnn" else DASH])
    text = (
        f"Energy per input, 45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014): "
        f"{model.mac_pj} pJ per multiply-accumulate (MAC), {model.ac_pj} pJ per accumulate (AC); "
        f"a multiplication alone counts {model.mac_pj - model.ac_pj:.1f} pJ (MAC - AC), an addition {model.ac_pj} pJ."
    )
    return text + "\n\n" + _md_table(("", "energy per input", "pJ", "DNN/SNN"), rows)


def _latency_section(evaluation: dict) -> str:
    parts = []
    lat = evaluation.get("latency") or {}
    if lat:
        parts.append(
            f"Latency (sum of all periods): mean {_pct(_finite(lat.get('mean')))} time steps, "
            f"min {_plain(lat.get('min'))}, max {_plain(lat.get('max'))}."
        )
    t_il = evaluation.get("t_il_mean") or []
    if t_il:
        names = synapse_layer_names(evaluation)
        clipped = evaluation.get("clipped") or []
        rows = []
        for i, (name, t) in enumerate(zip(names, t_il, strict=False)):
            t = _finite(t)
            rows.append([str(i + 1), name, DASH if t is None else f"{t:.2f}",
                         exact_count(clipped[i]) if i < len(clipped) else DASH])
        parts.append(
            "Inhibitory period T_il of each synapse layer (mean over the samples; in dynamic "
            "mode it follows each input's last spike, in static mode it is fixed and spikes "
            "beyond it are clipped):"
        )
        parts.append(_md_table(("#", "synapse layer", "mean T_il (steps)", "clipped spikes"), rows, "llrr"))
    return "\n\n".join(parts) if parts else "_No latency in this evaluation._"


def _spikes_section(evaluation: dict) -> str:
    per_sample = evaluation.get("spikes_per_sample")
    per_layer = evaluation.get("spikes_per_layer") or {}
    if per_sample is None and not per_layer:
        return "_No spike counts in this evaluation._"
    parts = [f"Spikes per input: {exact_count(per_sample)} ({human_count(per_sample)})."]
    rows = _sparsity_rows(evaluation)
    if rows:
        parts.append(f"Coding: {_coding_text(evaluation)}.")
        parts.append(_md_table(("figure", "value"), rows, "lr"))
    if per_layer:
        parts.append(_md_table(("spiking layer", "spikes per input"),
                               [[name, exact_count(v)] for name, v in per_layer.items()], "lr"))
    return "\n\n".join(parts)


def _timing_section(evaluation: dict) -> str:
    timing = evaluation.get("timing_s") or {}
    if not timing:
        return "_No timing in this evaluation._"
    samples = _num(evaluation.get("samples"))
    labels = {"dnn": "DNN", "gdnn": "G-DNN", **BACKEND_LABELS}
    rows = []
    for key, sec in timing.items():
        s = _finite(sec)
        per = f"{s / samples * 1e3:.3g}" if s is not None and samples else DASH
        rows.append([labels.get(key, key), DASH if s is None else f"{s:.3g}", per])
    return _md_table(("stage", "wall time (s)", "ms per input"), rows)


def _sweep_rows(sweep: Sequence[dict]) -> tuple[list[str], list[list[str]], str]:
    ordered = sorted(sweep, key=lambda e: _num(e.get("L")) or 0.0)
    backend = next((b for e in ordered for b in snn_backends(e)), None)
    conv = next((c for e in ordered for c in conventions(e)), "presentation")
    has_top5 = any(v.get("top5") is not None for e in ordered for v in errors(e).values())
    headers = ["L", "DNN top-1 err."]
    headers += ["G-DNN top-1/top-5 err." if has_top5 else "G-DNN top-1 err."]
    headers += [f"SNN top-1/top-5 err. ({backend or DASH})" if has_top5 else f"SNN top-1 err. ({backend or DASH})"]
    headers += ["agreement (%)", "latency (mean steps)", "mul ratio", "add ratio", "total ratio", "energy ratio"]
    rows = []
    for e in ordered:
        err = errors(e)

        def pair(key: str, err: dict = err) -> str:
            v = err.get(key) or {}
            return _err_pair(v.get("top1"), v.get("top5") if has_top5 else None)

        agree = agreements(e)
        s = ops_summary(e, conv) or {}
        rows.append([
            _plain(e.get("L"), 3),
            _pct((err.get("dnn") or {}).get("top1")),
            pair("gdnn"),
            pair(backend) if backend else DASH,
            _pct(agree.get(backend) if backend else None, 3),
            _plain(_get(e, "latency", "mean")),
            _ratio(s.get("mul_ratio")), _ratio(s.get("add_ratio")),
            _ratio(s.get("total_ratio")), _ratio(s.get("energy_ratio")),
        ])
    return headers, rows, conv


def _sweep_section(sweep: Sequence[dict], ref: PaperReference | None, plots: Sequence[str]) -> str:
    headers, rows, conv = _sweep_rows(sweep)
    parts = [
        f"Errors in %; operation ratios are DNN/SNN per input, {CONVENTION_LABELS.get(conv, conv)} convention.",
        _md_table(headers, rows),
    ]
    if ref and ref.figure4:
        pts = "; ".join(
            f"L = {_plain(p.L)}: {_pct(p.top1)}" + (f"/{_pct(p.top5)}" if p.top5 is not None else "")
            + (f" ({p.note})" if p.note else "")
            for p in ref.figure4
        )
        parts.append(f"Paper, {ref.figure4[0].source}: SNN accuracy (%) {pts}.")
    if ref and ref.figure5:
        pts = "; ".join(f"L = {_plain(p.L)}: {p.reduction_pct} % (total ratio {p.total_ratio:.2f}×)" for p in ref.figure5)
        parts.append(f"Paper, {ref.figure5[0].source}: reduction of the total operations {pts}.")
    if plots:
        captions = {"sweep_accuracy.png": "Accuracy vs L (Figure 4 style)",
                    "sweep_ops.png": "DNN/SNN operation ratios vs L (Figure 5 style)"}
        parts.append("\n\n".join(f"![{captions.get(p, p)}]({p})" for p in plots))
    return "\n\n".join(parts)


def render_markdown(evaluation: dict, sweep: Sequence[dict] | None = None,
                    plots: Sequence[str] = ()) -> str:
    """The Markdown text of :func:`write_report` (``plots``: sweep PNGs to link, relative)."""
    ref = _ref_for(evaluation)
    graph = _graph_section(evaluation)
    title = f"# TDSNN evaluation: {evaluation.get('model', '?')} on {evaluation.get('dataset', '?')}"
    sections = [
        title,
        _setting_section(evaluation, ref),
        *(["## Network graph", graph] if graph else []),
        "## Accuracy (Table 1 style)",
        _accuracy_section(evaluation, ref),
        "## Operations per input (Table 2 style)",
        _ops_section(evaluation, ref),
        "## Energy",
        _energy_section(evaluation),
        "## Latency and inhibitory periods",
        _latency_section(evaluation),
        "## Spikes",
        _spikes_section(evaluation),
        "## Timing",
        _timing_section(evaluation),
    ]
    if sweep:
        sections += ["## Leak constant sweep (Figures 4 and 5 style)", _sweep_section(sweep, ref, plots)]
    return "\n\n".join(sections) + "\n"


# ----------------------------------------------------------------------------- files


def _jsonable(value: Any) -> Any:
    """``value`` with tensors/arrays turned into lists and non-finite floats into None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # torch.Tensor, numpy array or scalar
        return _jsonable(value.tolist())
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return str(value)


def write_report(
    run_dir: str | os.PathLike,
    evaluation: dict,
    sweep: list[dict] | None = None,
    plots: bool = True,
) -> list[Path]:
    """Write ``report.md`` and ``report.json`` (and, with a sweep, its two plots) to ``run_dir``.

    ``report.json`` holds ``{"coding", "graph", "evaluation", "sweep", "paper",
    "paper_comparison"}``: ``graph`` is :func:`graph_summary` (None for an evaluation
    without one), ``paper`` the paper's figures for this model when they apply
    (:func:`paper_comparison`: the paper's networks in its coding), else None, and
    ``paper_comparison`` ``{"applies", "reference" (the paper's network for this model and
    data set, applying or not), "note" (what is compared with what, or why nothing)}``.  With a ``sweep`` and ``plots=True``, ``sweep_accuracy.png``
    and ``sweep_ops.png`` are drawn (see :mod:`tdsnn.plots`) and linked from the
    Markdown.  Returns the paths written.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plot_names: list[str] = []
    if sweep and plots:
        from .plots import plot_sweep_accuracy, plot_sweep_ops

        written.append(plot_sweep_accuracy(sweep, run_dir / SWEEP_PLOTS[0]))
        written.append(plot_sweep_ops(sweep, run_dir / SWEEP_PLOTS[1]))
        plot_names = list(SWEEP_PLOTS)
    ref, comparison = paper_comparison(evaluation)
    markdown = render_markdown(evaluation, sweep, plot_names)
    reference = paper_reference(str(evaluation.get("model", "")), str(evaluation.get("dataset", "")))
    payload = {
        "coding": evaluation.get("coding", "paper"),
        "graph": graph_summary(evaluation),
        "evaluation": evaluation,
        "sweep": sweep,
        "paper": ref.to_dict() if ref else None,
        "paper_comparison": {
            "applies": ref is not None,
            "reference": reference.network if reference else None,
            "note": comparison,
        },
    }
    text = json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n"
    md_path = atomic_write(run_dir / "report.md", markdown)
    json_path = atomic_write(run_dir / "report.json", text)
    return [md_path, json_path, *written]


# ----------------------------------------------------------------------------- terminal


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*headers), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


def format_evaluation_table(evaluation: dict) -> str:
    """A compact plain-text summary of an evaluation, for a terminal."""
    ref, comparison = paper_comparison(evaluation)
    head = (
        f"{evaluation.get('model', '?')} / {evaluation.get('dataset', '?')}   "
        f"L = {_plain(evaluation.get('L'), 3)}   samples = {exact_count(evaluation.get('samples'))}   "
        f"T_il {evaluation.get('t_il_mode', DASH)}   coding {_coding_text(evaluation)}"
    )
    graph = graph_line(evaluation)
    if graph:
        head += "\n" + graph
    head += "\npaper comparison: " + comparison
    err = errors(evaluation)
    agree = agreements(evaluation)
    disagree = evaluation.get("disagreements") or {}
    labels = {"dnn": "DNN", "gdnn": "G-DNN", **BACKEND_LABELS}
    headers = ["", "top-1 err %", "top-5 err %", "agree %", "disagree"]
    if ref:
        headers.append("paper err %")
    rows = []
    for key, e in err.items():
        snn = key not in ("dnn", "gdnn")
        row = [labels.get(key, key), _pct(e["top1"]), _pct(e["top5"]),
               _pct(agree.get(key), 3) if snn else DASH,
               exact_count(disagree.get(key)) if snn else DASH]
        if ref:
            paper = {"dnn": ref.table1.dnn_error, "gdnn": None}.get(key, ref.table1.snn_error)
            row.append(_err_pair(*paper) if paper else DASH)
        rows.append(row)
    parts = [head]
    if rows:
        parts.append(_text_table(headers, rows))
    op_rows = []
    for conv in conventions(evaluation):
        s = ops_summary(evaluation, conv) or {}
        op_rows.append([conv, human_count(s.get("dnn_mul")), human_count(s.get("dnn_add")),
                        human_count(s.get("snn_mul")), human_count(s.get("snn_add")),
                        _ratio(s.get("mul_ratio")), _ratio(s.get("add_ratio")),
                        _ratio(s.get("total_ratio")), _ratio(s.get("energy_ratio"))])
    if ref and op_rows:
        t2 = ref.table2
        op_rows.append(["paper (L=5)", human_count(t2.dnn_mul), human_count(t2.dnn_add),
                        human_count(t2.snn_mul), human_count(t2.snn_add), _ratio(t2.mul_ratio),
                        _ratio(t2.add_ratio), _ratio(t2.total_ratio), DASH])
    if op_rows:
        parts.append(_text_table(
            ["ops / input", "DNN mul", "DNN add", "SNN mul", "SNN add", "mul x", "add x", "total x", "energy x"],
            op_rows,
        ))
    lat = evaluation.get("latency") or {}
    tail = []
    if lat:
        tail.append(f"latency {_plain(lat.get('mean'))} steps (min {_plain(lat.get('min'))}, "
                    f"max {_plain(lat.get('max'))})")
    if evaluation.get("t_il_mean"):
        tail.append("T_il " + " ".join(_plain(t, 1) for t in evaluation["t_il_mean"]))
    if evaluation.get("spikes_per_sample") is not None:
        tail.append(f"spikes/input {human_count(evaluation['spikes_per_sample'])}")
    if evaluation.get("spikes_per_neuron") is not None:
        tail.append(f"spikes/neuron {_plain(evaluation['spikes_per_neuron'], 3)}")
    if evaluation.get("synaptic_events_per_image") is not None:
        tail.append(f"events/input {human_count(evaluation['synaptic_events_per_image'])}")
    if evaluation.get("events_per_mac") is not None:
        tail.append(f"events/DNN MAC {_plain(evaluation['events_per_mac'], 3)}")
    if tail:
        parts.append("   ".join(tail))
    return "\n\n".join(parts)
