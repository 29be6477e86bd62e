"""Name -> constructor registry of the model zoo, and loading of user-defined models.

Zoo models are built only from their registered name with checked keyword
arguments (names the constructor takes, plain JSON values, a bounded size), so
kwargs read from a run folder's sidecar cannot call anything else or exhaust
memory.  :func:`load_user_model` imports user code and is only ever called with a
spec that the user names at that moment (never one read from a file).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import TDSNNError
from .resnet import resnet18, resnet20_cifar
from .zoo import alexnet, alexnet_cifar, lenet5, vgg16, vgg_cifar

__all__ = [
    "FLEXIBLE_INPUT",
    "MAX_PARAMETERS",
    "MODELS",
    "ModelLoadError",
    "build_model",
    "check_kwargs",
    "load_user_model",
    "same_spec",
]

MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights; the zoo's largest (VGG-16) is 138 M


class ModelLoadError(TDSNNError, ValueError):
    """A model name or a user ``module:function`` spec cannot be turned into a model."""


# name -> (constructor, default input shape (C, H, W) without the batch dimension)
MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[int, int, int]]] = {
    "lenet5": (lenet5, (1, 28, 28)),
    "alexnet": (alexnet, (3, 224, 224)),
    "vgg16": (vgg16, (3, 224, 224)),
    "vgg_cifar": (vgg_cifar, (3, 32, 32)),
    "alexnet_cifar": (alexnet_cifar, (3, 32, 32)),
    "resnet20_cifar": (resnet20_cifar, (3, 32, 32)),
    "resnet18": (resnet18, (3, 224, 224)),
}


# Models with global average pooling take any input of at least this height and width
# (and any number of channels: ``in_channels``); MODELS gives their usual shape.
FLEXIBLE_INPUT: dict[str, int] = {"resnet20_cifar": 8, "resnet18": 32}


def _plain(value: Any) -> bool:
    if isinstance(value, bool | int | str) or value is None:
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, list | tuple) and all(_plain(v) for v in value)


def check_kwargs(name: str, constructor: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Refuse kwargs that ``constructor`` does not take, or that are not plain JSON values."""
    if not isinstance(kwargs, dict):
        raise ModelLoadError(f"model kwargs must be a JSON object, got {type(kwargs).__name__}")
    params = inspect.signature(constructor).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    known = sorted(n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    for key, value in kwargs.items():
        if not isinstance(key, str) or (key not in params and not takes_any):
            raise ModelLoadError(
                f"model {name!r} takes no argument {key!r}; it takes: {', '.join(known)}"
            )
        if not _plain(value):
            raise ModelLoadError(
                f"model {name!r}: argument {key!r} must be a finite number, string, bool, "
                f"null or a list of them, got {value!r}"
            )


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the zoo model ``name`` with constructor keyword arguments ``kwargs``.

    The model is first built on the ``meta`` device (no memory) to check its size
    against :data:`MAX_PARAMETERS`; bad arguments raise :class:`ModelLoadError`.
    """
    try:
        constructor, _ = MODELS[name]
    except (KeyError, TypeError):
        raise ModelLoadError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}"
        ) from None
    check_kwargs(name, constructor, kwargs)
    try:
        with torch.device("meta"):
            size = sum(p.numel() for p in constructor(**kwargs).parameters())
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ModelLoadError(f"cannot build model {name!r} with {kwargs}: {exc}") from None
    if size > MAX_PARAMETERS:
        raise ModelLoadError(
            f"model {name!r} with {kwargs} would have {size:,} parameters, over the limit "
            f"of {MAX_PARAMETERS:,} (is --width too large?)"
        )
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
        if isinstance(exc, Exception | SystemExit):  # a sys.exit() in the file is a failure too
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
    except (Exception, SystemExit) as exc:
        raise ModelLoadError(
            f"importing module {module_part!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def same_spec(given: str, recorded: str) -> bool:
    """Whether a spec given now names the same model as one recorded at training time.

    Module specs must be equal; file specs must name the same file name and function
    (the file may have moved, e.g. with the run folder to another machine).
    """
    try:
        (gm, ga), (rm, ra) = _split_spec(given), _split_spec(recorded)
    except ModelLoadError:
        return False
    if _is_file_spec(gm) and _is_file_spec(rm):
        return ga == ra and Path(gm).name == Path(rm).name
    return (gm, ga) == (rm, ra)


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
    except (Exception, SystemExit) as exc:
        raise ModelLoadError(f"calling {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelLoadError(
            f"{spec!r} returned a {type(model).__name__}, expected a torch.nn.Module"
        )
    return model
