"""Model zoo: the paper's benchmark CNNs (LeNet-5, AlexNet, VGG-16) and CIFAR-size variants.

All models are flat ``nn.Sequential`` stacks of convertible layers; ``MODELS``
maps each name to its constructor and fixed input shape ``(C, H, W)``.
"""

from __future__ import annotations

from .registry import MODELS, ModelLoadError, build_model, load_user_model
from .zoo import alexnet, alexnet_cifar, lenet5, scale_channels, vgg16, vgg_cifar

__all__ = [
    "MODELS",
    "ModelLoadError",
    "alexnet",
    "alexnet_cifar",
    "build_model",
    "lenet5",
    "load_user_model",
    "scale_channels",
    "vgg16",
    "vgg_cifar",
]
