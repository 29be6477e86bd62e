"""The level test (:mod:`tdsnn.snn.level_test`): every neuron an error of its
pre-activation could move is flagged, and little else."""

import math
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdsnn.snn import level_test as level

# The test runs in slices of whole samples; each test also runs with one sample per
# slice, so that the per-slice search and threshold are exercised across slices.
CHUNKS = [1, level.COARSE_CHUNK]


def _exact_T(a: torch.Tensor, L: float) -> torch.Tensor:
    """T(a) in float64 for a level test (boundaries exp(k/L) - 1)."""
    return torch.ceil(L * torch.log1p(a.double().clamp(min=0)))


# Layouts of the boundary test's groups: a linear layer whose samples are one group or
# groups of 32, conv maps that are one group each, groups of 32 inside a map, and groups of
# 32 that straddle maps; a size shared by the batch, or one per channel (grouped convs).
LAYOUTS = {
    "linear-40": ((6, 40), "sample"), "linear-64": ((5, 64), "sample"),
    "conv-planes": ((3, 5, 4, 6), "sample"), "conv-groups": ((3, 4, 8, 8), "sample"),
    "conv-straddle": ((4, 8, 2, 2), "sample"), "shared": ((3, 4, 8, 8), "batch"),
    "per-channel": ((3, 4, 4, 8), "channel"),
}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(L=st.sampled_from([0.5, 1.0, 2.0, 5.0, 8.0]), gamma_exp=st.integers(-7, -3),
       seed=st.integers(0, 2**31 - 1), layout=st.sampled_from(sorted(LAYOUTS)),
       chunk=st.sampled_from(CHUNKS))  # fmt: skip
def test_level_test_flags_every_neuron_an_error_could_move(L, gamma_exp, seed, layout, chunk):
    """Unflagged neurons keep their T for every A' within the error bound; values placed
    on, just below and just above level boundaries (and below zero) included; and only
    neurons that near a boundary are flagged (the per-group first stage adds none)."""
    gen = torch.Generator().manual_seed(seed)
    shape, per = LAYOUTS[layout]
    linear = len(shape) == 2
    k = torch.randint(0, 30, shape, generator=gen).double()
    offset = (torch.rand(shape, generator=gen, dtype=torch.float64) - 0.5)
    scale = torch.where(torch.rand(shape, generator=gen) < 0.5, 1e-6, 0.5).double()
    A = (torch.expm1(k / L) + offset * scale).float()  # near or between boundaries
    A.view(-1)[:7] = torch.tensor([0.0, -0.0, -1e-8, -3.0, 1e-30, -0.05, 2.0**-126])
    size_shape = (shape[0], 1) if linear else (shape[0], 1, *shape[2:])
    if per == "batch":
        size_shape = (1, *size_shape[1:])
    elif per == "channel":
        size_shape = shape
    size = torch.rand(size_shape, generator=gen) * 10 + 0.1
    channel = torch.rand(shape[1], generator=gen) + 0.5
    gamma = 10.0**gamma_exp
    with mock.patch.object(level, "COARSE_CHUNK", chunk):
        t, flat = level.level_test(A, size, gamma, L, channel, offset=0.25)
    flagged = torch.zeros(A.numel(), dtype=torch.bool)
    flagged[flat] = True
    assert torch.equal(flat, torch.sort(flat).values)  # ascending, no duplicates
    assert flat.unique().numel() == flat.numel()
    bound = (size * channel.reshape((1, -1) + (1,) * (A.dim() - 2)) + 0.25).double() * gamma
    safe = ~flagged.reshape(A.shape)
    for sign in (-1.0, -0.5, 0.0, 0.5, 1.0):  # the ends and inside of A +- bound
        moved = _exact_T(A.double() + sign * bound, L)
        assert torch.equal(moved[safe], t.double()[safe]), (sign, L, gamma)
    # Tight: a flagged neuron lies within (a generous multiple of) its own bound of a boundary.
    y = L * torch.log1p(A.double().clamp(min=math.expm1(-0.5 / L)))
    gap = (y - y.round()).abs()
    eta = 10.0 * 2.0**-24 * (float(t.max()) + 1.0) + 2.0**-22  # float32's own error in Y
    reach = 4.0 * L * bound / math.exp(-0.5 / L) + 2.0 * eta  # kappa <= e, 1 + c >= exp(-1/(2L))
    assert bool((gap <= reach).reshape(-1)[flat].all()), layout
    # and the test is not empty-handed: values 1e-6 from a boundary are flagged at gamma >= 1e-5
    if gamma_exp >= -5:
        close = ((offset.abs() * scale < 1e-7) & (k > 0)).reshape(-1)
        close[:7] = False  # the special values written over the first neurons
        assert bool(flagged[close].all())


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_level_test_finds_lone_neurons_near_a_boundary(layout, chunk, monkeypatch):
    """Every neuron at mid-level but a few, each alone in its group, placed inside its
    error bound of a boundary yet far beyond float32's own error there: the per-group first
    stage must pass their groups on, and the second keep exactly them."""
    L, gamma = 5.0, 1e-4
    shape, per = LAYOUTS[layout]
    gen = torch.Generator().manual_seed(len(layout))
    k = torch.randint(1, 8, shape, generator=gen).double()
    A = torch.expm1((k - 0.5) / L)  # mid-level: far from both boundaries
    chosen = torch.randperm(A.numel(), generator=gen)[: max(2, A.numel() // 97)]
    size_shape = {"sample": (shape[0], 1, *shape[2:]), "batch": (1, 1, *shape[2:]),
                  "channel": shape}[per] if len(shape) > 2 else (shape[0], 1)  # fmt: skip
    size = torch.rand(size_shape, generator=gen) + 0.5
    channel = torch.rand(shape[1], generator=gen) + 0.5
    bound = (size * channel.reshape((1, -1) + (1,) * (len(shape) - 2))).expand(shape).double()
    sign = torch.where(torch.rand(chosen.shape, generator=gen) < 0.5, -0.5, 0.4).double()
    flat_k = k.reshape(-1)[chosen]
    A.view(-1)[chosen] = torch.expm1(flat_k / L) + sign * gamma * bound.reshape(-1)[chosen]
    monkeypatch.setattr(level, "COARSE_CHUNK", chunk)
    t, flat = level.level_test(A.float(), size, gamma, L, channel)
    assert set(flat.tolist()) == set(chosen.tolist()), layout
    assert torch.equal(t.double().reshape(-1)[chosen], torch.where(sign < 0, flat_k, flat_k + 1))


def test_level_test_matches_the_float64_times_away_from_boundaries():
    gen = torch.Generator().manual_seed(3)
    A = (torch.rand(64, 8, 5, 5, generator=gen) * 40 - 5).float()
    t, flat = level.level_test(A, torch.full((64, 1, 5, 5), 1.0), 1e-6, 5.0)
    keep = torch.ones(A.numel(), dtype=torch.bool)
    keep[flat] = False
    assert torch.equal(t.reshape(-1)[keep].double(), _exact_T(A, 5.0).reshape(-1)[keep])
    assert flat.numel() < 0.01 * A.numel()
