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


# ------------------------------------------------------- residual networks (torch.fx)


class _ResidualBlock(nn.Module):
    """conv -> ReLU -> conv, plus a 1x1 projection of the input, then ReLU, mean, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.proj = nn.Conv2d(2, 3, 1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        y = self.conv2(self.relu1(self.conv1(x)))
        y = self.relu2(y + self.proj(x))
        return self.fc(torch.cat([y.mean((2, 3))], dim=1) * 1.0 + 0.0)


def test_residual_block_counts_by_hand():
    ops = tdsnn.count_dnn_ops(_ResidualBlock(), (2, 4, 4))
    n = 3 * 4 * 4  # outputs of each conv and of the sum
    expected = [
        ("conv1", "conv", 18 * n, 17 * n),  # fan-in 2*3*3
        ("conv2", "conv", 27 * n, 26 * n),  # fan-in 3*3*3
        ("proj", "conv", 2 * n, 1 * n),  # fan-in 2*1*1
        ("add", "add", 0, n),  # one addition per output; `* 1.0 + 0.0` has a scalar: not counted
        ("mean", "avgpool", 16 * 3, 15 * 3),  # global mean: fan-in 4*4, 3 outputs; cat is free
        ("fc", "linear", 3 * 4, 2 * 4),
    ]
    assert [(o.name, o.kind, o.mul, o.add) for o in ops.layers] == expected
    assert (ops.mul, ops.add) == (2316, 2213)


class _ThreeWay(nn.Module):
    def __init__(self, style: str) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)
        self.style = style

    def forward(self, x):
        if self.style == "plus":
            return self.a(x) + self.b(x) + x
        if self.style == "torch.add":
            return torch.add(torch.add(self.a(x), self.b(x)), x)
        out = self.a(x).add(self.b(x))
        out += x
        return out


@pytest.mark.parametrize("style", ["plus", "torch.add", "method"])
def test_three_way_sum_costs_two_additions_per_output(style):
    ops = tdsnn.count_dnn_ops(_ThreeWay(style), (2, 4, 4))
    sums = [o for o in ops.layers if o.kind == "add"]
    assert [(o.mul, o.add) for o in sums] == [(0, 2 * 16)] * 2  # (3-1) * N, N = 2*4*4
    assert [o.kind for o in ops.layers] == ["conv", "conv", "add", "add"]


class _Mean(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def forward(self, x):
        if self.how == "method":
            return x.mean((2, 3))
        if self.how == "torch":
            return torch.mean(x, dim=[-2, -1], keepdim=True)
        if self.how == "functional":
            return nn.functional.adaptive_avg_pool2d(x, 1)
        return x.mean(1)  # over channels: not a spatial pool, not counted


@pytest.mark.parametrize("how", ["method", "torch", "functional"])
def test_global_mean_is_an_average_pool(how):
    (ops,) = tdsnn.count_dnn_ops(_Mean(how), (3, 5, 6)).layers
    assert (ops.kind, ops.mul, ops.add) == ("avgpool", 30 * 3, 29 * 3)
    assert tdsnn.count_dnn_ops(_Mean("channels"), (3, 5, 6)).layers == []


@pytest.mark.parametrize("size", [1, (1, 1)])
def test_adaptive_avgpool_global(size):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(size), nn.Flatten(), nn.Linear(3, 4))
    ops = tdsnn.count_dnn_ops(model, (2, 8, 8))
    assert [layer.kind for layer in ops.layers] == ["conv", "avgpool", "linear"]
    assert (ops.layers[1].name, ops.layers[1].mul, ops.layers[1].add) == ("2", 64 * 3, 63 * 3)


def test_adaptive_avgpool_windows():
    same = tdsnn.count_dnn_ops(nn.AdaptiveAvgPool2d(2), (3, 4, 4)).layers
    assert same == tdsnn.count_dnn_ops(nn.AvgPool2d(2), (3, 4, 4)).layers  # equal windows
    (overlap,) = tdsnn.count_dnn_ops(nn.AdaptiveAvgPool2d(3), (3, 4, 4)).layers
    # 4 -> 3 along each axis: windows [0, 2), [1, 3), [2, 4), so 9 windows of 2x2 per channel
    assert (overlap.mul, overlap.add) == (3 * 9 * 4, 3 * 9 * 3)


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)

    def forward(self, x):
        y = self.conv(x)
        return y + x if bool(y.sum() >= 0) else y  # data-dependent: fx cannot trace it


def test_untraceable_model_falls_back_to_hooks():
    ops = tdsnn.count_dnn_ops(_Untraceable(), (1, 3, 3))
    assert [(o.name, o.kind) for o in ops.layers] == [("conv", "conv")]


def test_resnet20_macs_by_hand():
    from tdsnn.models import resnet20_cifar

    mul, size, cin = 3 * 9 * 16 * 32 * 32, 32, 16  # stem
    sums = 0
    for stage, cout in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            size //= stride
            n = cout * size * size
            mul += n * cin * 9 + n * cout * 9  # the two 3x3 convs
            if stride == 2:
                mul += n * cin  # 1x1 projection shortcut
            sums += n
            cin = cout
    conv_macs = mul
    mul += 64 * 8 * 8 + 64 * 10  # global average pool (fan-in 8*8, 64 outputs) and fc
    assert conv_macs == 40_812_544  # the well-known "40.8 M" (often written 41 M)
    ops = tdsnn.count_dnn_ops(resnet20_cifar(), (3, 32, 32))
    assert ops.mul == mul == 40_817_280
    assert sum(o.add for o in ops.layers if o.kind == "add") == sums == 86_016
    assert [o.kind for o in ops.layers].count("conv") == 21
    assert ops.layers[0].name == "conv1" and ops.layers[-1].name == "fc"
    assert [o.name for o in ops.layers[1:4]] == ["layer1.0.conv1", "layer1.0.conv2", "add"]
