"""How the simulators scale: images/s and peak memory against width, depth and L.

* width: ``vgg_cifar(width=w, depth=16)`` for w in 0.125 .. 1, untrained (He init;
  the layer sizes, not the weights, set the cost, but the latency depends on the
  activations, so it is printed beside every row);
* depth: ``vgg_cifar(width=0.25, depth=d)`` for d in 11, 13, 16, untrained;
* L: the trained VGG network of the suite, its G-DNN fine-tuned at every L.

For each: DNN forward (float32, reference), SNN closed_form and clocked (both in the
default, certified precision) at one batch size; memory is the peak RSS growth of one call in a fresh
process (see common.MEMORY_METHOD).

    python benchmarks/scaling.py [--quick] [--scaling-batch 32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common as c
import torch

import tdsnn
from tdsnn.models import vgg_cifar

SCALING_MODES = ("dnn", "closed_form", "clocked")


def measure_config(dnn, gdnn, ds, batch, timing, probe_base: c.ProbeSpec | None, memory: bool) -> dict:
    snn = tdsnn.convert(gdnn)
    x_raw = c.repeat_to(c.raw_images(ds, batch), batch)
    x_norm = c.normalise(x_raw, ds)
    times = c.time_interleaved(c.mode_callables(SCALING_MODES, dnn, gdnn, snn, x_raw, x_norm), timing)
    result = snn.run(x_raw)
    row = {
        "latency_mean": float(result.latency.double().mean()),
        "latency_max": int(result.latency.max()),
        "dnn_macs": tdsnn.count_dnn_ops(dnn, tuple(x_raw.shape[1:])).per_sample()["mul"],
        "modes": {},
    }
    for mode, t in times.items():
        entry = {"images_per_s": batch / t["median_s"], "median_ms": 1e3 * t["median_s"],
                 "ratio_to_dnn": times["dnn"]["median_s"] / t["median_s"]}
        if memory and probe_base is not None:
            probe = c.ProbeSpec(**{**probe_base.__dict__, "mode": mode, "batch": batch})
            entry["peak_mib"] = c.probe_memory(probe).get("peak_delta_mib", float("nan"))
        row["modes"][mode] = entry
    row["clocked_vs_latency_dnn"] = times["clocked"]["median_s"] / (
        row["latency_mean"] * times["dnn"]["median_s"]
    )
    return row


def run(args, specs=None, prepared=None) -> dict:
    threads, specs, cfgs, steps = c.setup(args, specs)
    batch = args.scaling_batch
    timing = (
        c.TimingConfig(warmup=1, min_repeats=2, max_repeats=5, target_s=0.3)
        if args.quick
        else c.TimingConfig(warmup=1, min_repeats=3, max_repeats=10, target_s=1.0)
    )
    widths = args.widths or ([0.125, 0.25, 0.5] if args.quick else [0.125, 0.25, 0.5, 1.0])
    depths = args.depths or ([11, 16] if args.quick else [11, 13, 16])
    leaks = args.leaks
    ds = c.dataset("cifar10", "test")
    results: dict = {"machine": c.machine_info(), "threads": threads, "batch": batch,
                     "width": [], "depth": [], "L": [], "finetune_steps": steps}

    def untrained(width, depth):
        kwargs = {"width": width, "depth": depth, "batch_norm": True}
        torch.manual_seed(0)
        dnn = vgg_cifar(**kwargs).eval()
        gdnn = tdsnn.prepare(dnn, L=5.0, input_mean=ds.mean, input_std=ds.std).eval()
        probe = c.ProbeSpec(arch="vgg_cifar", kwargs=kwargs, dataset="cifar10", L=5.0, batch=batch,
                            mode="dnn", threads=threads, seed=0)
        return dnn, gdnn, probe

    for width in widths:
        c.log(f"scaling: width {width:g} ...")
        dnn, gdnn, probe = untrained(width, 16)
        row = measure_config(dnn, gdnn, ds, batch, timing, probe, args.memory)
        results["width"].append({"width": width, **row})
    for depth in depths:
        c.log(f"scaling: depth {depth} ...")
        dnn, gdnn, probe = untrained(0.25, depth)
        row = measure_config(dnn, gdnn, ds, batch, timing, probe, args.memory)
        results["depth"].append({"depth": depth, **row})
    spec, cfg = specs["vgg"], cfgs["vgg"]
    if prepared and "vgg" in prepared:
        dnn = prepared["vgg"][2]
    else:
        dnn, _ = c.get_dnn(spec, cfg)
    results["L_network"] = spec.label
    for L in leaks:
        c.log(f"scaling: L {L} ...")
        gdnn, _ = c.get_gdnn(spec, cfg, dnn, float(L), steps)
        probe = c.ProbeSpec(arch=spec.arch, kwargs=spec.kwargs, dataset=spec.dataset, L=float(L),
                            batch=batch, mode="dnn", threads=threads,
                            dnn_path=str(c.dnn_path(spec, cfg)),
                            gdnn_path=str(c.gdnn_path(spec, cfg, float(L), steps)) if steps > 0 else None)
        row = measure_config(dnn, gdnn, ds, batch, timing, probe, args.memory)
        results["L"].append({"L": L, **row})
    results["machine_end"] = c.machine_info()
    c.save_json("scaling", results)
    return results


def table(rows: list[dict], key: str) -> str:
    headers = [key, "M MACs/image", "latency (steps)", "DNN img/s", "closed_form img/s",
               "closed_form / DNN", "clocked img/s", "clocked / (latency x DNN)",
               "peak MiB closed_form", "peak MiB clocked"]
    out = []
    for r in rows:
        m = r["modes"]
        out.append([
            f"{r[key]:g}", r["dnn_macs"] / 1e6, f"{r['latency_mean']:.1f}",
            m["dnn"]["images_per_s"], m["closed_form"]["images_per_s"],
            f"{m['closed_form']['ratio_to_dnn']:.2f}", m["clocked"]["images_per_s"],
            f"{r['clocked_vs_latency_dnn']:.2f}",
            m["closed_form"].get("peak_mib", float("nan")), m["clocked"].get("peak_mib", float("nan")),
        ])
    return c.markdown_table(headers, out)


def report(results: dict) -> str:
    b = results["batch"]
    return "\n".join([
        f"Machine: {c.machine_line(results['machine'])}; load average at the end "
        f"{results['machine_end'].get('loadavg')}. Batch size {b}; SNNs in the default (certified) precision.",
        "", f"Width (VGG-16-style, untrained, L=5, batch {b}):", "", table(results["width"], "width"),
        "", f"Depth (width 0.25, untrained, L=5, batch {b}):", "", table(results["depth"], "depth"),
        "", f"Leak constant L ({results['L_network']}, trained, G-DNN fine-tuned "
            f"{results['finetune_steps']} steps per L, batch {b}):", "", table(results["L"], "L"),
    ])


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for col, (key, xlabel) in enumerate((("width", "width multiplier (VGG-16-style)"),
                                         ("depth", "depth (VGG-11/13/16, width 0.25)"),
                                         ("L", "leak constant L (trained VGG)"))):
        rows = results[key]
        xs = [r[key] for r in rows]
        ax = axes[0][col]
        for mode, style in (("dnn", "o-"), ("closed_form", "s-"), ("clocked", "^-")):
            ax.plot(xs, [r["modes"][mode]["images_per_s"] for r in rows], style, label=c.MODE_LABELS[mode])
        ax.set_yscale("log")
        ax.set_ylabel(f"images / s (batch {results['batch']})")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
        twin = ax.twinx()
        twin.plot(xs, [r["latency_mean"] for r in rows], "k:", alpha=0.6, label="latency (steps)")
        twin.set_ylabel("SNN latency (time steps)", fontsize=8)
        if key == "width":
            ax.set_xscale("log", base=2)
        ax = axes[1][col]
        for mode, style in (("dnn", "o-"), ("closed_form", "s-"), ("clocked", "^-")):
            ax.plot(xs, [r["modes"][mode].get("peak_mib", float("nan")) for r in rows], style,
                    label=c.MODE_LABELS[mode])
        ax.set_ylabel("peak RSS growth of one call (MiB)")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if key == "width":
            ax.set_xscale("log", base=2)
    axes[0][0].legend(fontsize=7, loc="lower left")
    return c.save_figure(fig, path, results["machine"], fontsize=8)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scaling-batch", type=int, default=None, help="default 32, quick 16")
    parser.add_argument("--widths", type=float, nargs="+", default=None)
    parser.add_argument("--depths", type=int, nargs="+", default=None)


def fill_defaults(args) -> None:
    if args.scaling_batch is None:
        args.scaling_batch = 16 if args.quick else 32
    if getattr(args, "leaks", None) is None:
        args.leaks = [1, 3, 5, 8] if args.quick else [1, 2, 3, 4, 5, 6, 7, 8]
    args.leaks = [int(v) if float(v).is_integer() else v for v in args.leaks]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_common_args(parser)
    add_args(parser)
    parser.add_argument("--leaks", type=float, nargs="+", default=None,
                        help="leak constants (default 1..8, quick 1 3 5 8)")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results here (the committed artefact: docs/performance/)")
    args = parser.parse_args(argv)
    fill_defaults(args)
    results = run(args)
    if args.json is not None:
        c.write_json(args.json, results)
    print(report(results))
    print(f"plot: {plot(results, c.CACHE / 'results' / 'scaling.png')}")


if __name__ == "__main__":
    main()
