"""A tiny registered experiment for the sweep tests: instant, deterministic, can fail.

The module is written to a temporary folder put on ``sys.path`` (spawned workers inherit
the parent's ``sys.path``) and registered under ``fake-sweep``; the sweep ships the
registry entry to its workers. Each run appends ``x seed`` to the file named by
``KVMEM_FAKE_COUNTER``, so a test can count which cells were computed.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmem import experiments

FAKE_NAME = "fake-sweep"
FAKE_MODULE = "kvmem_fake_sweep_experiment"

FAKE_SOURCE = textwrap.dedent(
    '''
    """A fake experiment for the sweep tests: y = x**2 + seed / 100, z = x * sum(sizes)."""

    import os
    import time
    from dataclasses import dataclass, replace
    from typing import Literal

    from matplotlib.figure import Figure

    from kvmem.results import Result

    NAME = "fake-sweep"
    DESCRIPTION = "a fake experiment for the sweep tests"


    @dataclass(frozen=True)
    class Config:
        """``x`` the input, ``mode`` whether the run fails, ``delay`` seconds of sleep."""

        seed: int = 0
        x: float = 1.0
        mode: Literal["ok", "fail"] = "ok"
        sizes: tuple[int, ...] = (1, 2)
        delay: float = 0.0

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError(f"x: expected a value >= 0, got {self.x}")


    def quick(config):
        return replace(config, delay=0.0)


    def run(config, progress=None):
        counter = os.environ.get("KVMEM_FAKE_COUNTER")
        if counter:
            with open(counter, "a", encoding="utf-8") as f:
                f.write(f"{config.x} {config.seed}\\n")
        time.sleep(config.delay)
        if config.mode == "fail":
            raise RuntimeError(f"boom at x={config.x}")
        metrics = {
            "y": config.x**2 + config.seed / 100,
            "z": config.x * sum(config.sizes),
        }
        return Result(NAME, {}, metrics, {"x": [config.x]})


    def plot(result):
        fig = Figure()
        fig.add_subplot().plot(result.series["x"])
        return fig
    '''
)


@dataclass
class Fake:
    """The registered fake experiment: its name, folder and run counter."""

    name: str
    module: str
    folder: Path
    counter: Path

    def runs(self) -> list[tuple[float, int]]:
        """``(x, seed)`` of every run so far, in the order they started."""
        if not self.counter.exists():
            return []
        lines = self.counter.read_text(encoding="utf-8").split()
        return [(float(a), int(b)) for a, b in zip(lines[::2], lines[1::2], strict=True)]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    folder = tmp_path / "fake_pkg"
    folder.mkdir()
    (folder / f"{FAKE_MODULE}.py").write_text(FAKE_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(experiments.REGISTRY, FAKE_NAME, FAKE_MODULE)
    counter = tmp_path / "runs.txt"
    monkeypatch.setenv("KVMEM_FAKE_COUNTER", str(counter))
    return Fake(FAKE_NAME, FAKE_MODULE, folder, counter)
