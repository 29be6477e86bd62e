"""The leaky max-pool mapping (eqs. 12-14), on request."""

import pytest
import torch
from torch import nn

import tdsnn
from tdsnn import ConversionError
from tdsnn.maxpool_solver import tick_ratio_interval


def _gdnn(L):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 4)).eval()
    return tdsnn.prepare(model, L=L)


@pytest.mark.parametrize("L", [1.0, 1.5, 2.0])
def test_simulators_agree_and_last_spike_windows_are_exact(L):
    gdnn = _gdnn(L)
    snn = tdsnn.convert(gdnn, maxpool="leaky")
    x = torch.rand(6, 1, 8, 8) * 0.6
    closed = snn.run(x)
    clocked = snn.run(x, backend="clocked")
    for a, b in zip(closed.spike_times, clocked.spike_times):
        assert torch.equal(a, b)
    assert torch.equal(closed.latency, clocked.latency)
    for convention in ("presentation", "own", "hardware"):
        assert closed.ops.counts(convention).total == clocked.ops.counts(convention).total
    exact = tdsnn.convert(gdnn).run(x)
    pool_t_il = closed.extras["maxpool_t_il"][:, 0].reshape(-1, 1, 1, 1)
    window_max = exact.spike_times[2].long()
    at_end = window_max == pool_t_il
    assert at_end.any()
    # windows whose last spike ends the period fire exactly with it (eq. 13 guarantees)
    assert torch.equal(closed.spike_times[2].long()[at_end], window_max[at_end])
    # one extra period: the pool's own inhibitory period
    assert torch.equal(closed.latency, closed.t_il.sum(dim=1) + pool_t_il.flatten())


def test_no_admissible_ratio_is_reported():
    snn = tdsnn.convert(_gdnn(5.0), maxpool="leaky")
    x = torch.full((1, 1, 8, 8), 200.0)
    assert tick_ratio_interval(4, 5.0, 30) is None
    with pytest.raises(ConversionError, match="eq. 14 fails"):
        snn.run(x)


def test_leaky_mapping_options():
    gdnn = _gdnn(2.0)
    with pytest.raises(ConversionError, match="dynamic"):
        tdsnn.convert(gdnn, maxpool="leaky", calibration=torch.rand(2, 1, 8, 8))
    with pytest.raises(ConversionError, match="maxpool must be"):
        tdsnn.convert(gdnn, maxpool="gated")
