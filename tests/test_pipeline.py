"""Run folders: models rebuilt from sidecars + safetensors, user models, options, resumption."""

from __future__ import annotations

import json

import pytest
import torch

from tdsnn import pipeline as P
from tdsnn.data import load_dataset, to_float
from tdsnn.prepare import GDNN

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = {"train_limit": 256, "test_limit": 64, "progress": False, "batch_size": 64}

USER_MODEL = """
from torch import nn

def small_cnn(channels=6):
    return nn.Sequential(
        nn.Conv2d(1, channels, 5, stride=2, padding=2), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(channels * 7 * 7, 10),
    )
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline") / "run"
    P.train_dnn(folder, epochs=1, **FAST)
    P.finetune(folder, L=4.0, epochs=1, input_scale=3.0, activation_scales=[1.0, 2.0, 1.0],
               progress=False)  # fmt: skip
    P.convert_run(folder, calibrate=64)
    return folder


def test_models_are_rebuilt_from_the_sidecar_and_tensors(run):
    test = load_dataset("mnist", "test")
    x = to_float(test.images[:32])
    dnn, meta = P.load_dnn(run)
    assert meta["architecture"] == "lenet5" and meta["arch_kwargs"] == {"num_classes": 10}
    assert meta["normalization"] == {"mean": [0.1307], "std": [0.3081]}
    gdnn, gmeta = P.load_gdnn(run)  # the only G-DNN there: L=4
    assert isinstance(gdnn, GDNN) and gdnn.L == 4.0 and gdnn.input_scale == 3.0
    assert list(gdnn.activation_scales) == gmeta["activation_scales"] == [1.0, 2.0, 1.0]
    snn, smeta = P.load_snn(run, 4.0)
    assert smeta["t_il_mode"] == "static" and snn.static_t_il == smeta["static_t_il"]
    spiking = x.double() * 3.0
    reference = gdnn.double()(spiking)
    result = snn.run(spiking)
    assert torch.equal(result.predictions, reference.argmax(1)) or sum(result.clipped) > 0
    # the rebuilt networks score what they scored when they were saved
    labels = test.labels[:64]
    x64 = to_float(test.images[:64])
    with torch.no_grad():
        dnn_acc = (dnn((x64 - 0.1307) / 0.3081).argmax(1) == labels).float().mean()
        g_acc = (P.load_gdnn(run)[0](x64 * 3.0).argmax(1) == labels).float().mean()
    assert float(dnn_acc) == pytest.approx(meta["metrics"]["eval_top1"])
    assert float(g_acc) == pytest.approx(gmeta["metrics"]["eval_top1"])
    for name in ("dnn", "gdnn_L4", "snn_L4"):
        text = (run / f"{name}.json").read_text()
        assert "pickle" not in text and json.loads(text)["metadata"]["dataset"] == "mnist"


def test_find_L_picks_the_only_one_or_asks(run, tmp_path):
    assert P.find_L(run) == 4.0
    with pytest.raises(P.PipelineError, match="no gdnn"):
        P.find_L(tmp_path)
    for L in (2, 3):
        (tmp_path / f"gdnn_L{L}.safetensors").write_bytes(b"")
    with pytest.raises(P.PipelineError, match="choose one with --L"):
        P.find_L(tmp_path)
    assert P.l_tag(2.5) == "L2.5" and P.l_tag(5.0) == "L5"


@pytest.mark.filterwarnings("ignore:input normalisation folded")
def test_user_model_spec_through_the_whole_chain(tmp_path):
    source = tmp_path / "mynets.py"
    source.write_text(USER_MODEL)
    folder = tmp_path / "user"
    meta = P.train_dnn(folder, model=None, model_spec=f"{source}:small_cnn",
                       arch_kwargs={"channels": 4}, input_shape=[1, 28, 28], epochs=1, **FAST)  # fmt: skip
    assert meta["architecture"] is None and meta["model_spec"].endswith("mynets.py:small_cnn")
    with pytest.raises(P.PipelineError, match="never imports code named in a run folder"):
        P.finetune(folder, L=3.0, epochs=1, progress=False)  # the sidecar's spec is not used
    spec = f"{source}:small_cnn"
    P.finetune(folder, L=3.0, epochs=1, progress=False, model_spec=spec)
    P.convert_run(folder, model_spec=spec)
    result = P.evaluate_run(
        folder, backends=("closed_form", "clocked"), progress=False, model_spec=spec
    )
    assert result["model"].endswith("small_cnn") and result["samples"] == 64
    assert result["agreement"] == {"closed_form": 1.0, "clocked": 1.0}
    assert result["layer_names"] == ["conv1", "avgpool2", "fc3"]


def test_resume_with_other_settings_is_refused(tmp_path):
    folder = tmp_path / "r"
    P.train_dnn(folder, epochs=1, max_steps=2, **FAST)
    with pytest.raises(P.PipelineError, match="lr"):
        P.train_dnn(folder, epochs=1, lr=5e-4, resume=True, **FAST)
    with pytest.raises(P.PipelineError, match="shape"):
        P.train_dnn(tmp_path / "c", dataset="mnist", model="vgg_cifar", **FAST)


def test_finetune_with_zero_epochs_keeps_the_prepared_weights(run, tmp_path):
    import shutil

    folder = tmp_path / "zero"
    folder.mkdir()
    for name in ("dnn.safetensors", "dnn.json"):
        shutil.copy(run / name, folder / name)
    meta = P.finetune(folder, L=2.0, epochs=0, input_scale=1.0, progress=False)
    assert meta["history"] == [] and meta["completed"]
    gdnn, _ = P.load_gdnn(folder, 2.0)
    dnn, dmeta = P.load_dnn(folder)
    again = P.prepare_from(dnn, {**meta, "normalization": dmeta["normalization"]})
    for (k, a), (_, b) in zip(gdnn.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_parse_floats():
    assert P.parse_floats("1, 2,3.5", "L") == [1.0, 2.0, 3.5]
    with pytest.raises(P.PipelineError):
        P.parse_floats("1,x", "L")
    with pytest.raises(P.PipelineError):
        P.check_L(float("nan"))


def test_holdout_evaluation_scores_the_training_images_the_run_never_saw(copy_run):
    """``split="holdout"``: the training images after the run's ``train_limit`` (128),
    scored like the test set, written beside it and never over ``evaluation.json``."""
    main = copy_run / "evaluation.json"
    before = main.read_bytes() if main.exists() else None
    result = P.evaluate_run(copy_run, backends=("closed_form",), limit=40, split="holdout",
                            progress=False)  # fmt: skip
    assert result["split"] == "holdout" and result["split_first"] == 128
    assert result["samples"] == 40 and result["agreement"] == {"closed_form": 1.0}
    assert json.loads((copy_run / "evaluation_holdout_L5.json").read_text()) == result
    assert (main.read_bytes() if main.exists() else None) == before
    # the same 40 images, taken by hand from the training split, give the same DNN score
    train = load_dataset("mnist", "train")
    images, labels = train.images[128:168], train.labels[128:168]
    dnn, meta = P.load_dnn(copy_run)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in meta["normalization"].values())
    with torch.no_grad():
        hits = (dnn((to_float(images) - mean) / std).argmax(1) == torch.as_tensor(labels)).sum()
    assert result["accuracy"]["dnn"]["top1"] == pytest.approx(int(hits) / 40)
    test = P.evaluate_run(copy_run, backends=("closed_form",), progress=False)
    assert test["split"] == "test" and test["samples"] == 32  # the run's test limit


def test_holdout_is_refused_where_nothing_was_held_out(tmp_path):
    """A DNN trained on every image, or a G-DNN fine-tuned beyond the DNN's images."""
    with pytest.raises(P.PipelineError, match="nothing is held out: the DNN trained on every"):
        P._held_out_from({"train_limit": None}, {"train_limit": None})
    for tuned in (None, 200):
        with pytest.raises(P.PipelineError, match="beyond the DNN's first 128"):
            P._held_out_from({"train_limit": 128}, {"train_limit": tuned})
    assert P._held_out_from({"train_limit": 128}, {"train_limit": 64}) == 128
    from tdsnn.stages import holdout_split

    with pytest.raises(P.PipelineError, match="no training image is held out"):
        holdout_split("mnist", None, 60_000)
    with pytest.raises(P.PipelineError, match="split must be one of test, holdout"):
        P.evaluate_run(tmp_path, split="validation")
