"""Tests for the hippocampal-index / cortical-value consolidation model (docs/science.md 4.10)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.bio import Consolidation
from kvmem.bio.consolidation import recall_score, similar_patterns, unit_patterns


def _model(s: int = 4, seed: int = 0, **kw) -> tuple[Consolidation, torch.Generator]:
    g = torch.Generator().manual_seed(seed)
    kw.setdefault("n_units", 1000)
    return Consolidation(s, generator=g, **kw), g


def test_hippocampal_route_alone_recalls_a_recent_memory_perfectly() -> None:
    m, g = _model()
    c, v = unit_patterns((4, 3, 256), g), unit_patterns((4, 3, 64), g)
    m.experience(c, v)
    reads = m.recall(c)
    assert torch.equal(reads.hippocampal, v)  # the winner's value, exactly
    assert torch.allclose(recall_score(reads.hippocampal, v), torch.full((4, 3), 100.0).double())
    assert torch.allclose(reads.match, torch.ones(4, 3, dtype=torch.float64))
    assert torch.equal(reads.cortical, torch.zeros_like(v))  # nothing consolidated yet


def test_without_replay_the_cortex_learns_nothing() -> None:
    m, g = _model(replay_prob=0.0)
    c, v = unit_patterns((4, 5, 256), g), unit_patterns((4, 5, 64), g)
    m.experience(c, v)
    for _ in range(10):
        m.sleep()
    assert torch.equal(m.cortical_weights, torch.zeros(4, 256, 64, dtype=torch.float64))
    assert float(recall_score(m.recall(c, lesion=True).combined, v).max()) == 0.0


@pytest.mark.parametrize("lr", [0.1, 0.3, 1.0])
def test_replay_is_the_delta_rule_on_the_reinstated_trace(lr: float) -> None:
    """One trace, replayed every night, no decay: the cortical read of its (unit) cue after
    n nights is exactly ``(1 - (1 - lr)^n) v`` (docs/science.md 1.3)."""
    m, g = _model(replay_prob=1.0, cortical_lr=lr, hippocampal_decay=0.0)
    c, v = unit_patterns((4, 1, 256), g), unit_patterns((4, 1, 64), g)
    m.experience(c, v)
    for n in range(1, 6):
        m.sleep()
        expect = (1.0 - (1.0 - lr) ** n) * v
        assert torch.allclose(m.recall(c).cortical, expect, atol=1e-10)


def test_hippocampal_decay_scales_trace_strength_and_replay() -> None:
    m, g = _model(replay_prob=1.0, cortical_lr=0.5, hippocampal_decay=0.2)
    c, v = unit_patterns((4, 1, 256), g), unit_patterns((4, 1, 64), g)
    m.experience(c, v)
    m.sleep()  # step with g = 1, then decay
    m.sleep()  # step with g = exp(-0.2)
    a1 = 0.5
    a2 = a1 + 0.5 * math.exp(-0.2) * (1 - a1)
    reads = m.recall(c)
    assert torch.allclose(reads.cortical, a2 * v, atol=1e-10)
    assert torch.allclose(reads.hippocampal, math.exp(-0.4) * v, atol=1e-6)


def test_lesion_removes_the_hippocampal_route_and_all_later_replay() -> None:
    m, g = _model(replay_prob=1.0)
    c, v = unit_patterns((4, 1, 256), g), unit_patterns((4, 1, 64), g)
    m.experience(c, v)
    m.sleep()
    before = m.cortical_weights.clone()
    mask = torch.tensor([True, False, True, False])
    m.lesion(mask)
    m.sleep()
    after = m.cortical_weights
    assert torch.equal(after[mask], before[mask])  # lesioned: no more replay
    assert not torch.allclose(after[~mask], before[~mask])  # intact: still consolidating
    reads = m.recall(c)
    assert torch.equal(reads.hippocampal[mask], torch.zeros_like(v[mask]))
    assert torch.allclose(reads.combined[mask], reads.cortical[mask])
    # a transient lesion at recall changes nothing in the state
    r2 = m.recall(c, lesion=True)
    assert torch.equal(r2.hippocampal, torch.zeros_like(v))
    assert torch.allclose(m.recall(c).hippocampal[~mask], reads.hippocampal[~mask])


def test_recall_sums_the_two_routes() -> None:
    m, g = _model(replay_prob=1.0, cortical_lr=0.3, hippocampal_decay=0.0)
    c, v = unit_patterns((4, 1, 256), g), unit_patterns((4, 1, 64), g)
    m.experience(c, v)
    m.sleep()
    r = m.recall(c)
    assert torch.allclose(r.combined, r.hippocampal + r.cortical)
    assert torch.allclose(r.combined, 1.3 * v, atol=1e-6)
    assert torch.allclose(recall_score(r.combined, v), torch.full((4, 1), 100.0).double())


def test_content_architecture_has_no_cortical_values_to_consolidate() -> None:
    m, g = _model(architecture="content", replay_prob=1.0)
    c, v = unit_patterns((4, 2, 256), g), unit_patterns((4, 2, 64), g)
    m.experience(c, v)
    for _ in range(5):
        m.sleep()
    assert torch.equal(m.cortical_weights, torch.zeros(4, 256, 64, dtype=torch.float64))
    r = m.recall(c)
    assert torch.allclose(r.hippocampal, math.exp(-0.05) * v)  # 5 days of decay
    # raw similarity: a context at cosine 0.6 passes the 0.5 criterion, one at 0.4 does not
    near, far = similar_patterns(c, 0.6, g), similar_patterns(c, 0.4, g)
    assert torch.allclose(m.recall(near).hippocampal, r.hippocampal)
    assert torch.equal(m.recall(far).hippocampal, torch.zeros_like(v))


def test_pattern_separation_stops_the_hippocampus_generalising() -> None:
    """kWTA codes of contexts at cosine 0.6 share far fewer units than the 0.5 criterion."""
    m, g = _model(s=64, n_units=2000)  # the default expansion
    c, v = unit_patterns((64, 1, 256), g), unit_patterns((64, 1, 64), g)
    m.experience(c, v)
    near = similar_patterns(c, 0.6, g)
    match = m.recall(near).match
    assert float(match.max()) < 0.45  # mean ~ 0.31, sd ~ 0.04
    assert 0.25 < float(match.mean()) < 0.37  # more than unrelated codes (~ 0.05)
    assert torch.equal(m.recall(near).hippocampal, torch.zeros_like(v))


def test_later_experiences_overwrite_at_the_expected_rate() -> None:
    s, n_slots, m_later = 2000, 20, 10
    m, g = _model(s=s, n_slots=n_slots, n_units=100, d_cortex=32, d_value=8)
    c, v = unit_patterns((s, 1, 32), g), unit_patterns((s, 1, 8), g)
    m.experience(c, v)
    m.experience(unit_patterns((s, m_later, 32), g), unit_patterns((s, m_later, 8), g))
    survived = (m.item == 0).any(-1).double().mean()
    expect = (1 - 1 / n_slots) ** m_later  # 0.599
    assert abs(float(survived) - expect) < 0.035  # ~ 3 binomial sd


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 8),
    n_slots=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_batched_writes_equal_writing_one_experience_at_a_time(
    n: int, n_slots: int, seed: int
) -> None:
    """The vectorised write (last writer of a slot wins) equals n sequential writes."""
    s = 3
    a, g = _model(s=s, n_slots=n_slots, n_units=50, d_cortex=8, d_value=4, seed=seed)
    b, _ = _model(s=s, n_slots=n_slots, n_units=50, d_cortex=8, d_value=4, seed=seed)
    c, v = unit_patterns((s, n, 8), g), unit_patterns((s, n, 4), g)
    slots = torch.randint(0, n_slots, (s, n), generator=torch.Generator().manual_seed(seed))
    a.gen = torch.Generator().manual_seed(seed)
    a.experience(c, v)
    for j in range(n):  # reference: one experience at a time into the same slots
        rows = torch.arange(s)
        b.keys[rows, slots[:, j]] = b.encoder(c[:, j]).float()
        b.cues[rows, slots[:, j]] = c[:, j]
        b.values[rows, slots[:, j]] = v[:, j]
        b.strength[rows, slots[:, j]] = 1.0
        b.item[rows, slots[:, j]] = j
    for name in ("keys", "cues", "values", "strength", "item"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@settings(max_examples=30, deadline=None)
@given(d=st.integers(2, 64), rho=st.floats(-0.95, 0.95), seed=st.integers(0, 10_000))
def test_similar_patterns_have_the_requested_cosine(d: int, rho: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = unit_patterns((3, 2, d), g)
    y = similar_patterns(x, rho, g)
    assert torch.allclose(y.norm(dim=-1), torch.ones(3, 2, dtype=torch.float64))
    assert torch.allclose((x * y).sum(-1), torch.full((3, 2), rho, dtype=torch.float64), atol=1e-9)


def test_recall_score_is_a_clamped_projection() -> None:
    v = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    reads = torch.tensor([[0.5, 3.0], [2.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(recall_score(reads, v), torch.tensor([50.0, 100.0, 0.0]).double())


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="n_slots"):
        Consolidation(2, n_slots=0)
    with pytest.raises(ValueError, match="replay_prob"):
        Consolidation(2, replay_prob=1.5)
    with pytest.raises(ValueError, match="architecture"):
        Consolidation(2, architecture="hopfield")  # type: ignore[arg-type]
    m, g = _model()
    with pytest.raises(ValueError, match="cues"):
        m.experience(torch.zeros(4, 1, 10), torch.zeros(4, 1, 64))
    with pytest.raises(ValueError, match="cosine"):
        similar_patterns(torch.zeros(1, 3), 1.5, g)
