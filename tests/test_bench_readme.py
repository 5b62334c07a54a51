"""``python -m kvmem.bench --threads / --markdown / --readme`` (issue 15): per-thread passes,
the Markdown table and the README block between its markers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from kvmem import bench
from kvmem.bench_hopfield import HOPFIELD_ROW_NAMES
from kvmem.bench_ops import OP_ROW_NAMES
from kvmem.bench_readme import BENCH_END, BENCH_START, markdown_table, replace_between_markers

#: rows measured in every pass (the others fix their own thread counts: first pass only)
PASS_ROWS = tuple(n for n in bench.ROW_NAMES if n not in OP_ROW_NAMES + HOPFIELD_ROW_NAMES)


@pytest.fixture
def threads_3():
    """Torch on 3 threads during the test (a count no pass uses), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def test_quick_two_thread_passes(tmp_path, capsys, threads_3):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = ["--quick", "--threads", "1,2", "--json", str(out), "--markdown", str(md)]
    assert bench.main(argv) == 0
    assert torch.get_num_threads() == threads_3  # restored after both passes
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert all(isinstance(r["threads"], int) for r in rows)
    names = [r["name"] for r in rows]
    assert names == list(bench.ROW_NAMES) + list(PASS_ROWS)  # pass 1: all; pass 2: own rows
    for r in rows[: len(bench.ROW_NAMES)]:
        want = 2 if r["name"].endswith("_2t") else 1
        assert r["threads"] == want, r["name"]
    assert all(r["threads"] == 2 for r in rows[len(bench.ROW_NAMES) :])
    peaks = {r["threads"]: r["gflops"] for r in rows if r["name"] == "matmul_peak"}
    assert set(peaks) == {1, 2} and doc["peak_gflops_by_threads"] == {"1": peaks[1], "2": peaks[2]}
    assert doc["environment"]["thread_counts"] == [1, 2] and doc["environment"]["threads"] == 3
    # every pass's % peak is against its own peak (ops rows keep bench_ops' own peak)
    for r in rows:
        if r["name"] in PASS_ROWS and r["pct_peak"] is not None:
            want = 100.0 * r["gflops"] / peaks[r["threads"]]
            assert math.isclose(r["pct_peak"], want, rel_tol=1e-9), r["name"]

    text = md.read_text()
    header = text.splitlines()[0]
    assert header.startswith("| name | shape | threads | seconds | GFLOP/s | % peak |")
    assert "peer s / kvmem s" in header
    for name in bench.ROW_NAMES:
        assert f"| `{name}` |" in text, name
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table) == len(rows)
    assert [line.split(" | ")[2] for line in table] == [str(r["threads"]) for r in rows]
    assert "Re-measure: `python -m kvmem.bench --quick --threads 1,2 --json" in text
    assert f"torch {torch.__version__}" in text and "load average" in text
    printed = capsys.readouterr().out
    assert "threads" in printed.splitlines()[0] and "1/2 threads" in printed


def _fake_run(calls: list):
    """A stand-in for ``bench.run``: two rows per pass, recording how it was called."""

    def run(quick=False, progress=None, threads=None, peer_rows=True):
        calls.append((quick, threads, peer_rows))
        t = threads or torch.get_num_threads()
        peak = bench.Row("matmul_peak", "8x8 @ 8x8", 0.5, 10.0 * t, 100.0, threads=t)
        row = bench.Row("dual_read_vs_loop", "N=4 | Q=2", 0.25, 5.0, 50.0 / t, speedup=4.0)
        row.threads = t
        return [peak, row] if peer_rows else [peak]

    return run


def test_readme_replaces_only_between_markers(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(bench, "run", _fake_run(calls))
    before = "# Title\r\n\r\n## Speed\n\nProse é stays.\n" + BENCH_START + "\n"
    after = BENCH_END + "\n\n## Development\nmore\n"
    readme = tmp_path / "README.md"
    readme.write_bytes((before + "old table\nold line\n" + after).encode())
    assert bench.main(["--threads", "2,1", "--readme", str(readme)]) == 0
    assert calls == [(False, 2, True), (False, 1, False)]
    data = readme.read_bytes().decode()
    assert data.startswith(before) and data.endswith(after)
    middle = data[len(before) : len(data) - len(after)]
    assert "old table" not in middle and middle.startswith("\n| name |")
    assert middle.endswith(" --readme " + str(readme) + "`\n\n")
    assert "| `dual_read_vs_loop` | N=4 \\| Q=2 | 2 | 0.25 | 5.0 | 25.0 | 4.00x | - | - |" in middle
    assert "20.0 GFLOP/s at 2 thread(s), 10.0 GFLOP/s at 1 thread(s)" in middle
    # a second run replaces the first table instead of adding to it
    assert bench.main(["--threads", "1", "--readme", str(readme)]) == 0
    again = readme.read_bytes().decode()
    assert again.startswith(before) and again.endswith(after)
    assert again.count("| `matmul_peak` |") == 1 and again.count(BENCH_START) == 1


@pytest.mark.parametrize(
    "text",
    [
        "# no markers\n",
        f"{BENCH_END}\n{BENCH_START}\n",
        f"{BENCH_START}\n{BENCH_START}\n{BENCH_END}\n",
    ],
)
def test_readme_without_markers_exits_2_before_measuring(tmp_path, monkeypatch, capsys, text):
    def boom(*_a, **_k):
        raise AssertionError("measured although the README cannot take the table")

    monkeypatch.setattr(bench, "run", boom)
    readme = tmp_path / "README.md"
    readme.write_text(text)
    assert bench.main(["--quick", "--readme", str(readme)]) == 2
    assert readme.read_text() == text
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(readme) in err and BENCH_START in err and BENCH_END in err


def test_default_is_one_pass_at_torchs_thread_count(tmp_path, monkeypatch, threads_3):
    calls: list = []
    monkeypatch.setattr(bench, "run", _fake_run(calls))
    out = tmp_path / "b.json"
    assert bench.main(["--json", str(out)]) == 0
    assert calls == [(False, None, True)]
    assert [r["threads"] for r in json.loads(out.read_text())["rows"]] == [3, 3]


def test_run_sets_and_restores_threads(monkeypatch, threads_3):
    seen = []
    monkeypatch.setattr(bench, "_run", lambda *a: seen.append(torch.get_num_threads()) or [])
    bench.run(threads=1)
    bench.run()
    assert seen == [1, 3] and torch.get_num_threads() == 3
    monkeypatch.setattr(bench, "_run", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        bench.run(threads=2)
    assert torch.get_num_threads() == 3  # restored on error too


def test_row_records_the_thread_count_it_was_built_under(threads_3):
    assert bench.Row("a", "s", 1.0).threads == 3
    assert bench.Row("a", "s", 1.0, threads=1).threads == 1


@pytest.mark.parametrize("bad", ["0", "1,1", "a", "1,,2", ""])
def test_bad_thread_lists_are_usage_errors(bad):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--threads", bad])
    assert exc.value.code == 2


def test_markdown_table_cells_and_missing_values():
    rows = [
        bench.Row("matmul_peak", "4x4", 1e-3, 123.456, 100.0, threads=1),
        bench.Row("x", "s", 2.5e-5, target=">= 1.0x", status="MISS", threads=1),
    ]
    env = {"torch": "T", "python": "P", "machine": "M", "processor": "", "cpus": 2}
    env |= {"date": "D", "load_average_before": 0.1, "load_average_after": 0.2}
    text = markdown_table(rows, env, "python -m kvmem.bench")
    lines = text.splitlines()
    assert lines[2] == "| `matmul_peak` | 4x4 | 1 | 0.001 | 123.5 | 100.0 | - | - | - |"
    assert lines[3] == "| `x` | s | 1 | 2.5e-05 | - | - | - | >= 1.0x | MISS |"
    assert lines[-1] == (
        "Measured with torch T, Python P, M / unknown processor (2 logical CPUs), on D,"
        " load average 0.1 before / 0.2 after. Re-measure: `python -m kvmem.bench`"
    )


def test_markdown_environment_line_states_the_process_memory_settings():
    rows = [bench.Row("matmul_peak", "4x4", 1e-3, 1.0, 100.0, threads=1)]
    env = {"torch": "T", "python": "P", "machine": "M", "processor": "X", "cpus": 2}
    env |= {"date": "D", "load_average_before": 0.1, "load_average_after": 0.2}
    env["memory_settings"] = {"THP_MEM_ALLOC_ENABLE": "1", "MALLOC_TRIM_THRESHOLD_": "unset"}
    last = markdown_table(rows, env, "cmd").splitlines()[-1]
    assert last.endswith(
        " after. Process memory: `THP_MEM_ALLOC_ENABLE=1`, `MALLOC_TRIM_THRESHOLD_=unset`."
        " Re-measure: `cmd`"
    )


def test_replace_between_markers_when_end_marker_ends_the_file(tmp_path):
    path = tmp_path / "f.md"
    path.write_text(f"a\n{BENCH_START}\nold\n{BENCH_END}")
    replace_between_markers(path, "new\n")
    assert path.read_text() == f"a\n{BENCH_START}\nnew\n{BENCH_END}"
