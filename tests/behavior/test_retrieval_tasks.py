"""Tests for the shared retrieval-failure analyses: AUC, gamma, the circular mixture model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kvmem.behavior.retrieval_tasks import (
    auc,
    batched_auc_gamma,
    fit_mixture_model,
    goodman_kruskal_gamma,
    mixture_nll,
    wrap_angle,
)


def _pairs(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Brute force over positive-negative pairs: (concordant, discordant, ties)."""
    pos, neg = scores[labels], scores[~labels]
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).sum()), float((diff < 0).sum()), float((diff == 0).sum())


labelled = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 5), min_size=n, max_size=n),  # few values: many ties
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(labelled)
def test_auc_and_gamma_equal_the_pairwise_definitions(data) -> None:
    s, y = np.array(data[0], dtype=float), np.array(data[1], dtype=bool)
    c, d, t = _pairs(s, y)
    if y.all() or not y.any():
        assert math.isnan(auc(s, y)) and math.isnan(goodman_kruskal_gamma(s, y))
        return
    assert auc(s, y) == pytest.approx((c + 0.5 * t) / (c + d + t), abs=1e-12)
    g = goodman_kruskal_gamma(s, y)
    if c + d == 0:
        assert math.isnan(g)
    else:
        assert g == pytest.approx((c - d) / (c + d), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(2, 30))
def test_batched_auc_gamma_equals_the_per_row_statistics(seed: int, rows: int, n: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 4, (rows, n), generator=gen).double()  # ties on purpose
    y = torch.rand(rows, n, generator=gen) < 0.5
    m = torch.rand(rows, n, generator=gen) < 0.7
    a, g = batched_auc_gamma(s, y, m)
    assert a.shape == g.shape == (rows,)
    for i in range(rows):
        for got, want in (
            (a[i], auc(s[i][m[i]], y[i][m[i]])),
            (g[i], goodman_kruskal_gamma(s[i][m[i]], y[i][m[i]])),
        ):
            if math.isnan(want):
                assert math.isnan(float(got))
            else:
                assert float(got) == pytest.approx(want, abs=1e-12)


def test_batched_auc_gamma_validation() -> None:
    with pytest.raises(ValueError, match="labels"):
        batched_auc_gamma(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mask"):
        batched_auc_gamma(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 60))
def test_gamma_is_two_auc_minus_one_without_ties(seed: int, n: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(n, generator=gen, dtype=torch.float64)  # continuous: no ties
    y = torch.arange(n) % 2 == 0
    assert goodman_kruskal_gamma(s, y) == pytest.approx(2 * auc(s, y) - 1, abs=1e-12)


def test_auc_extremes_and_validation() -> None:
    assert auc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    assert auc([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == 0.0
    assert auc([1.0, 1.0], [0, 1]) == 0.5
    with pytest.raises(ValueError, match="labels"):
        auc([0.1, 0.2, 0.3], [0, 1])


@settings(max_examples=50, deadline=None)
@given(st.floats(-50, 50, allow_nan=False))
def test_wrap_angle_range_and_equivalence(x: float) -> None:
    w = float(wrap_angle(torch.tensor(x, dtype=torch.float64)))
    assert -math.pi <= w < math.pi
    assert math.cos(w) == pytest.approx(math.cos(x), abs=1e-9)
    assert math.sin(w) == pytest.approx(math.sin(x), abs=1e-9)


def test_mixture_nll_matches_scipy_densities() -> None:
    e = np.linspace(-3.0, 3.0, 13)
    p, kappa = 0.7, 6.0
    like = p * stats.vonmises.pdf(e, kappa) + (1 - p) / (2 * math.pi)
    params = np.array([math.log(p / (1 - p)), math.log(kappa)])
    assert mixture_nll(params, e) == pytest.approx(-np.log(like).sum(), rel=1e-10)
    # large kappa must not overflow (scaled Bessel function)
    assert math.isfinite(mixture_nll(np.array([0.0, math.log(5e3)]), e))


@pytest.mark.parametrize(("p", "kappa"), [(0.8, 10.0), (0.4, 4.0)])
def test_fit_mixture_model_recovers_generating_parameters(p: float, kappa: float) -> None:
    rng = np.random.default_rng(0)
    n = 4000
    retrieved = rng.random(n) < p
    errors = np.where(retrieved, rng.vonmises(0.0, kappa, n), rng.uniform(-math.pi, math.pi, n))
    p_hat, k_hat = fit_mixture_model(errors)
    assert p_hat == pytest.approx(p, abs=0.05)
    assert k_hat == pytest.approx(kappa, rel=0.2)


def test_fit_mixture_model_on_pure_guessing_gives_low_p() -> None:
    errors = np.random.default_rng(1).uniform(-math.pi, math.pi, 3000)
    p_hat, _ = fit_mixture_model(errors)
    assert p_hat < 0.1
    with pytest.raises(ValueError, match="errors"):
        fit_mixture_model([])
