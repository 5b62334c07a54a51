"""Key maps built for discrimination (kvmem.core.key_maps; docs/science.md 1.5, 1.7, 4 item 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.key_maps import (
    CenteredKeys,
    ExpansionKWTAKeys,
    LinearKeys,
    WhitenedKeys,
    kwta,
)


def _correlated(gen: torch.Generator, n: int, d: int, *batch: int) -> torch.Tensor:
    """Items with strongly correlated features (a random mixing of independent sources)."""
    z = torch.randn(*batch, n, d, generator=gen, dtype=torch.float64)
    mix = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return z @ mix + 3.0


def _cov(k: torch.Tensor) -> torch.Tensor:
    kc = k - k.mean(-2, keepdim=True)
    return kc.transpose(-1, -2) @ kc / k.shape[-2]


# ----------------------------------------------------------------------------- whitening


@pytest.mark.parametrize("kind", ["zca", "pca"])
def test_whitening_gives_identity_covariance_on_fitted_items(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    items = _correlated(gen, 400, 20)
    assert float(_cov(items).diagonal().std()) > 1.0  # the raw features are far from white
    keys = WhitenedKeys(kind, shrinkage=0.0, normalize=False).fit_transform(items)
    assert keys.shape == (400, 20)
    torch.testing.assert_close(_cov(keys), torch.eye(20, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(
        keys.mean(0), torch.zeros(20, dtype=torch.float64), atol=1e-9, rtol=0
    )


def test_whitening_is_batched_over_memories_and_broadcasts_queries() -> None:
    gen = torch.Generator().manual_seed(1)
    items = _correlated(gen, 300, 12, 3)  # three independent memories
    wk = WhitenedKeys(shrinkage=0.0, normalize=False).fit(items)
    keys = wk(items)
    eye = torch.eye(12, dtype=torch.float64).expand(3, 12, 12)
    torch.testing.assert_close(_cov(keys), eye, atol=1e-9, rtol=0)
    # each memory's parameters equal a separate fit on its own items
    for b in range(3):
        single = WhitenedKeys(shrinkage=0.0, normalize=False).fit(items[b])
        torch.testing.assert_close(single(items[b]), keys[b], atol=1e-8, rtol=0)
    # one set of queries [Q, D] is mapped by every memory: [3, Q, D]
    q = torch.randn(5, 12, generator=gen, dtype=torch.float64)
    assert wk(q).shape == (3, 5, 12)


def test_whitening_with_fewer_items_than_features_whitens_their_span() -> None:
    gen = torch.Generator().manual_seed(2)
    items = torch.rand(8, 30, generator=gen, dtype=torch.float64)  # rank 7 after centring
    keys = WhitenedKeys(shrinkage=0.0, normalize=False).fit_transform(items)
    ev = torch.linalg.eigvalsh(_cov(keys))
    # covariance of the whitened items is a projector: 7 eigenvalues 1, the rest 0
    torch.testing.assert_close(ev[-7:], torch.ones(7, dtype=torch.float64), atol=1e-8, rtol=0)
    assert float(ev[:-7].abs().max()) < 1e-8
    # the stored (centred) items become mutually orthogonal directions of equal length
    g = keys @ keys.T
    assert float(g.diagonal().std() / g.diagonal().mean()) < 1e-8


def test_whitening_shrinkage_interpolates_towards_centred_keys() -> None:
    gen = torch.Generator().manual_seed(3)
    items = _correlated(gen, 100, 16)
    q = items + 0.5 * torch.randn(items.shape, generator=gen, dtype=torch.float64)
    centred = CenteredKeys("items").fit(items)(q)
    far = WhitenedKeys(shrinkage=1e8).fit(items)(q)
    near = WhitenedKeys(shrinkage=0.0).fit(items)(q)
    assert float((far * centred).sum(-1).min()) > 1 - 1e-6
    assert float((near * centred).sum(-1).mean()) < 0.99
    # unit-length keys by default
    torch.testing.assert_close(far.norm(dim=-1), torch.ones(100, dtype=torch.float64))


def test_whitening_pca_components_and_bad_arguments() -> None:
    items = torch.rand(50, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    keys = WhitenedKeys("pca", shrinkage=0.0, n_components=3, normalize=False).fit_transform(items)
    assert keys.shape == (50, 3)
    torch.testing.assert_close(_cov(keys), torch.eye(3, dtype=torch.float64), atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="shrinkage"):
        WhitenedKeys(shrinkage=-1.0)
    with pytest.raises(ValueError, match="kind"):
        WhitenedKeys("svd")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="fit"):
        WhitenedKeys().transform(items)
    with pytest.raises(ValueError, match=r"x: expected feature dimension D = 10"):
        WhitenedKeys().fit(items).transform(torch.rand(3, 11, dtype=torch.float64))
    with pytest.raises(ValueError, match="items"):
        WhitenedKeys().fit(torch.rand(0, 10))
    with pytest.raises(ValueError, match="NaN"):
        WhitenedKeys().fit(torch.full((3, 4), float("nan")))


# ----------------------------------------------------------------------------- kWTA


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 5),
    m=st.integers(1, 60),
    frac=st.floats(0.01, 1.0),
    output=st.sampled_from(["binary", "rectified"]),
    ties=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_kwta_keeps_exactly_k_units(
    rows: int, m: int, frac: float, output: str, ties: bool, seed: int
) -> None:
    k = max(1, min(m, round(frac * m)))
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, m, generator=gen)
    if ties:
        h = h.round()  # many exactly equal drives
    out = kwta(h, k, output)  # type: ignore[arg-type]
    assert out.shape == h.shape
    assert ((out != 0).sum(-1) == k).all()
    assert (out >= 0).all()
    if output == "binary":
        assert set(out.unique().tolist()) <= {0.0, 1.0}
    # the winners are the most driven units: every winner's drive >= every loser's
    win = out != 0
    lo = torch.where(win, h, torch.full_like(h, float("inf"))).amin(-1)
    hi = torch.where(~win, h, torch.full_like(h, float("-inf"))).amax(-1)
    assert (lo >= hi).all()


def test_expansion_kwta_keys_are_sparse_exact_and_reproducible() -> None:
    gen = torch.Generator().manual_seed(5)
    items = torch.rand(2, 30, 64, generator=gen)
    emap = ExpansionKWTAKeys(n_units=500, active_fraction=0.04, seed=7).fit(items)
    keys = emap(items)
    assert keys.shape == (2, 30, 500)
    assert ((keys != 0).sum(-1) == 20).all()
    torch.testing.assert_close(keys.norm(dim=-1), torch.ones(2, 30))
    again = ExpansionKWTAKeys(n_units=500, active_fraction=0.04, seed=7).fit(items)(items)
    assert torch.equal(keys, again)
    other = ExpansionKWTAKeys(n_units=500, active_fraction=0.04, seed=8).fit(items)(items)
    assert not torch.equal(keys, other)
    rect = ExpansionKWTAKeys(n_units=500, active_fraction=0.04, output="rectified").fit(items)
    assert ((rect(items) != 0).sum(-1) == 20).all()
    # an identical cue gives the identical code; a uniformly brighter cue too (self-centring)
    assert torch.equal(emap(items[0, :3] + 0.25), keys[0, :3])
    with pytest.raises(ValueError, match="active_fraction"):
        ExpansionKWTAKeys(active_fraction=0.0)
    with pytest.raises(ValueError, match="k: expected at most"):
        kwta(torch.zeros(2, 3), 4)


def test_expansion_separates_similar_inputs_more_than_their_cosine() -> None:
    """Pattern separation: two similar inputs share a smaller fraction of active units
    than their cosine (the code overlap falls faster than the input overlap)."""
    gen = torch.Generator().manual_seed(6)
    a = torch.randn(200, 100, generator=gen)
    b = a + 0.6 * torch.randn(200, 100, generator=gen)
    emap = ExpansionKWTAKeys(n_units=4000, active_fraction=0.05, center="none").fit(a)
    overlap = (emap(a) * emap(b)).sum(-1)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    assert float(overlap.mean()) < float(cos.mean()) - 0.1


# ----------------------------------------------------------------------------- centred, linear


def test_centered_self_keys_give_pearson_correlation() -> None:
    gen = torch.Generator().manual_seed(9)
    x = torch.rand(6, 40, generator=gen, dtype=torch.float64)
    keys = CenteredKeys("self").fit_transform(x)
    np.testing.assert_allclose((keys @ keys.T).numpy(), np.corrcoef(x.numpy()), atol=1e-12)
    items_map = CenteredKeys("items", normalize=False).fit(x)
    torch.testing.assert_close(items_map(x), x - x.mean(0))
    with pytest.raises(ValueError, match="center"):
        CenteredKeys("median")  # type: ignore[arg-type]


def test_linear_keys_apply_a_given_map() -> None:
    gen = torch.Generator().manual_seed(10)
    w = torch.randn(2, 8, 3, generator=gen, dtype=torch.float64)
    mu = torch.randn(2, 8, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 5, 8, generator=gen, dtype=torch.float64)
    lk = LinearKeys(w, mu)
    expected = torch.nn.functional.normalize((x - mu[:, None]) @ w, dim=-1)
    torch.testing.assert_close(lk(x), expected)
    assert lk.d_out == 3
    assert LinearKeys(w, mu, normalize=False)(x).norm(dim=-1).std() > 0
    with pytest.raises(ValueError, match="mean"):
        LinearKeys(w, torch.zeros(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="x: expected feature dimension D = 8"):
        lk(torch.zeros(5, 9, dtype=torch.float64))


def test_linear_keys_failed_fit_leaves_the_map_usable() -> None:
    w = torch.randn(8, 4, dtype=torch.float64)
    keys = LinearKeys(w)
    with pytest.raises(ValueError, match=r"items: expected feature dimension D = 8.*\[3, 5\]"):
        keys.fit(torch.randn(3, 5))
    assert keys.d_in == 8
    x = torch.randn(3, 8, dtype=torch.float32)  # fit / transform keep the weight's dtype
    out = keys.fit(x).transform(x)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.nn.functional.normalize(x.double() @ w, dim=-1))


def test_kwta_rectified_is_margin_over_best_loser() -> None:
    h = torch.tensor([[0.1, 3.0, 2.0, -1.0, 1.5]])
    out = kwta(h, 2, "rectified")
    floor = 1.5 * 1e-6  # max margin 1.5 -> floor 1.5e-6
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.5 + floor, 0.5 + floor, 0.0, 0.0]]))
    every = kwta(h, 5, "rectified")  # all units win: margins over the weakest winner
    assert bool((every > 0).all())
    torch.testing.assert_close(every - every.amin(), h - h.amin())
    with pytest.raises(ValueError, match="output"):
        kwta(h, 2, "soft")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 30),
    d=st.integers(2, 40),
    units=st.integers(4, 80),
    frac=st.floats(0.05, 1.0),
    output=st.sampled_from(["binary", "rectified"]),
    normalize=st.booleans(),
)
def test_expansion_codes_written_in_place_are_the_plain_composition_bit_for_bit(
    n: int, d: int, units: int, frac: float, output: str, normalize: bool
) -> None:
    # The map writes its k-WTA code over its own projection and normalises it in place;
    # that must equal kwta (a fresh block) and F.normalize exactly, with autograd too.
    g = torch.Generator().manual_seed(n * 1000 + d * 10 + units)
    items = torch.rand(2, n, d, generator=g)
    kmap = ExpansionKWTAKeys(units, frac, output=output, normalize=normalize, seed=n).fit(items)
    x = torch.rand(2, 5, d, generator=g)
    c = x - x.mean(dim=-1, keepdim=True)
    plain = kwta(c @ kmap.projection, kmap.k, output)
    if normalize:
        plain = torch.nn.functional.normalize(plain, dim=-1, eps=1e-12)
    assert torch.equal(kmap(x), plain)
    xg = x.clone().requires_grad_(True)
    out = kmap(xg)
    assert torch.equal(out.detach(), plain)
    if output == "rectified":
        out.sum().backward()
        assert xg.grad is not None
