"""The tidy table of a sweep: one row per (cell, metric), read from the cells' results.

Columns: ``cell`` (config hash), one column per grid key, ``seed``, ``metric``, ``value``.
Rows follow the cell order of the sweep (grid-major, then seed) and, within a cell, the
experiment's metric order, so the same sweep gives the same file whatever ran it.
Written as ``metrics.csv`` and, when pyarrow is importable, ``metrics.parquet``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kvmem.errors import ResultFileError
from kvmem.results import Result, atomic_write_bytes, atomic_write_text, to_jsonable

__all__ = ["collect_rows", "write_table", "read_table"]


def _cell_value(v: Any) -> Any:
    """A grid value as a table cell: numbers and strings as they are, tuples as JSON."""
    if isinstance(v, bool) or isinstance(v, int | float | str):
        return v
    return json.dumps(to_jsonable(v))


def collect_rows(
    cells: Sequence[dict[str, Any]], cells_dir: Path, grid_keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows for every finished cell (``cells``: the ``sweep.json`` cell records)."""
    rows: list[dict[str, Any]] = []
    for c in cells:
        if c.get("status") != "done":
            continue
        try:
            result = Result.load(cells_dir / c["id"] / "result.json")
        except ResultFileError:
            continue
        for metric, value in result.metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            row = {"cell": c["id"]}
            row.update({k: _cell_value(c["grid"][k]) for k in grid_keys})
            row.update({"seed": c["seed"], "metric": metric, "value": float(value)})
            rows.append(row)
    return rows


def write_table(rows: list[dict[str, Any]], out_dir: Path, grid_keys: Sequence[str]) -> list[Path]:
    """Write ``metrics.csv`` (and ``metrics.parquet`` with pyarrow) atomically."""
    columns = ["cell", *grid_keys, "seed", "metric", "value"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    paths = [out_dir / "metrics.csv"]
    atomic_write_text(paths[0], buf.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return paths
    table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    paths.append(out_dir / "metrics.parquet")
    atomic_write_bytes(paths[1], sink.getvalue().to_pybytes())
    return paths


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of ``metrics.csv`` as strings (``value`` and ``seed`` still text)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
