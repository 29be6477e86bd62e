"""Two processes (gloo on CPU) reproduce one: training weights and evaluation metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch import nn

import tdsnn
from tdsnn.cli import main
from tdsnn.distributed import (
    ShardSampler,
    context,
    make_eval_loader,
    make_train_loader,
    set_epoch,
)
from tdsnn.evaluation import evaluate
from tdsnn.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


GLOBAL_BATCH = 32


def tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 3 * 3, 16), nn.ReLU(), nn.Linear(16, 3),
    )  # fmt: skip


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(192, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (192,), generator=g)
    for k in range(3):
        x[y == k, :, :, 3 * k : 3 * k + 2] += 1.0
    return x, y


def train_and_evaluate(out: Path) -> tuple[nn.Module, dict, dict]:
    """What each rank (or the single process) does; rank 0 returns the results."""
    x, y = tiny_data()
    model = tiny_model()
    history = train(
        model, make_train_loader(x, y, GLOBAL_BATCH, seed=5), epochs=2, lr=3e-3,
        progress=False, checkpoint_path=out / "state.safetensors", checkpoint_every=4,
        eval_loader=make_eval_loader(x, y, 50),
    )  # fmt: skip
    gdnn = tdsnn.prepare(model, L=4.0).eval()
    snn = tdsnn.convert(gdnn)
    evaluation = evaluate(model, gdnn, snn, (x[:90], y[:90]), backends=("closed_form",),
                          batch_size=20, progress=False)  # fmt: skip
    evaluation.pop("timing_s")
    # one sample for two processes: the second rank has nothing and still takes part
    single = evaluate(model, gdnn, snn, (x[:1], y[:1]), backends=("clocked",), progress=False)
    evaluation["one_sample"] = {k: single[k] for k in ("samples", "latency", "spikes_per_layer")}
    return model, history, evaluation


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        assert context().world_size == world and context().rank == rank
        model, history, evaluation = train_and_evaluate(Path(out))
        if rank == 0:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      f"{out}/weights.safetensors")  # fmt: skip
            Path(out, "results.json").write_text(json.dumps([history["epochs"], evaluation]))
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    model, history, evaluation = train_and_evaluate(single_dir)
    ddp_weights = load_file(tmp_path / "weights.safetensors")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ddp_weights[key], value, rtol=0, atol=1e-5)
    ddp_history, ddp_evaluation = json.loads((tmp_path / "results.json").read_text())
    for a, b in zip(ddp_history, history["epochs"], strict=True):
        assert a["eval_samples"] == b["eval_samples"] == 192
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=1 / 192)
        assert a["eval_top1"] == pytest.approx(b["eval_top1"], abs=1 / 192)
    assert ddp_evaluation["samples"] == 90  # every sample once, none padded
    assert ddp_evaluation["one_sample"] == evaluation["one_sample"]
    assert evaluation["one_sample"]["samples"] == 1
    assert ddp_evaluation["agreement"] == {"closed_form": 1.0}
    assert ddp_evaluation["latency"]["min"] == evaluation["latency"]["min"]
    assert ddp_evaluation["latency"]["max"] == evaluation["latency"]["max"]
    assert ddp_evaluation["spikes_per_layer"] == evaluation["spikes_per_layer"]
    assert ddp_evaluation["accuracy"]["dnn"]["top1"] == pytest.approx(
        evaluation["accuracy"]["dnn"]["top1"], abs=1 / 90
    )


def test_global_batches_do_not_depend_on_the_process_count():
    """Rank r takes its share of the same global batch; the shares make up the batch."""
    x = torch.arange(96).reshape(96, 1).float()
    y = torch.arange(96)
    single = make_train_loader(x, y, 16, seed=3)
    set_epoch(single, 2)
    one = [b[1].tolist() for b in single]
    shares = []
    for rank in range(4):
        loader = make_train_loader(x, y, 16, seed=3, ctx=_ctx(rank, 4))
        set_epoch(loader, 2)
        shares.append([b[1].tolist() for b in loader])
    for step, batch in enumerate(one):
        merged = sorted(sum((share[step] for share in shares), []))
        assert merged == sorted(batch)
    assert len(ShardSampler(10, 1, 4)) == 3 and list(ShardSampler(10, 1, 4)) == [1, 5, 9]


def _ctx(rank: int, world: int):
    from tdsnn.distributed import DistContext

    return DistContext(rank=rank, world_size=world)


def test_torchrun_cli_training_matches_one_process(tmp_path):
    args = ["train", "--train-limit", "256", "--test-limit", "64", "--epochs", "1",
            "--batch-size", "32", "--quiet", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tdsnn.cli", *args, "--out", str(tmp_path / "ddp")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("DNN saved to") == 1  # rank 0 only
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    a = load_file(tmp_path / "ddp" / "dnn.safetensors")
    b = load_file(tmp_path / "one" / "dnn.safetensors")
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)
    meta = json.loads((tmp_path / "ddp" / "dnn.json").read_text())["metadata"]
    assert meta["metrics"]["eval_samples"] == 64
