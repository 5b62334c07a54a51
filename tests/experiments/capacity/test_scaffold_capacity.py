"""The memory continuum (scaffold-capacity): fixed scaffolds against the Hopfield cliff."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from kvmem.experiments.base import check_claims
from kvmem.experiments.capacity import scaffold_capacity as S


@pytest.fixture(scope="module")
def result():
    return S.run(S.Config())


def test_contract_series(result) -> None:
    s = result.series
    assert s["K"] == list(S.DEFAULT_LOADS)
    for m in S.MODELS:
        for key in ("error", "overlap", "mi_per_bit"):
            assert len(s[f"{key}_{m}"]) == len(s["K"])
            assert len(s[f"{key}_{m}_ci"]) == len(s["K"])
        for e, o, mi in zip(s[f"error_{m}"], s[f"overlap_{m}"], s[f"mi_per_bit_{m}"], strict=True):
            assert 0.0 <= e <= 0.5 and o == pytest.approx(1 - 2 * e) and 0.0 <= mi <= 1.0


def test_published_transitions(result) -> None:
    m = result.metrics
    assert m["capacity_pinv_hopfield"] == 707  # exact to N - 1, N = 708
    assert m["capacity_mesh"] == 300  # N_H
    assert m["capacity_vectorhash"] == 400  # N_h
    for key, (value, _source, tol) in S.PUBLISHED.items():
        assert abs(m[key] - value) <= tol, key
    assert m["n_runs_mesh"] == 20 and m["n_label_states"] == 816
    # a similar number of synapses for MESH and the N = 708 Hopfield nets (issue)
    assert abs(m["n_synapses_mesh"] / m["n_synapses_hopfield"] - 1) < 0.01


def test_cliff_versus_continuum(result) -> None:
    s, m = result.series, result.metrics
    ks = s["K"]
    pinv = dict(zip(ks, s["error_pinv_hopfield"], strict=True))
    assert pinv[707] == 0.0 and pinv[708] == 0.5
    # the scaffolds' curves rise monotonically (within noise) and without a step
    for name in ("mesh", "vectorhash"):
        e = s[f"error_{name}"]
        assert all(b >= a - 2e-3 for a, b in zip(e, e[1:], strict=False))
        assert m[f"max_error_step_{name}"] < 0.1
    # information per bit at twice the hidden-layer size: scaffold >> Hopfield
    mesh_600 = s["mi_per_bit_mesh"][ks.index(600)]
    assert mesh_600 > 3 * s["mi_per_bit_hopfield"][ks.index(600)]
    assert s["mi_per_bit_pinv_hopfield"][ks.index(800)] == 0.0


def test_every_claim_holds_on_the_default_protocol(result) -> None:
    claims = check_claims(S, result)
    assert claims and all(held for _, held in claims), claims


def test_quick_run_plot_and_claims() -> None:
    res = S.run(S.quick(S.Config()))
    assert isinstance(S.plot(res), Figure)
    assert all(held is not False for _, held in check_claims(S, res))


def test_exact_pseudo_inverse_rule_gives_the_same_curve() -> None:
    base = S.Config(models=("mesh",), loads=(100, 300, 350), n_runs=2, n_queries=60)
    online = S.run(base)
    exact = S.run(S.Config(**{**base.__dict__, "rule": "pinv"}))
    for a, b in zip(online.series["error_mesh"], exact.series["error_mesh"], strict=True):
        assert abs(a - b) < 1e-3


def test_binary_mi() -> None:
    import torch

    mi = S.binary_mi(torch.tensor([0.0, 0.11, 0.5]))
    assert mi[0] == 1.0 and mi[2] == 0.0 and abs(float(mi[1]) - 0.5) < 0.001


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="loads"):
        S.Config(loads=(10, 5))
    with pytest.raises(ValueError, match="models"):
        S.Config(models=("mesh", "sdm"))
    with pytest.raises(ValueError, match="co-prime"):
        S.Config(grid_periods=(2, 4))
    with pytest.raises(ValueError, match="mesh_k"):
        S.Config(mesh_k=18)


def test_models_side_by_side_give_the_serial_result() -> None:
    # each model grows on its own stream, so running them on a pool of threads (sized by
    # torch's thread count) must not change a bit; one tick per (model, load)
    import json

    import torch

    cfg = S.quick(S.Config())
    before = torch.get_num_threads()
    ticks: list[int] = []

    def progress(it, total=None, desc=None):
        for x in it:
            ticks.append(1)
            yield x

    try:
        torch.set_num_threads(1)
        serial = S.run(cfg)
        torch.set_num_threads(3)
        parallel = S.run(cfg, progress=progress)
    finally:
        torch.set_num_threads(before)

    def dump(r):
        return json.dumps([r.metrics, r.series], sort_keys=True, default=lambda t: t.tolist())

    assert dump(serial) == dump(parallel)
    assert len(ticks) == len(cfg.loads) * len(cfg.models)
