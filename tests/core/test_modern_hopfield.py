"""Tests for kvmem.core.modern_hopfield.ModernHopfield (docs/science.md 1.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core.modern_hopfield import ModernHopfield
from support.patterns import pm1


def noisy(x: torch.Tensor, p: float, seed: int = 1) -> torch.Tensor:
    """Flip each entry with probability p."""
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(x.shape, generator=g) < p, -x, x)


def test_one_update_retrieves_at_large_beta() -> None:
    x = pm1(3, 20, 64, seed=40)  # 3 networks of 20 patterns
    cues = noisy(x, 0.2, seed=41)  # ~13 of 64 entries flipped
    mem = ModernHopfield(beta=4.0).store(x)
    out, info = mem.retrieve(cues, return_info=True)
    overlap = (out * x).mean(-1)
    assert overlap.min().item() > 0.99, overlap.min().item()
    assert info["steps"].unique().tolist() == [1]
    # The attention puts (almost) all weight on the cue's own pattern.
    own = info["attention"].diagonal(dim1=-2, dim2=-1)
    assert own.min().item() > 0.99


def test_small_beta_gives_the_mean_of_the_patterns() -> None:
    x = pm1(20, 64, seed=42)
    cues = noisy(x, 0.2, seed=43)
    out = ModernHopfield(beta=1e-3).store(x).retrieve(cues)
    mean = x.mean(0)
    rel = ((out - mean).norm(dim=-1) / mean.norm()).max().item()
    assert rel < 0.05, rel  # measured 0.016
    assert (out * x).sum(-1).div(out.norm(dim=-1) * x.norm(dim=-1)).max().item() < 0.5


def test_energy_decreases_along_updates() -> None:
    # Intermediate beta: the state drifts over many updates into a metastable mixture.
    x = pm1(20, 64, seed=44, dtype=torch.float64)
    cues = noisy(x, 0.2, seed=45)
    mem = ModernHopfield(beta=0.08, max_steps=30, tol=0.0).store(x)
    _, info = mem.retrieve(cues, return_info=True, track_energy=True)
    e = info["energy"]  # [31, 20]
    assert e.shape == (31, 20)
    assert bool((e[1:] <= e[:-1] + 1e-10).all())
    assert bool((e[-1] < e[0] - 1.0).all())  # a real descent, not a flat line
    assert bool((e >= -1e-10).all())  # the constants make E >= 0 (Ramsauer et al.)


def test_energy_formula_scores_attention_and_mask() -> None:
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(46), dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True, False, True, False, False]])
    beta = 0.7
    mem = ModernHopfield(beta=beta).store(x, mask)
    xi = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(47), dtype=torch.float64)
    scores = mem.scores(xi)
    assert bool(torch.isinf(scores[1][:, ~mask[1]]).all())
    att = mem.attention(xi)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    assert bool((att[1][:, ~mask[1]] == 0).all())
    for b in range(2):
        xb = x[b][mask[b]]
        p = xb.shape[0]
        a = torch.softmax(beta * xi[b] @ xb.T, -1)
        torch.testing.assert_close(att[b][:, mask[b]], a)
        torch.testing.assert_close(mem.retrieve(xi)[b], a @ xb)
        big_m = xb.norm(dim=-1).max()
        e = (
            -torch.logsumexp(beta * xi[b] @ xb.T, -1) / beta
            + 0.5 * (xi[b] ** 2).sum(-1)
            + math.log(p) / beta
            + 0.5 * big_m**2
        )
        torch.testing.assert_close(mem.energy(xi)[b], e)


def test_batched_networks_with_mask_equal_separate_networks() -> None:
    loads = [1, 4, 9]
    x = pm1(len(loads), max(loads), 32, seed=48)
    mask = torch.zeros(len(loads), max(loads), dtype=torch.bool)
    for i, p in enumerate(loads):
        mask[i, :p] = True
    padded = torch.where(mask[..., None], x, torch.full_like(x, 1e3))  # garbage padding
    cues = noisy(x[:, :1].expand(-1, 4, -1), 0.3, seed=49)
    out = ModernHopfield(beta=0.1, max_steps=5).store(padded, mask).retrieve(cues)
    for i, p in enumerate(loads):
        single = ModernHopfield(beta=0.1, max_steps=5).store(x[i, :p]).retrieve(cues[i])
        torch.testing.assert_close(out[i], single, rtol=1e-5, atol=1e-6)


def test_convergence_stops_and_freezes() -> None:
    x = pm1(10, 40, seed=50, dtype=torch.float64)
    mem = ModernHopfield(beta=1.0, max_steps=50, tol=1e-9).store(x)
    out, info = mem.retrieve(noisy(x, 0.1, seed=51), return_info=True)
    assert bool(info["converged"].all())
    assert int(info["steps"].max()) < 50
    torch.testing.assert_close(out, x, rtol=0, atol=1e-9)
    _, info = mem.retrieve(noisy(x, 0.1), max_steps=1, tol=0.0, return_info=True)
    assert not bool(info["converged"].any())


def test_numpy_integer_input_and_dtype() -> None:
    x = pm1(4, 16, seed=52).numpy().astype(np.int8)
    mem = ModernHopfield(beta=4.0).store(x)
    out = mem.retrieve(x.astype(np.float64))
    assert out.dtype == torch.get_default_dtype()
    assert torch.equal(out, torch.from_numpy(x).float())
    x64 = ModernHopfield().store(torch.from_numpy(x).double())
    assert x64.retrieve(x).dtype == torch.float64


def test_state_round_trip() -> None:
    x = torch.randn(2, 6, 10, generator=torch.Generator().manual_seed(53))
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    mem = ModernHopfield(beta=3.0, max_steps=4, tol=1e-4).store(x, mask)
    back = ModernHopfield.from_state(mem.state_config(), mem.state_tensors())
    assert back.state_config() == mem.state_config()
    assert torch.equal(back.retrieve(x), mem.retrieve(x))


# ------------------------------------------------------------------ bad input


def test_beta_not_positive() -> None:
    with pytest.raises(ValueError, match="beta: expected a finite value > 0, got 0"):
        ModernHopfield(beta=0.0)
    with pytest.raises(ValueError, match="beta: expected a finite value > 0, got -2"):
        ModernHopfield(beta=-2)


def test_cue_dimension_mismatch() -> None:
    mem = ModernHopfield().store(torch.randn(4, 12))
    with pytest.raises(ValueError, match=r"cues: expected pattern size N.*= 12.*\[3, 11\]"):
        mem.retrieve(torch.randn(3, 11))
    with pytest.raises(ValueError, match=r"cues: expected pattern size N.*= 12"):
        mem.attention(torch.randn(3, 11))


def test_nan_inf_and_empty() -> None:
    with pytest.raises(ValueError, match="memory is empty"):
        ModernHopfield().retrieve(torch.randn(1, 3))
    bad = torch.randn(2, 3)
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="patterns: contains 1 NaN or Inf"):
        ModernHopfield().store(bad)
    mem = ModernHopfield().store(torch.randn(2, 3))
    with pytest.raises(ValueError, match="cues: contains 1 NaN or Inf"):
        mem.retrieve(bad)
    with pytest.raises(ValueError, match="tol: expected a finite value >= 0"):
        ModernHopfield(tol=-1.0)


def _reference_retrieve(mem: ModernHopfield, cues: torch.Tensor, steps_max: int, tol: float):
    """The update loop as first written: every pass over every step, nothing skipped."""
    x, mask = mem.patterns, mem.mask
    xi = cues.expand(*torch.broadcast_shapes(cues.shape[:-2], x.shape[:-2]), *cues.shape[-2:])
    xi = xi.clone()
    steps = torch.zeros(xi.shape[:-1], dtype=torch.int64)
    converged = torch.zeros(xi.shape[:-1], dtype=torch.bool)
    last = None
    for _ in range(steps_max):
        s = (xi @ x.transpose(-1, -2)).masked_fill(~mask[..., None, :], float("-inf"))
        att = torch.nan_to_num(torch.softmax(mem.beta * s.float(), dim=-1).to(s.dtype), nan=0.0)
        new = att @ x
        active = ~converged
        moved = (new - xi).abs().amax(-1)
        xi = torch.where(active[..., None], new, xi)
        last = att if last is None else torch.where(active[..., None], att, last)
        steps += active.to(torch.int64)
        converged |= moved <= tol
        if bool(converged.all()):
            break
    return xi, steps, converged, last


@settings(max_examples=40, deadline=None)
@given(
    batch=st.sampled_from([(), (2,)]),
    p=st.integers(1, 40),
    n=st.integers(1, 12),
    q=st.integers(1, 6),
    beta=st.sampled_from([1e-3, 0.5, 4.0, 1e38]),
    steps=st.integers(1, 5),
    tol=st.sampled_from([0.0, 1e-6, 0.5]),
    masking=st.sampled_from(["none", "some", "empty"]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 999),
)
def test_retrieve_is_the_reference_loop_bit_for_bit(
    batch, p, n, q, beta, steps, tol, masking, dtype, seed
) -> None:
    # The skipped passes (masked_fill with nothing masked, nan_to_num where no NaN can arise,
    # where() while every state moves, the last convergence test) change no bit; beta = 1e38
    # overflows the scores (NaN weights, zeroed) and "empty" has a network with no pattern.
    # beta scales the fresh score matrix in place: the same products as beta * s.
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, p, n, generator=g, dtype=dtype)
    mask = None
    if masking != "none":
        mask = torch.rand(*batch, p, generator=g) < 0.6
        mask.reshape(-1, p)[0, 0] = True  # something stored somewhere
        if masking == "empty" and batch:
            mask[1] = False
    mem = ModernHopfield(beta=beta, max_steps=steps, tol=tol).store(x, mask)
    cues = torch.randn(*batch, q, n, generator=g, dtype=dtype)
    ref_xi, ref_steps, ref_conv, ref_att = _reference_retrieve(mem, cues, steps, tol)
    assert torch.equal(mem.retrieve(cues), ref_xi)
    xi, info = mem.retrieve(cues, return_info=True)
    assert torch.equal(xi, ref_xi) and torch.equal(info["attention"], ref_att)
    assert torch.equal(info["steps"], ref_steps) and torch.equal(info["converged"], ref_conv)


def test_emptied_in_place_mask_is_seen_by_the_next_retrieval() -> None:
    # The "anything stored?" check is cached per mask version: an in-place edit that masks
    # every pattern must still make the next call refuse.
    net = ModernHopfield(beta=2.0).store(torch.sign(torch.randn(5, 8)))
    cue = torch.ones(1, 8)
    net.retrieve(cue)
    net.mask.zero_()
    with pytest.raises(ValueError, match="memory is empty"):
        net.retrieve(cue)
