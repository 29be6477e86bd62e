"""Data-set loading: MNIST, Fashion-MNIST, CIFAR-10 and image folders, from local files only.

Formats are parsed and validated strictly (IDX headers and lengths, restricted unpickling of
CIFAR batches); errors are :class:`DatasetError` naming the file.  Nothing is downloaded.
"""

from tdsnn.data.cifar import CIFAR10_CLASSES, cifar10_class_names, load_cifar10
from tdsnn.data.errors import DatasetError
from tdsnn.data.idx import read_idx
from tdsnn.data.image_folder import load_image_folder
from tdsnn.data.loaders import make_loader, to_float
from tdsnn.data.mnist import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    load_fashion_mnist,
    load_mnist,
)
from tdsnn.data.registry import DATASET_NAMES, ImageDataset, load_dataset, resolve_root

__all__ = [
    "CIFAR10_CLASSES",
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "DatasetError",
    "ImageDataset",
    "cifar10_class_names",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "make_loader",
    "read_idx",
    "resolve_root",
    "to_float",
]
