"""Tests for the A-B/A-C retroactive interference experiment (Barnes & Underwood 1959)."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.retrieval import ab_ac as A

MODELS = ("kv", "sgd", "delta")


@pytest.fixture(scope="module")
def result():
    return A.run(A.Config())


def test_contract_series_and_metrics(result) -> None:
    s, m = result.series, result.metrics
    assert s["ac_trials"] == [0, 1, 5, 10, 20]
    for model in MODELS:
        assert len(s[f"first_list_recall_{model}"]) == 5
        assert len(s[f"second_list_recall_{model}"]) == 5
        assert 0 <= m[f"first_list_after_20_{model}"] <= 100
    assert m["rmse_first_list_kv"] >= 0


def test_kv_loses_the_first_list_gradually_and_partially(result) -> None:
    curve = result.series["first_list_recall_kv"]
    assert all(a >= b - 1e-9 for a, b in zip(curve, curve[1:], strict=False))
    assert 30 <= result.metrics["first_list_after_20_kv"] <= 75
    assert result.metrics["rmse_first_list_kv"] < 12


def test_gradient_and_delta_models_interfere_catastrophically(result) -> None:
    assert result.metrics["first_list_after_20_sgd"] < 10
    assert result.metrics["first_list_after_20_delta"] < 10


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(A, result)
    assert claims and all(held for _, held in claims), claims


def test_quick_run_and_plot() -> None:
    res = A.run(A.quick(A.Config()))
    assert isinstance(A.plot(res), Figure)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        A.Config(n_pairs=0)
