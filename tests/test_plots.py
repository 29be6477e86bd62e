import copy
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from torch import nn

import tdsnn
from tdsnn.plots import (
    DPI,
    MAX_RASTER_NEURONS,
    global_spike_times,
    inspect_sample,
    layer_offsets,
    plot_spike_histograms,
    plot_spike_raster,
    plot_sweep_accuracy,
    plot_sweep_ops,
)
from tdsnn.plots.layout import _subsample

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_evaluation, make_sweep  # noqa: E402


def _run(model, x, L=3.0, backend="closed_form", **convert_kwargs):
    torch.manual_seed(0)
    snn = tdsnn.convert(tdsnn.prepare(model, L=L), **convert_kwargs)
    return snn.run(x, backend=backend)


@pytest.fixture(scope="module")
def tiny_result():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
    return _run(model, torch.rand(3, 1, 8, 8))


@pytest.fixture(scope="module")
def deep_result():
    """Two hidden synapse layers, so that offsets accumulate more than one T_il."""
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5),
    )  # fmt: skip
    return _run(model, torch.rand(4, 1, 8, 8) * 3, L=4.0, backend="clocked")


def _png_shape(path, width_in, height_in):
    image = mpimg.imread(path)
    assert image.shape == (round(height_in * DPI), round(width_in * DPI), 4)
    assert np.ptp(image[..., :3]) > 0.5  # something drawn, not a blank canvas
    return image


def test_global_times_offsets_are_cumulative_t_il(tiny_result, deep_result):
    assert tiny_result.layer_names == ["input", "conv1", "pool1"]
    for i in range(3):
        t0 = int(tiny_result.t_il[i, 0])
        assert layer_offsets(tiny_result, i) == [0, t0, t0]
    r = deep_result
    assert r.layer_names == ["input", "conv1", "pool1", "conv2"]
    for i in range(4):
        t = [int(v) for v in r.t_il[i]]
        assert layer_offsets(r, i) == [0, t[0], t[0], t[0] + t[1]]
        glob = global_spike_times(r, i)
        for local, g, off in zip(r.spike_times, glob, layer_offsets(r, i), strict=True):
            assert g.dtype == torch.int64 and g.shape == local.shape[1:]
            assert torch.equal(g, local[i].to(torch.int64) + off)
        # each layer fires inside its own period: between its offset and the next boundary
        bounds = np.cumsum(t)
        assert int(glob[0].max()) <= bounds[0]
        assert bounds[0] <= int(glob[1].min()) and int(glob[1].max()) <= bounds[1]
        assert bounds[1] <= int(glob[3].min()) and int(glob[3].max()) <= bounds[2]
        assert int(r.latency[i]) == bounds[-1]
    assert torch.equal(global_spike_times(r, -1)[3], global_spike_times(r, 3)[3])


def test_static_t_il_offsets():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4))
    result = _run(model, torch.rand(2, 1, 8, 8), L=3.0, t_il=[5, 6])
    assert layer_offsets(result, 1) == [0, 5]


def test_index_out_of_range(tiny_result, tmp_path):
    with pytest.raises(IndexError):
        global_spike_times(tiny_result, 3)
    with pytest.raises(IndexError):
        plot_spike_raster(tiny_result, -4, tmp_path / "r.png")


def test_raster_and_histograms(tiny_result, deep_result, tmp_path):
    path = plot_spike_raster(tiny_result, 1, tmp_path / "raster.png")
    _png_shape(path, 10, 7)
    path = plot_spike_histograms(tiny_result, 1, tmp_path / "hist.png")
    _png_shape(path, 12, 3)  # three layers: one row of three panels
    path = plot_spike_histograms(deep_result, 0, tmp_path / "hist4.png")
    _png_shape(path, 12, 6)  # four layers: two rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist.png", "hist4.png", "raster.png"]


def test_inspect_sample(deep_result, tmp_path):
    paths = inspect_sample(deep_result, 2, tmp_path / "inspect")
    assert [p.name for p in paths] == ["raster_2.png", "histograms_2.png"]
    for p in paths:
        assert mpimg.imread(p).ndim == 3


def test_raster_subsamples_big_layers(tmp_path):
    keep = _subsample(5000)
    assert len(keep) == MAX_RASTER_NEURONS and keep[0] == 0 and keep[-1] == 4999
    assert np.all(np.diff(keep) > 0) and np.ptp(np.diff(keep)) <= 1  # evenly spaced
    assert np.array_equal(_subsample(10), np.arange(10))
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 18 * 18, 3))
    result = _run(model, torch.rand(1, 1, 20, 20))
    assert result.spike_times[1][0].numel() > MAX_RASTER_NEURONS
    _png_shape(plot_spike_raster(result, 0, tmp_path / "big.png"), 10, 7)


def test_sweep_plots(tmp_path):
    sweep = make_sweep()
    _png_shape(plot_sweep_accuracy(sweep, tmp_path / "acc.png"), 10, 5.5)
    for convention in ("presentation", "own", "hardware"):
        _png_shape(plot_sweep_ops(sweep, tmp_path / f"ops_{convention}.png", convention), 10, 5.5)
    # ImageNet with top-5 and Figure 5 points; a model without paper figures
    _png_shape(plot_sweep_accuracy(make_sweep(model="alexnet", dataset="imagenet"), tmp_path / "a.png"), 10, 5.5)
    _png_shape(plot_sweep_ops(make_sweep(model="alexnet", dataset="imagenet"), tmp_path / "o.png"), 10, 5.5)
    _png_shape(plot_sweep_accuracy(make_sweep(model="vgg_cifar", dataset="cifar10"), tmp_path / "c.png"), 10, 5.5)
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".png"]


def test_sweep_plots_with_missing_keys(tmp_path):
    sweep = []
    for e in make_sweep():
        e = copy.deepcopy(e)
        del e["accuracy"]["snn"]["clocked"], e["agreement"]["clocked"]
        for entry in e["accuracy"].values():
            entry.pop("top5", None)
        del e["ops"]["ratios"], e["energy_pj"]
        sweep.append(e)
    _png_shape(plot_sweep_accuracy(sweep, tmp_path / "acc.png"), 10, 5.5)
    _png_shape(plot_sweep_ops(sweep, tmp_path / "ops.png"), 10, 5.5)
    _png_shape(plot_sweep_ops([make_evaluation()], tmp_path / "one.png", "own"), 10, 5.5)
    with pytest.raises(ValueError, match="empty"):
        plot_sweep_accuracy([], tmp_path / "none.png")


def test_no_pyplot_figures_left_open(tiny_result, tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    inspect_sample(tiny_result, 0, tmp_path)
    plot_sweep_ops(make_sweep(), tmp_path / "ops.png")
    assert plt.get_fignums() == before
