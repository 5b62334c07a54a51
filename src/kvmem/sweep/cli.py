"""The ``kvmem sweep`` subcommand, and ``kvmem plot DIR`` on a sweep folder.

    kvmem sweep NAME --grid KEY=V1,V2,... [--grid ...] [--seeds N] [--set KEY=VALUE ...]
                [--quick] [--backend local|ray] [--address ADDR] [--workers N] [--out DIR]

``kvmem.cli`` adds the subcommand with :func:`add_parser` and hands a sweep folder given to
``kvmem plot`` to :func:`plot_sweep`; the logic lives here so the main command line stays
small. Exit codes: 0 when every cell finished, 1 when some cells failed (each failure is
listed on stderr, one line per cell), 2 for bad input (one line, nothing run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_sweep", "plot_sweep", "default_out"]


def default_out(name: str) -> Path:
    """The default folder of a sweep of experiment ``name``: ``results/sweeps/NAME``."""
    return Path("results") / "sweeps" / name


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run ``kvmem sweep`` from parsed arguments; returns the exit code."""
    from kvmem.experiments.base import progress_wanted
    from kvmem.sweep.engine import run_sweep

    # a string, not a Path: prepare_out_dir refuses '' (Path('') would silently be '.')
    out = args.out if args.out is not None else str(default_out(args.name))
    manifest = run_sweep(
        args.name,
        args.grid or [],
        out,
        seeds=args.seeds,
        sets=args.set or [],
        quick=args.quick,
        backend=args.backend,
        address=args.address,
        workers=args.workers,
        progress=progress_wanted(),
    )
    counts: dict[str, Any] = manifest["counts"]
    print(
        f"sweep {args.name}: {len(manifest['cells'])} cells, {counts['done']} done "
        f"({manifest['skipped']} already done), {counts['failed']} failed, "
        f"{manifest['duration_s']:.1f} s -> {out}/sweep.json, {out}/metrics.csv"
    )
    failed = [c for c in manifest["cells"] if c["status"] == "failed"]
    for c in failed:
        where = ", ".join(f"{k}={v}" for k, v in c["grid"].items())
        print(
            f"kvmem: cell {c['id']} ({where}, seed={c['seed']}) failed: {c['error']}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def plot_sweep(path: str, out: str | None) -> int | None:
    """Redraw the sweep folder ``path`` (``kvmem plot DIR``); ``None`` if it is no sweep."""
    from kvmem.sweep.engine import is_sweep_dir, redraw_sweep

    if not is_sweep_dir(path):
        return None
    paths = redraw_sweep(path, out)
    target = Path(out) if out is not None else Path(path)
    print(f"sweep table and {len(paths) - 1} figure(s) written to {target}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to the subparsers ``sub`` of ``kvmem``."""
    s = sub.add_parser(
        "sweep",
        help="run an experiment over a grid of Config values and seeds, in parallel",
        description=(
            "Run the cross product of --grid values times --seeds, each cell one "
            "`kvmem run`, in parallel; resumable (finished cells are never rerun)."
        ),
    )
    s.add_argument("name", help="experiment name (see `kvmem list`)")
    s.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2,...",
        help="a Config field and its values (repeatable: the cross product is swept)",
    )
    s.add_argument(
        "--seeds",
        type=_positive_int,
        default=1,
        metavar="N",
        help="seeds per grid point (default 1)",
    )
    s.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="fix a Config field (repeatable)"
    )
    s.add_argument("--quick", action="store_true", help="shrunken cells for smoke tests")
    s.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool here (default); ray: Ray tasks",
    )
    s.add_argument(
        "--address", metavar="ADDR", help="Ray cluster to join (--backend ray; default: start one)"
    )
    s.add_argument(
        "--workers", type=_positive_int, metavar="N", help="parallel cells (default: the CPU count)"
    )
    s.add_argument("--out", metavar="DIR", help="output folder (default results/sweeps/NAME)")
    s.set_defaults(func=cmd_sweep)
    return s
