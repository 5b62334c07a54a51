"""Parameter sweeps: many runs of one experiment, in parallel, resumable (``kvmem sweep``).

The cross product of grid values times seeds; each cell is one run of the experiment,
written to ``DIR/cells/<hash of its config>/result.json``; a tidy table of every metric
per cell and one figure per metric (mean and 95 % interval over seeds) summarise it.
Backends: a local process pool, or Ray (``pip install 'kvmem[ray]'``).

The names below are imported on first use, so ``kvmem.sweep.cli`` (loaded to build the
command line's parser) does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Cell",
    "config_hash",
    "is_sweep_dir",
    "make_cells",
    "parse_grid",
    "redraw_sweep",
    "run_sweep",
]

_HOME = {
    "Cell": "kvmem.sweep.grid",
    "config_hash": "kvmem.sweep.grid",
    "make_cells": "kvmem.sweep.grid",
    "parse_grid": "kvmem.sweep.grid",
    "is_sweep_dir": "kvmem.sweep.engine",
    "redraw_sweep": "kvmem.sweep.engine",
    "run_sweep": "kvmem.sweep.engine",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'kvmem.sweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
