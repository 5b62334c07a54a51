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


@settings(max_examples=15, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 40),
    st.integers(1, 50),
    st.integers(0, 20),
    st.integers(0, 20),
)
def test_written_into_a_block_of_a_larger_matrix_gives_the_same_bits(
    s: int, q: int, n: int, row0: int, col0: int
) -> None:
    # out= a strided block (as the score matrices' chunks): every entry as a fresh result.
    queries, items = _case(s * 100 + q + n, 1, s, q, n, 24)
    items_t = items.transpose(-1, -2).contiguous()
    fresh = mk.neg_manhattan_sequential(queries, items_t, threads=1)
    big = torch.full((1, s, q + row0 + 3, n + col0 + 5), 7.0)
    block = big[..., row0 : row0 + q, col0 : col0 + n]
    got = mk.neg_manhattan_sequential(queries, items_t, threads=1, out=block)
    assert got is block
    assert torch.equal(block, fresh)
    outside = big.clone()
    outside[..., row0 : row0 + q, col0 : col0 + n] = 7.0
    assert bool((outside == 7.0).all())  # nothing written outside the block


def test_out_of_the_wrong_shape_or_dtype_is_refused() -> None:
    queries, items = _case(1, 1, 2, 3, 4, 5)
    items_t = items.transpose(-1, -2).contiguous()
    with pytest.raises(ValueError, match="out: expected a float32 tensor of shape"):
        mk.neg_manhattan_sequential(queries, items_t, out=torch.empty(1, 2, 3, 5))
    with pytest.raises(ValueError, match="out: expected a float32 tensor of shape"):
        mk.neg_manhattan_sequential(queries, items_t, out=torch.empty(1, 2, 3, 4).double())
