import warnings

import pytest
import torch
from torch import nn

import tdsnn
from tdsnn import GCoding, UnsupportedModelError


def _without_g(gdnn: nn.Module) -> nn.Sequential:
    """The prepared network with G replaced by identity: must equal the original DNN."""
    return nn.Sequential(*[nn.Identity() if isinstance(m, GCoding) else m for m in gdnn])


def _lenet_bn() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(8 * 10 * 10, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Dropout(),
        nn.Linear(20, 10),
    )
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def test_structure_g_before_every_synapse_and_relu_after_hidden():
    gdnn = tdsnn.prepare(_lenet_bn(), L=4.0)
    kinds = [type(m).__name__ for m in gdnn]
    assert kinds == [
        "GCoding", "Conv2d", "ReLU", "MaxPool2d",
        "GCoding", "Conv2d", "ReLU", "Flatten",
        "GCoding", "Linear", "ReLU",
        "GCoding", "Linear",
    ]
    assert all(m.L == 4.0 for m in gdnn if isinstance(m, GCoding))
    assert list(dict(gdnn.named_children())) [:4] == ["conv1_G", "conv1", "conv1_relu", "pool1"]


def test_folding_preserves_the_function():
    model = _lenet_bn()
    x = torch.rand(5, 1, 28, 28) * 3
    gdnn = tdsnn.prepare(model, L=5.0, compensate=False)
    torch.testing.assert_close(_without_g(gdnn)(x), model(x), rtol=1e-4, atol=1e-4)


def test_model_is_not_modified():
    model = _lenet_bn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tdsnn.prepare(model, L=5.0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert isinstance(model[1], nn.BatchNorm2d)


def test_normalisation_and_scales_are_folded():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 7), nn.ReLU(), nn.Linear(7, 3)
    ).eval()
    mean, std, scale = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3], 255.0
    pixels = torch.rand(4, 3, 8, 8)
    expected = model((pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    gdnn = tdsnn.prepare(
        model, L=5.0, input_mean=mean, input_std=std, input_scale=scale,
        activation_scales=[3.0, 0.5], compensate=False,
    )
    torch.testing.assert_close(_without_g(gdnn)(pixels * scale), expected, rtol=1e-4, atol=1e-4)
    # the hidden activations really are scaled before G
    hidden = _without_g(gdnn)[:3](pixels * scale)
    original = model[:2]((pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(hidden, 3.0 * original, rtol=1e-4, atol=1e-4)


def test_compensation_brings_gdnn_close_to_dnn():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 5)).eval()
    x = torch.rand(256, 30) * 5
    target = model(x)
    plain = tdsnn.prepare(model, L=5.0, compensate=False)(x)
    compensated = tdsnn.prepare(model, L=5.0)(x)
    err_plain = (plain - target).abs().mean()
    err_comp = (compensated - target).abs().mean()
    assert err_comp < 0.25 * err_plain


def test_missing_relu_is_inserted_with_a_warning():
    model = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
    with pytest.warns(UserWarning, match="no ReLU after hidden layer"):
        gdnn = tdsnn.prepare(model)
    assert [type(m).__name__ for m in gdnn] == ["GCoding", "Linear", "ReLU", "GCoding", "Linear"]


def test_output_relu_dropped_with_warning():
    with pytest.warns(UserWarning, match="output layer is dropped"):
        gdnn = tdsnn.prepare(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2), nn.ReLU()))
    assert not isinstance(list(gdnn)[-1], nn.ReLU)


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        x = x.view(x.size(0), -1)
        return self.fc(x)


def test_traced_module_with_functional_relu_and_view():
    model = FunctionalNet().eval()
    gdnn = tdsnn.prepare(model, L=3.0, compensate=False)
    assert [type(m).__name__ for m in gdnn] == [
        "GCoding", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "GCoding", "Linear"
    ]
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(_without_g(gdnn)(x), model(x))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + x)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:
            return self.a(x)
        return -self.a(x)


@pytest.mark.parametrize(
    "model, match",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), "Tanh.*negative"),
        (nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(), nn.Linear(4, 2)), "LeakyReLU"),
        (nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU()), "Conv1d.*not supported"),
        (nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2)), "Sigmoid.*not supported"),
        (Residual(), "'add'.*without a ReLU"),
        (DataDependent(), "cannot be traced"),
        (nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 2)), "cannot\\s+be folded"),
        (nn.Sequential(nn.ReLU()), "no Conv2d, Linear or AvgPool2d"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.MaxPool2d(2)), "follows the output"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.Conv2d(2, 2, 3)), "padding_mode"),
        (nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.AdaptiveAvgPool1d(2)), "AdaptiveAvgPool1d"),
    ],
)
def test_unsupported_models_are_refused_with_the_layer_named(model, match):
    with pytest.raises(UnsupportedModelError, match=match) as info:
        tdsnn.prepare(model)
    assert "supported" in str(info.value) or "fold" in str(info.value) or "output" in str(info.value)


def test_already_prepared_and_bad_arguments():
    gdnn = tdsnn.prepare(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(UnsupportedModelError, match="already"):
        tdsnn.prepare(gdnn)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(tdsnn.ConversionError):
        tdsnn.prepare(model, L=0)
    with pytest.raises(UnsupportedModelError, match="input_scale"):
        tdsnn.prepare(model, input_scale=-1)
    with pytest.raises(UnsupportedModelError, match="activation_scales"):
        tdsnn.prepare(model, activation_scales=[1.0, 2.0])
    with pytest.raises(UnsupportedModelError, match="both"):
        tdsnn.prepare(model, input_mean=[0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tdsnn.prepare(model, input_mean=0.5, input_std=0.2)
