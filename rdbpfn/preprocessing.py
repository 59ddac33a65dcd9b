"""Tables (numpy or pandas) -> float32 matrices for the in-context classifier.

:class:`TableEncoder` is fitted on the context (training) table and applied unchanged to
query tables. Column by column:

- numbers (any int/float dtype, pandas nullable ``Int64``/``Float64``): as floats;
  ``pd.NA`` / ``None`` / NaN -> NaN; ``+-inf`` are kept (the model maps them to the
  extreme ends of the column, ``+-clip_value`` after standardisation).
- booleans (numpy ``bool``, pandas ``boolean``): 0 / 1, missing -> NaN.
- datetimes / timedeltas: seconds (since the epoch / duration); NaT -> NaN.
- ordered pandas categoricals: their category codes (the order is meaningful).
- everything else (strings, unordered categoricals, mixed objects): ordinal codes of the
  distinct non-missing context values sorted by ``str``; values not seen in the context
  -> NaN (treated as missing).
- object columns whose non-missing values are all numbers are numeric columns.

Finally every column is shifted and scaled in float64 by its finite context mean and std
before the cast to float32, so that large values (timestamps, ids) keep their precision;
the model standardises again with its own context statistics, which is then exact.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["TableEncoder"]

NUMERIC, CODES, ORDERED = "numeric", "codes", "ordered"
_SECONDS_PER_NS = 1e-9


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and np.isnan(value)
    )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, complex)


@dataclass
class _Column:
    kind: str
    categories: dict = field(default_factory=dict)  # value key -> code (CODES / ORDERED)


def _as_frame(X: object) -> pd.DataFrame | np.ndarray:
    """numpy/pandas/list input -> DataFrame (pandas) or 2-D ndarray (everything else)."""
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, pd.Series):
        raise ValueError(
            "X is a pandas Series (1-D); pass a DataFrame, e.g. X.to_frame() for one "
            "feature or X.to_frame().T for one sample."
        )
    array = np.asarray(X)
    if np.iscomplexobj(array):
        raise ValueError("Complex data not supported; pass real-valued features.")
    return array


class TableEncoder:
    """Fit on a context table, transform any table with the same columns to float32."""

    def fit(self, X: pd.DataFrame | np.ndarray) -> TableEncoder:
        """Learn column kinds, category codes and float64 centring from the context."""
        table = _as_frame(X)
        self.columns_ = [self._fit_column(c) for c in self._iter_columns(table)]
        raw = self._encode(table)
        finite = np.isfinite(raw)
        count = np.maximum(finite.sum(axis=0), 1)
        self.center_ = np.where(finite, raw, 0.0).sum(axis=0) / count
        spread = np.where(finite, raw - self.center_, 0.0)
        std = np.sqrt((spread**2).sum(axis=0) / count)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """(n, p) table -> (n, p) float32 matrix (NaN for missing, +-inf kept)."""
        table = _as_frame(X)
        raw = self._encode(table)
        with np.errstate(invalid="ignore", over="ignore"):
            return ((raw - self.center_) / self.scale_).astype(np.float32)

    def fit_transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    # ---- per-column logic --------------------------------------------------------------
    @staticmethod
    def _iter_columns(table: pd.DataFrame | np.ndarray) -> list:
        if isinstance(table, pd.DataFrame):
            return [table.iloc[:, j] for j in range(table.shape[1])]
        if table.dtype.kind in "biuf":  # fast path: the whole array is numeric
            return [None] * table.shape[1]
        return [table[:, j] for j in range(table.shape[1])]

    def _fit_column(self, column: pd.Series | np.ndarray | None) -> _Column:
        if column is None:
            return _Column(NUMERIC)
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            if dtype.ordered:
                return _Column(ORDERED, {c: i for i, c in enumerate(dtype.categories)})
            return _Column(CODES, self._codes(np.asarray(column.astype(object))))
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            return _Column(NUMERIC)
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(
            dtype
        ):
            return _Column(NUMERIC)
        values = np.asarray(column, dtype=object)
        present = [v for v in values if not _is_missing(v)]
        if all(_is_number(v) for v in present):
            return _Column(NUMERIC)
        return _Column(CODES, self._codes(values))

    @staticmethod
    def _codes(values: np.ndarray) -> dict:
        keys = {str(v) for v in values if not _is_missing(v)}
        return {key: code for code, key in enumerate(sorted(keys))}

    def _encode(self, table: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(table, np.ndarray) and table.dtype.kind in "biuf":
            return table.astype(np.float64)
        columns = self._iter_columns(table)
        out = np.empty((table.shape[0], len(columns)), dtype=np.float64)
        for j, (column, spec) in enumerate(zip(columns, self.columns_, strict=True)):
            out[:, j] = self._encode_column(column, spec)
        return out

    @staticmethod
    def _encode_column(column: pd.Series | np.ndarray, spec: _Column) -> np.ndarray:
        dtype = column.dtype
        if spec.kind == NUMERIC:
            if pd.api.types.is_datetime64_any_dtype(dtype):
                series = pd.Series(column)
                nanos = series.dt.tz_convert(None) if series.dt.tz is not None else series
                values = nanos.astype("int64").to_numpy(dtype=np.float64) * _SECONDS_PER_NS
                return np.where(series.isna().to_numpy(), np.nan, values)
            if pd.api.types.is_timedelta64_dtype(dtype):
                return pd.Series(column).dt.total_seconds().to_numpy(dtype=np.float64)
            if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
                values = np.asarray(column, dtype=object)
                return np.array(
                    [np.nan if _is_missing(v) else _to_float(v) for v in values], dtype=float
                )
            if isinstance(column, pd.Series):
                return column.to_numpy(dtype=np.float64, na_value=np.nan)
            return np.asarray(column, dtype=np.float64)
        values = np.asarray(column, dtype=object)
        key = (lambda v: v) if spec.kind == ORDERED else str
        return np.array(
            [np.nan if _is_missing(v) else spec.categories.get(key(v), np.nan) for v in values],
            dtype=float,
        )


def _to_float(value: object) -> float:
    if _is_number(value):
        return float(value)
    raise ValueError(
        f"a numeric column holds the non-numeric value {value!r} that was not in the "
        "context; make the column's type consistent between fit and predict."
    )
