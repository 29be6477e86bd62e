"""Reference CNN architectures, written as flat ``nn.Sequential`` stacks.

Every model here is a single, flat ``nn.Sequential`` built only from layers the
converter understands (Conv2d, Linear, ReLU, MaxPool2d, AvgPool2d, Flatten,
BatchNorm2d/BatchNorm1d, Dropout), so it can be traced layer by layer.  Every
hidden synapse layer (conv / fc) is followed by a ReLU, as the TDSNN conversion
requires (paper, "DNN Adjustment and Re-training"); the last fc layer is the
output layer and has no activation.  There is no adaptive pooling, so each model
has one fixed input size (see ``MODELS`` in :mod:`tdsnn.models`).  ReLUs are
not in-place, so forward hooks on a conv/fc layer see its pre-activation output.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = [
    "VGG_CIFAR_CONFIGS",
    "VGG16_CONFIG",
    "alexnet",
    "alexnet_cifar",
    "lenet5",
    "scale_channels",
    "vgg16",
    "vgg_cifar",
]

# "M" is a 2x2 / stride 2 max-pool, an int is a 3x3 / pad 1 conv with that many channels.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
VGG_CIFAR_CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: VGG16_CONFIG,
}


def scale_channels(channels: int, width: float, minimum: int = 8) -> int:
    """Return ``channels * width`` rounded to an int, but at least ``minimum``."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    return max(minimum, int(round(channels * width)))


def _conv_stack(
    config: Sequence[int | str], in_channels: int, batch_norm: bool
) -> tuple[list[nn.Module], int]:
    """Build VGG-style 3x3 conv / ReLU / 2x2 max-pool layers; return them and the out channels."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(item, int)
        layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU())
        channels = item
    return layers, channels


def _init_vgg(model: nn.Module) -> None:
    """torchvision's VGG initialisation (He init for convs), which deep plain VGGs need to train."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def lenet5(num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """The paper's Caffe LeNet for 28x28 MNIST digits (431,080 parameters at 10 classes).

    conv 20@5x5 -> ReLU -> max-pool 2 -> conv 50@5x5 -> ReLU -> max-pool 2 ->
    flatten (50*4*4 = 800) -> fc 500 -> ReLU -> fc ``num_classes``.

    Unlike Caffe's ``lenet_train_test.prototxt``, which has no ReLU after its two
    convolutions, a ReLU follows every hidden conv/fc layer here: the TDSNN
    conversion needs a ReLU after every hidden synapse layer.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 20, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(20, 50, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(50 * 4 * 4, 500),
        nn.ReLU(),
        nn.Linear(500, num_classes),
    )


def alexnet(num_classes: int = 1000) -> nn.Sequential:
    """ImageNet AlexNet, single-tower torchvision variant, on a fixed 3x224x224 input.

    conv 64@11x11 s4 p2 -> max-pool 3 s2 -> conv 192@5x5 p2 -> max-pool 3 s2 ->
    conv 384@3x3 -> conv 256@3x3 -> conv 256@3x3 -> max-pool 3 s2 (256x6x6) ->
    flatten -> dropout -> fc 4096 -> dropout -> fc 4096 -> fc ``num_classes``
    (ReLU after every hidden layer).  torchvision's ``AdaptiveAvgPool2d((6, 6))``
    is the identity at 224x224 and is left out because the converter does not
    support adaptive pooling, so the input must be exactly 224x224.  Same weights
    layout and parameter count (61,100,840) as torchvision's ``alexnet``.
    """
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Dropout(p=0.5),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, num_classes),
    )


def vgg16(num_classes: int = 1000, batch_norm: bool = False) -> nn.Sequential:
    """ImageNet VGG-16 (configuration D) on a fixed 3x224x224 input.

    Thirteen 3x3 convs in five blocks (64, 128, 256, 512, 512 channels, each block
    ending in a 2x2 max-pool; 512x7x7 at the end) -> flatten -> fc 4096 -> dropout
    -> fc 4096 -> dropout -> fc ``num_classes``.  138,357,544 parameters without
    batch norm, like torchvision's ``vgg16``; ``batch_norm=True`` gives ``vgg16_bn``.
    torchvision's adaptive pool (the identity at 224x224) is left out.
    """
    layers, channels = _conv_stack(VGG16_CONFIG, 3, batch_norm)
    model = nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(channels * 7 * 7, 4096),
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(4096, num_classes),
    )
    _init_vgg(model)
    return model


def vgg_cifar(
    num_classes: int = 10,
    width: float = 1.0,
    depth: int = 16,
    batch_norm: bool = True,
    hidden: int = 0,
    in_channels: int = 3,
) -> nn.Sequential:
    """VGG-11/13/16 for 3x32x32 CIFAR images, channels scaled by ``width``.

    The five 2x2 max-pools bring 32x32 down to 1x1, so the classifier is
    flatten -> fc C -> ``num_classes`` (C = last conv's channels); with
    ``hidden > 0`` it is flatten -> dropout -> fc ``hidden`` -> ReLU -> fc
    ``num_classes`` instead.  Channel counts are ``round(c * width)``, at least 8;
    ``width=0.25`` (16..128 channels) trains in minutes on a couple of CPU cores.
    """
    if depth not in VGG_CIFAR_CONFIGS:
        raise ValueError(f"depth must be one of {sorted(VGG_CIFAR_CONFIGS)}, got {depth!r}")
    config = [c if c == "M" else scale_channels(int(c), width) for c in VGG_CIFAR_CONFIGS[depth]]
    layers, channels = _conv_stack(config, in_channels, batch_norm)
    head: list[nn.Module] = [nn.Flatten()]
    if hidden > 0:
        head += [
            nn.Dropout(p=0.5),
            nn.Linear(channels, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        ]
    else:
        head.append(nn.Linear(channels, num_classes))
    model = nn.Sequential(*layers, *head)
    _init_vgg(model)
    return model


def alexnet_cifar(
    num_classes: int = 10,
    width: float = 1.0,
    batch_norm: bool = True,
    in_channels: int = 3,
) -> nn.Sequential:
    """AlexNet-style network for 3x32x32 CIFAR images, channels scaled by ``width``.

    conv 64@3x3 -> max-pool 2 -> conv 192@3x3 -> max-pool 2 -> conv 384@3x3 ->
    conv 256@3x3 -> conv 256@3x3 -> max-pool 2 (256x4x4) -> flatten -> dropout ->
    fc 1024 -> dropout -> fc 1024 -> fc ``num_classes``, with ReLU after every
    hidden layer (and BatchNorm2d after each conv if ``batch_norm``).  All conv
    and hidden fc widths are ``round(c * width)``, at least 8.
    """
    c1, c2, c3, c4, c5 = (scale_channels(c, width) for c in (64, 192, 384, 256, 256))
    fc = scale_channels(1024, width)

    def conv(cin: int, cout: int) -> list[nn.Module]:
        block: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=3, padding=1)]
        if batch_norm:
            block.append(nn.BatchNorm2d(cout))
        block.append(nn.ReLU())
        return block

    return nn.Sequential(
        *conv(in_channels, c1),
        nn.MaxPool2d(kernel_size=2, stride=2),
        *conv(c1, c2),
        nn.MaxPool2d(kernel_size=2, stride=2),
        *conv(c2, c3),
        *conv(c3, c4),
        *conv(c4, c5),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Dropout(p=0.5),
        nn.Linear(c5 * 4 * 4, fc),
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(fc, fc),
        nn.ReLU(),
        nn.Linear(fc, num_classes),
    )
