"""The ``tdsnn`` command line: the Figure-2 pipeline over a run folder.

Each subcommand (parsed by :mod:`tdsnn.cli_parser`) is a thin wrapper over
:mod:`tdsnn.pipeline` and :mod:`tdsnn.jobs`; errors a user can
fix (unknown data set or model, missing run folder or checkpoint, bad L, data
not found) end with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli_parser import PROG, build_parser, check_sparsity
from .errors import TDSNNError

# ------------------------------------------------------------------------ subcommands


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet


def _arch_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = dict(args.model_kwargs or {})
    if args.width is not None:
        kwargs["width"] = args.width
    return kwargs


def _train_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model_spec": args.model_spec,
        "arch_kwargs": _arch_kwargs(args),
        "input_shape": args.input_shape,
        "data_dir": args.data_dir,
        "normalize": not args.no_normalize,
        "train_limit": args.train_limit,
        "test_limit": args.test_limit,
        "max_steps": args.max_steps,
        "checkpoint_every": args.checkpoint_every,
        "augment": args.augment,
    }
    if args.batch_size is not None:
        out["batch_size"] = args.batch_size
    if args.seed is not None:
        out["seed"] = args.seed
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from .pipeline import dnn_path, train_dnn

    meta = train_dnn(
        args.out, dataset=args.dataset, model=None if args.model_spec else args.model,
        epochs=args.epochs, lr=args.lr, optimizer=args.optimizer,
        weight_decay=args.weight_decay, scheduler=args.scheduler, resume=args.resume,
        force=args.force, progress=_progress(args), device=args.device, **_train_kwargs(args),
    )  # fmt: skip
    _say_stage(meta, dnn_path(args.out), "DNN")
    return 0


def _say_stage(meta: dict[str, Any], path: Path, what: str) -> None:
    from .distributed import print0

    if not meta.get("completed", True):
        print0(f"{what} training stopped early (--max-steps); continue with --resume")
        return
    metrics = meta.get("metrics") or {}
    acc = metrics.get("eval_top1")
    text = f", test accuracy {acc:.4f}" if acc is not None else ""
    print0(f"{what} saved to {path}{text}")


def cmd_finetune(args: argparse.Namespace) -> int:
    from .pipeline import finetune, gdnn_path

    check_sparsity(args)
    meta = finetune(
        args.run, L=args.L, epochs=args.epochs, lr=args.lr, optimizer=args.optimizer,
        input_scale=args.input_scale, activation_scales=args.activation_scale,
        compensate=not args.no_compensate, batch_size=args.batch_size, seed=args.seed,
        train_limit=args.train_limit, test_limit=args.test_limit, data_dir=args.data_dir,
        resume=args.resume, force=args.force, progress=_progress(args), device=args.device,
        max_steps=args.max_steps, checkpoint_every=args.checkpoint_every,
        model_spec=args.model_spec, coding=args.coding, sparsity=args.sparsity,
        distill=args.distill, augment=args.augment, min_time=args.min_time,
    )  # fmt: skip
    _say_stage(meta, gdnn_path(args.run, args.L), f"G-DNN (L={args.L:g}, {args.coding} coding)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .pipeline import convert_run, snn_path

    meta = convert_run(
        args.run, L=args.L, calibrate=args.calibrate, model_spec=args.model_spec,
        coding=args.coding,
    )  # fmt: skip
    mode = meta["t_il_mode"]
    detail = f" T_il={meta['static_t_il']}" if meta["static_t_il"] else ""
    coding = meta.get("coding", "paper")
    print(f"SNN saved to {snn_path(args.run, meta['L'])} ({mode}{detail}, {coding} coding)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .distributed import print0
    from .evaluation import format_table
    from .pipeline import evaluate_run
    from .runfolder import l_tag

    result = evaluate_run(
        args.run, L=args.L, backends=args.backends, limit=args.limit,
        batch_size=args.batch_size or 100, progress=_progress(args), device=args.device,
        precision=args.precision, model_spec=args.model_spec, coding=args.coding,
        split=args.split,
    )  # fmt: skip
    print0(json.dumps(result, indent=2) if args.json else format_table(result))
    name = "evaluation.json" if args.split == "test" else f"evaluation_holdout_{l_tag(result['L'])}.json"
    print0(f"wrote {Path(args.run) / name}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .distributed import print0
    from .jobs import sweep

    check_sparsity(args)
    results = sweep(
        args.run, args.L, epochs=args.epochs, lr=args.lr, input_scale=args.input_scale,
        activation_scales=args.activation_scale, compensate=not args.no_compensate,
        backends=args.backends, calibrate=args.calibrate, limit=args.limit,
        resume=args.resume, force=args.force, progress=_progress(args), device=args.device,
        batch_size=args.batch_size, seed=args.seed, data_dir=args.data_dir,
        max_steps=args.max_steps, checkpoint_every=args.checkpoint_every,
        model_spec=args.model_spec, coding=args.coding, sparsity=args.sparsity,
        distill=args.distill, augment=args.augment, min_time=args.min_time,
    )  # fmt: skip
    print0(f"{'L':>5}{'G-DNN err %':>13}{'SNN err %':>11}{'agreement':>11}{'latency':>9}")
    for r in results:
        backend = next(iter(r["accuracy"]["snn"]))
        print0(
            f"{r['L']:>5g}{100 * (1 - r['accuracy']['gdnn']['top1']):>13.2f}"
            f"{100 * (1 - r['accuracy']['snn'][backend]['top1']):>11.2f}"
            f"{r['agreement'][backend]:>11.4f}{r['latency']['mean']:>9.1f}"
        )
    print0(f"wrote {Path(args.run) / 'sweep.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .jobs import report_run

    for path in report_run(args.run):
        print(f"wrote {path}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .jobs import inspect_run

    paths = inspect_run(
        args.run, args.index, L=args.L, backend=args.backend, out_dir=args.out,
        model_spec=args.model_spec,
    )  # fmt: skip
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .distributed import print0
    from .evaluation import format_table
    from .jobs import run_all

    check_sparsity(args)
    result = run_all(
        args.out, dataset=args.dataset, model=None if args.model_spec else args.model,
        L=args.L, epochs=args.epochs, finetune_epochs=args.finetune_epochs, lr=args.lr,
        finetune_lr=args.finetune_lr, input_scale=args.input_scale,
        activation_scales=args.activation_scale, backends=args.backends,
        calibrate=args.calibrate, limit=args.test_limit, inspect_index=args.inspect_index,
        resume=args.resume, force=args.force, progress=_progress(args), device=args.device,
        coding=args.coding, sparsity=args.sparsity, distill=args.distill, log=print0,
        min_time=args.min_time,
        **_train_kwargs(args),
    )  # fmt: skip
    print0(format_table(result))
    print0(f"total {result['stages_s']['total']:.0f} s; results in {args.out}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "finetune": cmd_finetune,
    "convert": cmd_convert,
    "evaluate": cmd_evaluate,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "inspect": cmd_inspect,
    "run": cmd_run,
}
DISTRIBUTED = ("train", "finetune", "evaluate", "sweep", "run")


def _one_line(exc: BaseException) -> str:
    """An error message on one line (DatasetError lists the places it looked)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def _tuned_process(command: str, threads: int | None = None) -> None:
    """Re-execute once, before a compute-heavy command, with the process settings of
    :mod:`.process` (glibc's allocator thresholds, and ``OMP_WAIT_POLICY=PASSIVE`` when
    other processes hold cores that the ``threads`` need).

    Both are read when the process starts, hence the re-exec.  libgomp's spinning
    workers keep the core another process needs (training slowed down 10-20x on a
    shared 2-core machine), while passive waiting slows the certified SNN 1.3-2.3x on
    an idle one; glibc's default thresholds make every large tensor fresh, page-faulted
    memory.  A variable the user already set is kept as it is.
    """
    if command in DISTRIBUTED:
        from .process import reexec_tuned

        reexec_tuned(sys.argv[1:], threads=threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tdsnn`` and ``python -m tdsnn.cli``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if argv is None:  # a real command line, not a call from Python
        _tuned_process(args.command, getattr(args, "threads", None))
    import torch
    import torch.distributed as dist

    from .distributed import cleanup, init_distributed

    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    joined = False  # leave a process group we did not create alone
    try:
        if args.command in DISTRIBUTED and not (dist.is_available() and dist.is_initialized()):
            joined = init_distributed(args.device).distributed
        return COMMANDS[args.command](args)
    except TDSNNError as exc:
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused: a full disk, a permission, a vanished file
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{PROG} {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG} {args.command}: error: out of memory (try a smaller --batch-size)",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        if joined:
            cleanup()
        torch.set_num_threads(threads)  # a call from Python leaves the process as it was


if __name__ == "__main__":
    sys.exit(main())
