"""The SNN's max-pool kernel (running maxima of strided views) equals ``F.max_pool2d``."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tdsnn.snn.layers import window_max


@settings(max_examples=150, deadline=None)
@given(kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       padding=st.integers(0, 1), ceil_mode=st.booleans(),
       height=st.integers(1, 11), width=st.integers(1, 11), seed=st.integers(0, 2**31 - 1))  # fmt: skip
def test_window_max_is_max_pool2d(kernel, stride, padding, ceil_mode, height, width, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-4, 50, (2, 3, height, width), generator=gen).float()
    x[x < 0] = -float("inf")  # silent neurons of the sparse coding
    try:
        ref = F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode)
    except RuntimeError:  # PyTorch refuses the shape: so do we
        with pytest.raises(RuntimeError):
            window_max(x, kernel, stride, padding, ceil_mode)
        return
    got = window_max(x, kernel, stride, padding, ceil_mode)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert torch.equal(got, ref)


def test_window_max_never_returns_a_view_of_its_input():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    for kernel, stride in ((1, 1), (1, 2), (2, 1), (2, 2)):
        out = window_max(x, kernel, stride)
        out.add_(100)
        assert float(x.max()) == 15.0
