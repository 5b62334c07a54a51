"""Tests for the bundled Murdock (1962) data and its psifr conversions."""

from __future__ import annotations

import numpy as np
import pytest

import kvmem.data.free_recall as D
from kvmem.data.bundled import DataError


def test_load_and_checksum(tmp_path, monkeypatch) -> None:
    raw = D.load_murdock1962()
    assert list(raw.columns) == ["subject", "list", "trial_type", "position", "item"]
    assert raw["list"].nunique() == 1200 and raw["subject"].nunique() == 15
    assert (raw.trial_type == "study").sum() == 24000
    rec, subj = D.recall_matrix(raw, 20)
    assert rec.shape == (1200, 20) and subj.shape == (1200,)
    assert rec.max() == 19 and rec.min() == -1
    bad = tmp_path / "x.csv"
    bad.write_text("subject,list\n1,1\n")
    monkeypatch.setattr(D, "MURDOCK_FILE", bad)
    with pytest.raises(DataError, match="corrupt"):
        D.load_murdock1962()
    monkeypatch.setattr(D, "MURDOCK_FILE", tmp_path / "missing.csv")
    with pytest.raises(DataError, match="missing"):
        D.load_murdock1962()


def test_round_trip() -> None:
    rec = np.array([[2, 0, -1], [-1, -1, -1], [1, 2, 0]])
    table = D.recalls_to_table(rec, np.array([1, 1, 2]))
    back, subj = D.recall_matrix(table, 3)
    assert np.array_equal(back, rec) and list(subj) == [1, 1, 2]
