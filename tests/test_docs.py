"""The documentation site builds with ``mkdocs build --strict`` and covers every experiment."""

from __future__ import annotations

import dataclasses
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kvmem import experiments

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("material")

ROOT = Path(__file__).resolve().parents[1]
FIGURE_MARK = "<!-- a figure planted by test_docs -->"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the site once, strictly, with a results folder holding one experiment's figure."""
    tmp = tmp_path_factory.mktemp("docs")
    results = tmp / "results"
    first = experiments.names()[0]
    (results / first).mkdir(parents=True)
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">{FIGURE_MARK}</svg>'
    (results / first / f"{first}.svg").write_text(svg)
    out = tmp / "site"
    env = {**os.environ, "KVMEM_DOCS_RESULTS": str(results), "NO_MKDOCS_2_WARNING": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _text(page: Path) -> str:
    """The visible text of a built page's article."""
    source = page.read_text(encoding="utf-8")
    article = source[source.index("<article") : source.index("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", " ", article))


@pytest.mark.parametrize("name", experiments.names())
def test_every_registered_experiment_has_a_page(site, name):
    module = experiments.get(name)
    text = _text(site / "experiments" / name / "index.html")
    words = " ".join(text.split())
    assert " ".join(module.DESCRIPTION.split()) in words
    # the protocol: the first line of the module docstring, rendered by mkdocstrings
    first_line = (module.__doc__ or "").strip().splitlines()[0]
    assert " ".join(re.sub(r"[`*]", "", first_line).split())[:40] in words
    # how to change it: every Config field, and a command line that sets one
    for f in dataclasses.fields(module.Config):
        assert f.name in text
    assert f"kvmem run {name} --set" in words or len(dataclasses.fields(module.Config)) == 1
    for key in getattr(module, "PUBLISHED", {}):
        assert key in text
    listing = _text(site / "experiments" / "index.html")
    assert name in listing


def test_an_experiment_figure_is_shown_when_results_exist(site):
    first, second = experiments.names()[:2]
    page = (site / "experiments" / first / "index.html").read_text(encoding="utf-8")
    assert f"figures/{first}.svg" in page
    assert FIGURE_MARK in (site / "experiments" / "figures" / f"{first}.svg").read_text()
    other = (site / "experiments" / second / "index.html").read_text(encoding="utf-8")
    assert f"figures/{second}.svg" not in other
    assert f"kvmem run {second}" in html.unescape(other)


def test_the_written_pages_and_generated_figures_are_there(site):
    for page in ("getting-started", "concepts", "sweeps", "adding-a-memory-model"):
        assert (site / page / "index.html").is_file()
    start = _text(site / "getting-started" / "index.html")
    assert "make demo" in start and "make test" in start
    for fig in ("separation", "interference"):
        svg = (site / "assets" / "concepts" / f"{fig}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and svg.count("<path") > 10
    assert not (site / "_hooks").exists()  # the build script is not published


def test_the_api_reference_documents_the_public_classes(site):
    api = site / "api"
    slot = _text(api / "kvmem.core.slot_memory" / "index.html")
    assert "SlotMemory" in slot and "write" in slot and "read" in slot
    for module in ("kvmem.core.matrix_memory", "kvmem.sweep.engine", "kvmem.experiments.base"):
        assert (api / module / "index.html").is_file()
    assert "run_sweep" in _text(api / "kvmem.sweep.engine" / "index.html")
