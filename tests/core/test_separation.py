"""Separation operators: exact values, limits, a brute-force sparsemax and bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kvmem.core import separation as sep
from kvmem.core.separation import SEPARATIONS, get_separation


def _distinct_scores(*shape: int, seed: int = 0) -> torch.Tensor:
    """Scores whose entries in a row differ by at least 0.1 (a random permutation / 10)."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    rows = torch.stack([torch.randperm(n, generator=g) for _ in range(int(np.prod(shape[:-1])))])
    return (rows.to(torch.float32) / 10.0).reshape(shape)


def test_softmax_large_beta_equals_hard_max() -> None:
    s = _distinct_scores(4, 3, 9)
    torch.testing.assert_close(sep.softmax(s, beta=1e4), sep.hard_max(s), rtol=0, atol=1e-6)
    # and beta matters: at beta = 1 the weights are far from one-hot
    assert (sep.softmax(s, beta=1.0) - sep.hard_max(s)).abs().max().item() > 0.5


def test_softmax_values_and_beta() -> None:
    s = torch.tensor([[0.0, 1.0, 2.0]])
    e = torch.exp(torch.tensor([0.0, 3.0, 6.0]))
    torch.testing.assert_close(sep.softmax(s, beta=3.0), (e / e.sum())[None])
    assert sep.softmax(torch.randn(2, 5, 7)).sum(-1).allclose(torch.ones(2, 5))


def test_hard_max_one_hot_first_index_on_ties() -> None:
    s = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
    expected = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert torch.equal(sep.hard_max(s), expected)


def test_top_k_one_equals_hard_max_including_ties() -> None:
    s = _distinct_scores(5, 11, seed=1)
    s[0, 3] = s[0, 7] = s[0].max() + 1  # a tie at the top
    assert torch.equal(sep.top_k(s, 1), sep.hard_max(s))
    assert torch.equal(sep.top_k(s, 1, beta=2.0), sep.hard_max(s))
    assert sep.top_k(s, 1)[0, 3] == 1.0


def test_top_k_uniform_and_softmax_weights() -> None:
    s = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    assert torch.equal(sep.top_k(s, 2), torch.tensor([[0.0, 0.5, 0.0, 0.5]]))
    w = sep.top_k(s, 2, beta=10.0)
    e = torch.exp(torch.tensor([9.0, 7.0]))
    torch.testing.assert_close(w, torch.tensor([[0.0, e[0] / e.sum(), 0.0, e[1] / e.sum()]]))


def test_top_k_clamps_and_reduces_to_softmax() -> None:
    s = torch.randn(3, 6)
    assert torch.equal(sep.top_k(s, 10), torch.full((3, 6), 1.0 / 6))
    torch.testing.assert_close(sep.top_k(s, 6, beta=2.0), sep.softmax(s, beta=2.0))


def test_top_k_ties_at_the_cut_go_to_the_lower_index() -> None:
    s = torch.tensor([[2.0, 1.0, 1.0, 1.0]])
    assert torch.equal(sep.top_k(s, 2), torch.tensor([[0.5, 0.5, 0.0, 0.0]]))


def _sparsemax_bisection(z: np.ndarray) -> np.ndarray:
    """Brute force: the tau with sum(max(z - tau, 0)) = 1, by bisection (float64)."""
    lo, hi = z.max() - 1.0, z.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(z - mid, 0).sum() > 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(z - 0.5 * (lo + hi), 0)


def test_sparsemax_hand_example() -> None:
    # sorted z = (1, 0.5, -1): support {1, 2}, tau = (1.5 - 1) / 2 = 0.25
    out = sep.sparsemax(torch.tensor([[0.5, -1.0, 1.0]], dtype=torch.float64))
    assert torch.equal(out, torch.tensor([[0.25, 0.0, 0.75]], dtype=torch.float64))


@settings(max_examples=60, deadline=None)
@given(
    z=arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(1, 12)),
        elements=st.floats(-5, 5, allow_nan=False, allow_subnormal=False),
    ),
    beta=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_sparsemax_matches_bisection_reference(z: np.ndarray, beta: float) -> None:
    out = sep.sparsemax(torch.from_numpy(z), beta=beta).numpy()
    ref = np.stack([_sparsemax_bisection(beta * row) for row in z])
    np.testing.assert_allclose(out, ref, atol=1e-9)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-12)
    assert (out >= 0).all()


def test_sparsemax_is_sparse_and_beta_sharpens() -> None:
    s = torch.linspace(-2, 2, 9)[None]
    w = sep.sparsemax(s)
    assert int((w == 0).sum()) >= 5 and abs(w.sum().item() - 1) < 1e-6
    assert torch.equal(sep.sparsemax(s, beta=100.0), sep.hard_max(s))
    torch.testing.assert_close(sep.sparsemax(s, beta=2.0), sep.sparsemax(2.0 * s))


def test_sparsemax_gradcheck() -> None:
    # a generic point (no score exactly at tau, where sparsemax has a kink)
    s = torch.tensor([[0.3, -0.2, 0.9, 0.05, 0.25]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sep.sparsemax, (s,))


def test_polynomial_threshold_identity_values() -> None:
    s = torch.tensor([[-1.0, 0.0, 0.5, 2.0]])
    assert torch.equal(sep.polynomial(s, n=3), torch.tensor([[0.0, 0.0, 0.125, 8.0]]))
    torch.testing.assert_close(
        sep.polynomial(s, n=2, normalize=True), torch.tensor([[0.0, 0.0, 0.25, 4.0]]) / 4.25
    )
    # a row with no positive score stays zero (no 0/0)
    assert torch.equal(sep.polynomial(-torch.ones(1, 3), normalize=True), torch.zeros(1, 3))
    assert torch.equal(sep.threshold(s, theta=0.5), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    assert torch.equal(sep.threshold(s), torch.tensor([[0.0, 1.0, 1.0, 1.0]]))
    assert sep.identity(s) is s


@pytest.mark.parametrize(
    "name,params",
    [
        ("identity", {}),
        ("softmax", {"beta": 2.0}),
        ("hard_max", {}),
        ("top_k", {"k": 3}),
        ("top_k", {"k": 2, "beta": 1.5}),
        ("polynomial", {"n": 3, "normalize": True}),
        ("threshold", {"theta": 0.2}),
        ("sparsemax", {"beta": 2.0}),
    ],
)
def test_operators_act_row_wise_over_leading_dims(name: str, params: dict) -> None:
    fn = get_separation(name, **params)
    s = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    out = fn(s)
    assert out.shape == s.shape and out.dtype == torch.float64
    for idx in np.ndindex(2, 3, 4):
        assert torch.equal(out[idx], fn(s[idx][None])[0])


def test_aliases_and_registry() -> None:
    assert get_separation("max") is sep.hard_max
    assert get_separation("linear") is sep.identity
    assert SEPARATIONS["topk"] is sep.top_k
    assert set(SEPARATIONS) >= {"identity", "softmax", "hard_max", "top_k", "sparsemax"}
    assert sep.separation_name(sep.hard_max) == "hard_max"
    s = torch.tensor([[1.0, 3.0, 2.0]])
    assert torch.equal(get_separation("topk", k=2)(s), torch.tensor([[0.0, 0.5, 0.5]]))
    custom = lambda s, scale=1.0: s * scale  # noqa: E731
    assert torch.equal(get_separation(custom, scale=2.0)(s), 2.0 * s)


@pytest.mark.parametrize("name", ["softmax", "sparsemax", "top_k"])
@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_bad_beta_names_beta(name: str, beta: float) -> None:
    extra = {"k": 2} if name == "top_k" else {}
    with pytest.raises(ValueError, match="beta"):
        get_separation(name, beta=beta, **extra)
    with pytest.raises(ValueError, match="beta"):
        sep.SEPARATIONS[name](torch.zeros(1, 3), beta=beta, **extra)


def test_bad_k_n_theta_and_names() -> None:
    with pytest.raises(ValueError, match="k: expected an integer >= 1, got 0"):
        get_separation("top_k", k=0)
    with pytest.raises(ValueError, match="k"):
        sep.top_k(torch.zeros(1, 3), k=-2)
    with pytest.raises(ValueError, match="k: separation 'top_k' needs"):
        get_separation("top_k")
    with pytest.raises(ValueError, match="n: expected a number >= 1"):
        get_separation("polynomial", n=0.5)
    with pytest.raises(ValueError, match="theta"):
        get_separation("threshold", theta=float("inf"))
    with pytest.raises(ValueError, match="beta: separation 'hard_max' takes no parameter"):
        get_separation("hard_max", beta=2.0)
    with pytest.raises(ValueError, match="unknown operator 'argmax'.*hard_max.*softmax"):
        get_separation("argmax")


# --- top_k through torch.topk: the same result as the stable sort, ties included ----------


_TIE_VALUES = [-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, float("inf"), float("-inf"), float("nan")]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 4),
    n=st.integers(1, 60),
    k=st.integers(1, 70),
    data=st.data(),
)
def test_first_k_topk_equals_stable_sort_on_ties(rows: int, n: int, k: int, data) -> None:
    # tie-heavy rows: a handful of values (signed zeros, infinities, NaN) repeated at random
    vals = data.draw(st.lists(st.sampled_from(_TIE_VALUES), min_size=rows * n, max_size=rows * n))
    s = torch.tensor(vals, dtype=torch.float32).reshape(rows, n)
    k = min(k, n)
    got_v, got_i = sep._first_k_topk(s, k)
    ref_v, ref_i = sep._first_k_sorted(s, k)
    assert torch.equal(got_i, ref_i)
    assert torch.equal(got_v.view(torch.int32), ref_v.view(torch.int32))  # bit for bit


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(300, 3000),
    k=st.integers(1, 12),
    levels=st.integers(2, 6),
    seed=st.integers(0, 999),
)
def test_top_k_fast_path_equals_sorted_reference(n: int, k: int, levels: int, seed: int) -> None:
    # long rows take the topk path; few distinct levels put ties across the cut in most rows
    assert n >= sep._TOPK_MIN_N
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, levels, (3, 2, n), generator=g).float()
    s[0] += torch.rand(2, n, generator=g)  # and rows without ties
    ref_v, ref_i = sep._first_k_sorted(s, k)
    got_v, got_i = sep._first_k(s, k)
    assert torch.equal(got_i, ref_i) and torch.equal(got_v, ref_v)
    w = sep.top_k(s, k, beta=2.0)
    ref_w = torch.zeros_like(s).scatter(-1, ref_i, torch.softmax(ref_v * 2.0, dim=-1))
    assert torch.equal(w, ref_w)
    # the documented tie rule: top_k(k=1) agrees with hard_max
    assert torch.equal(sep.top_k(s, 1), sep.hard_max(s))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(300, 3000), k=st.integers(1, 12), seed=st.integers(0, 999))
def test_top_k_without_ties_equals_sorted_reference(n: int, k: int, seed: int) -> None:
    # continuous scores: every row strictly decreasing at the top, the early-return path
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(4, 3, n, generator=g)
    vals, _ = torch.topk(s, k + 1, dim=-1)
    assert bool((vals[..., :-1] > vals[..., 1:]).all())
    ref_v, ref_i = sep._first_k_sorted(s, k)
    got_v, got_i = sep._first_k(s, k)
    assert torch.equal(got_i, ref_i) and torch.equal(got_v, ref_v)
