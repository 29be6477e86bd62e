"""Range checks of the simulators' numbers: never a silently wrong spike time.

Spike times are kept as integer values in floating tensors; float32 holds every
integer only up to 2**24 (float64 up to 2**53), and an overflowing pre-activation
gives an infinite or NaN time.  Both are caught here, after every layer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..coding import FLOAT32_EXACT
from ..errors import SpikeInputError


class Float32RangeError(Exception):
    """Internal: a float32 spike time or logit left float32's exact range (the driver
    reruns a certified batch in float64, or refuses a float32 one)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def check_times(times: Tensor, what: str) -> None:
    """Spike times must be finite integers that their dtype holds exactly."""
    top = float(times.max())
    exact = FLOAT32_EXACT if times.dtype == torch.float32 else 2.0**53
    if top < exact:  # False for NaN and infinity
        return
    if times.dtype == torch.float32:
        raise Float32RangeError(f"a spike time of {what} ({top:g})")
    raise SpikeInputError(
        f"a spike time of {what} is {top:g}: its pre-activation overflows {times.dtype}; the "
        "weights or the input are far too large"
    )


def check_logits(logits: Tensor, name: str) -> None:
    if bool(torch.isfinite(logits).all()):
        return
    what = f"the output of layer '{name}'"
    if logits.dtype == torch.float32:
        raise Float32RangeError(what)
    raise SpikeInputError(
        f"{what} overflows {logits.dtype} (NaN or infinite logits); the weights or the input "
        "are far too large"
    )
