"""A catalogue of bad input, at the command line and in the API (issue 14).

Every case must end in a one-line error that names the problem: exit code 2 and no
traceback at the command line, a one-line ``ValueError`` (or ``TypeError`` for a wrong
kind of object) in the API, and no output left behind in the working folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import kvmem
from kvmem import experiments
from kvmem.cli import main
from kvmem.core.hopfield import ClassicalHopfield
from kvmem.core.matrix_memory import MatrixMemory
from kvmem.core.modern_hopfield import ModernHopfield
from kvmem.core.slot_memory import SlotMemory
from kvmem.results import Result

# --------------------------------------------------------------------------- the CLI

# (arguments, fragment the one-line message must contain); {file} is a plain file and
# {dir} an empty folder in the test's working folder, {bad:NAME} a bad result file
CLI_CASES: list[tuple[list[str], str]] = [
    ([], "command"),
    (["frobnicate"], "frobnicate"),
    (["run"], "name"),
    (["run", "no-such-experiment"], "unknown experiment"),
    (["show", "no-such-experiment"], "unknown experiment"),
    (["run", "generalization", "--set", "nokey=1"], "nokey"),
    (["run", "generalization", "--set", "n_trials"], "n_trials"),
    (["run", "generalization", "--set", "=3"], "unknown config field"),
    (["run", "generalization", "--set", "n_trials=abc"], "n_trials"),
    (["run", "generalization", "--set", "n_trials=1.5"], "n_trials"),
    (["run", "generalization", "--set", "n_trials=0"], "n_trials"),
    (["run", "generalization", "--set", "n_trials=-3"], "n_trials"),
    (["run", "generalization", "--set", "n_trials=99999999999999999999999"], "n_trials"),
    (["run", "generalization", "--set", "seed=nan"], "seed"),
    (["run", "generalization", "--seed", "abc"], "--seed"),
    (["run", "generalization", "--seed", "99999999999999999999999"], "--seed"),
    (["run", "generalization", "--seed", "-1"], "seed"),
    (["run", "generalization", "--out", ""], "--out"),
    (["run", "generalization", "--out", "{file}"], "not a folder"),
    (["run", "generalization", "--bogus-flag"], "--bogus-flag"),
    (["run", "forgetting", "--set", "hidden=100000000"], "hidden"),
    (["run", "capacity", "--set", "n_seeds=1000000000"], "n_seeds"),
    (["reproduce", "--out", "{file}"], "not a folder"),
    (["reproduce", "--out", ""], "--out"),
    (["plot", "missing.json"], "no such file"),
    (["plot", "{dir}"], "result.json"),
    (["plot", "{bad:truncated}"], "not valid JSON"),
    (["plot", "{bad:binary}"], "binary"),
    (["plot", "{bad:list}"], "JSON list"),
    (["plot", "{bad:noseries}"], "series"),
    (["plot", "{bad:emptyseries}"], "series"),
    (["plot", "{bad:unknown}"], "unknown experiment"),
    (["plot", "{bad:badconfig}"], "config"),
    (["sweep", "no-such-experiment", "--grid", "seed=1,2"], "unknown experiment"),
    (["sweep", "generalization", "--grid", "nokey=1,2"], "nokey"),
    (["sweep", "generalization", "--grid", "n_trials="], "n_trials"),
    (["sweep", "generalization", "--grid", "n_trials=a,b"], "n_trials"),
    (["sweep", "generalization", "--grid", "n_trials"], "n_trials"),
    (["sweep", "generalization", "--grid", "n_trials=1", "--backend", "spark"], "spark"),
    (["sweep", "generalization", "--grid", "n_trials=1", "--seeds", "0"], "--seeds"),
    (["sweep", "generalization", "--grid", "n_trials=1", "--workers", "0"], "--workers"),
    (["sweep", "generalization", "--grid", "n_trials=1", "--out", "{file}"], "not a folder"),
]
# every registered experiment refuses an unknown field and an ill-typed seed, before work
for _name in experiments.names():
    CLI_CASES.append((["run", _name, "--set", "not_a_field=1"], "not_a_field"))
    CLI_CASES.append((["run", _name, "--set", "seed=x"], "seed"))

_BAD_RESULTS = {
    "truncated": '{"experiment": "generalization", ',
    "binary": b"\x89PNG\x00\xff\xfe",
    "list": "[1, 2]",
    "noseries": '{"experiment": "generalization", "config": {}, "metrics": {}}',
    "emptyseries": '{"experiment": "generalization", "config": {}, "metrics": {}, "series": {}}',
    "unknown": '{"experiment": "nope", "config": {}, "metrics": {}, "series": {"x": [1]}}',
    "badconfig": '{"experiment": "generalization", "config": [], "metrics": {}, "series": {}}',
}


def _materialise(args: list[str], root: Path) -> list[str]:
    out = []
    for a in args:
        if a == "{file}":
            (root / "a_file.txt").write_text("x")
            a = str(root / "a_file.txt")
        elif a == "{dir}":
            (root / "empty").mkdir(exist_ok=True)
            a = str(root / "empty")
        elif a.startswith("{bad:"):
            kind = a[5:-1]
            path = root / f"{kind}.json"
            blob = _BAD_RESULTS[kind]
            path.write_bytes(blob) if isinstance(blob, bytes) else path.write_text(blob)
            a = str(path)
        out.append(a)
    return out


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "args, fragment", CLI_CASES, ids=[" ".join(a) or "(none)" for a, _ in CLI_CASES]
)
def test_cli_bad_input(args, fragment, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _materialise(args, tmp_path)
    before = _tree(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit through _Parser.error
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, captured.out, err)
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("kvmem: error:"), err
    assert fragment in err, err
    # nothing written: no results/ folder, no half-made output
    assert _tree(tmp_path) == before, _tree(tmp_path) - before


# --------------------------------------------------------------------------- the API


def _slot() -> SlotMemory:
    mem = SlotMemory()
    mem.write(torch.eye(4), torch.ones(4, 2))
    return mem


def _matrix() -> MatrixMemory:
    mem = MatrixMemory(4, 2)
    mem.write(torch.eye(4), torch.ones(4, 2))
    return mem


API_CASES = [
    ("SlotMemory beta<0", lambda: SlotMemory(beta=-1.0), "beta"),
    ("SlotMemory beta nan", lambda: SlotMemory(beta=float("nan")), "beta"),
    ("SlotMemory separation", lambda: SlotMemory(separation="nope"), "nope"),
    ("SlotMemory similarity", lambda: SlotMemory(similarity="nope"), "nope"),
    ("SlotMemory top_k k=0", lambda: SlotMemory(separation="top_k", k=0), "k"),
    ("SlotMemory k without top_k", lambda: SlotMemory(separation="softmax", k=3), "k"),
    ("SlotMemory write 1-d", lambda: SlotMemory().write(torch.ones(4), torch.ones(4)), "keys"),
    (
        "SlotMemory write count mismatch",
        lambda: SlotMemory().write(torch.ones(4, 3), torch.ones(5, 2)),
        "values",
    ),
    (
        "SlotMemory write nan",
        lambda: SlotMemory().write(torch.full((2, 3), float("nan")), torch.ones(2, 2)),
        "keys",
    ),
    ("SlotMemory write text", lambda: SlotMemory().write("abc", torch.ones(2, 2)), "keys"),
    ("SlotMemory read width", lambda: _slot().read(torch.ones(1, 5)), "5"),
    ("SlotMemory read empty", lambda: SlotMemory().read(torch.ones(1, 4)), "empty"),
    ("SlotMemory read inf", lambda: _slot().read(torch.full((1, 4), float("inf"))), "quer"),
    ("MatrixMemory rule", lambda: MatrixMemory(4, 2, rule="nope"), "nope"),
    ("MatrixMemory d_k", lambda: MatrixMemory(0, 2), "d_k"),
    ("MatrixMemory lr", lambda: MatrixMemory(4, 2, lr=float("inf")), "lr"),
    ("MatrixMemory decay", lambda: MatrixMemory(4, 2, decay=2.0), "decay"),
    ("MatrixMemory read width", lambda: _matrix().read(torch.ones(1, 7)), "7"),
    (
        "MatrixMemory write mismatch",
        lambda: MatrixMemory(4, 2).write(torch.ones(3, 4), torch.ones(2, 2)),
        "values",
    ),
    ("ModernHopfield beta", lambda: ModernHopfield(beta=0.0), "beta"),
    ("ModernHopfield steps", lambda: ModernHopfield(max_steps=0), "max_steps"),
    ("ClassicalHopfield dynamics", lambda: ClassicalHopfield(dynamics="sideways"), "sideways"),
    ("ClassicalHopfield n_units", lambda: ClassicalHopfield(n_units=0), "n_units"),
    ("load missing", lambda: kvmem.load("does-not-exist.safetensors"), "does not exist"),
    ("load directory", lambda: kvmem.load("."), "directory"),
    ("save object", lambda: kvmem.save(object(), "x.safetensors"), "object"),
    ("Result.load list", lambda: Result.load(_write("r.json", "[1]")), "JSON list"),
    ("Result.load text", lambda: Result.load(_write("r.json", "hello")), "JSON"),
    ("experiment Config", lambda: experiments.get("generalization").Config(n_trials=0), "n_trials"),
    ("unknown experiment", lambda: experiments.get("nope"), "unknown experiment"),
]


def _write(name: str, text: str) -> Path:
    Path(name).write_text(text)
    return Path(name)


@pytest.mark.parametrize("what, call, fragment", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(what, call, fragment, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    assert fragment in message, message
    after = {p for p in _tree(tmp_path) - before if not p.endswith(".json")}
    assert not after, after


def test_the_catalogue_is_large_enough() -> None:
    assert len(CLI_CASES) + len(API_CASES) >= 60
    assert os.environ.get("KVMEM_NO_SUCH_VAR") is None  # the catalogue needs no setup
    json.dumps([a for a, _ in CLI_CASES])
