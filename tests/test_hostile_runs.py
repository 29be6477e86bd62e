"""Hostile-input corpus, run-folder family: sidecars, checkpoints, locks, interrupted saves.

A run folder is data that people share like model files.  Whatever it holds,
reading it never imports or calls anything named in it, and a bad file gives a
TDSNNError that names the file and field (exit 2 on the command line), never a
traceback or a wrong result.  See docs/reliability.md for the summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from clitools import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdsnn import pipeline as P
from tdsnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tdsnn.errors import TDSNNError
from tdsnn.runfolder import run_lock

pytestmark = pytest.mark.usefixtures("one_thread")



def sidecar(run: Path, name: str) -> dict:
    return json.loads((run / f"{name}.json").read_text())


def write_sidecar(run: Path, name: str, doc: dict) -> None:
    (run / f"{name}.json").write_text(json.dumps(doc))


def set_meta(run: Path, name: str, **fields: object) -> None:
    doc = sidecar(run, name)
    doc["metadata"].update(fields)
    write_sidecar(run, name, doc)


def rewrite_tensors(run: Path, name: str, change) -> None:
    """Save ``change(state)`` as the checkpoint's tensors, sha256 updated (a 'valid' pair)."""
    state, meta = load_checkpoint(run / f"{name}.safetensors")
    save_checkpoint(run / f"{name}.safetensors", change(dict(state)), meta)


# --------------------------------------------------------------- no code from data

EVIL_SPECS = [
    ("os:system", {"command": "touch {marker}"}),
    ("subprocess:getoutput", {"cmd": "touch {marker}"}),
    ("{evil}:build", {}),  # a file that runs code when imported
]
STAGES = [
    ["finetune", "--from", "{run}", "--epochs", "0", "--force", "--quiet"],
    ["convert", "--from", "{run}"],
    ["evaluate", "--from", "{run}", "--limit", "4", "--quiet"],
    ["sweep", "--from", "{run}", "--L", "3", "--epochs", "0", "--limit", "4", "--quiet"],
    ["inspect", "--from", "{run}"],
]


@pytest.mark.parametrize("spec,kwargs", EVIL_SPECS, ids=["os.system", "getoutput", "file"])
@pytest.mark.parametrize("stage", STAGES, ids=[s[0] for s in STAGES])
def test_a_sidecar_can_never_make_tdsnn_run_code(copy_run, tmp_path, capsys, spec, kwargs, stage):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef build(**k):\n    raise SystemExit(3)\n")
    spec = spec.format(evil=evil)
    kwargs = {k: v.format(marker=marker) for k, v in kwargs.items()}
    for name in ("dnn", "gdnn_L5", "snn_L5"):
        set_meta(copy_run, name, architecture=None, model_spec=spec, arch_kwargs=kwargs)
    argv = [a.replace("{run}", str(copy_run)) for a in stage]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "never imports code named in a run folder" in err
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os.system", "os:system", "../lenet5", "", 7, None])
def test_an_unknown_architecture_is_refused_by_name(copy_run, name):
    set_meta(copy_run, "dnn", architecture=name)
    with pytest.raises(P.PipelineError, match="dnn.json"):
        P.load_dnn(copy_run)


def test_a_user_model_is_rebuilt_only_from_what_the_user_names_now(copy_run, tmp_path):
    nets = tmp_path / "nets.py"
    nets.write_text(textwrap.dedent("""
        from tdsnn.models import lenet5
        def net(**kwargs):
            return lenet5(**kwargs)
        def other(**kwargs):
            return lenet5(**kwargs)
    """))
    set_meta(copy_run, "dnn", architecture=None, model_spec="/elsewhere/nets.py:net")
    with pytest.raises(P.PipelineError, match="--model-spec"):
        P.load_dnn(copy_run)
    with pytest.raises(P.PipelineError, match="does not name the model"):
        P.load_dnn(copy_run, f"{nets}:other")
    dnn, _ = P.load_dnn(copy_run, f"{nets}:net")  # the file may have moved: same name, same function
    from tdsnn.models import lenet5

    dnn2, _ = P.load_dnn(copy_run, lambda **kw: lenet5(**kw))  # a Python callable works too
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(dnn(x), dnn2(x))
    set_meta(copy_run, "dnn", architecture="lenet5", model_spec=None)
    with pytest.raises(P.PipelineError, match="needs no --model-spec"):
        P.load_dnn(copy_run, f"{nets}:net")


def test_system_exit_in_a_named_model_file_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit(5)\n")
    rc = run_cli("train", "--model-spec", f"{bad}:f", "--input-shape", "1,28,28",
                 "--out", tmp_path / "o", "--quiet")  # fmt: skip
    assert rc == 2 and "SystemExit" in capsys.readouterr().err


# ------------------------------------------------------------------- sidecar fields

BROKEN_FIELDS = [
    ("dnn", {"arch_kwargs": ["num_classes", 10]}, "arch_kwargs"),
    ("dnn", {"arch_kwargs": {"num_classes": 10, "evil": "x"}}, "no argument 'evil'"),
    ("dnn", {"arch_kwargs": {"num_classes": {"a": 1}}}, "num_classes"),
    ("dnn", {"normalization": {"mean": [0.1]}}, "normalization"),
    ("dnn", {"normalization": {"mean": [0.1], "std": [0.0]}}, "normalization"),
    ("dnn", {"normalization": {"mean": [0.1], "std": ["x"]}}, "normalization"),
    ("dnn", {"input_shape": "1,28,28"}, "input_shape"),
    ("dnn", {"train": None}, "'train'"),
    ("dnn", {"dataset": 3}, "dataset"),
    ("gdnn_L5", {"L": "5"}, "'L'"),
    ("gdnn_L5", {"L": None}, "'L'"),
    ("gdnn_L5", {"L": 1e300}, "'L'"),
    ("gdnn_L5", {"input_scale": -1}, "input_scale"),
    ("gdnn_L5", {"activation_scales": 2.0}, "activation_scales"),
    ("gdnn_L5", {"activation_scales": [1.0]}, "activation"),
    ("gdnn_L5", {"compensate": "yes"}, "compensate"),
    ("gdnn_L5", {"coding": "dense"}, "coding"),
    ("gdnn_L5", {"min_time": 0}, "min_time"),
    ("gdnn_L5", {"min_time": "2"}, "min_time"),
    ("gdnn_L5", {"min_time": True}, "min_time"),
    ("snn_L5", {"min_time": 2}, "min_time"),
    ("snn_L5", {"coding": ["sparse"]}, "coding"),
    ("snn_L5", {"static_t_il": "12"}, "static_t_il"),
    ("snn_L5", {"static_t_il": [1, 2]}, "static_t_il"),
    ("snn_L5", {"static_t_il": [-1, 5, 5]}, "static_t_il"),
    ("snn_L5", {"test_limit": 0}, "test_limit"),
]
LOADERS = {"dnn": P.load_dnn, "gdnn_L5": P.load_gdnn, "snn_L5": P.load_snn}


@pytest.mark.parametrize("name,fields,expected", BROKEN_FIELDS)
def test_a_bad_sidecar_field_is_named(copy_run, name, fields, expected):
    set_meta(copy_run, name, **fields)
    with pytest.raises(TDSNNError, match=expected) as info:
        LOADERS[name](copy_run)
    assert f"{name}.json" in str(info.value) or "model 'lenet5'" in str(info.value)


@pytest.mark.parametrize("name,field", [("gdnn_L5", "L"), ("dnn", "normalization"),
                                        ("snn_L5", "input_scale"), ("dnn", "arch_kwargs")])  # fmt: skip
def test_a_missing_sidecar_field_is_named(copy_run, name, field):
    doc = sidecar(copy_run, name)
    del doc["metadata"][field]
    write_sidecar(copy_run, name, doc)
    if field == "normalization":  # optional: None means 'no normalisation'
        LOADERS[name](copy_run)
        return
    with pytest.raises(P.PipelineError, match=f"lacks the field '{field}'"):
        LOADERS[name](copy_run)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["architecture", "model_spec", "arch_kwargs", "input_shape", "dataset", "data_dir",
          "normalization", "train", "L", "input_scale", "activation_scales", "compensate",
          "coding", "static_t_il", "test_limit", "t_il_mode"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(LOADERS)), field=st.sampled_from(FIELDS), value=JSON)
def test_any_json_in_any_field_loads_or_gives_a_clean_error(tiny_run, tmp_path_factory, name,
                                                            field, value):  # fmt: skip
    import shutil

    run = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(tiny_run, run)
    set_meta(run, name, **{field: value})
    try:
        LOADERS[name](run)
    except TDSNNError:
        pass


def test_a_deeply_nested_sidecar_is_refused(copy_run):
    (copy_run / "dnn.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply|not a tdsnn"):
        P.load_dnn(copy_run)


# ------------------------------------------------------------------ checkpoint tensors

TENSOR_DAMAGE = {
    "missing": (lambda s: {k: v for k, v in s.items() if k != next(iter(s))}, "missing"),
    "extra": (lambda s: {**s, "evil.weight": torch.zeros(1)}, "unexpected"),
    "shape": (lambda s: {k: v[:1] if v.ndim else v for k, v in s.items()}, "shape"),
    "nan": (lambda s: {k: torch.full_like(v, float("nan")) for k, v in s.items()}, "NaN"),
    "inf": (lambda s: {k: torch.full_like(v, float("inf")) for k, v in s.items()}, "NaN or inf"),
    "int": (lambda s: {k: v.to(torch.int32) for k, v in s.items()}, "int32"),
}


@pytest.mark.parametrize("name", ["dnn", "gdnn_L5", "snn_L5"])
@pytest.mark.parametrize("damage", sorted(TENSOR_DAMAGE))
def test_wrong_tensors_are_named(copy_run, name, damage):
    change, expected = TENSOR_DAMAGE[damage]
    rewrite_tensors(copy_run, name, change)
    with pytest.raises(CheckpointError, match=expected):
        LOADERS[name](copy_run)


def test_a_tensors_file_that_does_not_match_its_sidecar_is_refused(copy_run, capsys):
    data = bytearray((copy_run / "snn_L5.safetensors").read_bytes())
    data[-1] ^= 1
    (copy_run / "snn_L5.safetensors").write_bytes(bytes(data))
    assert run_cli("evaluate", "--from", copy_run, "--quiet") == 2
    assert "sha256" in capsys.readouterr().err


# --------------------------------------------------------------- one writer at a time

HOLD = """
import sys, time
from tdsnn.runfolder import run_lock
with run_lock(sys.argv[1], "tdsnn train"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_gets_a_clear_error_naming_the_holder(copy_run, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(copy_run)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_cli("train", "--out", copy_run, "--force", "--quiet") == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "in use" in err
        assert run_cli("evaluate", "--from", copy_run, "--quiet") == 2
    finally:
        holder.kill()  # kill -9: the system releases the lock
        holder.wait()
    assert run_cli("convert", "--from", copy_run) == 0


def test_the_lock_is_reentrant_in_one_process(copy_run):
    with run_lock(copy_run, "outer"), run_lock(copy_run, "inner"):
        P.convert_run(copy_run)


# ---------------------------------------------------------------- interrupted saves

CRASH = """
import os, sys
from tdsnn.checkpoint import load_checkpoint, save_checkpoint
path, after = sys.argv[1], int(sys.argv[2])
state, meta = load_checkpoint(path)
state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
real, calls = os.replace, []
def crash(src, dst):
    calls.append(dst)
    if len(calls) > after:
        os._exit(9)  # like kill -9: no handler, no clean-up
    real(src, dst)
os.replace = crash
save_checkpoint(path, state, {**meta, "new": True})
"""


@pytest.mark.parametrize("after,finished", [(1, True), (0, False)],
                         ids=["between-renames", "before-renames"])  # fmt: skip
def test_a_crashed_save_is_recovered_when_the_folder_is_next_used(copy_run, after, finished):
    path = copy_run / "dnn.safetensors"
    old, _ = load_checkpoint(path)
    proc = subprocess.run([sys.executable, "-c", CRASH, str(path), str(after)], timeout=120)
    assert proc.returncode == 9
    leftovers = [p.name for p in copy_run.iterdir() if p.name.endswith((".tmp", ".bak"))]
    assert leftovers  # the crash left its temporary files behind
    if finished:  # new tensors in place, old sidecar: the pair is mismatched until recovery
        with pytest.raises(CheckpointError, match="sha256"):
            load_checkpoint(path)
    with run_lock(copy_run, "test"):
        pass
    state, meta = load_checkpoint(path)
    assert meta.get("new", False) is finished
    first = next(k for k, v in old.items() if v.is_floating_point())
    assert torch.equal(state[first], old[first] + 1) is finished
    assert not [p for p in copy_run.iterdir() if p.name.endswith((".tmp", ".bak"))]


def test_orphan_temporary_files_are_cleaned_up(copy_run):
    for name in (".dnn.safetensors.0123456789ab.tmp", ".snn_L5.json.0123456789ab.tmp",
                 ".gdnn_L5.safetensors.0123456789ab.bak", ".evaluation.json.tmp"):  # fmt: skip
        (copy_run / name).write_bytes(b"x" * 100)
    (copy_run / "notes.tmp").write_text("a user's file")  # not ours: left alone
    P.convert_run(copy_run)
    names = {p.name for p in copy_run.iterdir()}
    assert "notes.tmp" in names and not [n for n in names if n.startswith(".") and "tmp" in n]


# ---------------------------------------------------------------------- nothing lost


def test_an_evaluation_the_folder_refuses_is_kept_and_named(copy_run, tmp_path, monkeypatch, capsys):
    import tdsnn.runfolder as R

    real = R._atomic_text

    def read_only(path, text):
        if Path(path).parent == copy_run:
            raise OSError(30, "Read-only file system", str(path))
        real(path, text)

    monkeypatch.setattr(R, "_atomic_text", read_only)
    monkeypatch.setenv("TDSNN_FALLBACK_DIR", str(tmp_path / "kept"))
    assert run_cli("evaluate", "--from", copy_run, "--limit", "8", "--quiet") == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "kept in" in err
    kept = list((tmp_path / "kept").glob("*evaluation_L5.json"))
    assert len(kept) == 1 and kept[0].name in err
    assert json.loads(kept[0].read_text())["samples"] == 8


def test_a_full_disk_gives_a_clean_error_and_keeps_the_old_checkpoint(copy_run, monkeypatch, capsys):
    import safetensors.torch

    before = (copy_run / "snn_L5.safetensors").read_bytes()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    assert run_cli("convert", "--from", copy_run) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert (copy_run / "snn_L5.safetensors").read_bytes() == before
    assert not [p for p in copy_run.iterdir() if p.name.endswith(".tmp")]


def test_weights_and_sidecar_get_the_same_file_mode(copy_run):
    P.convert_run(copy_run)
    modes = {os.stat(copy_run / f"snn_L5.{ext}").st_mode & 0o777 for ext in ("safetensors", "json")}
    assert len(modes) == 1


@pytest.mark.parametrize("content", ["{", "[]", '{"accuracy": 3}', '{"accuracy": {"snn": 1}}',
                                     "[" * 50_000])  # fmt: skip
def test_report_on_a_malformed_evaluation_writes_nothing(copy_run, capsys, content):
    (copy_run / "evaluation.json").write_text(content)
    assert run_cli("report", "--from", copy_run) == 2
    err = capsys.readouterr().err
    assert "evaluation.json" in err and "Traceback" not in err
    assert not (copy_run / "report.md").exists() and not (copy_run / "report.json").exists()


@pytest.mark.parametrize("content", ['{"L": 5}', "[1, 2]", '[{"L": "x"}]'])
def test_report_on_a_malformed_sweep_writes_nothing(copy_run, capsys, content):
    assert run_cli("evaluate", "--from", copy_run, "--limit", "4", "--quiet") == 0
    (copy_run / "sweep.json").write_text(content)
    capsys.readouterr()
    assert run_cli("report", "--from", copy_run) == 2
    assert "sweep.json" in capsys.readouterr().err
    assert not (copy_run / "report.md").exists()
