"""One figure per metric against the first grid key: mean and 95 % interval over seeds.

For metric ``m`` and each value ``x`` of the first grid key (and each combination of the
other grid keys, one line each) the points are the mean over the S seeds,
``m_bar(x) = (1/S) sum_s m_s(x)``, with the Student-t interval
``m_bar +- t_{0.975, S-1} sd / sqrt(S)`` from :func:`kvmem.metrics.mean_ci`, drawn as a
band (S = 1 draws the line alone). Numeric grid values are placed on a numeric axis
(logarithmic when they span more than two decades); others are categories in grid order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from kvmem.metrics import mean_ci

__all__ = ["metric_figure", "write_figures"]


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def metric_figure(
    rows: Sequence[dict[str, Any]], metric: str, grid_keys: Sequence[str], title: str = ""
) -> Figure:
    """The figure of ``metric`` (rows as read from ``metrics.csv``, all values text)."""
    x_key, others = grid_keys[0], list(grid_keys[1:])
    mine = [r for r in rows if r["metric"] == metric]
    x_values = list(dict.fromkeys(str(r[x_key]) for r in mine))
    numeric = [_as_number(x) for x in x_values]
    is_numeric = all(v is not None for v in numeric)
    positions = numeric if is_numeric else list(range(len(x_values)))
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(tuple(str(r[k]) for k in others) for r in mine))
    for group in groups:
        xs, means, lows, highs = [], [], [], []
        for x, pos in zip(x_values, positions, strict=True):
            vals = [
                float(r["value"])
                for r in mine
                if str(r[x_key]) == x and tuple(str(r[k]) for k in others) == group
            ]
            if not vals:
                continue
            m, ci = mean_ci(vals)
            xs.append(pos)
            means.append(m)
            lows.append(ci[0])
            highs.append(ci[1])
        label = ", ".join(f"{k}={v}" for k, v in zip(others, group, strict=True)) or None
        (line,) = ax.plot(xs, means, marker="o", label=label)
        if len(xs) and any(h > lo for lo, h in zip(lows, highs, strict=True)):
            ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.25, lw=0)
    if is_numeric:
        pos_vals = [v for v in numeric if v is not None and v > 0]
        if len(pos_vals) == len(numeric) and max(pos_vals) / min(pos_vals) > 100:
            ax.set_xscale("log")
    else:
        ax.set_xticks(positions, x_values, rotation=30 if len(x_values) > 4 else 0)
    n_seeds = len({r["seed"] for r in mine})
    ax.set_xlabel(x_key.replace("_", " "))
    ax.set_ylabel(metric.replace("_", " "))
    band = "mean, 95 % interval over" if n_seeds > 1 else "one run,"
    ax.set_title(f"{title}: {band} {n_seeds} seed{'s' * (n_seeds > 1)}", fontsize=9)
    if len(groups) > 1:
        ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_figures(
    rows: Sequence[dict[str, Any]], out_dir: Path, grid_keys: Sequence[str], title: str
) -> list[Path]:
    """Write ``out_dir/figures/<metric>.png`` for every metric; returns the paths."""
    from kvmem.experiments.runner import save_figure

    if not grid_keys:
        return []
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in dict.fromkeys(r["metric"] for r in rows):
        path = folder / f"{_safe(metric)}.png"
        save_figure(metric_figure(rows, metric, grid_keys, title), path)
        paths.append(path)
    return paths


def load_grid_keys(sweep_json: Path) -> list[str]:
    """The grid keys recorded in ``sweep.json``, in order."""
    return list(json.loads(sweep_json.read_text(encoding="utf-8"))["grid"])
