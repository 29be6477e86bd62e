"""Hostile-input corpus, API family: the engine's Python calls at and past their edges.

``prepare``, ``convert``, ``SNN.run`` and the coding functions either give the right
answer (the same as float64, the same as the G-DNN) or raise a :class:`TDSNNError`
subclass whose message names the argument or layer and what would be valid: never a
traceback from deep inside, never a silently wrong answer.  The bounds are described
in docs/design.md, "Input ranges and bounds".

Sections: leak constant; spike-time range at run time; clocked step limit; prepare
options; non-finite and absent parameters; layer refusals; model shapes and in-place
operations; SNN.run inputs and options; convert options; operation counts and
activation-scale calibration.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

import tdsnn
from tdsnn import ConversionError, SpikeInputError, TDSNNError, UnsupportedModelError
from tdsnn.coding import FLOAT32_EXACT, L_MAX, L_MIN, check_leak
from tdsnn.ops import EnergyModel, count_dnn_ops
from tdsnn.scales import calibrate_activation_scales
from tdsnn.snn import certified, clocked

pytestmark = pytest.mark.usefixtures("one_thread")

HYPOTHESIS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def conv_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16, 3),
    ).eval()  # fmt: skip


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).eval()


def snn_of(model: nn.Module, L: float = 5.0, **kw) -> tdsnn.SNN:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tdsnn.convert(tdsnn.prepare(model, L, **kw))


def same_times(a: tdsnn.SNNResult, b: tdsnn.SNNResult) -> bool:
    return len(a.spike_times) == len(b.spike_times) and all(
        torch.equal(p.long(), q.long()) for p, q in zip(a.spike_times, b.spike_times)
    )


X = torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------ leak constant


@pytest.mark.parametrize(
    "L", [1e-3, 0.0999, 0, -5, 1e5 + 1, 1e8, 1e10, 1e300, math.nan, math.inf, -math.inf]
)
def test_leak_outside_the_range_is_refused_with_the_range(L):
    with pytest.raises(ConversionError, match=r"L must be a real number in \[0\.1, 100000\]"):
        tdsnn.prepare(mlp(), L)
    with pytest.raises(ConversionError):
        tdsnn.GCoding(L)


@pytest.mark.parametrize("L", ["5", b"5", True, False, None, [5.0], torch.tensor([5.0, 6.0]),
                               torch.tensor(True), 5 + 0j, object()])  # fmt: skip
def test_leak_of_the_wrong_type_is_refused(L):
    with pytest.raises(ConversionError, match="leak constant L"):
        tdsnn.prepare(mlp(), L)


@pytest.mark.parametrize("L", [5, torch.tensor(5.0), torch.tensor([5])])
def test_leak_as_int_or_one_element_tensor_is_a_float(L):
    gdnn = tdsnn.prepare(mlp(), L)
    assert gdnn.L == 5.0 and type(gdnn.L) is float


def test_leak_range_ends_round_trip_exactly():
    for L in (L_MIN, L_MAX):
        snn = snn_of(conv_model(), L)
        cert, exact = snn.run(X), snn.run(X, precision="float64")
        assert same_times(cert, exact)
        if L == L_MAX:  # T(1) = 69315 per layer: the result needs int32 times
            assert cert.spike_times[0].dtype == torch.int32
            assert int(cert.latency.max()) > 2**15


@HYPOTHESIS
@given(
    L=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=L_MIN / 2, max_value=L_MAX * 2),
        st.floats(min_value=0.5, max_value=50.0),
        st.integers(-10, 10**6),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
    )
)
def test_random_leak_either_refused_or_an_exact_round_trip(L):
    try:
        value = check_leak(L)
    except ConversionError:
        event("refused")
        return
    event("accepted")
    assert L_MIN <= value <= L_MAX
    gdnn = tdsnn.prepare(mlp(), L)
    snn = tdsnn.convert(gdnn)
    x = torch.rand(2, 4, generator=torch.Generator().manual_seed(1)) * 3
    cert, exact = snn.run(x), snn.run(x, precision="float64")
    assert same_times(cert, exact)
    torch.testing.assert_close(exact.logits, gdnn.double()(x.double()))
    try:
        stepped = snn.run(x, backend="clocked", max_steps=3000)
    except SpikeInputError as exc:
        assert "max_steps" in str(exc) and int(exact.latency.max()) > 2000
    else:
        assert same_times(stepped, exact)


# ------------------------------------------------------- spike-time range at run time


@pytest.fixture
def certify_every_layer(monkeypatch):
    monkeypatch.setattr(certified, "SMALL_LAYER_MACS", 0)


def huge_weights(scale: float) -> nn.Module:
    model = conv_model()
    with torch.no_grad():
        model[0].weight.mul_(scale)
        model[3].weight.mul_(scale)
    return model


@pytest.mark.usefixtures("certify_every_layer")
def test_float32_overflow_is_exact_in_certified_mode_and_refused_in_float32():
    snn = snn_of(huge_weights(1e25))  # pre-activations ~1e50: beyond float32
    exact = snn.run(X, precision="float64")
    cert = snn.run(X)
    assert same_times(cert, exact)
    torch.testing.assert_close(cert.logits, exact.logits)
    assert cert.extras["precision"] == "certified"
    with pytest.raises(SpikeInputError, match="float32's exact range.*precision='certified'"):
        snn.run(X, precision="float32")
    stepped = snn.run(X, backend="clocked", max_steps=10**6)
    assert same_times(stepped, exact)


def test_input_spike_times_past_2_to_the_24_are_exact_or_refused():
    snn = snn_of(conv_model(), L_MAX)
    x = torch.full((1, 2, 6, 6), 1e300, dtype=torch.float64)
    exact = snn.run(x, precision="float64")
    assert float(exact.spike_times[0].max()) > FLOAT32_EXACT
    cert = snn.run(x)
    assert same_times(cert, exact)
    assert cert.extras["precision"] == "certified" and "ran in float64" in cert.extras["fallback"]
    with pytest.raises(SpikeInputError, match="input.*float32"):
        snn.run(x, precision="float32")
    with pytest.raises(SpikeInputError, match="max_steps"):
        snn.run(x, backend="clocked")


@pytest.mark.parametrize("backend", ["closed_form", "clocked"])
def test_float64_overflow_is_refused_not_nan(backend):
    model = mlp()
    with torch.no_grad():
        model[0].weight.fill_(1e38)
        model[2].weight.fill_(1e38)
    snn = snn_of(model, 5.0, compensate=False)
    x = torch.full((2, 4), 1e300, dtype=torch.float64)
    for precision in ("certified", "float64", "float32"):
        with pytest.raises(SpikeInputError, match="overflow|float32's exact range"):
            snn.run(x, backend=backend, precision=precision, max_steps=10**6)


@HYPOTHESIS
@given(
    weight_exp=st.integers(-3, 38), input_exp=st.integers(-3, 300), L=st.floats(0.5, 30.0),
    layer=st.sampled_from([0, 3, 6]),
)  # fmt: skip
def test_random_magnitudes_are_exact_or_refused(certify_every_layer, weight_exp, input_exp, L, layer):
    model = conv_model()
    with torch.no_grad():
        model[layer].weight.mul_(10.0**weight_exp)
    try:
        snn = snn_of(model, L)
    except UnsupportedModelError:
        event("prepare refused")
        return  # folding overflowed float32, refused
    x = X.double() * 10.0**input_exp
    results = {}
    for precision in ("float64", "certified", "float32"):
        try:
            results[precision] = snn.run(x, precision=precision)
        except SpikeInputError:
            event(f"{precision} refused")
    if "float64" in results:
        assert "certified" in results  # certified falls back rather than fail
        assert same_times(results["certified"], results["float64"])


# ------------------------------------------------------------ clocked step limit


def test_clocked_refuses_before_looping_when_the_latency_exceeds_max_steps(monkeypatch):
    snn = snn_of(conv_model(), L_MAX)  # T(1) = 69315: two layers exceed the default
    calls = []
    original = clocked.inhibitory_period
    monkeypatch.setattr(clocked, "inhibitory_period", lambda *a, **k: calls.append(1) or original(*a, **k))
    with pytest.raises(SpikeInputError, match=r"max_steps=100000.*snn.run\(\.\.\., max_steps=N\)"):
        snn.run(X[:1], backend="clocked")
    assert clocked.MAX_STEPS == 100_000
    small = snn_of(conv_model(), 5.0)
    latency = int(small.run(X).latency.max())
    with pytest.raises(SpikeInputError, match="max_steps"):
        small.run(X, backend="clocked", max_steps=latency - 1)
    calls.clear()
    with pytest.raises(SpikeInputError, match="max_steps"):
        small.run(X, backend="clocked", max_steps=2)  # below the input's encoding period
    assert not calls  # refused before the first time loop
    ok = small.run(X, backend="clocked", max_steps=latency)
    assert same_times(ok, small.run(X, precision="float64"))


def test_clocked_active_period_is_predicted_and_refused_before_stepping():
    snn = snn_of(conv_model(), 5.0)
    result = snn.run(X)
    first = int(result.t_il[:, 0].max())
    with pytest.raises(SpikeInputError, match="active period of layer 'conv1'"):
        snn.run(X, backend="clocked", max_steps=first + 1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True, [10], math.inf])
def test_bad_max_steps(bad):
    with pytest.raises(SpikeInputError, match="max_steps must be a positive integer"):
        snn_of(mlp()).run(torch.rand(2, 4), backend="clocked", max_steps=bad)


# ----------------------------------------------------------------- prepare options


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(input_mean=[0.5], input_std=[math.nan]), r"input_std\[0\] must be a finite number > 0"),
        (dict(input_mean=[math.inf], input_std=[1.0]), r"input_mean\[0\] must be a finite number"),
        (dict(input_mean=0.5, input_std=0.0), "input_std must be a finite number > 0"),
        (dict(input_mean=0.5, input_std=-0.2), "input_std must be a finite number > 0"),
        (dict(input_mean=[0.1, 0.2], input_std=[0.3]), "input_mean has 2 values and input_std 1"),
        (dict(input_mean=[0.1] * 3, input_std=[0.2] * 3), "3 values.*takes 2 input channel"),
        (dict(input_mean=[], input_std=[]), "input_mean must not be empty"),
        (dict(input_mean="0.5", input_std=0.5), "input_mean must be a finite number"),
        (dict(input_mean=True, input_std=0.5), "input_mean must be a finite number"),
        (dict(input_std=[0.2]), "both"),
        (dict(input_scale=math.nan), "input_scale must be a finite number > 0"),
        (dict(input_scale=0), "input_scale must be a finite number > 0"),
        (dict(input_scale=True), "input_scale must be a finite number > 0"),
        (dict(input_scale="2"), "input_scale must be a finite number > 0"),
        (dict(activation_scales=[math.nan]), r"activation_scales\[0\] must be a finite number > 0"),
        (dict(activation_scales=[1.0, -1.0]), r"activation_scales\[1\] must be a finite number > 0"),
        (dict(activation_scales=0.0), "activation_scales must be a finite number > 0"),
        (dict(activation_scales=math.inf), "activation_scales must be a finite number > 0"),
        (dict(activation_scales="2"), "activation_scales must be a finite number > 0"),
        (dict(activation_scales=[1.0]), "one value per hidden synapse layer"),
        (dict(activation_scales=[1.0, 1.0, 1.0]), "one value per hidden synapse layer"),
        (dict(input_scale=1e-45), "non-finite value.*too extreme"),
        (dict(input_mean=0.5, input_std=1e-44), "non-finite value.*too extreme"),
    ],
)
def test_bad_prepare_options_are_refused_by_name(options, match):
    with pytest.raises(UnsupportedModelError, match=match):
        tdsnn.prepare(conv_model(), 5.0, **options)


def test_prepare_options_as_tensors_and_arrays():
    np = pytest.importorskip("numpy")
    a = tdsnn.prepare(conv_model(), 5.0, input_mean=torch.tensor([0.1, 0.2]),
                      input_std=np.array([0.3, 0.4]), activation_scales=np.float64(2.0))  # fmt: skip
    b = tdsnn.prepare(conv_model(), 5.0, input_mean=[0.1, 0.2], input_std=[0.3, 0.4],
                      activation_scales=[2.0, 2.0])  # fmt: skip
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


# ------------------------------------------------ non-finite and absent parameters


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["0.weight", "3.bias", "6.weight"])
def test_non_finite_weights_are_refused_at_prepare(value, where):
    model = conv_model()
    with torch.no_grad():
        model.get_parameter(where).view(-1)[0] = value
    with pytest.raises(UnsupportedModelError, match=f"parameter '{where}' has 1 NaN or infinite"):
        tdsnn.prepare(model, 5.0)


@pytest.mark.parametrize("stat", ["running_mean", "running_var"])
def test_non_finite_or_negative_batchnorm_statistics_are_refused(stat):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)).eval()
    getattr(model[1], stat)[0] = math.nan
    with pytest.raises(UnsupportedModelError, match=f"'1.{stat}' has 1 NaN"):
        tdsnn.prepare(model)
    model[1].running_mean.zero_()
    model[1].running_var.fill_(-1.0)
    with pytest.raises(UnsupportedModelError, match="running_var \\+ eps <= 0"):
        tdsnn.prepare(model)


def test_non_finite_gdnn_weights_and_bad_gdnn_leak_are_refused_at_convert():
    gdnn = tdsnn.prepare(conv_model(), 5.0)
    with torch.no_grad():
        gdnn.fc3.bias[1] = math.nan
    with pytest.raises(UnsupportedModelError, match="G-DNN parameter 'fc3.bias' has 1 NaN"):
        tdsnn.convert(gdnn)
    gdnn = tdsnn.prepare(conv_model(), 5.0)
    gdnn.L = 1e9
    with pytest.raises(ConversionError, match="leak constant L"):
        tdsnn.convert(gdnn)


def test_meta_and_lazy_models_are_refused():
    with pytest.raises(UnsupportedModelError, match="meta device"):
        tdsnn.prepare(mlp().to("meta"))
    lazy = nn.Sequential(nn.LazyLinear(3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(UnsupportedModelError, match="uninitialised"):
        tdsnn.prepare(lazy)


# ------------------------------------------------------------------ layer refusals


@pytest.mark.parametrize(
    "layer, match",
    [
        (nn.ReLU6(), r"ReLU6\) clips its output at 6 \(min\(x, 6\)\)"),
        (nn.Hardtanh(), r"produces negative values \(down to -1\) and clips its output at 1"),
        (nn.Hardtanh(0.5, 2.0), "raises values below 0.5 to 0.5 and clips its output at 2"),
        (nn.LeakyReLU(), "LeakyReLU.*negative activations"),
        (nn.Tanh(), "Tanh.*negative activations"),
        (nn.GELU(), "GELU.*negative activations"),
        (nn.Hardswish(), "Hardswish.*negative activations"),
        (nn.Sigmoid(), "Sigmoid.*not supported.*only activation"),
        (nn.Softplus(), "Softplus.*not supported.*only activation"),
        (nn.Softmax(dim=1), "Softmax.*drop the final softmax"),
        (nn.LogSoftmax(dim=1), "LogSoftmax.*drop the final softmax"),
    ],
)
def test_activation_refusals_give_the_real_reason(layer, match):
    with pytest.raises(UnsupportedModelError, match=match):
        tdsnn.prepare(nn.Sequential(nn.Linear(4, 4), layer, nn.Linear(4, 2)))


class Functional(nn.Module):
    def __init__(self, act) -> None:
        super().__init__()
        self.a, self.b, self.act = nn.Linear(4, 3), nn.Linear(3, 2), act

    def forward(self, x):
        return self.b(self.act(self.a(x)))


@pytest.mark.parametrize(
    "act, match",
    [
        (F.relu6, "'relu6'.*clips its output"),
        (lambda x: x.clamp(0, 1), "'clamp'.*clips its output"),
        (torch.sigmoid, "'sigmoid'.*only activation"),
        (torch.tanh, "'tanh'.*negative"),
        (F.leaky_relu, "'leaky_relu'.*negative"),
        (lambda x: x.add_(1), "'add_' at node"),
    ],
)
def test_functional_activation_refusals(act, match):
    with pytest.raises(UnsupportedModelError, match=match):
        tdsnn.prepare(Functional(act))


def test_subclasses_of_supported_layers_are_refused():
    class ScaledConv(nn.Conv2d):
        def forward(self, x):
            return 2 * super().forward(x)

    model = nn.Sequential(ScaledConv(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(UnsupportedModelError, match="subclass of nn.Conv2d.*plain nn.Conv2d"):
        tdsnn.prepare(model)


# -------------------------------------------------- model shapes, in-place operations


@pytest.mark.parametrize(
    "model",
    [nn.Sequential(), nn.Sequential(nn.ReLU()), nn.Sequential(nn.MaxPool2d(2), nn.Flatten()),
     nn.Identity()],  # fmt: skip
)
def test_models_without_a_synapse_layer(model):
    with pytest.raises(UnsupportedModelError, match="no Conv2d, Linear or AvgPool2d"):
        tdsnn.prepare(model)


@pytest.mark.parametrize("model", [nn.Module(), [nn.Linear(4, 2)], "model", None])
def test_non_models(model):
    with pytest.raises(UnsupportedModelError):
        tdsnn.prepare(model)


def test_gdnn_without_layers_is_refused_at_convert():
    with pytest.raises(UnsupportedModelError, match="no synapse layer"):
        tdsnn.convert(tdsnn.GDNN([], L=5.0))


@pytest.mark.parametrize(
    "act",
    [lambda x: F.relu(x, inplace=True), torch.relu_, F.relu_, lambda x: x.relu_(),
     nn.ReLU(inplace=True)],  # fmt: skip
)
def test_in_place_relus_are_relus(act):
    model = Functional(act)
    reference = Functional(torch.relu)
    reference.load_state_dict(model.state_dict())
    x = torch.rand(3, 4)
    a, b = snn_of(model).run(x), snn_of(reference).run(x)
    assert same_times(a, b) and torch.equal(a.logits, b.logits)


def test_prepare_convert_and_run_leave_their_arguments_alone():
    model = conv_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gdnn = tdsnn.prepare(model, 5.0, input_mean=[0.1, 0.2], input_std=[0.3, 0.4])
    snn = tdsnn.convert(gdnn)
    x = X.clone()
    snn.run(x)
    snn.run(x, backend="clocked")
    assert torch.equal(x, X)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------ SNN.run inputs, options


@pytest.mark.parametrize("backend", ["closed_form", "clocked"])
def test_bad_inputs_to_run(backend):
    snn = snn_of(conv_model())
    bad = [
        (X[:0], "non-empty batch"),
        (torch.rand(2, 2, 0, 6), "non-empty batch"),
        (X[0, 0, 0], "non-empty batch"),
        (X[0, 0], r"expects batch x 2 x H x W"),
        (torch.rand(2, 1, 6, 6), r"expects batch x 2 x H x W"),
        (torch.rand(2, 2, 6), r"expects batch x 2 x H x W"),
        (torch.rand(2, 2, 6, 6, 1), r"expects batch x 2 x H x W"),
        (torch.rand(2, 2, 1, 1), "does not fit the SNN"),
        (torch.rand(2, 2, 12, 12), "does not fit the SNN"),
        ((X * 255).to(torch.uint8), "floating tensor, got torch.uint8"),
        (X > 0.5, "floating tensor, got torch.bool"),
        (X.to(torch.complex64), "floating tensor"),
        (torch.full_like(X, math.nan), "NaN or infinite"),
        (torch.full_like(X, math.inf), "NaN or infinite"),
        (X - 0.5, "negative values"),
        (torch.empty(2, 2, 6, 6, device="meta"), "meta device"),
        (X.numpy(), "torch.Tensor"),
        ([[1.0]], "torch.Tensor"),
    ]
    for value, match in bad:
        with pytest.raises(SpikeInputError, match=match):
            snn.run(value, backend=backend)


@pytest.mark.usefixtures("certify_every_layer")
@pytest.mark.parametrize("backend", ["closed_form", "clocked"])
def test_memory_layouts_and_dtypes_give_the_same_answer(backend):
    snn = snn_of(conv_model())
    big = torch.rand(3, 2, 6, 12, generator=torch.Generator().manual_seed(2))
    reference = snn.run(big[..., ::2].contiguous(), backend=backend)
    for x in (big[..., ::2], big[..., ::2].contiguous(memory_format=torch.channels_last),
              big[:1, :, :, ::2].expand(3, -1, -1, -1), torch.full_like(X, -0.0)):  # fmt: skip
        result = snn.run(x, backend=backend)
        expected = snn.run(x.contiguous(), backend=backend)
        assert same_times(result, expected) and torch.equal(result.logits, expected.logits)
    assert same_times(snn.run(big[..., ::2], backend=backend), reference)
    half = X.half()
    assert same_times(snn.run(half, backend=backend), snn.run(half.float(), backend=backend))


@pytest.mark.parametrize("backend", ["closed_form", "clocked"])
def test_linear_layers_need_two_dimensional_input(backend):
    snn = snn_of(mlp())
    for x in (torch.rand(2, 3, 4), torch.rand(2, 1, 3, 4)):
        with pytest.raises(SpikeInputError, match="Linear layer 'fc1' receives shape"):
            snn.run(x, backend=backend)
    with pytest.raises(SpikeInputError, match="does not fit"):
        snn.run(torch.rand(2, 5), backend=backend)


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(backend="event"), "backend must be one of"),
        (dict(backend=["clocked"]), "backend must be one of"),
        (dict(precision="float16"), "precision must be one of"),
        (dict(precision=torch.float16), "precision must be one of"),
        (dict(precision=[64]), "precision must be one of"),
    ],
)
def test_bad_run_options(options, match):
    with pytest.raises(SpikeInputError, match=match):
        snn_of(mlp()).run(torch.rand(2, 4), **options)


# ----------------------------------------------------------------- convert options


@pytest.mark.parametrize(
    "t_il, match",
    [
        ([5, 5], r"one value per synapse layer \(3\), got 2"),
        ([5, 5, 5, 5], r"one value per synapse layer \(3\), got 4"),
        ([5, 5, -1], r"T_il=-1 of layer 'fc3' is shorter than T\(1\)=4"),
        ([0, 5, 5], r"T_il=0 of layer 'conv1' is shorter"),
        ([5, math.nan, 5], "T_il of layer 'conv2' must be an integer number of steps, got nan"),
        ([5, math.inf, 5], "must be an integer number of steps, got inf"),
        ([5, 5.5, 5], "must be an integer number of steps, got 5.5"),
        ([True, 5, 5], "must be an integer number of steps, got True"),
        ([5, "5", 5], "must be an integer number of steps"),
        ([5, 5, 2**24 + 1], r"exceeds 16777216 \(2\*\*24\)"),
        ("555", "t_il must be a sequence of integers"),
        (5, "t_il must be a sequence of integers"),
        (torch.tensor(5), "t_il must be a sequence of integers"),
    ],
)
def test_bad_static_t_il(t_il, match):
    with pytest.raises(ConversionError, match=match):
        tdsnn.convert(tdsnn.prepare(conv_model(), 5.0), t_il=t_il)


def test_static_t_il_as_tensor_array_or_integral_floats():
    gdnn = tdsnn.prepare(conv_model(), 5.0)
    for t_il in (torch.tensor([6, 7, 8]), [6.0, 7.0, 8.0], [torch.tensor(6), 7, 8]):
        assert tdsnn.convert(gdnn, t_il=t_il).static_t_il == [6, 7, 8]


@pytest.mark.parametrize(
    "calibration, error, match",
    [
        (5, ConversionError, "calibration must be a tensor or an iterable"),
        ("data", ConversionError, "calibration must be a tensor or an iterable"),
        ([], ConversionError, "empty"),
        ([torch.rand(2, 3, 6, 6)], SpikeInputError, "does not fit"),
        ([X - 1], SpikeInputError, "negative"),
    ],
)
def test_bad_calibration(calibration, error, match):
    with pytest.raises(error, match=match):
        tdsnn.convert(tdsnn.prepare(conv_model(), 5.0), calibration=calibration)


def test_bad_maxpool_mapping():
    with pytest.raises(ConversionError, match="maxpool must be one of"):
        tdsnn.convert(tdsnn.prepare(conv_model(), 5.0), maxpool=["leaky"])


# ------------------------------------- operation counts, activation-scale calibration


@pytest.mark.parametrize(
    "options", [dict(mac_pj=math.nan), dict(ac_pj=-1.0), dict(mac_pj="4.6"), dict(mac_pj=0.5)]
)
def test_bad_energy_model(options):
    with pytest.raises(ConversionError, match="EnergyModel"):
        EnergyModel(**options)


@pytest.mark.parametrize("shape", [(), (2, 0, 6), (2, "a", 6), (2.5, 6, 6), None])
def test_bad_dnn_count_shapes(shape):
    with pytest.raises(SpikeInputError, match="input_shape must be positive integer sizes"):
        count_dnn_ops(conv_model(), shape)


@pytest.mark.parametrize(
    "options, data",
    [(dict(target=0.0), X), (dict(target=math.nan), X), (dict(percentile=0), X),
     (dict(percentile=101), X), (dict(percentile=math.nan), X), ({}, [])],  # fmt: skip
)
def test_bad_activation_scale_calibration(options, data):
    with pytest.raises(ConversionError):
        calibrate_activation_scales(conv_model(), data, **options)


def test_every_refusal_is_a_tdsnn_error():
    for error in (ConversionError, SpikeInputError, UnsupportedModelError):
        assert issubclass(error, TDSNNError) and issubclass(error, ValueError)
