"""python -m training.shortcuts: own columns vs aggregates on the prior's event tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import shortcuts


def test_column_sets_split_own_columns_from_aggregates():
    names = ["t1_num0", "t1_cat1", "COUNT(t3)", "MEAN(t3.t3_num0)", "t0.t0_num2"]
    sets = shortcuts.column_sets(names, own=["t1_num0", "t1_cat1", "t1_num9"])
    assert sets["own"].tolist() == [0, 1]
    assert sets["aggregates"].tolist() == [2, 3]
    assert sets["all"].tolist() == [0, 1, 2, 3, 4]


def test_cross_validated_auc_finds_signal_and_none_without_columns():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    assert shortcuts.cross_validated_auc(x, y, seed=0) > 0.9
    assert shortcuts.cross_validated_auc(x[:, 1:], y, seed=0) < 0.75
    assert shortcuts.cross_validated_auc(x[:, :0], y, seed=0) == 0.5


def test_both_contents_score_the_same_event_task():
    result = shortcuts.measure_database(0, 1, rows=80)  # a database with an event task
    assert result is not None and set(result) == set(shortcuts.VARIANTS)
    for scores in result.values():
        assert set(scores) == set(shortcuts.COLUMN_SETS)
        assert all(0.0 <= value <= 1.0 for value in scores.values())


def test_main_prints_and_writes_the_paired_summary(tmp_path, capsys, monkeypatch):
    lifetimes = {"own": 0.6, "aggregates": 0.8, "all": 0.8}
    fake = {0: {"paper": {"own": 0.8, "aggregates": 0.7, "all": 0.85},
                "causal": {"own": 0.6, "aggregates": 0.7, "all": 0.8},
                "causal + lifetimes": lifetimes},
            1: None,
            2: {"paper": {"own": 0.7, "aggregates": 0.6, "all": 0.75},
                "causal": {"own": 0.6, "aggregates": 0.6, "all": 0.7},
                "causal + lifetimes": lifetimes}}
    monkeypatch.setattr(shortcuts, "measure_database", lambda seed, index, rows: fake[index])
    out = tmp_path / "shortcuts.json"
    assert shortcuts.main(["--databases", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 event tasks (3 databases)" in printed
    summary = json.loads(out.read_text())["summary"]
    assert summary["paper - causal"]["own"][0] == pytest.approx(0.15)
    assert summary["paper - causal"]["aggregates"][0] == pytest.approx(0.0)
    assert summary["causal + lifetimes"]["aggregates"] == pytest.approx([0.8, 0.0])
    with pytest.raises(SystemExit):
        shortcuts.main(["--databases", "3", "--rows", "5"])
