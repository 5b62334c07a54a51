"""Pseudo-inverse rule and projection-rule Hopfield network (kvmem.core.pinv_hopfield)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core import persistence
from kvmem.core.pinv_hopfield import PseudoInverseHopfield, pinv_solve
from support.patterns import flip_bits, pm1


def _error(out: torch.Tensor, x: torch.Tensor) -> float:
    """Bit error, undetermined (0) outputs counted as half."""
    return float(((out != x).double() - 0.5 * (out == 0).double()).mean())


@pytest.mark.parametrize("p", [1, 20, 59])
def test_exact_recall_up_to_n_minus_1(p: int) -> None:
    x = pm1(3, p, 60, seed=p)
    mem = PseudoInverseHopfield().store(x)
    assert torch.equal(mem.retrieve(x), x)  # every stored pattern is a fixed point
    assert mem.rank.tolist() == [p] * 3


@pytest.mark.parametrize("p", [60, 61, 90])
def test_total_failure_from_n_on(p: int) -> None:
    x = pm1(2, p, 60, seed=p)
    mem = PseudoInverseHopfield().store(x)
    out = mem.retrieve(x)
    assert mem.rank.tolist() == [60, 60]
    assert torch.count_nonzero(mem.weights) == 0  # the projector is I: no coupling left
    assert torch.count_nonzero(out) == 0  # every unit undetermined
    assert _error(out, x) == 0.5


def test_cliff_at_n_708_is_one_pattern_wide() -> None:
    # the default size of the scaffold-capacity experiment, grown in blocks
    x = pm1(1, 708, 708, seed=3)
    mem = PseudoInverseHopfield()
    mem.store(x[:, :500])
    mem.store(x[:, 500:707])
    cues = x[:, torch.randperm(707, generator=torch.Generator().manual_seed(0))[:60]]
    assert torch.equal(mem.retrieve(cues), cues)
    mem.store(x[:, 707:])
    assert _error(mem.retrieve(cues), cues) == 0.5


def test_corrects_noisy_cues_at_low_load() -> None:
    x = pm1(3, 5, 100, seed=1)
    mem = PseudoInverseHopfield().store(x)
    assert torch.equal(mem.retrieve(flip_bits(x, 10)), x)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    n=st.integers(2, 24),
    blocks=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
)
def test_incremental_projector_equals_pinv(
    batch: int, n: int, blocks: list[int], seed: int
) -> None:
    x = pm1(batch, sum(blocks), n, seed=seed).double()
    mem = PseudoInverseHopfield(zero_diagonal=False)
    start = 0
    for b in blocks:
        mem.store(x[:, start : start + b])
        start += b
    ref = torch.linalg.pinv(x) @ x
    torch.testing.assert_close(mem.weights, ref, atol=1e-9, rtol=0)


def test_mask_and_duplicates_do_not_add_directions() -> None:
    x = pm1(2, 10, 30, seed=4)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    mem = PseudoInverseHopfield().store(x, mask)
    assert mem.rank.tolist() == [10, 6]
    assert mem.n_patterns.tolist() == [10, 6]
    mem.store(x, mask)  # the same patterns again: the span does not grow
    assert mem.rank.tolist() == [10, 6]
    ref = PseudoInverseHopfield().store(x[1:, :6])
    torch.testing.assert_close(mem.weights[1], ref.weights[0], atol=1e-12, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    k=st.integers(1, 20),
    n=st.integers(1, 20),
    m=st.integers(1, 5),
    rank_deficient=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_pinv_solve_equals_svd_pseudo_inverse(
    k: int, n: int, m: int, rank_deficient: bool, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(2, k, n, generator=g, dtype=torch.float64)
    if rank_deficient and k > 1:
        a[:, -1] = a[:, 0]  # a repeated input row
    b = torch.randn(2, k, m, generator=g, dtype=torch.float64)
    torch.testing.assert_close(pinv_solve(a, b), torch.linalg.pinv(a) @ b, atol=1e-8, rtol=1e-6)


def test_pinv_solve_fits_exactly_below_input_size() -> None:
    a = pm1(4, 30, 50, seed=2)
    b = pm1(4, 30, 7, seed=3)
    torch.testing.assert_close(a.double() @ pinv_solve(a, b), b.double(), atol=1e-10, rtol=0)


def test_bad_input() -> None:
    mem = PseudoInverseHopfield()
    with pytest.raises(ValueError, match="memory is empty"):
        mem.retrieve(torch.ones(1, 4))
    with pytest.raises(ValueError, match="patterns"):
        mem.store(torch.full((2, 4), 0.5))
    mem.store(pm1(3, 8, seed=0))
    with pytest.raises(ValueError, match="pattern size N"):
        mem.store(pm1(3, 9, seed=0))
    with pytest.raises(ValueError, match="cues"):
        mem.retrieve(torch.ones(1, 9))
    with pytest.raises(ValueError, match="inputs, targets"):
        pinv_solve(torch.ones(3, 2), torch.ones(4, 2))


def test_state_round_trip(tmp_path, monkeypatch) -> None:
    x = pm1(2, 12, 40, seed=5)
    mem = PseudoInverseHopfield(max_steps=7).store(x)
    cues = flip_bits(x, 6)
    copy = PseudoInverseHopfield.from_state(mem.state_config(), mem.state_tensors())
    assert torch.equal(copy.retrieve(cues), mem.retrieve(cues))
    # through safetensors, once the class is registered for kvmem.save / kvmem.load
    monkeypatch.setitem(persistence.MEMORY_CLASSES, "PseudoInverseHopfield", mem.__module__)
    persistence.save(mem, tmp_path / "pinv.safetensors")
    loaded = persistence.load(tmp_path / "pinv.safetensors")
    assert torch.equal(loaded.retrieve(cues), mem.retrieve(cues))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda() -> None:
    x = pm1(2, 30, 64, seed=6)
    mem = PseudoInverseHopfield().store(x.cuda())
    assert torch.equal(mem.retrieve(x.cuda()).cpu(), x)
