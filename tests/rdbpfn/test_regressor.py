"""RDBPFNRegressor: the scikit-learn regressor contract on tiny random weights, the
predictive distribution's invariants, clear errors, pickling; a model trained for a few
seconds ranks and intervals sensibly."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

import rdbpfn.checkpoint as checkpoints
from rdbpfn.checkpoint import save_random_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.model import ModelConfig
from rdbpfn.regressor import RDBPFNRegressor
from tests.rdbpfn.test_bar_distribution import train_toy_regression

TINY = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2,
                   decoder_hidden=16, task="regression", label_embedding="continuous",
                   n_bins=16, max_features=8)


@pytest.fixture(scope="module", autouse=True)
def _tiny_regression_checkpoint_in_env(tmp_path_factory: pytest.TempPathFactory
                                       ) -> Iterator[Path]:
    """The sklearn checks clone the estimator, so the weights travel via the variable."""
    path = save_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", TINY, seed=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(checkpoints.REGRESSION_ENV_VAR, str(path))
        yield path


def _data(n: int = 80, p: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, 3.0 * X[:, 0] - X[:, 1] + rng.normal(0, 0.1, n) + 100.0


_RANDOM_WEIGHTS = ("tiny random weights cannot fit the data these checks assert a score "
                   "on; the trained model's quality is measured by eval (regression suite)")


@parametrize_with_checks(
    [RDBPFNRegressor(n_estimators=2, query_batch_size=7)],
    expected_failed_checks=lambda estimator: {"check_regressors_train": _RANDOM_WEIGHTS},
)
def test_sklearn_compatible(estimator: RDBPFNRegressor, check) -> None:
    check(estimator)


def test_distribution_is_consistent_with_mean_std_and_quantiles() -> None:
    X, y = _data()
    model = RDBPFNRegressor(n_estimators=3, max_context=50).fit(X[:60], y[:60])
    mean, std = model.predict(X[60:], return_std=True)
    assert mean.shape == (20,) and (std > 0).all()
    grid, cdf = model.predict_distribution(X[60:])
    assert np.allclose(cdf[:, 0], 0) and np.allclose(cdf[:, -1], 1)
    assert grid.shape == cdf.shape  # one grid per row: each is shifted by its row's trend
    assert (np.diff(cdf, axis=1) >= -1e-12).all() and (np.diff(grid, axis=1) > 0).all()
    # the mean of the piecewise-linear CDF equals predict's mean
    density = np.diff(cdf, axis=1)
    middle = (grid[:, 1:] + grid[:, :-1]) / 2
    np.testing.assert_allclose(np.sum(density * middle, axis=1), mean, rtol=1e-6, atol=1e-6)
    quantiles = model.predict_quantiles(X[60:], (0.05, 0.5, 0.95))
    assert (np.diff(quantiles, axis=1) >= 0).all()
    # targets in their own units: every row's grid (its trend plus the residual's bins)
    # holds that row's target, around 100
    assert (grid[:, 0] < y[60:]).all() and (grid[:, -1] > y[60:]).all()


def test_the_linear_trend_carries_a_linear_target_even_with_random_weights() -> None:
    """Target = 3 x0 - x1 + small noise: with the trend the model only reads residuals of
    about the noise's size, so even untrained weights predict well; without it they do not.
    Every output (mean, quantiles) is shifted by the same per-row trend."""
    X, y = _data(n=160)
    with_trend = RDBPFNRegressor(n_estimators=2).fit(X[:100], y[:100])
    without = RDBPFNRegressor(n_estimators=2, linear_trend=False).fit(X[:100], y[:100])
    assert with_trend.trend_ is not None and without.trend_ is None
    assert with_trend.score(X[100:], y[100:]) > 0.99
    assert without.score(X[100:], y[100:]) < 0.9
    assert with_trend.target_scale_ < 0.2 * y.std()  # the model reads residuals
    median = with_trend.predict_quantiles(X[100:], [0.5])[:, 0]
    assert np.abs(median - y[100:]).mean() < 0.5
    with pytest.raises(ValueError, match="linear_trend"):
        RDBPFNRegressor(linear_trend="yes").fit(X[:100], y[:100])


def test_a_point_mass_in_the_context_is_a_point_mass_in_the_prediction() -> None:
    """Most targets 0 (a count of rows in a window): the model bin that holds the zeros
    puts its mass on 0 itself, so a quantile whose level falls in that mass is 0 exactly,
    not a point somewhere in the bin. (Without a trend: residuals from one do not repeat.)"""
    X, y = _data()
    y = np.where(y > np.quantile(y, 0.7), np.round(y - 100.0, 1), 0.0)
    model = RDBPFNRegressor(n_estimators=1, linear_trend=False).fit(X[:60], y[:60])
    grid, cdf = model.predict_distribution(X[60:])
    grid = grid[0]  # no trend: every row has the same grid
    # the point mass: the narrowest step of the grid, at 0 (to float32 precision of the
    # standardised targets)
    at = int(np.argmin(np.diff(grid)))
    assert abs(grid[at]) < 1e-6 and grid[at + 1] - grid[at] < 1e-6
    below, above = cdf[:, at], cdf[:, at + 1]
    assert (above - below > 0.01).all()
    levels = (below + above) / 2
    for row in range(len(levels)):  # each row's own level inside the jump at 0
        single = copy.deepcopy(model)
        got = single.predict_quantiles(X[60 + row: 61 + row], [levels[row]])[0, 0]
        assert abs(got) < 1e-6
    # without repeated values (the other tests' targets) no bin is a point mass
    plain = RDBPFNRegressor(n_estimators=1, linear_trend=False).fit(*_data())
    assert np.diff(plain.predict_distribution(X[60:])[0], axis=1).min() > 1e-3


def test_integer_targets_get_integer_quantiles() -> None:
    """Counts: each quantile is the nearest integer to the continuous one; the mean stays
    continuous. Distinct or fractional targets keep continuous quantiles."""
    X, y = _data()
    counts = np.round(np.abs(y - 100.0))
    model = RDBPFNRegressor(n_estimators=2).fit(X[:60], counts[:60])
    assert model.integer_targets_
    levels = (0.05, 0.5, 0.95)
    whole = model.predict_quantiles(X[60:], levels)
    continuous = copy.deepcopy(model)
    continuous.integer_targets_ = False
    smooth = continuous.predict_quantiles(X[60:], levels)
    np.testing.assert_array_equal(whole, np.round(smooth))
    assert not np.array_equal(smooth, np.round(smooth))
    assert not RDBPFNRegressor(n_estimators=1).fit(X[:60], y[:60]).integer_targets_
    assert not RDBPFNRegressor(n_estimators=1).fit(X[:3], [1.0, 2.0, 3.0]).integer_targets_


def _mixture_quantile(grid: np.ndarray, cdf: np.ndarray, level: float) -> np.ndarray:
    return np.array([np.interp(level, row, points) for row, points in zip(cdf, grid,
                                                                          strict=True)])


def test_quantiles_average_the_members_quantiles() -> None:
    """One member: the quantiles of its distribution. Several: the mean over members of
    each member's quantile (Vincentization), which lies between the members' own."""
    X, y = _data()
    levels = (0.05, 0.5, 0.95)
    one = RDBPFNRegressor(n_estimators=1).fit(X[:60], y[:60])
    grid, cdf = one.predict_distribution(X[60:])
    quantiles = one.predict_quantiles(X[60:], levels)
    for j, level in enumerate(levels):
        np.testing.assert_allclose(quantiles[:, j], _mixture_quantile(grid, cdf, level),
                                   rtol=1e-6, atol=1e-6)
    three = RDBPFNRegressor(n_estimators=3).fit(X[:60], y[:60])
    members = []
    for index in range(3):  # each member alone: same columns, rows and augmentation
        alone = copy.deepcopy(three)
        alone.members_ = [alone.members_[index]]
        members.append(alone.predict_quantiles(X[60:], levels))
    np.testing.assert_allclose(three.predict_quantiles(X[60:], levels),
                               np.mean(members, axis=0), rtol=1e-6, atol=1e-6)


def test_pickle_round_trip_gives_identical_predictions() -> None:
    X, y = _data(seed=3)
    model = RDBPFNRegressor(n_estimators=2).fit(X[:60], y[:60])
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X[60:]), model.predict(X[60:]))


@pytest.mark.parametrize(("y", "message"), [
    (np.r_[np.nan, np.ones(59)], "NaN or infinite targets"),
    (np.r_[np.inf, np.arange(59.0)], "NaN or infinite targets"),
    (np.full(60, 2.5), "constant"),
    (np.array(["a", "b"] * 30), "must be numbers"),
    (np.arange(59.0), "60 rows but y has 59"),
])
def test_bad_targets_are_clear_errors(y: np.ndarray, message: str) -> None:
    X, _ = _data(n=60)
    with pytest.raises(ValueError, match=message):
        RDBPFNRegressor().fit(X, y)


def test_a_checkpoint_of_the_other_task_is_refused(tmp_path: Path) -> None:
    X, y = _data(n=40)
    classifier = save_random_checkpoint(tmp_path / "c.pt", ModelConfig(d_model=16, n_heads=2,
                                        d_ffn=32, n_layers=1), seed=0)
    with pytest.raises(ValueError, match="needs a regression checkpoint"):
        RDBPFNRegressor(model_path=classifier).fit(X, y)
    with pytest.raises(ValueError, match="needs a classification checkpoint"):
        RDBPFNClassifier(model_path=checkpoints.resolve_checkpoint(task="regression")).fit(
            X, (y > y.mean()).astype(int))


def test_frames_with_strings_and_missing_values() -> None:
    X, y = _data(n=60)
    frame = pd.DataFrame(X, columns=list("abcde")).assign(
        kind=np.where(X[:, 0] > 0, "up", None), when=pd.Timestamp("2024-01-01"))
    model = RDBPFNRegressor(n_estimators=1).fit(frame[:40], pd.Series(y[:40]))
    assert np.isfinite(model.predict(frame[40:])).all()


def test_trained_for_seconds_it_beats_the_mean_and_its_intervals_cover(tmp_path: Path) -> None:
    """A few seconds of training on "target = a linear function of the columns": R^2 above
    predicting the context mean, and 90% intervals that cover most test targets."""
    def linear(x: torch.Tensor, step: int) -> torch.Tensor:  # new weights per episode
        weights = torch.randn(8, 3, 1, generator=torch.Generator().manual_seed(step))
        return (x @ weights).squeeze(-1)

    model, _ = train_toy_regression(300, linear)
    path = checkpoints.save_checkpoint(tmp_path / "r.pt", model, {"note": "test"})
    X, y = _data(n=400, p=3, seed=9)
    regressor = RDBPFNRegressor(model_path=path, n_estimators=2).fit(X[:200], y[:200])
    prediction = regressor.predict(X[200:])
    r2 = 1 - np.sum((y[200:] - prediction) ** 2) / np.sum((y[200:] - y[200:].mean()) ** 2)
    assert r2 > 0.3
    low, high = regressor.predict_quantiles(X[200:], (0.05, 0.95)).T
    assert np.mean((y[200:] >= low) & (y[200:] <= high)) > 0.6


def test_without_weights_the_regressor_says_how_to_get_them(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.delenv(checkpoints.REGRESSION_ENV_VAR, raising=False)
    monkeypatch.setattr(checkpoints, "REGRESSION_CHECKPOINT", tmp_path / "absent.pt")
    X, y = _data(n=30)
    with pytest.raises(checkpoints.CheckpointNotFoundError,
                       match=r"No trained RDB-PFN regression checkpoint(.|\n)*regression_cpu"):
        RDBPFNRegressor().fit(X, y)
