"""Where certified float32 holds: the arithmetic the error bound of :mod:`.certified`
assumes (IEEE float32 sums of products formed directly), set up per device, or declined.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import torch

_WARNED: set[str] = set()


def certified_conditions(device: torch.device) -> tuple[AbstractContextManager | None, str]:
    """A context in which this device's float32 products meet the error bound, or
    ``(None, reason)`` where that cannot be guaranteed (then certification runs in float64).

    CPU: IEEE float32 in oneDNN (``fp32_precision = "ieee"``: no bf16 / TF32 shortcut) and
    NNPACK off (its Winograd / FFT convolutions are not direct sums; oneDNN's direct
    algorithm, which PyTorch requests, and the im2col GEMM path are).  CUDA: IEEE float32
    in cuBLAS and cuDNN, reduced-precision reductions off, and cuDNN off for the duration
    (its Winograd / FFT algorithms cannot be excluded one by one; PyTorch's own CUDA
    convolution is an im2col GEMM).  Other devices, and a torch without the
    ``fp32_precision`` settings (before 2.9), are not covered.  Nothing changes until the
    context is entered; leaving it restores every setting.
    """
    backends = torch.backends
    if device.type == "cpu":
        knobs = [getattr(backends.mkldnn, "conv", None), getattr(backends.mkldnn, "matmul", None)]
    elif device.type == "cuda":
        knobs = [getattr(backends.cuda, "matmul", None), getattr(backends.cudnn, "conv", None)]
    else:
        return None, f"certified float32 is not established on {device.type} devices"
    if any(k is None or not hasattr(k, "fp32_precision") for k in knobs):
        return None, (
            f"this torch ({torch.__version__}) lacks the fp32_precision settings that certified "
            "float32 needs (torch >= 2.9)"
        )
    return _direct_ieee(device, knobs), ""


@contextmanager
def _ieee(knobs: list) -> Iterator[None]:
    """``fp32_precision = "ieee"`` on every knob for the block, restored afterwards."""
    saved = [k.fp32_precision for k in knobs]
    try:
        for knob in knobs:
            knob.fp32_precision = "ieee"
        yield
    finally:
        for knob, value in zip(knobs, saved):
            knob.fp32_precision = value


@contextmanager
def _direct_ieee(device: torch.device, knobs: list) -> Iterator[None]:
    """IEEE float32 and direct convolutions on ``device`` (see :func:`certified_conditions`)."""
    backends = torch.backends
    with ExitStack() as stack:
        stack.enter_context(_ieee(knobs))
        if device.type == "cpu":
            stack.enter_context(backends.nnpack.flags(enabled=False))
        else:
            matmul = backends.cuda.matmul
            for name in ("allow_fp16_reduced_precision_reduction",
                         "allow_bf16_reduced_precision_reduction"):  # fmt: skip
                if hasattr(matmul, name):
                    stack.callback(setattr, matmul, name, getattr(matmul, name))
                    setattr(matmul, name, False)
            stack.enter_context(backends.cudnn.flags(enabled=False))
        yield


def warn_once(reason: str) -> None:
    """Say once per reason that certification fell back to float64."""
    if reason not in _WARNED:
        _WARNED.add(reason)
        warnings.warn(f"{reason}: certified precision runs in float64 instead", stacklevel=3)


def ieee_float32() -> AbstractContextManager:
    """Plain IEEE float32 in convolutions and matrix products (no TF32 or bf16 shortcut) on
    every backend that has the setting; the previous settings are restored afterwards."""
    backends = [torch.backends.mkldnn, torch.backends.cudnn, torch.backends.cuda]
    knobs = [getattr(b, op) for b in backends for op in ("conv", "matmul") if hasattr(b, op)]
    return _ieee([k for k in knobs if hasattr(k, "fp32_precision")])
