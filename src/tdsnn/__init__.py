"""tdsnn: exact conversion of trained CNNs into temporal-coding spiking networks.

The flow follows the paper (Zhang et al., AAAI 2019, Figure 2) and the
prepare / convert style of ``torch.ao.quantization``::

    gdnn = tdsnn.prepare(model, L=5.0)      # G before every synapse layer
    ...fine-tune gdnn with any training loop...
    snn = tdsnn.convert(gdnn)               # negated weights, bias and ticking neurons
    result = snn.run(x, backend="closed_form")   # or "clocked"
    result.logits, result.spike_times, result.ops.counts()
"""

from .coding import (
    GCoding,
    bias_spike_time,
    g_activation,
    g_straight_through,
    spike_time,
    tick_weight,
)
from .convert import convert
from .errors import ConversionError, SpikeInputError, TDSNNError, UnsupportedModelError
from .ops import EnergyModel, OpCounts, SNNOps, compare_ops, count_dnn_ops
from .prepare import GDNN, prepare
from .snn.network import SNN
from .snn.result import SNNResult

__version__ = "0.1.0"

__all__ = [
    "GDNN",
    "SNN",
    "ConversionError",
    "EnergyModel",
    "GCoding",
    "OpCounts",
    "SNNOps",
    "SNNResult",
    "SpikeInputError",
    "TDSNNError",
    "UnsupportedModelError",
    "bias_spike_time",
    "compare_ops",
    "convert",
    "count_dnn_ops",
    "g_activation",
    "g_straight_through",
    "prepare",
    "spike_time",
    "tick_weight",
]
