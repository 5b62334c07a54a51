"""Tests for kvmem.core.dense_associative.DenseAssociativeMemory (docs/science.md 1.4)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.dense_associative import DenseAssociativeMemory
from kvmem.core.hopfield import ClassicalHopfield
from support.patterns import flip_bits, pm1


def test_capacity_grows_with_n_and_exponential_beats_n2() -> None:
    # N = 40; loads padded into one batch per model: [4 loads, 2 seeds] networks. The cues
    # are the first 16 stored patterns of each network (fewer if fewer are stored), each
    # with 4 of 40 bits flipped; "retrieved" = the final state equals the pattern exactly.
    n_units, seeds, loads, n_cues = 40, 2, [3, 16, 128, 512], 16
    x = pm1(len(loads), seeds, max(loads), n_units, seed=21)
    mask = torch.zeros(len(loads), seeds, max(loads), dtype=torch.bool)
    for i, p in enumerate(loads):
        mask[i, :, :p] = True
    cues = flip_bits(x[:, :, :n_cues], 4, seed=22)
    fractions: dict[str, list[float]] = {}
    for name, kwargs in {
        "n2": {"n": 2},
        "n3": {"n": 3},
        "n4": {"n": 4},
        "exp": {"interaction": "exponential"},
    }.items():
        mem = DenseAssociativeMemory(**kwargs, max_steps=8).store(x, mask)
        ok = (mem.retrieve(cues) == x[:, :, :n_cues]).all(-1)  # [loads, seeds, n_cues]
        fractions[name] = [
            ok[i, :, : min(p, n_cues)].float().mean().item() for i, p in enumerate(loads)
        ]

    def capacity(fr: list[float]) -> int:
        """Largest load in the grid up to which >= 90% of the cues are retrieved."""
        cap = 0
        for p, f in zip(loads, fr, strict=True):
            if f < 0.9:
                break
            cap = p
        return cap

    caps = {k: capacity(v) for k, v in fractions.items()}
    # Measured capacities: n2 -> 3, n3 -> 16, n4 -> 128, exp -> 512; fractions at loads
    # 3/16/128/512: n2 1.0/0.06/0/0, n3 1.0/1.0/0.34/0, n4 1.0/1.0/1.0/0.5, exp all 1.0.
    assert caps["n2"] < caps["n3"] < caps["n4"], fractions
    assert caps["exp"] > caps["n2"], fractions
    assert fractions["n2"][1] <= 0.2, fractions  # 16 patterns = 0.4 N: far past 0.14 N
    assert fractions["n3"][2] <= 0.5, fractions
    assert fractions["n4"][2] >= 0.97, fractions
    assert fractions["exp"][3] >= 0.97, fractions


def _brute_force_step(
    s: torch.Tensor, x: torch.Tensor, f, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Reference synchronous step from the defining formula, unit by unit (float64)."""
    s, x = s.double(), x.double()
    w = torch.ones(x.shape[0], dtype=torch.float64) if mask is None else mask.double()
    out = s.clone()
    for q in range(s.shape[0]):
        for i in range(s.shape[1]):
            r = x @ s[q] - x[:, i] * s[q, i]  # overlaps without unit i
            delta = (w * (f(r + x[:, i]) - f(r - x[:, i]))).sum()
            if delta != 0:
                out[q, i] = torch.sign(delta)
            elif s[q, i] == 0:
                out[q, i] = 1.0
    return out


@pytest.mark.parametrize(
    ("interaction", "n", "beta", "f"),
    [
        ("polynomial", 3, 1.0, lambda v: v**3),
        ("polynomial", 4, 1.0, lambda v: v**4),
        ("rectified_polynomial", 3, 1.0, lambda v: v.clamp(min=0) ** 3),
        ("exponential", 2, 0.7, lambda v: torch.exp(0.7 * v)),
    ],
)
def test_synchronous_step_matches_definition(interaction: str, n: int, beta: float, f) -> None:
    n_units, p = 14, 6
    x = pm1(p, n_units, seed=23)
    mask = torch.tensor([True, True, False, True, True, True])
    states = pm1(9, n_units, seed=24)
    states[3:6, :5] = 0  # masked cue entries use the s_i = 0 branch
    mem = DenseAssociativeMemory(interaction, n=n, beta=beta).store(x, mask)
    got = mem.retrieve(states, max_steps=1)
    assert torch.equal(got.double(), _brute_force_step(states, x, f, mask))
    # And the energy is -sum_mu F(xi_mu . s) over the stored patterns.
    expected = -(f(states.double() @ x.double().T) * mask.double()).sum(-1)
    torch.testing.assert_close(mem.energy(states).double(), expected, rtol=1e-6, atol=1e-6)


def test_n2_equals_classical_hopfield() -> None:
    x = pm1(3, 15, 60, seed=25)
    cues = flip_bits(x, 15, seed=26)
    cues[..., :6] = 0
    dam, dinfo = DenseAssociativeMemory(n=2, max_steps=30).store(x).retrieve(cues, return_info=True)
    hop, hinfo = ClassicalHopfield(max_steps=30).store(x).retrieve(cues, return_info=True)
    assert torch.equal(dam, hop)
    assert torch.equal(dinfo["steps"], hinfo["steps"])


@pytest.mark.parametrize("interaction", ["polynomial", "exponential"])
def test_energy_never_increases_under_asynchronous_dynamics(interaction: str) -> None:
    x = pm1(2, 30, 40, seed=27, dtype=torch.float64)
    mem = DenseAssociativeMemory(interaction, n=3, dynamics="asynchronous").store(x)
    cues = flip_bits(x, 14, seed=28)
    out, info = mem.retrieve(cues, return_info=True, track_energy=True, generator=3)
    e = info["energy"]
    assert bool((e[1:] <= e[:-1] * (1 - 1e-12) + 1e-9).all())  # float64 round-off only
    assert bool((e[-1] < e[0]).any())
    assert bool(info["converged"].all())
    # An asynchronous fixed point is stable for every unit: a synchronous step keeps it.
    assert torch.equal(mem.retrieve(out, dynamics="synchronous", max_steps=1), out)


def test_batched_networks_with_mask_equal_separate_networks() -> None:
    loads, n_units = [2, 7, 20], 30
    x = pm1(len(loads), max(loads), n_units, seed=29)
    mask = torch.zeros(len(loads), max(loads), dtype=torch.bool)
    for i, p in enumerate(loads):
        mask[i, :p] = True
    cues = flip_bits(x[:, :5], 6, seed=30)
    for interaction in ("polynomial", "exponential"):
        batched = DenseAssociativeMemory(interaction, n=3).store(x, mask).retrieve(cues)
        for i, p in enumerate(loads):
            single = DenseAssociativeMemory(interaction, n=3).store(x[i, :p]).retrieve(cues[i])
            assert torch.equal(batched[i], single)


def test_exponential_does_not_overflow_at_large_n() -> None:
    # exp(2000) overflows even float64; the per-state shift keeps the dynamics finite.
    x = pm1(50, 2000, seed=31)
    mem = DenseAssociativeMemory("exponential", beta=1.0).store(x)
    cues = flip_bits(x[:10], 600, seed=32)
    out = mem.retrieve(cues)
    assert torch.equal(out, x[:10])
    assert math.isinf(mem.energy(x[:1]).item())  # documented: E itself overflows


def test_state_round_trip_and_dtype() -> None:
    x = pm1(2, 6, 20, seed=33, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    mem = DenseAssociativeMemory("rectified_polynomial", n=4, max_steps=9).store(x, mask)
    back = DenseAssociativeMemory.from_state(mem.state_config(), mem.state_tensors())
    assert back.state_config() == mem.state_config()
    assert torch.equal(back.mask, mem.mask)
    cues = flip_bits(x, 4)
    out = back.retrieve(cues)
    assert out.dtype == torch.float64
    assert torch.equal(out, mem.retrieve(cues))
    ints = DenseAssociativeMemory().store(x.to(torch.int32).numpy())
    assert ints.retrieve(x[0].numpy()).dtype == torch.get_default_dtype()


# ------------------------------------------------------------------ bad input


def test_n_below_two() -> None:
    with pytest.raises(ValueError, match="n: expected an integer >= 2, got 1"):
        DenseAssociativeMemory(n=1)


def test_beta_not_positive() -> None:
    with pytest.raises(ValueError, match="beta: expected a finite value > 0, got 0"):
        DenseAssociativeMemory("exponential", beta=0)
    with pytest.raises(ValueError, match="beta: expected a finite value > 0, got -1"):
        DenseAssociativeMemory("exponential", beta=-1.0)


def test_unknown_interaction_and_dynamics() -> None:
    with pytest.raises(ValueError, match="interaction: expected one of 'polynomial'.*'cubic'"):
        DenseAssociativeMemory("cubic")
    with pytest.raises(ValueError, match="dynamics: expected one of.*'parallel'"):
        DenseAssociativeMemory(dynamics="parallel")


def test_cue_dimension_mismatch() -> None:
    mem = DenseAssociativeMemory().store(pm1(3, 20))
    with pytest.raises(ValueError, match=r"cues: expected pattern size N.*= 20.*\[2, 19\]"):
        mem.retrieve(pm1(2, 19))
    with pytest.raises(ValueError, match=r"patterns: expected pattern size N.*= 20.*\[1, 19\]"):
        mem.store(pm1(1, 19))


def test_nan_and_empty() -> None:
    with pytest.raises(ValueError, match="memory is empty"):
        DenseAssociativeMemory().retrieve(pm1(1, 5))
    bad = pm1(2, 5)
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="patterns: contains 1 NaN or Inf"):
        DenseAssociativeMemory().store(bad)
    mem = DenseAssociativeMemory().store(pm1(2, 5))
    with pytest.raises(ValueError, match="cues: contains 1 NaN or Inf"):
        mem.retrieve(bad)
    with pytest.raises(ValueError, match=r"patterns: expected entries in \{-1, \+1\}"):
        DenseAssociativeMemory().store(torch.zeros(2, 5))


def test_asynchronous_equals_unit_by_unit_reference() -> None:
    # The vectorised sweep (live rows only, overlaps kept up to date) must give exactly the
    # states of the defining unit-by-unit loop for the same seed: every sweep draws sort
    # keys for all [B, Q, N] units and visits each row's units in argsort order.
    n_units, f = 24, lambda v: v**3
    x = pm1(2, 20, n_units, seed=34, dtype=torch.float64)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 12:] = False
    cues = flip_bits(x[:, :6], 5, seed=35)
    cues[..., :6] = 0
    mem = DenseAssociativeMemory(n=3, dynamics="asynchronous").store(x, mask)
    out, info = mem.retrieve(cues, return_info=True, generator=5, max_steps=30)

    gen = torch.Generator().manual_seed(5)
    s = cues.clone()
    w = mask.double()
    steps = torch.zeros(2, 6, dtype=torch.int64)
    for _ in range(30):
        order = torch.rand((2, 6, n_units), generator=gen).argsort(-1)
        changed = torch.zeros(2, 6, dtype=torch.bool)
        for b in range(2):
            for q in range(6):
                for i in order[b, q].tolist():
                    r = x[b] @ s[b, q] - x[b, :, i] * s[b, q, i]
                    delta = float((w[b] * (f(r + x[b, :, i]) - f(r - x[b, :, i]))).sum())
                    old = float(s[b, q, i])
                    new = (1.0 if delta > 0 else -1.0) if delta != 0 else (old or 1.0)
                    if new != old:
                        s[b, q, i] = new
                        changed[b, q] = True
        steps += changed.to(torch.int64)
        if not bool(changed.any()):
            break
    assert torch.equal(out, s)
    assert torch.equal(info["steps"], steps)
    assert int(steps.max()) > int(steps.min())  # rows finish at different sweeps


def test_clear_forgets_output_dtype() -> None:
    x = pm1(3, 10, seed=36, dtype=torch.float64)
    mem = DenseAssociativeMemory().store(x)
    assert mem.retrieve(x).dtype == torch.float64
    mem.clear()
    with pytest.raises(ValueError, match="memory is empty"):
        mem.retrieve(x)
    assert mem.store(x.float()).retrieve(x).dtype == torch.float32


@given(
    n=st.sampled_from([3, 5]),
    n_units=st.integers(2, 60),
    p=st.integers(1, 40),
    q=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
@settings(max_examples=40, deadline=None)
def test_odd_power_closed_form_equals_direct_differences_bit_for_bit(
    n: int, n_units: int, p: int, q: int, seed: int
) -> None:
    # The binomial closed form of the synchronous field (x^n, n odd) against the direct
    # F(m + a) - F(m - a) terms: exact integers, so equal to the last bit, masked rows and
    # unset (0) cue entries included.
    g = torch.Generator().manual_seed(seed)
    x = (2.0 * torch.randint(0, 2, (2, p, n_units), generator=g) - 1).double()
    mask = torch.rand(2, p, generator=g) < 0.8
    x = torch.where(mask[..., None], x, 0.0)
    s = torch.randint(-1, 2, (2, q, n_units), generator=g).double()
    fast = DenseAssociativeMemory(n=n)
    assert fast._odd_power_exact(x)
    direct = DenseAssociativeMemory(n=n)
    direct._odd_power_exact = lambda x: False  # type: ignore[method-assign]
    a, b = fast._delta_all(s, x, mask), direct._delta_all(s, x, mask)
    assert torch.equal(a.view(torch.int64), b.view(torch.int64))


def test_odd_power_closed_form_only_where_exact() -> None:
    # even powers and sums that could pass 2^53 take the direct route
    x = torch.ones(1, 300, 160, dtype=torch.float64)
    assert DenseAssociativeMemory(n=3)._odd_power_exact(x)
    assert not DenseAssociativeMemory(n=4)._odd_power_exact(x)
    assert not DenseAssociativeMemory(n=7)._odd_power_exact(x)
    assert not DenseAssociativeMemory(interaction="exponential")._odd_power_exact(x)
