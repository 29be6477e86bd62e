"""The result of one SNN run, the same for both simulators."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..ops import SNNOps


@dataclass
class SNNResult:
    """What an SNN inference produced.

    Attributes:
        logits: the output layer's potentials rescaled by ``exp(T_il/L)`` so that they
            equal the G-DNN's outputs (batch x classes).
        spike_times: one integer tensor per spiking layer, the input encoding first;
            times are local to the layer's own period (its active period; the input's
            encoding period), i.e. they equal ``T(ReLU(A))`` of the G-DNN.
        layer_names: the name of each entry of ``spike_times``.
        t_il: per sample, the inhibitory period of every synapse layer (batch x layers).
        latency: per sample, the total latency in time steps (the sum of all periods).
        spike_counts: per spiking layer, the number of spikes over the batch.
        clipped: per synapse layer, how many of its input spikes a static ``T_il`` cut
            short (always 0 in dynamic mode).
        ops: the events of every layer; ``ops.counts(convention)`` gives operation counts.
        backend: "closed_form" or "clocked".
        synaptic_events: every emitted spike reaching one target neuron (its fan-out),
            the bias neurons' included, summed over the batch.

    A silent neuron (sparse coding: value 0) has spike time ``-1`` and is not counted
    in ``spike_counts``.
    """

    logits: Tensor
    spike_times: list[Tensor]
    layer_names: list[str]
    t_il: Tensor
    latency: Tensor
    spike_counts: list[int]
    clipped: list[int]
    ops: SNNOps
    backend: str
    synaptic_events: int = 0
    extras: dict = field(default_factory=dict)

    @property
    def predictions(self) -> Tensor:
        """Top-1 class per sample (argmax of the output potentials)."""
        return self.logits.argmax(dim=1)
