"""Tests for the metamemory experiment: feeling of knowing and tip of the tongue."""

from __future__ import annotations

import json

import pytest
import torch
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.retrieval import metamemory as M
from kvmem.results import Result


@pytest.fixture(scope="module")
def result():
    return M.run(M.Config())


def test_contract_metrics(result) -> None:
    m = result.metrics
    for key in ("fok_auc", "fok_gain_familiar_cue", "recall_gain_familiar_cue"):
        assert key in m and key + "_hopfield" in m
        assert key + "_ci" in result.series
    assert 0.0 <= m["fok_auc"] <= 1.0
    assert m["fok_gamma"] == pytest.approx(2 * m["fok_auc"] - 1, abs=0.02)  # few FOK ties
    assert m["fok_auc_subjects"] >= 35  # AUC defined for nearly every subject


def test_about_half_the_cues_fail_recall(result) -> None:
    # the parameters were fixed so that Hart's procedure has many failures to judge
    assert 35 <= result.metrics["recall"] <= 65


def test_fok_predicts_recognition_in_the_human_range(result) -> None:
    m = result.metrics
    low, high = result.series["fok_auc_ci"][0]
    assert low > 0.5  # above chance
    assert 0.15 <= m["fok_gamma"] <= 0.65  # about the human 0.3-0.5, with sampling error
    assert m["fok_auc"] > m["fok_auc_hopfield"] + 0.05


def test_familiar_cues_inflate_fok_not_recall(result) -> None:
    m = result.metrics
    assert m["fok_gain_familiar_cue"] > 10
    assert result.series["recall_gain_familiar_cue_ci"][0][0] <= 0
    assert m["fok_gain_familiar_cue_hopfield"] <= 0


def test_tip_of_the_tongue_states(result) -> None:
    m = result.metrics
    assert 5 <= m["tip_of_tongue_of_failed_recall"] <= 60
    assert m["recognition_tip_of_tongue"] > m["recognition_failed_not_tip_of_tongue"] + 20


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(M, result)
    assert len(claims) == len(M.CLAIMS) and all(held is True for _, held in claims), claims


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_claims_hold_over_seeds(seed: int) -> None:
    claims = check_claims(M, M.run(M.Config(seed=seed)))
    assert all(held is True for _, held in claims), claims


def test_quick_run_claims_and_plot() -> None:
    res = M.run(M.quick(M.Config()))
    claims = check_claims(M, res)
    assert all(held is not False for _, held in claims), claims
    assert isinstance(M.plot(res), Figure)
    back = Result.from_dict(json.loads(res.to_json()))  # strict JSON, redraws from the file
    assert isinstance(M.plot(back), Figure)


def test_fok_is_the_pre_separation_match() -> None:
    cfg = M.Config(n_subjects=3)
    mat = M._materials(cfg, torch.Generator().manual_seed(0))
    out = M._kv(mat, cfg)
    q, k = mat["cues"][:, : cfg.n_pairs], mat["keys"]
    cos = torch.nn.functional.cosine_similarity(q[:, :, None], k[:, None], dim=-1)
    assert torch.allclose(out["fok"], cos.amax(-1), atol=1e-10)
    # without encoding noise every key is found: no failure is a key failure
    clean = M.Config(n_subjects=3, max_encoding_noise=0.0, familiar_overlap=0.0)
    out = M._kv(M._materials(clean, torch.Generator().manual_seed(0)), clean)
    assert bool(out["key_found"].all())


@pytest.mark.parametrize(
    "bad",
    [{"n_pairs": 7}, {"n_alternatives": 1}, {"beta": 0.0}, {"familiar_overlap": 1.5}],
)
def test_config_validation(bad) -> None:
    with pytest.raises(ValueError):
        M.Config(**bad)
