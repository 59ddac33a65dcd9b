"""In-context estimators over a relational database: rows are (entity, cutoff time) pairs.

:class:`RelationalClassifier` and :class:`RelationalRegressor` are scikit-learn estimators
whose ``X`` is a DataFrame of ``[<entity key>, "cutoff_time"]`` pairs of one table of a
:class:`~rdbpfn.database.Database`. ``fit`` linearizes the context pairs with Deep Feature
Synthesis (:func:`rdbpfn.linearize`, each pair sees only rows with time <= its cutoff), keeps
at most ``max_features`` columns chosen from the context rows and their targets only
(:func:`rdbpfn.dfs.select_features`: constant and duplicate columns dropped, ranked by
association with the target, greedy decorrelation), and fits an
:class:`~rdbpfn.classifier.RDBPFNClassifier` (or :class:`~rdbpfn.regressor.RDBPFNRegressor`)
on them. Predicting linearizes only the selected features for the query pairs. What the
benchmark harness measures (``python -m eval``) is this selection.

The database is a constructor parameter, so ``clone`` (``cross_val_score``, ``Pipeline``)
shares it rather than copying it: a :class:`Database` is not modified by fitting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from rdbpfn.checkpoint import load_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.database import Database
from rdbpfn.dfs import DEFAULT_PRIMITIVES, DEFAULT_WINDOWS, linearize, select_features
from rdbpfn.dfs.budget import CORRELATION_LIMIT
from rdbpfn.regressor import RDBPFNRegressor

__all__ = ["CUTOFF_COLUMN", "RelationalClassifier", "RelationalRegressor"]

CUTOFF_COLUMN = "cutoff_time"
"""Name of the cutoff column of ``X`` (what :meth:`rdbpfn.Query.labels` returns)."""


class _RelationalEstimator(BaseEstimator):
    """In-context prediction for (entity, cutoff) pairs of a relational database.

    Parameters
    ----------
    database : the :class:`~rdbpfn.database.Database` (required).
    entity_table : the table whose rows are classified (required; needs a primary key).
    max_depth, primitives, windows : Deep Feature Synthesis settings
        (:func:`rdbpfn.linearize`).
    max_features : columns kept per fit, chosen from the context rows only; ``None`` = the
        estimator's default: the checkpoint's width (``ModelConfig.max_features``, 100) for
        a classifier, at most 24 for a regressor (numeric targets are predicted better from
        fewer, stronger columns: ``python -m eval.backtest --at 1995-01-01 --max-features K``
        on Lahman's numeric queries, a validation time the reported backtests never use).
    correlation_limit : |correlation| at which a column counts as a copy of a kept one.
    model_path, device, n_estimators, max_context, random_state, verbose : passed to
        the in-context estimator.

    ``X`` is a DataFrame with the entity table's primary-key column and a ``cutoff_time``
    column (datetimes, or numbers for a database with numeric times); ``y`` one target per
    row. Fitted attributes: ``features_`` (the selected DFS feature names), ``key_``, and
    the fitted in-context estimator.
    """

    _task = ""
    _default_width: int | None = None
    """``max_features=None`` keeps min(this, the checkpoint's width); None: the width."""

    def __init__(
        self,
        *,
        database: Database | None = None,
        entity_table: str | None = None,
        max_depth: int = 2,
        primitives: Sequence[str] = DEFAULT_PRIMITIVES,
        windows: Sequence[Any] = DEFAULT_WINDOWS,
        max_features: int | None = None,
        correlation_limit: float = CORRELATION_LIMIT,
        model_path: str | os.PathLike | None = None,
        device: str = "cpu",
        n_estimators: int = 4,
        max_context: int = 1024,
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool = False,
    ) -> None:
        self.database = database
        self.entity_table = entity_table
        self.max_depth = max_depth
        self.primitives = primitives
        self.windows = windows
        self.max_features = max_features
        self.correlation_limit = correlation_limit
        self.model_path = model_path
        self.device = device
        self.n_estimators = n_estimators
        self.max_context = max_context
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):  # noqa: ANN204 (sklearn's Tags type)
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is a frame of (entity, cutoff) pairs
        tags.non_deterministic = False
        return tags

    def __sklearn_clone__(self) -> _RelationalEstimator:
        """An unfitted copy that shares the database (parameters cloned, not the data)."""
        params = self.get_params(deep=False)
        copied = {name: clone(value, safe=False) for name, value in params.items()
                  if name != "database"}
        return type(self)(database=self.database, **copied)

    # ---- inputs ------------------------------------------------------------------------
    def _key(self) -> str:
        if not isinstance(self.database, Database):
            raise ValueError(
                f"database={type(self.database).__name__}; pass database=rdbpfn.Database(...)"
                ", the database the (entity, cutoff) rows refer to."
            )
        if self.entity_table not in self.database.tables:
            raise ValueError(
                f"entity_table={self.entity_table!r} is not a table of the database; tables: "
                f"{list(self.database.tables)}."
            )
        key = self.database[self.entity_table].primary_key
        if key is None:
            raise ValueError(
                f"entity_table {self.entity_table!r} has no primary key, so its rows cannot "
                "be named; give the table a primary_key."
            )
        return key

    def _pairs(self, X: object, key: str) -> tuple[pd.Series, pd.Series]:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"X is a {type(X).__name__}; pass a DataFrame with columns [{key!r}, "
                f"{CUTOFF_COLUMN!r}]: one (entity, cutoff) pair per row, e.g. the first two "
                "columns of rdbpfn.Query.labels(...)."
            )
        missing = [c for c in (key, CUTOFF_COLUMN) if c not in X.columns]
        if missing:
            raise ValueError(
                f"X lacks the columns {missing}; it needs the entity key {key!r} and "
                f"{CUTOFF_COLUMN!r} (one (entity, cutoff) pair per row); it has "
                f"{list(X.columns)[:10]}."
            )
        if len(X) == 0:
            raise ValueError("X has no rows; pass at least one (entity, cutoff) pair.")
        return X[key], X[CUTOFF_COLUMN]

    def _features(self, X: object, names: Sequence[str] | None) -> pd.DataFrame:
        key = self._key()
        ids, cutoffs = self._pairs(X, key)
        return linearize(self.database, self.entity_table, ids.to_numpy(), cutoffs.to_numpy(),
                         max_depth=self.max_depth, primitives=self.primitives,
                         windows=self.windows, features=names)

    # ---- fit / predict -----------------------------------------------------------------
    def _fit_features(self, X: object, y: object, continuous: bool
                      ) -> tuple[pd.DataFrame, np.ndarray]:
        """Linearize the context pairs and select features from them and their targets:
        (the selected columns, the targets as given)."""
        self.key_ = self._key()
        frame = self._features(X, None)
        targets = np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y)
        if targets.ndim != 1 or len(targets) != len(frame):
            raise ValueError(
                f"y has shape {targets.shape} for {len(frame)} rows of X; pass one target per "
                "(entity, cutoff) row."
            )
        width = self.max_features
        if width is None:
            width = load_checkpoint(self.model_path, task=self._task).config.max_features
            width = min(width, self._default_width or width)
        if continuous:
            try:
                scores = targets.astype(np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError(f"y must be numbers for a regressor ({error}).") from None
        else:
            try:
                scores = np.unique(targets, return_inverse=True)[1]
            except TypeError as error:
                raise ValueError(
                    f"y mixes label types that cannot be sorted ({error}).") from error
        self.features_ = select_features(frame, width, scores, self.correlation_limit,
                                         continuous=continuous)
        if not self.features_:
            raise ValueError(
                "no DFS feature varies across the context rows, so there is nothing to learn "
                "from; use more or more varied context rows, or a larger max_depth."
            )
        return frame[self.features_], targets

    def _estimator_options(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "device": self.device,
                "n_estimators": self.n_estimators, "max_context": self.max_context,
                "random_state": self.random_state, "verbose": self.verbose}

    def transform(self, X: object) -> pd.DataFrame:
        """The selected DFS features (``features_``) of the (entity, cutoff) rows of ``X``."""
        check_is_fitted(self)
        return self._features(X, self.features_)


class RelationalClassifier(ClassifierMixin, _RelationalEstimator):
    __doc__ = (_RelationalEstimator.__doc__ or "").replace(
        "In-context prediction", "In-context classification", 1) + """
    Classification: ``y`` are labels; fitted ``classifier_`` and ``classes_``.
    """

    _task = "classification"

    def fit(self, X: object, y: object) -> RelationalClassifier:
        """Linearize the context pairs, select features from them, fit the classifier."""
        frame, labels = self._fit_features(X, y, continuous=False)
        self.classifier_ = RDBPFNClassifier(**self._estimator_options()).fit(frame, labels)
        self.classes_ = self.classifier_.classes_
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        """(n, n_classes) probabilities for the (entity, cutoff) rows of ``X``."""
        return self.classifier_.predict_proba(self.transform(X))

    def predict(self, X: object) -> np.ndarray:
        """(n,) labels from ``classes_``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class RelationalRegressor(RegressorMixin, _RelationalEstimator):
    __doc__ = (_RelationalEstimator.__doc__ or "").replace(
        "In-context prediction", "In-context regression", 1) + """
    Regression: ``y`` are numbers (features are ranked by association with their ranks);
    ``linear_trend`` as :class:`~rdbpfn.regressor.RDBPFNRegressor`'s; fitted ``regressor_``.
    """

    _task = "regression"
    _default_width = 24

    def __init__(
        self,
        *,
        database: Database | None = None,
        entity_table: str | None = None,
        max_depth: int = 2,
        primitives: Sequence[str] = DEFAULT_PRIMITIVES,
        windows: Sequence[Any] = DEFAULT_WINDOWS,
        max_features: int | None = None,
        correlation_limit: float = CORRELATION_LIMIT,
        model_path: str | os.PathLike | None = None,
        device: str = "cpu",
        n_estimators: int = 4,
        max_context: int = 1024,
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool = False,
        linear_trend: bool = True,
    ) -> None:
        super().__init__(
            database=database, entity_table=entity_table, max_depth=max_depth,
            primitives=primitives, windows=windows, max_features=max_features,
            correlation_limit=correlation_limit, model_path=model_path, device=device,
            n_estimators=n_estimators, max_context=max_context, random_state=random_state,
            verbose=verbose)
        self.linear_trend = linear_trend

    def fit(self, X: object, y: object) -> RelationalRegressor:
        """Linearize the context pairs, select features from them, fit the regressor."""
        frame, targets = self._fit_features(X, y, continuous=True)
        self.regressor_ = RDBPFNRegressor(**self._estimator_options(),
                                          linear_trend=self.linear_trend).fit(frame, targets)
        return self

    def predict(self, X: object, return_std: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(n,) predictive means for the (entity, cutoff) rows of ``X`` (and standard
        deviations with ``return_std=True``)."""
        return self.regressor_.predict(self.transform(X), return_std=return_std)

    def predict_quantiles(self, X: object, quantiles: Sequence[float] = (0.05, 0.5, 0.95)
                          ) -> np.ndarray:
        """(n, len(quantiles)) quantiles of the predictive distribution."""
        return self.regressor_.predict_quantiles(self.transform(X), quantiles)
