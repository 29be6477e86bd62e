"""The run-time spot check of certified spike times: a few random neurons per layer
recomputed with the reference, and a clear error where one differs.

:mod:`.certified` runs it inside the repair's float64 pass (:func:`spot_neurons` draws
the sample, :func:`compare_spot` judges it); :func:`spot_check` is the standalone check
of a layer's output, for the clocked simulator and for tests.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..coding import spike_value
from ..errors import TDSNNError
from .exact import exact_times_at
from .layers import SpikingSynapse
from .level_test import U64, settled, times64, unravel
from .ranges import Float32RangeError
from .receptive import ReceptiveFields, _weights

SPOT_CHECK = 16  # neurons per layer and batch that the run-time spot check recomputes


class CertificationError(TDSNNError, ArithmeticError):
    """A certified spike time differs from the reference (the spot check found it)."""


def spot_neurons(
    shape: torch.Size, count: int, generator: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Flat indices and index rows of ``count`` random neurons (with repetition) of one
    random sample (a handful of integers: built in Python, two tensors)."""
    drawn = torch.randint(2**62, (count + 1,), generator=generator).tolist()
    sample, sizes = drawn[0] % shape[0], list(shape[1:])
    per_sample = math.prod(sizes)
    flat, rows = [], []
    for value in drawn[1:]:
        local = value % per_sample
        flat.append(sample * per_sample + local)
        index = []
        for size in reversed(sizes):
            local, rest = divmod(local, size)
            index.append(rest)
        rows.append([sample, *reversed(index)])
    return (torch.tensor(flat, dtype=torch.long, device=device),
            torch.tensor(rows, dtype=torch.long, device=device))  # fmt: skip


def spot_check(
    layer: SpikingSynapse,
    t_in: Tensor,
    t_out: Tensor,
    limit: int | None,
    generator: torch.Generator,
    count: int = SPOT_CHECK,
) -> None:
    """Recompute ``count`` random neurons of a certified layer with the reference and raise
    :class:`CertificationError` if a spike time differs (a run-time check of the bound).

    The sample is summed in float64 from its receptive fields; a neuron that float64
    cannot decide gets the exact test.
    """
    if t_out.numel() == 0 or count <= 0:
        return
    # One random sample per call: its receptive fields cost 1/batch of the layer's input.
    sample = int(torch.randint(t_out.shape[0], (1,), generator=generator))
    t_in, t_out = t_in[sample : sample + 1], t_out[sample : sample + 1]
    total = t_out.numel()
    flat = torch.randint(total, (min(count, total),), generator=generator).to(t_out.device)
    where = unravel(flat, t_out.shape)
    if layer.kind == "avgpool":
        reference = exact_times_at(layer, t_in, where)
    else:
        where = where[torch.argsort(where[:, 1], stable=True)]
        fields = ReceptiveFields(layer, t_in, fill=-math.inf)
        values = spike_value(fields.at(where), layer.L, torch.float64)
        rows = _weights(layer, t_in.device)["rows64"].index_select(0, where[:, 1])
        a = (values * rows[:, :-1]).sum(dim=1) + rows[:, -1]
        reference = times64(a, layer.L)
        n = layer.fan_in() + 2
        size = (values * rows[:, :-1].abs()).sum(dim=1) + rows[:, -1].abs()
        open_ = (~settled(a, size * (2.02 * n * U64), layer.L)).nonzero().squeeze(1)
        if open_.shape[0]:
            reference[open_] = exact_times_at(layer, t_in, where[open_])
    compare_spot(layer, t_out, where, reference, limit, sample)


def compare_spot(
    layer: SpikingSynapse,
    t_out: Tensor,
    where: Tensor,
    reference: Tensor,
    limit: int | None,
    sample: int | None = None,
    silence: bool = True,
) -> None:
    """Raise :class:`CertificationError` where the certified ``t_out`` at ``where`` differs
    from the reference's ``T`` (after the static ``limit`` and, with ``silence``, sparse
    silence: ``t_out`` as a layer emits it); ``sample``: the batch index to name when
    ``t_out`` holds that one sample."""
    if limit is not None:
        reference.clamp_(max=limit)
    if silence and layer.coding == "sparse":  # T < min_time (default A <= 0): silent
        reference.masked_fill_(reference < layer.min_time, -math.inf)
    got = t_out[tuple(where.t())].double()
    wrong = (got != reference).nonzero().squeeze(1)
    if wrong.shape[0] and not bool(torch.isfinite(got[wrong]).all()):
        # float32 overflowed (an infinite or NaN time): the range check's case, which
        # reruns the batch in float64, not a bound that failed
        raise Float32RangeError(f"a spike time of layer '{layer.name}' ({float(got[wrong].max()):g})")
    if wrong.shape[0]:
        k = int(wrong[0])
        neuron = where[k].tolist()
        if sample is not None:
            neuron[0] = sample
        raise CertificationError(
            f"layer '{layer.name}': the certified spike time of neuron "
            f"{tuple(neuron)} is {float(got[k]):g}, the reference gives "
            f"{float(reference[k]):g}; the float32 bound did not hold here (please report "
            "this, with the device and torch version); precision='float64' avoids it"
        )
