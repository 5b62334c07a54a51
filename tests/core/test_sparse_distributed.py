"""Tests for kvmem.core.sparse_distributed.SparseDistributedMemory (docs/science.md 1.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kvmem.core.sparse_distributed import SparseDistributedMemory, radius_for_probability
from support.patterns import flip_bits, pm1


def test_bit_error_low_at_low_load_and_rising_with_load() -> None:
    # N_a = 128, M = 1000, p = 0.02; one batched write: 4 memories holding 10..500 patterns.
    loads, n_cues = [10, 50, 150, 500], 100
    x = pm1(len(loads), max(loads), 128, seed=60)
    mask = torch.zeros(len(loads), max(loads), dtype=torch.bool)
    for i, t in enumerate(loads):
        mask[i, :t] = True
    sdm = SparseDistributedMemory(128, n_locations=1000, activation_probability=0.02)
    sdm.store(x, mask)
    assert sdm.counters.dtype == torch.int32
    assert sdm.counters.shape == (len(loads), 1000, 128)
    out = sdm.read(x[:, :n_cues])
    err = [
        (out[i, :m] != x[i, :m]).float().mean().item()
        for i, m in enumerate(min(t, n_cues) for t in loads)
    ]
    # Measured: 0.0000, 0.0003, 0.0128, 0.0723.
    assert err[0] <= 0.001, err
    assert err[0] <= err[1] < err[2] < err[3], err
    assert err[3] >= 0.03, err
    # Iterated reads clean a noisy cue at low load (Kanerva's convergent recall).
    cues = flip_bits(x[0, :10], 6, seed=61)
    once = sdm.read(cues[None].expand(len(loads), -1, -1))[0]
    again, info = sdm.retrieve(
        cues[None].expand(len(loads), -1, -1), iterations=10, return_info=True
    )
    assert torch.equal(again[0], x[0, :10])
    assert (once != x[0, :10]).sum() >= (again[0] != x[0, :10]).sum()
    assert bool(info["converged"][0].all())


def test_write_and_read_match_naive_reference() -> None:
    na, nd, m, r = 16, 5, 50, 6
    sdm = SparseDistributedMemory(na, data_dim=nd, n_locations=m, radius=r, seed=3)
    addr, data = pm1(2, 7, na, seed=62), pm1(2, 7, nd, seed=63)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    sdm.write(addr, data, mask)
    hard = sdm.addresses
    assert bool((hard.abs() == 1).all()) and hard.shape == (m, na)
    expected = torch.zeros(2, m, nd, dtype=torch.int64)
    for b in range(2):
        for p in range(7):
            if not mask[b, p]:
                continue
            for loc in range(m):
                if int((hard[loc] != addr[b, p]).sum()) <= r:
                    expected[b, loc] += data[b, p].long()
    assert torch.equal(sdm.counters.long(), expected)
    cues = pm1(2, 4, na, seed=64)
    got, info = sdm.read(cues, return_info=True)
    for b in range(2):
        for q in range(4):
            active = [loc for loc in range(m) if int((hard[loc] != cues[b, q]).sum()) <= r]
            total = expected[b, active].sum(0)
            assert torch.equal(got[b, q], torch.where(total >= 0, 1.0, -1.0))
            assert int(info["n_active"][b, q]) == len(active)


def test_heteroassociative_recall() -> None:
    addr, data = pm1(20, 200, seed=65), pm1(20, 12, seed=66)
    sdm = SparseDistributedMemory(200, data_dim=12, n_locations=2000, activation_probability=0.05)
    sdm.write(addr.numpy(), data.to(torch.int64))
    assert torch.equal(sdm.read(addr), data)
    assert torch.equal(sdm.read(flip_bits(addr, 2)), data)
    noisy_err = (sdm.read(flip_bits(addr, 10)) != data).float().mean().item()
    assert noisy_err <= 0.05, noisy_err  # measured 0.0125


def test_counter_overflow_raises_and_leaves_memory_unchanged() -> None:
    x = pm1(1, 8, seed=67)
    sdm = SparseDistributedMemory(8, n_locations=20, radius=8, counter_dtype=torch.int8)
    sdm.store(x.expand(127, 8))  # every location active: counters reach exactly 127
    assert sdm.counters.dtype == torch.int8
    assert torch.equal(sdm.counters, (127 * x).to(torch.int8).expand(20, 8))
    before = sdm.counters.clone()
    # int8 is [-128, 127]: only the +1 entries overflow (-127 - 1 = -128 still fits).
    n_over = 20 * int((x > 0).sum())
    with pytest.raises(
        OverflowError, match=rf"counters: .* {n_over} counter\(s\).*int8.*-128, 127"
    ):
        sdm.store(x)
    assert torch.equal(sdm.counters, before)
    fresh = SparseDistributedMemory(8, n_locations=20, radius=8, counter_dtype="int8")
    with pytest.raises(OverflowError, match=r"largest \|value\| 200"):
        fresh.store(x.expand(200, 8))


def test_clip_saturates() -> None:
    x = pm1(1, 8, seed=68)
    sdm = SparseDistributedMemory(8, n_locations=20, radius=8, clip=100, counter_dtype=torch.int8)
    sdm.store(x.expand(127, 8)).store(x)
    assert torch.equal(sdm.counters, (100 * x).to(torch.int8).expand(20, 8))
    sdm.store(-x.expand(5, 8))
    assert torch.equal(sdm.counters, (95 * x).to(torch.int8).expand(20, 8))


def test_radius_from_activation_probability() -> None:
    def cdf(n: int, r: int) -> float:
        return sum(math.comb(n, k) for k in range(r + 1)) / 2**n

    for n, p in [(100, 0.01), (256, 0.05), (1000, 0.001), (7, 0.5)]:
        r = radius_for_probability(n, p)
        assert cdf(n, r) >= p > (cdf(n, r - 1) if r > 0 else 0.0)
    sdm = SparseDistributedMemory(256, n_locations=4000, activation_probability=0.05)
    assert sdm.radius == radius_for_probability(256, 0.05) == 115
    frac = sdm.activations(pm1(200, 256, seed=69)).float().mean().item()
    assert abs(frac - sdm.activation_probability) < 0.01, (frac, sdm.activation_probability)


def test_ties_read_as_plus_one() -> None:
    sdm = SparseDistributedMemory(64, n_locations=100, radius=0).store(pm1(3, 64, seed=70))
    out, info = sdm.read(pm1(5, 64, seed=71), return_info=True)  # nothing within radius 0
    assert int(info["n_active"].sum()) == 0
    assert bool((out == 1).all())


def test_state_round_trip() -> None:
    sdm = SparseDistributedMemory(32, n_locations=200, activation_probability=0.1, clip=50)
    x = pm1(2, 10, 32, seed=72, dtype=torch.float64)
    sdm.store(x)
    back = SparseDistributedMemory.from_state(sdm.state_config(), sdm.state_tensors())
    assert back.state_config() == sdm.state_config()
    assert torch.equal(back.counters, sdm.counters)
    out = back.read(x)
    assert out.dtype == torch.float64
    assert torch.equal(out, sdm.read(x))


# ------------------------------------------------------------------ bad input


def test_negative_radius_and_bad_probability() -> None:
    with pytest.raises(ValueError, match="radius: expected an integer >= 0, got -1"):
        SparseDistributedMemory(16, radius=-1)
    with pytest.raises(ValueError, match=r"activation_probability: expected a value in \(0, 1\]"):
        SparseDistributedMemory(16, activation_probability=0.0)
    with pytest.raises(ValueError, match="radius, activation_probability: expected at most one"):
        SparseDistributedMemory(16, radius=3, activation_probability=0.1)


def test_dimension_mismatch() -> None:
    sdm = SparseDistributedMemory(16, data_dim=4, n_locations=10)
    with pytest.raises(ValueError, match=r"addresses: expected address_dim N_a = 16.*\[3, 15\]"):
        sdm.write(pm1(3, 15), pm1(3, 4))
    with pytest.raises(ValueError, match=r"data: expected data_dim N_d = 4.*\[3, 5\]"):
        sdm.write(pm1(3, 16), pm1(3, 5))
    with pytest.raises(ValueError, match=r"data: expected shape \[3, 4\].*\[2, 4\]"):
        sdm.write(pm1(3, 16), pm1(2, 4))
    sdm.write(pm1(3, 16), pm1(3, 4))
    with pytest.raises(ValueError, match=r"addresses: expected address_dim N_a = 16.*\[1, 17\]"):
        sdm.read(pm1(1, 17))


def test_nan_empty_and_non_pm1() -> None:
    sdm = SparseDistributedMemory(8, n_locations=10)
    with pytest.raises(ValueError, match="memory is empty"):
        sdm.read(pm1(1, 8))
    bad = pm1(2, 8)
    bad[0, 3] = float("nan")
    with pytest.raises(ValueError, match="addresses: contains 1 NaN or Inf"):
        sdm.store(bad)
    with pytest.raises(ValueError, match=r"addresses: expected entries in \{-1, \+1\}"):
        sdm.store(np.zeros((2, 8)))
    sdm.store(pm1(2, 8))
    with pytest.raises(ValueError, match="cues: contains 1 NaN or Inf"):
        sdm.retrieve(bad)


def test_bad_counter_settings() -> None:
    with pytest.raises(ValueError, match="counter_dtype: expected one of int8"):
        SparseDistributedMemory(8, counter_dtype=torch.float32)
    with pytest.raises(ValueError, match=r"clip: expected an integer <= 127.*got 200"):
        SparseDistributedMemory(8, clip=200, counter_dtype=torch.int8)


def test_radius_for_large_address_dim_and_error_names() -> None:
    # 2**2000 does not fit a float: the quantile is computed with exact rationals.
    r = radius_for_probability(2000, 0.05)
    assert r == 963
    below = sum(math.comb(2000, k) for k in range(r)) / 2**2000
    upto = sum(math.comb(2000, k) for k in range(r + 1)) / 2**2000
    assert below < 0.05 <= upto
    with pytest.raises(ValueError, match=r"probability: expected a value in \(0, 1\], got 2"):
        radius_for_probability(10, 2)
    with pytest.raises(ValueError, match="activation_probability: expected a value"):
        SparseDistributedMemory(10, activation_probability=0.0)


def test_clear_forgets_output_dtype() -> None:
    mem = SparseDistributedMemory(16, n_locations=50, radius=6)
    x = torch.ones(2, 16, dtype=torch.float64)
    assert mem.write(x).read(x).dtype == torch.float64
    mem.clear()
    assert mem.write(x.float()).read(x).dtype == torch.float32
