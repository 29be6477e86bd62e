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
