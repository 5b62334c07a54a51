"""Tests for the capacity experiment (SCIENCE.md 4 item 1)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from matplotlib.figure import Figure

from kvmem.experiments.base import ConfigError, config_from_dict, parse_overrides
from kvmem.experiments.capacity import capacity as C


def _expected_random_capacity(n: int, slots: int, p: float, lost_score: float) -> int:
    """Analytic capacity of random slot selection (module docstring): an item followed by
    m others still owns a slot with probability 1 - (1 - p (1 - p)^m)^S; a lost item
    scores ``lost_score``; capacity = last load whose mean accuracy is >= 0.98."""
    cap = 0
    for load in range(1, 2 * n + 1):
        m = torch.arange(load, dtype=torch.float64)
        kept = (1 - (1 - p * (1 - p) ** m) ** slots).mean()
        if kept + (1 - kept) * lost_score < 0.98:
            break
        cap = load
    return cap


def test_default_loads_grid() -> None:
    loads = C.default_loads(40)
    assert len(loads) == 40
    assert loads[:20] == tuple(range(1, 21))
    assert 40 in loads and loads[-1] == 80 and 41 not in loads
    assert list(loads) == sorted(set(loads))
    assert C.default_loads(20)[-1] == 40 and C.default_loads(80)[-1] == 160


def test_blocks_cover_every_load_with_enough_items() -> None:
    loads = (1, 3, 8, 9, 40, 80)
    blocks = C._blocks(loads, n_seeds=20, items_per_load=800, max_queries=32)
    per_load = {p: 0 for p in loads}
    for b in blocks:
        assert b.pad >= 8 and bool((b.load <= b.pad).all())
        for p in b.load.tolist():
            per_load[p] += 1
    assert per_load == {1: 800, 3: 267, 8: 100, 9: 89, 40: 25, 80: 25}


def test_hopfield_capacity_in_band() -> None:
    res = C.run(C.Config(models=("hopfield",), loads=tuple(range(1, 11)), items_per_load=400))
    cap = res.metrics["capacity_hopfield"]
    assert 0.10 <= cap <= 0.20  # published ~0.14 N
    assert 0.10 <= res.metrics["capacity_interp_hopfield"] <= 0.16
    acc = res.series["accuracy_hopfield"]
    assert acc[0] == 100.0 and acc[-1] < 90.0  # the cliff lies inside the grid


def test_kv_sequential_perfect_up_to_n_slots() -> None:
    loads = (10, 30, 38, 40, 44, 48)
    res = C.run(C.Config(models=("kv_sequential",), loads=loads))
    assert res.metrics["capacity_kv_sequential"] == pytest.approx(1.0)
    acc = dict(zip(loads, res.series["accuracy_kv_sequential"], strict=True))
    assert all(acc[p] > 99.9 for p in (10, 30, 38, 40))  # a rare 16-bit tie may blur a bit
    # graceful overwrite past S = N: about (P - N) / P items lost, each scoring ~0.5-0.6
    assert 100 * (40 / 48 + 0.5 * 8 / 48) - 1 < acc[48] < 100 * (40 / 48 + 0.65 * 8 / 48)


def test_kv_random_matches_last_writer_analysis() -> None:
    """p = 0.1, S = N = 40: a lost item reads a blend of the others and scores 0.5 (empty
    memory) to ~0.58 (measured at load 12), so the analytic capacity is 5-6 items
    (0.125-0.15 N); the published value is ~0.16 N."""
    low = _expected_random_capacity(40, 40, 0.1, 0.5)
    high = _expected_random_capacity(40, 40, 0.1, 0.6)
    assert (low, high) == (5, 6)
    res = C.run(C.Config(models=("kv_random",), loads=tuple(range(1, 13)), items_per_load=1600))
    cap_items = round(40 * res.metrics["capacity_kv_random"])
    assert low - 1 <= cap_items <= high + 1
    assert 0.10 <= res.metrics["capacity_kv_random"] <= 0.20
    # the whole curve follows the analysis
    for load, acc in zip(range(1, 13), res.series["accuracy_kv_random"], strict=True):
        m = torch.arange(load, dtype=torch.float64)
        kept = float((1 - (1 - 0.1 * 0.9**m) ** 40).mean())
        assert 100 * (kept + 0.5 * (1 - kept)) - 1.0 < acc < 100 * (kept + 0.6 * (1 - kept)) + 1.0


def test_kv_random_4_over_n_differs_at_other_sizes() -> None:
    cfg = C.Config(n_units=20, models=("kv_random", "kv_random_4_over_n"), loads=(1, 2, 3, 4))
    res = C.run(cfg)
    # p = 0.1 with only 20 slots: 12 % of items get no slot; p = 0.2 keeps more at load 1
    assert res.series["accuracy_kv_random_4_over_n"][0] > res.series["accuracy_kv_random"][0]


def test_quick_run_all_models_and_figure() -> None:
    cfg = C.quick(C.Config())
    res = C.run(cfg)
    for m in C.MODELS:
        for key in ("capacity", "capacity_interp", "capacity_std", "capacity_chance_corrected"):
            assert math.isfinite(res.metrics[f"{key}_{m}"])
        for key in ("accuracy", "accuracy_std", "accuracy_chance_corrected"):
            assert len(res.series[f"{key}_{m}"]) == len(res.series["load"])
    assert res.series["accuracy_cue"] == pytest.approx([70.0] * len(res.series["load"]))
    # modern Hopfield never fails on the grid: censored at 2 N
    assert res.metrics["capacity_modern_hopfield"] == 2.0
    assert res.metrics["max_load"] == 2.0
    # chance correction: the cue itself scores 0, perfect recall 100
    assert res.series["accuracy_chance_corrected_modern_hopfield"][0] == pytest.approx(100.0)
    res.config = {"n_units": 40, "criterion": 0.98}
    json.loads(res.to_json())
    fig = C.plot(res)
    assert isinstance(fig, Figure) and len(fig.axes) == 3


def test_seed_reproducible() -> None:
    cfg = C.Config(models=("kv_random",), loads=(2, 6), n_seeds=3, items_per_load=30)
    a, b = C.run(cfg), C.run(cfg)
    assert a.series == b.series
    c = C.run(C.Config(**{**cfg.__dict__, "seed": 1}))
    assert c.series["accuracy_kv_random"] != a.series["accuracy_kv_random"]


def test_config_validation_and_overrides() -> None:
    with pytest.raises(ValueError, match="models"):
        C.Config(models=("hopfield", "nope"))
    with pytest.raises(ValueError, match="mask_frac"):
        C.Config(mask_frac=1.0)
    vals = parse_overrides(C.Config, ["models=hopfield,kv_sequential", "n_units=20"])
    cfg = config_from_dict(C.Config, vals)
    assert cfg.models == ("hopfield", "kv_sequential") and cfg.n_units == 20
    with pytest.raises(ConfigError):
        config_from_dict(C.Config, {"hopfield_dynamics": "random"})
