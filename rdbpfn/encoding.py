"""The frame-to-matrix encoding: one table (numpy or pandas) -> a numeric matrix.

Every path into the model uses it: the prior's tasks (:mod:`priors.tasks`), the benchmark's
cached DFS features (:mod:`eval.features`) and a user's ``fit`` / ``predict_proba``
(:class:`rdbpfn.RDBPFNClassifier`), so training, measurement and use see the same numbers.

:class:`TableEncoder` learns the column kinds and category codes from one table (the context)
and applies them unchanged to any table with the same columns. Column by column:

- numbers (any int/float dtype, pandas nullable ``Int64``/``Float64``): as floats;
  ``pd.NA`` / ``None`` / NaN -> NaN; ``+-inf`` are kept (the model maps them to the
  extreme ends of the column, ``+-clip_value`` after standardisation).
- booleans (numpy ``bool``, pandas ``boolean``): 0 / 1, missing -> NaN.
- datetimes / timedeltas: seconds (since the epoch / duration); NaT -> NaN.
- ordered pandas categoricals: their category codes (the order is meaningful).
- everything else (strings, unordered categoricals, mixed objects): ordinal codes of the
  distinct non-missing fitted values sorted by ``str``; values not seen when fitting -> NaN
  (treated as missing).
- object columns whose non-missing values are all numbers are numeric columns.

:meth:`TableEncoder.encode` gives these values as float64; :meth:`TableEncoder.transform`
also shifts and scales every column in float64 by its finite fitted mean and std before the
cast to float32, so that large values (timestamps, ids) keep their precision; the model
standardises again with its own context statistics, which is then exact.
:func:`encode_frame` encodes a whole frame with codes learnt from itself.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = ["TableEncoder", "as_table", "encode_frame", "finite_or_nan"]

NUMERIC, CODES, ORDERED = "numeric", "codes", "ordered"
_SECONDS_PER_NS = 1e-9


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, complex)


@dataclass(frozen=True)
class _Column:
    kind: str
    categories: pd.Index | None = None  # CODES: sorted str keys; ORDERED: the categories


def as_table(X: object, allow_empty: bool = False) -> pd.DataFrame | np.ndarray:
    """Check that ``X`` is a 2-D table: a DataFrame as it is, anything else as an array.

    Without ``allow_empty``, a table without rows or without columns is an error too. The
    messages follow scikit-learn's wording (its estimator checks look for it) and say how to
    fix the input.
    """
    if sparse.issparse(X):
        raise TypeError("sparse input is not supported; pass a dense array, e.g. X.toarray().")
    if isinstance(X, pd.Series):
        raise ValueError(
            "Expected 2D array, got a pandas Series instead. Reshape your data: "
            "X.to_frame() for one feature or X.to_frame().T for one sample."
        )
    if not isinstance(X, pd.DataFrame):
        X = np.asarray(X)
        if np.iscomplexobj(X):
            raise ValueError("Complex data not supported; pass real-valued features.")
        if X.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {X.ndim}D array of shape {X.shape} instead. "
                "Reshape your data either using array.reshape(-1, 1) if your data has a "
                "single feature or array.reshape(1, -1) if it contains a single sample."
            )
    n_rows, n_columns = X.shape
    if allow_empty:
        return X
    if n_rows == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is "
            "required. Pass at least one row."
        )
    if n_columns == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
            "required. Pass at least one feature column."
        )
    return X


def _columns(table: pd.DataFrame | np.ndarray) -> list[pd.Series | None]:
    """One Series per column; ``None`` for every column of an all-numeric array."""
    if isinstance(table, pd.DataFrame):
        return [table.iloc[:, j] for j in range(table.shape[1])]
    if table.dtype.kind in "biuf":
        return [None] * table.shape[1]
    return [pd.Series(table[:, j], dtype=object) for j in range(table.shape[1])]


class TableEncoder:
    """Fit on a context table, encode any table with the same columns.

    Fitted attributes: ``columns_`` (per-column kind and categories), ``categorical_`` (bool
    (p,): columns encoded as codes), ``center_`` and ``scale_`` (float64 (p,)).
    """

    def fit(self, X: object) -> TableEncoder:
        """Learn column kinds, category codes and the float64 centring from ``X``."""
        table = as_table(X, allow_empty=True)
        self.columns_ = [_fit_column(column) for column in _columns(table)]
        self.categorical_ = np.array([c.kind != NUMERIC for c in self.columns_], dtype=bool)
        raw = self.encode(table)
        finite = np.isfinite(raw)
        count = np.maximum(finite.sum(axis=0), 1)
        self.center_ = np.where(finite, raw, 0.0).sum(axis=0) / count
        spread = np.where(finite, raw - self.center_, 0.0)
        std = np.sqrt((spread**2).sum(axis=0) / count)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def encode(self, X: object) -> np.ndarray:
        """(n, p) table -> (n, p) float64 values and codes (NaN missing, +-inf kept)."""
        table = as_table(X, allow_empty=True)
        if isinstance(table, np.ndarray) and table.dtype.kind in "biuf":
            return table.astype(np.float64)
        columns = _columns(table)
        if len(columns) != len(self.columns_):
            raise ValueError(
                f"X has {len(columns)} columns but the encoder was fitted on "
                f"{len(self.columns_)}; pass the same columns in the same order."
            )
        out = np.empty((table.shape[0], len(columns)), dtype=np.float64)
        for j, (column, spec) in enumerate(zip(columns, self.columns_, strict=True)):
            out[:, j] = _encode_column(column, spec)
        return out

    def transform(self, X: object) -> np.ndarray:
        """(n, p) table -> (n, p) float32, centred and scaled by the fitted statistics."""
        raw = self.encode(X)
        with np.errstate(invalid="ignore", over="ignore"):
            return ((raw - self.center_) / self.scale_).astype(np.float32)

    def fit_transform(self, X: object) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)


def encode_frame(frame: object) -> tuple[np.ndarray, np.ndarray]:
    """A whole table with codes learnt from itself: ``(float64 (n, p), categorical (p,))``.

    The same numbers :class:`TableEncoder` gives when fitted on this table.
    """
    encoder = TableEncoder()
    table = as_table(frame, allow_empty=True)
    encoder.columns_ = [_fit_column(column) for column in _columns(table)]
    encoder.categorical_ = np.array([c.kind != NUMERIC for c in encoder.columns_], dtype=bool)
    return encoder.encode(table), encoder.categorical_


def _fit_column(column: pd.Series | None) -> _Column:
    if column is None:
        return _Column(NUMERIC)
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if dtype.ordered:
            return _Column(ORDERED, pd.Index(dtype.categories))
        return _Column(CODES, _sorted_keys(column.astype(object)))
    if (
        pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
    ):
        return _Column(NUMERIC)
    present = column[column.notna()]
    if all(_is_number(v) for v in present):
        return _Column(NUMERIC)
    return _Column(CODES, _sorted_keys(column))


def _sorted_keys(column: pd.Series) -> pd.Index:
    """Distinct non-missing values as ``str``, sorted."""
    return pd.Index(np.unique(column[column.notna()].astype(str).to_numpy(dtype=object)))


def _encode_column(column: pd.Series, spec: _Column) -> np.ndarray:
    dtype = column.dtype
    missing = column.isna().to_numpy()
    if spec.kind == NUMERIC:
        if pd.api.types.is_datetime64_any_dtype(dtype):
            naive = column.dt.tz_convert(None) if column.dt.tz is not None else column
            nanos = naive.astype("datetime64[ns]").astype("int64").to_numpy(dtype=np.float64)
            return np.where(missing, np.nan, nanos * _SECONDS_PER_NS)
        if pd.api.types.is_timedelta64_dtype(dtype):
            return column.dt.total_seconds().to_numpy(dtype=np.float64)
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
            values = column.to_numpy(dtype=object)
            out = np.full(len(values), np.nan)
            for i in np.flatnonzero(~missing):
                out[i] = _to_float(values[i])
            return out
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    if spec.kind == ORDERED:
        codes = spec.categories.get_indexer(column.astype(object).where(~missing, None))
    else:
        codes = spec.categories.get_indexer(column.astype(str).to_numpy(dtype=object))
    return np.where(missing | (codes < 0), np.nan, codes.astype(np.float64))


def _to_float(value: object) -> float:
    if _is_number(value):
        return float(value)
    raise ValueError(
        f"a numeric column holds the non-numeric value {value!r} that was not in the "
        "context; make the column's type consistent between fit and predict."
    )


def finite_or_nan(X: np.ndarray) -> np.ndarray:
    """Copy of ``X`` (n, p) as float64 with +-inf replaced by NaN (treated as missing): the
    input of scikit-learn models, which refuse infinities (the regressor's linear trend, the
    benchmark's baselines)."""
    out = np.array(X, dtype=np.float64)
    out[np.isinf(out)] = np.nan
    return out
