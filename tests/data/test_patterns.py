"""Tests for kvmem.data.patterns: generators and corruptions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.data.patterns import (
    _smallest_mask,
    add_gaussian_noise,
    correlated_patterns,
    drop_pixels,
    flip_bits,
    make_generator,
    mask_bottom_half,
    mask_fraction,
    random_patterns,
    random_subset_mask,
    sparse_patterns,
)


def test_random_patterns_shape_values_and_balance() -> None:
    x = random_patterns(50, 40, batch_shape=(3, 2), seed=0)
    assert x.shape == (3, 2, 50, 40)
    assert x.dtype == torch.float32
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(x.mean())) < 0.02  # 12,000 fair coins: sd of the mean ~0.009


def test_random_patterns_reproducible_from_seed_and_generator() -> None:
    a = random_patterns(5, 8, seed=3)
    b = random_patterns(5, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, random_patterns(5, 8, seed=4))
    g = torch.Generator().manual_seed(0)
    first, second = random_patterns(5, 8, generator=g), random_patterns(5, 8, generator=g)
    assert not torch.equal(first, second)  # the generator advances


def test_random_patterns_dtype_and_int_batch_shape() -> None:
    x = random_patterns(2, 3, batch_shape=4, seed=0, dtype=torch.float64)
    assert x.shape == (4, 2, 3) and x.dtype == torch.float64


def test_make_generator_rejects_both_and_bad_types() -> None:
    with pytest.raises(ValueError, match="either generator or seed"):
        make_generator(torch.Generator(), 1)
    with pytest.raises(TypeError, match="seed"):
        make_generator(None, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        make_generator(3)  # type: ignore[arg-type]
    assert make_generator() is None


def test_sparse_patterns_exact_and_bernoulli() -> None:
    x = sparse_patterns(30, 100, 0.1, exact=True, seed=0)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(x.sum(-1) == 10)
    y = sparse_patterns(200, 100, 0.1, seed=1)
    assert abs(float(y.mean()) - 0.1) < 0.01  # 20,000 draws: sd 0.002
    assert not torch.all(y.sum(-1) == 10)


def test_correlated_patterns_overlap_with_template() -> None:
    out = correlated_patterns(400, 200, 4, 0.6, seed=0)
    assert out.patterns.shape == (400, 200)
    assert out.templates.shape == (4, 200)
    assert out.labels.shape == (400,) and int(out.labels.max()) < 4
    own = out.templates[out.labels]
    overlap = (out.patterns * own).mean(-1)
    assert abs(float(overlap.mean()) - 0.6) < 0.01  # 80,000 bits
    # same-template patterns overlap ~ correlation^2 = 0.36, others ~ 0
    same = out.labels[:, None] == out.labels[None, :]
    gram = out.patterns @ out.patterns.T / 200
    off = ~torch.eye(400, dtype=torch.bool)
    assert abs(float(gram[same & off].mean()) - 0.36) < 0.02
    assert abs(float(gram[~same].mean())) < 0.02


def test_correlated_patterns_extremes() -> None:
    out = correlated_patterns(10, 16, 2, 1.0, seed=0)
    assert torch.equal(out.patterns, out.templates[out.labels])
    with pytest.raises(ValueError, match="correlation"):
        correlated_patterns(10, 16, 2, 1.5)


def test_random_subset_mask_exact_count_and_uniform() -> None:
    g = torch.Generator().manual_seed(0)
    m = random_subset_mask((2000, 10), 3, generator=g)
    assert torch.all(m.sum(-1) == 3)
    freq = m.float().mean(0)  # each position chosen with probability 0.3
    assert torch.all((freq - 0.3).abs() < 0.04)
    with pytest.raises(ValueError, match="k"):
        random_subset_mask((2, 5), 6)


def test_mask_fraction_exact_protocol_cue() -> None:
    x = random_patterns(100, 40, seed=0)
    cue = mask_fraction(x, 0.6, seed=1)
    zero = cue == 0
    assert torch.all(zero.sum(-1) == 24)  # exactly 60 % of 40
    assert torch.equal(cue[~zero], x[~zero])
    assert not bool((x == 0).any())  # input untouched


def test_mask_fraction_bernoulli_and_bounds() -> None:
    x = torch.ones(300, 50)
    cue = mask_fraction(x, 0.3, seed=0, exact=False)
    assert abs(float((cue == 0).float().mean()) - 0.3) < 0.02
    assert torch.equal(mask_fraction(x, 0.0, seed=0), x)
    assert torch.all(mask_fraction(x, 1.0, seed=0) == 0)
    with pytest.raises(ValueError, match="frac"):
        mask_fraction(x, -0.1)


def test_flip_bits_flips_exactly() -> None:
    x = random_patterns(20, 50, seed=0)
    y = flip_bits(x, 0.2, seed=1)
    assert torch.all((y != x).sum(-1) == 10)
    assert torch.equal(y.abs(), x.abs())
    overlap = (x * y).mean(-1)
    assert torch.allclose(overlap, torch.full((20,), 0.6))


def test_add_gaussian_noise_scale() -> None:
    x = torch.zeros(200, 100, dtype=torch.float64)
    y = add_gaussian_noise(x, 0.5, seed=0)
    assert y.dtype == torch.float64
    assert abs(float(y.std()) - 0.5) < 0.01
    assert torch.equal(add_gaussian_noise(x, 0.0, seed=0), x)
    with pytest.raises(ValueError, match="sigma"):
        add_gaussian_noise(x, -1.0)


def test_mask_bottom_half_images() -> None:
    img = torch.arange(2 * 784, dtype=torch.float32).reshape(2, 784) + 1
    out = mask_bottom_half(img)
    grid = out.reshape(2, 28, 28)
    assert torch.all(grid[:, 14:] == 0)
    assert torch.equal(grid[:, :14], img.reshape(2, 28, 28)[:, :14])
    assert torch.all(img > 0)  # input untouched
    odd = mask_bottom_half(torch.ones(1, 15), height=5, width=3)
    assert torch.equal(odd.reshape(5, 3)[:3], torch.ones(3, 3))  # 5 // 2 = 2 rows masked
    assert torch.all(odd.reshape(5, 3)[3:] == 0)
    with pytest.raises(ValueError, match="784"):
        mask_bottom_half(torch.ones(3, 100))


def test_drop_pixels_random_count() -> None:
    img = torch.ones(400, 784)
    out = drop_pixels(img, 0.25, seed=0)
    dropped = (out == 0).float().sum(-1)
    assert abs(float(dropped.mean()) / 784 - 0.25) < 0.01
    assert dropped.unique().numel() > 1  # counts vary, unlike mask_fraction


def test_corruptions_accept_numpy() -> None:
    x = np.ones((4, 10), dtype=np.float32)
    assert isinstance(mask_fraction(x, 0.5, seed=0), torch.Tensor)
    assert isinstance(flip_bits(x, 0.5, seed=0), torch.Tensor)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64])
def test_random_patterns_are_the_int64_bit_stream_in_any_dtype(dtype: torch.dtype) -> None:
    # Drawing the bits in the output dtype must not change the random stream: the same
    # generator state gives 2 b - 1 of the int64 draws, and the same state afterwards.
    ref_gen, gen = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ref = 2 * torch.randint(0, 2, (3, 17, 9), generator=ref_gen) - 1
    out = random_patterns(17, 9, batch_shape=(3,), generator=gen, dtype=dtype)
    assert out.dtype == dtype
    assert torch.equal(out, ref.to(dtype))
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=ref_gen))


def test_random_subset_mask_is_the_ranks_below_k() -> None:
    # one argsort and a scatter select exactly the entries whose rank is below k
    for k in (0, 1, 5, 12):
        gen, ref_gen = torch.Generator().manual_seed(k), torch.Generator().manual_seed(k)
        mask = random_subset_mask((4, 6, 12), k, generator=gen)
        ranks = torch.rand((4, 6, 12), generator=ref_gen, dtype=torch.float64).argsort(-1)
        assert torch.equal(mask, ranks.argsort(-1) < k)
        assert bool((mask.sum(-1) == k).all())


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 12),
    n=st.integers(1, 40),
    k_frac=st.floats(0.0, 1.0),
    levels=st.sampled_from([0, 2, 3, 8]),  # 0: continuous noise; else ties on few values
    seed=st.integers(0, 10_000),
)
def test_smallest_mask_marks_the_argsorts_first_k(
    rows: int, n: int, k_frac: float, levels: int, seed: int
) -> None:
    # the selection marks exactly the entries the sort puts first, ties at the border
    # included (there the sort itself decides)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand((rows, n), generator=gen, dtype=torch.float64)
    if levels:
        u = torch.floor(u * levels) / levels
    k = round(k_frac * n)
    ref = torch.zeros(rows, n, dtype=torch.bool).scatter_(-1, u.argsort(-1)[:, :k], True)
    assert torch.equal(_smallest_mask(u, k), ref)
