"""Spike plots, inspect table and report of graph SNNs (residual networks).

A tiny residual network (conv -> ReLU -> conv, plus an identity or a 1x1 projection
shortcut from the input, -> ReLU -> global average pool -> fc) is prepared, converted
and run; the raster must place every population at its release
(``result.extras["release"]``), draw the shortcut arrows with their delays
(``result.extras["delays"]``) for graphs only, and follow the coding in its legend.
"""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.text import Annotation
from torch import nn

import tdsnn
from tdsnn.evaluation import describe_graph, evaluate, format_table
from tdsnn.jobs import population_lines
from tdsnn.plots import (
    DPI,
    global_spike_times,
    layer_offsets,
    plot_spike_histograms,
    plot_spike_raster,
    raster_figure,
    raster_layout,
)
from tdsnn.report import format_evaluation_table, graph_summary, render_markdown, write_report

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_evaluation  # noqa: E402


class TinyResidual(nn.Module):
    """``fc(flatten(pool(relu(c2(relu(c1(x))) + shortcut(x)))))``."""

    def __init__(self, projection: bool = False) -> None:
        super().__init__()
        inner = 3 if projection else 2
        self.c1 = nn.Conv2d(2, inner, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(inner, inner, 3, padding=1)
        self.r2 = nn.ReLU()
        self.proj = nn.Conv2d(2, inner, 1) if projection else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inner, 4)

    def forward(self, x):
        s = x if self.proj is None else self.proj(x)
        return self.fc(torch.flatten(self.pool(self.r2(self.c2(self.r1(self.c1(x))) + s)), 1))


def _snn(model: nn.Module, coding: str = "paper", calibration=None):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gdnn = tdsnn.prepare(model, 5.0, coding=coding)
    return gdnn, tdsnn.convert(gdnn, calibration)


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(5)
    model = TinyResidual()
    gdnn, snn = _snn(model)
    x = torch.rand(3, 2, 6, 6) * 3
    return model, gdnn, snn, snn.run(x, backend="closed_form")


@pytest.fixture(scope="module")
def chain():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    _, snn = _snn(model)
    return snn, snn.run(torch.rand(2, 2, 6, 6) * 3)


def _artists(fig, prefix: str) -> dict:
    ax = fig.axes[0]
    found = {}
    for artist in [*ax.collections, *ax.texts, *ax.get_children()]:
        gid = artist.get_gid()
        if gid and gid.startswith(prefix):
            found[gid] = artist
    return found


def _dash_centres(collection: LineCollection) -> np.ndarray:
    """The x centre of every spike dash of a LineCollection."""
    return np.array(sorted((seg[0][0] + seg[1][0]) / 2 for seg in collection.get_segments()))


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_the_tiny_model_is_a_graph(graph):
    _, _, snn, result = graph
    assert not snn.is_chain
    assert result.layer_names == ["input", "c1", "c2", "pool"]
    description = describe_graph(snn)
    assert description["shortcuts"] == [{"into": "c2", "from": ["input"], "branch": 1, "kind": "identity",
                                         "synapse": "identity", "name": description["shortcuts"][0]["name"]}]
    assert [p["name"] for p in description["populations"]] == ["input", "c1", "c2", "pool", "fc"]


def test_raster_places_spikes_at_release_plus_local_time(graph):
    _, _, snn, result = graph
    # move c2's frame by +3 steps in the releases only: the plot must follow them, not T_il
    moved = copy.copy(result)
    moved.extras = dict(result.extras)
    moved.extras["release"] = [r.clone() for r in result.extras["release"]]
    moved.extras["release"][2] += 3
    for res in (result, moved):
        for i in range(3):
            releases = [int(r[i]) for r in res.extras["release"]]
            assert layer_offsets(res, i) == releases
            layout = raster_layout(res, i, snn)
            fig = raster_figure(res, i, snn)
            for k, band in enumerate(layout["bands"]):
                local = res.spike_times[k][i].flatten().to(torch.int64).numpy()
                expected = np.sort(local[local >= 0] + releases[k]).astype(float)
                assert band["release"] == releases[k]
                assert np.array_equal(np.sort(band["x"]), expected)
                drawn = np.concatenate([
                    _dash_centres(_artists(fig, f"spikes:{band['name']}")[f"spikes:{band['name']}"]),
                    _dash_centres(_artists(fig, f"zero:{band['name']}")[f"zero:{band['name']}"]),
                ])  # fmt: skip
                assert np.allclose(np.sort(drawn), expected)
            assert torch.equal(global_spike_times(res, i)[2],
                               res.spike_times[2][i].to(torch.int64) + releases[2])
    # the moved population's spikes really moved
    a = raster_layout(result, 0, snn)["bands"][2]["x"]
    b = raster_layout(moved, 0, snn)["bands"][2]["x"]
    assert np.array_equal(np.sort(b), np.sort(a) + 3)


def test_periods_end_at_the_groups_releases(graph):
    _, _, snn, result = graph
    layout = raster_layout(result, 1, snn)
    ends = [p["end"] for p in layout["periods"]]
    releases = [int(r[1]) for r in result.extras["release"]]
    assert ends == [releases[1], releases[2], releases[3], int(result.latency[1])]
    assert [p["t_il"] for p in layout["periods"]] == [int(t) for t in result.t_il[1]]


def test_shortcut_arrows_with_delays_for_graphs(graph, tmp_path):
    _, _, snn, result = graph
    for i in range(3):
        delay = int(result.extras["delays"]["c2"][i, 1])
        layout = raster_layout(result, i, snn)
        assert len(layout["shortcuts"]) == 1
        arrow = layout["shortcuts"][0]
        assert (arrow["from"], arrow["into"], arrow["kind"], arrow["delay"]) == ("input", "c2", "identity", delay)
        bands = {b["name"]: b for b in layout["bands"]}
        assert arrow["x0"] == bands["input"]["release"] and arrow["x1"] == bands["input"]["release"] + delay
        assert bands["c2"]["y0"] <= arrow["y1"] <= bands["c2"]["y1"]
        # the receiving group's inhibitory period starts where the arrow ends
        c2 = next(p for p in layout["periods"] if p["name"] == "c2")
        assert c2["end"] - c2["t_il"] == arrow["x1"]
        fig = raster_figure(result, i, snn)
        arrows = _artists(fig, "shortcut:")
        assert list(arrows) == ["shortcut:input->c2"] and isinstance(arrows["shortcut:input->c2"], Annotation)
        assert _artists(fig, "delay:")["delay:input->c2"].get_text() == f"d={delay}"
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert labels[0].startswith("input \u25b2") and "\u25b2" not in "".join(labels[1:])
        assert any("identity shortcut" in t for t in _legend_texts(fig))
    # without the snn: the graph from result.extras (what tdsnn inspect hands over)
    given = copy.copy(result)
    given.extras = {**result.extras, "graph": describe_graph(snn)}
    assert raster_layout(given, 0)["shortcuts"] == raster_layout(result, 0, snn)["shortcuts"]
    assert raster_layout(result, 0)["shortcuts"] == []  # no graph known: nothing guessed
    path = plot_spike_raster(result, 0, tmp_path / "graph.png", snn)
    assert mpimg.imread(path).shape == (7 * DPI, 10 * DPI, 4)


def test_projection_shortcut_is_dashed_and_named(tmp_path):
    torch.manual_seed(7)
    _, snn = _snn(TinyResidual(projection=True))
    result = snn.run(torch.rand(2, 2, 6, 6) * 3)
    layout = raster_layout(result, 0, snn)
    assert [a["kind"] for a in layout["shortcuts"]] == ["projection"]
    fig = raster_figure(result, 0, snn)
    assert any(t.startswith("projection shortcut") for t in _legend_texts(fig))
    assert describe_graph(snn)["shortcuts"][0]["synapse"] == "conv"


def test_no_shortcut_annotations_for_chains(chain):
    snn, result = chain
    assert snn.is_chain
    for given in (snn, None):
        layout = raster_layout(result, 0, given)
        assert layout["shortcuts"] == [] and all(not b["feeds"] for b in layout["bands"])
        fig = raster_figure(result, 0, given)
        assert _artists(fig, "shortcut:") == {} and _artists(fig, "delay:") == {}
        assert "\u25b2" not in "".join(t.get_text() for t in fig.axes[0].get_yticklabels())
        assert not any("shortcut" in t for t in _legend_texts(fig))
        assert "graph" not in fig.axes[0].get_title()


def test_legend_follows_the_coding(chain):
    snn, result = chain
    assert "fires at local time 0 (value 0)" in _legend_texts(raster_figure(result, 0, snn))
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    _, sparse = _snn(model, coding="sparse")
    x = torch.rand(2, 2, 6, 6) * 3
    x[:, :, :3] = 0  # black pixels: silent in sparse coding
    res = sparse.run(x)
    assert int((res.spike_times[0] < 0).sum()) > 0
    for given in (sparse, None):  # the coding from the snn, or inferred from silent neurons
        fig = raster_figure(res, 0, given)
        texts = _legend_texts(fig)
        assert not any("local time 0" in t for t in texts)
        assert "silent neurons (value 0) are not drawn" in texts
        for band in raster_layout(res, 0, given)["bands"]:
            assert not band["zero"].any()
            assert len(_artists(fig, f"zero:{band['name']}")[f"zero:{band['name']}"].get_segments()) == 0
        assert "silent (not drawn)" in fig.axes[0].get_title()


def test_twenty_population_title_and_labels_stay_short(tmp_path):
    """A deep chain of 20 hidden layers: a short title and non-overlapping T_il labels."""
    torch.manual_seed(9)
    layers = []
    for _ in range(20):
        layers += [nn.Conv2d(1, 1, 3, padding=1), nn.ReLU()]
    layers += [nn.Flatten(), nn.Linear(48 * 48, 3)]
    _, snn = _snn(nn.Sequential(*layers))
    result = snn.run(torch.rand(1, 1, 48, 48) * 3)
    assert len(result.layer_names) == 21 and result.spike_times[1][0].numel() > 2000
    fig = raster_figure(result, 0, snn)
    title = fig.axes[0].get_title()
    assert title.count("\n") <= 2 and "evenly subsampled" in title and "/" not in title
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = sorted((t.get_window_extent(renderer) for t in _artists(fig, "t_il:").values()), key=lambda b: b.x0)
    assert boxes and all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:], strict=False))


def test_histograms_of_a_graph(graph, tmp_path):
    _, _, snn, result = graph
    path = plot_spike_histograms(result, 0, tmp_path / "hist.png", snn)
    assert mpimg.imread(path).ndim == 3
    from tdsnn.plots.layout import frame_periods
    from tdsnn.plots.raster import _bounds

    offsets = layer_offsets(result, 0)
    g = describe_graph(snn)
    bounds = _bounds(result, 0, g, offsets, frame_periods(result, 0, g, offsets))
    t = [int(v) for v in result.t_il[0]]
    # the input is read first by c1 (its T_il), c1 by c2, c2 by the pool, the pool by fc
    assert [b for b, _ in bounds] == t
    assert bounds[0][1] == f"$T_{{il}}$ of c1 = {t[0]}"


def test_inspect_table_lists_sources_and_delays(graph):
    _, _, snn, result = graph
    res = copy.copy(result)
    res.extras = {**result.extras, "graph": describe_graph(snn), "label": 2}
    lines = population_lines(res, 1)
    assert lines[0].startswith("SNN: a graph of 5 populations") and "1 shortcut connection" in lines[0]
    delay = int(result.extras["delays"]["c2"][1, 1])
    c2 = next(line for line in lines if " c2 " in line)
    assert f"c1, input (shortcut, identity, delay {delay})" in c2
    assert str(int(result.extras["release"][2][1])) in c2
    assert any("fc (output)" in line and str(int(result.latency[1])) in line for line in lines)


# --------------------------------------------------------------------------- report


def _evaluate(model, gdnn, snn):
    torch.manual_seed(10)
    images = torch.rand(6, 2, 6, 6)
    labels = torch.randint(0, 4, (6,))
    return evaluate(model, gdnn, snn, (images, labels), backends=("closed_form",), batch_size=4,
                    progress=False, model_name="tiny_residual", dataset_name="toy")  # fmt: skip


@pytest.mark.parametrize("static", [False, True])
def test_report_of_a_graph_snn(graph, tmp_path, static):
    model, gdnn, snn, _ = graph
    if static:
        _, snn = _snn(model, calibration=torch.rand(8, 2, 6, 6))
    evaluation = _evaluate(model, gdnn, snn)
    g = evaluation["graph"]
    assert g["is_chain"] is False and len(g["populations"]) == 5
    (shortcut,) = g["shortcuts"]
    assert (shortcut["into"], shortcut["from"], shortcut["kind"]) == ("c2", ["input"], "identity")
    delay = shortcut["delay"]
    assert delay["min"] <= delay["mean"] <= delay["max"]
    if static:
        fixed = snn.connection_delays()["c2"][1]
        assert delay == {"min": fixed, "max": fixed, "mean": float(fixed)}
    summary = graph_summary(evaluation)
    assert summary == {"is_chain": False, "populations": 5, "shortcuts": 1, "identity": 1, "projection": 0,
                       "concatenations": 0, "delay_min": delay["min"], "delay_max": delay["max"],
                       "delays": "fixed" if static else "per sample"}  # fmt: skip
    md = render_markdown(evaluation)
    assert "## Network graph" in md
    assert "5 populations (input and output group included), 1 shortcut connection (1 identity, 0 projection)" in md
    span = str(delay["min"]) if delay["min"] == delay["max"] else f"{delay['min']}–{delay['max']}"
    row = f"| input | c2 | identity | {span} ({'fixed' if static else 'mean'}"
    assert row in md
    assert "| 2 | c2 | c1, input (shortcut) |" in md and "| 4 | fc (output) | pool |" in md
    assert ("fixed per connection" in md) == static
    assert "none for this model/dataset" in md and "paper err." not in md
    printed = format_table(evaluation)
    assert "graph SNN: 5 populations" in printed
    assert ("delays fixed" in printed) == static
    assert "graph SNN" in format_evaluation_table(evaluation)
    paths = write_report(tmp_path, evaluation)
    data = json.loads(paths[1].read_text())
    assert data["graph"] == summary and data["evaluation"]["graph"]["shortcuts"][0]["kind"] == "identity"
    assert data["paper"] is None and data["paper_comparison"]["applies"] is False


def test_report_of_a_chain_has_no_graph_section(chain):
    evaluation = make_evaluation()
    evaluation["graph"] = {"is_chain": True, "populations": [{"name": n, "reads": []} for n in "abcdefg"],
                           "shortcuts": [], "joins": []}  # fmt: skip
    md = render_markdown(evaluation)
    assert "## Network graph" not in md and "| network | chain of 7 populations" in md
    assert graph_summary(evaluation)["delays"] is None
