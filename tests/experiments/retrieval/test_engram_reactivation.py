"""Tests for the engram-reactivation experiment (Ryan et al. 2015; Roy et al. 2017)."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.retrieval import engram_reactivation as E


@pytest.fixture(scope="module")
def result():
    return E.run(E.Config())


def test_contract_series_and_metrics(result) -> None:
    s, m = result.series, result.metrics
    assert s["stimulation"] == list(E.Config().stimulation)
    for key in ("recall_stimulated_amnesic", "recall_stimulated_control"):
        assert len(s[key]) == len(s["stimulation"]) == len(s[f"{key}_ci"])
        assert all(0.0 <= v <= 100.0 for v in s[key])
    for key in (
        "recall_natural_control",
        "recall_natural_amnesic",
        "recall_stimulated_amnesic_max",
    ):
        assert 0.0 <= m[key] <= 100.0


def test_natural_recall_fails_after_amnesia(result) -> None:
    m = result.metrics
    assert m["recall_natural_control"] >= 70.0
    assert m["recall_natural_amnesic"] <= 10.0
    assert m["recall_natural_amnesic_ci"][1] < m["recall_natural_control_ci"][0]


def test_direct_reactivation_restores_recall_dose_dependently(result) -> None:
    s, m = result.series, result.metrics
    amnesic = s["recall_stimulated_amnesic"]
    assert amnesic[0] <= 5.0  # light off
    assert all(b >= a - 1.0 for a, b in zip(amnesic, amnesic[1:], strict=False))
    assert m["recall_stimulated_amnesic_max"] >= 95.0
    assert m["recall_stimulated_amnesic_max"] >= m["recall_natural_control"]
    # at low power the amnesic engram gives only partial recall where controls recall fully
    control = s["recall_stimulated_control"]
    i = next(j for j, v in enumerate(control) if v >= 90.0)
    assert amnesic[i] < 50.0
    # the dose needed scales as 1 / key strength: the light's pull goes through the key
    ratio = m["half_max_stimulation_amnesic"] / m["half_max_stimulation_control"]
    assert ratio == pytest.approx(1 / E.Config().key_strength_amnesic, rel=0.35)


def test_storage_contrast_never_recovers(result) -> None:
    m = result.metrics
    assert m["recall_natural_amnesic_storage"] <= 10.0
    assert m["recall_stimulated_amnesic_max_storage"] < 5.0
    # controls are identical in the two models (nothing was weakened)
    assert (
        result.series["recall_stimulated_control_storage"]
        == (result.series["recall_stimulated_control"])
    )


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(E, result)
    assert claims and all(held for _, held in claims), claims


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_claims_hold_over_seeds(seed: int) -> None:
    res = E.run(E.Config(seed=seed))
    assert all(held for _, held in check_claims(E, res))


def test_full_key_strength_means_no_amnesia() -> None:
    res = E.run(E.Config(key_strength_amnesic=1.0, n_animals=50))
    m = res.metrics
    assert m["recall_natural_amnesic"] == pytest.approx(m["recall_natural_control"])


def test_quick_run_and_plot() -> None:
    res = E.run(E.quick(E.Config()))
    assert all(held is not False for _, held in check_claims(E, res))
    assert isinstance(E.plot(res), Figure)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="stimulation"):
        E.Config(stimulation=(1.0, 2.0))
    with pytest.raises(ValueError, match="key_strength_amnesic"):
        E.Config(key_strength_amnesic=1.5)
    with pytest.raises(ValueError, match="recall_threshold"):
        E.Config(recall_threshold=1.0)
