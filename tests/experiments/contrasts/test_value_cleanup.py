"""Tests for value-cleanup: attractor retrieval on correlated values against key-value
retrieval, and attractor clean-up inside value space."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.contrasts import value_cleanup as V

MODELS = ("attractor", "kv", "kv_cleanup")


@pytest.fixture(scope="module")
def result():
    return V.run(V.Config())


def test_contract_series(result) -> None:
    s = result.series
    assert s["value_correlation"] == list(V.Config().value_correlation)
    assert s["cue_noise"] == list(V.Config().cue_noise_grid)
    for m in MODELS:
        for kind in ("fidelity", "accuracy"):
            assert len(s[f"{kind}_{m}"]) == len(s["value_correlation"])
            assert len(s[f"{kind}_{m}_ci"]) == len(s["value_correlation"])
            assert len(s[f"{kind}_{m}_vs_noise"]) == len(s["cue_noise"])
        assert all(-1.0 <= f <= 1.0 + 1e-9 for f in s[f"fidelity_{m}"])
        assert all(0.0 <= a <= 100.0 for a in s[f"accuracy_{m}"])


def test_attractors_collapse_with_correlation_and_kv_does_not(result) -> None:
    s = result.series
    # classical Hopfield: fine on random patterns (load 0.08), gone from c = 0.6 on
    assert s["accuracy_attractor_classical"][0] >= 99.0
    assert max(s["accuracy_attractor_classical"][3:]) <= 40.0
    # modern Hopfield: a nearest-neighbour lookup in value space, fails once the cue's
    # noise compares with the family members' differences
    assert s["accuracy_attractor"][0] == 100.0
    assert s["accuracy_attractor"][-1] <= 80.0
    assert min(s["accuracy_kv"]) >= 99.0
    assert min(s["fidelity_kv"]) >= 0.99


def test_cleanup_helps_under_noise_and_is_free_on_clean_cues(result) -> None:
    s, m = result.series, result.metrics
    assert m["cleanup_gain_clean_cue"] == pytest.approx(0.0, abs=1e-3)
    assert m["cleanup_gain_max"] >= 0.1
    i = s["cue_noise"].index(0.35)
    assert s["fidelity_kv_cleanup_vs_noise"][i] > s["fidelity_kv_vs_noise"][i] + 0.03
    # the clean-up refines what was found; it cannot find what the key missed
    assert s["accuracy_kv_cleanup_vs_noise"] == pytest.approx(s["accuracy_kv_vs_noise"], abs=3.0)


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(V, result)
    assert claims and all(held for _, held in claims), claims


def test_a_model_that_cannot_tell_family_members_apart_fails_the_claims(result) -> None:
    """The claims can fail: a kv read that returned the family template would not pass."""
    s = dict(result.series)
    s["accuracy_kv"] = [100.0 / 4] * len(s["accuracy_kv"])
    broken = dataclasses.replace(result, series=s)
    assert not all(held for _, held in check_claims(V, broken))


def test_identified_counts_identical_content_as_right() -> None:
    values = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [-1.0, 1.0]]])
    reads = values.clone()
    assert V._identified(reads, values).tolist() == [[True, True, True]]
    assert V._identified(values[:, [2, 2, 0]], values).tolist() == [[False, False, False]]


def test_quick_run_plot_and_kwta_keys() -> None:
    res = V.run(V.quick(V.Config()))
    assert isinstance(V.plot(res), Figure)
    assert all(held is not False for _, held in check_claims(V, res))
    kwta = V.run(dataclasses.replace(V.quick(V.Config()), keys="expansion_kwta", n_seeds=2))
    assert kwta.series["accuracy_kv"][0] >= 95.0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_memories"):
        V.Config(n_memories=1)
    with pytest.raises(ValueError, match="cue_noise"):
        V.Config(cue_noise=0.6)
    with pytest.raises(ValueError, match="value_correlation"):
        V.Config(value_correlation=(0.5, 0.2))
    with pytest.raises(ValueError, match="beta_kv"):
        V.Config(beta_kv=0.0)
