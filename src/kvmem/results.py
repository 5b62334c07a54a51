"""The ``Result`` record of one experiment run, its JSON form and atomic file writes.

``result.json`` is a contract (DESIGN.md): keys ``experiment``, ``config``, ``metrics``,
``series`` and ``provenance``. Every write goes to a temporary file in the target folder
and is then renamed over the target, so an interrupted run leaves the last good file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kvmem.errors import ResultFileError

__all__ = [
    "Result",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_number",
    "provenance",
    "to_jsonable",
]


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, numpy values, tuples and dataclasses into plain JSON values.

    Non-finite floats become ``null`` so the file is strict JSON.
    """
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover - both are hard dependencies
        np = torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if np is not None and isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def format_number(v: Any) -> str:
    """A metric for people: 4 decimals without trailing zeros, or 4 significant digits
    for very small or large magnitudes; ``n/a`` for NaN/Inf; other values as ``str``."""
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; results are ordinary files, so honour the umask instead
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def provenance(seed: int | None, started: datetime, duration_s: float) -> dict[str, Any]:
    """Versions, seed and timing of a run, as stored under ``result.json["provenance"]``."""
    import numpy
    import torch

    from kvmem._version import __version__

    return {
        "kvmem": __version__,
        "torch": torch.__version__.split("+")[0],
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "seed": seed,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(float(duration_s), 4),
    }


@dataclass
class Result:
    """What one experiment run produced.

    ``metrics`` are scalars (accuracies in percent, 0-100); ``series`` are lists (curves,
    possibly nested, e.g. trajectories) from which ``plot`` redraws the figure, so a
    figure can be remade from ``result.json`` alone.
    """

    experiment: str
    config: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "config": to_jsonable(self.config),
            "metrics": to_jsonable(self.metrics),
            "series": to_jsonable(self.series),
            "provenance": to_jsonable(self.provenance),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``result.json`` atomically; ``path`` is a file or a folder."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / "result.json"
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, d: Any, source: str = "result") -> Result:
        """Build a ``Result`` from the parsed JSON of ``result.json``.

        Raises ``ResultFileError`` (one line, naming ``source``) when ``d`` is not an
        object with ``experiment`` (a string), ``config``, ``metrics`` and ``series`` (objects).
        """
        if not isinstance(d, Mapping):
            raise ResultFileError(
                f"{source}: expected a JSON object with experiment, config, metrics and "
                f"series, got a JSON {type(d).__name__}"
            )
        missing = {"experiment", "config", "metrics", "series"} - set(d)
        if missing:
            raise ResultFileError(f"{source}: missing key(s) {', '.join(sorted(missing))}")
        if not isinstance(d["experiment"], str):
            raise ResultFileError(f"{source}: 'experiment' must be a string")
        for key in ("config", "metrics", "series", *(("provenance",) if "provenance" in d else ())):
            if not isinstance(d[key], Mapping):
                raise ResultFileError(
                    f"{source}: '{key}' must be a JSON object, got {type(d[key]).__name__}"
                )
        return cls(
            experiment=d["experiment"],
            config=dict(d["config"]),
            metrics={k: (math.nan if v is None else v) for k, v in d["metrics"].items()},
            series=dict(d["series"]),
            provenance=dict(d.get("provenance", {})),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Result:
        """Read ``result.json`` (``path`` is the file or its folder).

        Raises ``ResultFileError`` with a one-line message for a missing file, a folder
        without ``result.json``, unreadable, non-UTF-8 or non-JSON content, or JSON that is
        not a result.
        """
        path = Path(path)
        if str(path) == "":
            raise ResultFileError("result: expected a path to result.json or its folder, got ''")
        if path.is_dir():
            path = path / "result.json"
            if not path.exists():
                raise ResultFileError(f"{path.parent}: no result.json in this folder")
        if not path.exists():
            raise ResultFileError(f"{path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ResultFileError(f"{path}: not a result.json (binary, not UTF-8 text)") from None
        except OSError as err:
            raise ResultFileError(f"{path}: cannot be read ({err.strerror or err})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ResultFileError(
                f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
                "the file may be truncated"
            ) from None
        return cls.from_dict(data, source=str(path))


def now() -> datetime:
    return datetime.now(timezone.utc)
