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


def save_figure(fig: Any, path: Path) -> bytes:
    """Save a matplotlib figure atomically (format from the suffix); returns the bytes."""
    buf = io.BytesIO()
    fmt = path.suffix.lstrip(".")
    # no timestamps in the files: the same figure gives the same bytes
    metadata = {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else None
    fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return data


def save_outputs(module: ModuleType, result: Result, out_dir: Path, stem: str) -> list[Path]:
    """Write ``STEM.png``, ``STEM.svg`` and then ``result.json`` into ``out_dir``.

    ``result.json`` is written last and is the manifest of the set: its provenance lists
    the sha256 of each figure (``outputs``), so a folder whose figures were replaced by a
    later, interrupted run is detected (:func:`outputs_complete`). ``plot`` returns a
    bare ``matplotlib.figure.Figure`` (no pyplot, so no GUI backend and nothing to close).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fig = module.plot(result)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    digests = {}
    for p in paths:
        digests[p.name] = hashlib.sha256(save_figure(fig, p)).hexdigest()
    result.provenance["outputs"] = digests
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
