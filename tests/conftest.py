"""Shared fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small workloads: one thread avoids OpenMP spin-waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run folder made quickly: LeNet-5 on 128 MNIST images, G-DNN at L=5, SNN.

    Tests that change it must work on a copy (``copy_run``).
    """
    from tdsnn import pipeline as P

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = tmp_path_factory.mktemp("tiny") / "run"
        fast = {"train_limit": 128, "test_limit": 32, "progress": False, "batch_size": 64}
        P.train_dnn(run, epochs=1, **fast)
        P.finetune(run, L=5.0, epochs=0, progress=False)
        P.convert_run(run)
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.fixture
def copy_run(tiny_run, tmp_path):
    """A private copy of ``tiny_run`` that a test may damage."""
    import shutil

    target = tmp_path / "run"
    shutil.copytree(tiny_run, target, ignore=shutil.ignore_patterns(".tdsnn.lock"))
    return target


@pytest.fixture(autouse=True)
def spot_checks(monkeypatch):
    """Every certified run in the tests checks 16 random neurons per layer against the
    reference (tdsnn.snn.certified.spot_check): a bound that fails anywhere raises."""
    from tdsnn.snn import certified

    monkeypatch.setattr(certified, "DEFAULT_SPOT_CHECKS", certified.SPOT_CHECK)
    monkeypatch.setattr(certified, "SPOT_MIN_MACS", 0)  # every certified layer, however small
