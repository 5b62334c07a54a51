"""The Ray backend against the local pool: a real local Ray with 2 CPUs, the same table."""

from __future__ import annotations

import builtins
import json

import pytest

from kvmem.errors import ConfigError
from kvmem.sweep import run_sweep
from kvmem.sweep.backends import RAY_MISSING

# a real experiment (torch, seeded) rather than the fake: the cells of both backends must
# agree to the last digit, which is the reproducibility a cluster sweep relies on
EXPERIMENT = "ab-ac"
GRID = ["beta=6"]


def test_local_and_ray_give_identical_tables(tmp_path):
    ray = pytest.importorskip("ray")
    local = tmp_path / "local"
    remote = tmp_path / "ray"
    m_local = run_sweep(EXPERIMENT, GRID, local, seeds=2, quick=True, workers=2)
    assert not ray.is_initialized()
    m_ray = run_sweep(EXPERIMENT, GRID, remote, seeds=2, quick=True, backend="ray", workers=2)
    assert not ray.is_initialized()  # the Ray it started is shut down again
    for m in (m_local, m_ray):
        assert m["counts"] == {"done": 2, "failed": 0, "pending": 0}, m["cells"]
    assert [c["id"] for c in m_local["cells"]] == [c["id"] for c in m_ray["cells"]]
    table = (local / "metrics.csv").read_text()
    assert table == (remote / "metrics.csv").read_text()
    assert len(table.splitlines()) > 2 * 5  # every cell contributed its metrics
    # the two seeds are different runs, not one run twice
    metrics = [
        json.loads((local / "cells" / c["id"] / "result.json").read_text())["metrics"]
        for c in m_local["cells"]
    ]
    assert metrics[0] != metrics[1]


def test_missing_ray_is_a_one_line_error(tmp_path, monkeypatch, fake):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError) as info:
        run_sweep(fake.name, ["x=1"], tmp_path / "sw", backend="ray")
    assert str(info.value) == RAY_MISSING
    assert fake.runs() == []
