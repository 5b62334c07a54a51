"""Tests for the consolidation experiment (Kim & Fanselow 1992; Wiltgen & Silva 2007)."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.systems import consolidation as C


@pytest.fixture(scope="module")
def result():
    return C.run(C.Config())


def test_contract_series_and_intervals(result) -> None:
    s = result.series
    assert s["lesion_day"] == [1, 7, 14, 28]
    for key in ("recall_lesion", "recall_sham", "recall_lesion_content", "recall_sham_content"):
        assert len(s[key]) == 4
        assert all(0.0 <= x <= 100.0 for x in s[key])
        for m, (lo, hi) in zip(s[key], s[f"{key}_ci"], strict=True):
            assert lo - 1e-9 <= m <= hi + 1e-9
    assert s["generalization_day"] == [1, 7, 14, 28, 36]
    assert len(s["generalization_by_day"]) == 5
    assert len(s["generalization_by_day_ci"]) == 5
    assert result.metrics["n_subjects"] == 50


def test_ribot_gradient_on_the_default_protocol(result) -> None:
    """Kim & Fanselow's pattern: abolished at 1 d, largely spared at 7-28 d, sham intact."""
    m = result.metrics
    assert m["recall_lesion_day1"] < 25 and m["recall_sham_day1"] > 90
    assert m["recall_lesion_day14"] > 0.75 * m["recall_sham_day14"]
    assert m["recall_lesion_day28"] > 0.75 * m["recall_sham_day28"]
    assert m["gradient"] > 40
    assert min(result.series["recall_sham"]) > 70


def test_generalisation_grows_and_the_content_model_has_no_gradient(result) -> None:
    s, m = result.series, result.metrics
    assert m["generalization_day1"] < 20 < 40 < m["generalization_day36"]
    # the cortex can at most generalise in proportion to the cue similarity (0.6)
    assert m["generalization_day36"] < 75
    assert max(s["recall_lesion_content"]) == 0.0
    # without consolidation the intact content model forgets as its traces are overwritten
    assert m["recall_sham_day28_content"] < m["recall_sham_day28"] - 20
    assert s["generalization_by_day_content"] == pytest.approx([100.0] * 5)


def test_result_is_strict_json(result) -> None:
    import json

    back = json.loads(result.to_json())
    assert back["series"].keys() == result.series.keys()


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(C, result)
    assert claims and all(held for _, held in claims), claims


def test_without_replay_there_is_no_gradient() -> None:
    res = C.run(C.Config(n_subjects=10, replay_prob=0.0, architectures=("key-value",)))
    assert max(res.series["recall_lesion"]) == 0.0
    held = dict(check_claims(C, res))
    assert held[C.CLAIMS[2].text] is False


def test_quick_run_and_plot(result) -> None:
    res = C.run(C.quick(C.Config()))
    assert res.series["lesion_day"] == [1, 7]
    claims = check_claims(C, res)
    assert all(held is not False for _, held in claims), claims
    assert isinstance(C.plot(res), Figure)
    assert isinstance(C.plot(result), Figure)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="lesion_days"):
        C.Config(lesion_days=(7, 1))
    with pytest.raises(ValueError, match="architectures"):
        C.Config(architectures=("content",))
    with pytest.raises(ValueError, match="similar_cosine"):
        C.Config(similar_cosine=1.0)
