"""to_float and make_loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from tdsnn.data import DatasetError, ImageDataset, make_loader, to_float


@pytest.fixture
def dataset() -> ImageDataset:
    images = torch.arange(10, dtype=torch.uint8).mul(25).view(10, 1, 1, 1).expand(10, 1, 2, 2)
    return ImageDataset(images.contiguous(), torch.arange(10), 10, list("0123456789"), "toy")


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_to_float(scale: float) -> None:
    x = to_float(torch.tensor([0, 51, 255], dtype=torch.uint8), scale)
    assert x.dtype == torch.float32
    assert x[0] == 0 and x[2] == scale  # exact end points
    assert x[1] == pytest.approx(0.2 * scale)


def test_to_float_rejects_float_input() -> None:
    with pytest.raises(DatasetError, match="uint8"):
        to_float(torch.zeros(3))


def _order(loader) -> list[int]:
    return [int(v) for _, y in loader for v in y]


def test_loader_batches_in_order(dataset: ImageDataset) -> None:
    loader = make_loader(dataset, batch_size=4, shuffle=False, seed=0, scale=2.0)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (4, 1, 2, 2) and y.dtype == torch.int64
    torch.testing.assert_close(x[:, 0, 0, 0], y.float() * 25 / 255 * 2.0)
    assert _order(loader) == list(range(10))


def test_loader_shuffle_is_seeded(dataset: ImageDataset) -> None:
    a = _order(make_loader(dataset, 3, shuffle=True, seed=1, scale=1.0))
    b = _order(make_loader(dataset, 3, shuffle=True, seed=1, scale=1.0))
    c = _order(make_loader(dataset, 3, shuffle=True, seed=2, scale=1.0))
    assert a == b and sorted(a) == list(range(10)) and a != list(range(10)) and a != c


def test_loader_limit(dataset: ImageDataset) -> None:
    assert _order(make_loader(dataset, 4, False, 0, 1.0, limit=5)) == [0, 1, 2, 3, 4]
    assert len(_order(make_loader(dataset, 4, False, 0, 1.0, limit=50))) == 10
    with pytest.raises(DatasetError):
        make_loader(dataset, 0, False, 0, 1.0)


def test_loader_distributed(dataset: ImageDataset, tmp_path: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        loader = make_loader(dataset, 4, shuffle=True, seed=3, scale=1.0, distributed=True)
        assert isinstance(loader.sampler, DistributedSampler)
        first = _order(loader)
        assert sorted(first) == list(range(10)) and first == _order(loader)
        loader.sampler.set_epoch(1)
        assert _order(loader) != first
    finally:
        dist.destroy_process_group()
