"""Tests for kvmem.bio.three_factor (docs/science.md 1.3)."""

from __future__ import annotations

import pytest
import torch

from kvmem.bio.three_factor import ThreeFactorSlotMemory
from kvmem.data.patterns import mask_fraction, random_patterns


def _reference(
    x: torch.Tensor,
    v: torch.Tensor,
    gamma: torch.Tensor,
    key_lr: float,
    value_lr: float,
    beta: float,
    gate: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The docs/science.md 1.3 rules, one circuit, one item and one slot at a time."""
    t_items, d = x.shape
    s = gamma.shape[-1]
    keys = torch.zeros(s, d, dtype=x.dtype)
    values = torch.zeros(s, v.shape[-1], dtype=x.dtype)
    for t in range(t_items):
        for i in range(s):
            if gamma[t, i]:
                keys[i] += key_lr * (x[t] - keys[i])
        a = torch.softmax(beta * keys @ x[t], dim=0)
        for i in range(s):
            if gamma[t, i]:
                ai = 1.0 if gate == "selector" else float(a[i])
                values[i] += value_lr * ai * (v[t] - values[i])
    return keys, values


def test_sequential_fills_slots_in_order_then_overwrites_oldest() -> None:
    x = random_patterns(7, 6, seed=0)
    mem = ThreeFactorSlotMemory(3, selection="sequential").store(x)
    # items 0..6 -> slots 0,1,2,0,1,2,0: the last writers are 6, 4, 5
    assert mem.owner.tolist() == [6, 4, 5]
    assert torch.equal(mem.keys, x[[6, 4, 5]])
    assert torch.equal(mem.values, x[[6, 4, 5]])
    assert int(mem.n_stored) == 7


def test_sequential_store_in_two_calls_equals_one() -> None:
    x = random_patterns(9, 5, seed=1)
    v = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    one = ThreeFactorSlotMemory(4).store(x, v)
    two = ThreeFactorSlotMemory(4).store(x[:5], v[:5]).store(x[5:], v[5:])
    assert torch.equal(one.keys, two.keys) and torch.equal(one.values, two.values)
    assert torch.equal(one.owner, two.owner)


def test_store_signal_mu_pads_batches_of_different_loads() -> None:
    x = random_patterns(6, 8, batch_shape=(3,), seed=2)
    loads = torch.tensor([2, 4, 6])
    mu = torch.arange(6) < loads[:, None]
    mem = ThreeFactorSlotMemory(8).store(x, mu=mu)
    assert mem.n_stored.tolist() == [2, 4, 6]
    for b, p in enumerate(loads.tolist()):
        single = ThreeFactorSlotMemory(8).store(x[b, :p])
        assert torch.equal(mem.keys[b], single.keys)
        assert torch.equal(mem.values[b], single.values)
    # padded items must not advance the sequential pointer: masked item in the middle
    mu_mid = torch.tensor([True, False, True])
    m2 = ThreeFactorSlotMemory(3).store(x[0, :3], mu=mu_mid)
    assert m2.owner.tolist() == [0, 2, -1]


@pytest.mark.parametrize("gate", ["selector", "activity"])
@pytest.mark.parametrize("rates", [(1.0, 1.0), (0.5, 0.8)])
def test_loop_matches_reference_rules(gate: str, rates: tuple[float, float]) -> None:
    g = torch.Generator().manual_seed(3)
    x = random_patterns(12, 6, seed=3, dtype=torch.float64)
    v = torch.randn(12, 4, generator=g, dtype=torch.float64)
    gamma = torch.rand(12, 5, generator=g) < 0.3
    mem = ThreeFactorSlotMemory(
        5, selection="random", key_lr=rates[0], value_lr=rates[1], beta=0.7, value_gate=gate
    )
    mem.store(x, v, gamma=gamma, method="loop")
    keys, values = _reference(x, v, gamma, rates[0], rates[1], 0.7, gate)
    assert torch.allclose(mem.keys, keys, atol=1e-12)
    assert torch.allclose(mem.values, values, atol=1e-12)


def test_fast_last_writer_path_equals_the_loop() -> None:
    g = torch.Generator().manual_seed(4)
    x = random_patterns(30, 10, batch_shape=(4,), seed=4)
    v = torch.randn(4, 30, 3, generator=g)
    mu = torch.rand(4, 30, generator=g) < 0.8
    gamma = torch.rand(4, 30, 10, generator=g) < 0.1
    fast = ThreeFactorSlotMemory(10, selection="random").store(x, v, mu=mu, gamma=gamma)
    loop = ThreeFactorSlotMemory(10, selection="random")
    loop.store(x, v, mu=mu, gamma=gamma, method="loop")
    assert torch.equal(fast.keys, loop.keys)  # +-1 entries: exact
    assert torch.allclose(fast.values, loop.values, atol=1e-6)  # V + (v - V) rounds
    assert torch.equal(fast.owner, loop.owner)


def test_random_selection_probability_and_lost_items() -> None:
    mem = ThreeFactorSlotMemory(40, selection="random", p=0.1, seed=0)
    gamma = mem.select(torch.ones(500, 40, dtype=torch.bool))
    assert abs(float(gamma.float().mean()) - 0.1) < 0.005  # 800,000 draws
    # an item that selects no slot is never stored: P(no slot) = 0.9^40
    none = (~gamma.any(-1)).float().mean()
    assert abs(float(none) - 0.9**40) < 0.006
    assert not bool(mem.select(torch.zeros(2, 3, dtype=torch.bool)).any())


def test_random_selection_keeps_last_writer_of_each_slot() -> None:
    x = random_patterns(50, 20, seed=5)
    mem = ThreeFactorSlotMemory(20, selection="random", p=0.2, seed=1)
    gamma = mem.select(torch.ones(50, dtype=torch.bool), torch.Generator().manual_seed(9))
    mem.store(x, gamma=gamma)
    for i in range(20):
        writers = gamma[:, i].nonzero().flatten()
        if len(writers):
            assert int(mem.owner[i]) == int(writers[-1])
            assert torch.equal(mem.keys[i], x[writers[-1]])
        else:
            assert int(mem.owner[i]) == -1 and torch.all(mem.keys[i] == 0)


def test_recall_from_partial_cue_is_perfect_up_to_s_items() -> None:
    x = random_patterns(40, 40, batch_shape=(5,), seed=6)
    cue = mask_fraction(x, 0.6, seed=7)
    mem = ThreeFactorSlotMemory(40, beta=1.0).store(x)
    out = mem.recall(cue)
    assert (out == x).float().mean() > 0.999  # a rare 16-bit tie can blur one item
    a = mem.activity(cue)
    assert a.shape == (5, 40, 40)
    assert torch.allclose(a.sum(-1), torch.ones(5, 40))
    assert mem.scores(cue).shape == (5, 40, 40)


def test_overwritten_items_are_lost_and_recent_kept() -> None:
    x = random_patterns(60, 40, seed=8)
    mem = ThreeFactorSlotMemory(40).store(x)
    acc = (mem.recall(x) == x).float().mean(-1)
    assert bool((acc[20:] == 1).all())  # the last 40 items own a slot
    assert float(acc[:20].mean()) < 0.8  # the first 20 were overwritten


def test_activity_gate_single_slot_writes_value() -> None:
    x = random_patterns(3, 40, seed=9)
    v = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    mem = ThreeFactorSlotMemory(3, value_gate="activity", beta=1.0).store(x, v)
    # each slot's key is its item, which dominates the softmax (40 vs ~+-6): a_i ~ 1
    assert torch.allclose(mem.values, v, atol=1e-6)


def test_empty_memory_reads_zero_and_rejects_bad_input() -> None:
    mem = ThreeFactorSlotMemory(4)
    with pytest.raises(ValueError, match="empty"):
        mem.read(torch.ones(1, 3))
    mem.store(torch.ones(1, 3), mu=torch.zeros(1))
    assert torch.equal(mem.read(torch.ones(2, 3)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="key size"):
        mem.read(torch.ones(1, 4))
    with pytest.raises(ValueError, match="mu"):
        mem.store(torch.ones(2, 3), mu=torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="selection"):
        ThreeFactorSlotMemory(4, selection="lru")
    with pytest.raises(ValueError, match="p"):
        ThreeFactorSlotMemory(4, selection="random", p=0.0)
    with pytest.raises(ValueError, match="key_lr"):
        ThreeFactorSlotMemory(4, key_lr=1.5)
    with pytest.raises(ValueError, match="method"):
        mem.store(torch.ones(1, 3), method="fast")
    with pytest.raises(ValueError, match="v"):
        ThreeFactorSlotMemory(2).store(torch.ones(3, 2), torch.ones(2, 2))
