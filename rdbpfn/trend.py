"""The linear part of a regression context, which :class:`~rdbpfn.regressor.RDBPFNRegressor`
takes out before the model reads the targets.

The shipped regression weights fit sums of many columns loosely: on the near-linear sets of
``python -m eval.regression`` (body measurements, fast-food nutrients) a ridge regression
beat them by 0.03-0.07 R^2 at 64 context rows, while they beat ridge where the target is
not linear. A
:class:`LinearTrend` is a ridge regression on the encoded columns (non-finite values as
missing, median imputation, standard scaling, the penalty chosen by efficient
leave-one-out over ``ALPHAS``). It is *cross-fitted*: each context row's trend comes from
a ridge fitted on the other folds, so the residual the model reads is what a query's
residual will look like, not a smaller in-sample one. The trend enters with a weight in
[0, 1], the least-squares slope of the centred targets on the centred out-of-fold trend,
so a trend that does not predict (outliers, no linear signal) is scaled down towards the
mean instead of adding its noise.

Contexts with more than ``MAX_ROWS`` rows fit on a seeded sample of that many; the rows
outside the sample take the sample's full fit, which has not seen them, so every context
row's trend is out of sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

__all__ = ["ALPHAS", "FOLDS", "MAX_ROWS", "MIN_ROWS", "LinearTrend", "fit_trend"]

ALPHAS = np.logspace(-3, 3, 13)
FOLDS = 5
MIN_ROWS = 20
"""Below this many context rows no trend is fitted (too few rows to cross-fit it)."""
MAX_ROWS = 20_000


@dataclass
class LinearTrend:
    """A fitted trend: ``weight * ridge(x)`` (small: the ridge's coefficients and scalers)."""

    ridge: Pipeline
    weight: float

    def predict(self, encoded: np.ndarray) -> np.ndarray:
        """(q, p) encoded rows -> (q,) float64 weighted trend."""
        return self.weight * self.ridge.predict(encoded).astype(np.float64)


def _ridge() -> Pipeline:
    return make_pipeline(
        FunctionTransformer(_finite_or_nan),
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        RidgeCV(alphas=ALPHAS),
    )


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def fit_trend(encoded: np.ndarray, targets: np.ndarray, seed: int
              ) -> tuple[LinearTrend, np.ndarray] | None:
    """The weighted ridge trend of ``targets`` (n,) on ``encoded`` (n, p) rows and its
    cross-fitted (weighted) value on every row, (n,) float64; ``None`` when there are
    fewer than ``MIN_ROWS`` rows. Seeded: the folds and the sample of a large context
    depend only on ``seed``."""
    n_rows = len(targets)
    if n_rows < MIN_ROWS:
        return None
    rng = np.random.default_rng(seed)
    sample = np.arange(n_rows)
    if n_rows > MAX_ROWS:
        sample = np.sort(rng.choice(n_rows, size=MAX_ROWS, replace=False))
    folds = KFold(FOLDS, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    out_of_fold = np.empty(n_rows, dtype=np.float64)
    x, y = encoded[sample], targets[sample]
    for train, test in folds.split(x):
        out_of_fold[sample[test]] = _ridge().fit(x[train], y[train]).predict(x[test])
    ridge = _ridge().fit(x, y)
    if len(sample) < n_rows:
        rest = np.setdiff1d(np.arange(n_rows), sample, assume_unique=True)
        out_of_fold[rest] = ridge.predict(encoded[rest])
    centred = out_of_fold - targets.mean()
    spread = float(centred @ centred)
    weight = float(np.clip(centred @ (targets - targets.mean()) / spread, 0.0, 1.0)
                   ) if spread > 0 else 0.0
    return LinearTrend(ridge=ridge, weight=weight), weight * out_of_fold
