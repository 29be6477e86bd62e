"""Throughput (images/s) and peak memory of the DNN, the G-DNN and both SNN simulators.

For LeNet-5 (MNIST), a VGG-style and an AlexNet-style CIFAR-10 network (and, with
``--networks resnet20``, ResNet-20 with its residual sums), at batch
sizes 1, 32 and 256: DNN forward (float32, normalised input), G-DNN forward
(float32), SNN ``closed_form`` (certified, the default; plain float32; float64) and
``clocked`` (certified, the default), all with ``torch.no_grad`` and a fixed number
of threads, median of interleaved repeats after a warm-up.  Ratios are to the DNN measured in the same run, on the
same batch.  Targets: closed_form >= 0.5x the DNN's images/s (stretch 0.8x);
clocked time <= latency x one DNN forward (``clocked / (latency * dnn)`` <= 1,
latency = mean SNN latency in time steps of the batch's samples).

    python benchmarks/throughput.py [--quick] [--no-memory] [--batch-sizes 1 32 256]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import common as c
import torch

import tdsnn

CF_TARGET, CF_STRETCH = 0.5, 0.8


def snn_latency(snn: tdsnn.SNN, x_raw: torch.Tensor) -> dict:
    result = snn.run(x_raw, backend="closed_form")
    lat = result.latency.double()
    return {"latency_mean": float(lat.mean()), "latency_max": int(result.latency.max())}


def measure_throughput(
    dnn,
    gdnn,
    snn,
    x_raw: torch.Tensor,
    x_norm: torch.Tensor,
    batch_sizes=(1, 32, 256),
    modes=c.MODES,
    timing: c.TimingConfig | None = None,
    memory=None,
) -> list[dict]:
    """One row per batch size: per mode images/s, median seconds, ratio to the DNN, memory.

    ``x_raw`` / ``x_norm`` are a pool of SNN / DNN inputs, repeated up to each batch
    size.  ``memory(batch, mode)``, when given, returns the probe's dict (peak MiB).
    """
    timing = timing or c.TimingConfig()
    rows = []
    for batch in batch_sizes:
        xr, xn = c.repeat_to(x_raw, batch), c.repeat_to(x_norm, batch)
        fns = c.mode_callables(modes, dnn, gdnn, snn, xr, xn)
        times = c.time_interleaved(fns, timing)
        row: dict = {"batch": batch, **snn_latency(snn, xr), "modes": {}}
        dnn_s = times["dnn"]["median_s"] if "dnn" in times else float("nan")
        for mode, t in times.items():
            entry = {
                "images_per_s": batch / t["median_s"],
                "median_ms": 1e3 * t["median_s"],
                "repeats": t["repeats"],
                "ratio_to_dnn": dnn_s / t["median_s"],  # throughput ratio (>1: faster)
            }
            if memory is not None:
                entry["peak_mib"] = memory(batch, mode).get("peak_delta_mib", float("nan"))
            row["modes"][mode] = entry
        if "clocked" in times:
            row["clocked_vs_latency_dnn"] = times["clocked"]["median_s"] / (
                row["latency_mean"] * dnn_s
            )
        rows.append(row)
    return rows


def _verdict(ratio: float) -> str:
    if math.isnan(ratio):
        return "n/a"
    return "meets 0.8" if ratio >= CF_STRETCH else ("meets 0.5" if ratio >= CF_TARGET else "MISSES 0.5")


def summary_rows(results: dict) -> list[list]:
    out = []
    for net in results["networks"]:
        for row in net["rows"]:
            m = row["modes"]
            ratio = {k: m.get(k, {}).get("ratio_to_dnn", float("nan"))
                     for k in ("closed_form", "closed_form_f32", "closed_form_f64")}
            ck = row.get("clocked_vs_latency_dnn", float("nan"))
            out.append([
                net["label"], row["batch"], f"{ratio['closed_form']:.2f}x",
                _verdict(ratio["closed_form"]), f"{ratio['closed_form_f32']:.2f}x",
                f"{ratio['closed_form_f64']:.2f}x",
                f"{row['latency_mean']:.1f} (max {row['latency_max']})",
                f"{ck:.2f}" + ("" if math.isnan(ck) else (" ok" if ck <= 1 else " MISSES")),
            ])
    return out


SUMMARY_HEADERS = [
    "network", "batch", "closed_form (certified) / DNN", "target 0.5 (0.8)",
    "plain float32 / DNN", "float64 / DNN", "latency (steps)",
    "clocked (certified) / (latency x DNN)",
]


def network_table(net: dict) -> str:
    headers = ["batch", "mode", "images/s", "median ms", "x DNN", "peak MiB", "repeats"]
    rows = []
    for row in net["rows"]:
        for mode, e in row["modes"].items():
            rows.append([
                row["batch"], c.MODE_LABELS[mode], e["images_per_s"], e["median_ms"],
                f"{e['ratio_to_dnn']:.3f}", e.get("peak_mib", float("nan")), e["repeats"],
            ])
    return c.markdown_table(headers, rows)


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = results["networks"]
    fig, axes = plt.subplots(1, len(nets), figsize=(5.2 * len(nets), 4), squeeze=False)
    for ax, net in zip(axes[0], nets, strict=True):
        batches = [row["batch"] for row in net["rows"]]
        modes = list(net["rows"][0]["modes"])
        width = 0.8 / len(modes)
        for k, mode in enumerate(modes):
            values = [row["modes"][mode]["images_per_s"] for row in net["rows"]]
            xs = [i + (k - (len(modes) - 1) / 2) * width for i in range(len(batches))]
            ax.bar(xs, values, width, label=c.MODE_LABELS[mode])
        ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        ax.set_yscale("log")
        ax.set_ylabel("images / s")
        ax.set_title(net["label"], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return c.save_figure(fig, path, results["machine"])


def run(args, specs=None, prepared=None) -> dict:
    """Measure every network; ``prepared`` maps role -> (spec, cfg, dnn, dnn_meta, gdnn, gdnn_meta)."""
    threads, specs, cfgs, steps = c.setup(args, specs)
    timing = (
        c.TimingConfig(warmup=1, min_repeats=3, max_repeats=10, target_s=0.3)
        if args.quick
        else c.TimingConfig(warmup=1, min_repeats=3, max_repeats=30, target_s=1.5)
    )
    roles = [r for r in args.networks if r in specs]
    results: dict = {"machine": c.machine_info(), "threads": threads, "networks": [],
                     "memory_method": c.MEMORY_METHOD if args.memory else None,
                     "batch_sizes": list(args.batch_sizes)}
    for role in roles:
        spec, cfg = specs[role], cfgs[role]
        dnn, dnn_meta, gdnn, gdnn_meta = c.models(role, spec, cfg, steps, prepared)
        snn = tdsnn.convert(gdnn)
        ds = c.dataset(spec.dataset, "test")
        x_raw = c.raw_images(ds, max(args.batch_sizes))
        x_norm = c.normalise(x_raw, ds)
        memory = None
        if args.memory:
            gpath = c.gdnn_path(spec, cfg, 5.0, steps) if steps > 0 else None

            def memory(batch, mode, spec=spec, cfg=cfg, gpath=gpath):
                p = c.ProbeSpec(
                    arch=spec.arch, kwargs=spec.kwargs, dataset=spec.dataset, L=5.0,
                    batch=batch, mode=mode, threads=threads,
                    dnn_path=str(c.dnn_path(spec, cfg)),
                    gdnn_path=None if gpath is None else str(gpath),
                )
                return c.probe_memory(p)

        c.log(f"throughput: {spec.label} ...")
        rows = measure_throughput(dnn, gdnn, snn, x_raw, x_norm, args.batch_sizes, c.MODES,
                                  timing, memory)
        dnn_ops = tdsnn.count_dnn_ops(dnn, spec.input_shape)
        results["networks"].append({
            "role": role, "key": spec.key, "label": spec.label, "rows": rows,
            "dnn_accuracy": dnn_meta.get("test_accuracy"), "dnn_source": dnn_meta.get("source"),
            "gdnn_source": gdnn_meta.get("source"), "finetune_steps": gdnn_meta.get("finetune_steps"),
            "dnn_macs": dnn_ops.per_sample()["mul"],
        })
        for row in rows:
            c.log(f"  batch {row['batch']}: " + ", ".join(
                f"{m} {e['images_per_s']:.0f}/s ({e['ratio_to_dnn']:.2f}x)" for m, e in row["modes"].items()
            ) + f"; latency {row['latency_mean']:.1f}; clocked/(lat*dnn) "
                f"{row.get('clocked_vs_latency_dnn', float('nan')):.2f}")
    results["machine_end"] = c.machine_info()
    c.save_json("throughput", results)
    return results


def report(results: dict) -> str:
    parts = [
        f"Machine: {c.machine_line(results['machine'])}; load average at the end "
        f"{results['machine_end'].get('loadavg')}.",
        "",
        c.markdown_table(SUMMARY_HEADERS, summary_rows(results)),
    ]
    for net in results["networks"]:
        parts += [
            "",
            f"**{net['label']}** (DNN test accuracy {c.fmt(net['dnn_accuracy'], 4)} %, "
            f"{net['dnn_macs'] / 1e6:.2f} M MACs per image; G-DNN at L=5: "
            f"{net['finetune_steps']} fine-tune steps)",
            "",
            network_table(net),
        ]
    return "\n".join(parts)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--networks", nargs="+", default=["lenet5", "vgg", "alexnet", "resnet20"],
                        choices=["lenet5", "vgg", "alexnet", "resnet20"])
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the per-configuration memory subprocesses")
    parser.add_argument("--busy", action="store_true",
                        help="a second process spins on one core meanwhile (a shared machine)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results here (the committed artefacts: docs/performance/)")


def main(argv=None) -> None:
    args = c.parse_args(__doc__, add_args, argv)
    if args.busy:
        with c.busy_core():
            results = run(args)
    else:
        results = run(args)
    results["busy"] = args.busy
    if args.json is not None:
        c.write_json(args.json, results)
    print(report(results))
    print()
    print(f"plot: {plot(results, c.CACHE / 'results' / 'throughput.png')}")


if __name__ == "__main__":
    main()
