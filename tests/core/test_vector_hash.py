"""Vector-HaSH: grid-module scaffold, fixed random hippocampal layer, learned maps."""

from __future__ import annotations

import pytest
import torch

from kvmem.core import persistence
from kvmem.core.vector_hash import VectorHaSH, grid_states
from support.patterns import flip_bits, pm1


def _error(out: torch.Tensor, x: torch.Tensor) -> float:
    return float(((out != x).double() - 0.5 * (out == 0).double()).mean())


@pytest.fixture(scope="module")
def vh_400() -> tuple[VectorHaSH, torch.Tensor]:
    """The issue's sizes (periods 3, 4, 5 in 2-D; 400 hippocampal cells), 400 stored."""
    mem = VectorHaSH()
    x = pm1(1, 500, 400, seed=0)
    mem.write(x[:, :400])
    return mem, x


def test_grid_states_are_3600_distinct_module_codes() -> None:
    g = grid_states((3, 4, 5), 2)
    assert g.shape == (3600, 50)
    assert g.unique(dim=0).shape[0] == 3600
    for lo, hi in ((0, 9), (9, 25), (25, 50)):  # one active cell per module
        assert torch.equal(g[:, lo:hi].sum(-1), torch.ones(3600, dtype=torch.float64))
    # position (x, y) = (1, 2): module 3 has phase (1, 2), cell 1 * 3 + 2
    assert g[1 * 60 + 2, :9].argmax() == 5
    assert grid_states((3, 4, 5), 1).shape == (60, 12)


def test_every_grid_state_is_a_fixed_point_of_the_scaffold(vh_400) -> None:
    mem, _ = vh_400
    h = mem.hidden_of_states(mem.scaffold_states)  # [1, 3600, 400]
    assert bool((h >= 0).all()) and 0.2 < float((h > 0).double().mean()) < 0.6
    back = mem._cleanup(h @ mem.cleanup_weights)
    assert torch.equal(back, mem.scaffold_states.expand_as(back))


def test_perfect_up_to_hippocampal_size_then_gradual(vh_400) -> None:
    mem, x = vh_400
    assert torch.equal(mem.read(x[:, :400]), x[:, :400])  # exact at K = N_h = 400
    copy = VectorHaSH.from_state(mem.state_config(), mem.state_tensors())
    copy.write(x[:, 400:])
    err = _error(copy.read(x), x)
    assert 0 < err < 0.06  # past N_h: a graceful loss, not a cliff


def test_noisy_cues_snap_to_the_grid() -> None:
    mem = VectorHaSH(rule="online", seed=1)
    x = pm1(2, 100, 400, seed=1)
    mem.write(x)
    assert torch.equal(mem.read(flip_bits(x, 40)), x)


def test_one_dimensional_modules() -> None:
    mem = VectorHaSH(periods=(5, 7), dims=1, n_hidden=60)  # 35 positions
    x = pm1(1, 35, 64, seed=2)
    mem.write(x)
    assert mem.n_states == 35 and mem.n_grid == 12
    assert torch.equal(mem.read(x), x)


def test_state_round_trip(tmp_path, monkeypatch) -> None:
    mem = VectorHaSH(periods=(3, 4), n_hidden=80, rule="online", seed=4)
    x = pm1(2, 40, 60, seed=3)
    mem.write(x)
    cues = flip_bits(x, 6)
    monkeypatch.setitem(persistence.MEMORY_CLASSES, "VectorHaSH", "kvmem.core.vector_hash")
    persistence.save(mem, tmp_path / "vh.safetensors")
    loaded = persistence.load(tmp_path / "vh.safetensors")
    assert loaded.periods == (3, 4)
    assert torch.equal(loaded.read(cues), mem.read(cues))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="co-prime"):
        VectorHaSH(periods=(2, 4))
    with pytest.raises(ValueError, match="dims"):
        VectorHaSH(dims=3)
    with pytest.raises(ValueError, match="theta"):
        VectorHaSH(theta=float("nan"))
