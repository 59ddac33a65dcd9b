"""A typed table: a pandas DataFrame plus its roles, and the time keys DFS compares.

A :class:`Table` is a DataFrame with an optional primary key, foreign keys
(``{column: parent table}``, always pointing at the parent's primary key) and an optional time
column (when a row becomes known). :class:`rdbpfn.database.Database` links tables and checks
them; :mod:`rdbpfn.formats` reads and writes databases in other forms.

Column kinds follow the dtypes: ``numeric`` (ints, floats), ``boolean`` (bool, "boolean"),
``categorical`` (object, string, category; make an integer code categorical with
``df[col].astype("category")``), ``datetime`` (datetimes that are not the time column).
Identifiers that are not declared keys are categorical too: a column with an id-like name
(``id``, ``product_id``, ``productId``; :data:`ID_LIKE_NAME`) and whole-number values is
never averaged or summed, only counted (``MODE``, ``NUM_UNIQUE``). Key and time columns are
never features. Columns of other dtypes (timedelta, period, ...) are
kept in the frame but never become features (:attr:`Table.ignored_columns`).

Times: datetime time columns (tz-aware ones are converted to UTC) or numeric ones (e.g. a
year); one database uses one kind. Internally a time is an int64 *time key* that preserves
order and equality (datetimes: nanoseconds; numbers: an order-preserving bit map); a missing
time is :data:`MISSING_TIME`, later than every cutoff, so such a row is never visible
(featuretools drops them too, even without cutoffs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ID_LIKE_NAME", "LATEST_CUTOFF", "MISSING_TIME", "Table", "column_kind",
           "is_id_like", "time_differences", "time_keys"]

MISSING_TIME = np.iinfo(np.int64).max
"""Time key of a row whose time is missing: after every cutoff, so never visible."""

LATEST_CUTOFF = MISSING_TIME - 1
"""Time key that plays "no cutoff": every row with a known time is visible."""

MAX_ERROR_EXAMPLES = 5
"""How many offending values an error message shows."""

COLUMN_KINDS = ("numeric", "boolean", "categorical", "datetime", "other")

_FLIP_LOW_63_BITS = np.int64(0x7FFFFFFFFFFFFFFF)
_NANOSECONDS_PER_SECOND = 1e9


def examples(values: Any) -> str:
    """Up to MAX_ERROR_EXAMPLES distinct values, as reprs, for an error message."""
    shown = list(pd.unique(np.asarray(values, dtype=object))[:MAX_ERROR_EXAMPLES])
    return ", ".join(repr(v) for v in shown)


ID_LIKE_NAME = re.compile(r"(?i:^id$|[_\-\s.]id$)|[a-z0-9]I[dD]$")
"""Names of identifier columns: ``id``, ``product_id``, ``product-id``, ``productId``,
``productID`` (not ``paid``, ``valid`` or ``VALID``)."""

QUANTITY_STEMS = ("year", "month", "week", "day", "hour", "season", "date", "time")
"""An id-like name on one of these stems (``yearID``, ``season_id``) numbers a time, a
quantity with an order and a scale, so it stays numeric."""


def is_id_like(name: object, series: pd.Series) -> bool:
    """An identifier that is not a declared key: an id-like name and whole-number values.

    Such a column is categorical, never numeric: its values name things, so a mean or a sum
    of them means nothing, while ``MODE`` and ``NUM_UNIQUE`` (distinct products bought) do.
    """
    match = ID_LIKE_NAME.search(str(name))
    if match is None:
        return False
    stem = str(name)[: match.start() + 1].rstrip("_- .").lower()
    if stem.endswith(QUANTITY_STEMS):
        return False
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype):
        return True
    if not pd.api.types.is_float_dtype(dtype):
        return False
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    present = values[~np.isnan(values)]
    return bool(np.all(np.isfinite(present) & (present == np.round(present))))


def column_kind(name: object, series: pd.Series) -> str:
    """Kind of a non-key column (one of :data:`COLUMN_KINDS`) from its dtype and values."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "categorical" if is_id_like(name, series) else "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    return "other"


def _float_time_keys(values: np.ndarray) -> np.ndarray:
    """float64 -> int64 keys with the same order and equalities; NaN -> MISSING_TIME."""
    values = np.asarray(values, dtype=np.float64) + 0.0  # -0.0 -> 0.0
    bits = values.view(np.int64)
    keys = np.where(bits < 0, bits ^ _FLIP_LOW_63_BITS, bits)
    keys[np.isnan(values)] = MISSING_TIME
    return keys


def _datetime_time_keys(values: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    values = pd.DatetimeIndex(values)
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    keys = values.as_unit("ns").asi8.copy()
    keys[values.isna()] = MISSING_TIME
    return keys


def time_differences(later: np.ndarray, earlier: np.ndarray, kind: str) -> np.ndarray:
    """``later - earlier`` of int64 time keys as float64: seconds for datetime keys, the
    time unit for numeric ones. NaN where either is missing or ``later`` is "no cutoff".

    Datetime differences are taken in integer nanoseconds before the division, so they are
    exact to the nanosecond whatever the epoch.
    """
    later = np.asarray(later, dtype=np.int64)
    earlier = np.asarray(earlier, dtype=np.int64)
    missing = (later >= LATEST_CUTOFF) | (earlier >= LATEST_CUTOFF)
    safe_later, safe_earlier = np.where(missing, 0, later), np.where(missing, 0, earlier)
    if kind == "datetime":
        difference = (safe_later - safe_earlier) / _NANOSECONDS_PER_SECOND
    else:
        difference = _float_times(safe_later) - _float_times(safe_earlier)
    return np.where(missing, np.nan, difference)


def _float_times(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_float_time_keys` for non-missing keys."""
    bits = np.where(keys < 0, keys ^ _FLIP_LOW_63_BITS, keys)
    return bits.view(np.float64)


def time_keys(values: Any, kind: str, what: str) -> np.ndarray:
    """Convert times (a column or cutoffs) of ``kind`` ("datetime"/"numeric") to int64 keys.

    Args:
        values: array-like of times, shape (n,).
        kind: the database's time kind.
        what: what the values are, for the error message.
    Returns:
        int64 array (n,); missing times become :data:`MISSING_TIME`.
    Raises:
        ValueError: the values do not parse as ``kind``.
    """
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if kind == "numeric":
        if pd.api.types.is_bool_dtype(series.dtype) or not (
            pd.api.types.is_numeric_dtype(series.dtype) or series.isna().all()
        ):
            raise ValueError(
                f"{what} must be numbers because the database's time columns are numeric; "
                f"saw dtype {series.dtype} (values {examples(series.head())}). Pass numbers, "
                "or make every time column a datetime."
            )
        return _float_time_keys(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _datetime_time_keys(series)
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise ValueError(
            f"{what} must be datetimes because the database's time columns are datetimes; saw "
            f"dtype {series.dtype} (values {examples(series.head())}). Convert them with "
            "pd.to_datetime(...)."
        )
    try:
        parsed = pd.to_datetime(series, errors="raise", utc=True)
    except (ValueError, TypeError, OverflowError) as error:
        bad = pd.to_datetime(series, errors="coerce", utc=True).isna() & series.notna()
        raise ValueError(
            f"{what} does not parse as datetimes: {int(bad.sum())} unparseable values, e.g. "
            f"{examples(series[bad])} ({str(error).splitlines()[0]}). Fix or drop those "
            "values, or convert the column with pd.to_datetime(..., format=...)."
        ) from None
    return _datetime_time_keys(parsed)


class Table:
    """One table: a DataFrame and its key and time columns.

    Args:
        df: the rows. Not copied; do not mutate it afterwards.
        primary_key: column with a unique, non-null id per row, or None (such a table
            cannot be a parent nor a linearize target).
        foreign_keys: ``{column: parent table name}``; the column holds values of the
            parent's primary key (null = no parent).
        time_column: column saying when each row becomes known (datetime, parseable
            strings, or numbers), or None (the rows are always known).
    Raises:
        TypeError: ``df`` is not a DataFrame or an argument has the wrong type.
        ValueError: a named column is missing.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        primary_key: str | None = None,
        foreign_keys: Mapping[str, str] | None = None,
        time_column: str | None = None,
    ) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Table needs a pandas DataFrame, got {type(df).__name__}.")
        if not df.columns.is_unique:
            duplicated = df.columns[df.columns.duplicated()].tolist()
            raise ValueError(f"Table has duplicate column names {duplicated}; rename them.")
        self._set_roles(list(df.columns), primary_key, foreign_keys, time_column)
        self.df = df
        keys = {primary_key, time_column, *self.foreign_keys} - {None}
        self.column_kinds: dict[str, str] = {
            str(c): column_kind(c, df[c]) for c in df.columns if c not in keys
        }
        """Kind of every non-key, non-time column: one of :data:`COLUMN_KINDS`."""
        self._cache: dict[str, Any] = {}

    def _set_roles(self, columns: list[Any], primary_key: str | None,
                   foreign_keys: Mapping[str, str] | None, time_column: str | None) -> None:
        """Check and set the key and time columns among ``columns``."""
        foreign_keys = dict(foreign_keys or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in foreign_keys.items()):
            raise TypeError(
                f"foreign_keys must map column names (str) to table names (str), got "
                f"{foreign_keys!r}."
            )
        for role, column in [("primary_key", primary_key), ("time_column", time_column)] + [
            ("foreign key", c) for c in foreign_keys
        ]:
            if column is not None and column not in columns:
                raise ValueError(
                    f"{role} {column!r} is not a column of the table; columns are "
                    f"{columns}."
                )
        if time_column is not None and (time_column == primary_key or time_column in foreign_keys):
            raise ValueError(f"time_column {time_column!r} is also a key column; use another.")
        self.primary_key = primary_key
        self.foreign_keys = foreign_keys
        self.time_column = time_column

    def __len__(self) -> int:
        return len(self.df)

    @property
    def columns(self) -> list[Any]:
        """Every column label, key and time columns included, in order."""
        return list(self.df.columns)

    def head(self, n: int) -> pd.DataFrame:
        """The first ``n`` rows (what checks that look at a sample read)."""
        return self.df.head(n)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} rows, primary_key={self.primary_key!r}, "
            f"foreign_keys={self.foreign_keys!r}, time_column={self.time_column!r}, "
            f"columns={list(self.column_kinds)})"
        )

    @property
    def ignored_columns(self) -> list[str]:
        """Columns whose dtype never becomes a feature (kind "other")."""
        return [c for c, kind in self.column_kinds.items() if kind == "other"]

    def columns_of_kind(self, kind: str) -> list[str]:
        """Non-key, non-time columns of one kind, in frame order."""
        return [c for c, k in self.column_kinds.items() if k == kind]

    @property
    def time_kind(self) -> str | None:
        """"datetime", "numeric" or None (no time column)."""
        if self.time_column is None:
            return None
        dtype = self.df[self.time_column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "invalid"
        if pd.api.types.is_numeric_dtype(dtype):
            return "numeric"
        return "datetime"

    def time_keys(self, name: str = "table") -> np.ndarray:
        """int64 time key per row, shape (n,); all :data:`MISSING_TIME` without a time column.

        Raises:
            ValueError: the time column does not parse.
        """
        if "time" not in self._cache:
            if self.time_column is None:
                keys = np.full(len(self.df), MISSING_TIME, dtype=np.int64)
            elif self.time_kind == "invalid":
                raise ValueError(
                    f"time column {self.time_column!r} of table {name!r} is boolean, which "
                    "is not a time; use a datetime or numeric column."
                )
            else:
                keys = time_keys(
                    self.df[self.time_column], str(self.time_kind),
                    f"time column {self.time_column!r} of table {name!r}",
                )
            self._cache["time"] = keys
        return self._cache["time"]

    def key_index(self) -> pd.Index:
        """The primary-key values as a pandas Index (for id -> row lookups)."""
        if self.primary_key is None:
            raise ValueError("this table has no primary key; pass primary_key= to Table.")
        if "key_index" not in self._cache:
            self._cache["key_index"] = pd.Index(self.df[self.primary_key])
        return self._cache["key_index"]

    def numeric_values(self, column: str) -> np.ndarray:
        """float64 values of a numeric or boolean column, shape (n,), NaN where missing."""
        key = f"num:{column}"
        if key not in self._cache:
            series = self.df[column]
            if self.column_kinds.get(column) == "boolean":
                values = series.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            self._cache[key] = values
        return self._cache[key]

    def categorical_codes(self, column: str) -> tuple[np.ndarray, pd.Index]:
        """Codes (int64, -1 = missing, shape (n,)) and categories of a categorical column.

        Categories are sorted by value (so ties in ``mode`` go to the smallest value, as in
        pandas); values of mixed types are compared as strings.
        """
        key = f"cat:{column}"
        if key not in self._cache:
            series = self.df[column]
            if isinstance(series.dtype, pd.CategoricalDtype):
                series = series.astype(object)
            try:
                codes, categories = pd.factorize(series, sort=True)
            except TypeError:
                series = series.map(lambda v: v if pd.isna(v) else str(v))
                codes, categories = pd.factorize(series, sort=True)
            self._cache[key] = (codes.astype(np.int64), pd.Index(categories))
        return self._cache[key]

    def categories(self, column: str) -> pd.Index:
        """Sorted distinct values of a categorical column (the codes' categories)."""
        return self.categorical_codes(column)[1]
