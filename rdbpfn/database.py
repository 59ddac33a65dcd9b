"""Typed relational databases: :class:`Table`, :class:`Database`, validation, constructors.

A :class:`Table` is a pandas DataFrame plus its roles: an optional primary key, foreign keys
(``{column: parent table}``, always pointing at the parent's primary key) and an optional time
column (when a row becomes known). A :class:`Database` is a dict of tables, checked once:

- schema (always, it is cheap): keys and time columns exist, foreign keys point at tables
  that exist and have a primary key, the foreign-key graph has no cycle, all time columns
  are of one kind (all datetimes or all numbers);
- data (``validate=True``, vectorised): primary keys unique and non-null, every non-null
  foreign-key value present in the parent (or, with ``missing_foreign_keys="null"``, set to
  null), time columns parse.

Column kinds follow the dtypes: ``numeric`` (ints, floats), ``boolean`` (bool, "boolean"),
``categorical`` (object, string, category; make an integer code categorical with
``df[col].astype("category")``), ``datetime`` (datetimes that are not the time column). Key
and time columns are never features. Columns of other dtypes (timedelta, period, ...) are
kept in the frame but never become features (:attr:`Table.ignored_columns`).

Times: datetime time columns (tz-aware ones are converted to UTC) or numeric ones (e.g. a
year); one database uses one kind. Internally a time is an int64 *time key* that preserves
order and equality (datetimes: nanoseconds; numbers: an order-preserving bit map); a missing
time is :data:`MISSING_TIME`, later than every cutoff, so such a row is never visible
(featuretools drops them too, even without cutoffs).

Constructors: ``Database({...})``, :meth:`Database.from_dataframes` (frames + schema dict),
:meth:`Database.from_folder` (CSV/parquet files + ``schema.json``),
:meth:`Database.from_sqlite` (foreign keys read from the database), and
:meth:`Database.from_entityset` / :meth:`Database.to_entityset` for featuretools.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import featuretools as ft

__all__ = ["Database", "Relationship", "Table", "time_keys"]

MISSING_TIME = np.iinfo(np.int64).max
"""Time key of a row whose time is missing: after every cutoff, so never visible."""

LATEST_CUTOFF = MISSING_TIME - 1
"""Time key that plays "no cutoff": every row with a known time is visible."""

MADE_INDEX = "__row__"
"""Index column given to a table without a primary key in an EntitySet (DFS still counts
its rows with ``COUNT``)."""

SCHEMA_FILE = "schema.json"
"""Name of the schema file that :meth:`Database.from_folder` reads."""

MAX_ERROR_EXAMPLES = 5
"""How many offending values an error message shows."""

COLUMN_KINDS = ("numeric", "boolean", "categorical", "datetime", "other")

_FLIP_LOW_63_BITS = np.int64(0x7FFFFFFFFFFFFFFF)


def _examples(values: Any) -> str:
    shown = list(pd.unique(np.asarray(values, dtype=object))[:MAX_ERROR_EXAMPLES])
    return ", ".join(repr(v) for v in shown)


def _column_kind(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
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
                f"saw dtype {series.dtype} (values {_examples(series.head())}). Pass numbers, "
                "or make every time column a datetime."
            )
        return _float_time_keys(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _datetime_time_keys(series)
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise ValueError(
            f"{what} must be datetimes because the database's time columns are datetimes; saw "
            f"dtype {series.dtype} (values {_examples(series.head())}). Convert them with "
            "pd.to_datetime(...)."
        )
    try:
        parsed = pd.to_datetime(series, errors="raise", utc=True)
    except (ValueError, TypeError, OverflowError) as error:
        bad = pd.to_datetime(series, errors="coerce", utc=True).isna() & series.notna()
        raise ValueError(
            f"{what} does not parse as datetimes: {int(bad.sum())} unparseable values, e.g. "
            f"{_examples(series[bad])} ({str(error).splitlines()[0]}). Fix or drop those "
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
        foreign_keys = dict(foreign_keys or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in foreign_keys.items()):
            raise TypeError(
                f"foreign_keys must map column names (str) to table names (str), got "
                f"{foreign_keys!r}."
            )
        if not df.columns.is_unique:
            duplicated = df.columns[df.columns.duplicated()].tolist()
            raise ValueError(f"Table has duplicate column names {duplicated}; rename them.")
        for role, column in [("primary_key", primary_key), ("time_column", time_column)] + [
            ("foreign key", c) for c in foreign_keys
        ]:
            if column is not None and column not in df.columns:
                raise ValueError(
                    f"{role} {column!r} is not a column of the table; columns are "
                    f"{list(df.columns)}."
                )
        if time_column is not None and (time_column == primary_key or time_column in foreign_keys):
            raise ValueError(f"time_column {time_column!r} is also a key column; use another.")
        self.df = df
        self.primary_key = primary_key
        self.foreign_keys = foreign_keys
        self.time_column = time_column
        keys = {primary_key, time_column, *foreign_keys} - {None}
        self.column_kinds: dict[str, str] = {
            str(c): _column_kind(df[c]) for c in df.columns if c not in keys
        }
        """Kind of every non-key, non-time column: one of :data:`COLUMN_KINDS`."""
        self._cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return (
            f"Table({len(self.df)} rows, primary_key={self.primary_key!r}, "
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


@dataclass(frozen=True)
class Relationship:
    """A foreign key: ``child.column`` holds values of ``parent``'s primary key."""

    child: str
    column: str
    parent: str


class Database:
    """Named tables linked by foreign keys.

    Args:
        tables: ``{name: Table}``; order matters only for the order of DFS features.
        validate: run the data checks (vectorised; the schema checks always run).
            ``False`` is for callers whose data is correct by construction.
        missing_foreign_keys: "raise" (default) or "null": foreign-key values absent from
            the parent become null (the table's frame is copied).
    Raises:
        TypeError: ``tables`` is not a dict of Table.
        ValueError: a schema or data check fails; the message names the table, column and
            offending values and says how to fix it.
    """

    def __init__(
        self,
        tables: Mapping[str, Table],
        validate: bool = True,
        missing_foreign_keys: str = "raise",
    ) -> None:
        if not isinstance(tables, Mapping) or not all(
            isinstance(t, Table) for t in tables.values()
        ):
            raise TypeError(
                "Database needs a dict {name: Table}, got "
                f"{type(tables).__name__} of {[type(t).__name__ for t in dict(tables).values()]}."
            )
        if missing_foreign_keys not in ("raise", "null"):
            raise ValueError(
                f"missing_foreign_keys must be 'raise' or 'null', got {missing_foreign_keys!r}."
            )
        if not tables:
            raise ValueError("Database needs at least one table.")
        self.tables: dict[str, Table] = {str(name): table for name, table in tables.items()}
        self.relationships: list[Relationship] = [
            Relationship(name, column, parent)
            for name, table in self.tables.items()
            for column, parent in table.foreign_keys.items()
        ]
        """Every foreign key, in table order then foreign-key order."""
        self._fk_codes: dict[tuple[str, str], np.ndarray] = {}
        self._check_schema()
        if validate:
            self.validate(missing_foreign_keys)

    # ------------------------------------------------------------------ access
    def __getitem__(self, name: str) -> Table:
        if name not in self.tables:
            raise KeyError(f"no table {name!r}; tables are {list(self.tables)}")
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def __repr__(self) -> str:
        parts = [f"{n}({len(t)})" for n, t in self.tables.items()]
        links = [f"{r.child}.{r.column}->{r.parent}" for r in self.relationships]
        return f"Database(tables=[{', '.join(parts)}], foreign_keys=[{', '.join(links)}])"

    @property
    def time_kind(self) -> str | None:
        """"datetime", "numeric", or None when no table has a time column."""
        kinds = {t.time_kind for t in self.tables.values()} - {None}
        return kinds.pop() if kinds else None

    def foreign_key_codes(self, child: str, column: str) -> np.ndarray:
        """Parent row of every child row (int64, shape (n_child,), -1 = null or unknown)."""
        key = (child, column)
        if key not in self._fk_codes:
            parent = self.tables[self.tables[child].foreign_keys[column]]
            values = self.tables[child].df[column]
            codes = parent.key_index().get_indexer(values)
            self._fk_codes[key] = codes.astype(np.int64)
        return self._fk_codes[key]

    # -------------------------------------------------------------- validation
    def _check_schema(self) -> None:
        for rel in self.relationships:
            if rel.parent not in self.tables:
                raise ValueError(
                    f"table {rel.child!r}: foreign key {rel.column!r} points to table "
                    f"{rel.parent!r}, which is not in the database (tables: "
                    f"{list(self.tables)}). Add that table or fix the foreign_keys entry."
                )
            if self.tables[rel.parent].primary_key is None:
                raise ValueError(
                    f"table {rel.child!r}: foreign key {rel.column!r} points to table "
                    f"{rel.parent!r}, which has no primary key. Give {rel.parent!r} a "
                    "primary_key."
                )
        cycle = _find_cycle(self.relationships)
        if cycle:
            raise ValueError(
                "the foreign keys form a cycle: " + " -> ".join(cycle) + ". DFS needs an "
                "acyclic schema; drop one of these foreign keys (e.g. move a self-reference "
                "into a separate link table)."
            )
        kinds = {name: t.time_kind for name, t in self.tables.items() if t.time_kind}
        if "invalid" in kinds.values():
            name = next(n for n, k in kinds.items() if k == "invalid")
            self.tables[name].time_keys(name)  # raises with the message
        if len(set(kinds.values())) > 1:
            raise ValueError(
                f"time columns mix datetimes and numbers: {kinds}. Use one kind for every "
                "table (e.g. convert years with pd.to_datetime(year, format='%Y'))."
            )

    def validate(self, missing_foreign_keys: str = "raise") -> None:
        """Run the data checks (see the class docstring); cheap, vectorised.

        Raises:
            ValueError: duplicate or null primary keys, foreign-key values missing in the
                parent (when ``missing_foreign_keys="raise"``), unparseable time columns.
        """
        for name, table in self.tables.items():
            if table.primary_key is not None:
                keys = table.df[table.primary_key]
                null = keys.isna().to_numpy()
                if null.any():
                    raise ValueError(
                        f"table {name!r}: primary key {table.primary_key!r} has "
                        f"{int(null.sum())} null values (first at row "
                        f"{int(np.flatnonzero(null)[0])}). Drop those rows or fill the keys."
                    )
                if not table.key_index().is_unique:
                    duplicated = keys[keys.duplicated()]
                    raise ValueError(
                        f"table {name!r}: primary key {table.primary_key!r} has "
                        f"{len(duplicated)} duplicate values, e.g. {_examples(duplicated)}. "
                        "Make the key unique (deduplicate rows or use another column)."
                    )
            table.time_keys(name)
        for rel in self.relationships:
            child = self.tables[rel.child]
            values = child.df[rel.column]
            codes = self.foreign_key_codes(rel.child, rel.column)
            missing = (codes < 0) & values.notna().to_numpy()
            if not missing.any():
                continue
            if missing_foreign_keys == "raise":
                raise ValueError(
                    f"table {rel.child!r}: foreign key {rel.column!r} has {int(missing.sum())} "
                    f"values not found in {rel.parent!r}.{self.tables[rel.parent].primary_key}"
                    f", e.g. {_examples(values[missing])}. Fix them, or pass "
                    "missing_foreign_keys='null' to Database to treat them as null."
                )
            frame = child.df.copy()
            if pd.api.types.is_integer_dtype(values.dtype):
                values = values.astype("Int64")
            frame[rel.column] = values.mask(missing)
            self.tables[rel.child] = Table(
                frame, child.primary_key, child.foreign_keys, child.time_column
            )
            self._fk_codes = {k: v for k, v in self._fk_codes.items() if k[0] != rel.child}

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_dataframes(
        cls,
        frames: Mapping[str, pd.DataFrame],
        schema: Mapping[str, Mapping[str, Any]],
        validate: bool = True,
        missing_foreign_keys: str = "raise",
    ) -> Database:
        """Build from DataFrames and a schema dict.

        Args:
            frames: ``{table: DataFrame}``.
            schema: ``{table: {"primary_key": ..., "foreign_keys": {...},
                "time_column": ...}}``; every key optional, tables missing from the schema
                have no keys and no time column.
        """
        unknown = set(schema) - set(frames)
        if unknown:
            raise ValueError(
                f"schema describes tables {sorted(unknown)} that are not among the frames "
                f"{list(frames)}."
            )
        tables = {}
        for name, frame in frames.items():
            spec = dict(schema.get(name, {}))
            extra = set(spec) - {"primary_key", "foreign_keys", "time_column", "file"}
            if extra:
                raise ValueError(
                    f"schema of table {name!r} has unknown entries {sorted(extra)}; allowed: "
                    "primary_key, foreign_keys, time_column, file."
                )
            tables[name] = Table(
                frame,
                primary_key=spec.get("primary_key"),
                foreign_keys=spec.get("foreign_keys"),
                time_column=spec.get("time_column"),
            )
        return cls(tables, validate=validate, missing_foreign_keys=missing_foreign_keys)

    @classmethod
    def from_folder(
        cls, path: str | os.PathLike[str], validate: bool = True,
        missing_foreign_keys: str = "raise",
    ) -> Database:
        """Build from a folder of ``<table>.csv`` / ``<table>.parquet`` files + ``schema.json``.

        ``schema.json`` format::

            {"tables": {
                "users":  {"primary_key": "id"},
                "orders": {"primary_key": "id", "foreign_keys": {"user_id": "users"},
                           "time_column": "created_at", "file": "orders_2024.parquet"}}}

        Every table of the database is listed under "tables" (in the order DFS should use);
        "file" is optional (default: ``<table>.parquet``, else ``<table>.csv``). CSV time
        columns are parsed by the database (strings -> datetimes).
        """
        folder = Path(path)
        schema_path = folder / SCHEMA_FILE
        if not schema_path.is_file():
            raise ValueError(
                f"{folder} has no {SCHEMA_FILE}; write one (see Database.from_folder's "
                "docstring for the format)."
            )
        try:
            schema = json.loads(schema_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{schema_path} is not valid JSON: {error}.") from None
        if not isinstance(schema, dict) or not isinstance(schema.get("tables"), dict):
            raise ValueError(
                f"{schema_path} must be an object with a 'tables' object, got "
                f"{type(schema).__name__}: {str(schema)[:200]}."
            )
        frames = {}
        for name, spec in schema["tables"].items():
            candidates = (
                [spec["file"]] if isinstance(spec, dict) and spec.get("file")
                else [f"{name}.parquet", f"{name}.csv"]
            )
            found = [folder / c for c in candidates if (folder / c).is_file()]
            if not found:
                raise ValueError(
                    f"table {name!r}: none of {candidates} exists in {folder}; add the file "
                    "or set 'file' in the schema."
                )
            file = found[0]
            if file.suffix == ".parquet":
                frames[name] = pd.read_parquet(file)
            elif file.suffix == ".csv":
                frames[name] = pd.read_csv(file)
            else:
                raise ValueError(f"table {name!r}: {file.name} is neither .csv nor .parquet.")
        return cls.from_dataframes(
            frames, schema["tables"], validate=validate,
            missing_foreign_keys=missing_foreign_keys,
        )

    @classmethod
    def from_sqlite(
        cls,
        database: str | os.PathLike[str] | sqlite3.Connection,
        time_columns: Mapping[str, str] | None = None,
        tables: list[str] | None = None,
        validate: bool = True,
        missing_foreign_keys: str = "raise",
    ) -> Database:
        """Build from a SQLite file or connection; keys come from the database itself.

        Primary keys are read with ``PRAGMA table_info`` (composite keys -> no primary key)
        and foreign keys with ``PRAGMA foreign_key_list``. SQLite has no time type, so time
        columns are named in ``time_columns={table: column}`` (parsed as datetimes).

        Raises:
            ValueError: a foreign key is composite or does not point at the parent's
                primary key (not representable here), or a named table is absent.
        """
        own = not isinstance(database, sqlite3.Connection)
        connection = sqlite3.connect(os.fspath(database)) if own else database
        try:
            names = [
                r[0] for r in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
                )
            ]
            if tables is not None:
                absent = [t for t in tables if t not in names]
                if absent:
                    raise ValueError(f"tables {absent} are not in the SQLite database {names}.")
                names = list(tables)
            time_columns = dict(time_columns or {})
            built = {}
            primary = {}
            for name in names:
                info = connection.execute(f'PRAGMA table_info("{name}")').fetchall()
                pk_columns = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
                primary[name] = pk_columns[0] if len(pk_columns) == 1 else None
            for name in names:
                frame = pd.read_sql_query(f'SELECT * FROM "{name}"', connection)
                foreign_keys = {}
                rows = connection.execute(f'PRAGMA foreign_key_list("{name}")').fetchall()
                by_id: dict[int, list[tuple]] = {}
                for row in rows:
                    by_id.setdefault(row[0], []).append(row)
                for group in by_id.values():
                    parent, column, target = group[0][2], group[0][3], group[0][4]
                    if len(group) > 1:
                        raise ValueError(
                            f"table {name!r}: composite foreign key {[g[3] for g in group]} -> "
                            f"{parent!r} is not supported; add a single-column key."
                        )
                    if parent not in names:
                        if tables is not None:
                            continue  # parent deliberately left out
                        raise ValueError(
                            f"table {name!r}: foreign key {column!r} points to {parent!r}, "
                            "which is not a table of the SQLite database."
                        )
                    if target is not None and target != primary[parent]:
                        raise ValueError(
                            f"table {name!r}: foreign key {column!r} references "
                            f"{parent}.{target}, which is not {parent!r}'s single-column "
                            "primary key; only such foreign keys are supported."
                        )
                    foreign_keys[column] = parent
                time_column = time_columns.get(name)
                built[name] = Table(frame, primary[name], foreign_keys, time_column)
            unknown = set(time_columns) - set(built)
            if unknown:
                raise ValueError(f"time_columns names unknown tables {sorted(unknown)}.")
        finally:
            if own:
                connection.close()
        return cls(built, validate=validate, missing_foreign_keys=missing_foreign_keys)

    @classmethod
    def from_entityset(cls, entityset: ft.EntitySet, validate: bool = True) -> Database:
        """Build from a featuretools EntitySet (indexes, time indexes, relationships)."""
        from featuretools.entityset.entityset import LTI_COLUMN_NAME

        tables = {}
        for frame in entityset.dataframes:
            name = frame.ww.name
            data = pd.DataFrame(frame).drop(columns=[LTI_COLUMN_NAME], errors="ignore")
            data = data.reset_index(drop=True)
            foreign_keys = {
                r._child_column_name: r._parent_dataframe_name
                for r in entityset.relationships
                if r._child_dataframe_name == name
            }
            tables[name] = Table(data, frame.ww.index, foreign_keys, frame.ww.time_index)
        return cls(tables, validate=validate)

    def to_entityset(
        self,
        name: str = "rdbpfn",
        encode_keys: bool = False,
        time_map: Callable[[np.ndarray], Any] | None = None,
    ) -> ft.EntitySet:
        """Convert to a featuretools EntitySet with explicit logical types.

        numeric -> Double, categorical -> Categorical (sorted categories), boolean ->
        Boolean/BooleanNullable, datetime -> Datetime; the time column is the time index.
        Tables without a primary key get a made index :data:`MADE_INDEX`.

        Args:
            name: the EntitySet id.
            encode_keys: replace every primary key by its row number and every foreign key
                by its parent's row number (IntegerNullable). Then featuretools treats all
                keys as numeric keys and never aggregates them, as rdbpfn's DFS does.
            time_map: maps a table's int64 time keys (n,) to the time index values; default:
                the parsed time column (datetimes normalised to tz-naive UTC).
        """
        import featuretools as ft

        for rel in self.relationships:
            if rel.column == self.tables[rel.child].primary_key:
                raise ValueError(
                    f"table {rel.child!r}: column {rel.column!r} is both the primary key and "
                    f"a foreign key to {rel.parent!r}; featuretools cannot represent that "
                    "(rdbpfn's vectorized DFS can). For featuretools, give the table a "
                    "separate primary key column."
                )
        from woodwork.logical_types import (
            Boolean,
            BooleanNullable,
            Categorical,
            Datetime,
            Double,
            IntegerNullable,
        )

        entityset = ft.EntitySet(id=name)
        for table_name, table in self.tables.items():
            data: dict[str, Any] = {}
            types: dict[str, Any] = {}
            for column in table.df.columns:
                kind = table.column_kinds.get(column)
                values = table.df[column]
                if column == table.primary_key and encode_keys:
                    data[column] = pd.array(np.arange(len(table)), dtype="Int64")
                    types[column] = IntegerNullable
                elif column in table.foreign_keys and encode_keys:
                    codes = self.foreign_key_codes(table_name, column)
                    data[column] = pd.array(np.where(codes < 0, None, codes), dtype="Int64")
                    types[column] = IntegerNullable
                elif self._integer_key(table_name, column):
                    # nullable on both sides: featuretools casts a foreign key to its
                    # parent's type, which must then admit the foreign key's nulls
                    data[column] = values.astype("Int64")
                    types[column] = IntegerNullable
                elif column == table.time_column:
                    data[column] = (
                        time_map(table.time_keys(table_name)) if time_map is not None
                        else values if table.time_kind == "numeric"
                        else pd.to_datetime(table.time_keys(table_name), unit="ns").where(
                            table.time_keys(table_name) != MISSING_TIME)
                    )
                elif kind == "numeric":
                    data[column] = table.numeric_values(column)
                    types[column] = Double
                elif kind == "categorical":
                    codes, categories = table.categorical_codes(column)
                    data[column] = pd.Categorical.from_codes(codes, categories=categories)
                    types[column] = Categorical
                elif kind == "boolean":
                    nullable = values.isna().any()
                    data[column] = values.astype("boolean" if nullable else bool)
                    types[column] = BooleanNullable if nullable else Boolean
                elif kind == "datetime":
                    data[column] = values
                    types[column] = Datetime
                else:
                    data[column] = values
            frame = pd.DataFrame(data, index=table.df.index).reset_index(drop=True)
            index = table.primary_key
            entityset.add_dataframe(
                dataframe_name=table_name,
                dataframe=frame,
                index=index if index is not None else MADE_INDEX,
                make_index=index is None,
                time_index=table.time_column,
                logical_types=types,
            )
        for rel in self.relationships:
            entityset.add_relationship(
                rel.parent, self.tables[rel.parent].primary_key, rel.child, rel.column
            )
        return entityset


    def _integer_key(self, table_name: str, column: str) -> bool:
        """Whether ``column`` is a primary or foreign key whose key values are integers."""
        table = self.tables[table_name]
        if column == table.primary_key:
            key_table = table
        elif column in table.foreign_keys:
            key_table = self.tables[table.foreign_keys[column]]
        else:
            return False
        assert key_table.primary_key is not None
        return pd.api.types.is_integer_dtype(key_table.df[key_table.primary_key].dtype)


def _find_cycle(relationships: list[Relationship]) -> list[str]:
    """A cycle in the child -> parent graph as [t0, t1, ..., t0], or [] if acyclic."""
    parents: dict[str, list[str]] = {}
    for rel in relationships:
        parents.setdefault(rel.child, []).append(rel.parent)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for parent in parents.get(node, []):
            if state.get(parent) == 1:
                return path[path.index(parent):] + [parent]
            if parent not in state:
                found = visit(parent)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in list(parents):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []
