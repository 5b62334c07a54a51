"""The cells of a sweep: the cross product of grid values times seeds, each with its hash.

A sweep of experiment ``NAME`` over ``--grid KEY=V1,V2,...`` (repeatable) and
``--seeds S`` has ``prod_k |V_k| * S`` cells. Cell ``c`` is one ``kvmem run NAME`` with
the Config built as defaults, then ``--quick``, then the ``--set`` overrides, then the
cell's grid values, then ``seed = seed0 + s`` (``s = 0 .. S-1``). Its identity is the
first 16 hex digits of ``sha256(NAME, Config as sorted JSON)``, so the same configuration
always lands in the same folder ``DIR/cells/<hash>/`` and a rerun can find it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kvmem.errors import ConfigError
from kvmem.experiments.base import parse_overrides
from kvmem.experiments.runner import make_config
from kvmem.results import to_jsonable

__all__ = ["Cell", "parse_grid", "make_cells", "config_hash"]


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its grid values, seed, typed overrides and config hash."""

    id: str
    grid: dict[str, Any]
    seed: int
    overrides: dict[str, Any]
    quick: bool

    def label(self) -> str:
        """``key=value, ..., seed=s`` for messages."""
        parts = [f"{k}={v}" for k, v in self.grid.items()] + [f"seed={self.seed}"]
        return ", ".join(parts)


def _split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` on commas outside brackets (so tuple values stay whole)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [v.strip() for v in out if v.strip() != ""]


def _unbracket(value: str) -> str:
    """``(1,2)`` or ``[1,2]`` -> ``1,2``: a tuple value written whole inside a grid."""
    if len(value) >= 2 and value[0] + value[-1] in ("()", "[]"):
        return value[1:-1]
    return value


def parse_grid(module: ModuleType, specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse ``["KEY=V1,V2,...", ...]`` into ``{field: [typed values]}`` (order kept).

    Values are separated by commas outside brackets, so a tuple-valued field takes
    ``KEY=(1,2),(3,4)``. Each value is parsed against the Config field's type as
    ``--set`` would; raises
    ``ConfigError`` (one line) for a malformed spec, unknown field, bad or repeated value.
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {spec!r}")
        key, text = spec.split("=", 1)
        key = key.strip().replace("-", "_")
        values = _split_values(text)
        if not values:
            raise ConfigError(f"--grid {key}: expected at least one value")
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice")
        if key == "seed":
            raise ConfigError("--grid seed: use --seeds N to sweep seeds")
        parsed = [parse_overrides(module.Config, [f"{key}={_unbracket(v)}"])[key] for v in values]
        if len({json.dumps(to_jsonable(v)) for v in parsed}) != len(parsed):
            raise ConfigError(f"--grid {key}: repeated value in {text!r}")
        grid[key] = parsed
    return grid


def config_hash(name: str, config: Any) -> str:
    """16 hex digits of sha256 over the experiment name and the Config as sorted JSON."""
    payload = json.dumps(
        {"experiment": name, "config": to_jsonable(dataclasses.asdict(config))},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def make_cells(
    name: str,
    module: ModuleType,
    grid: dict[str, list[Any]],
    *,
    seeds: int = 1,
    sets: Sequence[str] = (),
    quick: bool = False,
) -> list[Cell]:
    """Every cell of the sweep, grid-major then seed, each Config validated up front.

    Seeds are ``seed0 + s`` where ``seed0`` is the Config's seed after ``--set`` (so
    ``--set seed=100`` starts the seeds at 100).
    Raises ``ConfigError`` when any cell's Config is invalid (before anything runs).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds: expected an integer >= 1, got {seeds}")
    base = parse_overrides(module.Config, list(sets))
    for key in grid:
        if key in base:
            raise ConfigError(f"--set {key} and --grid {key}: give the field in one of them")
    seed0 = int(getattr(make_config(module, dict(base), quick=quick), "seed", 0))
    cells: list[Cell] = []
    seen: set[str] = set()
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        for s in range(seeds):
            overrides = {**base, **values}
            config = make_config(module, dict(overrides), seed=seed0 + s, quick=quick)
            cid = config_hash(name, config)
            if cid in seen:
                raise ConfigError(f"two cells have the same config ({', '.join(map(str, combo))})")
            seen.add(cid)
            cells.append(Cell(cid, values, seed0 + s, overrides, quick))
    return cells
