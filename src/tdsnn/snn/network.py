"""The converted spiking network and the driver shared by both simulators."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..coding import SILENT, bias_spike_time, check_coding, spike_time_float
from ..errors import SpikeInputError, UnsupportedModelError
from ..ops import SNNOps
from . import certified, clocked, closed_form
from .certified import Certification, certified_conditions, spot_check, warn_once
from .layers import SpikeFlatten, SpikingLeakyMaxPool, SpikingMaxPool, SpikingSynapse
from .ranges import Float32RangeError, check_logits, check_times
from .result import SNNResult

BACKENDS = {"closed_form": closed_form, "clocked": clocked}
PRECISIONS = ("certified", "float64", "float32")


class SNN(nn.Module):
    """A temporal-coding SNN converted from a G-DNN by :func:`tdsnn.convert`.

    ``layers`` holds :class:`SpikingSynapse`, :class:`SpikingMaxPool` and
    :class:`SpikeFlatten` modules in order; the last synapse layer is the output.
    ``static_t_il`` (one value per synapse layer) fixes the inhibitory periods;
    when it is None they follow the spikes of each sample (dynamic mode).  ``coding``:
    ``"paper"`` (every neuron fires once) or ``"sparse"`` (neurons of value 0 stay silent).
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        L: float,
        static_t_il: Sequence[int] | None = None,
        coding: str = "paper",
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.L = float(L)
        self.coding = check_coding(coding)
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
        *,
        max_steps: int | None = None,
        spot_checks: int | None = None,
    ) -> SNNResult:
        """Simulate the SNN on a batch of non-negative inputs.

        Args:
            x: batch of inputs (the same tensor the G-DNN takes), all ``>= 0``.
            backend: ``"closed_form"`` (fast, one DNN-like pass) or ``"clocked"``
                (faithful time-stepped Algorithm 1).  Both give the same result.
            precision: ``"certified"`` (default): float32 arithmetic whose spike times
                are proven equal to the exact reference (design note, "What is
                certified"): the few neurons within float32 rounding of a level boundary
                get their pre-activation recomputed in float64, and those within float64
                rounding the exact test (closed_form: float32 layers; clocked: float32
                synaptic sums per step, float64 potentials); per-layer counts in
                ``result.extras["certified"]``.  It runs under
                :func:`~tdsnn.snn.certified.certified_conditions` (IEEE float32, direct
                convolutions); on a device or torch where those cannot be set up it
                runs in float64 instead and warns once (``extras["fallback"]``).
                ``"float64"``: everything in float64 (the G-DNN's float64 forward).
                ``"float32"``: plain float32, fastest; closed_form then equals the
                float32 G-DNN bit for bit, but a neuron within float32 rounding of a
                level boundary may fire one step off float64.  ``torch.float64`` and
                ``torch.float32`` are accepted for the last two.  Where a float32 spike
                time or logit would leave float32's exact range (2**24, or overflow),
                ``"certified"`` reruns the batch in float64 (``extras["fallback"]`` says
                why) and ``"float32"`` raises :class:`SpikeInputError`.
            max_steps: ``clocked`` only: the most time steps one presentation may take
                (its latency); a batch that would need more is refused before its time
                loop runs.  Default :data:`tdsnn.snn.clocked.MAX_STEPS`.
            spot_checks: certified only: per hidden layer whose float32 arithmetic was
                certified, how many random neurons of one random sample are recomputed
                with the reference after the layer, raising
                :class:`~tdsnn.snn.certified.CertificationError` on a difference (a
                run-time check of the bound; e.g. 16).  Default
                :data:`~tdsnn.snn.certified.DEFAULT_SPOT_CHECKS` (0: off, as it costs
                more than 3 % at small batches).
        """
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise SpikeInputError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        if isinstance(precision, torch.dtype):
            precision = {torch.float64: "float64", torch.float32: "float32"}.get(precision, precision)
        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise SpikeInputError(
                f"precision must be one of {PRECISIONS} (or torch.float64 / torch.float32), "
                f"got {precision!r}"
            )
        max_steps = clocked.check_max_steps(max_steps)
        if spot_checks is None:
            spot_checks = certified.DEFAULT_SPOT_CHECKS
        if isinstance(spot_checks, bool) or not isinstance(spot_checks, int) or spot_checks < 0:
            raise SpikeInputError(f"spot_checks must be an integer >= 0, got {spot_checks!r}")
        self._check_input(x)
        with torch.no_grad():
            if precision == "certified":
                guard, reason = certified_conditions(x.device)
                if guard is None:
                    warn_once(reason)
                    return self._fallback(x, backend, max_steps, reason)
            else:
                guard = contextlib.nullcontext()
            try:
                with guard:
                    return self._simulate(x, backend, precision, max_steps, spot_checks)
            except Float32RangeError as exc:
                if precision != "certified":
                    raise SpikeInputError(
                        f"{exc.what} leaves float32's exact range (integers up to 2**24, "
                        "values up to 3.4e38); run with precision='certified' or 'float64'"
                    ) from None
                reason = f"{exc.what} left float32's exact range"
            return self._fallback(x, backend, max_steps, reason)

    def _fallback(self, x: Tensor, backend: str, max_steps: int, reason: str) -> SNNResult:
        """Certified precision that had to run in float64 (``extras["fallback"]`` says why)."""
        result = self._simulate(x, backend, "float64", max_steps)
        hidden = {s.name for s in self.synapse_layers}
        result.extras.update(
            precision="certified",
            certified=[
                Certification(t.numel(), t.numel(), t.numel(), t.numel(), True)
                for name, t in zip(result.layer_names, result.spike_times)
                if name in hidden
            ],
            fallback=f"{reason}: the batch ran in float64",
        )
        return result

    def _spot_generator(self) -> torch.Generator:
        """The spot check's sampler: seeded once per SNN, so runs are reproducible."""
        if getattr(self, "_spot_rng", None) is None:
            self._spot_rng = torch.Generator().manual_seed(0)
        return self._spot_rng

    def _check_input(self, x: Tensor) -> None:
        if not self.synapse_layers:
            raise UnsupportedModelError("the SNN has no synapse layer; build it with tdsnn.convert")
        if not isinstance(x, Tensor):
            raise SpikeInputError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if not torch.is_floating_point(x):
            raise SpikeInputError(
                f"input must be a floating tensor, got {x.dtype}; convert it (x.float()) and "
                "scale it as the model was prepared for"
            )
        if x.dim() < 2 or x.shape[0] == 0 or x.numel() == 0:
            raise SpikeInputError(
                f"input must be a non-empty batch (batch x features or batch x C x H x W), got "
                f"shape {tuple(x.shape)}"
            )
        if x.is_meta:
            raise SpikeInputError("input is on the meta device (it has no values)")
        weight = next((b for b in self.buffers() if b is not None), None)
        if weight is not None and weight.device != x.device:
            raise SpikeInputError(
                f"input is on {x.device}, the SNN on {weight.device}; move one of them"
            )
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

    def _simulate(
        self, x: Tensor, backend_name: str, precision: str, max_steps: int, spot_checks: int = 0
    ) -> SNNResult:
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
        sparse = self.coding == "sparse"
        times = spike_time_float(
            x.to(torch.float64 if certify else dtype), L, self.coding
        ).to(dtype)
        clipped: list[int] = []
        if static is not None:
            clipped.append(int((times > static[0]).sum()))
            times = torch.clamp(times, max=static[0])
        check_times(times, "the input")
        # clocked: per sample, the steps simulated so far; each time loop is refused
        # before it starts if it would take the presentation past max_steps.
        elapsed = torch.zeros(batch, dtype=torch.float64, device=x.device)
        stepped = backend is clocked
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
                    budget = {}
                    if stepped:
                        elapsed = clocked.take_steps(elapsed, pool_t_il, max_steps, layer.name)
                        budget["budget"] = clocked.StepBudget(max_steps - elapsed, max_steps)
                    times, ev = backend.run_leaky_maxpool(layer, times, pool_t_il, fanout, **budget)
                    check_times(times, f"layer '{layer.name}'")
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
                if layer.kind == "linear" and times.dim() != 2:
                    raise SpikeInputError(
                        f"Linear layer '{layer.name}' receives shape {tuple(times.shape)}; it "
                        "needs batch x features (add nn.Flatten before it, or feed 2-D input)"
                    )
                limit = None
                if static is not None and not layer.is_output:
                    limit = static[synapse_index + 1]
                options: dict = {}
                if certify:
                    options["certificates"] = certificates
                if stepped:
                    elapsed = clocked.take_steps(elapsed, t_il, max_steps, layer.name)
                    options["budget"] = clocked.StepBudget(max_steps - elapsed, max_steps)
                out, ev = backend.run_synapse(layer, times, t_il, limit, fanout, dtype, **options)
                if (certify and not layer.is_output and spot_checks
                        and not certificates[-1].full_float64):  # fmt: skip
                    # float32 arithmetic was certified here: check the bound held
                    spot_check(layer, times, out, limit, self._spot_generator(), spot_checks)
                events.append(ev)
                synapse_index += 1
                if layer.is_output:
                    check_logits(out, layer.name)
                    logits = out
                    break
                check_times(out, f"layer '{layer.name}'")
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
        # Every spike time is at most the latency: the smallest integer type that holds it.
        top = int(latency.max())
        spike_dtype = torch.int16 if top < 2**15 else torch.int32 if top < 2**31 else torch.int64
        if sparse:  # silent neurons: -inf inside, -1 outside
            spike_times = [t.masked_fill(t < 0, SILENT) for t in spike_times]
        spike_times = [t.to(spike_dtype) for t in spike_times]
        counts = [int((t >= 0).sum()) for t in spike_times] if sparse else [
            int(t.numel()) for t in spike_times]  # fmt: skip
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
            synaptic_events=sum(int(ev.synaptic_adds) for ev in events),
            extras=extras,
        )
