"""Grid parsing and cells: typed values, one-line errors, stable config hashes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmem import experiments
from kvmem.cli import main
from kvmem.errors import ConfigError
from kvmem.sweep.grid import config_hash, make_cells, parse_grid


def test_values_are_parsed_to_the_field_types(fake):
    module = experiments.get(fake.name)
    grid = parse_grid(module, ["x=1,2.5", "mode=ok,fail", "sizes=(1,2),[3, 4, 5]"])
    assert grid == {"x": [1.0, 2.5], "mode": ["ok", "fail"], "sizes": [(1, 2), (3, 4, 5)]}
    assert all(isinstance(v, float) for v in grid["x"])


def test_cells_are_the_cross_product_times_seeds(fake):
    module = experiments.get(fake.name)
    grid = parse_grid(module, ["x=1,2,3", "mode=ok,fail"])
    cells = make_cells(fake.name, module, grid, seeds=2, sets=["seed=10"])
    assert len(cells) == 3 * 2 * 2
    assert len({c.id for c in cells}) == len(cells)
    # grid-major, then seed; seeds start at the --set seed
    assert [(c.grid["x"], c.grid["mode"], c.seed) for c in cells[:4]] == [
        (1.0, "ok", 10),
        (1.0, "ok", 11),
        (1.0, "fail", 10),
        (1.0, "fail", 11),
    ]
    # the same sweep gives the same hashes (the folders a rerun looks in)
    again = make_cells(fake.name, module, parse_grid(module, ["x=1,2,3", "mode=ok,fail"]), seeds=2)
    assert [c.id for c in again] != [c.id for c in cells]  # other seeds, other cells
    same = make_cells(fake.name, module, grid, seeds=2, sets=["seed=10"])
    assert [c.id for c in same] == [c.id for c in cells]


@settings(max_examples=25, deadline=None)
@given(x=st.floats(0, 1e6, allow_nan=False), seed=st.integers(0, 2**63 - 1))
def test_hash_is_a_function_of_the_config_alone(x, seed):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class C:
        seed: int = 0
        x: float = 0.0

    h = config_hash("e", C(seed, x))
    assert h == config_hash("e", C(seed=seed, x=x))
    assert len(h) == 16 and int(h, 16) >= 0
    assert h != config_hash("other", C(seed, x))
    assert h != config_hash("e", C(seed, x + 1.0 if x < 1e6 else x - 1.0))


@pytest.mark.parametrize(
    "specs, sets, fragment",
    [
        (["nope=1,2"], [], "unknown config field 'nope'"),
        (["x=1,big"], [], "bad value 'big' for x"),
        (["mode=ok,maybe"], [], "bad value 'maybe' for mode"),
        (["x="], [], "--grid x: expected at least one value"),
        (["x=,,"], [], "--grid x: expected at least one value"),
        (["x"], [], "--grid expects KEY=V1,V2"),
        (["x=1,1.0"], [], "repeated value"),
        (["x=1", "x=2"], [], "given twice"),
        (["seed=1,2"], [], "use --seeds N"),
        (["x=1,-1"], [], "x: expected a value >= 0"),  # the Config's own check, up front
        (["x=1,2"], ["x=3"], "--set x and --grid x"),
    ],
)
def test_bad_grids_are_one_line_config_errors(fake, specs, sets, fragment):
    module = experiments.get(fake.name)
    with pytest.raises(ConfigError) as info:
        make_cells(fake.name, module, parse_grid(module, specs), sets=sets)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--grid", "nope=1,2"], "unknown config field 'nope'"),
        (["--grid", "x=1,big"], "bad value 'big' for x"),
        (["--grid", "x="], "expected at least one value"),
        ([], "needs at least one --grid"),
        (["--grid", "x=1", "--backend", "slurm"], "invalid choice"),
        (["--grid", "x=1", "--seeds", "0"], "--seeds"),
        (["--grid", "x=1", "--workers", "two"], "--workers"),
        (["--grid", "x=1", "--address", "10.0.0.1:6379"], "only for --backend ray"),
        (["--grid", "x=1", "--out", ""], "--out"),
    ],
)
def test_cli_bad_input_is_exit_2_one_line_nothing_run(fake, tmp_path, capsys, args, fragment):
    out = tmp_path / "sw"
    argv = ["sweep", fake.name, *args]
    if "--out" not in args:
        argv += ["--out", str(out)]
    code = _exit_code(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert fake.runs() == []
    assert not (out / "cells").exists()


def _exit_code(argv: list[str]) -> int:
    """``main(argv)``, with argparse's usage errors (``SystemExit``) as exit codes."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def test_cli_subprocess_unknown_key_is_exit_2_without_traceback(tmp_path):
    name = experiments.names()[0]
    proc = subprocess.run(
        [sys.executable, "-m", "kvmem.cli", "sweep", name, "--grid", "no_such_field=1,2"]
        + ["--out", str(tmp_path / "sw")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "unknown config field 'no_such_field'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sw" / "cells").exists()
