"""The ``tdsnn`` command line's parser: subcommands, their options and value types.

Every value is checked as it is parsed (a leak constant, a count, a unit interval, a
JSON object of model arguments), so a bad argument ends in argparse's usage line and
exit code 2 before any work starts.  :mod:`tdsnn.cli` runs the parsed commands.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any, NoReturn

from . import __version__
from .errors import TDSNNError

PROG = "tdsnn"

DESCRIPTION = """\
Convert a trained CNN into an exact temporal-coding spiking network (TDSNN,
Zhang et al., AAAI 2019), following Figure 2 of the paper:

  train       DNN with a ReLU after every hidden synapse layer   -> dnn.safetensors
  finetune    prepare: G (eq. 11) before every synapse layer,
              normalisation folded into the first layer; re-train -> gdnn_L5.safetensors
  convert     negate weights, bias neuron at T(1), ticking neuron
              (eq. 9), spiking max-pool; T_il dynamic or static   -> snn_L5.safetensors
  evaluate    DNN / G-DNN / SNN accuracy, agreement, latency,
              spikes and operation counts (Table 2)               -> evaluation.json
  sweep       finetune + convert + evaluate for several L (Fig 4) -> sweep.json
  report      tables and plots from evaluation.json / sweep.json
  inspect     spike raster of one test sample
  run         the whole chain in one go (the main job)

Every stage reads and writes a run folder (--out / --from).  Checkpoints are
.safetensors files with a JSON sidecar (architecture, L, data set,
normalisation, input scale, metrics); nothing is pickled.  The SNN's input is
pixel/255 * input_scale (non-negative); the DNN sees the normalised pixels.
Multi-process training: torchrun --nproc_per_node=N -m tdsnn.cli train ...
"""

EXAMPLES = {
    "train": "tdsnn train --dataset mnist --model lenet5 --epochs 3 --out runs/x\n"
    "  tdsnn train --dataset cifar10 --model vgg_cifar --width 0.25 --out runs/vgg\n"
    "  tdsnn train --model-spec mynets.py:small_cnn --input-shape 1,28,28 --out runs/mine",
    "finetune": "tdsnn finetune --from runs/x --L 5 --epochs 1\n"
    "  tdsnn finetune --from runs/x --L 5 --coding sparse --sparsity 1\n"
    "  tdsnn finetune --from runs/x --L 5 --distill 0.5      (the DNN as a teacher)\n"
    "  tdsnn finetune --from runs/x --L 3 --input-scale 8 --activation-scale 2",
    "convert": "tdsnn convert --from runs/x            (dynamic T_il)\n"
    "  tdsnn convert --from runs/x --calibrate 1000   (static T_il from 1000 training images)",
    "evaluate": "tdsnn evaluate --from runs/x\n"
    "  tdsnn evaluate --from runs/x --backends closed_form --limit 1000",
    "sweep": "tdsnn sweep --from runs/x --L 1,2,3,4,5,6,7,8 --epochs 1",
    "report": "tdsnn report --from runs/x",
    "inspect": "tdsnn inspect --from runs/x --index 0",
    "run": "tdsnn run                               (LeNet-5 on MNIST at L=5 into runs/main)\n"
    "  tdsnn run --dataset mnist --model lenet5 --L 5 --epochs 4 --finetune-epochs 2 --out runs/main",
}


class CLIError(TDSNNError, ValueError):
    """A bad command-line value (reported like every other user error)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------------ value types


def _leak(text: str) -> float:
    from .coding import check_leak

    try:
        return check_leak(float(text))
    except ValueError:  # not a number, or outside the range the arithmetic can represent
        try:
            check_leak(text)
        except TDSNNError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        raise argparse.ArgumentTypeError(f"L must be a number > 0, got {text!r}") from None


def _leaks(text: str) -> list[float]:
    return [_leak(part) for part in text.split(",") if part.strip()] or [_leak(text)]


def _checked(cast: Callable[[str], Any], valid: Callable[[Any], bool], what: str):
    """An argparse type: ``cast`` the text, then require ``valid`` (else say ``what``)."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_count = _checked(int, lambda v: v >= 0, "an integer >= 0")
_min_time = _checked(int, lambda v: 1 <= v <= 2**24, "an integer in 1..2**24")
_positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_non_negative_float = _checked(
    float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"
)
_unit_float = _checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
_seed = _checked(int, lambda v: 0 <= v < 2**63, "an integer seed in 0..2**63-1")


def _scales(text: str) -> float | list[float] | str:
    """'2' (every hidden layer), '2,1,1' (one per hidden synapse layer) or 'auto'."""
    if text.strip().lower() == "auto":
        return "auto"
    values = [_positive_float(part) for part in text.split(",")]
    return values[0] if len(values) == 1 else values


def _shape(text: str) -> list[int]:
    try:
        shape = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"input shape must look like C,H,W, got {text!r}"
        ) from None
    if len(shape) < 1 or any(s < 1 for s in shape):
        raise argparse.ArgumentTypeError(f"input shape must be positive sizes, got {text!r}")
    return shape


def _backends(text: str) -> list[str]:
    from .evaluation import BACKENDS

    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in BACKENDS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"backends must be a comma-separated subset of {','.join(BACKENDS)}, got {text!r}"
        )
    return names


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--model-kwargs is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--model-kwargs must be a JSON object")
    return value


# --------------------------------------------------------------------------- options


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument("--data-dir", help="folder holding the data set (default: built-in places)")
    group.add_argument("--batch-size", type=_positive_int, help="global batch size")
    group.add_argument("--seed", type=_seed, help="random seed (model init, data order)")
    group.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    group.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _resumable(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("checkpointing")
    group.add_argument(
        "--resume", action="store_true", help="continue from the last training checkpoint"
    )
    group.add_argument("--force", action="store_true", help="replace an existing result")
    group.add_argument(
        "--max-steps", type=_positive_int, help="stop after this many steps (resume later)"
    )
    group.add_argument(
        "--checkpoint-every", type=_count, default=200, help="steps between checkpoints (200)"
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    from .models import MODELS

    group = parser.add_argument_group("data and model")
    group.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist, cifar10, folder")
    group.add_argument("--model", default="lenet5", help=f"one of {', '.join(sorted(MODELS))}")
    group.add_argument("--width", type=_positive_float, help="channel multiplier (CIFAR models, ResNets)")
    group.add_argument(
        "--model-spec", help="a user model: 'pkg.module:function' or 'file.py:function'"
    )
    group.add_argument("--input-shape", type=_shape, help="C,H,W of a --model-spec model")
    group.add_argument("--model-kwargs", type=_json_object, help="JSON constructor kwargs")
    group.add_argument(
        "--no-normalize", action="store_true", help="train on pixel/255, not z-scores"
    )
    group.add_argument("--train-limit", type=_positive_int, help="use the first N training images")
    group.add_argument("--test-limit", type=_positive_int, help="use the first N test images")


def _load_spec(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-spec",
        help="for a run of a user model: the 'pkg.module:function' or 'file.py:function' it "
        "was trained with (tdsnn never imports code named in a run folder)",
    )


def _finetune_options(parser: argparse.ArgumentParser, *, in_run: bool) -> None:
    from .pipeline import DEFAULTS

    group = parser.add_argument_group("G-DNN (prepare and fine-tune)")
    group.add_argument(
        "--input-scale",
        type=_positive_float,
        default=DEFAULTS.input_scale,
        help="spiking input = pixel/255 * this; more G levels, more latency "
        f"(default {DEFAULTS.input_scale:g})",
    )
    group.add_argument(
        "--activation-scale",
        type=_scales,
        help="factor on hidden activations before G, one value or one per hidden layer "
        "(folded into the weights; default 1), or 'auto': from 2000 training images, "
        "each layer's 99.9th percentile mapped to 32 (recommended for deep networks)",
    )
    group.add_argument(
        "--no-compensate", action="store_true", help="do not rescale weights for G ~ kappa(1+x)"
    )
    group.add_argument(
        "--coding",
        choices=("paper", "sparse"),
        default="paper",
        help="spike coding: paper (default; every neuron fires once, a zero at t=0) or "
        "sparse (a neuron of value <= 0 stays silent: fewer spikes and synaptic events)",
    )
    group.add_argument(
        "--sparsity",
        type=_non_negative_float,
        default=0.0,
        metavar="LAMBDA",
        help="fine-tuning loss += LAMBDA * soft fraction of the synaptic events (non-silent neurons weighted by their fan-out), pushing small "
        "activations to silence (a finite number >= 0, default 0; > 0 needs --coding sparse)",
    )
    group.add_argument(
        "--min-time",
        type=_min_time,
        default=1,
        metavar="K",
        help="sparse coding (beyond the paper): a hidden neuron whose spike would come before "
        "local time K stays silent, i.e. the first K-1 levels are silenced too (an integer "
        ">= 1, default 1: only values <= 0 are silent; > 1 needs --coding sparse)",
    )
    group.add_argument(
        "--augment",
        choices=("none", "flip-crop"),
        default="none",
        help="training-time augmentation of fine-tuning (with run: of the DNN training too): none (default) or flip-crop (random left-right flips and "
        "4-pixel crops, seeded per step; the standard CIFAR-10 augmentation)",
    )
    group.add_argument(
        "--distill",
        type=_unit_float,
        default=0.0,
        metavar="ALPHA",
        help="distil the DNN into the G-DNN: fine-tuning loss = (1 - ALPHA) cross-entropy + "
        "ALPHA * distillation loss against the DNN's logits (temperature 4; a number in "
        "[0, 1], default 0: labels only)",
    )
    if in_run:
        group.add_argument("--finetune-epochs", type=_count, default=DEFAULTS.finetune_epochs)
        group.add_argument("--finetune-lr", type=_positive_float, default=DEFAULTS.finetune_lr)


def _coding_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--coding",
        choices=("paper", "sparse"),
        help="only a check: the coding comes from the run folder (recorded by finetune); "
        "if given and different, stop with an error",
    )


def check_sparsity(args: argparse.Namespace) -> None:
    """Refuse --sparsity > 0 or --min-time > 1 without --coding sparse before any work starts."""
    from .pipeline import check_min_time_option, check_sparsity_options

    check_sparsity_options(args.coding, args.sparsity)
    check_min_time_option(getattr(args, "min_time", 1), args.coding)


def _add(subparsers, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=f"example:\n  {EXAMPLES[name]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    from .pipeline import DEFAULTS

    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog="examples:\n  " + "\n  ".join(EXAMPLES[k].split("\n")[0] for k in EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = _add(sub, "train", "train the DNN (Figure 2, step 1)",
             "Train a CNN classifier (Adam or SGD, cosine schedule) into OUT/dnn.safetensors, "
             "with a resumable training state checkpointed every --checkpoint-every steps "
             "and every epoch.")  # fmt: skip
    _model_options(p)
    p.add_argument("--out", required=True, help="run folder to create")
    p.add_argument("--epochs", type=_count, default=DEFAULTS.epochs)
    p.add_argument("--lr", type=_positive_float, default=DEFAULTS.lr)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--weight-decay", type=_non_negative_float, default=0.0)
    p.add_argument("--scheduler", choices=("cosine", "none"), default="cosine")
    p.add_argument(
        "--augment",
        choices=("none", "flip-crop"),
        default="none",
        help="training-time augmentation: none (default) or flip-crop (random left-right flips and "
        "4-pixel crops, seeded per step; the standard CIFAR-10 augmentation)",
    )
    _resumable(p)
    _common(p)

    p = _add(sub, "finetune", "prepare the G-DNN at L and re-train it (step 2)",
             "Insert G (eq. 11) before every synapse layer of the run's DNN (tdsnn.prepare: "
             "BatchNorm and normalisation folded, weights compensated), then fine-tune it "
             "with the straight-through gradient into FROM/gdnn_L<L>.safetensors.")  # fmt: skip
    p.add_argument("--from", dest="run", required=True, help="run folder (from `tdsnn train`)")
    _load_spec(p)
    p.add_argument(
        "--L", type=_leak, default=DEFAULTS.L, help=f"leak constant (default {DEFAULTS.L:g})"
    )
    p.add_argument("--epochs", type=_count, default=DEFAULTS.finetune_epochs)
    p.add_argument("--lr", type=_positive_float, default=DEFAULTS.finetune_lr)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--train-limit", type=_positive_int)
    p.add_argument("--test-limit", type=_positive_int)
    _finetune_options(p, in_run=False)
    _resumable(p)
    _common(p)

    p = _add(sub, "convert", "convert the G-DNN into the SNN (step 3)",
             "Convert FROM/gdnn_L<L> into FROM/snn_L<L>.safetensors.  Without --calibrate "
             "every layer's inhibitory period follows the sample (dynamic T_il, Algorithm 1); "
             "with --calibrate N it is fixed per layer from N training images (static T_il).")  # fmt: skip
    p.add_argument("--from", dest="run", required=True)
    _load_spec(p)
    p.add_argument("--L", type=_leak, help="which G-DNN (default: the only one)")
    p.add_argument("--calibrate", type=_positive_int, metavar="N", help="static T_il from N images")
    _coding_check(p)
    _common(p)

    p = _add(sub, "evaluate", "evaluate DNN, G-DNN and SNN on the test set",
             "Top-1/top-5 accuracy of DNN, G-DNN and SNN (each simulator), SNN/G-DNN "
             "agreement, latency, T_il, spikes and operation counts with Table-2 ratios; "
             "writes FROM/evaluation.json and prints a table.")  # fmt: skip
    p.add_argument("--from", dest="run", required=True)
    _load_spec(p)
    p.add_argument("--L", type=_leak, help="which SNN (default: the only one)")
    p.add_argument("--backends", type=_backends, default=["closed_form", "clocked"],
                   help="closed_form,clocked (default both)")  # fmt: skip
    p.add_argument("--limit", type=_positive_int, help="evaluate the first N test images")
    p.add_argument("--split", choices=("test", "holdout"), default="test",
                   help="test (default), or holdout: the training images after the run's "
                        "--train-limit, which neither training nor fine-tuning saw (for "
                        "choosing settings without the test set); writes "
                        "FROM/evaluation_holdout_L<L>.json only")  # fmt: skip
    p.add_argument("--precision", choices=("certified", "float64", "float32"), default="certified",
                   help="SNN arithmetic: certified (default; float32 speed, float64 spike "
                        "times), float64, or float32 (fastest; may differ at level boundaries)")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    _coding_check(p)
    _common(p)

    p = _add(sub, "sweep", "fine-tune, convert and evaluate for several L (Figure 4)",
             "From the same trained DNN, for every L: fine-tune the G-DNN, convert and "
             "evaluate, in FROM/sweep/ (the main job's files are left alone); writes "
             "FROM/sweep.json, one evaluation per L.")  # fmt: skip
    p.add_argument("--from", dest="run", required=True)
    _load_spec(p)
    p.add_argument("--L", type=_leaks, required=True, help="comma-separated, e.g. 1,2,3,4,5")
    p.add_argument("--epochs", type=_count, default=DEFAULTS.finetune_epochs)
    p.add_argument("--lr", type=_positive_float, default=DEFAULTS.finetune_lr)
    p.add_argument("--backends", type=_backends, default=["closed_form"])
    p.add_argument("--calibrate", type=_positive_int, metavar="N")
    p.add_argument("--limit", type=_positive_int, help="evaluate the first N test images")
    _finetune_options(p, in_run=False)
    _resumable(p)
    _common(p)

    p = _add(sub, "report", "write the report and plots of a run",
             "Write the report (tables, plots) from FROM/evaluation.json and sweep.json.")  # fmt: skip
    p.add_argument("--from", dest="run", required=True)
    _common(p)

    p = _add(sub, "inspect", "plot the spikes of one test sample",
             "Simulate test sample INDEX with the run's SNN and plot its spike times "
             "layer by layer into FROM/inspect/.")  # fmt: skip
    p.add_argument("--from", dest="run", required=True)
    _load_spec(p)
    p.add_argument("--index", type=_count, default=0)
    p.add_argument("--L", type=_leak)
    p.add_argument("--backend", choices=("closed_form", "clocked"), default="clocked")
    p.add_argument("--out", help="output folder (default FROM/inspect)")
    _common(p)

    p = _add(sub, "run", "the main job: train, fine-tune, convert, evaluate, report",
             "Train the DNN, prepare and fine-tune the G-DNN at L, convert it, evaluate both "
             "simulators on the whole test set, write the report and plots and inspect one "
             "sample.  The defaults reproduce LeNet-5 on MNIST at L=5 (paper Table 1) in a "
             "few minutes on a laptop CPU.  --resume skips finished stages.")  # fmt: skip
    _model_options(p)
    p.add_argument("--out", default="runs/main", help="run folder (default runs/main)")
    p.add_argument("--L", type=_leak, default=DEFAULTS.L)
    p.add_argument("--epochs", type=_count, default=DEFAULTS.epochs, help="DNN epochs")
    p.add_argument("--lr", type=_positive_float, default=DEFAULTS.lr, help="DNN learning rate")
    _finetune_options(p, in_run=True)
    p.add_argument("--backends", type=_backends, default=["closed_form", "clocked"])
    p.add_argument("--calibrate", type=_positive_int, metavar="N", help="static T_il from N images")
    p.add_argument("--inspect-index", type=_count, default=0, help="test sample to plot")
    _resumable(p)
    _common(p)
    return parser
