"""``kvmem reproduce``: run the paper's simulations (and the experiments beyond it) and write
``report.html`` with every figure and a table of measured against published numbers.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmem import experiments
from kvmem.experiments.base import check_claims, tqdm_progress
from kvmem.experiments.runner import make_config, run_experiment
from kvmem.results import Result, atomic_write_text, format_number

__all__ = [
    "Job",
    "PAPER_JOBS",
    "BEYOND_JOBS",
    "BEYOND_SECTIONS",
    "reproduce",
    "render_report",
    "agreement",
]


@dataclass(frozen=True)
class Job:
    """One run of ``kvmem reproduce``: an experiment, its overrides and its output folder."""

    folder: str
    experiment: str
    title: str
    overrides: dict[str, Any] = field(default_factory=dict)


PAPER_JOBS: tuple[Job, ...] = (
    Job(
        "fig2a",
        "kv-optimization",
        "Figure 2A: keys and values optimised (2 classes)",
        {"classes": 2},
    ),
    Job(
        "fig2b",
        "kv-optimization",
        "Figure 2B: keys and values optimised (3 classes)",
        {"classes": 3},
    ),
    Job(
        "fig3", "forgetting", "Figure 3: forgetting as retrieval failure, recovery by reactivation"
    ),
)

#: Titles of the experiments beyond the paper (one job each, folder = experiment name).
_TITLES: dict[str, str] = {
    "capacity": "Capacity and the memory cliff",
    "scaffold-capacity": "Fixed key scaffolds: the memory continuum without a cliff",
    "robustness": "Separability versus robustness",
    "generalization": "Generalisation by blending",
    "keys-vs-values": "Keys versus values on MNIST images",
    "ab-ac": "Retroactive interference: A-B then A-C (Barnes & Underwood 1959)",
    "cued-recall": "Availability versus accessibility: cued recall (Tulving & Pearlstone 1966)",
    "metamemory": "Feeling of knowing without recall",
    "accessibility-precision": "Accessibility falls, precision stays (Berens et al. 2020)",
    "engram-reactivation": "Engram reactivation after amnesia (Ryan et al. 2015)",
    "consolidation": "Systems consolidation and the Ribot gradient (Kim & Fanselow 1992)",
    "repulsion": "Repulsion of similar keys and its reversal (Chanales et al. 2017)",
    "free-recall": "Free recall with a drifting context as the key (Murdock 1962)",
    "value-cleanup": "Attractor clean-up inside value space",
    "episode-vs-gist": "Targeted lookup versus a generative model's reconstruction",
    "mqar": "Multi-query associative recall in trained memory layers",
}

#: The sections beyond the paper: (heading, jobs), in report order.
BEYOND_SECTIONS: tuple[tuple[str, tuple[Job, ...]], ...] = (
    (
        "Beyond the paper: gradient descent as a key-value memory",
        (
            Job(
                "fig3-dual",
                "forgetting",
                "Figure 3 read from the recorded SGD memories: which pairs to reactivate",
                {"mode": "dual"},
            ),
        ),
    ),
    *(
        (
            f"Beyond the paper: {heading[0].lower()}{heading[1:]}",
            tuple(Job(name, name, _TITLES[name]) for name in members),
        )
        for heading, members in experiments.GROUPS[1:]
    ),
)

BEYOND_JOBS: tuple[Job, ...] = tuple(job for _, jobs in BEYOND_SECTIONS for job in jobs)


def _decimals(x: float) -> int:
    text = repr(float(x))
    return len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0


def agreement(measured: float, published: float, tolerance: float | None = None) -> bool:
    """True when ``measured`` equals ``published`` to the printed digit, or within ``tolerance``.

    Without a tolerance the published value's own number of decimals sets it (half a unit
    in its last printed place), so 98.53 agrees with a printed "98.5" and 98.56 does not.
    Approximate published values ("~0.14 N") give an explicit tolerance.
    """
    if measured is None or not math.isfinite(float(measured)):
        return False
    tol = 0.5 * 10.0 ** (-_decimals(published)) if tolerance is None else float(tolerance)
    return abs(float(measured) - float(published)) <= tol + 1e-9


def _fmt(v: Any) -> str:
    return html.escape(format_number(v))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child,td.src,th.src{text-align:left}
.ok{color:#107010;font-weight:600}.bad{color:#b00020;font-weight:600}
img{max-width:100%;border:1px solid #eee}.meta{color:#666;font-size:.9em}
.err{background:#fff0f0;border:1px solid #f3c0c0;padding:.6em}
"""


def _job_section(job: Job, result: Result | None, error: str | None) -> str:
    parts = [f'<section id="{html.escape(job.folder)}"><h3>{html.escape(job.title)}</h3>']
    if error is not None:
        parts.append(f'<p class="err">This run failed: {html.escape(error)}</p></section>')
        return "".join(parts)
    assert result is not None
    module = experiments.get(job.experiment)
    # metric -> (value, source) or (value, source, tolerance)
    published: dict[str, tuple[Any, ...]] = getattr(module, "PUBLISHED", {})
    img = f"{job.folder}/{job.experiment}.png"
    parts.append(
        f'<p><a href="{job.folder}/{job.experiment}.svg"><img src="{img}" '
        f'alt="{html.escape(job.title)}"></a></p>'
    )
    parts.append(
        "<table><tr><th>metric</th><th>measured</th><th>published</th>"
        "<th class='src'>source</th><th>agrees</th></tr>"
    )
    for name, value in result.metrics.items():
        pub = published.get(name)
        if pub is None:
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td>{_fmt(value)}</td>"
                "<td></td><td></td><td></td></tr>"
            )
            continue
        ok = agreement(value, pub[0], pub[2] if len(pub) > 2 else None)
        mark = '<span class="ok">yes</span>' if ok else '<span class="bad">no</span>'
        parts.append(
            f"<tr><td>{html.escape(name)}</td><td>{_fmt(value)}</td><td>{_fmt(pub[0])}</td>"
            f"<td class='src'>{html.escape(pub[1])}</td><td>{mark}</td></tr>"
        )
    parts.append("</table>")
    claims = check_claims(module, result)
    if claims:
        parts.append("<p><b>Claims checked on this run</b></p><ul class='claims'>")
        for text, held in claims:
            mark = {
                True: '<span class="ok">holds</span>',
                False: '<span class="bad">fails</span>',
                None: '<span class="meta">not applicable</span>',
            }[held]
            parts.append(f"<li>{mark}: {html.escape(text)}</li>")
        parts.append("</ul>")
    prov = result.provenance
    cfg = ", ".join(f"{k}={v}" for k, v in result.config.items() if not isinstance(v, list))
    parts.append(
        f'<p class="meta">{_fmt(prov.get("duration_s", float("nan")))} s; '
        f'<a href="{job.folder}/result.json">result.json</a>; config: {html.escape(cfg)}</p>'
    )
    parts.append("</section>")
    return "".join(parts)


def render_report(
    sections: Sequence[tuple[str, Sequence[tuple[Job, Result | None, str | None]]]],
    *,
    quick: bool,
    total_s: float,
) -> str:
    """The HTML of ``report.html`` for already-run jobs (``sections``: heading, runs)."""
    from kvmem._version import __version__

    body = []
    for heading, runs in sections:
        if not runs:
            continue
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body.extend(_job_section(job, res, err) for job, res, err in runs)
    note = (
        '<p class="err">Quick mode: shrunken runs for a smoke test; numbers are not the '
        "paper's.</p>"
        if quick
        else ""
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>kvmem: reproduction report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Key-value memory in the brain: reproduction report</h1>"
        "<p>Gershman, Fiete &amp; Irie, <i>Key-value memory in the brain</i>, Neuron 2025 "
        "(arXiv 2501.02950). Every figure below was computed by this run of "
        f"<code>kvmem reproduce</code> (kvmem {__version__}, {total_s:.1f} s in all). "
        "“Agrees” means equal to the published value to its printed digit (or, for "
        "approximate published values, within the stated tolerance).</p>"
        f"{note}{''.join(body)}</body></html>\n"
    )


def reproduce(
    out: Path,
    *,
    quick: bool = False,
    include_beyond: bool = True,
    progress_enabled: bool = False,
    echo: Callable[[str], Any] = lambda s: None,
) -> Path:
    """Run every paper job (and the beyond-the-paper jobs) into ``out`` and write the report.

    A failing job is reported in the page and does not stop the others; if any failed,
    ``RuntimeError`` is raised after the report is written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    groups: list[tuple[str, Sequence[Job]]] = [("The paper's simulations", PAPER_JOBS)]
    if include_beyond:
        groups.extend(BEYOND_SECTIONS)
    sections = []
    failures = []
    progress = tqdm_progress(progress_enabled)
    for heading, jobs in groups:
        runs: list[tuple[Job, Result | None, str | None]] = []
        for job in jobs:
            module = experiments.get(job.experiment)
            config = make_config(module, dict(job.overrides), quick=quick)
            try:
                res = run_experiment(
                    job.experiment, config, out_dir=out / job.folder, progress=progress
                )
            except Exception as err:  # noqa: BLE001 - the report shows it, the rest go on
                failures.append(job.folder)
                runs.append((job, None, f"{type(err).__name__}: {err}"))
                echo(f"{job.folder:<16} FAILED: {type(err).__name__}: {err}")
                continue
            runs.append((job, res, None))
            echo(f"{job.folder:<16} {res.provenance.get('duration_s', 0):6.2f} s")
        sections.append((heading, runs))
    path = out / "report.html"
    atomic_write_text(path, render_report(sections, quick=quick, total_s=time.perf_counter() - t0))
    if failures:
        raise RuntimeError(f"{len(failures)} run(s) failed: {', '.join(failures)}; see {path}")
    return path
