import math

import pytest
import torch

from tdsnn import ConversionError, GCoding, bias_spike_time, g_activation, spike_time, tick_weight
from tdsnn.coding import g_straight_through, spike_value


@pytest.mark.parametrize("L", [1.0, 2.5, 5.0, 8.0])
def test_spike_time_matches_eq10(L):
    x = torch.tensor([-3.0, 0.0, 1e-9, 0.3, 1.0, 7.5, 255.0], dtype=torch.float64)
    expected = [0, 0] + [math.ceil(L * math.log(1 + v)) for v in x[2:].tolist()]
    assert spike_time(x, L).tolist() == expected


@pytest.mark.parametrize("L", [1.0, 3.0, 5.0])
def test_g_is_exp_of_t_over_l_and_at_least_one_plus_x(L):
    x = torch.rand(1000, dtype=torch.float64) * 20
    g = g_activation(x, L)
    torch.testing.assert_close(g, torch.exp(spike_time(x, L).double() / L), rtol=1e-15, atol=0)
    assert torch.equal(g, spike_value(spike_time(x, L), L))  # the SNN's decoding, bit for bit
    assert torch.all(g >= 1 + x - 1e-12)
    assert torch.all(g < (1 + x) * math.exp(1 / L) + 1e-12)  # within one level
    assert torch.all(g_activation(-x, L) == 1.0)


def test_g_levels_are_geometric():
    L = 5.0
    x = torch.linspace(0, 100, 20001, dtype=torch.float64)
    levels = torch.unique(g_activation(x, L))
    ratios = levels[1:] / levels[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, math.exp(1 / L)))


def test_straight_through_gradient():
    x = torch.tensor([-1.0, 0.0, 0.5, 3.0], requires_grad=True)
    g_straight_through(x, 5.0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0]
    module = GCoding(2.0)
    y = torch.tensor([2.0], requires_grad=True)
    (module(y) * 3).sum().backward()
    assert y.grad.item() == 3.0


def test_bias_time_and_tick_weight():
    assert bias_spike_time(5.0) == math.ceil(5 * math.log(2))
    assert bias_spike_time(1.0) == 1
    assert tick_weight(4, 5.0) == pytest.approx((1 - math.exp(-0.2)) * math.exp(-0.8))
    t = torch.tensor([0.0, 4.0])
    assert torch.allclose(tick_weight(t, 5.0), (1 - math.exp(-0.2)) * torch.exp(-t / 5))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "five", None])
def test_bad_leak_constant(bad):
    with pytest.raises(ConversionError):
        spike_time(torch.ones(2), bad)
    with pytest.raises(ConversionError):
        GCoding(bad)


def test_leak_range_is_what_float32_represents():
    from tdsnn.coding import FLOAT32_EXACT, L_MAX, L_MIN, check_leak

    assert check_leak(L_MIN) == L_MIN and check_leak(L_MAX) == L_MAX
    # Lower end: the first level exp(1/L) stays far below 2**24 (G = 1 still counts next
    # to it in a float32 sum), and G of large float32 values stays finite.
    assert math.exp(1 / L_MIN) < 2**15
    x = torch.tensor([0.0, 1.0, 1e3, 1e30], dtype=torch.float32)
    assert torch.isfinite(g_activation(x, L_MIN)).all()
    # Upper end: the spike time of the largest float32 value is an exact float32 integer.
    top = torch.tensor(torch.finfo(torch.float32).max, dtype=torch.float64)
    assert int(spike_time(top, L_MAX)) < FLOAT32_EXACT
    for bad in (L_MIN * 0.99, L_MAX * 1.01, "5", True):
        with pytest.raises(ConversionError, match=r"\[0\.1, 100000\]"):
            check_leak(bad)
