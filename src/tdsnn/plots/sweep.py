"""Sweeps over the leak constant L: accuracy against L (the paper's Figure 4) and the
DNN/SNN operation and energy ratios against L (Figure 5), the paper's figures beside
ours where they apply."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..paper import PaperReference
from ..summary import (
    CONVENTION_LABELS,
    accuracies,
    agreements,
    ops_summary,
    paper_comparison,
    snn_backends,
)
from .figure import new_figure, save_figure


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

    fig = new_figure(10, 5.5)
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
    return save_figure(fig, path)


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
    fig = new_figure(10, 5.5)
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
    return save_figure(fig, path)


