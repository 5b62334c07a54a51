"""Every experiment estimates its peak memory, and a too-big config is refused before work.

``kvmem.experiments.base.check_memory`` (called by the runner before any computation)
sums an experiment's ``estimate_bytes(config)`` and, when that exceeds the machine's free
memory, raises a one-line ``ConfigError`` naming the field that drives the excess. These
tests check, for every registered experiment and without running one: that the estimate
exists, that the default protocol's is positive and modest, that shrinking to ``quick``
does not raise it, and that blowing up each of its size fields is refused naming exactly
that field (issue 14).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from kvmem import experiments
from kvmem.errors import ConfigError
from kvmem.experiments import base

HUGE = 10**9

#: Per experiment, size fields that drive its memory and a huge (valid) value for each;
#: the first is its largest size field, the one the CLI test blows up.
SIZE_FIELDS: dict[str, dict[str, object]] = {
    "kv-optimization": {"memories_per_class": HUGE},
    "forgetting": {"hidden": HUGE // 10},
    "capacity": {"n_seeds": HUGE},
    "scaffold-capacity": {"n_runs": HUGE, "n_features": HUGE},
    "robustness": {"n_trials": HUGE, "n_memories": HUGE, "dim": HUGE},
    "generalization": {"n_trials": HUGE, "n_queries": HUGE, "n_keys": HUGE},
    "keys-vs-values": {"n_seeds": HUGE, "expansion_units": HUGE},
    "ab-ac": {"n_subjects": HUGE, "n_pairs": HUGE, "d_stimulus": HUGE, "max_ab_trials": HUGE},
    "cued-recall": {"n_subjects": HUGE, "dim": HUGE, "n_category_samples": HUGE},
    "metamemory": {"n_subjects": HUGE, "n_pairs": HUGE, "n_prior": HUGE, "dim": HUGE},
    "accessibility-precision": {
        "n_subjects": HUGE,
        "items_per_delay": HUGE,
        "interfering_per_day": HUGE,
        "d_word": HUGE,
    },
    "engram-reactivation": {"n_animals": HUGE, "n_memories": HUGE, "n_trials": HUGE},
    "consolidation": {"n_subjects": HUGE, "n_slots": HUGE, "n_units": HUGE},
    "repulsion": {"n_seeds": HUGE, "n_pairs": HUGE, "d_key": HUGE},
    "free-recall": {"n_seeds": HUGE, "n_lists": HUGE},
    "value-cleanup": {"n_seeds": HUGE, "d_value": HUGE, "kwta_units": HUGE},
    "episode-vs-gist": {"n_seeds": HUGE, "n_families": HUGE, "n_new": HUGE},
    "mqar": {"n_test": HUGE, "pairs_per_batch": HUGE, "widths": (HUGE,)},
}

#: Other fields a size field needs to matter (kwta_units sizes only the expansion keys).
CONTEXT: dict[tuple[str, str], dict[str, object]] = {
    ("value-cleanup", "kwta_units"): {"keys": "expansion_kwta"},
}

GIB = 2**30


def _field_params() -> list:
    return [
        pytest.param(name, field, value, id=f"{name}-{field}")
        for name in experiments.names()
        for field, value in SIZE_FIELDS[name].items()
    ]


@pytest.fixture
def machine_with_64_gib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the refusal independent of how much memory this machine has free now."""
    monkeypatch.setattr(base, "available_memory", lambda: 64 * GIB)


def test_every_experiment_is_listed_here() -> None:
    assert set(SIZE_FIELDS) == set(experiments.names())


@pytest.mark.parametrize("name", experiments.names())
def test_defines_estimate_bytes(name: str) -> None:
    assert callable(getattr(experiments.get(name), "estimate_bytes", None))


@pytest.mark.parametrize("name", experiments.names())
def test_default_estimate_is_positive_and_modest(name: str) -> None:
    module = experiments.get(name)
    config = module.Config()
    parts = module.estimate_bytes(config)
    assert parts and all(isinstance(v, int) and v >= 0 for v in parts.values())
    assert set(parts) <= {f.name for f in dataclasses.fields(config)}  # keyed by fields
    total = sum(parts.values())
    assert 0 < total < 8 * GIB
    # the quick protocol is a shrunk one: it cannot need more memory than the default
    assert 0 < sum(module.estimate_bytes(module.quick(config)).values()) <= total


@pytest.mark.parametrize(("name", "field", "value"), _field_params())
def test_huge_field_is_refused_naming_it(
    name: str, field: str, value: object, machine_with_64_gib: None, monkeypatch
) -> None:
    module = experiments.get(name)
    overrides = {**CONTEXT.get((name, field), {}), field: value}
    config = dataclasses.replace(module.Config(), **overrides)
    monkeypatch.setattr(module, "run", lambda *a, **k: pytest.fail("ran the experiment"))
    with pytest.raises(ConfigError) as err:
        base.check_memory(module, config)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{field}=")
    assert "GiB" in message


@pytest.mark.parametrize(("name", "field"), [("ab-ac", "n_subjects"), ("robustness", "n_trials")])
def test_cli_refuses_a_huge_field_in_one_line(name: str, field: str, tmp_path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "kvmem.cli", "run", name, "--set", f"{field}={HUGE}"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{field}={HUGE}" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "result.json").exists()
