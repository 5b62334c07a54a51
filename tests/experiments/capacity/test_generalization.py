"""Tests for the generalization experiment (docs/science.md 4 item 3)."""

from __future__ import annotations

import json

import pytest
import torch
from matplotlib.figure import Figure

from kvmem.experiments.capacity import generalization as G


@pytest.fixture(scope="module")
def result() -> G.Result:
    return G.run(G.Config())


def test_intermediate_beta_beats_nearest_neighbour(result: G.Result) -> None:
    m, errors = result.metrics, result.series["error_softmax"]
    assert m["error_softmax_best"] < 0.8 * m["error_max"]
    best = errors.index(min(errors))
    assert 0 < best < len(errors) - 1  # an interior optimum: U-shaped error
    assert 30 <= m["best_beta"] <= 3000  # kernel width ~ key spacing (1/16)


def test_very_large_beta_approaches_max(result: G.Result) -> None:
    m = result.metrics
    assert m["error_softmax_largest_beta"] == pytest.approx(m["error_max"], rel=0.01)
    # and approaches it from below (blending between near-tied neighbours still helps)
    errors = result.series["error_softmax"]
    assert errors[-3] <= errors[-2] <= errors[-1] + 1e-12


def test_identity_and_oversmoothing_are_poor(result: G.Result) -> None:
    m = result.metrics
    assert m["error_identity"] > 10 * m["error_max"]
    assert m["error_identity"] > max(result.series["error_softmax"])
    assert m["error_softmax_smallest_beta"] > 10 * m["error_max"]  # beta = 1: global mean


def test_curves_for_the_figure(result: G.Result) -> None:
    s = result.series
    n = len(s["curve_x"])
    assert len(s["curve_true"]) == len(s["curve_max"]) == len(s["curve_identity"]) == n
    assert all(len(c) == n for c in s["curve_softmax"])
    assert len(s["curve_softmax"]) == len(s["curve_softmax_betas"]) == 3
    # max is a staircase through the stored values
    assert set(round(v, 12) for v in s["curve_max"]) <= set(
        round(v, 12) for v in s["stored_values"]
    )
    json.loads(result.to_json())
    fig = G.plot(result)
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_neg_squared_euclidean() -> None:
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 5, 3, generator=g), torch.randn(2, 7, 3, generator=g)
    ref = -torch.cdist(q, k).square()
    assert torch.allclose(G.neg_squared_euclidean(q, k), ref, atol=1e-5)


def test_quick_and_value_noise() -> None:
    res = G.run(G.quick(G.Config(value_noise=0.2)))
    assert len(res.series["beta"]) == 7
    # with noisy values, averaging neighbours helps even more than without
    assert res.metrics["best_softmax_vs_max"] < 0.8


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="betas"):
        G.Config(betas=(10.0, 1.0))
    with pytest.raises(ValueError, match="n_keys"):
        G.Config(n_keys=1)


def test_errors_carry_95_percent_intervals(result: G.Result) -> None:
    """Each error is a mean over the 50 memories with a Student-t interval; the headline
    comparison (best softmax below max) holds beyond its paired interval."""
    s, m = result.series, result.metrics
    ci = s["error_softmax_ci"]
    assert len(ci) == len(s["beta"])
    assert all(lo <= v <= hi for v, (lo, hi) in zip(s["error_softmax"], ci, strict=True))
    for key in ("error_max", "error_identity", "error_softmax_best"):
        lo, hi = m[f"{key}_ci"]
        assert 0 < lo < m[key] < hi
    assert s["error_max_ci"] == [m["error_max_ci"]]
    # recompute one interval from scratch: max's per-memory errors
    cfg = G.Config()
    gen = torch.Generator().manual_seed(cfg.seed)
    keys = torch.rand(cfg.n_trials, cfg.n_keys, 1, generator=gen, dtype=torch.float64)
    keys = keys.sort(dim=1).values
    values = G.target_function(keys)
    lo, hi = keys[:, :1], keys[:, -1:]
    q = lo + (hi - lo) * torch.rand(
        cfg.n_trials, cfg.n_queries, 1, generator=gen, dtype=torch.float64
    )
    mem = G.SlotMemory(G.neg_squared_euclidean, "hard_max", beta=None)
    mem.write(keys, values)
    per = (mem.read(q) - G.target_function(q)).square().mean((-2, -1))
    t = 2.0096  # Student t, 49 degrees of freedom, 97.5 %
    half = t * float(per.std()) / cfg.n_trials**0.5
    assert m["error_max_ci"] == pytest.approx(
        [float(per.mean()) - half, float(per.mean()) + half], rel=1e-3
    )
    lo, hi = m["best_softmax_vs_max_ci"]
    assert lo < m["best_softmax_vs_max"] < hi < 1.0
    fig = G.plot(result)
    assert len(fig.axes[1].collections) >= 1  # the softmax band
