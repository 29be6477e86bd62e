"""Smoke tests of the benchmark suite (benchmarks/): it runs and returns sane numbers.

No timing is asserted: only that the measurement functions run on a tiny network and
return positive figures and the ratio columns, and that the peer's synaptic-operation
counter counts one addition per non-zero input reaching one target.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import tdsnn

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield {
            name: importlib.import_module(name)
            for name in ("common", "throughput", "peer_spikingjelly", "sparsity_select")
        }
    finally:
        sys.path.remove(str(BENCH))


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    ).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gdnn = tdsnn.prepare(model, L=3.0, input_mean=[0.5], input_std=[0.25]).eval()
    x_raw = torch.rand(6, 1, 8, 8)
    return model, gdnn, tdsnn.convert(gdnn), x_raw, (x_raw - 0.5) / 0.25


def test_throughput_measurement_runs_on_a_tiny_network(bench):
    c, tp = bench["common"], bench["throughput"]
    model, gdnn, snn, x_raw, x_norm = _tiny()
    timing = c.TimingConfig(warmup=1, min_repeats=1, max_repeats=2, target_s=0.0)
    rows = tp.measure_throughput(model, gdnn, snn, x_raw, x_norm, batch_sizes=(1, 4),
                                 modes=c.MODES, timing=timing)
    assert [row["batch"] for row in rows] == [1, 4]
    for row in rows:
        assert set(row["modes"]) == set(c.MODES)
        assert row["latency_mean"] > 0
        assert row["clocked_vs_latency_dnn"] > 0
        assert row["modes"]["dnn"]["ratio_to_dnn"] == pytest.approx(1.0)
        for entry in row["modes"].values():
            assert entry["images_per_s"] > 0
            assert entry["median_ms"] > 0
            assert entry["ratio_to_dnn"] > 0
    results = {"networks": [{"label": "tiny", "rows": rows}]}
    summary = tp.summary_rows(results)
    assert len(summary) == 2 and len(summary[0]) == len(tp.SUMMARY_HEADERS)


def test_synaptic_event_counter_counts_nonzero_inputs_times_fanout(bench):
    peer = bench["peer_spikingjelly"]
    linear = nn.Linear(4, 3)
    with peer.SynapticEventCounter(linear) as counter:
        linear(torch.tensor([[1.0, 0.0, 2.0, 0.0]]))
    assert counter.per_layer[""] == {"events": 2 * 3, "bias": 3, "calls": 1}

    conv = nn.Conv2d(1, 1, 3, padding=1)
    with peer.SynapticEventCounter(conv) as counter:
        conv(torch.ones(2, 1, 3, 3))
    # 3x3 kernel, padding 1, on 3x3: corners reach 4 outputs, edges 6, the centre 9
    assert counter.per_layer[""]["events"] == 2 * (4 * 4 + 4 * 6 + 9)
    assert counter.per_layer[""]["bias"] == 2 * 9

    net = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2, bias=False))
    x = torch.ones(1, 1, 4, 4)
    x[0, 0, 0, 0] = 0.0
    with peer.SynapticEventCounter(net) as counter:
        net(x)
        net(torch.zeros(1, 1, 4, 4))
    assert counter.per_layer["0"]["events"] == 15  # one pooling target per input
    assert counter.per_layer["2"]["events"] == 4 * 2
    assert counter.total == 15 + 8
    assert counter.first_layer() == 15


def test_spikingjelly_peer_on_a_tiny_network(bench):
    pytest.importorskip("spikingjelly.activation_based.ann2snn")
    peer = bench["peer_spikingjelly"]
    model, _, _, _, x_norm = _tiny()
    snn = peer.convert_spikingjelly(model, [x_norm], "Max")
    y = torch.zeros(x_norm.shape[0], dtype=torch.int64)
    run = peer.run_spikingjelly(snn, x_norm, y, t_list=(2, 4), batch=3, ops_samples=3)
    assert run["T"] == [2, 4]
    assert all(0 <= a <= 100 for a in run["accuracy"])
    assert 0 < run["ops_per_image"][0] < run["ops_per_image"][1]
    assert run["wall_s_per_image"][0] <= run["wall_s_per_image"][1]


def _peer_run(accuracy, ops, first):
    return {"T": [1, 4, 8], "accuracy": accuracy, "ops_per_image": ops,
            "first_layer_ops_per_image": first, "wall_s_per_image": [0.1, 0.4, 0.8]}  # fmt: skip


def test_peer_sparse_counts_the_constant_input_once_and_matches_at_equal_accuracy(bench):
    """The peer's input layer counted once is ``total - first + first / T``; the headline
    takes, per tool and coding, the fewest events among the points within the tolerance."""
    ps = bench["peer_spikingjelly"]
    points = ps.peer_curves({"Max": _peer_run([90.0, 98.9, 99.1], [300, 1200, 2400], [100, 400, 800])})
    assert [p["events_input_once"] for p in points] == [300.0, 900.0, 1700.0]
    assert [p["events_per_step_count"] for p in points] == [300, 1200, 2400]
    ours = [
        {"coding": "paper", "lambda": 0.0, "L": 5.0, "accuracy": 99.0, "synaptic_events_per_image": 2000},
        {"coding": "sparse", "lambda": 0.0, "L": 3.0, "accuracy": 98.0, "synaptic_events_per_image": 100},
        {"coding": "sparse", "lambda": 0.0, "L": 5.0, "accuracy": 98.8, "synaptic_events_per_image": 400},
        {"coding": "sparse", "lambda": 0.3, "L": 5.0, "accuracy": 98.7, "synaptic_events_per_image": 300},
    ]  # fmt: skip
    head = ps.headline({"dnn_accuracy": 99.2, "ours": ours, "peer": points}, tolerance=0.5)
    sparse = head["ours"]["sparse"]
    assert sparse["matched"] == "within tolerance of the DNN" and sparse["level"] == 98.7
    assert sparse["theirs"]["events_per_step_count"]["T"] == 4  # 98.9 >= 98.7, fewer than T = 8
    assert sparse["point"]["lambda"] == 0.3  # 98.0 % is below the level, 400 > 300
    assert sparse["ratio_events_per_step_count"] == 1200 / 300
    assert sparse["ratio_events_input_once"] == 900 / 300
    assert head["ours"]["paper"]["ratio_events_input_once"] == 900 / 2000
    # neither tool within 0.5 % of a 99.9 % DNN: compared at the best both reach (99.0 %)
    far = ps.headline({"dnn_accuracy": 99.9, "ours": ours, "peer": points}, tolerance=0.5)
    assert far["ours"]["sparse"]["matched"] == "best accuracy both reach"
    assert far["ours"]["sparse"]["level"] == 98.8  # our sparse best; the peer reaches 99.1
    assert far["ours"]["sparse"]["point"]["synaptic_events_per_image"] == 400
    assert far["ours"]["sparse"]["theirs"]["events_per_step_count"]["T"] == 4
    assert far["ours"]["paper"]["level"] == 99.0
    assert far["ours"]["paper"]["theirs"]["events_per_step_count"]["T"] == 8

def test_run_all_steps_are_scripts_that_accept_their_arguments(bench, capsys):
    """run_all.py's steps name scripts of benchmarks/ and arguments those scripts parse."""
    run_all = importlib.import_module("run_all")
    assert run_all.main(["--dry-run"]) == 0
    assert "results_tables.py" in capsys.readouterr().out
    for name, (script, *args) in run_all.STEPS.items():
        assert (BENCH / script).exists(), name
        if script == "throughput.py":
            parsed = bench["common"].parse_args("", bench["throughput"].add_args, args)
            assert parsed.json is not None and parsed.json.parent == run_all.PERF, name
    allocator = run_all.STEPS["allocator"]
    env = allocator[allocator.index("--after-env") + 1 : allocator.index("--float32")]
    from tdsnn.process import tuned_environment

    wanted = tuned_environment({}, glibc=True)
    assert dict(item.split("=") for item in env) == {k: wanted[k] for k in wanted if k.startswith("MALLOC")}


def test_peer_settings_put_the_penalties_at_their_own_leak(bench):
    """Both codings at every L without a penalty, then each positive LAMBDA once, at the
    penalised points' L (``--sparse-leak``); a LAMBDA of 0 is not repeated."""
    ps = bench["peer_spikingjelly"]
    assert ps.settings([1.0, 5.0], [0.0, 0.7, 2.0], 8.0) == [
        ("paper", 0.0, 1.0, 1), ("paper", 0.0, 5.0, 1), ("sparse", 0.0, 1.0, 1),
        ("sparse", 0.0, 5.0, 1), ("sparse", 0.7, 8.0, 1), ("sparse", 2.0, 8.0, 1),
    ]  # fmt: skip
    assert ps.settings([3.0], [1.0])[-1] == ("sparse", 1.0, 5.0, 1)  # the default L = 5
    # earliest spike times: every penalty at each, the unpenalised points at 1 only
    assert ps.settings([3.0], [0.0, 1.0], 5.0, (1, 4)) == [
        ("paper", 0.0, 3.0, 1), ("sparse", 0.0, 3.0, 1), ("sparse", 1.0, 5.0, 1),
        ("sparse", 1.0, 5.0, 4),
    ]  # fmt: skip
    old = {"coding": "sparse", "lambda": 1.0, "L": 5.0, "epochs": 5}  # before min_time
    assert ps._key(old) == ps._key({**old, "min_time": 1}) != ps._key({**old, "min_time": 4})


def test_peer_reuses_our_points_only_for_the_same_dnn(bench, tmp_path):
    """``--reuse-ours`` keeps an earlier artefact's points of ours only where role, run
    folder, test images, DNN accuracy and (where recorded) the DNN's hash all match."""
    ps = bench["peer_spikingjelly"]
    entry = {"role": "lenet5", "run": "runs/main", "samples": 1000, "dnn_accuracy": 99.4,
             "dnn_sha256": "ab", "ours": [{"coding": "sparse"}], "settings": {"leaks": [5]}}
    source = tmp_path / "peer.json"
    source.write_text(json.dumps({"models": [entry]}))
    now = {"samples": 1000, "dnn_accuracy": 99.4, "dnn_sha256": "ab"}
    assert ps.reused_ours(source, "lenet5", Path("runs/main"), now)["ours"] == entry["ours"]
    for changed in ({"dnn_accuracy": 99.3}, {"dnn_sha256": "cd"}, {"samples": 500}):
        with pytest.raises(SystemExit, match="the DNN differs"):
            ps.reused_ours(source, "lenet5", Path("runs/main"), {**now, **changed})
    with pytest.raises(SystemExit, match="holds no vgg model"):
        ps.reused_ours(source, "vgg", Path("runs/main"), now)
    del entry["dnn_sha256"]  # an artefact from before the hash was recorded
    source.write_text(json.dumps({"models": [entry]}))
    assert ps.reused_ours(source, "lenet5", Path("runs/main"), now)["settings"] == {"leaks": [5]}


def test_peer_steps_are_dense_where_the_match_point_lies(bench):
    """Every T from 1 to 16 (T = 4 included) is read, so the peer's match point is its
    smallest T that gets there, not the next power of two; and the grid reaches 256."""
    grid = bench["peer_spikingjelly"].PEER_T
    assert set(range(1, 17)) <= set(grid) and max(grid) == 256
    assert list(grid) == sorted(set(grid))


def test_engine_comparisons_set_the_allocator_only_where_asked(bench, monkeypatch):
    """A tuned shell must not tune both sides of ``compare_engines.py --after-env``: the
    children drop glibc's allocator variables and get only their own ``--*-env``."""
    compare = importlib.import_module("compare_engines")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    kept = compare._inherited()
    assert "MALLOC_TRIM_THRESHOLD_" not in kept and "GLIBC_TUNABLES" not in kept
    assert kept["OMP_WAIT_POLICY"] == "PASSIVE"
    parser = argparse.ArgumentParser()
    assert compare._assignments(parser, ["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}
    with pytest.raises(SystemExit):
        compare._assignments(parser, ["novalue"])


def _held_row(lam: float, err_pct: float, spikes: float, events: float) -> dict:
    return {"lambda": lam, "snn_top1": 1 - err_pct / 100, "spikes_per_neuron": spikes,
            "events_per_mac": events, "synaptic_events_per_image": events * 1e6}  # fmt: skip


def test_the_selection_rule_takes_the_sparsest_setting_that_meets_the_targets(bench):
    choose = bench["sparsity_select"].choose
    rows = [_held_row(0.1, 0.70, 0.28, 0.29), _held_row(0.2, 0.80, 0.25, 0.26),
            _held_row(0.3, 0.81, 0.20, 0.20), _held_row(0.4, 0.50, 0.31, 0.25)]  # fmt: skip
    assert choose(rows)["lambda"] == 0.2  # 0.80 % meets the 0.8 % target; 0.81 % does not
    rows = [_held_row(0.1, 0.90, 0.28, 0.31), _held_row(0.2, 0.85, 0.25, 0.32),
            _held_row(0.3, 0.85, 0.20, 0.25)]  # fmt: skip
    assert choose(rows)["lambda"] == 0.3  # none meets them: lowest error, then fewer events
    rows = [_held_row(0.1, 0.70, 0.28, 0.29), _held_row(0.2, 0.60, 0.25, 0.28),
            _held_row(0.3, 0.79, 0.20, 0.20), _held_row(0.4, 0.50, 0.31, 0.25)]  # fmt: skip
    assert choose(rows, rule="accurate")["lambda"] == 0.2  # 0.4 is more accurate, but fails
    assert choose(rows)["lambda"] == 0.3
    with pytest.raises(ValueError, match="rule"):
        choose(rows, rule="best")


def test_sparsity_select_reads_the_test_set_once_for_the_chosen_setting(bench, tmp_path):
    out = tmp_path / "select.json"
    argv = ["--out", tmp_path / "runs", "--train-images", 300, "--holdout", 100, "--lambdas",
            "0.1,0.2", "--epochs", 1, "--dnn-epochs", 1, "--test-limit", 50, "--quiet",
            "--json", out]  # fmt: skip
    assert bench["sparsity_select"].main([str(a) for a in argv]) == 0
    data = json.loads(out.read_text())
    assert data["held_out"] == {"first": 200, "count": 100} and data["trained_on"] == 200
    assert [(r["lambda"], r["samples"]) for r in data["holdout"]] == [(0.1, 100), (0.2, 100)]
    assert data["chosen_lambda"] in (0.1, 0.2) and data["test"]["samples"] == 50
    assert data["test"]["agreement"] == data["test"]["agreement_clocked"] == 1.0
    runs = tmp_path / "runs"
    tested = [p.parent.name for p in runs.glob("lambda_*/evaluation.json")]
    assert tested == [f"lambda_{data['chosen_lambda']:g}"]  # the others never saw the test set


def test_sparsity_select_reuses_a_checked_dnn_and_distils(bench, tmp_path):
    select = bench["sparsity_select"]
    base = ["--train-images", 300, "--holdout", 100, "--lambdas", "0.1", "--epochs", 1,
            "--dnn-epochs", 1, "--test-limit", 50, "--quiet", "--test-backends", "closed_form"]  # fmt: skip
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert select.main([str(a) for a in ["--out", tmp_path / "a", *base, "--json", first]]) == 0
    dnn = tmp_path / "a" / "dnn"
    argv = ["--out", tmp_path / "b", *base, "--dnn", dnn, "--distill", 0.5, "--json", second]
    assert select.main([str(a) for a in argv]) == 0
    assert not (tmp_path / "b" / "dnn").exists()  # not trained again
    data = json.loads(second.read_text())
    assert data["distill"] == 0.5 and json.loads(first.read_text())["distill"] == 0.0
    recipe = json.loads((tmp_path / "b" / "lambda_0.1" / "gdnn_L5.json").read_text())
    assert recipe["metadata"]["finetune"]["distill"] == 0.5
    # resumed with one more LAMBDA: the scored setting is reused, the new one fine-tuned
    more = [str(a) for a in argv + ["--resume"]]
    more[more.index("0.1")] = "0.1,0.2"
    assert select.main(more) == 0
    rows = json.loads(second.read_text())["holdout"]
    assert [(r["lambda"], r.get("reused", False)) for r in rows] == [(0.1, True), (0.2, False)]
    assert rows[0]["snn_top1"] == data["holdout"][0]["snn_top1"]
    # a grid of earliest spike times: every LAMBDA at each k, the scored ones reused
    grid = [str(a) for a in argv + ["--resume", "--min-time", "1,2"]]
    assert select.main(grid) == 0
    data = json.loads(second.read_text())
    got = [(r["lambda"], r.get("min_time", 1), r.get("reused", False)) for r in data["holdout"]]
    assert got == [(0.1, 1, True), (0.1, 2, False)] and data["min_times"] == [1, 2]
    chosen = select.choose(data["holdout"])
    assert (data["chosen_lambda"], data["chosen_min_time"]) == (0.1, chosen.get("min_time", 1))
    recipe = json.loads((tmp_path / "b" / "lambda_0.1_t2" / "gdnn_L5.json").read_text())
    assert recipe["metadata"]["finetune"]["min_time"] == 2
    tested = {p.parent.name for p in (tmp_path / "b").glob("lambda_*/evaluation.json")}
    assert {select._folder(0.1, data["chosen_min_time"])} <= tested
    for bad in ("0", "2,2", "x"):
        with pytest.raises(SystemExit):
            select.main([str(a) for a in argv] + ["--min-time", bad])
    # a DNN trained otherwise is refused
    wrong = [str(a) for a in ["--out", tmp_path / "c", *base, "--dnn", dnn, "--seed", 1]]
    with pytest.raises(SystemExit, match="seed"):
        select.main(wrong)


def test_peer_measures_our_points_and_adds_earliest_spike_times_to_an_artefact(
    bench, tiny_run, tmp_path, monkeypatch
):
    """Our side of the peer script end to end on a tiny run (the peer itself needs
    SpikingJelly, absent here): the penalised points at each ``--min-times``; then
    ``--reuse-ours --more-ours`` keeps the measured points and adds only the new settings."""
    ps = bench["peer_spikingjelly"]
    monkeypatch.setattr(ps, "spikingjelly_available", lambda: False)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    base = ["--run", f"lenet5={tiny_run}", "--samples", "16", "--leaks", "5", "--lambdas", "0.5",
            "--train-limit", "64", "--quiet", "--plot", str(tmp_path / "peer.png")]  # fmt: skip
    assert ps.main([*base, "--min-times", "1", "3", "--json", str(first)]) == 0
    ours = json.loads(first.read_text())["models"][0]["ours"]
    assert [(p["coding"], p["lambda"], p["min_time"]) for p in ours] == [
        ("paper", 0.0, 1), ("sparse", 0.0, 1), ("sparse", 0.5, 1), ("sparse", 0.5, 3)]
    assert all(p["agreement"] == 1.0 for p in ours)
    argv = [*base, "--min-times", "3", "4", "--reuse-ours", str(first), "--more-ours",
            "--json", str(second)]  # fmt: skip
    assert ps.main(argv) == 0
    model = json.loads(second.read_text())["models"][0]
    again = [(p["lambda"], p["min_time"]) for p in model["ours"]]
    assert again == [(0.0, 1), (0.0, 1), (0.5, 1), (0.5, 3), (0.5, 4)]
    assert model["ours"][:4] == ours and model["ours_from"] == str(first)
