"""The regressor's linear trend: cross-fitted, weighted, seeded, robust to bad columns."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import rdbpfn.trend as trend_module
from rdbpfn.trend import MIN_ROWS, fit_trend


def _linear(n: int = 120, p: int = 6, noise: float = 0.1, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, X @ np.arange(1.0, p + 1) + noise * rng.normal(size=n) + 50.0


def test_a_linear_target_is_carried_by_the_trend_out_of_fold() -> None:
    X, y = _linear()
    trend, out_of_fold = fit_trend(X, y, seed=0)
    assert trend.weight > 0.95
    residual = y - out_of_fold
    assert residual.std() < 0.05 * y.std()
    np.testing.assert_allclose(trend.predict(X[:5]), y[:5], atol=0.5)


def test_context_residuals_are_out_of_fold_not_in_sample() -> None:
    """A noisy linear target: the context rows' trend is not the full fit's (which has seen
    them), and its residuals are larger, as a query row's will be."""
    X, y = _linear(n=60, p=20, noise=8.0)
    trend, out_of_fold = fit_trend(X, y, seed=0)
    assert trend.weight > 0
    in_sample = trend.weight * trend.ridge.predict(X)
    assert not np.allclose(out_of_fold, in_sample)
    assert np.std(y - out_of_fold) > np.std(y - in_sample)


def test_a_trend_that_does_not_predict_is_weighted_down() -> None:
    """Pure noise on many columns: the full ridge fit follows the noise in sample, but the
    out-of-fold trend does not predict, so its weight is (near) 0."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 30)), rng.normal(size=40)
    trend, out_of_fold = fit_trend(X, y, seed=0)
    assert trend.weight < 0.3
    assert np.corrcoef(trend.ridge.predict(X), y)[0, 1] > 0.3


def test_small_contexts_do_not_depend_on_the_seed_large_ones_reproduce_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _linear(noise=1.0)
    assert fit_trend(X, y, seed=3)[1].tobytes() == fit_trend(X, y, seed=4)[1].tobytes()
    monkeypatch.setattr(trend_module, "MAX_ROWS", 50)
    first, again = fit_trend(X, y, seed=3)[1], fit_trend(X, y, seed=3)[1]
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, fit_trend(X, y, seed=4)[1])


def test_the_trend_of_a_row_is_the_fit_without_that_row() -> None:
    X, y = _linear(n=40, noise=2.0)
    trend, out_of_fold = fit_trend(X, y, seed=0)
    alpha = trend.ridge[-1].alpha_
    for row in (0, 17):
        rest = np.delete(np.arange(40), row)
        alone = make_pipeline(StandardScaler().fit(X), Ridge(alpha=alpha))
        alone[-1].fit(alone[0].transform(X[rest]), y[rest])
        assert out_of_fold[row] == pytest.approx(trend.weight * alone.predict(X[row:row + 1])[0])


def test_targets_that_are_mostly_one_value_get_no_trend() -> None:
    """A point mass (most rows 0) is the model's to keep; a trend would blur it."""
    X, y = _linear(n=100)
    y[:50] = 0.0
    assert fit_trend(X, y, seed=0) is None
    y[50] = 1.0
    y[:1] = 2.0  # 49 zeros of 100: under the share
    assert fit_trend(X, y, seed=0) is not None


def test_too_few_rows_get_no_trend() -> None:
    X, y = _linear(n=MIN_ROWS - 1)
    assert fit_trend(X, y, seed=0) is None
    assert fit_trend(*_linear(n=MIN_ROWS), seed=0) is not None


def test_a_large_context_fits_on_a_sample_and_the_rest_is_out_of_sample(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trend_module, "MAX_ROWS", 50)
    X, y = _linear(n=130, noise=1.0)
    trend, out_of_fold = fit_trend(X, y, seed=0)
    full = trend.weight * trend.ridge.predict(X)
    # rows outside the sample take the sample's full fit; rows inside, their fold's fit
    same = np.isclose(out_of_fold, full, rtol=0, atol=1e-12)
    assert same.sum() == 130 - 50


def test_missing_infinite_and_empty_columns_do_not_break_it() -> None:
    X, y = _linear(n=60)
    X[::7, 0] = np.nan
    X[3, 1], X[5, 2] = np.inf, -np.inf
    X[:, 3] = np.nan  # a column with no value at all
    trend, out_of_fold = fit_trend(X.astype(np.float32), y, seed=0)
    assert np.isfinite(out_of_fold).all()
    assert np.isfinite(trend.predict(X)).all()
