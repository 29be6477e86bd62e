"""Name -> constructor registry of the model zoo, and loading of user-defined models."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from ..errors import TDSNNError
from .zoo import alexnet, alexnet_cifar, lenet5, vgg16, vgg_cifar

__all__ = ["MODELS", "ModelLoadError", "build_model", "load_user_model"]


class ModelLoadError(TDSNNError, ValueError):
    """A model name or a user ``module:function`` spec cannot be turned into a model."""


# name -> (constructor, default input shape (C, H, W) without the batch dimension)
MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[int, int, int]]] = {
    "lenet5": (lenet5, (1, 28, 28)),
    "alexnet": (alexnet, (3, 224, 224)),
    "vgg16": (vgg16, (3, 224, 224)),
    "vgg_cifar": (vgg_cifar, (3, 32, 32)),
    "alexnet_cifar": (alexnet_cifar, (3, 32, 32)),
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the zoo model ``name`` with constructor keyword arguments ``kwargs``."""
    try:
        constructor, _ = MODELS[name]
    except KeyError:
        raise ModelLoadError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}"
        ) from None
    return constructor(**kwargs)


def _split_spec(spec: str) -> tuple[str, str]:
    """Split ``module:function`` at the last colon (so ``C:\\x\\m.py:f`` works)."""
    module_part, sep, attr_part = spec.rpartition(":")
    if not sep or not module_part or not attr_part:
        raise ModelLoadError(
            f"model spec {spec!r} must look like 'package.module:function' "
            "or 'path/to/file.py:function'"
        )
    return module_part, attr_part


def _is_file_spec(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or "\\" in module_part


def _import_file(module_part: str) -> ModuleType:
    """Import a ``.py`` file under a unique, path-derived module name."""
    path = Path(module_part).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {str(path)!r}")
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"_tdsnn_user_{path.stem.replace('-', '_').replace('.', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as a normal import does (dataclasses, pickling need it).
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, Exception):
            raise ModelLoadError(
                f"importing model file {str(path)!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        raise
    return module


def _import_module(module_part: str) -> ModuleType:
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_part == missing or module_part.startswith(missing + "."):
            raise ModelLoadError(
                f"module {module_part!r} not found (is it installed or on PYTHONPATH? "
                "a file path must end in '.py')"
            ) from exc
        raise ModelLoadError(
            f"importing module {module_part!r} failed: it needs {missing!r}, which is not installed"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(
            f"importing module {module_part!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def load_user_model(spec: str, **kwargs: Any) -> nn.Module:
    """Build a user's model from ``'pkg.module:function'`` or ``'path/to/file.py:function'``.

    The function (a dotted attribute path such as ``Class.factory`` is allowed, as
    is an ``nn.Module`` subclass) is called with ``kwargs`` and must return an
    ``nn.Module``.  Every failure raises :class:`ModelLoadError` saying which part
    of the spec is wrong.
    """
    module_part, attr_part = _split_spec(spec)
    module = (
        _import_file(module_part) if _is_file_spec(module_part) else _import_module(module_part)
    )
    obj: Any = module
    for piece in attr_part.split("."):
        if not hasattr(obj, piece):
            raise ModelLoadError(f"{module_part!r} has no attribute {attr_part!r} (spec {spec!r})")
        obj = getattr(obj, piece)
    if not callable(obj):
        raise ModelLoadError(
            f"{attr_part!r} in {module_part!r} is a {type(obj).__name__}, not a callable "
            "that builds a model"
        )
    try:
        model = obj(**kwargs)
    except Exception as exc:
        raise ModelLoadError(f"calling {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelLoadError(
            f"{spec!r} returned a {type(model).__name__}, expected a torch.nn.Module"
        )
    return model
