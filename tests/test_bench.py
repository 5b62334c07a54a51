"""``python -m kvmem.bench --quick``: a smoke run (tiny shapes) that writes valid JSON."""

from __future__ import annotations

import json

import torch

from kvmem import bench
from kvmem.nn import fast_weight_reference

#: Rows of the ``kvmem.nn`` layers (issue 11): ratios against peers measured in the same run.
LAYER_SPEEDUP_ROWS = (
    "fast_weight_delta_vs_reference",
    "fast_weight_delta_vs_paper_chunked",
    "fast_weight_delta_vs_paper_chunked_long",
    "kv_attention_vs_sdpa",
)


def test_quick_bench_writes_json_with_every_row(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    names = [r["name"] for r in doc["rows"]]
    assert names == list(bench.ROW_NAMES)
    assert doc["quick"] is True and doc["peak_gflops"] > 0
    from kvmem.bench_hopfield import HOPFIELD_ROW_NAMES
    from kvmem.bench_ops import OP_ROW_NAMES  # checked in test_bench_ops.py

    doc["rows"] = [r for r in doc["rows"] if r["name"] not in OP_ROW_NAMES]
    for row in doc["rows"]:
        assert row["seconds"] > 0, row
        if row["max_error"] is not None:  # every agreement check holds, even on tiny shapes
            assert row["max_error"] < 1e-4, row
    speedups = {r["name"]: r["speedup"] for r in doc["rows"] if r["speedup"] is not None}
    assert set(speedups) == {
        "delta_chunked_vs_sequential",
        "hebbian_write_vs_loop",
        "dual_read_vs_loop",
        *LAYER_SPEEDUP_ROWS,
        *HOPFIELD_ROW_NAMES,
    }
    targets = [r["name"] for r in doc["rows"] if r["target"]]
    assert targets == [
        "hebbian_write",
        "dual_read_identity",
        "dual_read_softmax",
        "fast_weight_delta_vs_paper_chunked",
        "fast_weight_delta_vs_paper_chunked_long",
    ]
    table = capsys.readouterr().out
    assert "hebbian_write" in table and "% peak" in table


def test_layer_rows_report_ratios_flops_and_agreement():
    rows = {r.name: r for r in bench._layer_rows(True, 1, 1, 10.0, lambda _m: None)}
    assert tuple(rows) == LAYER_SPEEDUP_ROWS
    for row in rows.values():
        assert row.speedup is not None and row.speedup > 0, row
        assert row.gflops is not None and row.gflops > 0, row
        assert row.max_error is not None and row.max_error < 1e-4, row
    for name in ("fast_weight_delta_vs_paper_chunked", "fast_weight_delta_vs_paper_chunked_long"):
        assert rows[name].status in ("ok", "MISS")


def test_deltanet_paper_chunked_peer_is_the_delta_rule():
    """The benchmark's peer computes the same recurrence (else its ratio means nothing)."""
    q, k, v, beta = (x.detach().double() for x in bench._delta_inputs(1, 2, 24, 5, 0))
    ref = fast_weight_reference(q, k, v, beta, rule="delta")
    assert torch.allclose(bench.deltanet_paper_chunked(q, k, v, beta, chunk_size=8), ref)
