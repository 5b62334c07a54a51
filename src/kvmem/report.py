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
from kvmem.experiments.runner import make_config, prepare_out_dir, run_experiment
from kvmem.results import Result, atomic_write_text, format_number

__all__ = [
    "Job",
    "metric_label",
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
    "metamemory": "Feeling of knowing and tip of the tongue without recall",
    "accessibility-precision": (
        "What fades is access, not content: retrieval falls, precision stays "
        "(Berens, Richards & Horner 2020)"
    ),
    "engram-reactivation": (
        "Amnesia with the engram intact: natural cues fail, direct reactivation restores "
        "recall (Ryan et al. 2015; Roy et al. 2017)"
    ),
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


#: Words of metric keys spelled out for readers (the raw key stays in a tooltip).
_WORDS: dict[str, str] = {
    "acc": "accuracy (%)",
    "kv": "key-value",
    "sgd": "SGD",
    "rmse": "RMSE",
    "auc": "AUC",
    "fok": "feeling-of-knowing",
    "ci": "95% interval",
    "mse": "MSE",
    "mnist": "MNIST",
    "n": "N",
    "pct": "(%)",
    "s": "(s)",
    "hopfield": "Hopfield",
    "mhn": "modern Hopfield",
    "spc": "serial position curve",
    "crp": "lag-CRP",
}


def metric_label(name: str, module: Any = None) -> str:
    """A readable label for metric ``name``: the module's ``LABELS[name]`` when it gives one,
    else the key with underscores as spaces and abbreviations spelled out."""
    labels: dict[str, str] = getattr(module, "LABELS", {}) if module is not None else {}
    if name in labels:
        return labels[name]
    words = [_WORDS.get(w, w) for w in name.split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child,td.src,th.src{text-align:left}
.ok{color:#107010;font-weight:600}.bad{color:#b00020;font-weight:600}
img{max-width:100%;border:1px solid #eee}.meta{color:#666;font-size:.9em}
.err{background:#fff0f0;border:1px solid #f3c0c0;padding:.6em}
code.key{color:#888;font-size:.8em}table.prov th{text-align:left}
"""


def _job_section(
    job: Job, result: Result | None, error: str | None, claims: list[tuple[str, bool | None]]
) -> str:
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
        label = (
            f"<td title='{html.escape(name, quote=True)}'>"
            f"{html.escape(metric_label(name, module))}<br><code class='key'>"
            f"{html.escape(name)}</code></td>"
        )
        pub = published.get(name)
        if pub is None:
            parts.append(f"<tr>{label}<td>{_fmt(value)}</td><td></td><td></td><td></td></tr>")
            continue
        ok = agreement(value, pub[0], pub[2] if len(pub) > 2 else None)
        mark = '<span class="ok">yes</span>' if ok else '<span class="bad">no</span>'
        parts.append(
            f"<tr>{label}<td>{_fmt(value)}</td><td>{_fmt(pub[0])}</td>"
            f"<td class='src'>{html.escape(pub[1])}</td><td>{mark}</td></tr>"
        )
    parts.append("</table>")
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
        f'<p class="meta">computed in {_fmt(prov.get("duration_s", float("nan")))} s, '
        f"figures {_fmt(prov.get('figures_s', float('nan')))} s; "
        f'<a href="{job.folder}/result.json">result.json</a>; config: {html.escape(cfg)}</p>'
    )
    parts.append("</section>")
    return "".join(parts)


def _headline(module: Any, result: Result) -> tuple[str, Any, tuple[Any, ...] | None]:
    """The metric a reader looks at first: the module's ``HEADLINE`` when it names one, else
    the first with a published value, else the first metric (name, value, published or None)."""
    published: dict[str, tuple[Any, ...]] = getattr(module, "PUBLISHED", {})
    chosen = getattr(module, "HEADLINE", None)
    if chosen in result.metrics:
        return chosen, result.metrics[chosen], published.get(chosen)
    for name in published:
        if name in result.metrics:
            return name, result.metrics[name], published[name]
    name = next(iter(result.metrics), "")
    return name, result.metrics.get(name), None


def _summary(
    sections: Sequence[tuple[str, Sequence[tuple[Job, Result | None, str | None]]]],
    claims_of: dict[str, list[tuple[str, bool | None]]],
) -> str:
    """The table at the top: each run, its headline number against the published one,
    whether its claims held, and its time."""
    rows = [
        "<table class='summary'><tr><th>run</th><th>headline number</th><th>measured</th>"
        "<th>published</th><th>agrees</th><th>claims</th><th>time (s)</th></tr>"
    ]
    for _, runs in sections:
        for job, res, err in runs:
            link = f"<a href='#{html.escape(job.folder)}'>{html.escape(job.title)}</a>"
            if res is None:
                rows.append(
                    f"<tr><td>{link}</td><td colspan='6' class='bad'>failed: "
                    f"{html.escape(str(err))}</td></tr>"
                )
                continue
            module = experiments.get(job.experiment)
            name, value, pub = _headline(module, res)
            decided = [held for _, held in claims_of[job.folder] if held is not None]
            n_ok = sum(1 for held in decided if held)
            cls = "ok" if n_ok == len(decided) else "bad"
            held = f"<span class='{cls}'>{n_ok} of {len(decided)} hold</span>" if decided else ""
            if pub is None:
                published, agrees = "", ""
            else:
                ok = agreement(value, pub[0], pub[2] if len(pub) > 2 else None)
                published = _fmt(pub[0])
                agrees = (
                    "<span class='ok'>agrees</span>" if ok else "<span class='bad'>differs</span>"
                )
            prov = res.provenance
            seconds = float(prov.get("duration_s", 0.0)) + float(prov.get("figures_s", 0.0))
            rows.append(
                f"<tr><td>{link}</td><td title='{html.escape(name, quote=True)}'>"
                f"{html.escape(metric_label(name, module))}</td><td>{_fmt(value)}</td>"
                f"<td>{published}</td><td>{agrees}</td><td>{held}</td><td>{seconds:.1f}</td></tr>"
            )
    rows.append("</table>")
    return "".join(rows)


def _git_commit() -> str:
    """The commit of the kvmem checkout this runs from, or a note when it is not one."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return out + (" (with uncommitted changes)" if dirty else "")


def _provenance_header(total_s: float) -> str:
    import os
    import platform
    from datetime import datetime, timezone

    import torch

    from kvmem._version import __version__

    items = [
        ("kvmem", f"{__version__}, commit {_git_commit()}"),
        ("torch", torch.__version__.split("+")[0]),
        ("Python", platform.python_version()),
        ("machine", f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs"),
        ("date", datetime.now(timezone.utc).isoformat(timespec="seconds")),
        ("wall time", f"{total_s:.1f} s in all (per run: the time column below)"),
    ]
    cells = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
    return f"<table class='prov'>{cells}</table>"


def render_report(
    sections: Sequence[tuple[str, Sequence[tuple[Job, Result | None, str | None]]]],
    *,
    quick: bool,
    total_s: float,
) -> str:
    """The HTML of ``report.html`` for already-run jobs (``sections``: heading, runs).

    The page opens with the provenance (versions, commit, machine, date) and a summary:
    per run its headline number against the published one and how many claims held.
    """
    from kvmem._version import __version__

    # claims are checked once per run and shown twice (summary and section)
    claims_of = {
        job.folder: check_claims(experiments.get(job.experiment), res) if res is not None else []
        for _, runs in sections
        for job, res, _ in runs
    }
    body = []
    for heading, runs in sections:
        if not runs:
            continue
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body.extend(_job_section(job, res, err, claims_of[job.folder]) for job, res, err in runs)
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
        "approximate published values, within the stated tolerance). Each experiment's "
        "protocol, data sources and parameters are described in its section of the kvmem "
        "documentation (<code>make docs</code>) and in the docstring of its module "
        "(<code>kvmem show NAME</code>).</p>"
        f"{_provenance_header(total_s)}{note}<h2>Summary</h2>{_summary(sections, claims_of)}"
        f"{''.join(body)}</body></html>\n"
    )


def reproduce(
    out: str | Path,
    *,
    quick: bool = False,
    include_beyond: bool = True,
    progress_enabled: bool = False,
    echo: Callable[[str], Any] = lambda s: None,
) -> Path:
    """Run every paper job (and the beyond-the-paper jobs) into ``out`` and write the report.

    A failing job is reported in the page and does not stop the others; if any failed,
    ``RuntimeError`` is raised after the report is written. A bad ``out`` (a file, not
    writable, empty) raises ``ConfigError`` before anything runs.
    """
    out = prepare_out_dir(out)  # a bad --out fails here, before any run
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
                echo(f"{job.folder:<24} FAILED: {type(err).__name__}: {err}")
                continue
            runs.append((job, res, None))
            prov = res.provenance
            compute, figures = prov.get("duration_s", 0.0), prov.get("figures_s", 0.0)
            echo(
                f"{job.folder:<24} {compute + figures:7.2f} s  "
                f"(compute {compute:.2f} s, figures {figures:.2f} s)"
            )
        sections.append((heading, runs))
    path = out / "report.html"
    atomic_write_text(path, render_report(sections, quick=quick, total_s=time.perf_counter() - t0))
    if failures:
        raise RuntimeError(f"{len(failures)} run(s) failed: {', '.join(failures)}; see {path}")
    return path
