"""Run a sweep: cells in parallel, resumable, recorded in ``DIR/sweep.json``.

Layout of a sweep folder::

    DIR/sweep.json                  the grid, seeds, overrides and every cell's status
    DIR/cells/<hash>/result.json    a finished cell (written atomically by the cell)
    DIR/cells/<hash>/error.json     a failed cell: its one-line error and traceback
    DIR/metrics.csv (.parquet)      the tidy table, one row per (cell, metric)
    DIR/figures/<metric>.png        each metric against the first grid key

A cell whose ``result.json`` loads is finished and is never run again; failed cells and
cells that never finished (a killed sweep) are run on the next invocation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kvmem import experiments
from kvmem._version import __version__
from kvmem.errors import ConfigError, ResultFileError
from kvmem.experiments.runner import prepare_out_dir
from kvmem.results import Result, atomic_write_text, now, to_jsonable
from kvmem.sweep.backends import BACKENDS
from kvmem.sweep.figures import write_figures
from kvmem.sweep.grid import Cell, make_cells, parse_grid
from kvmem.sweep.table import collect_rows, read_table, write_table

__all__ = ["run_sweep", "redraw_sweep", "is_sweep_dir"]


def _finished(cell_dir: Path) -> bool:
    try:
        Result.load(cell_dir / "result.json")
    except ResultFileError:
        return False
    return True


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(out / "sweep.json", json.dumps(to_jsonable(manifest), indent=2) + "\n")


def is_sweep_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a ``sweep.json``."""
    return (Path(path) / "sweep.json").is_file()


def _finish(out: Path, manifest: dict[str, Any], src: Path | None = None) -> list[Path]:
    """Write the table and the figures of ``manifest`` into ``out`` (cells read from ``src``)."""
    keys = list(manifest["grid"])
    rows = collect_rows(manifest["cells"], (src or out) / "cells", keys)
    paths = write_table(rows, out, keys)
    table = read_table(out / "metrics.csv")
    paths += write_figures(table, out, keys, manifest["experiment"])
    return paths


def _counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = {"done": 0, "failed": 0, "pending": 0}
    for r in records:
        counts[r["status"] if r["status"] in counts else "pending"] += 1
    return counts


def run_sweep(
    name: str,
    grid_specs: Sequence[str],
    out_dir: str | Path,
    *,
    seeds: int = 1,
    sets: Sequence[str] = (),
    quick: bool = False,
    backend: str = "local",
    address: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the sweep and write its manifest, table and figures.

    Returns the manifest (the content of ``sweep.json``). Raises ``ConfigError`` (one
    line) for a bad grid, override, backend or output folder, before anything runs.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"--workers: expected an integer >= 1, got {workers}")
    module = experiments.get(name)
    grid = parse_grid(module, grid_specs)
    if not grid:
        raise ConfigError("kvmem sweep needs at least one --grid KEY=V1,V2,...")
    cells = make_cells(name, module, grid, seeds=seeds, sets=sets, quick=quick)
    out = prepare_out_dir(out_dir)
    cells_dir = out / "cells"
    records: dict[str, dict[str, Any]] = {
        c.id: {"id": c.id, "grid": c.grid, "seed": c.seed, "status": "pending", "error": None}
        for c in cells
    }
    todo: list[Cell] = []
    for c in cells:
        if _finished(cells_dir / c.id):
            records[c.id]["status"] = "done"
        else:
            todo.append(c)
    manifest: dict[str, Any] = {
        "experiment": name,
        "kvmem": __version__,
        "grid": grid,
        "seeds": seeds,
        "set": list(sets),
        "quick": quick,
        "backend": backend,
        "started": now().isoformat(),
        "cells": list(records.values()),
    }
    skipped = len(cells) - len(todo)
    manifest["skipped"] = skipped
    _write_manifest(out, manifest)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), initial=skipped, desc=f"sweep {name}", unit="cell")
    running: set[str] = set()
    counts = {"done": skipped, "failed": 0}

    def show() -> None:
        if bar is not None:
            bar.set_postfix(done=counts["done"], running=len(running), failed=counts["failed"])

    def started(cid: str) -> None:
        running.add(cid)
        records[cid]["status"] = "running"
        show()

    t0 = time.perf_counter()
    try:
        runner = BACKENDS[backend]
        for cid, outcome in runner(
            name, todo, cells_dir, workers=workers, address=address, on_start=started
        ):
            running.discard(cid)
            rec = records[cid]
            rec.update(
                status=outcome["status"],
                error=outcome["error"],
                duration_s=round(outcome["duration_s"], 4),
            )
            counts[outcome["status"]] += 1
            _write_manifest(out, manifest)
            if bar is not None:
                bar.update(1)
            show()
    finally:
        for cid in running:
            records[cid]["status"] = "pending"
        manifest["duration_s"] = round(time.perf_counter() - t0, 3)
        manifest["counts"] = _counts(manifest["cells"])
        _write_manifest(out, manifest)
        if bar is not None:
            bar.close()
    _finish(out, manifest)
    return manifest


def redraw_sweep(sweep_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Rebuild the table and figures of a sweep folder from its cells (``kvmem plot DIR``)."""
    src = Path(sweep_dir)
    try:
        manifest = json.loads((src / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ResultFileError(f"{src}/sweep.json: cannot be read ({err})") from None
    if not isinstance(manifest, dict) or not {"experiment", "grid", "cells"} <= set(manifest):
        raise ResultFileError(f"{src}/sweep.json: not a kvmem sweep manifest")
    out = prepare_out_dir(out_dir) if out_dir is not None else src
    return _finish(out, manifest, src)
