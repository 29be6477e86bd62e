"""Residual networks (He et al., 2016): CIFAR ResNet-20 and ImageNet ResNet-18.

Unlike the flat stacks in :mod:`tdsnn.models.zoo`, these have skip connections,
so they are ``nn.Module`` trees whose ``forward`` adds tensors.  They are
written for the residual converter: every ReLU is its own non-inplace
``nn.ReLU`` module (one per use, so hooks and the tracer see each activation),
nothing is computed in place, and every ``forward`` is ``torch.fx``
symbolically traceable.  Global average pooling (``nn.AdaptiveAvgPool2d(1)``)
makes the input size free (at least 32x32 for ResNet-18).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .zoo import scale_channels

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet20_cifar"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.

    The shortcut is ``nn.Identity()`` when the shape is kept, else the standard
    projection (1x1 conv with the block's stride, then BN).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(cout),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (conv -> BN -> ReLU [-> max-pool]) -> stages of BasicBlocks -> global
    average pool -> flatten -> fc.  Stages are ``layer1``, ``layer2``, ...; every
    stage after the first halves the resolution in its first block."""

    def __init__(
        self,
        stages: Sequence[tuple[int, int]],
        num_classes: int,
        in_channels: int,
        imagenet_stem: bool,
    ) -> None:
        super().__init__()
        stem = stages[0][0]
        if imagenet_stem:  # 7x7 stride-2 conv and a 3x3 stride-2 max-pool: 224 -> 56
            self.conv1 = nn.Conv2d(in_channels, stem, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = _conv3x3(in_channels, stem)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if imagenet_stem else None
        self.stage_names: tuple[str, ...] = tuple(f"layer{i + 1}" for i in range(len(stages)))
        cin = stem
        for i, (name, (channels, blocks)) in enumerate(zip(self.stage_names, stages, strict=True)):
            layer = [BasicBlock(cin, channels, stride=1 if i == 0 else 2)]
            layer += [BasicBlock(channels, channels) for _ in range(blocks - 1)]
            self.add_module(name, nn.Sequential(*layer))
            cin = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        _init_resnet(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _init_resnet(model: nn.Module) -> None:
    """He et al.'s initialisation (as torchvision's): Kaiming-normal convs, BN = identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet20_cifar(num_classes: int = 10, width: float = 1.0, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-20 (He et al. 2016, section 4.2) for 3x32x32 images.

    3x3 stem conv 16 -> three stages of three BasicBlocks with 16, 32, 64
    channels (32x32, 16x16, 8x8) -> global average pool -> fc ``num_classes``.
    Projection shortcuts (option B) where the shape changes; 272,474 parameters
    at ``width=1``.  Channels are ``round(c * width)``, at least 8.
    """
    channels = [scale_channels(c, width) for c in (16, 32, 64)]
    return ResNet([(c, 3) for c in channels], num_classes, in_channels, imagenet_stem=False)


def resnet18(num_classes: int = 1000, width: float = 1.0, in_channels: int = 3) -> ResNet:
    """ImageNet ResNet-18 in torchvision's layout, for 3x224x224 images (any size >= 32).

    7x7 stride-2 stem conv 64 -> 3x3 stride-2 max-pool -> four stages of two
    BasicBlocks with 64, 128, 256, 512 channels -> global average pool -> fc.
    11,689,512 parameters at 1000 classes and ``width=1``, like torchvision's
    ``resnet18``.  Channels are ``round(c * width)``, at least 8.
    """
    channels = [scale_channels(c, width) for c in (64, 128, 256, 512)]
    return ResNet([(c, 2) for c in channels], num_classes, in_channels, imagenet_stem=True)
