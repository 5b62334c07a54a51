"""Tests for kvmem.core.hopfield.ClassicalHopfield (docs/science.md 1.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmem.core.hopfield as hopfield_module
from kvmem.core.hopfield import ClassicalHopfield, _sign_int, _sign_keep, _sweep_cpu, _sweep_torch
from support.patterns import flip_bits, pm1


def test_memory_cliff_at_n500() -> None:
    # Cues are the stored patterns themselves (uncorrupted); synchronous dynamics.
    # One batched call: [2 loads, 2 seeds] networks, loads 0.10 and 0.20 padded by mask.
    n, seeds, p_max = 500, 2, 100
    x = pm1(2, seeds, p_max, n, seed=0)
    mask = torch.zeros(2, seeds, p_max, dtype=torch.bool)
    mask[0, :, :50] = True  # P / N = 0.10
    mask[1] = True  # P / N = 0.20
    mem = ClassicalHopfield(max_steps=50).store(x, mask)
    out = mem.retrieve(x)
    overlap = (out * x).mean(-1)  # [2, seeds, P]
    low = overlap[0, :, :50].mean().item()
    high = overlap[1].mean().item()
    assert low >= 0.95, low  # measured 0.997
    assert high <= 0.75, high  # measured 0.54: past the ~0.14 N cliff


def test_energy_never_increases_under_asynchronous_dynamics() -> None:
    n, p = 100, 12
    x = pm1(2, p, n, seed=3)
    mem = ClassicalHopfield(dynamics="asynchronous").store(x)
    cues = flip_bits(x, 30, seed=4)
    out, info = mem.retrieve(cues, return_info=True, track_energy=True, generator=7)
    e = info["energy"]  # [T + 1, 2, p]
    assert e.shape[1:] == (2, p)
    assert bool((e[1:] <= e[:-1]).all())  # exact: integer arithmetic
    assert bool((e[-1] < e[0]).any())
    assert bool(info["converged"].all())
    # The returned state is the last tracked energy's state and is a fixed point.
    assert torch.equal(mem.energy(out), e[-1])
    again, info2 = mem.retrieve(out, return_info=True)
    assert torch.equal(again, out)
    assert int(info2["steps"].max()) == 0


def test_energy_matches_formula() -> None:
    n = 30
    x = pm1(5, n, seed=5, dtype=torch.float64)
    mem = ClassicalHopfield().store(x)
    w = x.T @ x / n
    w.fill_diagonal_(0)
    torch.testing.assert_close(mem.weights, w, rtol=0, atol=1e-12)
    s = pm1(7, n, seed=6, dtype=torch.float64)
    expected = -0.5 * ((s @ w) * s).sum(-1)
    torch.testing.assert_close(mem.energy(s), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dynamics", ["synchronous", "asynchronous"])
def test_single_pattern_is_fixed_point(dynamics: str) -> None:
    x = pm1(1, 64, seed=8)
    mem = ClassicalHopfield(dynamics=dynamics).store(x)
    out, info = mem.retrieve(torch.cat([x, -x]), return_info=True)
    assert torch.equal(out, torch.cat([x, -x]))  # the pattern and its mirror image
    assert info["steps"].tolist() == [0, 0]
    assert info["converged"].tolist() == [True, True]
    # A heavily corrupted cue falls into the pattern in one synchronous step.
    out, info = mem.retrieve(flip_bits(x, 20), return_info=True)
    assert torch.equal(out, x)


def test_batched_networks_with_mask_equal_separate_networks() -> None:
    n, loads = 80, [3, 9, 14]
    x = pm1(len(loads), 2, max(loads), n, seed=9)
    mask = torch.zeros(len(loads), 2, max(loads), dtype=torch.bool)
    for i, p in enumerate(loads):
        mask[i, :, :p] = True
    # Padding rows hold garbage on purpose: the mask alone must silence them.
    x_padded = torch.where(mask[..., None], x, torch.full_like(x, 5.0))
    cues = flip_bits(x, 12, seed=10)
    batched = ClassicalHopfield().store(x_padded, mask)
    out, info = batched.retrieve(cues, return_info=True)
    for i, p in enumerate(loads):
        for j in range(2):
            single = ClassicalHopfield().store(x[i, j, :p])
            o, inf = single.retrieve(cues[i, j], return_info=True)
            assert torch.equal(out[i, j], o)
            assert torch.equal(info["steps"][i, j], inf["steps"])
            assert torch.equal(batched.weights[i, j], single.weights)
    assert batched.n_patterns.tolist() == [[p, p] for p in loads]


def test_masked_cue_entries_get_definite_signs() -> None:
    # Tie rule: W = 0 here (the two patterns' couplings cancel), so every field is 0:
    # set units keep their state, unset (0) units become +1.
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    mem = ClassicalHopfield().store(x)
    assert torch.equal(mem.weights, torch.zeros(2, 2))
    assert mem.retrieve(torch.tensor([[-1.0, 0.0], [0.0, 0.0]])).tolist() == [
        [-1.0, 1.0],
        [1.0, 1.0],
    ]
    # Tyulmankov-style cue: 60% of entries zeroed; one stored pattern is recovered exactly.
    p = pm1(3, 200, seed=11)
    mem = ClassicalHopfield().store(p)
    cue = p.clone()
    cue[:, :120] = 0
    out = mem.retrieve(cue, max_steps=1)
    assert bool((out.abs() == 1).all())
    assert (out * p).mean().item() == 1.0


def test_store_appends_and_numpy_integer_input() -> None:
    x = pm1(6, 40, seed=12)
    a = ClassicalHopfield().store(x[:2].numpy().astype(np.int64)).store(x[2:].to(torch.int8))
    b = ClassicalHopfield().store(x)
    assert torch.equal(a.weights, b.weights)
    assert a.weights.dtype == torch.get_default_dtype()
    c = ClassicalHopfield().store(x.numpy().astype(np.float64))
    assert c.weights.dtype == torch.float64
    assert c.retrieve(x[:1].numpy()).dtype == torch.float64


def test_cues_broadcast_against_networks() -> None:
    x = pm1(4, 5, 50, seed=13)  # 4 networks
    mem = ClassicalHopfield().store(x)
    shared = x[0, :2]  # [2, 50]: the same cues for every network
    out = mem.retrieve(shared)
    assert out.shape == (4, 2, 50)
    assert torch.equal(out[0], mem.retrieve(x[0:1, :2])[0])


def test_state_round_trip() -> None:
    x = pm1(2, 4, 30, seed=14)
    mem = ClassicalHopfield(dynamics="asynchronous", max_steps=7).store(x)
    back = ClassicalHopfield.from_state(mem.state_config(), mem.state_tensors())
    assert back.state_config() == mem.state_config()
    assert torch.equal(back.weights, mem.weights)
    cues = flip_bits(x, 5)
    assert torch.equal(back.retrieve(cues, generator=1), mem.retrieve(cues, generator=1))


# ------------------------------------------------------------------ bad input


def test_cue_dimension_mismatch() -> None:
    mem = ClassicalHopfield().store(pm1(3, 20))
    with pytest.raises(ValueError, match=r"cues: expected pattern size N.*= 20.*\[4, 21\]"):
        mem.retrieve(pm1(4, 21))


def test_n_units_mismatch() -> None:
    with pytest.raises(ValueError, match=r"patterns: expected n_units N = 10.*\[3, 20\]"):
        ClassicalHopfield(n_units=10).store(pm1(3, 20))


def test_nan_and_inf_rejected() -> None:
    x = pm1(3, 20)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="patterns: contains 1 NaN or Inf"):
        ClassicalHopfield().store(bad)
    mem = ClassicalHopfield().store(x)
    cue = x.clone()
    cue[1, 2] = float("inf")
    with pytest.raises(ValueError, match="cues: contains 1 NaN or Inf"):
        mem.retrieve(cue)


def test_non_pm1_patterns_rejected() -> None:
    with pytest.raises(ValueError, match=r"patterns: expected entries in \{-1, \+1\}"):
        ClassicalHopfield().store(torch.full((2, 5), 0.5))


def test_empty_memory() -> None:
    with pytest.raises(ValueError, match="memory is empty"):
        ClassicalHopfield().retrieve(pm1(1, 5))
    mem = ClassicalHopfield().store(pm1(2, 5), mask=torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="memory is empty"):
        mem.retrieve(pm1(1, 5))


def test_unknown_dynamics() -> None:
    with pytest.raises(ValueError, match="dynamics: expected one of 'synchronous'.*'glauber'"):
        ClassicalHopfield(dynamics="glauber")
    mem = ClassicalHopfield().store(pm1(2, 5))
    with pytest.raises(ValueError, match="dynamics: expected one of"):
        mem.retrieve(pm1(1, 5), dynamics="random")


def test_bad_mask_and_batch() -> None:
    x = pm1(2, 3, 5)
    with pytest.raises(ValueError, match=r"mask: expected shape \[2, 3\].*got shape \[3\]"):
        ClassicalHopfield().store(x, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask: expected dtype bool"):
        ClassicalHopfield().store(x, mask=torch.ones(2, 3))
    mem = ClassicalHopfield().store(x)
    with pytest.raises(ValueError, match=r"cues: expected leading dimensions broadcastable"):
        mem.retrieve(pm1(3, 1, 5))
    with pytest.raises(ValueError, match=r"patterns: expected batch shape \[2\]"):
        mem.store(pm1(3, 1, 5))
    with pytest.raises(ValueError, match="max_steps: expected an integer >= 1, got 0"):
        mem.retrieve(x, max_steps=0)


def _reference_asynchronous(
    c: torch.Tensor, cues: torch.Tensor, seed: int, max_steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Asynchronous sign dynamics one unit at a time (the defining loop, float64).

    Every sweep draws uniform sort keys for *all* (network, cue) pairs, ``[B, Q, N]``, from
    the generator and visits each pair's units in argsort order; stops after the first
    sweep in which nothing changed. Returns (states, sweeps that changed each pair).
    """
    gen = torch.Generator().manual_seed(seed)
    s = torch.sign(cues.double()).clone()
    b_n, q_n, n = s.shape
    steps = torch.zeros(b_n, q_n, dtype=torch.int64)
    for _ in range(max_steps):
        order = torch.rand((b_n, q_n, n), generator=gen).argsort(-1)
        changed = torch.zeros(b_n, q_n, dtype=torch.bool)
        for b in range(b_n):
            for q in range(q_n):
                for i in order[b, q].tolist():
                    h = float(c[b, i] @ s[b, q])
                    old = float(s[b, q, i])
                    new = (1.0 if h > 0 else -1.0) if h != 0 else (old if old != 0 else 1.0)
                    if new != old:
                        s[b, q, i] = new
                        changed[b, q] = True
        steps += changed.to(torch.int64)
        if not bool(changed.any()):
            break
    return s, steps


@pytest.mark.parametrize("zero_diagonal", [True, False])
def test_asynchronous_equals_unit_by_unit_reference(zero_diagonal: bool) -> None:
    # The vectorised sweep (live rows only, fields updated on flips) must give exactly the
    # states of the defining unit-by-unit loop for the same seed, including the random
    # unit orders: cues converge after different numbers of sweeps, so rows drop out.
    n, p = 30, 6
    x = pm1(3, 8, n, seed=15)
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[0, p:] = False
    cues = flip_bits(x, 9, seed=16)
    cues[..., :8] = 0  # unknown entries: first updates go through the 0 -> sign tie rule
    mem = ClassicalHopfield(dynamics="asynchronous", zero_diagonal=zero_diagonal)
    mem.store(x, mask)
    c = (mem.weights.double() * n).round()  # the integer sums C
    out, info = mem.retrieve(cues, return_info=True, generator=123, max_steps=40)
    ref, ref_steps = _reference_asynchronous(c, cues, seed=123, max_steps=40)
    assert torch.equal(out.double(), ref)
    assert torch.equal(info["steps"], ref_steps)
    assert int(info["steps"].max()) > int(info["steps"].min())  # rows finish at different sweeps
    assert bool(info["converged"].all())


# ------------------------------------------------------------------ exactness of the fast paths
# The asynchronous sweep (event mode for few flipping rows, step mode for many) and the
# synchronous working set must give bit for bit what the defining loops give.

SETTINGS = settings(max_examples=30, deadline=None)


def _random_problem(seed: int, b: int, q: int, n: int, p: int, zero_frac: float):
    """Networks ``[b, p, n]`` (random loads by mask), cues ``[b, q, n]`` near stored
    patterns with some entries flipped and ``zero_frac`` of them unknown (0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (b, p, n), generator=g).float() * 2 - 1
    mask = torch.rand(b, p, generator=g) < 0.8
    mask[:, 0] = True
    cues = x[:, torch.randint(0, p, (q,), generator=g)].clone()
    cues[torch.rand(cues.shape, generator=g) < 0.25] *= -1
    cues[torch.rand(cues.shape, generator=g) < zero_frac] = 0
    return x, mask, cues


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    b=st.integers(1, 3),
    q=st.integers(1, 6),
    n=st.integers(1, 24),
    p=st.integers(1, 8),
    zero_frac=st.sampled_from([0.0, 0.3, 1.0]),
    zero_diagonal=st.booleans(),
    event_rows=st.sampled_from([0, 1, 3, 10**6]),
)
def test_asynchronous_equals_reference_on_random_shapes(
    seed, b, q, n, p, zero_frac, zero_diagonal, event_rows
) -> None:
    x, mask, cues = _random_problem(seed, b, q, n, p, zero_frac)
    mem = ClassicalHopfield(dynamics="asynchronous", zero_diagonal=zero_diagonal)
    mem.store(x, mask)
    c = (mem.weights.double() * n).round()
    # event_rows = 0: always step mode; 10**6: always event mode; in between: both, by sweep
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hopfield_module, "_EVENT_ROWS", event_rows)
        out, info = mem.retrieve(cues, return_info=True, generator=seed, max_steps=30)
    ref, ref_steps = _reference_asynchronous(c, cues, seed=seed, max_steps=30)
    assert torch.equal(out.double(), ref)
    assert torch.equal(info["steps"], ref_steps)


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    a=st.integers(1, 5),
    n=st.integers(1, 20),
    event_rows=st.sampled_from([0, 10**6]),
)
def test_numpy_sweep_equals_torch_sweep(seed, a, n, event_rows) -> None:
    # The CPU sweep (NumPy views) and the device-independent torch loop, on the same rows,
    # orders and fields (one network per row, float64 integer sums).
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (a, 3, n), generator=g).double() * 2 - 1
    c = x.transpose(-1, -2) @ x
    c.diagonal(dim1=-2, dim2=-1).zero_()
    s = torch.randint(-1, 2, (a, n), generator=g).double()
    fields = (s[:, None] @ c).squeeze(1)
    c_flat = c.reshape(-1, n)
    base = torch.arange(a) * n
    rows = torch.arange(a)
    order = torch.rand(a, n, generator=g).argsort(-1)
    s2, f2 = s.clone(), fields.clone()
    moved = _sweep_torch(s2, f2, c_flat, base, rows, order)
    s1, f1 = s.clone(), fields.clone()
    changed = _sweep_cpu(
        s1.numpy(),
        f1.numpy(),
        c_flat.numpy(),
        base.numpy(),
        rows.numpy(),
        order.numpy(),
        event_rows=event_rows,
    )
    assert torch.equal(s1, s2) and torch.equal(f1, f2)
    assert torch.equal(torch.from_numpy(changed), moved)
    assert torch.equal(f1, (s1[:, None] @ c).squeeze(1))  # the fields stay s C


@SETTINGS
@given(
    h=st.lists(st.integers(-(2**24) + 1, 2**24 - 1), min_size=1, max_size=30),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_integer_tie_rule_equals_sign_keep(h, seed, dtype) -> None:
    hh = torch.tensor(h, dtype=dtype)
    hh[:: max(1, len(h) // 3)] = 0  # ties
    s = torch.randint(-1, 2, hh.shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    assert torch.equal(_sign_int(hh.clone(), s), _sign_keep(hh, s))


def _reference_synchronous(
    c: torch.Tensor, cues: torch.Tensor, max_steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synchronous sign dynamics cue by cue (the defining loop, float64): every unit at once,
    s <- sign(s C) with the tie rule, until an update changes nothing."""
    b_n, q_n, n = cues.shape
    out = torch.zeros(b_n, q_n, n, dtype=torch.float64)
    steps = torch.zeros(b_n, q_n, dtype=torch.int64)
    for b in range(b_n):
        for q in range(q_n):
            s = torch.sign(cues[b, q].double())
            for _ in range(max_steps):
                new = _sign_keep(s @ c[b], s)
                if torch.equal(new, s):
                    break
                s = new
                steps[b, q] += 1
            out[b, q] = s
    return out, steps


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    b=st.integers(1, 7),
    q=st.integers(1, 5),
    n=st.integers(1, 24),
    p=st.integers(1, 12),
    zero_frac=st.sampled_from([0.0, 0.6]),
    zero_diagonal=st.booleans(),
)
def test_synchronous_equals_reference_on_random_shapes(
    seed, b, q, n, p, zero_frac, zero_diagonal
) -> None:
    # Networks converge after different numbers of updates (random loads), so the working
    # set of still-live networks shrinks and is gathered again along the way.
    x, mask, cues = _random_problem(seed, b, q, n, p, zero_frac)
    mem = ClassicalHopfield(zero_diagonal=zero_diagonal).store(x, mask)
    c = (mem.weights.double() * n).round()
    out, info = mem.retrieve(cues, return_info=True, max_steps=25)
    ref, ref_steps = _reference_synchronous(c, cues, max_steps=25)
    assert torch.equal(out.double(), ref)
    # a 2-cycle never converges: count only rows the reference saw settle
    settled = info["converged"]
    assert torch.equal(info["steps"][settled], ref_steps[settled])


def test_synchronous_working_set_matches_reference() -> None:
    # 12 networks of 40 units: 9 hold one pattern (their cues settle in one update), 3 hold
    # 4, 6 and 30 (overloaded: many updates): after the first update fewer than half are
    # live, so only a gathered working set is updated, and it shrinks again as the loads of
    # 4 and 6 settle.
    n, p = 40, 30
    x = pm1(12, p, n, seed=21)
    mask = torch.zeros(12, p, dtype=torch.bool)
    mask[:9, 0] = True
    mask[9, :4] = True
    mask[10, :6] = True
    mask[11] = True
    cues = flip_bits(x[:, [0, 0, 0, 0]], 12, seed=22)  # 4 cues of pattern 0 per network
    mem = ClassicalHopfield(max_steps=60).store(x, mask)
    c = (mem.weights.double() * n).round()
    out, info = mem.retrieve(cues, return_info=True)
    ref, ref_steps = _reference_synchronous(c, cues, max_steps=60)
    assert torch.equal(out.double(), ref)
    settled = info["converged"]
    assert torch.equal(info["steps"][settled], ref_steps[settled])
    assert int(info["steps"][9:].max()) >= 3 and int(info["steps"][:9].max()) <= 1
