"""Choosing activation scales from data, so that ``G`` resolves every layer well.

``G`` keeps a value only to the level ``exp(k/L) - 1`` just above it: values well
above 1 keep a relative precision of ``exp(1/L)``, values below 1 are swamped by
the first levels.  A hidden layer whose activations live around 0.1 therefore
loses most of its information, and the loss compounds with depth.  Multiplying
each hidden activation by a factor (folded into the weights by
:func:`tdsnn.prepare`, so the DNN's function is unchanged) moves its range to where
``G`` is precise, at the cost of a longer period ``T_il`` (about ``L ln(1 + max)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from .coding import GCoding
from .errors import ConversionError
from .prepare import prepare

_SAMPLE = 1_000_000  # activation values kept per layer to estimate a percentile


@torch.no_grad()
def calibrate_activation_scales(
    model: nn.Module,
    data: Tensor | Iterable,
    *,
    target: float = 32.0,
    percentile: float = 99.9,
    input_mean: Sequence[float] | float | None = None,
    input_std: Sequence[float] | float | None = None,
    input_scale: float = 1.0,
) -> list[float]:
    """One factor per hidden synapse layer mapping its ``percentile`` activation to ``target``.

    ``data`` holds spiking inputs (what the G-DNN will see: non-negative, already times
    ``input_scale``), as a tensor or an iterable of tensors or ``(inputs, labels)``.
    Pass the result to ``tdsnn.prepare(..., activation_scales=...)`` with the same
    normalisation options.  Average-pooling layers get 1 (they have no weights).
    """
    if not 0 < percentile <= 100:
        raise ConversionError(f"percentile must be in (0, 100], got {percentile}")
    if not target > 0:
        raise ConversionError(f"target must be > 0, got {target}")
    plain = prepare(
        model, L=5.0, input_mean=input_mean, input_std=input_std,
        input_scale=input_scale, compensate=False,
    ).eval()
    chain = nn.Sequential(*[nn.Identity() if isinstance(m, GCoding) else m for m in plain])
    relus = [(i, m) for i, m in enumerate(chain) if isinstance(m, nn.ReLU)]
    from_avgpool = [isinstance(chain[i - 1], nn.AvgPool2d) for i, _ in relus]
    samples: list[list[Tensor]] = [[] for _ in relus]
    generator = torch.Generator().manual_seed(0)

    def keep(k: int):
        def hook(_module, _inputs, output: Tensor) -> None:
            flat = output.detach().flatten().float().cpu()
            if flat.numel() > _SAMPLE:
                flat = flat[torch.randint(flat.numel(), (_SAMPLE,), generator=generator)]
            samples[k].append(flat)

        return hook

    handles = [m.register_forward_hook(keep(k)) for k, (_, m) in enumerate(relus)]
    try:
        device = next(chain.parameters()).device
        seen = False
        for batch in [data] if isinstance(data, Tensor) else data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            chain(x.to(device))
            seen = True
        if not seen:
            raise ConversionError("calibration data is empty")
    finally:
        for handle in handles:
            handle.remove()
    scales = []
    for values, skip in zip(samples, from_avgpool):
        if skip:
            scales.append(1.0)
            continue
        pooled = torch.cat(values)
        if pooled.numel() > _SAMPLE:
            pooled = pooled[torch.randint(pooled.numel(), (_SAMPLE,), generator=generator)]
        level = float(torch.quantile(pooled, percentile / 100))
        scales.append(target / level if level > 0 else 1.0)
    return scales
