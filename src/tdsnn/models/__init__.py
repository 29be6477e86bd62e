"""Model zoo: the paper's benchmark CNNs (LeNet-5, AlexNet, VGG-16), CIFAR-size
variants, and residual networks (CIFAR ResNet-20, ImageNet ResNet-18).

The paper's CNNs and their CIFAR variants are flat ``nn.Sequential`` stacks of
convertible layers (:mod:`.zoo`); the ResNets are module trees with skip
connections, traceable by ``torch.fx`` (:mod:`.resnet`).  ``MODELS`` maps each
name to its constructor and default input shape ``(C, H, W)``.
"""

from __future__ import annotations

from .registry import (
    FLEXIBLE_INPUT,
    MAX_PARAMETERS,
    MODELS,
    ModelLoadError,
    build_model,
    check_kwargs,
    load_user_model,
    same_spec,
)
from .resnet import BasicBlock, resnet18, resnet20_cifar
from .zoo import alexnet, alexnet_cifar, lenet5, scale_channels, vgg16, vgg_cifar

__all__ = [
    "FLEXIBLE_INPUT",
    "BasicBlock",
    "MAX_PARAMETERS",
    "MODELS",
    "ModelLoadError",
    "alexnet",
    "alexnet_cifar",
    "build_model",
    "check_kwargs",
    "lenet5",
    "load_user_model",
    "resnet18",
    "resnet20_cifar",
    "same_spec",
    "scale_channels",
    "vgg16",
    "vgg_cifar",
]
