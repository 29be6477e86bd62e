"""Where the SNN simulators spend their time: cProfile of closed_form and clocked.

One warm call, then one profiled call per (backend, dtype) on a trained network at one
batch size.  Reported: the engine's own functions (src/tdsnn) by cumulative time, and
the most expensive callees (torch kernels included) by self time, so that a slow spot
can be named by file and function.  cProfile adds overhead to Python-heavy code (the
clocked loops), so read the shares, not the absolute times.

    python benchmarks/profile_engine.py [--quick] [--profile-network vgg] [--profile-batch 32]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import time
from pathlib import Path

import common as c
import torch

import tdsnn

CONFIGS = (("closed_form", "certified"), ("closed_form", "float32"), ("clocked", "certified"))


def _name(func: tuple) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a built-in, e.g. {built-in method torch.conv2d}
    short = filename.split("/src/")[-1] if "/src/" in filename else filename.rsplit("/", 1)[-1]
    return f"{short}:{line}({name})"


def profile_call(fn, top: int = 12) -> dict:
    """Profile one call of ``fn`` (after one warm-up call)."""
    fn()
    t0 = time.perf_counter()
    fn()
    plain_s = time.perf_counter() - t0
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt or 1e-12
    rows = []
    for func, (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append({"function": _name(func), "calls": nc, "self_s": tt, "cum_s": ct,
                     "self_share": tt / total, "cum_share": ct / total,
                     "engine": "tdsnn/" in func[0] and "/src/" in func[0]})
    by_self = sorted(rows, key=lambda r: r["self_s"], reverse=True)[:top]
    engine = sorted((r for r in rows if r["engine"]), key=lambda r: r["cum_s"], reverse=True)[:top]
    return {"plain_s": plain_s, "profiled_s": total, "by_self": by_self, "engine_by_cum": engine}


def conv_kernels() -> dict[str, list[str]]:
    """The ATen kernels a Conv2d dispatches to in float32 and float64 (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    x = torch.rand(2, 8, 8, 8)
    out = {}
    for dtype in (torch.float32, torch.float64):
        layer, xx = copy.deepcopy(conv).to(dtype), x.to(dtype)
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            layer(xx)
        names = [e.key for e in prof.key_averages()]
        leaf = [n for n in names if "conv" in n.lower() and n not in
                ("aten::conv2d", "aten::convolution", "aten::_convolution")]
        out[str(dtype).replace("torch.", "")] = leaf
    return out


def run(args, specs=None, prepared=None) -> dict:
    threads, specs, cfgs, steps = c.setup(args, specs)
    results: dict = {"machine": c.machine_info(), "threads": threads, "profiles": [],
                     "dnn_float64_penalty": [], "conv_kernels": conv_kernels()}
    for role in args.profile_networks:
        spec, cfg = specs[role], cfgs[role]
        dnn, _, gdnn, _ = c.models(role, spec, cfg, steps, prepared)
        snn = tdsnn.convert(gdnn)
        ds = c.dataset(spec.dataset, "test")
        x = c.raw_images(ds, args.profile_batch)
        xn = c.normalise(x, ds)
        c.log(f"profile: {spec.label}, batch {x.shape[0]} ...")
        with torch.no_grad():
            dnn_prof = profile_call(lambda m=dnn, v=xn: m(v))
            dnn64, xn64 = copy.deepcopy(dnn).double(), xn.double()
            pair = c.time_interleaved(
                {"f32": lambda m=dnn, v=xn: m(v), "f64": lambda m=dnn64, v=xn64: m(v)},
                c.TimingConfig(),
            )
            dnn32_s, dnn64_s = pair["f32"]["median_s"], pair["f64"]["median_s"]
        results["dnn_float64_penalty"].append({"network": spec.label, "batch": x.shape[0],
                                               "dnn_f32_s": dnn32_s, "dnn_f64_s": dnn64_s})
        for backend, precision in CONFIGS:
            prof = profile_call(
                lambda s=snn, v=x, b=backend, d=precision: s.run(v, backend=b, precision=d)
            )
            prof.update(network=spec.label, batch=x.shape[0], backend=backend,
                        dtype=precision, dnn_s=dnn_prof["plain_s"])
            results["profiles"].append(prof)
    results["machine_end"] = c.machine_info()
    c.save_json("profile", results)
    return results


def report(results: dict, top: int = 8) -> str:
    kernels = "; ".join(f"{k}: `{', '.join(v)}`" for k, v in results.get("conv_kernels", {}).items())
    parts = [f"Machine: {c.machine_line(results['machine'])}.", "",
             f"Conv2d kernels dispatched by this torch build (torch.profiler): {kernels}.", ""]
    parts.append(c.markdown_table(
        ["network", "batch", "DNN forward float32 ms", "DNN forward float64 ms", "float64 / float32"],
        [[d["network"], d["batch"], 1e3 * d["dnn_f32_s"], 1e3 * d["dnn_f64_s"],
          f"{d['dnn_f64_s'] / d['dnn_f32_s']:.2f}x"] for d in results["dnn_float64_penalty"]],
    ))
    for p in results["profiles"]:
        parts += [
            "",
            f"**{p['backend']} ({p['dtype']}), {p['network']}, batch {p['batch']}**: "
            f"{1e3 * p['plain_s']:.1f} ms per call unprofiled (DNN forward: "
            f"{1e3 * p['dnn_s']:.1f} ms).",
            "",
            "Heaviest callees by self time (share of the profiled call):",
            "",
            c.markdown_table(
                ["function", "calls", "self %", "cumulative %"],
                [[f"`{r['function']}`", r["calls"], f"{100 * r['self_share']:.1f}",
                  f"{100 * r['cum_share']:.1f}"] for r in p["by_self"][:top]],
            ),
            "",
            "Engine functions (src/tdsnn) by cumulative time:",
            "",
            c.markdown_table(
                ["function", "calls", "cumulative %", "self %"],
                [[f"`{r['function']}`", r["calls"], f"{100 * r['cum_share']:.1f}",
                  f"{100 * r['self_share']:.1f}"] for r in p["engine_by_cum"][:top]],
            ),
        ]
    return "\n".join(parts)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile-networks", nargs="+", default=["lenet5", "vgg"],
                        choices=["lenet5", "vgg", "alexnet"])
    parser.add_argument("--profile-batch", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results here (the committed artefact: docs/performance/)")


def main(argv=None) -> None:
    args = c.parse_args(__doc__, add_args, argv)
    results = run(args)
    if args.json is not None:
        c.write_json(args.json, results)
    print(report(results))


if __name__ == "__main__":
    main()
