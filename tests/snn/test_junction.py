"""Certified float32 for neuron groups with shortcuts, on engineered level boundaries."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tdsnn
from tdsnn.snn import junction
from tdsnn.snn.exact import exact_spike_times
from tdsnn.snn.layers import SpikingSynapse


class Block(nn.Module):
    def __init__(self, c: int, projection: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.r1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.short = nn.Conv2d(c, c, 1) if projection else nn.Identity()
        self.r2 = nn.ReLU()
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        y = self.r2(self.conv2(self.r1(self.conv1(x))) + self.short(x))
        return self.head(y.mean((2, 3)))


def _group(snn: tdsnn.SNN) -> SpikingSynapse:
    return next(m for m in snn.synapse_layers if m.shortcuts)


@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("L", [2.0, 5.0])
def test_group_neurons_on_boundaries_match_the_exact_test(projection, L, monkeypatch):
    """Shift the group's bias so that one neuron per channel sits within about 1e-9 of a
    level boundary: the certified float32 path flags and repairs them, and every spike
    time equals the exact test's."""
    monkeypatch.setattr(junction, "SMALL_LAYER_MACS", 0)
    torch.manual_seed(int(L) + 10 * projection)
    model = Block(6, projection).eval()
    gdnn = tdsnn.prepare(model, L)
    snn = tdsnn.convert(gdnn)
    x = torch.rand(3, 6, 10, 10) * 3
    probe = snn.run(x, precision="float64")
    t_ins = [probe.spike_times[probe.layer_names.index(n)].float() for n in ("conv1",)]
    group = _group(snn)
    source = "input"  # the shortcut reads the input
    t_ins.append(probe.spike_times[probe.layer_names.index(source)].float())
    A = junction.group_affine(group, t_ins, torch.float64)
    # move chosen neurons onto a boundary: b_c += (exp(k/L) - 1) - A at one neuron per channel
    flat = A[0].reshape(A.shape[1], -1)
    k = torch.ceil(L * torch.log1p(flat.clamp(min=0.05)))
    shift = (torch.expm1(k / L) - flat)[:, 0] * (1 + 1e-9)
    group.dnn_bias = (group.dnn_bias.double() + shift).float()
    where = torch.stack(torch.meshgrid(*(torch.arange(s) for s in A.shape), indexing="ij"), -1)
    where = where.reshape(-1, 4)
    exact = exact_spike_times(*junction.joined_fields(group, t_ins, where), L).reshape(A.shape)
    got, report = junction.junction_spike_times(group, t_ins, float(max(t.max() for t in t_ins)))
    assert not report.full_float64
    assert report.uncertain > 0 and report.gathered > 0
    assert torch.equal(got.double(), exact)


def test_small_groups_run_in_float64_and_say_so():
    torch.manual_seed(0)
    snn = tdsnn.convert(tdsnn.prepare(Block(4, False).eval(), 5.0))
    result = snn.run(torch.rand(2, 4, 6, 6))
    reports = dict(zip([n for n in result.layer_names[1:]], result.extras["certified"]))
    assert reports[_group(snn).name].full_float64


@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet18"])
def test_the_zoo_resnets_convert_exactly(name):
    """Both zoo ResNets (identity and projection shortcuts; resnet18 with its stem
    max-pool), narrow, with random weights: both simulators give the float64 G-DNN's logits
    and the same spike times."""
    from tdsnn.models import build_model

    torch.manual_seed(1)
    model = build_model(name, num_classes=10, width=0.125).eval()
    gdnn = tdsnn.prepare(model, 5.0)
    snn = tdsnn.convert(gdnn)
    x = torch.rand(2, 3, 32, 32) * 4
    want = gdnn.double()(x.double()).detach()
    fast, stepped = snn.run(x), snn.run(x, backend="clocked")
    for result in (fast, stepped):
        torch.testing.assert_close(result.logits.double(), want, rtol=1e-6, atol=1e-9)
    assert all(torch.equal(a, b) for a, b in zip(fast.spike_times, stepped.spike_times))
    assert len(fast.extras["delays"]) == (9 if name == "resnet20_cifar" else 8)


def test_the_spot_check_covers_groups_and_catches_a_wrong_time(monkeypatch):
    """With the float32 group path forced, the spot check (inside the group's float64
    repair pass) passes on a true result and raises CertificationError when the float32
    pre-activation is off by more than its bound, which the level test cannot see."""
    from tdsnn.snn import certified

    monkeypatch.setattr(junction, "SMALL_LAYER_MACS", 0)
    torch.manual_seed(3)
    snn = tdsnn.convert(tdsnn.prepare(Block(5, True).eval(), 5.0))
    x = torch.rand(2, 5, 8, 8) * 3
    honest = snn.run(x, spot_checks=1000)  # every neuron checked: passes
    assert not honest.extras["certified"][-2].full_float64  # the group ran in float32
    real = junction.split_affine

    def off(layer, g):
        A, terms = real(layer, g)
        return A.mul_(1.05).add_(0.02), terms

    monkeypatch.setattr(junction, "split_affine", off)
    with pytest.raises(certified.CertificationError, match="certified spike time of neuron"):
        snn.run(x, spot_checks=1000)
    wrong = snn.run(x, spot_checks=0)  # off: the wrong times go unnoticed
    assert any(not torch.equal(a, b) for a, b in zip(wrong.spike_times, honest.spike_times))
