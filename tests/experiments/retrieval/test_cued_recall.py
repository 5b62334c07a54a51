"""Tests for the cued-recall experiment (Tulving & Pearlstone 1966)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.retrieval import cued_recall as C
from kvmem.results import Result

KS = (1, 2, 4)
NAMES = (
    "free_words",
    "cued_words",
    "free_categories",
    "cued_categories",
    "words_per_category_free",
    "words_per_category_cued",
)


@pytest.fixture(scope="module")
def result():
    return C.run(C.Config())


def test_contract_series(result) -> None:
    s = result.series
    assert s["list_length"] == [12, 24, 48]
    for k in KS:
        for name in NAMES:
            assert len(s[f"{name}_ipc{k}"]) == 3, name
            assert len(s[f"{name}_ipc{k}_ci"]) == 3, name
            assert len(s[f"{name}_ipc{k}_hopfield"]) == 3, name
        # the free group's second, cued test: at least what free recall had
        assert all(
            t >= f
            for t, f in zip(s[f"free_then_cued_words_ipc{k}"], s[f"free_words_ipc{k}"], strict=True)
        )


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(12, 1), (12, 4), (24, 2), (48, 4)]))
def test_scoring_counts_words_and_categories(seed: int, design: tuple[int, int]) -> None:
    n, k = design
    cfg = C.Config(n_subjects=3)
    lists = C._Lists(cfg, n, k, torch.Generator().manual_seed(seed))
    recalled = torch.rand(3, n, generator=torch.Generator().manual_seed(seed + 1)) < 0.4
    out = C._score(recalled, lists)
    for i in range(3):
        words = recalled[i].nonzero().flatten()
        cats = set((words // k).tolist())  # words are blocked by category
        assert out["words"][i] == len(words)
        assert out["categories"][i] == len(cats)
        if cats:
            assert float(out["wpc"][i]) == pytest.approx(len(words) / len(cats))
        else:
            assert torch.isnan(out["wpc"][i])


def test_counts_are_consistent(result) -> None:
    s = result.series
    for k in KS:
        for j, n in enumerate(s["list_length"]):
            for cond in ("free", "cued"):
                words = s[f"{cond}_words_ipc{k}"][j]
                cats = s[f"{cond}_categories_ipc{k}"][j]
                assert 0 <= cats <= n // k and cats <= words <= n
                assert 1.0 <= s[f"words_per_category_{cond}_ipc{k}"][j] <= k
    # one word per category: a recalled category is a recalled word
    assert s["free_words_ipc1"] == pytest.approx(s["free_categories_ipc1"])
    assert s["words_per_category_cued_ipc1"] == pytest.approx([1.0, 1.0, 1.0])


def test_tulving_pearlstone_pattern(result) -> None:
    s = result.series
    benefit = {
        k: [c - f for c, f in zip(s[f"cued_words_ipc{k}"], s[f"free_words_ipc{k}"], strict=True)]
        for k in KS
    }
    for k in KS:
        assert all(b > 0 for b in benefit[k])  # cued beats free
        assert benefit[k][0] < benefit[k][1] < benefit[k][2]  # grows with list length
    for j in range(3):
        assert benefit[1][j] > benefit[4][j]  # shrinks with words per category
    for k in (2, 4):  # words per recalled category about the same
        for f, c in zip(
            s[f"words_per_category_free_ipc{k}"], s[f"words_per_category_cued_ipc{k}"], strict=True
        ):
            assert abs(f - c) <= 0.2 * c


def test_free_recall_is_in_a_plausible_range(result) -> None:
    # immediate free recall of such lists: a few words to about a dozen, rising with length
    s = result.series
    for k in KS:
        assert 3 <= s[f"free_words_ipc{k}"][0] <= 12
        assert s[f"free_words_ipc{k}"][2] >= s[f"free_words_ipc{k}"][0]
        assert s[f"cued_words_ipc{k}"][2] < 48  # cued recall below ceiling on long lists


def test_availability_kv_versus_hopfield(result) -> None:
    m = result.metrics
    assert m["perfect_cue_recall_of_unrecalled_kv"] == 100.0
    assert m["perfect_cue_recall_of_unrecalled_longest_hopfield"] < 50.0


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(C, result)
    assert len(claims) == len(C.CLAIMS) and all(held is True for _, held in claims), claims


def test_quick_run_and_plot() -> None:
    res = C.run(C.quick(C.Config()))
    assert res.series["list_length"] == [12, 24]
    claims = dict(check_claims(C, res))
    assert all(held is not False for held in claims.values()), claims
    assert isinstance(C.plot(res), Figure)


def test_same_seed_same_result_and_json_round_trip() -> None:
    cfg = C.Config(n_subjects=4, list_lengths=(12,))
    first = C.run(cfg)
    assert first.to_json() == C.run(cfg).to_json()  # NaN-safe comparison
    assert first.to_json() != C.run(C.Config(n_subjects=4, list_lengths=(12,), seed=1)).to_json()
    # the figure redraws from result.json alone (undefined cells come back as null)
    back = Result.from_dict(json.loads(first.to_json()))
    assert isinstance(C.plot(back), Figure)


def test_kv_sampling_follows_the_match() -> None:
    # a category cue brings back mostly its own category's words: far above chance (k / L),
    # though its context part also reaches other recent words
    cfg = C.Config(n_subjects=8)
    lists = C._Lists(cfg, 24, 4, torch.Generator().manual_seed(0))
    per_cue = C._KV(lists, cfg)._within(torch.Generator().manual_seed(1))  # [S, C, L]
    own = per_cue & (lists.category[None, None, :] == torch.arange(lists.c)[None, :, None])
    assert per_cue.any()
    assert float(own.sum()) >= 0.5 * float(per_cue.sum())  # chance: 4 / 24
    # a stronger separation (higher beta) makes the category cue more selective
    sharp = C.Config(n_subjects=8, beta=30.0)
    per_cue = C._KV(lists, sharp)._within(torch.Generator().manual_seed(1))
    own_sharp = per_cue & (lists.category[None, None, :] == torch.arange(lists.c)[None, :, None])
    assert float(own_sharp.sum()) >= 0.95 * float(per_cue.sum())


@pytest.mark.parametrize(
    "bad",
    [
        {"n_subjects": 1},
        {"list_lengths": (12, 25)},
        {"items_per_category": ()},
        {"context_drift": 0.7},
        {"beta": 0.0},
        {"recall_criterion": 0.0},
    ],
)
def test_config_validation(bad) -> None:
    with pytest.raises(ValueError):
        C.Config(**bad)
