"""Whole-command costs (issue 15): lazy imports, one layout per figure, compact results.

No wall-clock asserts: these tests pin the *mechanisms* (what a command imports, how often
a figure is laid out, what goes to the sidecar), and that none of them changes a result
or a figure. ``scripts/bench_command.py`` measures the times.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from kvmem.cli import main
from kvmem.experiments.runner import make_config, run_experiment, save_figure, save_figures
from kvmem.results import Result


def imported_after(code: str) -> set[str]:
    """Top-level packages imported by a fresh interpreter running ``code``."""
    probe = (
        "import sys\n" + code + "\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(proc.stdout.split())


HEAVY = {"torch", "numpy", "matplotlib", "scipy", "pandas", "ray"}


def test_building_the_parser_imports_no_heavy_library():
    mods = imported_after("import kvmem.cli; kvmem.cli.build_parser()")
    assert "kvmem" in mods
    assert not mods & HEAVY


def test_package_exports_are_lazy():
    mods = imported_after("import kvmem; kvmem.__version__; kvmem.Result")
    assert not mods & HEAVY


def test_experiment_modules_import_matplotlib_only_to_plot():
    code = (
        "from kvmem.experiments.paper import forgetting, kv_optimization\n"
        "from kvmem.experiments.runner import make_config, run_experiment\n"
        "c = make_config(kv_optimization, quick=True)\n"
        "run_experiment('kv-optimization', c)"
    )
    mods = imported_after(code)
    assert "torch" in mods
    assert "matplotlib" not in mods


@pytest.fixture(scope="module")
def kv_run(tmp_path_factory):
    """kv-optimization, 300 steps: 101 snapshots of 200 keys and values, enough to go to
    the sidecar (2 x 40,400 numbers)."""
    out = tmp_path_factory.mktemp("kv")
    module = __import__("kvmem.experiments.paper.kv_optimization", fromlist=["x"])
    result = run_experiment("kv-optimization", make_config(module, quick=True), out_dir=out)
    return out, result


def test_large_series_go_to_the_sidecar_and_come_back_exactly(kv_run):
    out, result = kv_run
    d = json.loads((out / "result.json").read_text())
    assert isinstance(d["series"]["loss"], list)  # contract series stay inline
    assert d["series"]["key_trajectory"]["npz"] == "series.npz"
    assert set(d["provenance"]["outputs"]) == {
        "kv-optimization.png",
        "kv-optimization.svg",
        "series.npz",
    }
    back = Result.load(out)
    assert back.series == json.loads(json.dumps(result.series))
    assert back.metrics == result.metrics


def test_plot_redraws_identical_files(kv_run, tmp_path):
    out, _ = kv_run
    assert main(["plot", str(out / "result.json"), "--out", str(tmp_path)]) == 0
    for name in ("kv-optimization.png", "kv-optimization.svg", "series.npz"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    again = Result.load(tmp_path)
    assert again.series == Result.load(out).series


def _figure() -> Figure:
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax_a, ax_b = fig.subplots(1, 2)
    g = np.random.default_rng(1)
    ax_a.plot(np.arange(10), g.random(10), "-o", label="a curve")
    ax_a.set_title("A  a title", loc="left")
    ax_a.legend()
    ax_b.scatter(*g.random((2, 500)), s=3, rasterized=True)
    ax_b.set_xlabel("a long x label to push the layout")
    fig.suptitle("suptitle")
    return fig


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"), dtype=float)


def test_one_drawing_gives_the_png_of_savefig_tight(tmp_path):
    """``save_figures`` draws the figure once for all formats; its png is the png of a
    plain ``savefig(bbox_inches='tight')`` up to a sub-pixel shift (same size, a mean
    difference of a few thousandths of the range), its svg has the same size in points."""
    files = save_figures(_figure(), [tmp_path / "f.png", tmp_path / "f.svg"])
    assert files["f.png"] == (tmp_path / "f.png").read_bytes()
    single = save_figure(_figure(), tmp_path / "g.png")
    new, old = _pixels(files["f.png"]), _pixels(single)
    assert new.shape == old.shape
    assert np.abs(new - old).mean() < 2.0  # of 255
    assert np.abs(_pixels(save_figure(_figure(), tmp_path / "h.png")) - old).max() == 0
    svg_single = save_figure(_figure(), tmp_path / "g.svg").decode()
    svg = files["f.svg"].decode()

    def size(text: str) -> tuple[float, float]:
        head = text[text.index("<svg") : text.index(">", text.index("<svg"))]
        get = lambda k: float(head.split(f'{k}="')[1].split("pt")[0])  # noqa: E731
        return get("width"), get("height")

    w, h = size(svg)
    w0, h0 = size(svg_single)
    assert abs(w - w0) < 2 and abs(h - h0) < 2  # points: the same box, laid out once


def test_artists_outside_the_figure_are_kept(tmp_path):
    """A legend beyond the figure's edge (no layout engine) is in the tight box: the png
    is then drawn with that box, as ``savefig(bbox_inches='tight')`` does."""

    def fig_outside() -> Figure:
        fig = Figure(figsize=(4, 3))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], label="a line with a long legend label")
        ax.legend(loc="upper left", bbox_to_anchor=(1.05, 1.0))
        return fig

    files = save_figures(fig_outside(), [tmp_path / "f.png"])
    single = save_figure(fig_outside(), tmp_path / "g.png")
    assert _pixels(files["f.png"]).shape[1] > 4 * 120  # wider than the figure
    assert files["f.png"] == single  # the legend is there, pixel for pixel


def test_figure_bytes_are_reproducible(tmp_path):
    a = save_figures(_figure(), [tmp_path / "a.png", tmp_path / "a.svg"])
    b = save_figures(_figure(), [tmp_path / "b.png", tmp_path / "b.svg"])
    assert a["a.png"] == b["b.png"] and a["a.svg"] == b["b.svg"]


def test_save_figures_leaves_the_figure_as_it_was(tmp_path):
    fig = _figure()
    engine, dpi = type(fig.get_layout_engine()), fig.dpi
    save_figures(fig, [tmp_path / "f.png"])
    assert type(fig.get_layout_engine()) is engine and fig.dpi == dpi
