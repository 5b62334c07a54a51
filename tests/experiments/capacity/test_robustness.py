"""Tests for the robustness experiment (SCIENCE.md 4 item 2)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.capacity import robustness as R


@pytest.fixture(scope="module")
def result() -> R.Result:
    return R.run(replace(R.Config(), n_trials=20))


def test_max_is_perfect_on_clean_cues(result: R.Result) -> None:
    m = result.metrics
    assert m["accuracy_max_noise0"] == 100.0
    assert m["value_error_max_noise0"] == pytest.approx(0.0, abs=1e-12)
    # soft selection pays for blending on clean cues
    assert m["value_error_softmax_4_noise0"] > 0.2


def test_softer_selection_wins_value_error_at_high_noise(result: R.Result) -> None:
    m = result.metrics
    assert result.series["noise"][-1] == 3.0
    assert m["value_error_max_noise_max"] > 1.2  # wrong snaps cost ~2 each
    assert m["value_error_softmax_4_noise_max"] < 0.9
    assert m["value_error_max_noise_max"] > 1.3 * m["value_error_softmax_4_noise_max"]
    # the softer the softmax, the earlier it overtakes max
    cross = [m[f"crossover_noise_softmax_{b}"] for b in (4, 8, 16, 64)]
    assert all(math.isfinite(c) for c in cross)
    assert cross == sorted(cross, reverse=True)
    assert 1.0 < cross[0] < 2.5


def test_max_is_never_beaten_on_identification(result: R.Result) -> None:
    s = result.series
    acc_max = s["accuracy_max"]
    for key in R.operator_keys(R.Config()):
        for a, b in zip(s[f"accuracy_{key}"], acc_max, strict=True):
            assert a <= b + 1.0  # sampling slack: 1,280 queries per level


def test_matched_softmax_is_the_lower_envelope(result: R.Result) -> None:
    s = result.series
    others = [k for k in R.operator_keys(R.Config()) if k != "softmax_matched"]
    for j, e in enumerate(s["value_error_softmax_matched"]):
        best_other = min(s[f"value_error_{k}"][j] for k in others)
        assert e <= best_other * 1.03 + 1e-3


def test_identity_and_threshold_are_poor_under_noise(result: R.Result) -> None:
    m = result.metrics
    assert m["value_error_identity_noise0"] > 1.0  # crosstalk of 64 memories in 32 dims
    assert m["accuracy_identity_noise0"] < 95.0
    assert m["value_error_threshold_noise_max"] > 5.0  # unnormalised sum of many values


def test_quick_and_plot() -> None:
    res = R.run(R.quick(R.Config()))
    assert len(res.series["noise"]) == 7
    json.loads(res.to_json())
    fig = R.plot(res)
    assert isinstance(fig, Figure) and len(fig.axes) == 3


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="noise"):
        R.Config(noise=(0.5, 0.0))
    with pytest.raises(ValueError, match="betas"):
        R.Config(betas=(0.0,))
