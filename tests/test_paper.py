import json

import pytest

import tdsnn
from tdsnn.models import lenet5
from tdsnn.paper import REFERENCES, paper_reference


def test_table1_values():
    lenet = paper_reference("lenet5", "mnist")
    assert lenet.table1.dnn_error == (0.84, None)
    assert lenet.table1.previous_snn_error == (0.56, None)
    assert lenet.table1.snn_error == (0.92, None)
    assert lenet.table1.depth == 11
    alex = paper_reference("alexnet", "imagenet")
    assert alex.table1.dnn_error == (42.84, 19.67)
    assert alex.table1.previous_snn_error == (48.2, 23.8)
    assert alex.table1.snn_error == (43.3, 20.17)
    assert alex.table1.depth == 20
    vgg = paper_reference("vgg16", "imagenet")
    assert vgg.table1.dnn_error == (30.82, 10.72)
    assert vgg.table1.previous_snn_error == (50.39, 18.37)
    assert vgg.table1.snn_error == (29.13, 9.89)
    assert vgg.table1.depth == 38


@pytest.mark.parametrize("model,dataset", [("vgg_cifar", "cifar10"), ("alexnet_cifar", "cifar10"),
                                           ("lenet5", "imagenet"), ("unknown", "mnist")])
def test_no_reference(model, dataset):
    assert paper_reference(model, dataset) is None


def test_names_are_case_insensitive():
    assert paper_reference("LeNet5", "MNIST") is paper_reference("lenet5", "mnist")


@pytest.mark.parametrize("ref", list(REFERENCES.values()), ids=lambda r: r.model)
def test_table2_ratios_follow_from_its_counts(ref):
    t2 = ref.table2
    assert t2.dnn_mul / t2.snn_mul == pytest.approx(t2.mul_ratio, rel=0.01)
    assert t2.dnn_add / t2.snn_add == pytest.approx(t2.add_ratio, rel=0.01)
    total = (t2.dnn_mul + t2.dnn_add) / (t2.snn_mul + t2.snn_add)
    assert total == pytest.approx(t2.total_ratio, rel=0.01)


@pytest.mark.parametrize("ref", list(REFERENCES.values()), ids=lambda r: r.model)
def test_figure4_at_L5_is_table1(ref):
    point = next(p for p in ref.figure4 if p.L == 5)
    top1, top5 = ref.table1.snn_error
    assert point.top1 == pytest.approx(100 - top1)
    if top5 is not None:
        assert point.top5 == pytest.approx(100 - top5)


def test_figure4_and_5_text_values():
    assert [(p.L, p.top1) for p in paper_reference("lenet5", "mnist").figure4] == [(1, 98.47), (5, 99.08)]
    alex = paper_reference("alexnet", "imagenet")
    assert [(p.L, p.top1, p.top5) for p in alex.figure4] == [(1, 42.08, 66.96), (5, 56.7, 79.83)]
    vgg = paper_reference("vgg16", "imagenet")
    assert [(p.top1, p.top5) for p in vgg.figure4] == [(0, 0), (70.87, 90.11)]
    assert "training failure" in vgg.figure4[0].note
    assert [(p.L, p.reduction_pct) for p in alex.figure5] == [(1, 48.4), (5, 41.7)]
    # Figure 5's reduction at L = 5 is Table 2's total ratio, up to the paper's rounding
    assert alex.figure5[1].total_ratio == pytest.approx(alex.table2.total_ratio, rel=0.01)


def test_lenet_mult_count_is_computed_not_copied():
    ours = tdsnn.count_dnn_ops(lenet5(), (1, 28, 28)).mul
    paper = paper_reference("lenet5", "mnist").table2.dnn_mul
    assert ours == 2_293_000 and paper == 2_239_000
    assert sorted(str(ours)) == sorted(str(int(paper)))  # the same digits: a swap


@pytest.mark.parametrize("ref", list(REFERENCES.values()), ids=lambda r: r.model)
def test_every_entry_has_a_source_and_is_jsonable(ref):
    data = json.loads(json.dumps(ref.to_dict()))
    assert "Table 1" in data["table1"]["source"]
    assert "Table 2" in data["table2"]["source"]
    assert all("Figure 4" in p["source"] for p in data["figure4"])
    assert all("Figure 5" in p["source"] and p["total_ratio"] > 1 for p in data["figure5"])
