"""The converted spiking network and the driver shared by both simulators."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..coding import bias_spike_time, spike_time_float
from ..errors import SpikeInputError
from ..ops import SNNOps
from . import clocked, closed_form
from .layers import SpikeFlatten, SpikingLeakyMaxPool, SpikingMaxPool, SpikingSynapse
from .result import SNNResult

BACKENDS = {"closed_form": closed_form, "clocked": clocked}
PRECISIONS = ("certified", "float64", "float32")


class SNN(nn.Module):
    """A temporal-coding SNN converted from a G-DNN by :func:`tdsnn.convert`.

    ``layers`` holds :class:`SpikingSynapse`, :class:`SpikingMaxPool` and
    :class:`SpikeFlatten` modules in order; the last synapse layer is the output.
    ``static_t_il`` (one value per synapse layer) fixes the inhibitory periods;
    when it is None they follow the spikes of each sample (dynamic mode).
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        L: float,
        static_t_il: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.L = float(L)
        self.static_t_il = None if static_t_il is None else [int(t) for t in static_t_il]
        self._fanout_cache: dict[tuple, Tensor] = {}

    @property
    def synapse_layers(self) -> list[SpikingSynapse]:
        return [m for m in self.layers if isinstance(m, SpikingSynapse)]

    @property
    def t_il_mode(self) -> str:
        return "dynamic" if self.static_t_il is None else "static"

    def forward(self, x: Tensor) -> Tensor:
        """The logits of the closed-form simulation (so an SNN drops in for a model)."""
        return self.run(x).logits

    def run(
        self,
        x: Tensor,
        backend: str = "closed_form",
        precision: str | torch.dtype = "certified",
    ) -> SNNResult:
        """Simulate the SNN on a batch of non-negative inputs.

        Args:
            x: batch of inputs (the same tensor the G-DNN takes), all ``>= 0``.
            backend: ``"closed_form"`` (fast, one DNN-like pass) or ``"clocked"``
                (faithful time-stepped Algorithm 1).  Both give the same result.
            precision: ``"certified"`` (default): float32 arithmetic whose spike times
                are proven equal to float64's: the few neurons within float32 rounding
                of a level boundary get their pre-activation recomputed in float64
                (closed_form: float32 layers; clocked: float32 synaptic sums per step,
                float64 potentials); per-layer counts in ``result.extras["certified"]``.
                ``"float64"``: everything in float64 (the slow reference).
                ``"float32"``: plain float32, fastest; closed_form then equals the
                float32 G-DNN bit for bit, but a neuron within float32 rounding of a
                level boundary may fire one step off float64.  ``torch.float64`` and
                ``torch.float32`` are accepted for the last two.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        precision = {torch.float64: "float64", torch.float32: "float32"}.get(precision, precision)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self._check_input(x)
        with torch.no_grad():
            return self._simulate(x, backend, precision)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise SpikeInputError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if not torch.is_floating_point(x):
            raise SpikeInputError(f"input must be a floating tensor, got {x.dtype}")
        if x.dim() < 2 or x.shape[0] == 0:
            raise SpikeInputError(f"input must be a non-empty batch, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise SpikeInputError("input contains NaN or infinite values")
        if bool((x < 0).any()):
            raise SpikeInputError(
                f"input has negative values (min {float(x.min()):g}); spike times encode only "
                "values >= 0: fold the normalisation into the model with prepare(input_mean=, "
                "input_std=) and feed raw, non-negative data"
            )
        first = self.layers[0]
        for layer in self.layers:
            if isinstance(layer, SpikingSynapse):
                first = layer
                break
        if isinstance(first, SpikingSynapse) and first.kind == "conv":
            expected = first.dnn_weight.shape[1] * first.conv_args["groups"]
            if x.dim() != 4 or x.shape[1] != expected:
                raise SpikeInputError(
                    f"input shape {tuple(x.shape)} does not fit the first layer '{first.name}' "
                    f"(expects batch x {expected} x H x W)"
                )

    def _fanout(
        self, index: int, layer: nn.Module, in_shape: tuple[int, ...], device: torch.device
    ) -> Tensor:
        key = (index, in_shape, device)
        if key not in self._fanout_cache:
            self._fanout_cache[key] = layer.connection_map(in_shape).to(device)
        return self._fanout_cache[key]

    def _simulate(self, x: Tensor, backend_name: str, precision: str) -> SNNResult:
        backend = BACKENDS[backend_name]
        certify = precision == "certified"
        # Spike times and potentials: certified closed_form works in float32 (and
        # proves its spike times), certified clocked keeps float64 potentials.
        if precision == "float32" or (certify and backend is closed_form):
            dtype = torch.float32
        else:
            dtype = torch.float64
        certificates: list | None = [] if certify else None
        L = self.L
        batch = x.shape[0]
        t_bias = bias_spike_time(L)
        synapses = self.synapse_layers
        static = self.static_t_il
        times = spike_time_float(x.to(torch.float64 if certify else dtype), L).to(dtype)
        clipped: list[int] = []
        if static is not None:
            clipped.append(int((times > static[0]).sum()))
            times = torch.clamp(times, max=static[0])
        spike_times = [times]
        names = ["input"]
        last_spike = times.flatten(1).amax(dim=1)  # last spike of the current producer
        t_il_rows: list[Tensor] = []
        pool_periods: list[Tensor] = []
        events = []
        logits: Tensor | None = None
        synapse_index = 0
        try:
            for index, layer in enumerate(self.layers):
                if isinstance(layer, SpikeFlatten):
                    times = layer(times)
                    continue
                fanout = self._fanout(index, layer, tuple(times.shape[1:]), x.device)
                if isinstance(layer, SpikingLeakyMaxPool):
                    # Its own period: inhibited until the producer's last spike (>= 1).
                    pool_t_il = torch.clamp(last_spike, min=1)
                    times, ev = backend.run_leaky_maxpool(layer, times, pool_t_il, fanout)
                    pool_periods.append(pool_t_il)
                    last_spike = times.flatten(1).amax(dim=1)
                    spike_times.append(times)
                    names.append(layer.name)
                    events.append(ev)
                    continue
                if isinstance(layer, SpikingMaxPool):
                    times, ev = backend.run_maxpool(layer, times, fanout)
                    spike_times.append(times)
                    names.append(layer.name)
                    events.append(ev)
                    continue
                if static is None:
                    t_il = torch.clamp(last_spike, min=t_bias)
                else:
                    t_il = torch.full(
                        (batch,), float(static[synapse_index]), dtype=dtype, device=x.device
                    )
                t_il_rows.append(t_il)
                limit = None
                if static is not None and not layer.is_output:
                    limit = static[synapse_index + 1]
                if certify:
                    out, ev = backend.run_synapse(
                        layer, times, t_il, limit, fanout, dtype, certificates=certificates
                    )
                else:
                    out, ev = backend.run_synapse(layer, times, t_il, limit, fanout, dtype)
                events.append(ev)
                synapse_index += 1
                if layer.is_output:
                    logits = out
                    break
                if static is not None:
                    clipped.append(ev.clipped)
                times = out
                last_spike = times.flatten(1).amax(dim=1)
                spike_times.append(times)
                names.append(layer.name)
        except RuntimeError as exc:
            raise SpikeInputError(f"input shape {tuple(x.shape)} does not fit the SNN: {exc}") from exc
        assert logits is not None, "an SNN always ends with its output layer"
        if static is None:
            clipped = [0] * len(synapses)
        t_il_all = torch.stack(t_il_rows, dim=1).to(torch.int64)
        latency = t_il_all.sum(dim=1)
        run_in = "certified" if certify else ("float32" if dtype == torch.float32 else "float64")
        extras: dict = {"precision": run_in}
        if certificates is not None:
            extras["certified"] = certificates
        if pool_periods:
            pool_t_il = torch.stack(pool_periods, dim=1).to(torch.int64)
            latency = latency + pool_t_il.sum(dim=1)
            extras["maxpool_t_il"] = pool_t_il
        ops = SNNOps(samples=batch, latency_steps=int(latency.sum()), layers=events)
        spike_dtype = torch.int16 if int(latency.max()) < 2**15 else torch.int32
        spike_times = [t.to(spike_dtype) for t in spike_times]
        counts = [int(t.numel()) for t in spike_times]
        return SNNResult(
            logits=logits,
            spike_times=spike_times,
            layer_names=names,
            t_il=t_il_all,
            latency=latency,
            spike_counts=counts,
            clipped=clipped,
            ops=ops,
            backend=backend_name,
            extras=extras,
        )
