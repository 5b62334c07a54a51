"""mkdocs hook: the pages that are generated from the code at build time.

- one page per registered experiment (``kvmem.experiments.REGISTRY``), grouped as in
  ``GROUPS``: its protocol and published targets (the module docstring, through
  mkdocstrings), its published values and claims, its figure when a ``results/`` folder
  holds one, and how to change it (the ``Config`` fields and example command lines);
- the API reference: one page per public module of ``kvmem``, found by walking the
  package, so a new module gets its page without editing anything;
- the figures of the concepts page, drawn from ``kvmem.core`` (small and fast).

The nav entries ``experiments/index.md`` and ``api/index.md`` of ``mkdocs.yml`` are
expanded into sections here. Set ``KVMEM_DOCS_RESULTS`` to a ``kvmem reproduce`` output
folder (default ``results/`` beside ``mkdocs.yml``) to show the experiments' figures.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import os
import pkgutil
import re
import typing
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

EXPERIMENTS_INDEX = "experiments/index.md"
API_INDEX = "api/index.md"
#: Packages whose public modules get an API page, in this order, with a heading each.
API_PACKAGES: tuple[tuple[str, str], ...] = (
    ("kvmem.core", "Memory models and operators"),
    ("kvmem.nn", "PyTorch layers and the dual form of SGD"),
    ("kvmem.bio", "Circuit models with local plasticity"),
    ("kvmem.behavior", "Models of behavioural tasks"),
    ("kvmem.data", "Datasets and patterns"),
    ("kvmem.sweep", "Sweeps"),
)
#: Top-level modules with an API page (the experiment protocol, results, metrics, errors).
API_MODULES: tuple[str, ...] = (
    "kvmem",
    "kvmem.experiments",
    "kvmem.experiments.base",
    "kvmem.experiments.runner",
    "kvmem.results",
    "kvmem.metrics",
    "kvmem.errors",
    "kvmem.report",
    "kvmem.cli",
    "kvmem.bench",
)


# ----------------------------------------------------------------------------- discovery


def _experiment_groups() -> list[tuple[str, list[str]]]:
    """``[(heading, [name, ...]), ...]``: ``GROUPS`` order, then any ungrouped names."""
    from kvmem import experiments

    registered = experiments.REGISTRY
    groups = [(h, [n for n in names if n in registered]) for h, names in experiments.GROUPS]
    grouped = {n for _, names in groups for n in names}
    rest = [n for n in experiments.REGISTRY if n not in grouped]
    if rest:
        groups.append(("Other experiments", rest))
    return [(h, names) for h, names in groups if names]


def _api_modules() -> list[tuple[str, list[str]]]:
    """``[(heading, [module, ...]), ...]``: public modules of each API package."""
    import importlib

    out = [("Package and experiment protocol", [m for m in API_MODULES if _exists(m)])]
    for package, heading in API_PACKAGES:
        pkg = importlib.import_module(package)
        names = [package]
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                names.append(f"{package}.{info.name}")
        out.append((heading, names))
    return out


def _exists(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _api_page(module: str) -> str:
    return f"api/{module}.md"


# ----------------------------------------------------------------------------- nav


def _expand(nav: Any, target: str, section: list[Any]) -> bool:
    """Replace the nav entry ``{title: target}`` (anywhere in ``nav``) by ``{title: section}``."""
    if isinstance(nav, list):
        for i, item in enumerate(nav):
            if isinstance(item, dict) and len(item) == 1:
                ((title, value),) = item.items()
                if value == target:
                    nav[i] = {title: section}
                    return True
                if _expand(value, target, section):
                    return True
    return False


def on_config(config: Any) -> Any:
    nav = config["nav"]
    experiments_section: list[Any] = [EXPERIMENTS_INDEX]
    for heading, names in _experiment_groups():
        experiments_section.append({heading: [{n: f"experiments/{n}.md"} for n in names]})
    api_section: list[Any] = [API_INDEX]
    for heading, modules in _api_modules():
        api_section.append({heading: [{m: _api_page(m)} for m in modules]})
    if nav is not None:
        _expand(nav, EXPERIMENTS_INDEX, experiments_section)
        _expand(nav, API_INDEX, api_section)
    return config


# ----------------------------------------------------------------------------- pages


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _format_default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) if value else "(empty)"
    return str(value)


def _example_value(value: Any, tp: Any) -> str | None:
    """A different, plausible value for a field, as ``--set`` text (None: no good example)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        others = [a for a in typing.get_args(tp) if a != value]
        return str(others[0]) if others else None
    if isinstance(value, bool):
        return str(not value).lower()
    if isinstance(value, int):
        return str(value * 2 if value else 1)
    if isinstance(value, float):
        return repr(value * 2 if value else 0.5)
    return None


def _examples(name: str, module: Any) -> list[str]:
    """Example command lines: a seed, one field set, one field swept (numbers first)."""
    from kvmem.experiments.base import config_fields

    fields = config_fields(module.Config)
    options = []
    for f in dataclasses.fields(module.Config):
        if f.name == "seed" or f.default is dataclasses.MISSING:
            continue
        text = _example_value(f.default, fields[f.name])
        if text is not None:
            numeric = isinstance(f.default, int | float) and not isinstance(f.default, bool)
            options.append((not numeric, f.name, _format_default(f.default), text))
    lines = [f"kvmem run {name} --seed 1"]
    if options:
        _, field, default, text = min(options, key=lambda o: o[0])
        lines.append(f"kvmem run {name} --set {field}={text}")
        lines.append(f"kvmem sweep {name} --grid {field}={default},{text} --seeds 5")
    return lines


def _config_table(module: Any) -> list[str]:
    from kvmem.experiments.base import config_fields, describe_type

    fields = config_fields(module.Config)
    rows = ["| field | default | accepts |", "|---|---|---|"]
    for f in dataclasses.fields(module.Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append(
            f"| `{f.name}` | `{_md_escape(_format_default(default))}` "
            f"| {_md_escape(describe_type(fields[f.name]))} |"
        )
    return rows


def _figure(name: str, results: Path) -> Path | None:
    candidates = [results / name / f"{name}.svg", *sorted(results.glob(f"*/{name}.svg"))]
    return next((p for p in candidates if p.is_file()), None)


def experiment_page(name: str, module_path: str, heading: str, figure: str | None) -> str:
    """The Markdown of the page of experiment ``name`` (module ``module_path``)."""
    import importlib

    from kvmem.results import format_number

    module = importlib.import_module(module_path)
    out = [f"# {name}", "", f"*{heading}.* {_md_escape(module.DESCRIPTION)}", ""]
    out += [
        "```console",
        f"kvmem run {name}          # the published protocol -> results/{name}/",
        f"kvmem run {name} --quick  # a few seconds: a smoke test",
        f"kvmem show {name}         # protocol, Config fields, published values",
        "```",
        "",
        "## Protocol and published targets",
        "",
        f"::: {module_path}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "      show_source: false",
        "",
    ]
    published = getattr(module, "PUBLISHED", {})
    if published:
        out += ["## Published values", "", "| metric | published | source |", "|---|---|---|"]
        for key, (value, source, *_) in published.items():
            out.append(f"| `{key}` | {format_number(value)} | {_md_escape(str(source))} |")
        out.append("")
    claims = getattr(module, "CLAIMS", ())
    if claims:
        out += ["## Claims checked on every run", ""]
        out += [f"- {_md_escape(c.text)}" for c in claims]
        out.append("")
    out += ["## The figure", ""]
    if figure is not None:
        out += [f"![{name}]({figure})", ""]
    else:
        out += [
            f"`kvmem run {name}` draws it into `results/{name}/{name}.png` (and `.svg`);",
            "`make demo` draws every experiment's. A docs build run after `make demo`",
            "shows it here.",
            "",
        ]
    doc = inspect.cleandoc(module.Config.__doc__ or "")
    out += ["## How to change it", ""]
    if doc and not doc.startswith("Config("):
        out += [doc, ""]
    out += [
        "Every field of its `Config` can be set from the command line with",
        "`--set FIELD=VALUE` (the defaults are the published protocol) and swept with",
        "`kvmem sweep` (see [Sweeps](../sweeps.md)):",
        "",
        *_config_table(module),
        "",
        "```console",
        *_examples(name, module),
        "```",
        "",
    ]
    return "\n".join(out)


def experiments_index() -> str:
    from kvmem import experiments

    out = [
        "# Experiments",
        "",
        "Each experiment is one module of `kvmem.experiments`: a `Config` whose defaults are",
        "the published protocol, a `run` that returns a `Result`, a `plot` of it, and the",
        "claims each run checks. `kvmem list` lists them; `kvmem run NAME` runs one.",
        "",
    ]
    for heading, names in _experiment_groups():
        out += [f"## {heading}", "", "| experiment | what it shows |", "|---|---|"]
        for n in names:
            try:
                desc = experiments.get(n).DESCRIPTION
            except ImportError as err:
                desc = f"(unavailable: {err})"
            out.append(f"| [{n}]({n}.md) | {_md_escape(desc)} |")
        out.append("")
    return "\n".join(out)


def api_index() -> str:
    out = [
        "# API reference",
        "",
        "Generated from the docstrings. The names most scripts need are importable from",
        "`kvmem` itself: `SlotMemory`, `MatrixMemory`, `ClassicalHopfield`,",
        "`DenseAssociativeMemory`, `ModernHopfield`, `SparseDistributedMemory`, `save`,",
        "`load`, `Result`, `SGDRecorder`.",
        "",
    ]
    for heading, modules in _api_modules():
        out += [f"## {heading}", ""]
        out += [f"- [`{m}`]({m}.md)" for m in modules]
        out.append("")
    return "\n".join(out)


def api_page(module: str) -> str:
    return "\n".join(
        [
            f"# `{module}`",
            "",
            f"::: {module}",
            "    options:",
            "      show_root_heading: false",
            "      show_root_toc_entry: false",
            "",
        ]
    )


# ----------------------------------------------------------------------------- figures


def _svg(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


def separation_figure() -> bytes:
    """Read weights of each separation operator on the same 10 match scores."""
    import torch
    from matplotlib.figure import Figure

    from kvmem.core.separation import get_separation

    scores = torch.tensor([0.9, 0.75, 0.7, 0.4, 0.3, 0.2, 0.1, 0.0, -0.2, -0.4])
    panels = [
        ("identity", {}, "identity (matrix memory)"),
        ("softmax", {"beta": 2.0}, "softmax, beta = 2"),
        ("softmax", {"beta": 20.0}, "softmax, beta = 20"),
        ("top_k", {"k": 3}, "top-3"),
        ("sparsemax", {"beta": 4.0}, "sparsemax, beta = 4"),
        ("hard_max", {}, "hard max (nearest key)"),
    ]
    fig = Figure(figsize=(9.0, 4.2))
    axes = fig.subplots(2, 3, sharex=True)
    for ax, (op, params, title) in zip(axes.flat, panels, strict=True):
        w = get_separation(op, **params)(scores[None])[0]
        ax.bar(range(len(scores)), w.numpy(), color="#3f6fb5")
        ax.set_title(title, fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
    for ax in axes[1]:
        ax.set_xlabel("stored item, by match to the query", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("read weight", fontsize=8)
    fig.suptitle("The same match scores through six separation operators", fontsize=10)
    return _svg(fig)


def interference_figure() -> bytes:
    """Read error against items stored: a matrix memory against slot memories (softmax)."""
    import torch
    from matplotlib.figure import Figure

    from kvmem.core.matrix_memory import MatrixMemory
    from kvmem.core.slot_memory import SlotMemory

    g = torch.Generator().manual_seed(0)
    d, trials = 64, 20
    ns = [4, 8, 16, 32, 64, 128, 256]
    errors: dict[str, list[float]] = {
        "matrix (Hebbian)": [],
        "slots, softmax beta = 4": [],
        "slots, softmax beta = 16": [],
    }
    for n in ns:
        keys = torch.randn(trials, n, d, generator=g)
        keys = keys / keys.norm(dim=-1, keepdim=True)
        values = torch.randn(trials, n, d, generator=g) / d**0.5
        m = MatrixMemory(d, d, rule="hebbian")
        m.write(keys, values)
        reads = {"matrix (Hebbian)": m.read(keys)}
        for beta in (4.0, 16.0):
            s = SlotMemory(similarity="dot", separation="softmax", beta=beta)
            s.write(keys, values)
            reads[f"slots, softmax beta = {beta:g}"] = s.read(keys)
        for label, r in reads.items():
            err = ((r - values) ** 2).sum(-1) / (values**2).sum(-1)
            errors[label].append(float(err.mean()))
    fig = Figure(figsize=(5.4, 3.6))
    ax = fig.add_subplot()
    for label, ys in errors.items():
        ax.plot(ns, ys, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("items stored (N), key dimension 64")
    ax.set_ylabel("relative read error")
    ax.set_title("Recall of a stored item with its own key as the query", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _svg(fig)


CONCEPT_FIGURES = {
    "assets/concepts/separation.svg": separation_figure,
    "assets/concepts/interference.svg": interference_figure,
}


# ----------------------------------------------------------------------------- files


def on_files(files: Files, config: Any) -> Files:
    from kvmem import experiments

    results = Path(
        os.environ.get("KVMEM_DOCS_RESULTS") or Path(config["config_file_path"]).parent / "results"
    )

    def add(uri: str, content: str | bytes) -> None:
        if files.get_file_from_path(uri) is not None:
            files.remove(files.get_file_from_path(uri))
        files.append(File.generated(config, uri, content=content))

    add(EXPERIMENTS_INDEX, experiments_index())
    for heading, names in _experiment_groups():
        for name in names:
            fig = _figure(name, results)
            rel = None
            if fig is not None:
                rel = f"figures/{name}.svg"
                add(f"experiments/{rel}", fig.read_bytes())
            try:
                page = experiment_page(name, experiments.REGISTRY[name], heading, rel)
            except ImportError as err:  # a half-installed extra: say so, build the rest
                page = f"# {name}\n\n*{heading}.* Unavailable in this build: {err}\n"
            add(f"experiments/{name}.md", page)
    add(API_INDEX, api_index())
    for _, modules in _api_modules():
        for m in modules:
            add(_api_page(m), api_page(m))
    for uri, draw in CONCEPT_FIGURES.items():
        add(uri, draw())
    return files


_REST_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):(?=<code>)")


def on_page_content(html: str, **_: Any) -> str:
    """Drop the reST roles of docstrings (``:func:`x``` renders as ``:func:<code>x</code>``)."""
    return _REST_ROLE.sub("", html)
