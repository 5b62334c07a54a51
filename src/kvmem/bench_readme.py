"""Markdown output of ``python -m kvmem.bench`` (``--markdown FILE``, ``--readme README.md``).

``markdown_table`` renders the rows of ``kvmem.bench.run`` as one Markdown table with the
thread count of every row, followed by the machine, the date and the exact command that
re-measures it (issue 15: every number in the README's speed section can be re-measured).
``replace_between_markers`` swaps the text between ``BENCH_START`` and ``BENCH_END`` in a
file and leaves every byte outside them as it was.

Columns: ``GFLOP/s`` = counted flops / median seconds; ``% peak`` = 100 GFLOP/s / P(t),
where P(t) is the ``matmul_peak`` row of the same thread count t (best float32 square
matmul, 2 n^3 flops); ``speed-up`` = peer seconds / kvmem seconds (``Row.speedup``: above
1 kvmem is faster, the inverse of the ``kvmem/peer`` ratios the targets are written in).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - import for annotations only (bench imports us)
    from kvmem.bench import Row

__all__ = [
    "BENCH_START",
    "BENCH_END",
    "MarkersMissing",
    "markdown_table",
    "readme_block",
    "replace_between_markers",
    "check_markers",
]

BENCH_START = "<!-- bench:start -->"
BENCH_END = "<!-- bench:end -->"


class MarkersMissing(ValueError):
    """The file lacks exactly one ``BENCH_START`` line followed by one ``BENCH_END`` line."""


def _cell(text: str) -> str:
    """A Markdown table cell: pipes escaped so a shape cannot split the row."""
    return text.replace("|", "\\|")


def measured_cells(r: Row) -> tuple[str, str, str]:
    """A row's seconds, GFLOP/s and % peak as both tables print them (``-``: not measured)."""
    return (
        f"{r.seconds:.3g}",
        "-" if r.gflops is None else f"{r.gflops:.1f}",
        "-" if r.pct_peak is None else f"{r.pct_peak:.1f}",
    )


def markdown_table(rows: Sequence[Row], environment: Mapping[str, Any], command: str) -> str:
    """The rows as a Markdown table, then one line of environment and the re-measure command.

    ``environment`` holds ``torch``, ``python``, ``machine``, ``processor``, ``cpus``, ``date``,
    ``load_average_before``, ``load_average_after`` and optionally ``memory_settings`` (as
    ``kvmem.bench.main`` writes them into ``--json``); ``command`` is the command line that
    produced the rows.
    """
    head = (
        "name",
        "shape",
        "threads",
        "seconds",
        "GFLOP/s",
        "% peak",
        "speed-up (peer s / kvmem s)",
        "target",
        "status",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = (
            f"`{r.name}`",
            _cell(r.shape),
            str(r.threads),
            *measured_cells(r),
            "-" if r.speedup is None else f"{r.speedup:.2f}x",
            _cell(r.target) or "-",
            r.status or "-",
        )
        lines.append("| " + " | ".join(cells) + " |")
    peaks = [r for r in rows if r.name == "matmul_peak"]
    peak_text = ", ".join(f"{r.gflops:.1f} GFLOP/s at {r.threads} thread(s)" for r in peaks)
    lines += [
        "",
        f"Machine peak (`matmul_peak`, best float32 square matmul): {peak_text or 'not measured'}."
        " `% peak` is against the peak of the row's own thread count (the `kvmem.bench_ops` rows"
        " against that module's own single-thread peak, times 2 for `_2t` rows). `speed-up` is"
        " peer seconds / kvmem seconds: above 1x kvmem is faster than its peer (a plain loop,"
        " the step-by-step or paper reference, SDPA or plain torch; see each row's note in"
        " `python -m kvmem.bench`).",
    ]
    unreliable = [f"{r.threads} thread(s)" for r in peaks if "unreliable" in r.note]
    if unreliable:
        lines.append(
            f"Warning: the machine's load changed during the {', '.join(unreliable)} pass;"
            " its % peak is unreliable."
        )
    env = environment
    lines += [
        "",
        f"Measured with torch {env.get('torch')}, Python {env.get('python')},"
        f" {env.get('machine')} / {env.get('processor') or 'unknown processor'}"
        f" ({env.get('cpus')} logical CPUs),"
        f" on {env.get('date')}, load average {env.get('load_average_before')} before /"
        f" {env.get('load_average_after')} after.{_memory_text(env)} Re-measure: `{command}`",
    ]
    return "\n".join(lines) + "\n"


def _memory_text(env: Mapping[str, Any]) -> str:
    """`` Process memory: K=V, ...`` (the ``kvmem.process_memory`` settings), or ``""``."""
    settings = env.get("memory_settings")
    if not settings:
        return ""
    return " Process memory: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()) + "."


def _marker_span(text: str, path: str | os.PathLike[str]) -> tuple[int, int]:
    """Offsets ``(a, b)``: ``text[a:b]`` is what lies between the marker lines."""
    n_start, n_end = text.count(BENCH_START), text.count(BENCH_END)
    start, end = text.find(BENCH_START), text.find(BENCH_END)
    if n_start != 1 or n_end != 1 or end < start:
        raise MarkersMissing(
            f"{os.fspath(path)}: needs one line {BENCH_START} followed by one line {BENCH_END}"
        )
    a = text.find("\n", start)
    a = len(text) if a < 0 else a + 1  # just after the start marker's line
    b = text.rfind("\n", 0, end) + 1  # the start of the end marker's line
    if b < a:  # both markers on one line: nothing can be placed between them
        raise MarkersMissing(f"{os.fspath(path)}: {BENCH_START} and {BENCH_END} share a line")
    return a, b


def check_markers(path: str | os.PathLike[str]) -> None:
    """Raise ``MarkersMissing`` (or ``OSError``) unless ``path`` can take a bench block."""
    with open(path, encoding="utf-8", newline="") as f:
        _marker_span(f.read(), path)


def readme_block(markdown: str) -> str:
    """The text placed between the markers: the table, fenced by blank lines."""
    return "\n" + markdown.rstrip("\n") + "\n\n"


def replace_between_markers(path: str | os.PathLike[str], block: str) -> None:
    """Replace the lines between the marker lines of ``path`` with ``block`` (atomically).

    Everything up to and including the start marker's line, and from the end marker's
    line on, is kept byte for byte (``newline=""``: line endings are not translated).
    """
    from kvmem.results import atomic_write_text

    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    a, b = _marker_span(text, path)
    atomic_write_text(path, text[:a] + block + text[b:])
