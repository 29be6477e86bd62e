"""ResNet-20 (CIFAR) and ResNet-18 (ImageNet): shapes, parameter counts, layout, tracing."""

from __future__ import annotations

import pytest
import torch
from torch import fx, nn

from tdsnn.models import MODELS, BasicBlock, build_model, resnet18, resnet20_cifar


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(fn, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return fn(**kwargs)


def blocks(model: nn.Module) -> list[BasicBlock]:
    return [m for m in model.modules() if isinstance(m, BasicBlock)]


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0, 2.0])
def test_resnet20_output_shapes(width: float) -> None:
    model = resnet20_cifar(num_classes=7, width=width).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    assert model.fc.in_features == max(8, round(64 * width))


@pytest.mark.parametrize(("width", "size"), [(0.125, 32), (0.25, 64), (0.25, 224)])
def test_resnet18_output_shapes(width: float, size: int) -> None:
    model = resnet18(num_classes=5, width=width, in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, size, size))
    assert out.shape == (1, 5)
    assert model.fc.in_features == max(8, round(512 * width))


def test_resnet20_parameter_count_by_hand() -> None:
    bn = 2  # weight and bias per channel
    stem = 3 * 16 * 9 + bn * 16  # 464
    stage1 = 3 * (2 * 16 * 16 * 9 + 2 * bn * 16)  # 14,016
    # first block of stages 2 and 3: 3x3 cin->cout, 3x3 cout->cout, 1x1 projection, 3 BNs
    stage2 = (16 * 32 * 9 + 32 * 32 * 9 + 16 * 32 + 3 * bn * 32) + 2 * (2 * 32 * 32 * 9 + 2 * bn * 32)
    stage3 = (32 * 64 * 9 + 64 * 64 * 9 + 32 * 64 + 3 * bn * 64) + 2 * (2 * 64 * 64 * 9 + 2 * bn * 64)
    fc = 64 * 10 + 10
    assert (stage2, stage3) == (51_648, 205_696)
    assert stem + stage1 + stage2 + stage3 + fc == 272_474  # "0.27 M" (projection shortcuts)
    assert n_params(resnet20_cifar()) == 272_474


def test_resnet18_well_known_parameter_count() -> None:
    assert n_params(on_meta(resnet18)) == 11_689_512  # torchvision resnet18


def test_shortcuts_project_only_where_the_shape_changes() -> None:
    for model, stride2 in [(resnet20_cifar(), {3, 6}), (on_meta(resnet18), {2, 4, 6})]:
        for i, block in enumerate(blocks(model)):
            if i in stride2:
                conv, norm = block.shortcut
                assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
                assert (conv.kernel_size, conv.stride, conv.bias) == ((1, 1), (2, 2), None)
                assert block.conv1.stride == (2, 2)
            else:
                assert isinstance(block.shortcut, nn.Identity)
                assert block.conv1.stride == (1, 1)
    assert len(blocks(resnet20_cifar())) == 9
    # even where the width floor makes stage 1 and 2 equally wide, stride 2 projects
    assert isinstance(blocks(resnet20_cifar(width=0.25))[3].shortcut, nn.Sequential)


def test_relus_are_separate_and_not_inplace() -> None:
    for model in (resnet20_cifar(), on_meta(resnet18)):
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        assert len(relus) == 1 + 2 * len(blocks(model))  # stem + two per block
        assert len({id(m) for m in relus}) == len(relus)
        assert not any(m.inplace for m in relus)


@pytest.mark.parametrize("fn", [resnet20_cifar, resnet18])
def test_fx_traceable(fn) -> None:
    model = fn(width=0.25).eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(traced(x), model(x))
    adds = [n for n in traced.graph.nodes if n.op == "call_function" and "add" in n.name]
    assert len(adds) == len(blocks(model))


def test_registry_builds_the_resnets() -> None:
    assert MODELS["resnet20_cifar"][1] == (3, 32, 32)
    assert MODELS["resnet18"][1] == (3, 224, 224)
    model = build_model("resnet20_cifar", width=0.5, num_classes=100)
    assert blocks(model)[0].conv1.out_channels == 8
    assert model.fc.out_features == 100
    assert isinstance(build_model("resnet18", width=0.125), nn.Module)


@pytest.mark.parametrize("fn", [resnet20_cifar, resnet18])
def test_one_training_step(fn) -> None:
    torch.manual_seed(0)
    model = fn(num_classes=10, width=0.25)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.fc.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    assert not torch.equal(model.fc.weight, before)


def test_resnets_take_the_data_sets_shape_and_channels():
    """Global average pooling: the ResNets train on any image size they can pool (resnet18
    on 32x32 CIFAR, resnet20_cifar on 1-channel MNIST); fixed-size models still refuse."""
    import pytest
    import torch

    from tdsnn.data import ImageDataset
    from tdsnn.errors import TDSNNError
    from tdsnn.models import build_model
    from tdsnn.stages import model_info

    def data(c: int, h: int) -> ImageDataset:
        return ImageDataset(torch.zeros(2, c, h, h, dtype=torch.uint8), torch.zeros(2, dtype=torch.long),
                            10, [str(i) for i in range(10)], "toy", [0.0] * c, [1.0] * c)  # fmt: skip

    info = model_info(data(3, 32), "resnet18")
    assert info["input_shape"] == [3, 32, 32]
    info = model_info(data(1, 28), "resnet20_cifar")
    assert info["input_shape"] == [1, 28, 28] and info["arch_kwargs"]["in_channels"] == 1
    net = build_model("resnet20_cifar", **info["arch_kwargs"]).eval()
    assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(TDSNNError, match="takes inputs of shape"):
        model_info(data(3, 16), "resnet18")  # below the smallest size it pools
    with pytest.raises(TDSNNError, match="takes inputs of shape"):
        model_info(data(3, 28), "vgg_cifar")
