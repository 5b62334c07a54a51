"""Tests for the repulsion experiment (Chanales et al. 2017; the paper's reversal prediction)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.systems import repulsion as R


@pytest.fixture(scope="module")
def result():
    return R.run(R.Config())


def test_contract_series_and_metrics(result) -> None:
    s, m = result.series, result.metrics
    assert s["step"] == list(range(0, 3001, 50))
    for key in (
        "key_similarity_similar_pairs",
        "key_similarity_unrelated_pairs",
        "value_similarity_similar_pairs",
    ):
        assert len(s[key]) == len(s["step"])
        assert len(s[f"{key}_ci"]) == len(s["step"])
        assert all(-1.0 - 1e-9 <= x <= 1.0 + 1e-9 for x in s[key])
    for key in ("repulsion", "relaxation"):
        assert math.isfinite(m[key])
        lo, hi = s[f"{key}_ci"]
        assert lo <= m[key] <= hi
    assert m["n_seeds"] == 20


def test_repulsion_and_relaxation_on_the_default_protocol(result) -> None:
    s, m = result.series, result.metrics
    t = s["step"].index(1000)
    # repulsion is defined as unrelated minus similar-pair key similarity at the end of learning
    gap = s["key_similarity_unrelated_pairs"][t] - s["key_similarity_similar_pairs"][t]
    assert m["repulsion"] == pytest.approx(gap, abs=1e-9)
    assert 0.4 < m["repulsion"] < 0.8  # measured 0.59
    assert s["key_similarity_similar_pairs"][t] < -0.4  # anti-correlated, not just separated
    assert m["value_similarity_similar_end_of_learning"] > 0.7
    # after the demand is gone the pair comes back to (past) the unrelated level
    assert m["relaxation"] > 0.9
    assert s["key_similarity_similar_pairs"][-1] > s["key_similarity_similar_pairs"][t] + 0.4


def test_the_contrasts_do_not_repel(result) -> None:
    m = result.metrics
    assert m["repulsion_free_norm"] < -0.1
    assert m["repulsion_tied"] < -0.3
    assert "relaxation_free_norm" not in m  # nothing to undo
    assert m["key_similarity_similar_end_of_learning_tied"] > 0.2


def test_result_is_strict_json(result) -> None:
    import json

    back = json.loads(result.to_json())
    assert back["series"].keys() == result.series.keys()


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(R, result)
    assert claims and all(held for _, held in claims), claims


def test_without_the_demand_there_is_no_repulsion() -> None:
    """With ``demand_weight = 0`` nothing asks for the pair to be told apart: no repulsion."""
    res = R.run(replace(R.quick(R.Config()), demand_weight=0.0))
    assert res.metrics["repulsion"] < 0
    assert check_claims(R, res)[0][1] is False


def test_items_start_as_specified() -> None:
    c = R.Config(n_seeds=200, n_pairs=4, d_key=64, d_content=8)
    items = R.make_items(c, torch.Generator().manual_seed(0))
    k = items["keys"]
    twin = R.pearson(k[:, 0::2], k[:, 1::2]).mean()
    unrelated = R.pearson(k[:, 0::2], k[:, 1::2].roll(1, 1)).mean()  # member 2 of pair p-1
    assert abs(float(twin) - 0.9) < 0.02 and abs(float(unrelated)) < 0.02
    t = items["targets"]
    assert torch.equal(t[:, 0::2, :8], t[:, 1::2, :8])  # the shared content
    assert torch.equal(t[:, 0::2, 8:].argmax(-1), torch.zeros(200, 4, dtype=torch.long))
    assert torch.equal(t[:, 1::2, 8:].argmax(-1), torch.ones(200, 4, dtype=torch.long))
    ctx = items["context"]
    assert torch.allclose(ctx[:, 0::2], ctx[:, 1::2])


@settings(max_examples=30, deadline=None)
@given(d=st.integers(2, 32), seed=st.integers(0, 10_000), shift=st.floats(-3, 3))
def test_pearson_matches_numpy_and_is_shift_invariant(d: int, seed: int, shift: float) -> None:
    import numpy as np

    g = torch.Generator().manual_seed(seed)
    a = torch.randn(5, d, generator=g, dtype=torch.float64)
    b = torch.randn(5, d, generator=g, dtype=torch.float64)
    ref = [np.corrcoef(x, y)[0, 1] for x, y in zip(a.numpy(), b.numpy(), strict=True)]
    assert torch.allclose(R.pearson(a, b), torch.tensor(ref, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(R.pearson(a + shift, 2.0 * b), R.pearson(a, b), atol=1e-9)


def test_quick_run_and_plot(result) -> None:
    res = R.run(R.quick(R.Config()))
    claims = check_claims(R, res)
    assert all(held is not False for _, held in claims), claims
    assert isinstance(R.plot(res), Figure)
    assert isinstance(R.plot(result), Figure)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_pairs"):
        R.Config(n_pairs=1)
    with pytest.raises(ValueError, match="log_every"):
        R.Config(log_every=7)
    with pytest.raises(ValueError, match="initial_similarity"):
        R.Config(initial_similarity=1.0)
