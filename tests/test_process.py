"""Process settings (tdsnn.process): the environment the command line re-executes with, and
glibc's allocator thresholds, which must remove the page faults of large tensors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tdsnn import cli, process


def test_the_tuned_environment_adds_only_what_is_missing():
    full = process.tuned_environment({}, glibc=True, shared=True)
    assert full == {"OMP_WAIT_POLICY": "PASSIVE", "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
                    "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}  # fmt: skip
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "MALLOC_TRIM_THRESHOLD_": "0"}
    assert process.tuned_environment(mine, glibc=True, shared=True) == {
        "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}
    assert process.tuned_environment({}, glibc=False, shared=True) == {"OMP_WAIT_POLICY": "PASSIVE"}
    # an idle machine keeps libgomp's own policy, and so does a spin count of the user's
    assert process.tuned_environment({}, glibc=False, shared=False) == {}
    assert process.tuned_environment({"GOMP_SPINCOUNT": "0"}, glibc=False, shared=True) == {}


@pytest.mark.parametrize("load,threads,cores,shared", [
    (0.0, None, 2, False), (0.4, None, 2, False), (0.6, None, 2, True),  # all cores wanted
    (1.0, 1, 2, False), (1.6, 1, 2, True),  # one core wanted, one spare
    (10.0, 8, 64, False), (56.6, 8, 64, True), (3.0, 99, 2, True),  # more threads than cores
])  # fmt: skip
def test_the_machine_is_shared_when_other_load_takes_the_cores_we_need(load, threads, cores, shared):
    assert process.machine_is_shared(threads, load, cores) is shared


def test_the_machine_check_reads_this_machine():
    assert process.usable_cores() >= 1
    assert isinstance(process.machine_is_shared(), bool)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX re-exec")
def test_reexec_runs_the_cli_once_with_the_settings(monkeypatch):
    monkeypatch.setattr(process, "is_glibc", lambda: True)
    calls = []
    env: dict[str, str] = {"HOME": "/x"}
    monkeypatch.setattr(process, "machine_is_shared", lambda threads=None: True)
    assert process.reexec_tuned(["evaluate", "--from", "r"], env, lambda *a: calls.append(a))
    assert calls == [
        (sys.executable, [sys.executable, "-m", "tdsnn.cli", "evaluate", "--from", "r"])
    ]
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env[process.MARKER] == "1"
    assert env["MALLOC_MMAP_THRESHOLD_"] == env["MALLOC_TRIM_THRESHOLD_"] == str(1 << 30)
    # the re-executed process does not re-execute again, even with a variable missing
    env.pop("OMP_WAIT_POLICY")
    assert not process.reexec_tuned(["evaluate"], env, lambda *a: calls.append(a))
    assert len(calls) == 1
    # nothing missing: no re-exec
    done = dict(process.tuned_environment({}, shared=True), HOME="/x")
    assert not process.reexec_tuned(["run"], done, lambda *a: calls.append(a))
    assert len(calls) == 1


def test_a_refused_exec_leaves_the_environment_as_it_was(monkeypatch):
    monkeypatch.setattr(process, "is_glibc", lambda: True)

    def refuse(*_args):
        raise OSError("no exec here")

    env = {"MALLOC_TRIM_THRESHOLD_": "7"}
    assert not process.reexec_tuned(["run"], env, refuse)
    assert env == {"MALLOC_TRIM_THRESHOLD_": "7"}


def test_the_cli_tunes_only_compute_heavy_commands(monkeypatch):
    seen = []
    monkeypatch.setattr(process, "reexec_tuned",
                        lambda argv, threads=None: seen.append((list(argv), threads)))  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["tdsnn", "evaluate", "--from", "r"])
    for command in ("train", "finetune", "evaluate", "sweep", "run"):
        cli._tuned_process(command, 3)
    for command in ("convert", "report", "inspect"):
        cli._tuned_process(command)
    assert seen == [(["evaluate", "--from", "r"], 3)] * 5


# A 64 MiB tensor allocated, written and freed ten times: with glibc's defaults each one
# arrives as fresh pages (16,384 page faults of 4 KiB), tuned the heap keeps the freed
# block for the next (at most a stray one or two faulted in again, when another block
# lies at the top of the heap).  Printed: how many of the ten faulted in a quarter of it.
FAULTS = textwrap.dedent(
    """
    import resource, sys
    import torch
    from tdsnn.process import tune_allocator
    if sys.argv[1] == "tuned":
        assert tune_allocator()
    faulted = 0
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(1 << 24).fill_(1.0)
        faulted += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before > 4096
    print(faulted)
    """
)


@pytest.mark.skipif(not process.is_glibc(), reason="glibc's allocator")
def test_the_tuned_allocator_removes_the_page_faults_of_large_tensors():
    def faulted(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True,
                              text=True, check=True, timeout=120)  # fmt: skip
        return int(done.stdout.split()[-1])

    assert faulted("default") == 12
    assert faulted("tuned") <= 4
