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
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .ops import CONVENTIONS, EnergyModel
from .paper import PAPER, PaperReference, paper_reference

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
    "human_count",
    "human_energy",
    "ops_summary",
    "render_markdown",
    "snn_backends",
    "synapse_layer_names",
    "write_report",
]

BACKEND_LABELS = {"closed_form": "SNN (closed form)", "clocked": "SNN (clocked)"}
CONVENTION_LABELS = {
    "presentation": "presentation (paper's)",
    "own": "own periods",
    "hardware": "hardware (Table 3)",
}
SWEEP_PLOTS = ("sweep_accuracy.png", "sweep_ops.png")
DASH = "–"


# ----------------------------------------------------------------------------- numbers


def _num(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _finite(value: Any) -> float | None:
    x = _num(value)
    return x if x is not None and math.isfinite(x) else None


def human_count(value: Any) -> str:
    """A count the way the paper prints it: ``2293k``, ``357M``, ``14765M`` (small: exact)."""
    x = _num(value)
    special = _not_finite_text(x)
    if special is not None:
        return special
    a = abs(x)
    if a < 10_000:
        return exact_count(x)
    if a < 10_000_000:
        return f"{x / 1e3:.0f}k"
    if a < 10_000_000_000_000:
        return f"{x / 1e6:.0f}M"
    return f"{x / 1e9:.0f}G"


def _not_finite_text(x: float | None) -> str | None:
    """How a missing, NaN or infinite number is written; None for a finite one."""
    if x is None or math.isnan(x):
        return DASH
    if math.isinf(x):
        return "∞"
    return None


def exact_count(value: Any) -> str:
    """A count with thousands separators (one decimal when it is an average)."""
    x = _num(value)
    special = _not_finite_text(x)
    if special is not None:
        return special
    if abs(x - round(x)) < 1e-9:
        return f"{round(x):,}"
    return f"{x:,.1f}"


def human_energy(pj: Any) -> str:
    """An energy given in picojoules, in pJ / nJ / µJ / mJ."""
    x = _finite(pj)
    if x is None:
        return DASH
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} pJ"


def _ratio(value: Any) -> str:
    x = _num(value)
    special = _not_finite_text(x)
    if special is not None:
        return special
    return f"{x:#.3g}".rstrip(".") + "×"


def _pct(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _plain(value: Any, digits: int = 2) -> str:
    x = _finite(value)
    if x is None:
        return DASH
    if abs(x - round(x)) < 1e-9:
        return f"{round(x)}"
    return f"{x:.{digits}f}"


# ----------------------------------------------------------------------------- reading


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _percent_scale(values: Iterable[Any]) -> float:
    found = [x for x in (_finite(v) for v in values) if x is not None]
    return 100.0 if found and max(abs(x) for x in found) <= 1.0 else 1.0


def _accuracy_entries(evaluation: dict) -> dict[str, dict]:
    """``{"dnn": {...}, "gdnn": {...}, "closed_form": {...}, ...}`` of what is present."""
    acc = evaluation.get("accuracy") or {}
    out: dict[str, dict] = {}
    for key in ("dnn", "gdnn"):
        if isinstance(acc.get(key), dict):
            out[key] = acc[key]
    snn = acc.get("snn") or {}
    for backend in snn_backends(evaluation):
        out[backend] = snn[backend]
    return out


def snn_backends(evaluation: dict) -> list[str]:
    """SNN backends that have accuracies, closed_form and clocked first."""
    snn = _get(evaluation, "accuracy", "snn") or {}
    keys = [k for k in snn if isinstance(snn[k], dict)]
    return sorted(keys, key=lambda k: (list(BACKEND_LABELS).index(k) if k in BACKEND_LABELS else 99, k))


def accuracies(evaluation: dict) -> dict[str, dict[str, float | None]]:
    """Per network (dnn, gdnn, closed_form, ...): ``{"top1": %, "top5": %}`` accuracies."""
    entries = _accuracy_entries(evaluation)
    scale = _percent_scale(v for e in entries.values() for v in (e.get("top1"), e.get("top5")))
    out = {}
    for key, entry in entries.items():
        top1, top5 = _finite(entry.get("top1")), _finite(entry.get("top5"))
        out[key] = {
            "top1": None if top1 is None else top1 * scale,
            "top5": None if top5 is None else top5 * scale,
        }
    return out


def errors(evaluation: dict) -> dict[str, dict[str, float | None]]:
    """Like :func:`accuracies`, as error rates in percent (``100 - accuracy``)."""
    return {
        key: {k: None if v is None else 100.0 - v for k, v in acc.items()}
        for key, acc in accuracies(evaluation).items()
    }


def agreements(evaluation: dict) -> dict[str, float]:
    """Per SNN backend, the agreement with the G-DNN's predictions in percent."""
    agree = evaluation.get("agreement") or {}
    scale = _percent_scale(agree.values())
    return {k: _finite(v) * scale for k, v in agree.items() if _finite(v) is not None}


def ops_summary(evaluation: dict, convention: str) -> dict[str, float | None] | None:
    """DNN and SNN counts and DNN/SNN ratios of one convention, or None when absent."""
    ops = evaluation.get("ops") or {}
    dnn = ops.get("dnn") or {}
    snn = _get(ops, "snn", convention)
    ratios = _get(ops, "ratios", convention) or {}
    if not isinstance(snn, dict) and not ratios:
        return None
    snn = snn or {}

    def total(d: dict) -> float | None:
        if _num(d.get("total")) is not None:
            return _num(d["total"])
        mul, add = _num(d.get("mul")), _num(d.get("add"))
        return None if mul is None or add is None else mul + add

    def ratio(key: str, a: float | None, b: float | None) -> float | None:
        if _num(ratios.get(key)) is not None:
            return _num(ratios[key])
        if a is None or b is None:
            return None
        return a / b if b else math.inf

    out = {
        "dnn_mul": _num(dnn.get("mul")),
        "dnn_add": _num(dnn.get("add")),
        "dnn_total": total(dnn),
        "snn_mul": _num(snn.get("mul")),
        "snn_add": _num(snn.get("add")),
        "snn_total": total(snn),
    }
    out["mul_ratio"] = ratio("mul_ratio", out["dnn_mul"], out["snn_mul"])
    out["add_ratio"] = ratio("add_ratio", out["dnn_add"], out["snn_add"])
    out["total_ratio"] = ratio("total_ratio", out["dnn_total"], out["snn_total"])
    energy = evaluation.get("energy_pj") or {}
    out["energy_ratio"] = ratio(
        "energy_ratio", _num(energy.get("dnn")), _num(energy.get(f"snn_{convention}"))
    )
    return out


def conventions(evaluation: dict) -> list[str]:
    """Conventions that have SNN counts or ratios, in the order of :data:`tdsnn.ops.CONVENTIONS`."""
    ops = evaluation.get("ops") or {}
    present = set(ops.get("snn") or {}) | set(ops.get("ratios") or {})
    return [c for c in CONVENTIONS if c in present] + sorted(present - set(CONVENTIONS))


def synapse_layer_names(evaluation: dict) -> list[str]:
    """Names of the synapse layers that ``t_il_mean`` describes (the output one last).

    The hidden synapse layers are the spiking layers that are not the input or a
    max-pool (``pool*``); the output layer does not spike and is called "output".
    """
    n = len(evaluation.get("t_il_mean") or [])
    given = list(evaluation.get("layer_names") or [])
    if len(given) == n and "input" not in given:  # the evaluation names the synapse layers
        return [str(name) for name in given]
    names = [
        name
        for name in (evaluation.get("layer_names") or [])[1:]
        if not str(name).startswith("pool")
    ]
    if len(names) == n - 1:
        return [*names, "output"]
    return [f"synapse layer {i + 1}" for i in range(n)]


def _ref_for(evaluation: dict) -> PaperReference | None:
    return paper_reference(str(evaluation.get("model", "")), str(evaluation.get("dataset", "")))


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
    return text + (f", sparsity penalty {_plain(sparsity, 3)}" if sparsity else "")


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
        ("paper reference", f"{ref.network} ({PAPER})" if ref else "none for this model/dataset"),
    ]
    return _md_table(("setting", "value"), rows, "ll")


def _accuracy_section(evaluation: dict, ref: PaperReference | None) -> str:
    err = errors(evaluation)
    agree = agreements(evaluation)
    disagree = evaluation.get("disagreements") or {}
    samples = _num(evaluation.get("samples"))
    headers = ["network", "top-1 err. (%)", "top-5 err. (%)", "agreement with G-DNN (%)", "disagreeing predictions"]
    if ref:
        headers.append("paper err. (%), Table 1")
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
        notes.append(
            f"Paper values: {ref.table1.source}; the paper's SNN row is its \"Our SNN\" column "
            f"(network depth {ref.table1.depth}), at L = 5. Errors are top-1 or top-1/top-5."
        )
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
    title = f"# TDSNN evaluation: {evaluation.get('model', '?')} on {evaluation.get('dataset', '?')}"
    sections = [
        title,
        _setting_section(evaluation, ref),
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


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None] | str | bytes) -> Path:
    """Write ``path`` through a temporary file in its folder and ``os.replace``.

    ``write`` is the text or bytes to write, or a function that writes a given
    (temporary) path.  On failure the temporary file is removed and ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name opened with "x" (not mkstemp): the file gets the usual umask permissions
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        if callable(write):
            write(tmp)
        else:
            data = write.encode("utf-8") if isinstance(write, str) else write
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_report(
    run_dir: str | os.PathLike,
    evaluation: dict,
    sweep: list[dict] | None = None,
    plots: bool = True,
) -> list[Path]:
    """Write ``report.md`` and ``report.json`` (and, with a sweep, its two plots) to ``run_dir``.

    ``report.json`` holds ``{"coding", "evaluation", "sweep", "paper"}`` (the paper's figures for
    this model, or None).  With a ``sweep`` and ``plots=True``, ``sweep_accuracy.png``
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
    ref = _ref_for(evaluation)
    markdown = render_markdown(evaluation, sweep, plot_names)
    payload = {
        "coding": evaluation.get("coding", "paper"),
        "evaluation": evaluation,
        "sweep": sweep,
        "paper": ref.to_dict() if ref else None,
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
    ref = _ref_for(evaluation)
    head = (
        f"{evaluation.get('model', '?')} / {evaluation.get('dataset', '?')}   "
        f"L = {_plain(evaluation.get('L'), 3)}   samples = {exact_count(evaluation.get('samples'))}   "
        f"T_il {evaluation.get('t_il_mode', DASH)}   coding {_coding_text(evaluation)}"
    )
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
