"""The compiled Manhattan kernel (core.manhattan_kernel): cdist's sums, bit for bit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core import manhattan_kernel as mk
from kvmem.core.similarity import neg_manhattan

pytestmark = pytest.mark.skipif(not mk.available(), reason="numba is not installed")


def _case(seed: int, c: int, s: int, q: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-like items (k / 255, mostly zeros) and noisy / zeroed / dropped queries."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(0, 256, (s, n, d), generator=g).float() / 255.0
    items *= torch.rand(s, n, d, generator=g) < 0.3
    queries = torch.rand(c, s, q, d, generator=g)
    queries[0] += torch.randn(queries[0].shape, generator=g)  # noise, unclipped
    if c > 1:
        queries[1, ..., d // 2 :] = 0.0  # masked
    return queries, items


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 40),
    st.integers(1, 600),
    st.integers(1, 100),
    st.sampled_from([1, 2]),
    st.integers(0, 10_000),
)
def test_kernel_is_cdist_bit_for_bit(c, s, q, n, d, threads, seed) -> None:  # noqa: ANN001
    # tiles of 16 queries x 256 items, so these shapes cover partial tiles on both axes
    queries, items = _case(seed, c, s, q, n, d)
    expected = neg_manhattan(queries, items.expand(c, *items.shape))
    got = mk.neg_manhattan_sequential(queries, items.transpose(-1, -2), threads=threads)
    assert got.shape == (c, s, q, n) and got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_kernel_at_the_protocol_size_and_an_exact_match() -> None:
    queries, items = _case(0, 3, 2, 20, 1000, 784)
    queries[2, 1, 3] = items[1, 7]  # an exact match: distance 0, score -0.0 like cdist
    expected = neg_manhattan(queries, items.expand(3, *items.shape))
    for threads in (1, 2):
        got = mk.neg_manhattan_sequential(queries, items.transpose(-1, -2).contiguous(), threads)
        assert torch.equal(got, expected)
        assert got[2, 1, 3, 7] == 0.0


def test_kernel_refuses_other_dtypes_and_mismatched_shapes() -> None:
    queries, items = _case(1, 1, 2, 3, 5, 4)
    with pytest.raises(TypeError):
        mk.neg_manhattan_sequential(queries.double(), items.transpose(-1, -2))
    with pytest.raises(ValueError, match="items_t"):
        mk.neg_manhattan_sequential(queries, items)  # not transposed: [S, N, D]
