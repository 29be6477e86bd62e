"""Exactness of both simulators on many random networks (the heart of the project)."""

import warnings

import pytest
import torch

import tdsnn
from tdsnn.ops import CONVENTIONS
from tdsnn.testing import random_case, reference_spike_times

N_NETWORKS = 200


def _prepare(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing ReLUs are inserted on purpose
        return tdsnn.prepare(case.model, L=case.L).eval()


def _close(logits, reference):
    scale = float(reference.detach().abs().max()) or 1.0
    torch.testing.assert_close(logits.double(), reference, rtol=1e-5, atol=1e-5 * scale)


def test_random_networks_reproduce_the_gdnn_exactly():
    neurons = mismatched = 0
    for seed in range(N_NETWORKS):
        case = random_case(seed)
        gdnn = _prepare(case)
        snn = tdsnn.convert(gdnn)
        ref_times, ref_logits = reference_spike_times(gdnn, case.inputs)
        results = {b: snn.run(case.inputs, backend=b) for b in ("closed_form", "clocked")}
        results["closed_form_float64"] = snn.run(case.inputs, precision="float64")
        for result in results.values():
            assert len(result.spike_times) == len(ref_times), case.description
            for got, want in zip(result.spike_times, ref_times):
                assert got.shape == want.shape, case.description
                neurons += want.numel()
                mismatched += int((got.long() != want).sum())
            _close(result.logits, ref_logits)
            assert result.latency.tolist() == result.t_il.sum(dim=1).tolist()
        closed, clocked = results["closed_form"], results["clocked"]
        assert torch.equal(closed.t_il, clocked.t_il), case.description
        for convention in CONVENTIONS:
            a = closed.ops.counts(convention)
            b = clocked.ops.counts(convention)
            assert [(x.mul, x.add) for x in a.layers] == [(x.mul, x.add) for x in b.layers], (
                case.description,
                convention,
            )
    share = mismatched / neurons
    print(f"\nspike-time mismatches from rounding: {mismatched} of {neurons} neurons ({share:.2e})")
    assert share <= 1e-6


def test_closed_form_in_float32_equals_the_float32_gdnn():
    for seed in range(40):
        case = random_case(seed)
        gdnn = _prepare(case)
        snn = tdsnn.convert(gdnn)
        result = snn.run(case.inputs, precision="float32")
        with torch.no_grad():
            expected = gdnn(case.inputs)
        assert torch.equal(result.logits, expected), case.description


def test_dynamic_t_il_covers_last_spike_and_bias_neuron():
    case = random_case(3)
    snn = tdsnn.convert(_prepare(case))
    result = snn.run(case.inputs)
    t1 = tdsnn.bias_spike_time(case.L)
    producers = [result.spike_times[0]] + [
        t for t, name in zip(result.spike_times, result.layer_names) if not name.startswith("pool")
    ][1:]
    for k, times in enumerate(producers):
        expected = torch.clamp(times.flatten(1).amax(dim=1).long(), min=t1)
        assert torch.equal(result.t_il[:, k], expected)


def test_static_t_il_from_calibration_matches_dynamic_spikes():
    for seed in range(20):
        case = random_case(seed)
        gdnn = _prepare(case)
        dynamic = tdsnn.convert(gdnn).run(case.inputs)
        snn = tdsnn.convert(gdnn, calibration=case.inputs)
        assert snn.t_il_mode == "static"
        for backend in ("closed_form", "clocked"):
            static = snn.run(case.inputs, backend=backend)
            assert static.clipped == [0] * len(snn.synapse_layers)
            assert all(torch.equal(a, b) for a, b in zip(static.spike_times, dynamic.spike_times))
            _close(static.logits, dynamic.logits)
            assert torch.equal(static.t_il[0], dynamic.t_il.amax(dim=0))
            assert static.latency.tolist() == [sum(snn.static_t_il)] * case.inputs.shape[0]


def _clipped_reference(gdnn, x, t_il):
    """Spike-time propagation of the G-DNN with every layer's input clipped to T_il."""
    from tdsnn.coding import spike_time

    L = gdnn.L
    natural = spike_time(x.double(), L)
    clips = [int((natural > t_il[0]).sum())]
    t = torch.clamp(natural, max=t_il[0])
    times = [t]
    h = None
    k = 0
    for module in gdnn:
        module = module.double()
        if isinstance(module, tdsnn.GCoding):
            h = torch.exp(t.double() / L)
        elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.AvgPool2d)):
            h = module(h)
        elif isinstance(module, torch.nn.ReLU):
            k += 1
            natural = spike_time(h, L)
            clips.append(int((natural > t_il[k]).sum()))
            t = torch.clamp(natural, max=t_il[k])
            times.append(t)
        elif isinstance(module, torch.nn.MaxPool2d):
            t = torch.nn.functional.max_pool2d(t.double(), module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode).long()
            times.append(t)
        elif isinstance(module, torch.nn.Flatten):
            t = t.flatten(1)
    return times, h, clips


def test_static_t_il_clips_late_spikes_and_counts_them():
    checked = 0
    for seed in range(60):
        case = random_case(seed)
        gdnn = _prepare(case)
        natural = tdsnn.convert(gdnn).run(case.inputs).t_il.amax(dim=0)
        t1 = tdsnn.bias_spike_time(case.L)
        short = [max(t1, int(v) - 2) for v in natural]
        if short == natural.tolist():
            continue
        snn = tdsnn.convert(gdnn, t_il=short)
        ref_times, ref_logits, ref_clips = _clipped_reference(gdnn, case.inputs, short)
        for backend in ("closed_form", "clocked"):
            result = snn.run(case.inputs, backend=backend)
            for got, want in zip(result.spike_times, ref_times):
                assert torch.equal(got.long(), want), (case.description, backend)
            _close(result.logits, ref_logits)
            assert result.clipped == ref_clips[: len(short)]
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("backend", ["closed_form", "clocked"])
def test_bad_inputs_are_refused(backend):
    case = random_case(1)  # a conv network
    snn = tdsnn.convert(_prepare(case))
    x = case.inputs
    bad = [
        (x - 1.0, "negative"),
        (x.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan"))), "NaN"),
        (x[:, :1] if x.shape[1] > 1 else torch.cat([x, x], 1), "does not fit"),
        (x[0], "does not fit|batch"),
        (x.long(), "floating"),
        ([1.0, 2.0], "torch.Tensor"),
    ]
    for value, match in bad:
        with pytest.raises(tdsnn.SpikeInputError, match=match):
            snn.run(value, backend=backend)
    with pytest.raises(ValueError, match="backend"):
        snn.run(x, backend="event")


def test_wrong_spatial_size_is_refused_cleanly():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3))
    snn = tdsnn.convert(tdsnn.prepare(model))
    with pytest.raises(tdsnn.SpikeInputError, match="does not fit"):
        snn.run(torch.rand(2, 1, 10, 10))
