"""Hostile-input corpus, command-line family: values, environment, output places.

Every bad value or setting ends with exit status 2 and one line on stderr that
names the option and what would be valid; nothing is written.  See
docs/reliability.md for the summary.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from clitools import one_line_error, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from tdsnn.cli import build_parser

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--train-limit", "64", "--test-limit", "16", "--quiet", "--epochs", "0"]




# ------------------------------------------------------------------- option values

BAD_VALUES = [
    (["train", "--weight-decay", "nan"], "finite number >= 0"),
    (["train", "--weight-decay", "-1"], "finite number >= 0"),
    (["train", "--weight-decay", "inf"], "finite number >= 0"),
    (["train", "--seed", "1e25"], "integer seed"),
    (["train", "--seed", str(10**30)], "integer seed"),
    (["train", "--seed", "-1"], "integer seed"),
    (["train", "--lr", "0"], "finite number > 0"),
    (["train", "--batch-size", "0"], "positive integer"),
    (["train", "--threads", "0"], "positive integer"),
    (["train", "--epochs", "-1"], "integer >= 0"),
    (["train", "--width", "nan"], "finite number > 0"),
    (["train", "--input-shape", "1,x,28"], "C,H,W"),
    (["train", "--model-kwargs", "[1]"], "JSON object"),
    (["train", "--model-kwargs", "{"], "not valid JSON"),
    (["finetune", "--from", "{tmp}", "--L", "1e-3"], "L"),
    (["finetune", "--from", "{tmp}", "--L", "1e300"], "L"),
    (["finetune", "--from", "{tmp}", "--L", "nan"], "L"),
    (["finetune", "--from", "{tmp}", "--input-scale", "-2"], "finite number > 0"),
    (["finetune", "--from", "{tmp}", "--activation-scale", "1,0"], "finite number > 0"),
    (["convert", "--from", "{tmp}", "--calibrate", "0"], "positive integer"),
    (["evaluate", "--from", "{tmp}", "--limit", "-5"], "positive integer"),
    (["inspect", "--from", "{tmp}", "--index", "-1"], "integer >= 0"),
    (["finetune", "--from", "{tmp}", "--sparsity", "-1"], "finite number >= 0"),
    (["finetune", "--from", "{tmp}", "--sparsity", "nan"], "finite number >= 0"),
    (["finetune", "--from", "{tmp}", "--sparsity", "1"], "--coding sparse"),
    (["finetune", "--from", "{tmp}", "--coding", "dense"], "invalid choice"),
    (["sweep", "--from", "{tmp}", "--L", "5", "--sparsity", "2"], "--coding sparse"),
    (["convert", "--from", "{tmp}", "--coding", "dense"], "invalid choice"),
]


@pytest.mark.parametrize("argv,expected", BAD_VALUES, ids=[" ".join(a[:3]) for a, _ in BAD_VALUES])
def test_a_bad_value_is_refused_before_any_work(tmp_path, capsys, argv, expected):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "out"), *SMALL]
    assert run_cli(*argv) == 2
    assert expected.lower() in one_line_error(capsys).lower()
    assert not (tmp_path / "out").exists()


NUMERIC = {"--lr": "positive", "--weight-decay": "non-negative", "--seed": "seed",
           "--batch-size": "count", "--epochs": "count0", "--width": "positive"}  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(option=st.sampled_from(sorted(NUMERIC)),
       text=st.one_of(st.text(max_size=12), st.floats().map(repr),
                      st.integers(-(2**80), 2**80).map(str)))  # fmt: skip
def test_any_text_for_a_number_parses_to_a_valid_value_or_exits_2(option, text):
    parser = build_parser()
    try:
        args = parser.parse_args(["train", "--out", "x", option + "=" + text])
    except SystemExit as exc:
        assert exc.code == 2
        return
    value = getattr(args, option[2:].replace("-", "_"))
    kind = NUMERIC[option]
    if kind == "positive":
        assert math.isfinite(value) and value > 0
    elif kind == "non-negative":
        assert math.isfinite(value) and value >= 0
    elif kind == "seed":
        assert isinstance(value, int) and 0 <= value < 2**63
    else:
        assert isinstance(value, int) and value >= (1 if kind == "count" else 0)


@settings(max_examples=60, deadline=None)
@given(text=st.one_of(st.text(max_size=10), st.floats().map(repr)))
def test_any_text_for_L_parses_to_a_usable_leak_or_exits_2(text):
    from tdsnn.coding import check_leak

    try:
        args = build_parser().parse_args(["convert", "--from", "x", "--L=" + text])
    except SystemExit as exc:
        assert exc.code == 2
        return
    assert check_leak(args.L) == args.L


# ------------------------------------------------------------------ model arguments


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["--model-kwargs", '{"num_classes": 3}'], "10 classes"),
        (["--model-kwargs", '{"bogus": 1}'], "no argument 'bogus'"),
        (["--model-kwargs", '{"num_classes": "ten"}'], "lenet5"),
        (["--model", "vgg_cifar", "--dataset", "cifar10", "--width", "1000"], "parameters"),
        (["--model", "vgg_cifar", "--dataset", "cifar10", "--model-kwargs", '{"depth": 12}'],
         "depth"),
        (["--model", "os.system"], "unknown model"),
    ],
)
def test_bad_model_arguments_are_clean_errors(tmp_path, capsys, extra, expected):
    rc = run_cli("train", "--out", tmp_path / "out", *SMALL, *extra)
    assert rc == 2
    assert expected.lower() in one_line_error(capsys).lower()
    assert not (tmp_path / "out" / "dnn.safetensors").exists()


# ---------------------------------------------------------------- places and setup


def test_out_pointing_at_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("not a folder")
    assert run_cli("train", "--out", target, *SMALL) == 2
    assert "is a file" in one_line_error(capsys)
    assert run_cli("train", "--out", target / "below", *SMALL) == 2
    assert "is a file" in one_line_error(capsys)
    assert run_cli("evaluate", "--from", target) == 2
    assert "is a file" in one_line_error(capsys)


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"WORLD_SIZE": "2"}, "RANK is not"),
        ({"WORLD_SIZE": "two"}, "not an integer"),
        ({"WORLD_SIZE": "0"}, "out of range"),
        ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR"),
        ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0"},
         "MASTER_PORT"),
    ],
)
def test_a_broken_launch_environment_is_named(tmp_path, capsys, monkeypatch, env, expected):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run_cli("train", "--out", tmp_path / "out", *SMALL) == 2
    assert expected in one_line_error(capsys)


def test_a_real_process_exits_2_without_a_traceback(tmp_path):
    target = tmp_path / "f"
    target.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "tdsnn.cli", "train", "--out", str(target), *SMALL],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
