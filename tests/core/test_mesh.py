"""MESH: k-hot label scaffold, fixed random hidden layer, learned heteroassociation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem.core import persistence
from kvmem.core.mesh import MESH, _rls_update, label_states
from support.patterns import flip_bits, pm1


def _error(out: torch.Tensor, x: torch.Tensor) -> float:
    return float(((out != x).double() - 0.5 * (out == 0).double()).mean())


def test_label_states_are_all_k_hot_codes() -> None:
    s = label_states(18, 3)
    assert s.shape == (math.comb(18, 3), 18) == (816, 18)
    assert torch.equal(s.sum(-1), torch.full((816,), 3.0, dtype=torch.float64))
    assert s.unique(dim=0).shape[0] == 816


def test_every_label_state_is_a_fixed_point_of_the_scaffold() -> None:
    mem = MESH()  # 18 label units 3-hot, 300 hidden
    mem.write(pm1(2, 1, 16, seed=0))  # builds two networks
    states = mem.scaffold_states
    h = mem.hidden_of_states(states)  # [2, 816, 300]
    assert set(h.unique().tolist()) == {-1.0, 1.0}
    back = mem._cleanup(h @ mem.cleanup_weights)
    assert torch.equal(back, states.expand_as(back))


def test_one_pattern_per_label_state_recalls_perfectly() -> None:
    # 10 label units 3-hot = 120 states, each given one pattern; 200 hidden units >= 120
    mem = MESH(n_label=10, k=3, n_hidden=200)
    x = pm1(2, 120, 128, seed=1)
    mem.write(x)
    assert mem.n_memories == mem.n_states == 120
    assert sorted(mem.slots[0].tolist()) == list(range(120))  # every state used once
    assert torch.equal(mem.read(x), x)
    assert torch.equal(mem.read_state(mem.scaffold_states[mem.slots]), x)


def test_perfect_up_to_hidden_size_then_gradual() -> None:
    mem = MESH()  # N_H = 300, 400 features
    x = pm1(2, 450, 400, seed=2)
    mem.write(x[:, :300])
    assert torch.equal(mem.read(x[:, :300]), x[:, :300])
    mem.write(x[:, 300:350])
    e350 = _error(mem.read(x[:, :350]), x[:, :350])
    mem.write(x[:, 350:])
    e450 = _error(mem.read(x), x)
    assert 0 < e350 < 0.03 and e350 < e450 < 0.15  # published: graceful, no cliff


def test_noisy_cues_snap_to_the_scaffold() -> None:
    mem = MESH()
    x = pm1(2, 100, 400, seed=3)
    mem.write(x)
    assert torch.equal(mem.read(flip_bits(x, 40)), x)  # 10 % of the cue bits flipped


def test_heteroassociation_key_to_value() -> None:
    mem = MESH()
    keys, values = pm1(1, 40, 50, seed=4), pm1(1, 40, 20, seed=5)
    mem.write(keys, values)
    out, info = mem.read(keys, return_info=True)
    assert torch.equal(out, values)
    assert torch.equal(info["scaffold"], mem.scaffold_states[mem.slots].expand_as(info["scaffold"]))


def test_online_rule_matches_pseudo_inverse() -> None:
    x = pm1(2, 250, 400, seed=6)
    exact, online = MESH(), MESH(rule="online")
    exact.write(x)
    for start in range(0, 250, 100):  # the online rule learns block by block
        online.write(x[:, start : start + 100])
    for w_exact, w_online in zip(exact.weights, online.weights, strict=True):
        torch.testing.assert_close(w_online, w_exact, atol=1e-5, rtol=0)  # ridge 1e-6
    assert torch.equal(online.read(x), exact.read(x))


@settings(max_examples=20, deadline=None)
@given(
    p=st.integers(1, 9),
    n=st.integers(1, 6),
    m=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_block_rls_equals_one_row_at_a_time(p: int, n: int, m: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(2, p, n, generator=g, dtype=torch.float64)
    b = torch.randn(2, p, m, generator=g, dtype=torch.float64)
    w0 = torch.zeros(2, n, m, dtype=torch.float64)
    t0 = torch.eye(n, dtype=torch.float64).expand(2, n, n) * 10.0
    w_block, t_block = _rls_update(w0, t0, a, b)
    w, t = w0, t0
    for i in range(p):  # the sequential reference
        w, t = _rls_update(w, t, a[:, i : i + 1], b[:, i : i + 1])
    torch.testing.assert_close(w_block, w, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(t_block, t, atol=1e-9, rtol=1e-7)
    # and it is ridge regression: (A^T A + I / 10)^-1 A^T B
    ridge = a.mT @ a + torch.eye(n, dtype=torch.float64) / 10.0
    torch.testing.assert_close(w_block, torch.linalg.solve(ridge, a.mT @ b), atol=1e-9, rtol=1e-7)


def test_memories_past_the_label_states_reuse_them() -> None:
    mem = MESH(n_label=6, k=2, n_hidden=40)  # 15 states
    mem.write(pm1(1, 20, 32, seed=7))
    slots = mem.slots[0]
    assert torch.equal(slots[15:], slots[:5])


def test_seed_fixes_the_networks() -> None:
    x = pm1(1, 350, 400, seed=8)
    a, b, c = MESH(seed=1), MESH(seed=1), MESH(seed=2)
    for mem in (a, b, c):
        mem.write(x)
    assert torch.equal(a.read(x), b.read(x))
    assert not torch.equal(a.read(x), c.read(x))


@pytest.mark.parametrize("rule", ["pinv", "online"])
def test_state_round_trip(rule: str, tmp_path, monkeypatch) -> None:
    mem = MESH(n_label=8, k=2, n_hidden=60, rule=rule, seed=3)
    x = pm1(2, 30, 48, seed=9)
    mem.write(x)
    cues = flip_bits(x, 5)
    copy = MESH.from_state(mem.state_config(), mem.state_tensors())
    assert torch.equal(copy.read(cues), mem.read(cues))
    monkeypatch.setitem(persistence.MEMORY_CLASSES, "MESH", "kvmem.core.mesh")
    persistence.save(mem, tmp_path / "mesh.safetensors")
    loaded = persistence.load(tmp_path / "mesh.safetensors")
    assert torch.equal(loaded.read(cues), mem.read(cues))
    loaded.write(x[:, :3])  # and it keeps learning
    assert loaded.n_memories == 33


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="rule"):
        MESH(rule="hebb")
    with pytest.raises(ValueError, match="k"):
        MESH(n_label=5, k=5)
    mem = MESH()
    with pytest.raises(ValueError, match="memory is empty"):
        mem.read(torch.ones(1, 4))
    with pytest.raises(ValueError, match="values"):
        mem.write(torch.ones(3, 4), torch.ones(2, 4))
    mem.write(pm1(2, 3, 8, seed=0))
    with pytest.raises(ValueError, match="batch shape"):
        mem.write(pm1(3, 8, seed=0))
    with pytest.raises(ValueError, match="d_k"):
        mem.write(pm1(2, 3, 9, seed=0))
    with pytest.raises(ValueError, match="queries"):
        mem.read(torch.ones(2, 1, 9))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_matches_cpu() -> None:
    x = pm1(2, 320, 400, seed=10)
    cpu, gpu = MESH(rule="online"), MESH(rule="online")
    cpu.write(x)
    gpu.write(x.cuda())
    assert (cpu.read(x) != gpu.read(x.cuda()).cpu()).double().mean() < 1e-3
