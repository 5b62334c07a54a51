"""``kvmem.bench_ops``: the operation rows run, are well formed, and each pair agrees."""

from __future__ import annotations

import math
import time

import pytest

from kvmem.bench import Row
from kvmem.bench_ops import OP_ROW_NAMES, interleaved, op_rows


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return op_rows(quick=True)


def test_rows_are_well_formed(rows: list[Row]) -> None:
    assert tuple(r.name for r in rows) == OP_ROW_NAMES  # fixed names, quick or not
    for r in rows:
        assert isinstance(r, Row) and r.shape and r.note
        if r.note.startswith("faiss not installed"):
            assert r.speedup is None and r.status == ""
            continue
        assert r.status in ("ok", "MISS") and r.target
        if r.name != "softmax_read_memory":
            assert r.seconds > 0 and r.speedup is not None and r.speedup > 0
            assert "kvmem/peer = " in r.note
            ratio = float(r.note.split("kvmem/peer = ")[1].split()[0])
            assert math.isclose(ratio, 1 / r.speedup, rel_tol=0.02, abs_tol=0.006)  # 2 decimals


def test_peers_agree(rows: list[Row]) -> None:
    for r in rows:
        if r.note.startswith("faiss not installed"):
            continue
        assert r.max_error is not None, r.name
        # SDPA's blocked softmax agrees to rounding; every other pair is the same arithmetic
        tol = 1e-4 if r.name.startswith("softmax_read") else 1e-5
        assert r.max_error <= tol, (r.name, r.max_error)


def test_interleaved_times_every_function() -> None:
    calls: list[str] = []
    t, out = interleaved({"a": lambda: calls.append("a") or 1, "b": lambda: 2}, repeats=5, inner=2)
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    assert out == {"a": 1, "b": 2} and calls.count("a") == 1 + 5 * 2


def test_interleaved_picks_one_block_size_for_all_from_the_fastest_call() -> None:
    calls = {"fast": 0, "slow": 0}

    def fast() -> int:
        calls["fast"] += 1
        time.sleep(5e-5)
        return 1

    def slow() -> int:
        calls["slow"] += 1
        time.sleep(2e-3)
        return 2

    t, out = interleaved({"fast": fast, "slow": slow}, repeats=3, inner=None, min_block=2e-3)
    assert out == {"fast": 1, "slow": 2}
    # warm-up + timed probe, then the same number of calls per repeat for both
    assert calls["fast"] == calls["slow"] and (calls["slow"] - 2) % 3 == 0
    inner = (calls["slow"] - 2) // 3
    # the fast call (well under 2 ms) sets a block of several calls
    assert 1 < inner <= 1000
    assert t["slow"] >= 2e-3 and t["slow"] > t["fast"]


def test_interleaved_raises_the_repeats_of_short_calls_to_min_total() -> None:
    calls = {"a": 0}

    def a() -> None:
        calls["a"] += 1
        time.sleep(1e-3)

    # blocks of one or two 1 ms calls: min_total 1 s asks for hundreds of blocks, capped at
    # 3 x 4 = 12 repeats
    interleaved({"a": a}, repeats=4, inner=None, min_block=2e-3, min_total=1.0)
    inner_and_repeats = calls["a"] - 2
    assert inner_and_repeats % 12 == 0 and inner_and_repeats // 12 <= 2
    # without min_total: the given repeats
    calls["a"] = 0
    interleaved({"a": a}, repeats=4, inner=None, min_block=2e-3)
    assert (calls["a"] - 2) % 4 == 0 and (calls["a"] - 2) // 4 <= 2
