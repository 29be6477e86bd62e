import math

import pytest
import torch
from torch import nn

import tdsnn
from tdsnn import ConversionError, UnsupportedModelError
from tdsnn.snn.layers import SpikeFlatten, SpikingMaxPool, SpikingSynapse


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 6), nn.ReLU(), nn.Linear(6, 3)
    ).eval()


def test_layers_weights_bias_neurons():
    gdnn = tdsnn.prepare(_model(), L=5.0)
    snn = tdsnn.convert(gdnn)
    kinds = [type(m) for m in snn.layers]
    assert kinds == [SpikingSynapse, SpikingMaxPool, SpikeFlatten, SpikingSynapse, SpikingSynapse]
    conv, fc, out = snn.synapse_layers
    assert not conv.is_output and out.is_output
    assert torch.equal(conv.synaptic_weight, -gdnn.conv1.weight)
    assert torch.equal(out.synaptic_weight, gdnn.fc3.weight)  # output layer keeps its sign
    g1 = math.exp(math.ceil(5 * math.log(2)) / 5)
    torch.testing.assert_close(fc.bias_neuron_weight, -gdnn.fc2.bias.double() / g1)
    assert fc.bias_neuron_weight.dtype == torch.float64  # not rounded to float32
    assert snn.t_il_mode == "dynamic"


def test_convert_refuses_non_gdnn_and_bad_static_values():
    with pytest.raises(UnsupportedModelError, match="prepare"):
        tdsnn.convert(_model())
    gdnn = tdsnn.prepare(_model(), L=5.0)
    t1 = tdsnn.bias_spike_time(5.0)
    with pytest.raises(ConversionError, match=r"shorter than T\(1\)"):
        tdsnn.convert(gdnn, t_il=[t1, t1 - 1, t1])
    with pytest.raises(ConversionError, match="one value per synapse layer"):
        tdsnn.convert(gdnn, t_il=[t1])
    with pytest.raises(ConversionError, match="empty"):
        tdsnn.convert(gdnn, calibration=[])


def test_calibration_from_a_loader():
    gdnn = tdsnn.prepare(_model(), L=3.0)
    data = torch.rand(10, 1, 8, 8) * 4
    loader = [(data[:5], torch.zeros(5)), (data[5:], torch.zeros(5))]
    snn = tdsnn.convert(gdnn, calibration=loader)
    expected = tdsnn.convert(gdnn).run(data).t_il.amax(dim=0).tolist()
    assert snn.static_t_il == expected


def test_snn_forward_gives_logits_and_state_dict_round_trip():
    gdnn = tdsnn.prepare(_model(), L=5.0)
    snn = tdsnn.convert(gdnn)
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(snn(x), gdnn.double()(x.double()))
    state = snn.state_dict()
    assert any(k.endswith("dnn_weight") for k in state)
