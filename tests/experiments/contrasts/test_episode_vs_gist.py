"""Tests for episode-vs-gist: a generative model's reconstruction against a key-value
memory's targeted lookup, on families of similar episodes."""

from __future__ import annotations

import dataclasses

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.contrasts import episode_vs_gist as E

MODELS = ("kv", "generative")
KEYS = ("episode_accuracy", "detail_error", "prototype_distance", "generalization_error")


@pytest.fixture(scope="module")
def result():
    return E.run(E.Config())


def test_contract_series(result) -> None:
    s = result.series
    assert s["n_similar"] == [1, 2, 4, 8, 16, 32]
    for m in MODELS:
        for key in KEYS:
            assert len(s[f"{key}_{m}"]) == 6
            assert len(s[f"{key}_{m}_ci"]) == 6
        assert all(0.0 <= a <= 100.0 for a in s[f"episode_accuracy_{m}"])


def test_kv_finds_the_episode_the_generative_model_drifts_to_the_gist(result) -> None:
    s = result.series
    assert min(s["episode_accuracy_kv"]) == 100.0
    assert max(s["detail_error_kv"]) < 0.01
    assert min(s["prototype_distance_kv"]) > 0.95
    gen = s["episode_accuracy_generative"]
    assert gen[0] == 100.0  # 4 episodes, 3 latents + the mean: memorised
    assert all(a > b for a, b in zip(gen, gen[1:], strict=False))
    # from 4 per family on it is at the chance level of an output at the prototype
    for a, chance in zip(gen[2:], s["chance_accuracy"][2:], strict=True):
        assert a == pytest.approx(chance, abs=5.0)
    dist = s["prototype_distance_generative"]
    assert all(a > b for a, b in zip(dist, dist[1:], strict=False))
    assert dist[-1] < 0.45
    assert s["detail_error_generative"][-1] == pytest.approx(1.0, abs=0.12)


def test_generalisation_to_new_family_members(result) -> None:
    s = result.series
    adv = s["generalization_advantage_generative"]
    assert all(a > 0.03 for a in adv[1:4])  # 2, 4, 8 per family
    assert abs(adv[-1]) < 0.06  # 32 per family: the kv blend estimates the prototype
    # both errors fall towards the prototype's (1) as families grow
    for m in MODELS:
        g = s[f"generalization_error_{m}"]
        assert g[0] == pytest.approx(2.0, abs=0.2)  # one sibling to go on
        assert 1.0 < g[-1] < 1.25


def test_gradient_inference_converged(result) -> None:
    assert result.metrics["inference_gap"] < 1e-4


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(E, result)
    assert claims and all(held for _, held in claims), claims


def test_claims_can_fail(result) -> None:
    s = dict(result.series)
    s["episode_accuracy_kv"] = list(s["episode_accuracy_generative"])
    broken = dataclasses.replace(result, series=s)
    assert not all(held for _, held in check_claims(E, broken))


def test_the_context_only_adds_noise_to_the_generative_model() -> None:
    base = dataclasses.replace(E.Config(), n_seeds=8, n_similar=(2, 8))
    joint = E.run(dataclasses.replace(base, generative_inputs="episode_and_context"))
    alone = E.run(base)
    for a, b in zip(
        joint.series["generalization_error_generative"],
        alone.series["generalization_error_generative"],
        strict=True,
    ):
        assert a > b


def test_quick_run_and_plot() -> None:
    res = E.run(E.quick(E.Config()))
    assert isinstance(E.plot(res), Figure)
    assert all(held is not False for _, held in check_claims(E, res))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_similar"):
        E.Config(n_similar=(4, 2))
    with pytest.raises(ValueError, match="cued_fraction"):
        E.Config(cued_fraction=1.0)
    with pytest.raises(ValueError, match="n_latent"):
        E.Config(n_latent=64)
    with pytest.raises(ValueError, match="generative_inputs"):
        E.Config(generative_inputs="context")  # type: ignore[arg-type]
