"""The numbers the paper reports (Zhang et al., AAAI 2019, Evaluation section), as data.

Every value carries a ``source`` naming the table or figure it comes from, so a
report can print the paper's figures beside ours.  Errors and accuracies are in
percent; operation counts are per input, as printed (``2239k`` -> 2_239_000).

Our own operation counts are *computed* from the layer shapes (``tdsnn.ops``), never
copied from here.  They do not all agree with the paper:

* LeNet: Table 2 gives ``DNN_mult = 2239k``, while LeNet-5 (20@5x5, 50@5x5, fc 500,
  fc 10 on 28x28) has 2,293,000 multiplications -- most likely a digit swap in the
  paper.  (Its ``DNN_add = 2235k`` is also below the 2,288,810 additions and
  comparisons we count.)
* AlexNet: 357M is about half of the 714M of the single-tower (torchvision) AlexNet
  of our zoo: the paper presumably counted the original two-group network.
* VGG-16: 14765M against the 15,470M of the standard VGG-16 (FC layers included).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class AccuracyRow:
    """One row of Table 1: errors in percent as ``(top1, top5)``; top-5 None if not given."""

    network: str
    dataset: str
    depth: int
    dnn_error: tuple[float, float | None]
    previous_snn_error: tuple[float, float | None]
    previous_snn_ref: str
    snn_error: tuple[float, float | None]
    source: str = "Table 1 (accuracy results)"


@dataclass(frozen=True)
class OpsRow:
    """One row of Table 2 (SNN with L = 5): counts per input and DNN/SNN ratios."""

    dnn_mul: float
    dnn_add: float
    snn_mul: float
    snn_add: float
    mul_ratio: float
    add_ratio: float
    total_ratio: float
    L: float = 5.0
    source: str = "Table 2 (number of operations, L = 5)"


@dataclass(frozen=True)
class AccuracyPoint:
    """An SNN accuracy (percent) at one leak constant, from the text about Figure 4."""

    L: float
    top1: float
    top5: float | None
    note: str = ""
    source: str = "Figure 4 (values quoted in the text)"


@dataclass(frozen=True)
class ReductionPoint:
    """Reduction of the total operations (``1 - SNN/DNN``, percent) at one L (Figure 5)."""

    L: float
    reduction_pct: float
    source: str = "Figure 5 (values quoted in the text)"

    @property
    def total_ratio(self) -> float:
        """The same point as a ``DNN_total / SNN_total`` ratio."""
        return 1.0 / (1.0 - self.reduction_pct / 100.0)


@dataclass(frozen=True)
class PaperReference:
    """Everything the paper reports about one network."""

    model: str
    dataset: str
    network: str
    table1: AccuracyRow
    table2: OpsRow
    figure4: tuple[AccuracyPoint, ...] = ()
    figure5: tuple[ReductionPoint, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """A JSON-able dict (Figure 5 points gain their ``total_ratio``)."""
        out = asdict(self)
        for point, row in zip(self.figure5, out["figure5"], strict=True):
            row["total_ratio"] = point.total_ratio
        return out


PAPER = "Zhang, Zeng, Zhao, Shi: TDSNN, AAAI 2019"

LENET = PaperReference(
    model="lenet5",
    dataset="mnist",
    network="Lenet [MNIST]",
    table1=AccuracyRow(
        "Lenet", "MNIST", 11,
        dnn_error=(0.84, None),
        previous_snn_error=(0.56, None),
        previous_snn_ref="Rueckauer et al. 2017",
        snn_error=(0.92, None),
    ),
    # 2239k is not what LeNet-5's shapes give (2,293,000): see the module docstring.
    table2=OpsRow(2_239e3, 2_235e3, 1_920e3, 3_194e3, 1.17, 0.7, 0.875),
    figure4=(AccuracyPoint(1.0, 98.47, None), AccuracyPoint(5.0, 99.08, None)),
    notes=(
        "Text: the total operations of the SNN are 1.14x those of the DNN (= 1/0.875).",
        "Table 2: DNN_mult 2239k differs from the 2,293,000 of LeNet-5's layer shapes "
        "(likely a digit swap); tdsnn computes its counts.",
    ),
)

ALEXNET = PaperReference(
    model="alexnet",
    dataset="imagenet",
    network="Alexnet [ImageNet]",
    table1=AccuracyRow(
        "Alexnet", "ImageNet", 20,
        dnn_error=(42.84, 19.67),
        previous_snn_error=(48.2, 23.8),
        previous_snn_ref="Hunsberger 2018",
        snn_error=(43.3, 20.17),
    ),
    table2=OpsRow(357e6, 357e6, 39e6, 377e6, 9.15, 0.95, 1.72),
    figure4=(AccuracyPoint(1.0, 42.08, 66.96), AccuracyPoint(5.0, 56.7, 79.83)),
    figure5=(ReductionPoint(1.0, 48.4), ReductionPoint(5.0, 41.7)),
    notes=(
        "Text: the SNN reduces the total operations by 41.9 % (Table 2); Figure 5's text "
        "says 41.7 % at L = 5.",
    ),
)

VGG16 = PaperReference(
    model="vgg16",
    dataset="imagenet",
    network="VGG-16 [ImageNet]",
    table1=AccuracyRow(
        "VGG-16", "ImageNet", 38,
        dnn_error=(30.82, 10.72),
        previous_snn_error=(50.39, 18.37),
        previous_snn_ref="Rueckauer et al. 2017",
        snn_error=(29.13, 9.89),
    ),
    table2=OpsRow(14_765e6, 14_757e6, 1_496e6, 15_505e6, 9.87, 0.95, 1.74),
    figure4=(
        AccuracyPoint(1.0, 0.0, 0.0, note="training failure"),
        AccuracyPoint(5.0, 70.87, 90.11),
    ),
    notes=("Text: the SNN reduces the total operations by 42.6 %.",),
)

REFERENCES: dict[tuple[str, str], PaperReference] = {
    (ref.model, ref.dataset): ref for ref in (LENET, ALEXNET, VGG16)
}


def paper_reference(model_name: str, dataset: str) -> PaperReference | None:
    """The paper's figures for one of our (model, dataset) pairs, or None.

    ``lenet5``/``mnist``, ``alexnet``/``imagenet`` and ``vgg16``/``imagenet`` have
    references; the CIFAR variants (and any other pair) have none.
    """
    return REFERENCES.get((str(model_name).lower(), str(dataset).lower()))
