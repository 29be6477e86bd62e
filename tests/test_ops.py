import pytest
import torch
from torch import nn

import tdsnn
from tdsnn.models import lenet5, vgg16
from tdsnn.ops import EnergyModel, compare_ops


def test_lenet5_dnn_counts_by_hand():
    ops = tdsnn.count_dnn_ops(lenet5(), (1, 28, 28))
    # conv1: 20 x 24 x 24 outputs, fan-in 1*5*5; conv2: 50 x 8 x 8, fan-in 20*5*5;
    # fc1: 500 outputs, fan-in 50*4*4; fc2: 10 outputs, fan-in 500.
    synapses = [(20 * 24 * 24, 25), (50 * 8 * 8, 500), (500, 800), (10, 500)]
    mul = sum(n * m for n, m in synapses)
    add = sum(n * (m - 1) for n, m in synapses)
    add += (20 * 12 * 12 + 50 * 4 * 4) * (2 * 2 - 1)  # max-pool comparisons
    assert (ops.mul, ops.add) == (mul, add) == (2_293_000, 2_288_810)
    assert [layer.kind for layer in ops.layers] == ["conv", "maxpool", "conv", "maxpool", "linear", "linear"]


def test_vgg16_dnn_counts_by_hand():
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    mul = add = 0
    size, channels = 224, 3
    for v in cfg:
        if v == "M":
            size //= 2
            add += channels * size * size * 3
        else:
            n, m = v * size * size, channels * 9
            mul += n * m
            add += n * (m - 1)
            channels = v
    for fan_in, out in [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]:
        mul += fan_in * out
        add += (fan_in - 1) * out
    with torch.device("meta"):
        model = vgg16()
    ops = tdsnn.count_dnn_ops(model.to_empty(device="cpu"), (3, 224, 224))
    assert (ops.mul, ops.add) == (mul, add)
    assert ops.mul == 15_470_264_320


def test_count_dnn_ops_on_prepared_model_equals_the_dnn():
    model = lenet5()
    assert tdsnn.count_dnn_ops(tdsnn.prepare(model), (1, 28, 28)).total == tdsnn.count_dnn_ops(model, (1, 28, 28)).total


def test_count_dnn_ops_bad_shape():
    with pytest.raises(ValueError, match="does not fit"):
        tdsnn.count_dnn_ops(lenet5(), (3, 28, 28))
    with pytest.raises(ValueError, match="positive"):
        tdsnn.count_dnn_ops(lenet5(), (0, 28, 28))


def _lenet_run(batch=3, seed=0):
    torch.manual_seed(seed)
    model = lenet5().eval()
    snn = tdsnn.convert(tdsnn.prepare(model, L=5.0))
    x = torch.rand(batch, 1, 28, 28)
    return model, snn, x


def test_snn_counts_follow_the_conventions():
    model, snn, x = _lenet_run()
    result = snn.run(x)
    spikes_conv = [t for t, n in zip(result.spike_times, result.layer_names) if n.startswith(("conv", "fc"))]
    ticks = sum(int(t.long().sum()) for t in spikes_conv)
    lif_neurons = 20 * 24 * 24 + 50 * 8 * 8 + 500 + 10
    latency = int(result.latency.sum())
    # synaptic events: every neuron fires once, so each connection carries one event
    connections = (20 * 24 * 24 * 25 + 50 * 8 * 8 * 500 + 500 * 800 + 10 * 500) * 3
    bias_events = lif_neurons * 3
    pool_events = (20 * 24 * 24 + 50 * 8 * 8) * 3  # 2x2 stride 2: each input reaches one window
    paper = result.ops.counts("presentation")
    assert paper.add == connections + bias_events + pool_events + ticks
    assert paper.mul == lif_neurons * latency
    own = result.ops.counts("own")
    t_il = result.t_il.sum(dim=0).tolist()
    per_layer_neurons = [20 * 24 * 24, 50 * 8 * 8, 500, 10]
    assert own.mul == sum(n * t for n, t in zip(per_layer_neurons, t_il)) + ticks
    hardware = result.ops.counts("hardware")
    dnn = tdsnn.count_dnn_ops(model, (1, 28, 28))
    assert hardware.add == dnn.add * 3
    assert hardware.mul == sum(n * t for n, t in zip(per_layer_neurons, t_il))


def test_energy_and_ratios():
    model, snn, x = _lenet_run(batch=2)
    dnn = tdsnn.count_dnn_ops(model, (1, 28, 28))
    snn_ops = snn.run(x).ops.counts()
    energy = EnergyModel()
    assert dnn.energy_pj(energy) == pytest.approx(dnn.mul * 3.7 + dnn.add * 0.9)
    assert EnergyModel(mac_pj=1.0, ac_pj=1.0).energy_pj(dnn) == pytest.approx(dnn.add)
    ratios = compare_ops(dnn, snn_ops)
    assert ratios["mul_ratio"] == pytest.approx(dnn.mul / (snn_ops.mul / 2))
    assert ratios["total_ratio"] == pytest.approx(dnn.total / (snn_ops.total / 2))
    with pytest.raises(ValueError, match="convention"):
        snn.run(x).ops.counts("rate")


def test_ops_merge_over_batches():
    _, snn, x = _lenet_run(batch=4)
    whole = snn.run(x).ops
    parts = snn.run(x[:2]).ops
    parts.merge(snn.run(x[2:]).ops)
    for convention in ("presentation", "own", "hardware"):
        assert whole.counts(convention).total == parts.counts(convention).total


def test_avgpool_model_counts():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    ops = tdsnn.count_dnn_ops(model, (2, 8, 8))
    assert [layer.kind for layer in ops.layers] == ["conv", "avgpool", "linear"]
    assert ops.layers[1].mul == 3 * 4 * 4 * 4
