"""The linear part of a regression context, which :class:`~rdbpfn.regressor.RDBPFNRegressor`
takes out before the model reads the targets.

The shipped regression weights fit sums of many columns loosely: on the near-linear sets of
``python -m eval.regression`` (body measurements, fast-food nutrients) a ridge regression
beat them by 0.03-0.07 R^2 at 64 context rows, while they beat ridge where the target is
not linear. A
:class:`LinearTrend` is a ridge regression on the encoded columns (non-finite values as
missing, median imputation, standard scaling, the penalty chosen by efficient
leave-one-out over ``ALPHAS``). Each context row's trend is its *leave-one-out*
prediction (the ridge fitted on every other row, exact and nearly free: scikit-learn's
``RidgeCV`` computes it from one decomposition), so the residual the model reads is what a
query's residual will look like, not a smaller in-sample one. (Imputation and scaling see
every row's features, never a target.) The trend enters with a weight in
[0, 1], the least-squares slope of the centred targets on the centred out-of-fold trend,
so a trend that does not predict (outliers, no linear signal) is scaled down towards the
mean instead of adding its noise.

No trend is fitted when most targets are one value (``POINT_MASS_SHARE``: the zeros of
"games next season" among players idle last season): the model then puts a point mass on
that value (:meth:`~rdbpfn.regressor.RDBPFNRegressor._member_grid`), which residuals from a
trend would blur. On Lahman's numeric queries at the validation times (``python -m
eval.backtest --at 1985-01-01 1990-01-01``, ``--no-trend`` for the model alone) the trend
made the median's MAE worse on the two queries whose idle contexts are such a mass and
better on franchise wins.

Contexts with more than ``MAX_ROWS`` rows fit on a seeded sample of that many; the rows
outside the sample take the sample's fit, which has not seen them, so every context row's
trend is out of sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from rdbpfn.encoding import finite_or_nan

__all__ = ["ALPHAS", "MAX_ROWS", "MIN_ROWS", "POINT_MASS_SHARE", "LinearTrend", "fit_trend"]

ALPHAS = np.logspace(-3, 3, 13)
MIN_ROWS = 20
"""Below this many context rows no trend is fitted (too few to tell a trend from noise)."""
MAX_ROWS = 20_000
POINT_MASS_SHARE = 0.5
"""No trend when one target value holds at least this share of the context rows."""


@dataclass
class LinearTrend:
    """A fitted trend: ``weight * ridge(x)`` (small: the ridge's coefficients and scalers)."""

    ridge: Pipeline
    weight: float

    def predict(self, encoded: np.ndarray) -> np.ndarray:
        """(q, p) encoded rows -> (q,) float64 weighted trend."""
        return self.weight * self.ridge.predict(encoded).astype(np.float64)


def _ridge() -> Pipeline:
    """The ridge; its last step keeps every row's leave-one-out prediction per penalty."""
    return make_pipeline(
        FunctionTransformer(finite_or_nan),
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        RidgeCV(alphas=ALPHAS, store_cv_results=True, scoring="neg_mean_squared_error"),
    )


def fit_trend(encoded: np.ndarray, targets: np.ndarray, seed: int
              ) -> tuple[LinearTrend, np.ndarray] | None:
    """The weighted ridge trend of ``targets`` (n,) on ``encoded`` (n, p) rows and its
    out-of-sample (weighted) value on every row, (n,) float64; ``None`` when there are
    fewer than ``MIN_ROWS`` rows or one value holds ``POINT_MASS_SHARE`` of them. ``seed``
    draws the sample of a context larger than ``MAX_ROWS`` (smaller ones do not depend on
    it)."""
    n_rows = len(targets)
    if n_rows < MIN_ROWS:
        return None
    if np.unique(targets, return_counts=True)[1].max() >= POINT_MASS_SHARE * n_rows:
        return None
    sample = np.arange(n_rows)
    if n_rows > MAX_ROWS:
        sample = np.sort(np.random.default_rng(seed).choice(n_rows, size=MAX_ROWS,
                                                            replace=False))
    ridge = _ridge().fit(encoded[sample], targets[sample])
    penalty = ridge[-1]
    out_of_fold = np.empty(n_rows, dtype=np.float64)
    out_of_fold[sample] = penalty.cv_results_[:, list(ALPHAS).index(penalty.alpha_)]
    del penalty.cv_results_  # (rows, penalties): needed only here, not in a pickle
    if len(sample) < n_rows:
        rest = np.setdiff1d(np.arange(n_rows), sample, assume_unique=True)
        out_of_fold[rest] = ridge.predict(encoded[rest])
    centred = out_of_fold - targets.mean()
    spread = float(centred @ centred)
    weight = float(np.clip(centred @ (targets - targets.mean()) / spread, 0.0, 1.0)
                   ) if spread > 0 else 0.0
    return LinearTrend(ridge=ridge, weight=weight), weight * out_of_fold
