"""Model zoo: the paper's benchmark CNNs (LeNet-5, AlexNet, VGG-16) and CIFAR-size variants.

All models are flat ``nn.Sequential`` stacks of convertible layers; ``MODELS``
maps each name to its constructor and fixed input shape ``(C, H, W)``.
"""

from __future__ import annotations

from .registry import (
    MAX_PARAMETERS,
    MODELS,
    ModelLoadError,
    build_model,
    check_kwargs,
    load_user_model,
    same_spec,
)
from .zoo import alexnet, alexnet_cifar, lenet5, scale_channels, vgg16, vgg_cifar

__all__ = [
    "MAX_PARAMETERS",
    "MODELS",
    "ModelLoadError",
    "alexnet",
    "alexnet_cifar",
    "build_model",
    "check_kwargs",
    "lenet5",
    "load_user_model",
    "same_spec",
    "scale_channels",
    "vgg16",
    "vgg_cifar",
]
