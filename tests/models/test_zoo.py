"""Model zoo: shapes, well-known parameter counts, width scaling, user model loading."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from tdsnn.models import (
    MODELS,
    ModelLoadError,
    alexnet,
    alexnet_cifar,
    build_model,
    lenet5,
    load_user_model,
    scale_channels,
    vgg16,
    vgg_cifar,
)

ALLOWED = (
    nn.Conv2d,
    nn.Linear,
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.BatchNorm2d,
    nn.BatchNorm1d,
    nn.Dropout,
)
SYNAPSE = (nn.Conv2d, nn.Linear)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(fn, **kwargs) -> nn.Module:
    """Build a model without allocating (or initialising) its weights."""
    with torch.device("meta"):
        return fn(**kwargs)


def test_registry_names_and_input_shapes() -> None:
    assert set(MODELS) == {
        "lenet5", "alexnet", "vgg16", "vgg_cifar", "alexnet_cifar", "resnet20_cifar", "resnet18",
    }  # fmt: skip
    assert MODELS["lenet5"][1] == (1, 28, 28)
    assert MODELS["alexnet"][1] == (3, 224, 224)
    assert MODELS["vgg16"][1] == (3, 224, 224)
    assert MODELS["vgg_cifar"][1] == (3, 32, 32)
    assert MODELS["alexnet_cifar"][1] == (3, 32, 32)


@pytest.mark.parametrize(
    ("name", "kwargs", "classes"),
    [
        ("lenet5", {}, 10),
        ("alexnet", {}, 1000),
        ("vgg16", {}, 1000),
        ("vgg_cifar", {"width": 0.25}, 10),
        ("vgg_cifar", {"width": 0.25, "depth": 11, "hidden": 64}, 10),
        ("alexnet_cifar", {"width": 0.25, "num_classes": 100}, 100),
    ],
)
def test_output_shape_on_default_input(name: str, kwargs: dict, classes: int) -> None:
    model = build_model(name, **kwargs).eval()
    _, shape = MODELS[name]
    batch = 1 if shape[-1] > 32 else 2  # keep the 224x224 forwards at batch 1
    with torch.no_grad():
        out = model(torch.randn(batch, *shape))
    assert out.shape == (batch, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(n for n in MODELS if not n.startswith("resnet")))
def test_flat_sequential_of_convertible_layers(name: str) -> None:
    model = on_meta(MODELS[name][0])
    assert type(model) is nn.Sequential
    layers = list(model)
    assert all(isinstance(m, ALLOWED) for m in layers), [type(m).__name__ for m in layers]
    # every hidden synapse layer is followed (after optional BN / dropout) by a ReLU,
    # the output layer is the last module and has no activation
    synapse_idx = [i for i, m in enumerate(layers) if isinstance(m, SYNAPSE)]
    assert synapse_idx[-1] == len(layers) - 1
    for i in synapse_idx[:-1]:
        j = i + 1
        while isinstance(layers[j], nn.BatchNorm2d | nn.BatchNorm1d | nn.Dropout):
            j += 1
        assert isinstance(layers[j], nn.ReLU), f"layer {i} ({layers[i]}) not followed by ReLU"
        assert not layers[j].inplace


def test_lenet5_parameter_count_by_hand() -> None:
    conv1 = 20 * 1 * 5 * 5 + 20
    conv2 = 50 * 20 * 5 * 5 + 50
    fc1 = 800 * 500 + 500
    fc2 = 500 * 10 + 10
    assert conv1 + conv2 + fc1 + fc2 == 431_080
    assert n_params(lenet5()) == 431_080
    assert n_params(lenet5(num_classes=5, in_channels=3)) == 431_080 - 5 * 501 + 2 * 20 * 25


def test_well_known_parameter_counts() -> None:
    assert n_params(on_meta(alexnet)) == 61_100_840  # torchvision alexnet
    assert n_params(on_meta(vgg16)) == 138_357_544  # torchvision vgg16
    assert n_params(on_meta(vgg16, batch_norm=True)) == 138_365_992  # torchvision vgg16_bn


def test_vgg16_layout() -> None:
    model = on_meta(vgg16)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert [(f.in_features, f.out_features) for f in fcs] == [
        (25088, 4096),
        (4096, 4096),
        (4096, 1000),
    ]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model) == 5


def conv_channels(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model if isinstance(m, nn.Conv2d)]


def test_vgg_cifar_depths_and_width_scaling() -> None:
    full = vgg_cifar(width=1.0, depth=16)
    assert conv_channels(full) == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    quarter = vgg_cifar(width=0.25, depth=16)
    assert conv_channels(quarter) == [16, 16, 32, 32, 64, 64, 64] + [128] * 6
    assert quarter[-1].in_features == 128
    tiny = vgg_cifar(width=0.01, depth=11)
    assert conv_channels(tiny) == [8] * 8  # floor of 8 channels
    assert len(conv_channels(vgg_cifar(depth=13, width=0.5))) == 10
    assert n_params(quarter) < n_params(vgg_cifar(width=0.5)) < n_params(full)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in vgg_cifar(width=0.25, batch_norm=False))
    with pytest.raises(ValueError, match="depth"):
        vgg_cifar(depth=19)
    with pytest.raises(ValueError, match="width"):
        vgg_cifar(width=0)


def test_alexnet_cifar_width_scaling() -> None:
    assert conv_channels(alexnet_cifar()) == [64, 192, 384, 256, 256]
    assert conv_channels(alexnet_cifar(width=0.5)) == [32, 96, 192, 128, 128]
    fcs = [m for m in alexnet_cifar(width=0.5) if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(2048, 512), (512, 512), (512, 10)]
    assert scale_channels(3, 0.5) == 8
    assert scale_channels(100, 0.333) == 33


def test_vgg_cifar_quarter_width_learns() -> None:
    """A few SGD steps on one fixed batch must lower the loss (the net is trainable)."""
    torch.manual_seed(0)
    model = vgg_cifar(width=0.25)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_build_model_unknown_name() -> None:
    with pytest.raises(ModelLoadError, match="unknown model 'resnet50'.*lenet5"):
        build_model("resnet50")


# ----------------------------------------------------------------- user models

USER_MODULE = textwrap.dedent(
    """
    from torch import nn

    NOT_CALLABLE = 3

    def tiny(hidden=4):
        return nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def not_a_module():
        return "hello"

    def broken():
        raise RuntimeError("boom")

    class Factory:
        @staticmethod
        def make():
            return nn.Linear(2, 2)
    """
)


@pytest.fixture()
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(USER_MODULE)
    return path


def test_load_user_model_from_file(user_file: Path) -> None:
    model = load_user_model(f"{user_file}:tiny", hidden=7)
    assert isinstance(model, nn.Sequential)
    assert model[1].out_features == 7
    assert isinstance(load_user_model(f"{user_file}:Factory.make"), nn.Linear)


def test_load_user_model_from_module(user_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(user_file.parent))
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    model = load_user_model("my_models:tiny")
    assert isinstance(model, nn.Module)
    assert isinstance(load_user_model("tdsnn.models:lenet5"), nn.Sequential)
    sys.modules.pop("my_models", None)


@pytest.mark.parametrize(
    ("suffix", "match"),
    [
        (":missing_fn", "has no attribute 'missing_fn'"),
        (":NOT_CALLABLE", "not a callable"),
        (":not_a_module", "returned a str, expected a torch.nn.Module"),
        (":broken", "calling .* failed: RuntimeError: boom"),
        ("", "must look like"),
    ],
)
def test_load_user_model_bad_specs(user_file: Path, suffix: str, match: str) -> None:
    with pytest.raises(ModelLoadError, match=match):
        load_user_model(f"{user_file}{suffix}")


def test_load_user_model_missing_module_or_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="module 'no_such_mod_xyz' not found"):
        load_user_model("no_such_mod_xyz:f")
    with pytest.raises(ModelLoadError, match="model file not found"):
        load_user_model(f"{tmp_path / 'nope.py'}:f")
    with pytest.raises(ModelLoadError, match="must look like"):
        load_user_model("tdsnn.models:")
    bad = tmp_path / "bad_import.py"
    bad.write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ModelLoadError, match="importing model file .*no_such_dependency_xyz"):
        load_user_model(f"{bad}:f")
    assert isinstance(ModelLoadError("x"), ValueError)
