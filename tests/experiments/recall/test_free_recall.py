"""Tests for the free-recall experiment (TCM fitted to Murdock 1962)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from kvmem.data.free_recall import recalls_to_table
from kvmem.experiments.base import check_claims
from kvmem.experiments.recall import free_recall as F


@pytest.fixture(scope="module")
def result() -> F.Result:
    return F.run(F.Config())


def test_contract_and_data_summary(result) -> None:
    s, m = result.series, result.metrics
    assert s["serial_position"] == list(range(1, 21)) and s["lag"] == list(range(-5, 6))
    for k in ("spc", "pfr", "lag_crp"):
        assert len(s[f"{k}_model"]) == len(s[f"{k}_data"]) == len(s[f"{k}_model_ci"])
    # the data's published psifr summary
    assert np.allclose(s["spc_data"][:3], [0.461, 0.275, 0.197], atol=5e-4)
    assert np.allclose(s["spc_data"][-3:], [0.718, 0.822, 0.950], atol=5e-4)
    assert m["lag_crp_data_plus1"] == pytest.approx(0.444, abs=5e-4)
    assert m["lag_crp_data_minus1"] == pytest.approx(0.145, abs=5e-4)
    assert m["rmse_spc"] < 0.1 and m["rmse_lag_crp"] < 0.1
    json.loads(result.to_json())
    assert isinstance(F.plot(result), Figure) and len(F.plot(result).axes) == 3


def test_claims_hold(result) -> None:
    held = check_claims(F, result)
    assert held and all(h is True for _, h in held), held


def test_psifr_recovers_known_curves() -> None:
    # every list recalls positions 3, 4, 5 then 1, in that order: SPC, PFR and CRP known
    rec = np.tile(np.array([[2, 3, 4, 0, -1, -1]]), (10, 1))
    c = F.psifr_curves(recalls_to_table(rec), 6)
    assert np.allclose(c["spc"][0], [1, 0, 1, 1, 1, 0])
    assert np.allclose(c["pfr"][0], [0, 0, 1, 0, 0, 0])
    crp = dict(zip(F.LAGS, c["lag_crp"][0], strict=True))
    # transitions 3->4 (+1, of +1,+2,+3,-1,-2 possible), 4->5 (+1), 5->1 (-4)
    # +1 was possible at all three transitions (from 5: to 6), taken twice
    assert crp[1] == pytest.approx(2 / 3) and crp[-4] == pytest.approx(1.0)
    assert crp[-1] == pytest.approx(0.0) and crp[2] == pytest.approx(0.0)


def test_other_list_length_is_prediction_and_quick() -> None:
    r = F.run(F.quick(F.Config(list_length=40)))
    assert len(r.series["spc_model"]) == 40 and r.series["spc_data"] == []
    assert "rmse_spc" not in r.metrics
    assert isinstance(F.plot(r), Figure)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="list_length"):
        F.Config(list_length=25)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_seeds"):
        F.Config(n_seeds=0)
