"""The ``Result`` record of one experiment run, its JSON form and atomic file writes.

``result.json`` is a contract (docs/architecture.md): keys ``experiment``, ``config``, ``metrics``,
``series`` and ``provenance``. Every write goes to a temporary file in the target folder
and is then renamed over the target, so an interrupted run leaves the last good file.

Compact by construction: each series is written on one line by the C JSON encoder (an
indented dump goes through the pure-Python encoder, seconds for trajectories), and a
*large* series (a regular array of >= ``SIDECAR_MIN_SIZE`` numbers in >= 2 dimensions,
e.g. the key trajectories of Figure 2) goes to a sidecar ``series.npz`` beside
``result.json``: the JSON keeps a reference ``{"npz": FILE, "key": NAME, "shape": [...],
"dtype": ...}`` under the series' name and ``provenance["outputs"]`` lists the sidecar's
sha256 (as it lists the figures'). The 1-D curves (every contract series) stay inline.
:meth:`Result.load` reads the sidecar back (``numpy.load(allow_pickle=False)``) into the
same lists the JSON would have held, bit for bit, so a loaded result is the same whether
or not a sidecar was used.
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
    "SIDECAR_MIN_SIZE",
    "Result",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_number",
    "provenance",
    "to_jsonable",
]


#: Series of at least this many numbers, in >= 2 dimensions, are stored in ``series.npz``.
SIDECAR_MIN_SIZE = 10_000


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
        """Strict JSON text of :meth:`to_dict` (every series inline, one line each)."""
        return _dumps(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``result.json`` atomically; ``path`` is a file or a folder.

        Large series go to the sidecar (``series.npz`` beside ``result.json``; for another
        file name ``STEM.json``, ``STEM.series.npz``), written atomically before the JSON
        that lists it. A sidecar of an earlier save that this one does not need is removed.
        """
        path = Path(path)
        if path.suffix != ".json":
            path = path / "result.json"
        d = self.to_dict()
        sidecar = path.with_name(
            "series.npz" if path.name == "result.json" else f"{path.stem}.series.npz"
        )
        arrays = _split_sidecar(d["series"], sidecar.name)
        if arrays:
            import hashlib

            data = _npz_bytes(arrays)
            atomic_write_bytes(sidecar, data)
            if not isinstance(self.provenance.get("outputs"), dict):
                self.provenance["outputs"] = {}
            outputs = self.provenance["outputs"]
            outputs[sidecar.name] = hashlib.sha256(data).hexdigest()
            d["provenance"]["outputs"] = to_jsonable(outputs)
        elif isinstance(self.provenance.get("outputs"), dict):
            self.provenance["outputs"].pop(sidecar.name, None)
            d["provenance"]["outputs"] = to_jsonable(self.provenance["outputs"])
        atomic_write_text(path, _dumps(d) + "\n")
        if not arrays and sidecar.exists():
            sidecar.unlink(missing_ok=True)  # stale: no longer referenced by the JSON
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
        result = cls.from_dict(data, source=str(path))
        _join_sidecar(result, path)
        return result


def now() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------- file format


def _dumps(d: dict[str, Any]) -> str:
    """``d`` (a :meth:`Result.to_dict`) as strict JSON: indented sections, one series a line.

    The C encoder runs only without ``indent``; the small sections (config, metrics,
    provenance) keep the indented layout for people, each series is one compact line.
    """
    parts = []
    for key, value in d.items():
        if key == "series" and isinstance(value, dict) and value:
            body = ",\n".join(
                f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in value.items()
            )
            text = "{\n" + body + "\n }"
        else:
            # newlines occur in indented JSON only between tokens (strings escape theirs)
            text = json.dumps(value, indent=1, allow_nan=False).replace("\n", "\n ")
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}"


def _sidecar_array(value: Any) -> Any:
    """``value`` (JSON-ready) as a numpy array when it is a large regular array of floats
    only or ints only, so that ``array.tolist()`` gives back ``value`` exactly; else None."""
    if not (isinstance(value, list) and value and isinstance(value[0], list)):
        return None
    import numpy as np

    try:
        obj = np.array(value, dtype=object)
    except ValueError:  # ragged
        return None
    if obj.ndim < 2 or obj.size < SIDECAR_MIN_SIZE:
        return None
    kinds = set(map(type, obj.flat))
    if kinds == {float}:
        return obj.astype(np.float64)
    if kinds == {int}:
        try:
            return obj.astype(np.int64)
        except OverflowError:
            return None
    return None  # None (a non-finite value), bool, str or a mix: stays in the JSON


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    """``arrays`` as a compressed ``.npz``; the same arrays give the same bytes (numpy
    writes its zip members with the fixed default timestamp of ``zipfile.ZipInfo``)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _split_sidecar(series: dict[str, Any], file_name: str) -> dict[str, Any]:
    """Move the large series of ``series`` (in place) to arrays; returns the arrays."""
    arrays = {}
    for name, value in series.items():
        arr = _sidecar_array(value)
        if arr is not None:
            key = f"s{len(arrays)}"  # npz member names stay plain whatever the series name
            arrays[key] = arr
            series[name] = {
                "npz": file_name,
                "key": key,
                "shape": list(arr.shape),
                "dtype": str(arr.dtype),
            }
    return arrays


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"npz", "key", "shape", "dtype"}


def _join_sidecar(result: Result, path: Path) -> None:
    """Replace the sidecar references in ``result.series`` by the stored lists.

    Raises ``ResultFileError`` when the sidecar is missing, does not match the sha256 that
    ``result.json`` lists for it (a later, interrupted run replaced it) or lacks an array.
    """
    refs = {k: v for k, v in result.series.items() if _is_ref(v)}
    if not refs:
        return
    import hashlib
    import io

    import numpy as np

    loaded: dict[str, Any] = {}
    for name, ref in refs.items():
        file_name = str(ref["npz"])
        if Path(file_name).name != file_name:
            raise ResultFileError(f"{path}: series {name!r} names a sidecar outside its folder")
        if file_name not in loaded:
            side = path.parent / file_name
            try:
                data = side.read_bytes()
            except OSError:
                raise ResultFileError(
                    f"{path}: series {name!r} is stored in {file_name}, which is missing"
                ) from None
            expected = result.provenance.get("outputs", {}).get(file_name)
            if expected is not None and hashlib.sha256(data).hexdigest() != expected:
                raise ResultFileError(
                    f"{path}: {file_name} does not match result.json (replaced by another run?)"
                )
            try:
                with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                    loaded[file_name] = {k: npz[k] for k in npz.files}
            except (OSError, ValueError) as err:
                raise ResultFileError(f"{path}: {file_name} cannot be read ({err})") from None
        arr = loaded[file_name].get(str(ref["key"]))
        if arr is None or list(arr.shape) != list(ref["shape"]):
            raise ResultFileError(f"{path}: {file_name} lacks series {name!r} as listed")
        result.series[name] = arr.tolist()
