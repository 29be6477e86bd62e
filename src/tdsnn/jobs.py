"""Jobs made of the pipeline's stages: the L sweep (Figure 4), the report, one sample's
spikes, and the main job (``tdsnn run``).

Like the stages of :mod:`tdsnn.pipeline`, each job holds its run folder's writer
lock while it works (:func:`tdsnn.runfolder.run_lock`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .data import ImageDataset, load_dataset
from .distributed import barrier, context
from .evaluation import BACKENDS, describe_graph
from .pipeline import (
    DEFAULTS,
    check_min_time_option,
    check_sparsity_options,
    convert_run,
    evaluate_run,
    finetune,
    train_dnn,
)
from .rebuild import ModelSource, load_snn
from .runfolder import (
    PipelineError,
    check_L,
    check_run_dir,
    dnn_path,
    gdnn_path,
    l_tag,
    make_run_dir,
    read_json,
    require,
    snn_path,
    write_json,
)
from .stages import float_images, writes_run

__all__ = ["inspect_run", "population_lines", "report_run", "run_all", "sweep", "sweep_dir"]


# -------------------------------------------------------------------- sweep and report


@writes_run("sweep")
def sweep(
    run_dir: str | os.PathLike[str],
    Ls: Sequence[float],
    *,
    epochs: int = DEFAULTS.finetune_epochs,
    lr: float = DEFAULTS.finetune_lr,
    input_scale: float = DEFAULTS.input_scale,
    activation_scales: Sequence[float] | float | None = None,
    backends: Sequence[str] = ("closed_form",),
    calibrate: int | None = None,
    limit: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
    model_spec: ModelSource = None,
    coding: str = "paper",
    sparsity: float = 0.0,
    **finetune_kwargs: Any,
) -> list[dict[str, Any]]:
    """Fine-tune, convert and evaluate the same trained DNN at every L (Figure 4).

    Works in ``<run>/sweep/`` (a copy of the DNN checkpoint, then ``gdnn_L*``,
    ``snn_L*`` and ``evaluation_L*.json``), so the main job's files are never
    replaced; the list of evaluations goes to ``<run>/sweep.json``, rewritten after
    every L so that a stopped sweep keeps what it did.  With ``resume`` an L whose
    evaluation exists is not redone and an interrupted fine-tuning continues.
    ``coding``, ``sparsity`` and ``finetune_kwargs`` (``distill``, ...) go to every
    :func:`tdsnn.pipeline.finetune`; a resumed L whose evaluation was made with another
    coding, sparsity or teacher weight is not reused (its fine-tuning then refuses to
    resume a state of another recipe; ``force`` redoes it).
    """
    coding, sparsity = check_sparsity_options(coding, sparsity)
    run = check_run_dir(run_dir)
    Ls = [check_L(L) for L in Ls]
    if not Ls:
        raise PipelineError("give at least one L to sweep")
    require(dnn_path(run), f"train a model first (`tdsnn train --out {run}`)")
    work = sweep_dir(run)
    if context().is_main:
        _link_dnn(run, work)
    barrier()
    results: list[dict[str, Any]] = []
    for L in Ls:
        done = work / f"evaluation_{l_tag(L)}.json"
        if resume and done.is_file() and snn_path(work, L).is_file() and (
            _coding_of(done) == (coding, sparsity, float(finetune_kwargs.get("distill", 0.0)),
                                 int(finetune_kwargs.get("min_time", 1)))
        ):
            results.append(read_json(done, "", dict))
        else:
            finetune(
                work, L=L, epochs=epochs, lr=lr, input_scale=input_scale,
                activation_scales=activation_scales, resume=resume, force=force or not resume,
                progress=progress, device=device, model_spec=model_spec, coding=coding,
                sparsity=sparsity, **finetune_kwargs,
            )  # fmt: skip
            if context().is_main:
                convert_run(work, L=L, calibrate=calibrate, model_spec=model_spec)
            barrier()
            results.append(
                evaluate_run(
                    work,
                    L=L,
                    backends=backends,
                    limit=limit,
                    progress=progress,
                    device=device,
                    write_main=False,
                    model_spec=model_spec,
                )  # fmt: skip
            )
        if context().is_main:
            write_json(run / "sweep.json", results)
    return results


def _coding_of(evaluation_file: Path) -> tuple[str, float, float, int]:
    """Coding, sparsity, teacher weight and ``min_time`` of a saved evaluation's fine-tuning
    (paper, 0, 0, 1 for one made before sparse coding, distillation and ``min_time``)."""
    saved = read_json(evaluation_file, "", dict)
    recorded = saved.get("reproduce")
    recorded = recorded if isinstance(recorded, dict) else {}
    distill = recorded.get("finetune_distill", 0.0)
    return (str(saved.get("coding", "paper")), saved.get("sparsity", 0.0), distill,
            recorded.get("min_time", 1))  # fmt: skip


def sweep_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`sweep` keeps its per-L checkpoints and evaluations."""
    return Path(run_dir) / "sweep"


def _link_dnn(run: Path, work: Path) -> None:
    """Give the sweep folder the run's DNN checkpoint (a hard link, else a copy)."""
    work.mkdir(exist_ok=True)
    for name in ("dnn.safetensors", "dnn.json"):
        source, target = run / name, work / name
        if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


@writes_run("report")
def report_run(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the report of a run (``tdsnn.report.write_report``) from its JSON files.

    The files are written to a scratch folder and moved into place only when all
    are done, so a malformed ``evaluation.json`` or ``sweep.json`` gives a
    PipelineError naming it and leaves no partial report.
    """
    run = check_run_dir(run_dir)
    evaluation = read_json(
        run / "evaluation.json", f"run `tdsnn evaluate --from {run}` first", dict
    )
    sweep_file = run / "sweep.json"
    sweep_data = read_json(sweep_file, "", list) if sweep_file.is_file() else None
    if sweep_data is not None and not all(isinstance(r, dict) for r in sweep_data):
        raise PipelineError(f"{str(sweep_file)!r} must be a list of evaluations (JSON objects)")
    try:
        from .report import write_report
    except ImportError as exc:
        raise PipelineError(f"the report writer is not available: {exc}") from None
    with tempfile.TemporaryDirectory(dir=run, prefix=".report-") as scratch:
        try:
            written = write_report(scratch, evaluation, sweep_data)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            files = "evaluation.json" + (" or sweep.json" if sweep_data is not None else "")
            raise PipelineError(
                f"{files} in {str(run)!r} is malformed ({type(exc).__name__}: {exc}); "
                f"re-run `tdsnn evaluate --from {run}`"
            ) from None
        final = []
        for path in written:
            target = run / Path(path).name
            os.replace(path, target)
            final.append(target)
    return final


@writes_run("inspect")
def inspect_run(
    run_dir: str | os.PathLike[str],
    index: int = 0,
    *,
    L: float | None = None,
    backend: str = "clocked",
    out_dir: str | os.PathLike[str] | None = None,
    model_spec: ModelSource = None,
    log: Callable[[str], None] | None = print,
) -> list[Path]:
    """Simulate test sample ``index`` with the run's SNN and plot it (``tdsnn.plots``).

    The SNN runs on that one sample only (its result holds it at position 0); the
    files are named after ``index``.  ``log`` (None: quiet) gets a table of the
    populations: what each reads (shortcuts with their kind and delay), its release and
    ``T_il`` for this sample.  The result handed to the plots carries the SNN's graph
    and coding in ``extras["graph"]`` and ``extras["coding"]``.
    """
    run = check_run_dir(run_dir)
    snn, meta = load_snn(run, L, model_spec)
    test = load_dataset(meta["dataset"], "test", meta.get("data_dir"))
    if not 0 <= index < len(test):
        raise PipelineError(f"--index must be in 0..{len(test) - 1}, got {index}")
    x = float_images(
        ImageDataset(test.images[index : index + 1], test.labels[index : index + 1],
                     test.num_classes, test.class_names, test.name, test.mean, test.std)
    ) * float(meta["input_scale"])  # fmt: skip
    if backend not in BACKENDS:
        raise PipelineError(f"backend must be one of {BACKENDS}, got {backend!r}")
    result = snn.run(x.to(torch.float64), backend=backend)
    result.extras.update(
        label=int(test.labels[index]),
        class_names=list(test.class_names),
        sample_index=index,
        image=test.images[index],
        input_scale=float(meta["input_scale"]),
        L=float(meta["L"]),
        graph=describe_graph(snn),
        coding=snn.coding,
    )
    if log is not None:
        for line in population_lines(result, 0):
            log(line)
    try:
        from .plots import inspect_sample
    except ImportError as exc:
        raise PipelineError(f"the plotting module is not available: {exc}") from None
    target = make_run_dir(out_dir if out_dir is not None else run / "inspect")
    with tempfile.TemporaryDirectory(dir=target, prefix=".inspect-") as scratch:
        written = inspect_sample(result, 0, Path(scratch))
        return [_renumber(Path(path), index, target) for path in written]


def population_lines(result: Any, index: int = 0) -> list[str]:
    """A table of one sample's populations (``result.extras["graph"]`` from
    :func:`tdsnn.evaluation.describe_graph`): per population its neurons, release (global
    step of its frame's start), the ``T_il`` of its group and what it reads."""
    graph = result.extras["graph"]
    pops = graph["populations"]
    releases = result.extras.get("release") or []
    t_il = [int(t) for t in result.t_il[index].tolist()]
    latency = int(result.latency[index])
    neurons = {name: int(t[index].numel()) for name, t in zip(result.layer_names, result.spike_times, strict=True)}
    release = {name: int(r[index]) for name, r in zip(result.layer_names, releases, strict=False)}
    delays = result.extras.get("delays") or {}
    shortcut_of = {}
    for c in graph["shortcuts"]:
        d = delays.get(c["into"])
        delay = int(d[index, c["branch"]]) if d is not None and c["branch"] < d.shape[1] else None
        for src in c["from"]:
            shortcut_of[(c["into"], src)] = (c["kind"], delay)
    shortcuts = len(graph["shortcuts"])
    if graph["is_chain"]:
        head = f"SNN: a chain of {len(pops)} populations (input and output group included)"
    else:
        head = (f"SNN: a graph of {len(pops)} populations (input and output group included), "
                f"{shortcuts} shortcut connection{'s' if shortcuts != 1 else ''}")
    label = result.extras.get("label")
    sample = result.extras.get("sample_index", index)
    head += f"; test sample {sample}" + (f" (label {label})" if label is not None else "")
    head += f", predicted {int(result.predictions[index])}, read-out at step {latency}"
    group = 0
    rows = []
    for k, pop in enumerate(pops):
        name = pop["name"]
        reads = []
        for src, kind in pop["reads"]:
            if kind == "shortcut":
                how, delay = shortcut_of.get((name, src), ("?", None))
                reads.append(f"{src} (shortcut, {how}" + (f", delay {delay})" if delay is not None else ")"))
            else:
                reads.append(src if kind == "synapse" else f"{src} ({kind})")
        is_group = k > 0 and not any(kind == "pool" for _, kind in pop["reads"])
        period = "-"
        if is_group and group < len(t_il):
            period = str(t_il[group])
            group += 1
        output = k == len(pops) - 1
        rows.append([
            str(k), name + (" (output)" if output else ""),
            f"{neurons.get(name, result.logits.shape[1] if output else 0):,}",
            str(latency) if output else str(release.get(name, "-")), period,
            ", ".join(reads) or "-",
        ])  # fmt: skip
    headers = ["#", "population", "neurons", "release", "T_il", "reads"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = {2, 3, 4}

    def fmt(row: list[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  " + "  ".join(cells).rstrip()

    return [head, fmt(headers), *(fmt(r) for r in rows)]


def _renumber(path: Path, index: int, target: Path) -> Path:
    """Move ``raster_0.png`` to ``target/raster_<index>.png``: the plots saw position 0."""
    stem = path.stem[:-2] + f"_{index}" if path.stem.endswith("_0") else path.stem
    final = target / f"{stem}{path.suffix}"
    os.replace(path, final)
    return final


# ---------------------------------------------------------------------------- main job


@writes_run("run", create=True)
def run_all(
    out_dir: str | os.PathLike[str],
    *,
    dataset: str = DEFAULTS.dataset,
    model: str | None = DEFAULTS.model,
    L: float = DEFAULTS.L,
    epochs: int = DEFAULTS.epochs,
    finetune_epochs: int = DEFAULTS.finetune_epochs,
    lr: float = DEFAULTS.lr,
    finetune_lr: float = DEFAULTS.finetune_lr,
    input_scale: float = DEFAULTS.input_scale,
    activation_scales: Sequence[float] | float | None = None,
    backends: Sequence[str] = BACKENDS,
    calibrate: int | None = None,
    limit: int | None = None,
    inspect_index: int | None = 0,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
    coding: str = "paper",
    sparsity: float = 0.0,
    distill: float = 0.0,
    log: Callable[[str], None] = print,
    min_time: int = 1,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """The main job: train, fine-tune at L, convert, evaluate, report and inspect one sample.

    With ``resume`` a finished stage (its final checkpoint exists) is skipped and an
    unfinished one continues from its training state.  Returns the evaluation dict
    with ``timing_s`` extended by the wall time of every stage.  ``coding``,
    ``sparsity``, ``distill`` and ``min_time`` are the G-DNN's fine-tuning
    (:func:`tdsnn.pipeline.finetune`); ``augment`` (in ``train_kwargs``) applies to
    training and fine-tuning alike.
    """
    coding, sparsity = check_sparsity_options(coding, sparsity)
    min_time = check_min_time_option(min_time, coding)
    L = check_L(L)
    out = Path(out_dir)
    spec = train_kwargs.get("model_spec")
    stages: dict[str, float] = {}
    main = context().is_main
    start = time.perf_counter()
    if resume and dnn_path(out).is_file():
        log(f"[1/5] DNN: {dnn_path(out)} exists, kept")
    else:
        log(f"[1/5] training {model} on {dataset} for {epochs} epochs")
        meta = train_dnn(
            out, dataset=dataset, model=model, epochs=epochs, lr=lr, resume=resume,
            force=force, progress=progress, device=device, **train_kwargs,
        )  # fmt: skip
        log(f"      DNN test accuracy {meta['metrics'].get('eval_top1', float('nan')):.4f}")
    stages["train"] = time.perf_counter() - start
    tick = time.perf_counter()
    if resume and gdnn_path(out, L).is_file():
        log(f"[2/5] G-DNN: {gdnn_path(out, L)} exists, kept")
    else:
        log(f"[2/5] prepare at L={L:g} (input scale {input_scale:g}, {coding} coding) and "
            f"fine-tune {finetune_epochs} epochs"
            + (f", sparsity {sparsity:g}" if sparsity else "")
            + (f", silent below t = {min_time}" if min_time > 1 else "")
            + (f", distilling the DNN ({distill:g})" if distill else ""))  # fmt: skip
        meta = finetune(
            out, L=L, epochs=finetune_epochs, lr=finetune_lr, input_scale=input_scale,
            activation_scales=activation_scales, resume=resume, force=force,
            progress=progress, device=device, model_spec=spec, coding=coding,
            sparsity=sparsity, distill=distill, augment=train_kwargs.get("augment", "none"),
            min_time=min_time,
        )  # fmt: skip
        if meta["metrics"]:
            log(f"      G-DNN test accuracy {meta['metrics'].get('eval_top1', float('nan')):.4f}")
    stages["finetune"] = time.perf_counter() - tick
    tick = time.perf_counter()
    if main:
        log(f"[3/5] convert ({'static' if calibrate else 'dynamic'} T_il)")
        convert_run(out, L=L, calibrate=calibrate, model_spec=spec)
    barrier()
    stages["convert"] = time.perf_counter() - tick
    tick = time.perf_counter()
    log(f"[4/5] evaluate on the test set with {', '.join(backends)}")
    result = evaluate_run(
        out, L=L, backends=backends, limit=limit, progress=progress, device=device,
        model_spec=spec,
    )
    stages["evaluate"] = time.perf_counter() - tick
    tick = time.perf_counter()
    if main:
        log("[5/5] report and plots")
        _optional(lambda: report_run(out), "report", log)
        if inspect_index is not None:
            _optional(
                lambda: inspect_run(out, inspect_index, L=L, model_spec=spec, log=None),
                "inspect", log,
            )
    stages["report"] = time.perf_counter() - tick
    stages["total"] = time.perf_counter() - start
    result["stages_s"] = stages
    if main:
        write_json(out / "run_timing.json", stages)
    return result


def _optional(step: Callable[[], list[Path]], what: str, log: Callable[[str], None]) -> None:
    """Run a report/plot step; a missing or failing writer does not lose the evaluation."""
    try:
        paths = step()
    except PipelineError as exc:
        log(f"      {what} skipped: {exc}")
        return
    except Exception as exc:  # the writers are optional extras of the main job
        log(f"      {what} failed: {type(exc).__name__}: {exc}")
        return
    for path in paths:
        log(f"      wrote {path}")
