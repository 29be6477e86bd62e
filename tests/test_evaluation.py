"""Whole-set evaluation of DNN, G-DNN and SNN: schema, inputs, agreement, counts."""

from __future__ import annotations

import json

import pytest
import torch

import tdsnn
from tdsnn.data import load_dataset, to_float
from tdsnn.evaluation import InputSpec, evaluate, format_table
from tdsnn.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


SCHEMA_KEYS = {
    "model", "dataset", "L", "input_scale", "samples", "accuracy", "agreement",
    "disagreements", "latency", "t_il_mean", "layer_names", "spikes_per_sample",
    "spikes_per_layer", "ops", "energy_pj", "clipped", "t_il_mode", "timing_s", "precision",
    "coding", "spiking_neurons", "spikes_per_neuron", "synaptic_events_per_image",
    "dnn_macs_per_image", "events_per_mac",
}  # fmt: skip
MEAN, STD = (0.1307,), (0.3081,)


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist", "test")


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    dnn = build_model("lenet5").eval()
    gdnn = tdsnn.prepare(dnn, L=5.0, input_mean=MEAN, input_std=STD, input_scale=4.0).eval()
    return dnn, gdnn


def check_schema(result: dict, backends=("closed_form", "clocked")) -> None:
    assert set(result) == SCHEMA_KEYS
    assert set(result["accuracy"]) == {"dnn", "gdnn", "snn"}
    for acc in (result["accuracy"]["dnn"], result["accuracy"]["gdnn"],
                *result["accuracy"]["snn"].values()):  # fmt: skip
        assert set(acc) == {"top1", "top5"} and 0 <= acc["top1"] <= acc["top5"] <= 1
    assert set(result["accuracy"]["snn"]) == set(backends)
    assert set(result["agreement"]) == set(backends) == set(result["disagreements"])
    assert set(result["latency"]) == {"mean", "min", "max"}
    assert result["latency"]["min"] <= result["latency"]["mean"] <= result["latency"]["max"]
    n_syn = len(result["layer_names"])
    assert len(result["t_il_mean"]) == n_syn == len(result["clipped"])
    assert set(result["ops"]) == {"dnn", "snn", "ratios"}
    conventions = {"presentation", "own", "hardware"}
    assert set(result["ops"]["snn"]) == conventions == set(result["ops"]["ratios"])
    for ratios in result["ops"]["ratios"].values():
        assert set(ratios) == {"mul_ratio", "add_ratio", "total_ratio", "energy_ratio"}
    assert set(result["ops"]["dnn"]) == {"mul", "add", "total"}
    assert set(result["energy_pj"]) == {"dnn", "snn_presentation", "snn_own", "snn_hardware"}
    assert set(result["timing_s"]) == {"dnn", "gdnn", *backends}
    assert result["t_il_mode"] in ("dynamic", "static")
    assert result["coding"] in ("paper", "sparse")
    spikes = sum(result["spikes_per_layer"].values())
    assert result["spikes_per_neuron"] == pytest.approx(spikes / result["spiking_neurons"])
    if result["coding"] == "paper":  # every spiking neuron fires exactly once
        assert result["spikes_per_neuron"] == 1.0
    else:
        assert 0.0 <= result["spikes_per_neuron"] <= 1.0
    assert result["dnn_macs_per_image"] == result["ops"]["dnn"]["mul"]
    assert result["events_per_mac"] == pytest.approx(
        result["synaptic_events_per_image"] / result["dnn_macs_per_image"]
    )
    json.loads(json.dumps(result))  # JSON-able


def test_evaluate_schema_agreement_and_counts(mnist_test, nets):
    dnn, gdnn = nets
    snn = tdsnn.convert(gdnn)
    result = evaluate(dnn, gdnn, snn, mnist_test, input_mean=MEAN, input_std=STD, limit=96,
                      batch_size=40, progress=False, model_name="lenet5")  # fmt: skip
    check_schema(result)
    assert result["samples"] == 96 and result["dataset"] == "mnist" and result["L"] == 5.0
    assert result["input_scale"] == 4.0  # taken from the G-DNN
    assert result["agreement"] == {"closed_form": 1.0, "clocked": 1.0}
    assert result["disagreements"] == {"closed_form": 0, "clocked": 0}
    assert result["layer_names"] == ["conv1", "conv2", "fc3", "fc4"]
    assert list(result["spikes_per_layer"]) == ["input", "conv1", "pool1", "conv2", "pool2", "fc3"]
    assert result["spikes_per_layer"]["input"] == 784  # every neuron fires once
    assert result["spikes_per_sample"] == pytest.approx(sum(result["spikes_per_layer"].values()))
    assert result["ops"]["dnn"]["mul"] == tdsnn.count_dnn_ops(dnn, (1, 28, 28)).mul
    assert result["t_il_mode"] == "dynamic" and result["clipped"] == [0, 0, 0, 0]
    # the latency is the sum of the inhibitory periods
    assert result["latency"]["mean"] == pytest.approx(sum(result["t_il_mean"]))
    assert "agreement" in format_table(result)
    assert result["precision"] == "certified"


def test_precisions_give_the_same_evaluation(mnist_test, nets):
    dnn, gdnn = nets
    snn = tdsnn.convert(gdnn)
    runs = {
        p: evaluate(dnn, gdnn, snn, mnist_test, backends=("closed_form",), input_mean=MEAN,
                    input_std=STD, limit=64, progress=False, precision=p)
        for p in ("certified", "float64")
    }  # fmt: skip
    assert runs["float64"]["precision"] == "float64"
    for key in ("accuracy", "agreement", "latency", "spikes_per_layer", "ops"):
        assert runs["certified"][key] == runs["float64"][key], key


def test_each_network_gets_its_own_input(mnist_test, nets):
    """DNN: normalised pixels; G-DNN and SNN: raw pixels times the input scale."""
    dnn, gdnn = nets
    snn = tdsnn.convert(gdnn)
    images, labels = mnist_test.images[:64], mnist_test.labels[:64]
    x = to_float(images)
    result = evaluate(dnn, gdnn, snn, (images, labels), backends=("closed_form",),
                      input_mean=MEAN, input_std=STD, progress=False)  # fmt: skip
    with torch.no_grad():
        dnn_acc = float((dnn((x - MEAN[0]) / STD[0]).argmax(1) == labels).float().mean())
        g_acc = float((gdnn.double()(x.double() * 4.0).argmax(1) == labels).float().mean())
    assert result["accuracy"]["dnn"]["top1"] == pytest.approx(dnn_acc)
    assert result["accuracy"]["gdnn"]["top1"] == pytest.approx(g_acc)
    assert result["accuracy"]["snn"]["closed_form"] == result["accuracy"]["gdnn"]
    spec = InputSpec(MEAN, STD, 4.0)
    assert torch.allclose(spec.dnn(x), (x - 0.1307) / 0.3081)
    assert torch.equal(spec.spiking(x), x * 4.0)


def test_static_t_il_reports_clipping(mnist_test, nets):
    dnn, gdnn = nets
    snn = tdsnn.convert(gdnn, t_il=[5, 5, 5, 5])  # too short: spikes get clipped
    result = evaluate(dnn, gdnn, snn, mnist_test, backends=("closed_form",), limit=32,
                      input_mean=MEAN, input_std=STD, progress=False)  # fmt: skip
    check_schema(result, ("closed_form",))
    assert result["t_il_mode"] == "static"
    assert sum(result["clipped"]) > 0
    assert result["latency"] == {"mean": 20.0, "min": 20, "max": 20}


def test_bad_backend_is_refused(mnist_test, nets):
    dnn, gdnn = nets
    with pytest.raises(ValueError, match="backends"):
        evaluate(dnn, gdnn, tdsnn.convert(gdnn), mnist_test, backends=("euler",), limit=4)
