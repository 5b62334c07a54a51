"""Run an experiment end to end: config, computation, provenance, result.json and figures.

The computation itself lives in each experiment's ``run``; this module adds what every run
needs around it, so experiments stay free of I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from kvmem import experiments
from kvmem.errors import ConfigError, ResultFileError
from kvmem.experiments.base import (
    ProgressFactory,
    check_memory,
    config_from_dict,
    null_progress,
    parse_overrides,
)
from kvmem.results import Result, atomic_write_bytes, now, provenance

__all__ = [
    "MAX_SEED",
    "make_config",
    "prepare_out_dir",
    "outputs_complete",
    "redraw",
    "run_experiment",
    "save_figure",
    "save_figures",
    "save_outputs",
]

#: Seeds are 64-bit on every generator kvmem uses (torch, numpy).
MAX_SEED = 2**63 - 1


def make_config(
    module: ModuleType,
    overrides: Sequence[str] | dict[str, Any] = (),
    *,
    seed: int | None = None,
    quick: bool = False,
) -> Any:
    """Build ``module.Config``: defaults, then ``quick``, then ``--set`` overrides, then seed.

    ``overrides`` is a list of ``KEY=VALUE`` strings (parsed to the fields' types) or a
    dict of already-typed values. Raises ``ConfigError`` with a one-line message.
    """
    cls = module.Config
    config = cls()
    if quick:
        config = module.quick(config)
    values = (
        dict(overrides) if isinstance(overrides, dict) else parse_overrides(cls, list(overrides))
    )
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"--seed: expected an integer in [0, 2**63 - 1], got {seed}")
        values["seed"] = int(seed)
    if values:
        config = config_from_dict(cls, values, base=config)
    return config


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Check (and create) an output folder before any computation is spent on it.

    Raises ``ConfigError`` with a one-line message for an empty path, a path that is a
    file, or a folder that cannot be created or written; removes temporary files left
    behind by an earlier, killed write (``.NAME.XXXX.tmp``).
    """
    text = os.fspath(out_dir)
    if text.strip() == "":
        raise ConfigError("--out: expected a folder path, got ''")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out: {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".kvmem-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"--out: cannot write into {path} ({err.strerror or type(err).__name__})"
        ) from None
    for stale in path.glob(".*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass
    return path


#: Resolution of the png figures (and of rasterised artists in the svg ones).
FIGURE_DPI = 120


def _metadata(fmt: str) -> dict[str, Any] | None:
    # no timestamps in the files: the same figure gives the same bytes
    return {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else None


def save_figure(fig: Any, path: Path) -> bytes:
    """Save a matplotlib figure atomically (format from the suffix); returns the bytes."""
    import matplotlib as mpl

    buf = io.BytesIO()
    fmt = path.suffix.lstrip(".")
    with mpl.rc_context({"svg.hashsalt": "kvmem"}):  # fixed svg ids: the same bytes again
        fig.savefig(buf, format=fmt, dpi=FIGURE_DPI, bbox_inches="tight", metadata=_metadata(fmt))
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return data


def save_figures(fig: Any, paths: Sequence[Path]) -> dict[str, bytes]:
    """Save one figure as png and/or svg (suffixes of ``paths``), laying it out once.

    ``savefig(bbox_inches="tight")`` draws a figure twice per file: a dry run that runs the
    layout engine (constrained layout: most of the cost) and measures the tight box, then
    the real drawing. Here the figure is drawn once, whole, on the Agg canvas at
    :data:`FIGURE_DPI`, which runs the layout engine; the png is that raster cropped to the
    tight box (padded by ``savefig.pad_inches``; the figure's face colour outside it), and
    the svg reuses the layout (figure coordinates) and the box (inches): one drawing per
    file instead of two, one layout instead of one per file. The png matches what
    ``savefig(bbox_inches="tight")`` gives up to a sub-pixel shift (tests). Returns the
    bytes of each file by name; each file is written atomically. The same figure gives the
    same bytes (no dates, fixed svg ids), so ``kvmem plot`` redraws a run's files exactly.
    """
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    engine = fig.get_layout_engine()
    old_dpi = fig.dpi
    try:
        fig.dpi = FIGURE_DPI
        canvas.draw()  # lays the figure out (its layout engine) and renders it, once
        tight = fig.get_tightbbox(canvas.get_renderer())
        bbox = tight.padded(mpl.rcParams["savefig.pad_inches"])
        fig.set_layout_engine("none")  # keep the positions just computed
        # artists outside the figure (a legend placed beyond it) were not drawn: crop only
        # when every artist lies within the figure, else draw the png again with the box
        w_in, h_in = fig.get_size_inches()
        eps = 1e-6
        inside = tight.x0 >= -eps and tight.y0 >= -eps
        inside = inside and tight.x1 <= w_in + eps and tight.y1 <= h_in + eps
        out = {}
        for path in paths:
            fmt = path.suffix.lstrip(".")
            if fmt == "png" and inside:
                data = _cropped_png(fig, canvas, bbox)
            else:
                buf = io.BytesIO()
                # a fixed salt for the svg's element ids (random by default): same bytes
                with mpl.rc_context({"svg.hashsalt": "kvmem"}):
                    fig.savefig(
                        buf, format=fmt, dpi=FIGURE_DPI, bbox_inches=bbox, metadata=_metadata(fmt)
                    )
                data = buf.getvalue()
            out[path.name] = data
            atomic_write_bytes(path, data)
    finally:
        fig.dpi = old_dpi
        if engine is not None:
            fig.set_layout_engine(engine)
    return out


def _cropped_png(fig: Any, canvas: Any, bbox: Any) -> bytes:
    """The png of ``canvas``'s last drawing cropped to ``bbox`` (inches): pixel ``(row,
    col)`` of the crop is pixel ``(row + top, col + left)`` of the drawing, with the offsets
    rounded as ``savefig(bbox_inches=bbox)`` translates the figure (size truncated to
    whole pixels, as Agg does)."""
    import matplotlib.colors
    import matplotlib.image
    import numpy as np

    rgba = np.asarray(canvas.buffer_rgba())
    height, width = rgba.shape[:2]
    dpi = fig.dpi
    w, h = int(bbox.width * dpi), int(bbox.height * dpi)
    left = round(bbox.x0 * dpi)
    top = round(height - bbox.y0 * dpi - h)
    face = np.round(np.asarray(matplotlib.colors.to_rgba(fig.get_facecolor())) * 255)
    crop = np.empty((h, w, 4), dtype=np.uint8)
    crop[:] = face.astype(np.uint8)  # outside the drawn figure: its face colour
    r0, r1 = max(top, 0), min(top + h, height)
    c0, c1 = max(left, 0), min(left + w, width)
    if r1 > r0 and c1 > c0:
        crop[r0 - top : r1 - top, c0 - left : c1 - left] = rgba[r0:r1, c0:c1]
    buf = io.BytesIO()
    matplotlib.image.imsave(
        buf, crop, format="png", origin="upper", dpi=dpi, metadata=_metadata("png")
    )
    return buf.getvalue()


def save_outputs(module: ModuleType, result: Result, out_dir: Path, stem: str) -> list[Path]:
    """Write ``STEM.png``, ``STEM.svg`` and then ``result.json`` into ``out_dir``.

    ``result.json`` is written last and is the manifest of the set: its provenance lists
    the sha256 of each figure (``outputs``; and of the ``series.npz`` sidecar of large
    series, see :meth:`Result.save`), so a folder whose figures were replaced by a later,
    interrupted run is detected (:func:`outputs_complete`). ``plot`` returns a bare
    ``matplotlib.figure.Figure`` (no pyplot, so no GUI backend and nothing to close).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fig = module.plot(result)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    files = save_figures(fig, paths)
    result.provenance["outputs"] = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
    result.provenance["figures_s"] = round(time.perf_counter() - t0, 4)
    paths.insert(0, result.save(out_dir / "result.json"))
    return paths


def outputs_complete(out_dir: str | os.PathLike[str]) -> bool:
    """True when ``out_dir/result.json`` exists and every figure it lists has its bytes."""
    folder = Path(out_dir)
    try:
        result = Result.load(folder)
    except ResultFileError:
        return False
    listed = result.provenance.get("outputs")
    if not isinstance(listed, dict):
        return True  # written before manifests existed: nothing to check against
    for name, digest in listed.items():
        p = folder / name
        if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            return False
    return True


def redraw(result: Result, out_dir: Path) -> list[Path]:
    """Redraw a saved result's figures into ``out_dir`` (``kvmem plot``).

    Raises ``ResultFileError`` when the result lacks what its figure is drawn from.
    """
    module = experiments.get(result.experiment)
    try:
        return save_outputs(module, result, prepare_out_dir(out_dir), result.experiment)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        what = f"series or metric {err}" if isinstance(err, KeyError) else type(err).__name__
        raise ResultFileError(
            f"result of {result.experiment!r} cannot be drawn: it lacks or has a malformed {what}"
        ) from None


def run_experiment(
    name: str,
    config: Any | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: ProgressFactory = null_progress,
    figure: bool = True,
) -> Result:
    """Run experiment ``name`` with ``config`` (default: its published protocol).

    Records provenance; when ``out_dir`` is given writes ``result.json`` and the figure
    (``NAME.png``, ``NAME.svg``) there, atomically.
    """
    module = experiments.get(name)
    if config is None:
        config = module.Config()
    check_memory(module, config)
    if out_dir is not None:
        out_dir = prepare_out_dir(out_dir)
    started = now()
    t0 = time.perf_counter()
    result: Result = module.run(config, progress=progress)
    duration = time.perf_counter() - t0
    result.experiment = name
    result.config = dataclasses.asdict(config)
    result.provenance = {
        **provenance(getattr(config, "seed", None), started, duration),
        **result.provenance,
    }
    if out_dir is not None and figure:
        save_outputs(module, result, Path(out_dir), name)
    elif out_dir is not None:
        result.save(Path(out_dir) / "result.json")
    return result
