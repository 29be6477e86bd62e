"""Regenerate the sparse-coding, Table 2 and ResNet tables of docs/results.md and the
README's speed table from their committed artefacts.

    python benchmarks/results_tables.py            # rewrite the tables between the markers
    python benchmarks/results_tables.py --check    # exit 1 if the document differs

Artefacts: ``docs/results/sparse_lenet/evaluation.json`` (the ``tdsnn run`` in sparse
coding; its ``report.json`` beside it) and ``docs/performance/sparsity_tradeoff.json``
(``benchmarks/sparsity_tradeoff.py``: the paper coding and sparse coding at several
LAMBDA from one DNN).  tests/test_results_doc.py keeps the document and the artefacts
in step.  ResNet-20: ``docs/results/resnet20/`` (``benchmarks/resnet20_cifar.sh``:
``evaluation.json`` closed_form on every test image, ``evaluation_clocked.json`` the
clocked simulator on the first images, ``evaluation_static.json`` static T_il, and the
run's ``report.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results.md"
RUN = ROOT / "docs" / "results" / "sparse_lenet" / "evaluation.json"
TRADEOFF = ROOT / "docs" / "performance" / "sparsity_tradeoff.json"
BEGIN, END = "<!-- sparse:begin -->", "<!-- sparse:end -->"
RESNET = ROOT / "docs" / "results" / "resnet20"
THROUGHPUT = ROOT / "docs" / "performance" / "throughput.json"
README = ROOT / "README.md"
SPEED_MARKS = ("<!-- speed:begin -->", "<!-- speed:end -->")
SHORT_LABELS = {"lenet5": "LeNet-5", "vgg": "VGG-11-style", "alexnet": "AlexNet-style",
                "resnet20": "ResNet-20"}  # fmt: skip
RESNET_MARKS = ("<!-- resnet:begin -->", "<!-- resnet:end -->")
PAPER_TABLE2 = {"snn_err": 0.92, "dnn_mult": 2239e3, "dnn_add": 2235e3,
                "snn_mult": 1920e3, "snn_add": 3194e3}  # Zhang et al. 2019, Table 2 (L = 5)
MAIN = ROOT / "docs" / "results" / "main" / "evaluation.json"
TABLE2_MARKS = ("<!-- table2:begin -->", "<!-- table2:end -->")
SWEEP = ROOT / "docs" / "results" / "main" / "sweep.json"
SWEEP_MARKS = ("<!-- sweep:begin -->", "<!-- sweep:end -->")
ALEXNET_SWEEP = ROOT / "docs" / "results" / "cifar_alexnet" / "sweep.json"
ALEXNET_MARKS = ("<!-- alexnet-sweep:begin -->", "<!-- alexnet-sweep:end -->")
SPARSE_RUNS = ROOT / "docs" / "results" / "sparse_lenet" / "runs.json"
TRADEOFF_E5 = ROOT / "docs" / "performance" / "sparsity_tradeoff_e5.json"
SPARSE_RUNS_MARKS = ("<!-- sparse-runs:begin -->", "<!-- sparse-runs:end -->")
MIN_TIME_RUNS = ROOT / "docs" / "results" / "sparse_lenet_min_time" / "runs.json"
MIN_TIME_MARKS = ("<!-- min-time:begin -->", "<!-- min-time:end -->")
SELECT_K3 = ROOT / "docs" / "performance" / "sparsity_select_k3.json"
SELECT_K3_MARKS = ("<!-- sparse-select-k3:begin -->", "<!-- sparse-select-k3:end -->")
SELECT = ROOT / "docs" / "performance" / "sparsity_select.json"  # benchmarks/sparsity_select.py
SELECT_MARKS = ("<!-- sparse-select:begin -->", "<!-- sparse-select:end -->")
SELECT_VGG05 = ROOT / "docs" / "performance" / "sparsity_select_vgg05.json"
SELECT_VGG05_MARKS = ("<!-- vgg05-select:begin -->", "<!-- vgg05-select:end -->")
SELECT_VGG05_DISTILL = ROOT / "docs" / "performance" / "sparsity_select_vgg05_distill.json"
SELECT_VGG05_DISTILL_MARKS = ("<!-- vgg05-select-distill:begin -->",
                              "<!-- vgg05-select-distill:end -->")  # fmt: skip
SELECT_VGG05_MIN_TIME = ROOT / "docs" / "performance" / "sparsity_select_vgg05_min_time.json"
SELECT_VGG05_MIN_TIME_RUNS = ROOT / "docs" / "results" / "vgg05_select_min_time"
SELECT_VGG05_MIN_TIME_MARKS = ("<!-- vgg05-select-min-time:begin -->",
                               "<!-- vgg05-select-min-time:end -->")  # fmt: skip
VGG_TRADEOFF = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg.json"
VGG_TRADEOFF_E4 = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg_e4.json"
# L = 8, 4 fine-tuning epochs: LAMBDA 1 and 3, then 1.5 and 2 (two runs of the script)
VGG_L8_E4 = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg_L8_e4.json"
VGG_L8_E4B = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg_L8_e4b.json"
VGG_L8_E8 = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg_L8_e8.json"  # LAMBDA 1.5
VGG_TRADEOFFS = (VGG_TRADEOFF, VGG_TRADEOFF_E4, VGG_L8_E4, VGG_L8_E4B, VGG_L8_E8)
# The same architecture at width 0.5 (its own DNN, runs/cifar_vgg_w05), L = 8, 4 epochs.
VGG05_L8_E4 = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg05_L8_e4.json"  # 1, 1.5
VGG05_L8_E4B = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg05_L8_e4b.json"  # 0.8
VGG05_TRADEOFFS = (VGG05_L8_E4, VGG05_L8_E4B)
# A `tdsnn run` of that recipe at LAMBDA = 0.8 (its own DNN), and the trade-off script on
# the run's DNN for the paper coding beside it.
VGG05_RUN = ROOT / "docs" / "results" / "vgg05_sparse" / "evaluation.json"
VGG05_RUN_TRADEOFF = ROOT / "docs" / "performance" / "sparsity_tradeoff_vgg05_run.json"
VGG05_RUN_MARKS = ("<!-- vgg05-run:begin -->", "<!-- vgg05-run:end -->")
INPUT_SCALE = ROOT / "docs" / "performance" / "input_scale.json"
INPUT_SCALE_MARKS = ("<!-- input-scale:begin -->", "<!-- input-scale:end -->")
VGG_SPARSE_MARKS = ("<!-- vgg-sparse:begin -->", "<!-- vgg-sparse:end -->")
VGG05_SPARSE_MARKS = ("<!-- vgg05-sparse:begin -->", "<!-- vgg05-sparse:end -->")
PERFORMANCE = ROOT / "docs" / "performance.md"
CERTIFIED_MARKS = ("<!-- certified-speed:begin -->", "<!-- certified-speed:end -->")
CONTENTION = ROOT / "docs" / "performance" / "contention.json"
CONTENTION_MARKS = ("<!-- contention:begin -->", "<!-- contention:end -->")
# The wait policies on an idle and on a busy machine (benchmarks/contention.py --idle,
# --policies): each artefact a list of runs, one per policy.
WAIT_POLICY_RUNS = [ROOT / "docs" / "performance" / name for name in (
    "contention_idle.json", "contention_idle_spin.json", "contention_busy_spin.json")]  # fmt: skip
WAIT_POLICY_MARKS = ("<!-- wait-policy:begin -->", "<!-- wait-policy:end -->")
SPOT_CHECK = ROOT / "docs" / "performance" / "spot_check.json"
SPOT_MARKS = ("<!-- spot-check:begin -->", "<!-- spot-check:end -->")
SCALING = ROOT / "docs" / "performance" / "scaling.json"
SCALING_MARKS = ("<!-- scaling:begin -->", "<!-- scaling:end -->")
PROFILE = ROOT / "docs" / "performance" / "profile.json"
PROFILE_MARKS = ("<!-- profile:begin -->", "<!-- profile:end -->")
PEER_SPARSE = ROOT / "docs" / "performance" / "peer.json"
PEER_MARKS = ("<!-- peer-sparse:begin -->", "<!-- peer-sparse:end -->")
ENGINE_AB = ROOT / "docs" / "performance" / "engine_ab.json"
ENGINE_AB_MARKS = ("<!-- engine-ab:begin -->", "<!-- engine-ab:end -->")
ENGINE_AB_SLICES = ROOT / "docs" / "performance" / "engine_ab_slices.json"
ENGINE_AB_SLICES_MARKS = ("<!-- engine-ab-slices:begin -->", "<!-- engine-ab-slices:end -->")
ENGINE_AB_CHUNK = ROOT / "docs" / "performance" / "engine_ab_chunk.json"
ENGINE_AB_CHUNK_MARKS = ("<!-- engine-ab-chunk:begin -->", "<!-- engine-ab-chunk:end -->")
ENGINE_AB_CHUNK_PASSIVE = ROOT / "docs" / "performance" / "engine_ab_chunk_passive.json"
ENGINE_AB_CHUNK_PASSIVE_MARKS = ("<!-- engine-ab-chunk-passive:begin -->",
                                 "<!-- engine-ab-chunk-passive:end -->")  # fmt: skip
ALLOCATOR = ROOT / "docs" / "performance" / "allocator.json"
ALLOCATOR_MARKS = ("<!-- allocator:begin -->", "<!-- allocator:end -->")
ROLES = {"lenet5": "LeNet-5 / MNIST", "vgg": "VGG-11-style w0.25 / CIFAR-10"}
SPEED_RUNS = (
    (THROUGHPUT, "idle"),
    (ROOT / "docs" / "performance" / "throughput_2threads.json", "idle"),
    (ROOT / "docs" / "performance" / "throughput_2threads_busy.json", "busy"),
    # the same with OMP_WAIT_POLICY=PASSIVE, as the command line runs
    (ROOT / "docs" / "performance" / "throughput_2threads_busy_passive.json", "busy, PASSIVE"),
)


def _row(name: str, snn_err: float, spikes: float, events: float, macs: float,
         agreement: str) -> str:  # fmt: skip
    return (f"| {name} | {100 * snn_err:.2f} | {spikes:.3f} | {events / 1e3:,.0f}k | "
            f"{events / macs:.3f}x | {agreement} |")  # fmt: skip


def table() -> str:
    """The Markdown table: the sparse main run, the trade-off points, the paper's Table 2."""
    run = json.loads(RUN.read_text())
    lines = [
        "| setting | SNN err. % | spikes per neuron | synaptic events per image | "
        "events / DNN MACs | agreement with the G-DNN |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    agree = run["agreement"]
    n = run["samples"]
    text = ", ".join(f"{b} {round(v * n):,} / {n:,}" for b, v in agree.items())
    snn = next(iter(run["accuracy"]["snn"].values()))
    lines.append(_row(f"**sparse, LAMBDA = {run['sparsity']:g}** (`tdsnn run`, below)",
                      1 - snn["top1"], run["spikes_per_neuron"],
                      run["synaptic_events_per_image"], run["dnn_macs_per_image"], text))  # fmt: skip
    if TRADEOFF.exists():
        lines += [_suffixed(row, " (trade-off run, earlier DNN)")
                  for row in _tradeoff_rows(json.loads(TRADEOFF.read_text()))]  # fmt: skip
    lines.append(f"| paper (Table 1-2, its coding) | {PAPER_TABLE2['snn_err']:.2f} | 1 (every "
                 "neuron fires once) | | | |")  # fmt: skip
    return "\n".join(lines)


def _suffixed(row: str, suffix: str) -> str:
    """A table row with ``suffix`` appended to its first cell."""
    name, rest = row[2:].split(" |", 1)
    return f"| {name}{suffix} |{rest}"


def _tradeoff_rows(trade: dict) -> list[str]:
    """One row per setting of a ``benchmarks/sparsity_tradeoff.py`` artefact."""
    rows = []
    for r in [trade["paper"], *trade["sparse"]]:
        name = "paper coding" if r["coding"] == "paper" else f"sparse, LAMBDA = {r['lambda']:g}"
        agreement = f"closed_form {round(r['agreement'] * r['samples']):,} / {r['samples']:,}"
        rows.append(_row(name, 1 - r["snn_top1"], r["spikes_per_neuron"],
                         r["synaptic_events_per_image"], r["dnn_macs_per_image"], agreement))  # fmt: skip
    return rows


def sparse_runs_table() -> str:
    """Every sparse setting tried on the main job's DNN: the ``tdsnn run`` folders
    (``benchmarks/sparse_runs.py``) and a 5-epoch trade-off run, against issue 9's targets."""
    lines = ["| LAMBDA | fine-tuning epochs | source | SNN err. % | spikes per neuron | "
             "events / DNN MACs | agreement with the G-DNN | meets all three targets |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    rows = []
    for r in json.loads(SPARSE_RUNS.read_text())["runs"]:
        n = r["samples"]
        agree = ", ".join(f"{b} {round(v * n):,} / {n:,}" for b, v in r["agreement"].items())
        rows.append((r["lambda"], r["finetune_epochs"], "`tdsnn run`", max(r["snn_error"].values()),
                     r["spikes_per_neuron"], r["events_per_mac"], agree))  # fmt: skip
    trade = json.loads(TRADEOFF_E5.read_text())
    for r in trade["sparse"]:
        rows.append((r["lambda"], trade["finetune_epochs"], "trade-off run", 1 - r["snn_top1"],
                     r["spikes_per_neuron"], r["events_per_mac"],
                     f"closed_form {round(r['agreement'] * r['samples']):,} / {r['samples']:,}"))  # fmt: skip
    for lam, epochs, source, err, spikes, per_mac, agree in sorted(rows, key=lambda r: (r[0], r[1])):
        ok = round(err * 1e4) <= 80 and spikes <= 0.3 and per_mac <= 0.3  # 80 of 10,000 images
        lines.append(f"| {lam:g} | {epochs} | {source} | {100 * err:.2f} | {spikes:.3f} | "
                     f"{per_mac:.3f}x | {agree} | {'yes' if ok else 'no'} |")  # fmt: skip
    return "\n".join(lines)


def min_time_table() -> str:
    """Sparse settings with an earliest spike time, on one DNN (``benchmarks/sparse_runs.py``
    over ``tdsnn run`` and ``tdsnn finetune`` folders), against issue 9's LeNet-5 targets."""
    lines = ["| LAMBDA | min_time | fine-tuning epochs | source | SNN err. % | spikes per neuron | "
             "synaptic events per image | events / DNN MACs | agreement with the G-DNN | "
             "meets all three targets |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in json.loads(MIN_TIME_RUNS.read_text())["runs"]:
        n, err = r["samples"], max(r["snn_error"].values())
        agree = ", ".join(f"{b} {round(v * n):,} / {n:,}" for b, v in r["agreement"].items())
        source = "`tdsnn run`" if r["run"].startswith("sparse_lenet") else "`tdsnn finetune`"
        ok = round(err * 1e4) <= 80 and r["spikes_per_neuron"] <= 0.3 and r["events_per_mac"] <= 0.3
        lines.append(f"| {r['lambda']:g} | {r['min_time']} | {r['finetune_epochs']} | {source} | "
                     f"{100 * err:.2f} | {r['spikes_per_neuron']:.3f} | "
                     f"{r['synaptic_events_per_image'] / 1e3:,.0f}k | {r['events_per_mac']:.3f}x | "
                     f"{agree} | {'yes' if ok else 'no'} |")  # fmt: skip
    return "\n".join(lines)


def _with_min_time(text: str, k: int) -> str:
    """A setting's name, with its earliest spike time where it has one."""
    return text + (f", min_time = {k}" if k > 1 else "")


def chosen_min_time(data: dict) -> int:
    """The chosen setting's earliest spike time (artefacts before the grid held one k)."""
    return data.get("chosen_min_time", data.get("min_time", 1))


def select_table(path: Path = SELECT) -> str:
    """LAMBDA chosen on held-out training images: every setting there, then the chosen one
    on the test set (``benchmarks/sparsity_select.py``)."""
    data = json.loads(path.read_text())
    lines = ["| LAMBDA | scored on | SNN err. % | spikes per neuron | events / DNN MACs | "
             "agreement with the G-DNN | meets all three targets |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    held = f"{data['held_out']['count']:,} held-out training images"
    test = data["test"]
    n = test["samples"]
    rows = [(r, r["lambda"], r.get("min_time", 1), held, f"closed_form {round(r['agreement'] * r['samples']):,} / "
             f"{r['samples']:,}") for r in data["holdout"]]  # fmt: skip
    rows.append((test, data["chosen_lambda"], chosen_min_time(data), f"**the test set** ({n:,} images; the chosen setting)",
                 f"closed_form {round(test['agreement'] * n):,} / {n:,}, "
                 f"clocked {round(test['agreement_clocked'] * n):,} / {n:,}"))  # fmt: skip
    for r, lam, k, where, agree in rows:
        lines.append(f"| {_with_min_time(f'{lam:g}', k)} | {where} | {100 * (1 - r['snn_top1']):.2f} | "
                     f"{r['spikes_per_neuron']:.3f} | {r['events_per_mac']:.3f}x | {agree} | "
                     f"{'yes' if r['meets_targets'] else 'no'} |")  # fmt: skip
    return "\n".join(lines)


def select_vgg05_table(path: Path = SELECT_VGG05) -> str:
    """LAMBDA of the width-0.5 VGG-11-style network chosen on held-out training images,
    against the paper coding fine-tuned alike (``benchmarks/sparsity_select.py
    --paper-reference``): every setting there, then the paper coding and the chosen
    setting on the test set."""
    data = json.loads(path.read_text())
    lines = ["| setting | scored on | SNN acc. % | points below the paper coding | spikes per "
             "neuron | events / DNN MACs | agreement with the G-DNN | meets the target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    held = f"{data['held_out']['count']:,} held-out training images"
    test = f"**the test set** ({data['test']['samples']:,} images)"
    rows = [("paper coding", held, data["paper_holdout"], data["paper_holdout"])]
    rows += [(_with_min_time(f"sparse, LAMBDA = {r['lambda']:g}", r.get("min_time", 1)), held, r,
              data["paper_holdout"]) for r in data["holdout"]]  # fmt: skip
    rows += [("paper coding", test, data["paper_test"], data["paper_test"]),
             (_with_min_time(f"sparse, LAMBDA = {data['chosen_lambda']:g}", chosen_min_time(data))
              + " (the chosen)",
              test, data["test"], data["paper_test"])]  # fmt: skip
    for name, where, r, paper in rows:
        n = r["samples"]
        below = "" if r is paper else f"{100 * (paper['snn_top1'] - r['snn_top1']):.2f}"
        meets = "" if r is paper else ("yes" if r["meets_targets"] else "no")
        lines.append(f"| {name} | {where} | {100 * r['snn_top1']:.2f} | {below} | "
                     f"{r['spikes_per_neuron']:.3f} | {r['events_per_mac']:.3f}x | "
                     f"closed_form {round(r['agreement'] * n):,} / {n:,} | {meets} |")  # fmt: skip
    return "\n".join(lines)


def vgg_sparse_table(paths: tuple[Path, ...] = VGG_TRADEOFFS) -> str:
    """The VGG-11-style CIFAR-10 network in both codings, from one DNN (issue 9)."""
    lines = [
        "| setting | SNN err. % | spikes per neuron | synaptic events per image | "
        "events / DNN MACs | agreement with the G-DNN |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for path in paths:
        trade = json.loads(path.read_text())
        suffix = f", L = {float(trade['L']):g}, {trade['finetune_epochs']} epochs"
        # A paper-coding row identical to one shown already: the script reran the same run.
        lines += [row for row in (_suffixed(r, suffix) for r in _tradeoff_rows(trade))
                  if row not in lines]  # fmt: skip
    return "\n".join(lines)


def vgg05_sparse_table() -> str:
    """The same table for the width-0.5 network (its own DNN)."""
    return vgg_sparse_table(VGG05_TRADEOFFS)


def vgg05_run_table() -> str:
    """The width-0.5 network's ``tdsnn run`` in sparse coding, beside the paper coding (and
    the same sparse setting) fine-tuned by the trade-off script from the run's DNN."""
    run = json.loads(VGG05_RUN.read_text())
    n = run["samples"]
    agree = ", ".join(f"{b} {round(v * n):,} / {n:,}" for b, v in run["agreement"].items())
    snn = min(v["top1"] for v in run["accuracy"]["snn"].values())
    lines = [
        "| setting | SNN err. % | spikes per neuron | synaptic events per image | "
        "events / DNN MACs | agreement with the G-DNN |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines.append(_row(f"**sparse, LAMBDA = {run['sparsity']:g}, L = {run['L']:g}** (`tdsnn run`)",
                      1 - snn, run["spikes_per_neuron"], run["synaptic_events_per_image"],
                      run["dnn_macs_per_image"], agree))  # fmt: skip
    trade = json.loads(VGG05_RUN_TRADEOFF.read_text())
    lines += [_suffixed(r, f", L = {float(trade['L']):g} (trade-off script, the run's DNN)")
              for r in _tradeoff_rows(trade)]  # fmt: skip
    return "\n".join(lines)


def input_scale_table() -> str:
    """LeNet-5 at L = 5 against the input scale: before fine-tuning with and without
    G-compensation, then fine-tuned (``benchmarks/input_scale.py``)."""
    data = json.loads(INPUT_SCALE.read_text())
    lines = [
        f"| input scale | G-DNN acc. %, no fine-tune | no compensation, no fine-tune | G-DNN acc. %, "
        f"fine-tuned {data['finetune_epochs']} epochs | SNN acc. % | agreement | latency (steps) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in data["scales"]:
        ft = e["fine_tuned"]
        n = ft["samples"]
        lines.append(
            f"| {e['input_scale']:g} | {100 * e['compensated']:.2f} | {100 * e['not_compensated']:.2f} | "
            f"{100 * ft['gdnn']:.2f} | {100 * ft['snn']:.2f} | {round(ft['agreement'] * n):,} / {n:,} | "
            f"{ft['latency_mean']:.1f} |"
        )
    return "\n".join(lines)


def table2() -> str:
    """Table 2 of the paper beside ours: the paper coding (main job) and the sparse coding
    (the sparse run), operations per image under the paper's (presentation) convention."""
    lines = [
        "| setting | SNN err. % | DNN mult | DNN add | SNN mult | SNN add | DNN/SNN mult | "
        "DNN/SNN add | DNN/SNN total |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    sparse = json.loads(RUN.read_text())
    vgg = SELECT_VGG05_MIN_TIME_RUNS
    chosen = json.loads((vgg / "evaluation.json").read_text())
    k = chosen["reproduce"].get("min_time", 1)
    for name, path in (("ours, paper coding (main job)", MAIN),
                       (f"ours, sparse coding, LAMBDA = {sparse['sparsity']:g}", RUN),
                       ("CIFAR-10, VGG-11-style w0.5, ours, paper coding (distilled, L = 8)",
                        vgg / "evaluation_paper.json"),
                       (f"CIFAR-10, VGG-11-style w0.5, ours, sparse coding, LAMBDA = "
                        f"{chosen['sparsity']:g}, min_time = {k} (held-out choice)",
                        vgg / "evaluation.json")):  # fmt: skip
        run = json.loads(path.read_text())
        snn_err = 1 - next(iter(run["accuracy"]["snn"].values()))["top1"]
        d, o = run["ops"]["dnn"], run["ops"]["snn"]["presentation"]
        r = run["ops"]["ratios"]["presentation"]
        lines.append(f"| {name} | {100 * snn_err:.2f} | {d['mul'] / 1e3:,.0f}k | {d['add'] / 1e3:,.0f}k | "
                     f"{o['mul'] / 1e3:,.0f}k | {o['add'] / 1e3:,.0f}k | {r['mul_ratio']:.2f}x | "
                     f"{r['add_ratio']:.2f}x | {r['total_ratio']:.2f}x |")  # fmt: skip
    p = PAPER_TABLE2
    lines.append(f"| paper, Table 2 (its coding; LeNet-5 only) | {p['snn_err']:.2f} | {p['dnn_mult'] / 1e3:,.0f}k | "
                 f"{p['dnn_add'] / 1e3:,.0f}k | {p['snn_mult'] / 1e3:,.0f}k | {p['snn_add'] / 1e3:,.0f}k | "
                 f"{p['dnn_mult'] / p['snn_mult']:.2f}x | {p['dnn_add'] / p['snn_add']:.2f}x | "
                 f"{(p['dnn_mult'] + p['dnn_add']) / (p['snn_mult'] + p['snn_add']):.2f}x |")  # fmt: skip
    return "\n".join(lines)


def speed_table() -> str:
    """The README's speed table: per network the range over batch sizes of each ratio, from
    the committed result of the throughput section of ``benchmarks/run_all.py``."""
    nets = json.loads(THROUGHPUT.read_text())["networks"]

    def span(net: dict, get) -> str:
        values = [get(row) for row in net["rows"]]
        return f"{min(values):.2f}-{max(values):.2f}"

    head = "| | " + " | ".join(SHORT_LABELS.get(n["role"], n["label"]) for n in nets) + " |"
    rows = [head, "| --- |" + " --- |" * len(nets)]
    for label, get, unit in (
        ("closed_form, certified (default; reference spike times) / DNN images/s",
         lambda r: r["modes"]["closed_form"]["ratio_to_dnn"], "x"),
        ("closed_form, plain float32 / DNN images/s",
         lambda r: r["modes"]["closed_form_f32"]["ratio_to_dnn"], "x"),
        ("clocked (certified) / (latency x one DNN forward)",
         lambda r: r["clocked_vs_latency_dnn"], ""),
    ):  # fmt: skip
        rows.append(f"| {label} | " + " | ".join(span(n, get) + unit for n in nets) + " |")
    return "\n".join(rows)


def peer_sparse_table(data: dict | None = None) -> str:
    """SpikingJelly against both codings at equal accuracy, one row per trained model and
    coding (``benchmarks/peer_spikingjelly.py``): the fewest synaptic events each tool needs
    to reach the level (within the tolerance of the DNN, or else the best accuracy both
    reach), the peer's counted with its constant input layer every step and once."""
    data = json.loads(PEER_SPARSE.read_text()) if data is None else data
    lines = [
        "| network | model | DNN acc. % | coding | equal accuracy at | ours: cheapest point | "
        "ours: events/image | SpikingJelly, input every step | theirs / ours | "
        "SpikingJelly, input once | theirs / ours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in data["models"]:
        run = m["run"].rstrip("/").split("/")[-1]
        for coding, e in m["headline"]["ours"].items():
            p = e["point"]
            if p is None:
                continue
            tag = f"L = {p['L']:g}" + (f", LAMBDA = {p['lambda']:g}" if p["lambda"] else "")
            tag += f", min_time = {p['min_time']}" if p.get("min_time", 1) > 1 else ""
            within = e["matched"].startswith("within")
            cells = [f"{e['level']:.2f} % ({'DNN - ' + str(data['tolerance']) if within else 'best both reach'})",
                     f"{tag}: {p['accuracy']:.2f} %", f"{p['synaptic_events_per_image'] / 1e3:,.0f}k"]  # fmt: skip
            for key in ("events_per_step_count", "events_input_once"):
                t = e["theirs"][key]
                cells += [f"{t['recipe']}, T = {t['T']}: {t['accuracy']:.2f} %, {t[key] / 1e3:,.0f}k",
                          f"{e[f'ratio_{key}']:.1f}x"]  # fmt: skip
            lines.append(f"| {ROLES[m['role']]} | {run} (seed {m['seed']}) | {m['dnn_accuracy']:.2f} | "
                         f"{coding} | " + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines)


def _bench(name: str):
    """A benchmark module of this folder (imported on demand: they load torch)."""
    import importlib

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def scaling_tables() -> str:
    """Width, depth and L scaling (``benchmarks/scaling.py``), the script's own report."""
    return _bench("scaling").report(json.loads(SCALING.read_text()))


def profile_tables() -> str:
    """Simulator profiles (``benchmarks/profile_engine.py``), the script's own report."""
    return _bench("profile_engine").report(json.loads(PROFILE.read_text()), top=6)


def contention_table() -> str:
    """Two threads with the other core busy, under each OpenMP wait policy
    (``benchmarks/contention.py``)."""
    data = json.loads(CONTENTION.read_text())
    lines = ["| wait policy | network | batch | DNN ms | certified ms | certified / DNN | "
             "plain float32 ms | plain float32 / DNN |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for run in data["runs"]:
        for r in run["rows"]:
            lines.append(f"| {run['policy']} | {SHORT_LABELS[r['network']]} | {r['batch']} | "
                         f"{r['dnn_ms']:.1f} | {r['certified_ms']:.1f} | "
                         f"{r['dnn_ms'] / r['certified_ms']:.2f}x | {r['float32_ms']:.1f} | "
                         f"{r['dnn_ms'] / r['float32_ms']:.2f}x |")  # fmt: skip
    return "\n".join(lines)


def wait_policy_table() -> str:
    """Certified / DNN with 2 threads under each OpenMP wait policy, the other core idle or
    busy (``benchmarks/contention.py``; 2-3 rounds of one process per policy, medians)."""
    cells = [("lenet5", 32), ("lenet5", 256), ("vgg", 32), ("vgg", 256)]
    lines = ["| other core | wait policy | rounds | " + " | ".join(
                 f"{SHORT_LABELS[n]}, batch {b}" for n, b in cells) + " | certified ms, "
             f"{SHORT_LABELS['vgg']} batch 256 |",
             "| --- | --- | --- |" + " --- |" * (len(cells) + 1)]  # fmt: skip
    for path in WAIT_POLICY_RUNS:
        data = json.loads(path.read_text())
        other = "idle" if data["other_core"] == "idle" else "busy"
        for run in data["runs"]:
            by = {(r["network"], r["batch"]): r for r in run["rows"]}
            ratios = [f"{by[c]['dnn_ms'] / by[c]['certified_ms']:.2f}x" for c in cells]
            lines.append(f"| {other} | {run['policy']} | {run['rounds']} | " + " | ".join(ratios)
                         + f" | {by[('vgg', 256)]['certified_ms']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def engine_change(row: dict) -> int:
    """The certified closed form's change of speed in one row of ``engine_ab.json``, %."""
    return round(100 * (row["gain"] - 1))


def engine_ab_table(path: Path = ENGINE_AB) -> str:
    """The certified closed form of two commits in one run (``benchmarks/compare_engines.py``)."""
    data = json.loads(path.read_text())
    before, after = (str(data["trees"][k]["commit"])[:7] for k in ("before", "after"))
    lines = [f"| network | batch | certified / DNN, {before} | certified / DNN, {after} | "
             f"change | certified ms, {before} | certified ms, {after} |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in data["rows"]:
        b, a = r["before"], r["after"]
        lines.append(f"| {SHORT_LABELS[r['network']]} | {r['batch']} | {b['ratio']:.2f}x | "
                     f"{a['ratio']:.2f}x | {engine_change(r):+d} % | "
                     f"{b['certified_ms']:.1f} | {a['certified_ms']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def allocator_table() -> str:
    """glibc's default allocator against the tuned one of ``tdsnn.process`` (the same tree
    in two environments, ``benchmarks/compare_engines.py --after-env``): each cell is
    default -> tuned."""
    data = json.loads(ALLOCATOR.read_text())
    lines = ["| network | batch | DNN ms | certified ms | plain float32 ms | certified / DNN | "
             "plain float32 / DNN | page faults per DNN call | per certified call |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in data["rows"]:
        b, a = r["before"], r["after"]

        def pair(key: str, form: str, b=b, a=a) -> str:
            return f"{format(b[key], form)} -> {format(a[key], form)}"

        def faults(mode: str, b=b, a=a) -> str:
            return f"{b['faults_per_call'][mode]:,.0f} -> {a['faults_per_call'][mode]:,.0f}"

        lines.append(f"| {SHORT_LABELS[r['network']]} | {r['batch']} | {pair('dnn_ms', '.1f')} | "
                     f"{pair('certified_ms', '.1f')} | {pair('float32_ms', '.1f')} | "
                     f"{pair('ratio', '.2f')}x | {pair('float32_ratio', '.2f')}x | "
                     f"{faults('dnn')} | {faults('certified')} |")  # fmt: skip
    return "\n".join(lines)


def spot_check_table() -> str:
    """What the run-time spot check costs for each count measured, idle machine
    (``benchmarks/spot_check.py``)."""
    data = json.loads(SPOT_CHECK.read_text())["idle"]
    counts = list(data["rows"][0]["spot_check_cost"])
    names = {"default": "cost of the default"}
    lines = ["| network | threads | batch | DNN ms | certified / DNN | layers checked by default | "
             + " | ".join(names.get(k, f"cost of {k} in every layer") for k in counts) + " |",
             "| --- " * (6 + len(counts)) + "|"]  # fmt: skip
    for r in data["rows"]:
        costs = " | ".join(f"{100 * r['spot_check_cost'][k]:+.1f} %" for k in counts)
        lines.append(f"| {r['network']} | {r['threads']} | {r['batch']} | {r['dnn_ms']:.1f} | "
                     f"{r['certified_over_dnn']:.2f}x | {r['checked_by_default']} of "
                     f"{r['float32_layers']} | {costs} |")
    return "\n".join(lines)


def certified_speed_table() -> str:
    """Issue 10's configurations: the certified closed form against the DNN on LeNet-5 and
    the VGG-11-style network, batch 32 and 256, with 1 and 2 threads (idle) and 2 threads
    with the other core busy (OpenMP's default wait policy, and PASSIVE as the command
    line sets it), each from its own committed throughput run."""
    lines = [
        "| network | batch | threads | other core | certified / DNN | plain float32 / DNN | "
        "float64 / DNN | DNN images/s | target 0.8 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path, load in SPEED_RUNS:
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for net in result["networks"]:
            if net["role"] not in ("lenet5", "vgg"):
                continue
            for row in net["rows"]:
                if row["batch"] not in (32, 256):
                    continue
                m = row["modes"]
                ratio = m["closed_form"]["ratio_to_dnn"]
                lines.append(
                    f"| {SHORT_LABELS[net['role']]} | {row['batch']} | {result['threads']} | {load} | "
                    f"{ratio:.2f}x | {m['closed_form_f32']['ratio_to_dnn']:.2f}x | "
                    f"{m['closed_form_f64']['ratio_to_dnn']:.2f}x | {m['dnn']['images_per_s']:,.0f} | "
                    f"{'meets' if ratio >= 0.8 else 'misses'} |"
                )
    return "\n".join(lines)


def _agreement(run: dict) -> str:
    n = run["samples"]
    return ", ".join(f"{b} {round(v * n):,} / {n:,}" for b, v in run["agreement"].items())


def resnet_table() -> str:
    """ResNet-20 on CIFAR-10: the dynamic run (closed_form and clocked) and static T_il."""
    runs = [("dynamic T_il", json.loads((RESNET / "evaluation.json").read_text())),
            ("dynamic T_il", json.loads((RESNET / "evaluation_clocked.json").read_text())),
            ("static T_il (1,000 calibration images)",
             json.loads((RESNET / "evaluation_static.json").read_text()))]  # fmt: skip
    lines = [
        "| setting | images | DNN acc. % | G-DNN acc. % | SNN acc. % | agreement with the G-DNN | "
        "latency (steps) | clipped spikes | DNN MACs | synaptic events / image | "
        "DNN/SNN ops (presentation, own, hardware) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for setting, run in runs:
        acc = run["accuracy"]
        snn = "; ".join(f"{b} {100 * v['top1']:.2f}" for b, v in acc["snn"].items())
        lat = run["latency"]
        ratios = run["ops"]["ratios"]
        ops = ", ".join(f"{ratios[c]['total_ratio']:.2f}x" for c in ("presentation", "own", "hardware"))
        lines.append(
            f"| {setting} | {run['samples']:,} | {100 * acc['dnn']['top1']:.2f} | "
            f"{100 * acc['gdnn']['top1']:.2f} | {snn} | {_agreement(run)} | "
            f"{lat['mean']:.1f} ({lat['min']}-{lat['max']}) | {sum(run['clipped']):,} | "
            f"{run['dnn_macs_per_image'] / 1e6:.2f} M | "
            f"{run['synaptic_events_per_image'] / 1e6:.2f} M | {ops} |"
        )
    return "\n".join(lines)


def _sweep(path: Path) -> list[dict]:
    return sorted(json.loads(path.read_text()), key=lambda e: float(e["L"]))


def _agreed(run: dict) -> str:
    n = run["samples"]
    return ", ".join(f"{round(v * n):,} / {n:,}" for v in run["agreement"].values())


def sweep_table() -> str:
    """The LeNet-5 L sweep (``tdsnn sweep --from runs/main``), Table 2's columns per L."""
    lines = [
        "| L | G-DNN err. % | SNN err. % | agreement | latency (steps) | DNN_mult | DNN_add | "
        "SNN_mult | SNN_add | DNN/SNN mult | DNN/SNN add | DNN/SNN total |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in _sweep(SWEEP):
        acc = run["accuracy"]
        snn = next(iter(acc["snn"].values()))["top1"]
        d, o = run["ops"]["dnn"], run["ops"]["snn"]["presentation"]
        r = run["ops"]["ratios"]["presentation"]
        lines.append(
            f"| {run['L']:g} | {100 * (1 - acc['gdnn']['top1']):.2f} | {100 * (1 - snn):.2f} | "
            f"{_agreed(run)} | {run['latency']['mean']:.1f} | {d['mul'] / 1e3:.0f}k | "
            f"{d['add'] / 1e3:.0f}k | {o['mul'] / 1e3:.0f}k | {o['add'] / 1e3:.0f}k | "
            f"{r['mul_ratio']:.3g}x | {r['add_ratio']:.2f}x | {r['total_ratio']:.2f}x |"
        )
    p = PAPER_TABLE2
    lines.append(f"| **paper**, L = 5 | | **{p['snn_err']:.2f}** | | | {p['dnn_mult'] / 1e3:.0f}k | "
                 f"{p['dnn_add'] / 1e3:.0f}k | {p['snn_mult'] / 1e3:.0f}k | {p['snn_add'] / 1e3:.0f}k | "
                 f"{p['dnn_mult'] / p['snn_mult']:.2f}x | {p['dnn_add'] / p['snn_add']:.2f}x | "
                 f"{(p['dnn_mult'] + p['dnn_add']) / (p['snn_mult'] + p['snn_add']):.3f}x |")  # fmt: skip
    lines.append("| **paper**, Fig. 4 | | 1.53 (L=1), 0.92 (L=5) | | | | | | | | | |")
    return "\n".join(lines)


def alexnet_sweep_table() -> str:
    """The AlexNet-style CIFAR-10 L sweep (Figures 4-5 of the paper for its larger network)."""
    lines = [
        "| L | DNN acc. % | G-DNN acc. % | SNN acc. % | SNN - DNN | agreement | latency (steps) | "
        "DNN/SNN mult | DNN/SNN add | DNN/SNN total | synaptic events / DNN MACs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in _sweep(ALEXNET_SWEEP):
        acc = run["accuracy"]
        dnn, snn = acc["dnn"]["top1"], next(iter(acc["snn"].values()))["top1"]
        r = run["ops"]["ratios"]["presentation"]
        lines.append(
            f"| {run['L']:g} | {100 * dnn:.2f} | {100 * acc['gdnn']['top1']:.2f} | {100 * snn:.2f} | "
            f"{100 * (snn - dnn):+.2f} | {_agreed(run)} | {run['latency']['mean']:.1f} | "
            f"{r['mul_ratio']:.2f}x | {r['add_ratio']:.2f}x | {r['total_ratio']:.2f}x | "
            f"{run['events_per_mac']:.3f}x |"
        )
    lines.append("| **paper**: AlexNet on ImageNet (Figs. 4-5; not comparable with CIFAR-10) | | | "
                 "top-1 42.08 (L=1) to 56.7 (L=5) | | | | | | operations -48.4 % (L=1) to "
                 "-41.7 % (L=5) | |")  # fmt: skip
    return "\n".join(lines)


def doc_table(text: str, marks: tuple[str, str] = (BEGIN, END)) -> str:
    start, end = text.index(marks[0]) + len(marks[0]), text.index(marks[1])
    return text[start:end].strip()


def _replace(text: str, marks: tuple[str, str], body: str) -> str:
    start, end = text.index(marks[0]) + len(marks[0]), text.index(marks[1])
    return text[:start] + "\n" + body + "\n" + text[end:]


GENERATED = {  # document -> {markers: the function that writes the table between them}
    DOC: {(BEGIN, END): table, TABLE2_MARKS: table2, RESNET_MARKS: resnet_table,
          SWEEP_MARKS: sweep_table, ALEXNET_MARKS: alexnet_sweep_table,
          VGG_SPARSE_MARKS: vgg_sparse_table, VGG05_SPARSE_MARKS: vgg05_sparse_table,
          VGG05_RUN_MARKS: vgg05_run_table,
          INPUT_SCALE_MARKS: input_scale_table,
          SPARSE_RUNS_MARKS: sparse_runs_table, SELECT_MARKS: select_table,
          MIN_TIME_MARKS: min_time_table, SELECT_K3_MARKS: lambda: select_table(SELECT_K3),
          SELECT_VGG05_MARKS: select_vgg05_table,
          SELECT_VGG05_DISTILL_MARKS: lambda: select_vgg05_table(SELECT_VGG05_DISTILL),
          SELECT_VGG05_MIN_TIME_MARKS: lambda: select_vgg05_table(SELECT_VGG05_MIN_TIME)},
    README: {SPEED_MARKS: speed_table},
    PERFORMANCE: {CERTIFIED_MARKS: certified_speed_table, CONTENTION_MARKS: contention_table,
                  SPOT_MARKS: spot_check_table, PEER_MARKS: peer_sparse_table,
                  SCALING_MARKS: scaling_tables, PROFILE_MARKS: profile_tables,
                  ENGINE_AB_MARKS: engine_ab_table, ALLOCATOR_MARKS: allocator_table,
                  ENGINE_AB_SLICES_MARKS: lambda: engine_ab_table(ENGINE_AB_SLICES),
                  WAIT_POLICY_MARKS: wait_policy_table,
                  ENGINE_AB_CHUNK_MARKS: lambda: engine_ab_table(ENGINE_AB_CHUNK),
                  ENGINE_AB_CHUNK_PASSIVE_MARKS: lambda: engine_ab_table(ENGINE_AB_CHUNK_PASSIVE)},
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    docs = {path: {marks: make() for marks, make in tables.items()}
            for path, tables in GENERATED.items()}  # fmt: skip
    same = True
    for path, tables in docs.items():
        text = path.read_text()
        if args.check:
            ok = all(doc_table(text, marks) == want for marks, want in tables.items())
            print(f"{path.name} is up to date" if ok else f"{path.name} differs")
            same = same and ok
            continue
        for marks, want in tables.items():
            text = _replace(text, marks, want)
            print(want)
        path.write_text(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
