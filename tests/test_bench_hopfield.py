"""``kvmem.bench_hopfield``: the ClassicalHopfield rows of the bench (issue 15).

Structure and numerical agreement only; speed is reported, never asserted (docs/architecture.md).
"""

from __future__ import annotations

import torch

from kvmem import bench
from kvmem.bench_hopfield import HOPFIELD_ROW_NAMES, hopfield_rows, numpy_asynchronous
from kvmem.core.hopfield import ClassicalHopfield
from support.patterns import flip_bits, pm1


def test_rows_have_the_bench_format_and_agree_exactly() -> None:
    rows = hopfield_rows(quick=True)
    assert tuple(r.name for r in rows) == HOPFIELD_ROW_NAMES
    for row in rows:
        assert isinstance(row, bench.Row)
        assert row.seconds > 0 and row.speedup is not None and row.speedup > 0, row
        assert row.max_error == 0.0, row  # same unit orders: identical final states
        assert "NumPy" in row.note and "kvmem / NumPy" in row.note
    table = bench.format_table(rows)
    assert all(name in table for name in HOPFIELD_ROW_NAMES)


def test_numpy_reference_equals_classical_hopfield() -> None:
    # Several networks and cues, cues with unknown (0) entries: the reference draws the
    # same unit orders and must land on the same states, row by row.
    n = 30
    x = pm1(3, 4, n, seed=5)
    cues = flip_bits(x, 8, seed=6)
    cues[..., :5] = 0
    mem = ClassicalHopfield(dynamics="asynchronous").store(x)
    c = (mem.weights.double() * n).round().numpy()
    ref = numpy_asynchronous(c, cues.numpy(), seed=11)
    out = mem.retrieve(cues, generator=11)
    assert torch.equal(out.double(), torch.from_numpy(ref))
    assert not torch.equal(out, torch.sign(cues))  # the dynamics did move the cues
    assert set(torch.from_numpy(ref).unique().tolist()) <= {-1.0, 1.0}
