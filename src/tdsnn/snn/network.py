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
from .certified import Certification, spot_check
from .conditions import certified_conditions, warn_once
from .layers import SpikeConcat, SpikeFlatten, SpikingLeakyMaxPool, SpikingMaxPool, SpikingSynapse
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
        sources: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        # The graph: per layer, the value slots it reads (0: the input, k + 1: the output
        # of layer k; a group's main branch first, then its shortcuts).  A chain reads
        # the previous slot.
        if sources is None:
            sources = [(k,) for k in range(len(layers))]
        self.sources = [tuple(int(s) for s in src) for src in sources]
        _check_sources(self.layers, self.sources)
        self.L = float(L)
        self.coding = check_coding(coding)
        self.static_t_il = None if static_t_il is None else [int(t) for t in static_t_il]
        self._fanout_cache: dict[tuple, Tensor] = {}

    @property
    def is_chain(self) -> bool:
        return all(src == (k,) for k, src in enumerate(self.sources))

    def _readers(self, slot: int) -> list[int]:
        return [k for k, src in enumerate(self.sources) if slot in src]

    def _first_reader(self, slot: int) -> int:
        """The first synapse group reading ``slot`` (through pools, flattens, joins)."""
        groups = {id(m): g for g, m in enumerate(self.synapse_layers)}
        frontier = sorted(self._readers(slot))
        while frontier:
            k = frontier.pop(0)
            if id(self.layers[k]) in groups:
                return groups[id(self.layers[k])]
            frontier = sorted(set(frontier) | set(self._readers(k + 1)))
        return len(groups) - 1

    def _slot_limits(self) -> list[int | None]:
        """Static mode: per slot, the end of its active period, the shortest inhibitory
        period of the groups reading it (through pools, flattens, joins); None if dynamic."""
        limits: list[int | None] = [None] * (len(self.layers) + 1)
        if self.static_t_il is None:
            return limits
        groups = {id(m): g for g, m in enumerate(self.synapse_layers)}

        def tighten(slot: int, value: int | None) -> None:
            if value is not None and (limits[slot] is None or value < limits[slot]):
                limits[slot] = value

        for k in reversed(range(len(self.layers))):
            layer = self.layers[k]
            own = self.static_t_il[groups[id(layer)]] if id(layer) in groups else limits[k + 1]
            for slot in self.sources[k]:
                tighten(slot, own)
        return limits

    def connection_delays(self) -> dict[str, list[int]]:
        """Static mode: the fixed delay, in steps, of every connection into a neuron group
        or join (per source, in ``sources`` order): the periods between the source's
        release and the receiver's.  Dynamic mode: they follow each sample
        (``SNNResult.extras["delays"]``)."""
        if self.static_t_il is None:
            raise UnsupportedModelError(
                "delays are fixed constants only with static T_il; in dynamic mode see "
                "SNNResult.extras['delays']"
            )
        groups = {id(m): g for g, m in enumerate(self.synapse_layers)}
        starts = [0]
        out: dict[str, list[int]] = {}
        for layer, source in zip(self.layers, self.sources, strict=True):
            start = max(starts[s] for s in source)
            if len(source) > 1:
                out[layer.name] = [start - starts[s] for s in source]
            if id(layer) in groups:
                start += self.static_t_il[groups[id(layer)]]
            starts.append(start)
        return out

    def populations(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The graph of populations, in the order of ``SNNResult.spike_times``: per
        population its name and the populations it reads, each with the connection kind
        (``"synapse"``, ``"shortcut"`` for a group's other branches, ``"pool"``)."""
        found: list[tuple[str, list[tuple[str, str]]]] = [("input", [])]
        # per slot, the populations whose spikes it holds (pass-through layers join them)
        holds: list[list[str]] = [["input"]]
        for layer, source in zip(self.layers, self.sources, strict=True):
            if isinstance(layer, (SpikeFlatten, SpikeConcat)):
                holds.append([p for s in source for p in holds[s]])
                continue
            reads: list[tuple[str, str]] = []
            for k, s in enumerate(source):
                kind = "pool" if isinstance(layer, SpikingMaxPool) else "shortcut" if k else "synapse"
                reads.extend((p, kind) for p in holds[s])
            found.append((layer.name, reads))
            holds.append([layer.name])
        return found

    @staticmethod
    def _delays(
        found: dict[str, Tensor], name: str, source: tuple[int, ...], starts: list[Tensor],
        start: Tensor,
    ) -> None:
        """Record the per-sample delays of a layer that joins several frames."""
        if len(source) > 1:
            found[name] = torch.stack([start - starts[s] for s in source], dim=1).round().to(torch.int64)

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
                :func:`~tdsnn.snn.conditions.certified_conditions` (IEEE float32, direct
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
            spot_checks: certified only: how many random neurons of one random sample are
                recomputed with the reference in each hidden layer whose float32
                arithmetic was certified, raising
                :class:`~tdsnn.snn.certified.CertificationError` on a difference (a
                run-time check of the bound; 0: off).  Default (None):
                :data:`~tdsnn.snn.certified.DEFAULT_SPOT_CHECKS` neurons in every such
                layer of at least :data:`~tdsnn.snn.certified.SPOT_MIN_MACS`
                multiply-accumulates in the batch, where the check costs under 3 %; an
                explicit count checks every certified layer.
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
        spot = (spot_checks, 0)  # (neurons per layer, least multiply-accumulates of a layer)
        if spot_checks is None:
            spot = (certified.DEFAULT_SPOT_CHECKS, certified.SPOT_MIN_MACS)
        elif isinstance(spot_checks, bool) or not isinstance(spot_checks, int) or spot_checks < 0:
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
                    return self._simulate(x, backend, precision, max_steps, spot)
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

    def _fanouts(
        self, index: int, layer: nn.Module, ins: list[Tensor], device: torch.device
    ) -> list[Tensor]:
        """Per input of ``layer`` (per branch of a group), each neuron's fan-out."""
        branches = layer.branches() if isinstance(layer, SpikingSynapse) else [layer]
        out = []
        for k, (branch, t_in) in enumerate(zip(branches, ins, strict=True)):
            in_shape = tuple(t_in.shape[1:])
            if isinstance(branch, SpikingSynapse):
                branch.bind(in_shape)
            key = (index, k, in_shape, device)
            if key not in self._fanout_cache:
                self._fanout_cache[key] = branch.connection_map(in_shape).to(device)
            out.append(self._fanout_cache[key])
        return out

    def _simulate(
        self,
        x: Tensor,
        backend_name: str,
        precision: str,
        max_steps: int,
        spot: tuple[int, int] = (0, 0),
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
        limits = self._slot_limits()
        group_of = {id(m): g for g, m in enumerate(synapses)}
        clipped = [0] * len(synapses)
        if limits[0] is not None:
            clipped[self._first_reader(0)] = int((times > limits[0]).sum())
            times = torch.clamp(times, max=limits[0])
        check_times(times, "the input")
        stepped = backend is clocked
        zero = torch.zeros(batch, dtype=torch.float64, device=x.device)
        # Per value slot (0: the input, k + 1: the output of layer k): spike times local
        # to the slot's frame, the frame's start (its release, absolute steps per sample)
        # and the last spike in it.  Delays align frames (design note, "Residual networks").
        slot_times: list[Tensor] = [times]
        starts: list[Tensor] = [zero]
        lasts: list[Tensor] = [times.flatten(1).amax(dim=1)]
        spike_times = [times]
        releases = [zero]  # per population: the absolute step of its frame's start
        names = ["input"]
        t_il_rows: list[Tensor] = []
        pool_periods: list[Tensor] = []
        events = []
        delays: dict[str, Tensor] = {}
        logits: Tensor | None = None
        try:
            for index, (layer, source) in enumerate(zip(self.layers, self.sources, strict=True)):
                ins = [slot_times[s] for s in source]
                if len(source) == 1:  # a chain step: the source's frame
                    start, last = starts[source[0]], lasts[source[0]]
                else:
                    start = torch.stack([starts[s] for s in source]).amax(dim=0)
                    last = torch.stack([lasts[s] for s in source]).amax(dim=0)
                if isinstance(layer, (SpikeFlatten, SpikeConcat)):
                    slot_times.append(layer(*ins))
                    self._delays(delays, layer.name, source, starts, start)
                    starts.append(start)
                    lasts.append(last)
                    continue
                fanouts = self._fanouts(index, layer, ins, x.device)
                if isinstance(layer, SpikingLeakyMaxPool):
                    # Its own period: inhibited until the producer's last spike (>= 1).
                    pool_t_il = torch.clamp(last, min=1)
                    budget = {}
                    if stepped:
                        reach = clocked.take_steps(start, pool_t_il, max_steps, layer.name)
                        budget["budget"] = clocked.StepBudget(max_steps - reach, max_steps)
                    out, ev = backend.run_leaky_maxpool(layer, ins[0], pool_t_il, fanouts[0], **budget)
                    check_times(out, f"layer '{layer.name}'")
                    pool_periods.append(pool_t_il)
                    start = start + pool_t_il.to(torch.float64)
                elif isinstance(layer, SpikingMaxPool):
                    out, ev = backend.run_maxpool(layer, ins[0], fanouts[0])
                else:
                    group = group_of[id(layer)]
                    if static is None:
                        t_il = torch.clamp(last, min=t_bias).to(dtype)
                    else:
                        t_il = torch.full((batch,), float(static[group]), dtype=dtype, device=x.device)
                    t_il_rows.append(t_il)
                    for branch, t_in in zip(layer.branches(), ins, strict=True):
                        if branch.kind == "linear" and t_in.dim() != 2:
                            raise SpikeInputError(
                                f"Linear layer '{layer.name}' receives shape {tuple(t_in.shape)}; "
                                "it needs batch x features (add nn.Flatten before it, or feed 2-D "
                                "input)"
                            )
                    self._delays(delays, layer.name, source, starts, start)
                    limit = None if layer.is_output else limits[index + 1]
                    options: dict = {}
                    if certify:
                        options["certificates"] = certificates
                    # The closed form checks its spot sample inside the repair's float64
                    # pass; the clocked simulator afterwards (below).
                    inline = backend is closed_form and not layer.is_output
                    spot_checks, min_macs = spot
                    if certify and spot_checks and inline:
                        options["spot"] = (spot_checks, self._spot_generator(), min_macs)
                    if stepped:
                        reach = clocked.take_steps(start, t_il, max_steps, layer.name)
                        options["budget"] = clocked.StepBudget(max_steps - reach, max_steps)
                    t_in = ins[0] if len(ins) == 1 else ins
                    fanout = fanouts[0] if len(ins) == 1 else fanouts
                    out, ev = backend.run_synapse(layer, t_in, t_il, limit, fanout, dtype, **options)
                    if (certify and not layer.is_output and spot_checks and not inline
                            and not certificates[-1].full_float64):  # fmt: skip
                        # float32 arithmetic was certified here: check the bound held
                        if len(ins) == 1 and certified._macs(layer, ins[0]) >= min_macs:
                            spot_check(layer, ins[0], out, limit, self._spot_generator(), spot_checks)
                            certificates[-1].spot_checked = min(spot_checks, out[0].numel())
                    start = start + t_il.to(torch.float64)
                    if layer.is_output:
                        events.append(ev)
                        check_logits(out, layer.name)
                        logits = out
                        latency_steps = start
                        break
                    check_times(out, f"layer '{layer.name}'")
                    if limit is not None:
                        clipped[self._first_reader(index + 1)] += ev.clipped
                events.append(ev)
                slot_times.append(out)
                starts.append(start)
                # A simplified max-pool keeps its producer's period: the next T_il covers
                # the producer's last spike (the chain engine's rule, kept).
                keep = isinstance(layer, SpikingMaxPool) and not isinstance(layer, SpikingLeakyMaxPool)
                lasts.append(last if keep else out.flatten(1).amax(dim=1))
                spike_times.append(out)
                releases.append(start)
                names.append(layer.name)
        except RuntimeError as exc:
            raise SpikeInputError(f"input shape {tuple(x.shape)} does not fit the SNN: {exc}") from exc
        assert logits is not None, "an SNN always ends with its output layer"
        t_il_all = torch.stack(t_il_rows, dim=1).to(torch.int64)
        latency = latency_steps.round().to(torch.int64)
        run_in = "certified" if certify else ("float32" if dtype == torch.float32 else "float64")
        extras: dict = {"precision": run_in}
        if certificates is not None:
            extras["certified"] = certificates
        if pool_periods:
            extras["maxpool_t_il"] = torch.stack(pool_periods, dim=1).to(torch.int64)
        if delays:
            extras["delays"] = delays
        extras["release"] = list(torch.stack(releases, dim=1).round_().to(torch.int64).unbind(1))
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


def _check_sources(layers: nn.ModuleList, sources: list[tuple[int, ...]]) -> None:
    """Every layer reads earlier slots, as many as it has inputs."""
    if len(sources) != len(layers):
        raise UnsupportedModelError(f"{len(sources)} sources for {len(layers)} layers")
    for k, (layer, source) in enumerate(zip(layers, sources, strict=True)):
        if not source or any(not 0 <= s <= k for s in source):
            raise UnsupportedModelError(f"layer {k} reads slots {source}; only 0..{k} exist")
        wanted = len(layer.branches()) if isinstance(layer, SpikingSynapse) else None
        if wanted is not None and len(source) != wanted:
            raise UnsupportedModelError(
                f"layer '{layer.name}' has {wanted} branch(es) but reads {len(source)} slot(s)"
            )
        if isinstance(layer, (SpikeFlatten, SpikingMaxPool)) and len(source) != 1:
            raise UnsupportedModelError(f"layer '{layer.name}' reads one slot, got {source}")
