"""Every memory class round-trips through safetensors exactly, outputs included."""

from pathlib import Path

import pytest
import torch

import kvmem

g = torch.Generator().manual_seed(0)
PATTERNS = torch.randint(0, 2, (2, 6, 32), generator=g).float() * 2 - 1
CUES = PATTERNS[:, :3].clone()
CUES[..., :8] = 0


def _hopfield():
    m = kvmem.ClassicalHopfield()
    m.store(PATTERNS)
    return m, lambda mem: mem.retrieve(CUES)


def _dense():
    m = kvmem.DenseAssociativeMemory(interaction="exponential", beta=0.5)
    m.store(PATTERNS, mask=torch.tensor([[True] * 6, [True] * 4 + [False] * 2]))
    return m, lambda mem: mem.retrieve(CUES)


def _modern():
    m = kvmem.ModernHopfield(beta=2.0, max_steps=3)
    m.store(PATTERNS)
    return m, lambda mem: mem.retrieve(CUES)


def _sdm():
    m = kvmem.SparseDistributedMemory(32, n_locations=200, activation_probability=0.1, seed=3)
    m.store(PATTERNS[0])
    return m, lambda mem: mem.read(CUES[0])


def _matrix():
    m = kvmem.MatrixMemory(32, 5, rule="delta", lr=0.05)
    m.write(PATTERNS, torch.randn(2, 6, 5, generator=g))
    return m, lambda mem: mem.read(CUES)


def _slot():
    m = kvmem.SlotMemory(similarity="cosine", separation="top_k", k=2, beta=3.0)
    m.write(PATTERNS, torch.randn(2, 6, 5, generator=g))
    return m, lambda mem: mem.read(CUES)


def _pinv():
    m = kvmem.PseudoInverseHopfield()
    m.store(PATTERNS)
    return m, lambda mem: mem.retrieve(CUES)


def _mesh():
    m = kvmem.MESH(n_label=8, k=2, n_hidden=40, seed=1)
    m.write(PATTERNS[0, :5], torch.randn(5, 7, generator=g))
    return m, lambda mem: mem.read(CUES[0])


def _vector_hash():
    m = kvmem.VectorHaSH(seed=2)
    m.write(PATTERNS[0, :5], torch.randn(5, 7, generator=g))
    return m, lambda mem: mem.read(CUES[0])


@pytest.mark.parametrize(
    "build", [_hopfield, _dense, _modern, _sdm, _matrix, _slot, _pinv, _mesh, _vector_hash]
)
def test_round_trip(build, tmp_path: Path) -> None:
    mem, read = build()
    path = tmp_path / "m.safetensors"
    kvmem.save(mem, path)
    back = kvmem.load(path)
    assert type(back) is type(mem)
    for name, t in mem.state_tensors().items():
        assert torch.equal(back.state_tensors()[name], t), name
    assert torch.equal(read(back), read(mem))
