"""Running sweeps: the table, resuming, failing cells, a killed sweep, ``kvmem plot DIR``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kvmem.cli import main
from kvmem.results import Result
from kvmem.sweep import is_sweep_dir, redraw_sweep, run_sweep


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("cells/*/result.json")}


def test_sweep_writes_manifest_table_and_figures(fake, tmp_path):
    out = tmp_path / "sw"
    manifest = run_sweep(fake.name, ["x=1,2,3"], out, seeds=2, sets=["sizes=2,3"], workers=2)
    assert manifest["counts"] == {"done": 6, "failed": 0, "pending": 0}
    assert sorted(fake.runs()) == [(x, s) for x in (1.0, 2.0, 3.0) for s in (0, 1)]

    on_disk = json.loads((out / "sweep.json").read_text())
    assert on_disk["experiment"] == fake.name
    assert on_disk["grid"] == {"x": [1.0, 2.0, 3.0]}
    assert on_disk["seeds"] == 2 and on_disk["set"] == ["sizes=2,3"]
    assert [c["status"] for c in on_disk["cells"]] == ["done"] * 6

    rows = _rows(out / "metrics.csv")
    assert list(rows[0]) == ["cell", "x", "seed", "metric", "value"]
    # every metric of every cell, in sweep order, with the values the runs computed
    assert [(r["x"], r["seed"], r["metric"]) for r in rows] == [
        (str(x), str(s), m) for x in (1.0, 2.0, 3.0) for s in (0, 1) for m in ("y", "z")
    ]
    for r in rows:
        x, s = float(r["x"]), int(r["seed"])
        expected = x**2 + s / 100 if r["metric"] == "y" else x * 5
        assert float(r["value"]) == pytest.approx(expected, rel=1e-12)
        result = Result.load(out / "cells" / r["cell"] / "result.json")
        assert result.config["x"] == x and result.config["seed"] == s
        assert result.config["sizes"] == [2, 3]
    for metric in ("y", "z"):
        png = out / "figures" / f"{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_rerun_recomputes_nothing_finished(fake, tmp_path):
    out = tmp_path / "sw"
    run_sweep(fake.name, ["x=1,2"], out, seeds=2, workers=1)
    assert len(fake.runs()) == 4
    before = _mtimes(out)
    table = (out / "metrics.csv").read_bytes()

    manifest = run_sweep(fake.name, ["x=1,2"], out, seeds=2, workers=1)
    assert len(fake.runs()) == 4  # nothing ran again
    assert manifest["skipped"] == 4 and manifest["counts"]["done"] == 4
    assert _mtimes(out) == before
    assert (out / "metrics.csv").read_bytes() == table

    # widening the grid runs only the new cells
    run_sweep(fake.name, ["x=1,2,3"], out, seeds=2, workers=1)
    assert sorted(fake.runs()[4:]) == [(3.0, 0), (3.0, 1)]
    assert {k: v for k, v in _mtimes(out).items() if k in before} == before


def test_a_failing_cell_is_recorded_and_the_others_finish(fake, tmp_path, capsys):
    out = tmp_path / "sw"
    code = main(
        ["sweep", fake.name, "--grid", "x=1,2", "--grid", "mode=ok,fail", "--workers", "1"]
        + ["--out", str(out)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("failed: RuntimeError: boom at x=") == 2 and "Traceback" not in err

    cells = json.loads((out / "sweep.json").read_text())["cells"]
    assert [(c["grid"]["mode"], c["status"]) for c in cells] == [
        ("ok", "done"),
        ("fail", "failed"),
        ("ok", "done"),
        ("fail", "failed"),
    ]
    for c in cells:
        folder = out / "cells" / c["id"]
        if c["status"] == "failed":
            record = json.loads((folder / "error.json").read_text())
            assert record["error"] == f"RuntimeError: boom at x={c['grid']['x']}"
            assert c["error"] == record["error"]
            assert "Traceback" in record["traceback"]
            assert not (folder / "result.json").exists()
        else:
            assert (folder / "result.json").is_file() and not (folder / "error.json").exists()
    assert {r["mode"] for r in _rows(out / "metrics.csv")} == {"ok"}

    # a rerun retries the failed cells only
    assert (
        main(
            ["sweep", fake.name, "--grid", "x=1,2", "--grid", "mode=ok,fail"]
            + ["--workers", "1", "--out", str(out)]
        )
        == 1
    )
    assert sorted(fake.runs()[4:]) == [(1.0, 0), (2.0, 0)]


def test_a_killed_sweep_loses_only_the_cells_in_flight(fake, tmp_path):
    out = tmp_path / "sw"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(fake.folder)!r})
        from kvmem import experiments
        experiments.REGISTRY[{fake.name!r}] = {fake.module!r}
        from kvmem.sweep import run_sweep
        run_sweep({fake.name!r}, ["x=1,2,3,4,5,6,7,8"], {str(out)!r}, workers=1,
                  sets=["delay=0.4"])
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, env={**os.environ}
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("cells/*/result.json"))) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no cell finished in 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker, mid-sweep
        proc.wait(timeout=60)
    finished = {p.parent.name for p in out.glob("cells/*/result.json")}
    ran_before = len(fake.runs())
    assert 2 <= len(finished) < 8
    json.loads((out / "sweep.json").read_text())  # written atomically: still readable

    manifest = run_sweep(fake.name, ["x=1,2,3,4,5,6,7,8"], out, workers=1, sets=["delay=0.4"])
    assert manifest["skipped"] == len(finished)
    assert manifest["counts"] == {"done": 8, "failed": 0, "pending": 0}
    rerun = fake.runs()[ran_before:]
    ids = {c["grid"]["x"]: c["id"] for c in manifest["cells"]}
    # exactly the cells that had not finished ran again
    assert sorted(x for x, _ in rerun) == sorted(x for x, cid in ids.items() if cid not in finished)


def test_plot_dir_redraws_the_table_and_figures(fake, tmp_path, capsys):
    out = tmp_path / "sw"
    run_sweep(fake.name, ["x=1,2,3", "sizes=(1,2),(4,)"], out, seeds=3, workers=1)
    table = (out / "metrics.csv").read_bytes()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["y.png", "z.png"]
    assert is_sweep_dir(out) and not is_sweep_dir(tmp_path)

    (out / "metrics.csv").unlink()
    for p in (out / "figures").iterdir():
        p.unlink()
    n_runs = len(fake.runs())
    assert main(["plot", str(out)]) == 0
    assert "2 figure(s)" in capsys.readouterr().out
    assert (out / "metrics.csv").read_bytes() == table
    assert sorted(p.name for p in (out / "figures").iterdir()) == figures
    assert len(fake.runs()) == n_runs  # redrawing runs nothing

    elsewhere = tmp_path / "redrawn"
    paths = redraw_sweep(out, elsewhere)
    assert (elsewhere / "metrics.csv").read_bytes() == table
    assert {p.name for p in paths} >= {"metrics.csv", "y.png", "z.png"}


def test_plot_dir_with_a_broken_manifest_is_exit_2(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text("{not json")
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "sweep.json" in err and len(err.strip().splitlines()) == 1
