import hashlib
import json
import math
import os

import numpy as np
import pytest
import torch

from kvmem.results import Result, atomic_write_text, to_jsonable


def test_round_trip(tmp_path):
    r = Result(
        "demo",
        {"a": 1, "b": (1.0, 2.0)},
        metrics={"acc": 99.5, "bad": math.nan},
        series={"x": torch.arange(3), "y": np.array([[1.5, 2.5]])},
        provenance={"seed": 0},
    )
    path = r.save(tmp_path)
    assert path.name == "result.json"
    d = json.loads(path.read_text())
    assert set(d) == {"experiment", "config", "metrics", "series", "provenance"}
    assert d["metrics"]["bad"] is None  # strict JSON: no NaN literal
    assert d["series"]["x"] == [0, 1, 2]
    back = Result.load(tmp_path)
    assert back.metrics["acc"] == 99.5 and math.isnan(back.metrics["bad"])
    assert back.series["y"] == [[1.5, 2.5]]


def test_to_jsonable_types():
    assert to_jsonable(np.float32(1.5)) == 1.5
    assert to_jsonable((1, 2)) == [1, 2]
    assert to_jsonable(float("inf")) is None


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "good")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_from_dict_missing_keys():
    with pytest.raises(ValueError, match="missing"):
        Result.from_dict({"experiment": "x"})


def test_atomic_write_honours_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "g.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "g.txt").stat().st_mode & 0o777 == 0o644


def test_format_number():
    from kvmem.results import format_number

    assert format_number(99.71631205673759) == "99.7163"
    assert format_number(94.95) == "94.95"
    assert format_number(1.0) == "1"
    assert format_number(0.0) == "0"
    assert format_number(1.937e-07) == "1.937e-07"
    assert format_number(246650.0) == "2.466e+05"
    assert format_number(float("nan")) == "n/a"
    assert format_number("kv_learned") == "kv_learned"


# ----------------------------------------------------------------------------- compact files


def _big_result() -> Result:
    """A result with a large trajectory (sidecar), an int grid (sidecar), small and
    irregular series (inline) and a non-finite value inside a large array (inline)."""
    g = np.random.default_rng(0)
    traj = np.round(g.normal(size=(60, 100, 2)), 3)
    with_nan = g.normal(size=(100, 120))
    with_nan[3, 4] = math.nan
    return Result(
        "demo",
        {"a": 1},
        metrics={"acc": 99.5},
        series={
            "loss": g.random(20_000).tolist(),  # 1-D: stays inline (contract curves)
            "key_trajectory": traj.tolist(),
            "counts": g.integers(-(2**40), 2**40, size=(100, 101)).tolist(),
            "ragged": [[1.0, 2.0], [3.0]],
            "mixed": [[1, 2.5]] * 6000,  # ints and floats: the JSON keeps the types
            "with_nan": with_nan,
            "small": [[0.1, 0.2], [0.3, 0.4]],
        },
        provenance={"seed": 0},
    )


def test_sidecar_round_trip_is_exact(tmp_path):
    r = _big_result()
    expected = json.loads(json.dumps(r.to_dict()))  # what an all-inline file would give
    path = r.save(tmp_path)
    d = json.loads(path.read_text())
    assert set(d) == {"experiment", "config", "metrics", "series", "provenance"}
    refs = {k for k, v in d["series"].items() if isinstance(v, dict)}
    assert refs == {"key_trajectory", "counts"}
    assert d["series"]["key_trajectory"]["shape"] == [60, 100, 2]
    assert isinstance(d["series"]["loss"], list) and len(d["series"]["loss"]) == 20_000
    digest = hashlib.sha256((tmp_path / "series.npz").read_bytes()).hexdigest()
    assert d["provenance"]["outputs"]["series.npz"] == digest
    back = Result.load(tmp_path)
    assert back.series == expected["series"]  # same values and the same Python types
    assert all(type(x) is int for x in back.series["counts"][7])
    assert back.series["with_nan"][3][4] is None
    assert back.provenance == {**expected["provenance"], "outputs": {"series.npz": digest}}
    assert (back.config, back.metrics) == (expected["config"], expected["metrics"])
    with np.load(tmp_path / "series.npz", allow_pickle=False) as npz:  # plain arrays
        assert sorted(npz.files) == ["s0", "s1"]


def test_sidecar_replaced_or_missing_is_a_one_line_error(tmp_path):
    from kvmem.errors import ResultFileError
    from kvmem.experiments.runner import outputs_complete

    r = _big_result()
    r.save(tmp_path)
    assert outputs_complete(tmp_path)
    side = tmp_path / "series.npz"
    good = side.read_bytes()
    other = _big_result()
    other.series["key_trajectory"][0][0][0] += 1.0
    other.save(tmp_path / "elsewhere")
    side.write_bytes((tmp_path / "elsewhere" / "series.npz").read_bytes())
    assert not outputs_complete(tmp_path)
    with pytest.raises(ResultFileError, match="does not match result.json"):
        Result.load(tmp_path)
    side.unlink()
    with pytest.raises(ResultFileError, match="missing"):
        Result.load(tmp_path)
    side.write_bytes(good)
    assert Result.load(tmp_path).series["key_trajectory"] == r.series["key_trajectory"]


def test_stale_sidecar_is_removed(tmp_path):
    _big_result().save(tmp_path)
    assert (tmp_path / "series.npz").exists()
    small = Result("demo", {}, series={"x": [1.0, 2.0]})
    small.save(tmp_path)
    assert not (tmp_path / "series.npz").exists()
    assert Result.load(tmp_path).series == {"x": [1.0, 2.0]}
    _big_result().save(tmp_path / "other.json")  # another name: its own sidecar
    assert (tmp_path / "other.series.npz").exists()
    assert (
        Result.load(tmp_path / "other.json").series["counts"][0][0]
        == (_big_result().series["counts"][0][0])
    )


def test_json_text_is_strict_and_compact():
    r = _big_result()
    text = r.to_json()
    assert json.loads(text) == json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert "NaN" not in text
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    # one line per series, indented sections for people
    assert sum(line.startswith('  "loss": [') for line in lines) == 1
    assert ' "metrics": {' in lines and '  "acc": 99.5' in lines
    empty = Result("demo", {}).to_json()
    assert json.loads(empty)["series"] == {}


def test_sidecar_bytes_are_reproducible(tmp_path, monkeypatch):
    import time

    _big_result().save(tmp_path / "a")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 86400 * 400)  # another day and year
    _big_result().save(tmp_path / "b")
    a, b = (tmp_path / d / "series.npz" for d in "ab")
    assert a.read_bytes() == b.read_bytes()
