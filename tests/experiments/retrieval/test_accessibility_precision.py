"""Tests for the accessibility-versus-precision experiment (Berens, Richards & Horner 2020)."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.retrieval import accessibility_precision as A

MODELS = ("kv", "value_decay")


@pytest.fixture(scope="module")
def result():
    return A.run(A.Config())


def test_contract_series_and_metrics(result) -> None:
    s = result.series
    assert s["delay"] == [0, 1, 2, 3]
    for m in MODELS:
        for key in (f"p_retrieved_{m}", f"precision_{m}"):
            assert len(s[key]) == 4 and len(s[f"{key}_ci"]) == 4
        assert all(0.0 <= v <= 1.0 for v in s[f"p_retrieved_{m}"])
        assert all(v > 0 for v in s[f"precision_{m}"])


def test_kv_loses_access_not_precision(result) -> None:
    s, m = result.series, result.metrics
    p = s["p_retrieved_kv"]
    assert all(a > b for a, b in zip(p, p[1:], strict=False))  # falls at every delay
    assert m["p_retrieved_drop_kv"] >= 0.25
    assert 0.75 <= m["precision_ratio_kv"] <= 1.33
    lo, hi = m["precision_ratio_kv_ci"]
    assert lo < 1.0 < hi  # no detectable change in precision, as in humans
    # the encoding precision (wrapped normal sd 0.3 rad: kappa ~ 11) is what comes back
    assert all(8.0 <= k <= 16.0 for k in s["precision_kv"])


def test_value_decay_loses_precision_not_access(result) -> None:
    m = result.metrics
    assert abs(m["p_retrieved_drop_value_decay"]) < 0.05
    assert m["precision_ratio_value_decay"] < 0.4
    k = result.series["precision_value_decay"]
    assert all(a > b for a, b in zip(k, k[1:], strict=False))


def test_unretrieved_pairs_are_still_stored(result) -> None:
    assert result.metrics["stored_retrievable_kv"] >= 80.0


def test_mixture_fit_tracks_true_access(result) -> None:
    s = result.series
    for m in MODELS:
        for fit, true, pooled in zip(
            s[f"p_retrieved_{m}"], s[f"true_access_{m}"], s[f"p_retrieved_pooled_{m}"], strict=True
        ):
            assert fit == pytest.approx(true, abs=0.05)
            assert pooled == pytest.approx(fit, abs=0.05)


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(A, result)
    assert claims and all(held for _, held in claims), claims


@pytest.mark.parametrize("seed", [1, 2])
def test_the_dissociation_holds_over_seeds(seed: int) -> None:
    res = A.run(A.Config(seed=seed))
    claims = check_claims(A, res)
    assert all(held for _, held in claims), claims


def test_quick_run_and_plot() -> None:
    res = A.run(A.quick(A.Config()))
    assert res.series["delay"] == [0, 3]
    assert all(held is not False for _, held in check_claims(A, res))
    assert isinstance(A.plot(res), Figure)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="delays"):
        A.Config(delays=(0,))
    with pytest.raises(ValueError, match="delays"):
        A.Config(delays=(2, 1))
    with pytest.raises(ValueError, match="rho_day"):
        A.Config(rho_day=1.5)
    with pytest.raises(ValueError, match="items_per_delay"):
        A.Config(items_per_delay=0)
