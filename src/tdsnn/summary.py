"""Reading an evaluation dict: numbers formatted for people, accuracies, agreements,
the network graph in numbers and in words (:func:`graph_summary`, :func:`graph_line`),
operation counts per convention, and whether the paper's figures apply.

Shared by :mod:`tdsnn.report` (the Markdown and JSON reports) and :mod:`tdsnn.plots`.
Accuracies and agreements may be fractions in ``[0, 1]`` or percentages: when every
accuracy of an evaluation is at most 1 they are read as fractions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .ops import CONVENTIONS
from .paper import PAPER, PaperReference, paper_reference

BACKEND_LABELS = {"closed_form": "SNN (closed form)", "clocked": "SNN (clocked)"}
CONVENTION_LABELS = {
    "presentation": "presentation (paper's)",
    "own": "own periods",
    "hardware": "hardware (Table 3)",
}
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


PAPER_NETWORKS = "LeNet-5 on MNIST, AlexNet and VGG-16 on ImageNet"


def paper_comparison(evaluation: dict) -> tuple[PaperReference | None, str]:
    """The paper's figures that apply to this evaluation (or None), and a sentence saying
    what is compared with what, or why nothing is.

    They apply only to the paper's own networks (``lenet5``/``mnist``, ``alexnet`` and
    ``vgg16`` on ``imagenet``, all chains) in the paper's coding, where every neuron fires
    once: in sparse coding zeros are silent, so spikes, operation counts and the G-DNN
    itself differ by design, and the paper's figures are not shown beside ours.
    """
    model, dataset = str(evaluation.get("model", "?")), str(evaluation.get("dataset", "?"))
    ref = paper_reference(model, dataset)
    if ref is None:
        return None, (
            f"none for this model/dataset: the paper's Tables 1 and 2 cover {PAPER_NETWORKS}; "
            f"{model} on {dataset} is not one of them, so no paper figures are shown."
        )
    coding = str(evaluation.get("coding", "paper"))
    if coding != "paper":
        return None, (
            f"Not compared: the paper's Table 1 and Table 2 figures for {ref.network} are for "
            f"its coding (every neuron fires once); this run uses {coding} coding (zeros "
            "silent), whose G-DNN, spikes and operation counts differ by design, so the "
            "paper's figures are not shown beside ours."
        )
    graph = graph_summary(evaluation)
    if graph is not None and not graph["is_chain"]:
        return None, (
            f"Not compared: the paper's {ref.network} is a chain, this SNN is a graph."
        )
    L = _num(evaluation.get("L"))
    at = "" if L is None or abs(L - ref.table2.L) < 1e-9 else (
        f" The paper's SNN figures are at L = {_plain(ref.table2.L)}, this run at L = {_plain(L, 3)}."
    )
    return ref, (
        f"{ref.network} ({PAPER}): our test errors beside its Table 1 row, our operation "
        f"counts beside its Table 2 row (the paper's own figures, copied).{at}"
    )


def _not_compared(evaluation: dict) -> str | None:
    """Why the paper's figures for this model and data set are not shown (sparse coding,
    ...); None when they are, or when the paper has none for this model."""
    ref, note = paper_comparison(evaluation)
    known = paper_reference(str(evaluation.get("model", "")), str(evaluation.get("dataset", "")))
    return note if ref is None and known is not None else None


def _ref_for(evaluation: dict) -> PaperReference | None:
    """The paper's figures when they apply to this evaluation (:func:`paper_comparison`)."""
    return paper_comparison(evaluation)[0]


def _span(low: Any, high: Any) -> str:
    return _plain(low) if _num(low) == _num(high) else f"{_plain(low)}{DASH}{_plain(high)}"


# ------------------------------------------------------------------- the graph, in words


def _whole(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def graph_summary(evaluation: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation's network graph in numbers, or None when it has no ``"graph"``
    (evaluations of chains have none: :func:`evaluate` adds it for graph SNNs only).

    ``{"is_chain", "populations" (count, the input and the output group included),
    "shortcuts", "identity", "projection", "concatenations", "delay_min", "delay_max"
    (over every shortcut and sample; None without delays), "delays" ("fixed" with static
    T_il, "per sample" with dynamic; None without shortcuts or concatenations)}``.
    """
    graph = evaluation.get("graph")
    if not isinstance(graph, dict):
        return None
    shortcuts = [c for c in graph.get("shortcuts") or [] if isinstance(c, dict)]
    kinds = [c.get("kind") for c in shortcuts]
    delays = [c["delay"] for c in shortcuts if isinstance(c.get("delay"), dict)]
    lows = [x for x in (_finite(d.get("min")) for d in delays) if x is not None]
    highs = [x for x in (_finite(d.get("max")) for d in delays) if x is not None]
    return {
        "is_chain": bool(graph.get("is_chain", not shortcuts)),
        "populations": len(graph.get("populations") or []),
        "shortcuts": len(shortcuts),
        "identity": kinds.count("identity"),
        "projection": kinds.count("projection"),
        "concatenations": len(graph.get("joins") or []),
        "delay_min": _whole(min(lows)) if lows else None,
        "delay_max": _whole(max(highs)) if highs else None,
        "delays": None if not shortcuts and not graph.get("joins") else (
            "fixed" if evaluation.get("t_il_mode") == "static" else "per sample"),
    }  # fmt: skip


def graph_line(evaluation: dict[str, Any]) -> str | None:
    """One line on a graph SNN (populations, shortcuts, their delays); None for a chain
    or an evaluation without a ``"graph"`` entry."""
    g = graph_summary(evaluation)
    if g is None or g["is_chain"]:
        return None
    text = (
        f"graph SNN: {g['populations']} populations (input and output group included), "
        f"{_plural(g['shortcuts'], 'shortcut connection')} ({g['identity']} identity, "
        f"{g['projection']} projection)"
    )
    if g["concatenations"]:
        text += f", {_plural(g['concatenations'], 'concatenation')}"
    if g["delay_min"] is not None:
        low, high = g["delay_min"], g["delay_max"]
        span = f"{low}" if low == high else f"{low}\u2013{high}"
        text += (f"; shortcut delays fixed, {span} steps (static T_il)" if g["delays"] == "fixed"
                 else f"; shortcut delays {span} steps, per sample (dynamic T_il)")
    return text
