"""Databases in other forms: DataFrames + a schema dict, a folder of files, SQLite, featuretools.

:class:`DatabaseFormats` holds the readers and writers of :class:`rdbpfn.database.Database`
(which inherits them), so ``Database.from_sqlite(...)`` reads like a constructor while the
data model and its checks stay in :mod:`rdbpfn.database`.

Keys of the readers (:meth:`~DatabaseFormats.from_dataframes`,
:meth:`~DatabaseFormats.from_folder`, :meth:`~DatabaseFormats.from_sqlite`), in this order:

1. declared: what the source says (the ``schema`` dict, ``schema.json``, or the SQLite file's
   ``PRIMARY KEY`` / ``REFERENCES`` constraints). A declared self-reference
   (``employees.manager_id -> employees``) is dropped with a warning and the column kept as an
   ordinary categorical column (a number column without an id-like name becomes
   ``category``): the project's rule, see :mod:`rdbpfn.database`.
2. given: ``primary_keys={"orders": "order_id"}``, ``foreign_keys={"orders": {"customer_id":
   "customers"}}``, ``time_columns={"orders": "at"}``, keyed by table, add to the declared
   ones. ``primary_keys={"t": None}`` says t has no primary key; ``foreign_keys={"t": {}}``
   says t has no foreign keys beyond the declared ones (so none is inferred);
   ``foreign_keys={"t": {"c": None}}`` drops a declared one. Where a given key contradicts a
   declared one, for SQLite the argument wins, with a warning (a file's DDL is often not yours
   to edit); for the schema dict and ``schema.json`` it is an error (both are yours: make them
   agree). A given self-reference is an error.
3. inferred (``infer_keys=True``, the default; ``False`` turns it off): only what is neither
   declared nor given: a table's primary key when it has none (:func:`inferred_primary_key`),
   then a table's foreign keys when it has none (:func:`inferred_foreign_keys`; never one that
   would close a cycle). Every inferred key is reported: one :class:`KeyInferenceWarning`
   lists them and the near misses (a name that fits but values that are not all contained,
   several parents that fit), and ``db.inferred_keys`` keeps them.

featuretools is imported only inside the two EntitySet converters: it is heavy to import and
only the reference engine and these converters need it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

import networkx as nx
import numpy as np
import pandas as pd

from rdbpfn.duckdb_tables import (
    SAMPLE_ROWS,
    DuckDBSource,
    DuckDBTable,
    DuckDBValues,
    key_types_agree,
    quote,
)
from rdbpfn.table import MISSING_TIME, Table, is_id_like

if TYPE_CHECKING:
    import duckdb
    import featuretools as ft

__all__ = ["MADE_INDEX", "SCHEMA_FILE", "DatabaseFormats", "KeyInferenceWarning",
           "dropped_self_reference", "inferred_foreign_keys", "inferred_primary_key"]

MADE_INDEX = "__row__"
"""Index column given to a table without a primary key in an EntitySet (DFS still counts
its rows with ``COUNT``)."""

SCHEMA_FILE = "schema.json"
"""Name of the schema file that :meth:`DatabaseFormats.from_folder` reads when present."""

TABLE_FILE_SUFFIXES = (".parquet", ".csv")
"""Files that :meth:`DatabaseFormats.from_folder` reads as tables, preferred first."""

_SCHEMA_ENTRIES = ("primary_key", "foreign_keys", "time_column", "file")


class KeyInferenceWarning(UserWarning):
    """A reader inferred keys (listed in the message and in ``db.inferred_keys``).

    Pass the keys explicitly, or ``infer_keys=False``, to make the schema yours;
    ``warnings.simplefilter("ignore", KeyInferenceWarning)`` silences the report.
    """


def dropped_self_reference(table: str, column: str) -> str:
    """The message of a dropped self-reference (the readers here and ``priors.ddl``)."""
    return (
        f"table {table!r}: foreign key {column!r} points at its own table (a self-reference), "
        f"which DFS cannot walk; the foreign key was dropped and {column!r} is kept as an "
        "ordinary column"
    )


# ------------------------------------------------------------------------ key inference
def _normalized(name: object) -> str:
    """``Order_ID``, ``orderId``, ``order-id`` -> ``orderid``."""
    return re.sub(r"[\W_]", "", str(name)).lower()


def _stems(table: str) -> set[str]:
    """Normalized table name and its English singulars (``categories`` -> ``category``)."""
    name = _normalized(table)
    stems = {name}
    if name.endswith("ies"):
        stems.add(name[:-3] + "y")
    if name.endswith(("ses", "xes", "zes", "ches", "shes")):
        stems.add(name[:-2])
    if name.endswith("s") and not name.endswith("ss"):
        stems.add(name[:-1])
    return stems - {""}


def _key_like(series: pd.Series, floats: bool) -> bool:
    """Integers, text or categories (and, with ``floats``, whole-number floats: an integer
    column with nulls read from CSV)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return False
    if (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype)):
        return True
    if floats and pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        return bool(np.all(np.isfinite(values) & (values == np.round(values))))
    return False


def inferred_primary_key(
    table: str, frame: pd.DataFrame, taken: Collection[str] = (),
    unique: Callable[[str], bool] | None = None,
) -> str | None:
    """The primary key that names and values suggest, or None.

    A candidate is named ``id``, ``<table>_id``, ``<singular table>_id`` or ``<table>Id``
    (case, ``_``, ``-`` and spaces ignored: ``orders`` -> ``id``, ``order_id``, ``orderId``,
    ``OrderID``, ``orders_id``), is not in ``taken`` (the table's other roles), holds integers
    or text, and is unique and non-null. ``id`` comes first, then frame order.

    ``unique(column)`` says whether a column is unique and non-null when ``frame`` holds only
    a sample of the table (a table that stays in DuckDB); None = read it from ``frame``.
    """
    wanted = {"id"} | {stem + "id" for stem in _stems(table)}
    names = [c for c in frame.columns if c not in taken and _normalized(c) in wanted]
    names.sort(key=lambda c: _normalized(c) != "id")  # stable: frame order otherwise
    for column in names:
        series = frame[column]
        if not _key_like(series, floats=False):
            continue
        if unique(column) if unique is not None else (series.notna().all()
                                                      and series.is_unique):
            return str(column)
    return None


def inferred_foreign_keys(
    table: str, frame: pd.DataFrame, parents: Mapping[str, tuple[str, pd.Series | None]],
    taken: Collection[str] = (),
    contained: Callable[[str, str], float | None] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Foreign keys that names and values suggest: ``({column: parent}, notes)``.

    A column (not in ``taken``) links to a parent table when its name is the parent's key
    name (``customer_id`` -> ``customers.customer_id``; not a bare ``id``) or
    ``<parent or its singular>_id`` (``customer_id`` -> ``customers.id``), it holds integers,
    text or whole-number floats, and its non-null values (at least one) are all among the
    parent's key values (containment, one hash lookup per value). A column that fits several
    parents, or whose name fits but whose values are not all contained, is left out and
    described in ``notes``.

    Args:
        parents: ``{table: (primary key name, key values)}`` of every table with a primary
            key; ``table`` itself is skipped (self-references are never inferred).
        contained: ``contained(column, parent)`` = the share of the column's non-null values
            that are keys of ``parent`` (None: no values), when ``frame`` holds only a sample
            (a table that stays in DuckDB; the key values are then None); None = compute it
            from ``frame`` and ``parents``.
    """
    found: dict[str, str] = {}
    notes: list[str] = []
    for column in frame.columns:
        if column in taken:
            continue
        name = _normalized(column)
        candidates = [
            parent for parent, (key, _) in parents.items()
            if parent != table and (
                (name == _normalized(key) and name != "id")
                or name in {stem + "id" for stem in _stems(parent)}
            )
        ]
        if not candidates or not _key_like(frame[column], floats=True):
            continue
        if contained is not None:
            measured = {p: contained(str(column), p) for p in candidates}
            if any(share is None for share in measured.values()):
                continue
            shares = {p: float(share) for p, share in measured.items() if share is not None}
        else:
            values = frame[column].dropna()
            if values.empty:
                continue
            shares = {p: float(values.isin(parents[p][1]).mean()) for p in candidates}
        inside = [p for p, share in shares.items() if share == 1.0]
        if not inside:
            notes += [
                f"{table}.{column} -> {p}: only {np.floor(share * 100):.0f}% of its values "
                f"are keys of {p}"
                for p, share in shares.items()
            ]
        elif len(inside) > 1:
            notes.append(
                f"{table}.{column} matches {inside} by name and containment; choose with "
                f"foreign_keys={{{table!r}: {{{str(column)!r}: ...}}}}"
            )
        else:
            found[str(column)] = inside[0]
    return found, notes


# ------------------------------------------------------------------ schema assembly
class _Values(Protocol):
    """The value checks of key inference, for tables held elsewhere (frames are samples)."""

    def unique(self, table: str, column: str) -> bool: ...

    def contained(self, table: str, column: str, parent: str, key: str) -> float | None: ...


@dataclass(frozen=True)
class _Given:
    """What a reader's caller says: keys by table, inference, and the database's checks."""

    primary_keys: Mapping[str, str | None] | None = None
    foreign_keys: Mapping[str, Mapping[str, str | None]] | None = None
    time_columns: Mapping[str, str | None] | None = None
    infer_keys: bool = True
    validate: bool = True
    missing_foreign_keys: str = "raise"
    static_tables: Collection[str] | None = None

    def database(self, cls: type, tables: Mapping[str, Table], report: list[str]) -> Any:
        """``cls(tables, ...)`` with the checks, and the inference report attached."""
        database = cls(tables, validate=self.validate,
                       missing_foreign_keys=self.missing_foreign_keys,
                       static_tables=self.static_tables)
        database.inferred_keys = report
        return database


@dataclass
class _Keys:
    """Keys and time column of one table while a reader assembles them."""

    primary_key: str | None = None
    foreign_keys: dict[str, str] = field(default_factory=dict)
    time_column: str | None = None
    primary_key_said: bool = False
    """Declared or given (None included): never inferred."""
    foreign_keys_said: bool = False
    references: dict[str, str] = field(default_factory=dict)
    """Declared foreign key -> the parent column it references (SQLite), checked to be the
    parent's primary key once the arguments are applied."""


def _check_arguments(
    names: list[str],
    primary_keys: Mapping[str, str | None] | None,
    foreign_keys: Mapping[str, Mapping[str, str | None]] | None,
    time_columns: Mapping[str, str | None] | None,
) -> None:
    examples = {"primary_keys": "{'orders': 'order_id'}",
                "foreign_keys": "{'orders': {'customer_id': 'customers'}}",
                "time_columns": "{'orders': 'created_at'}"}
    arguments = {"primary_keys": primary_keys, "foreign_keys": foreign_keys,
                 "time_columns": time_columns}
    for argument, given in arguments.items():
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise TypeError(
                f"{argument} must be a dict keyed by table, e.g. {argument}="
                f"{examples[argument]}; got {type(given).__name__}: {given!r}."
            )
        unknown = [t for t in given if t not in names]
        if unknown:
            raise ValueError(
                f"{argument} names unknown tables {unknown}; tables are {names}."
            )
    for table, columns in (foreign_keys or {}).items():
        if not isinstance(columns, Mapping):
            raise TypeError(
                f"foreign_keys[{table!r}] must map columns to parent tables, e.g. "
                f"foreign_keys={examples['foreign_keys']}; got {columns!r}."
            )
        for column, parent in columns.items():
            if parent == table:
                raise ValueError(
                    f"foreign_keys[{table!r}] makes {column!r} point at its own table (a "
                    "self-reference), which DFS cannot walk; leave it out: the column stays an "
                    "ordinary column."
                )
            if parent is not None and parent not in names:
                raise ValueError(
                    f"foreign_keys[{table!r}][{column!r}] points to table {parent!r}, which is "
                    f"not among the tables {names}."
                )


def _conflict(message: str, arguments_win: bool) -> None:
    if arguments_win:
        warnings.warn(f"{message}; the argument wins.", stacklevel=6)
    else:
        raise ValueError(f"{message}. Make them agree, or give the key in only one place.")


def _apply_arguments(
    keys: dict[str, _Keys],
    primary_keys: Mapping[str, str | None] | None,
    foreign_keys: Mapping[str, Mapping[str, str | None]] | None,
    time_columns: Mapping[str, str | None] | None,
    source: str,
    arguments_win: bool,
) -> None:
    for name, column in (primary_keys or {}).items():
        entry = keys[name]
        if entry.primary_key_said and entry.primary_key != column:
            _conflict(
                f"table {name!r}: primary_keys gives {column!r}, but {source} declares the "
                f"primary key {entry.primary_key!r}", arguments_win,
            )
        entry.primary_key, entry.primary_key_said = column, True
    for name, columns in (foreign_keys or {}).items():
        entry = keys[name]
        entry.foreign_keys_said = True
        for column, parent in columns.items():
            declared = entry.foreign_keys.get(column)
            if declared is not None and declared != parent:
                given = f"{column!r} -> {parent!r}" if parent else f"no foreign key {column!r}"
                _conflict(
                    f"table {name!r}: foreign_keys gives {given}, but {source} declares "
                    f"{column!r} -> {declared!r}", arguments_win,
                )
            entry.references.pop(column, None)
            if parent is None:
                entry.foreign_keys.pop(column, None)
            else:
                entry.foreign_keys[column] = parent
    for name, column in (time_columns or {}).items():
        entry = keys[name]
        if entry.time_column is not None and entry.time_column != column:
            _conflict(
                f"table {name!r}: time_columns gives {column!r}, but {source} declares the "
                f"time column {entry.time_column!r}", arguments_win,
            )
        entry.time_column = column


def _check_columns(frames: Mapping[str, pd.DataFrame], keys: dict[str, _Keys]) -> None:
    """Named columns exist, the time column is no key, foreign keys point at known tables."""
    for name, entry in keys.items():
        columns = list(frames[name].columns)
        roles = [("primary key", entry.primary_key), ("time column", entry.time_column)]
        roles += [("foreign key", column) for column in entry.foreign_keys]
        for role, column in roles:
            if column is not None and column not in columns:
                raise ValueError(
                    f"table {name!r}: {role} {column!r} is not one of its columns {columns}; "
                    "fix the name."
                )
        if entry.time_column is not None and entry.time_column in (
            entry.primary_key, *entry.foreign_keys
        ):
            raise ValueError(
                f"table {name!r}: time column {entry.time_column!r} is also a key column; "
                "name another time column."
            )
        for column, parent in entry.foreign_keys.items():
            if parent not in keys:
                raise ValueError(
                    f"table {name!r}: foreign key {column!r} points to table {parent!r}, which "
                    f"is not among the tables {list(keys)}; add that table or drop the key "
                    f"with foreign_keys={{{name!r}: {{{column!r}: None}}}}."
                )


def _check_references(keys: dict[str, _Keys]) -> None:
    """Declared references (SQLite) point at their parent's primary key."""
    for name, entry in keys.items():
        for column, parent in entry.foreign_keys.items():
            drop = f"drop it with foreign_keys={{{name!r}: {{{column!r}: None}}}}"
            target, key = entry.references.get(column), keys[parent].primary_key
            if target is not None and target.lower() != str(key).lower():
                raise ValueError(
                    f"table {name!r}: foreign key {column!r} references {parent}.{target}, "
                    f"which is not {parent!r}'s single-column primary key ({key!r}); only "
                    f"such foreign keys are supported. Make it the key with primary_keys="
                    f"{{{parent!r}: {target!r}}}, or {drop}."
                )


def _infer(frames: Mapping[str, pd.DataFrame], keys: dict[str, _Keys],
           values: _Values | None = None) -> list[str]:
    """Fill undeclared primary keys, then undeclared foreign keys; return the report.
    ``values`` answers the value checks when ``frames`` are samples."""
    report: list[str] = []
    for name, entry in keys.items():
        if entry.primary_key_said:
            continue
        taken = {entry.time_column, *entry.foreign_keys} - {None}
        column = inferred_primary_key(
            name, frames[name], taken,
            None if values is None else lambda c, name=name: values.unique(name, c))
        if column is not None:
            entry.primary_key = column
            report.append(f"{name}.{column} (primary key, inferred: name and unique non-null "
                          "values)")
    parents = {
        name: (entry.primary_key, None if values is not None else frames[name][entry.primary_key])
        for name, entry in keys.items() if entry.primary_key is not None
    }
    graph = nx.DiGraph()  # child -> parent
    graph.add_nodes_from(keys)
    graph.add_edges_from((n, p) for n, e in keys.items() for p in e.foreign_keys.values())
    notes: list[str] = []
    for name, entry in keys.items():
        if entry.foreign_keys_said or entry.foreign_keys:
            continue
        taken = {entry.primary_key, entry.time_column} - {None}
        contained = None if values is None else (
            lambda c, p, name=name: values.contained(name, c, p, str(parents[p][0])))
        found, ambiguous = inferred_foreign_keys(name, frames[name], parents, taken, contained)
        notes += ambiguous
        for column, parent in found.items():
            if nx.has_path(graph, parent, name):
                notes.append(f"{name}.{column} -> {parent} would close a cycle")
                continue
            graph.add_edge(name, parent)
            entry.foreign_keys[column] = parent
            report.append(f"{name}.{column} -> {parent} (inferred: name and 100% containment)")
    if report or notes:
        warnings.warn(
            "inferred keys (pass them with primary_keys=/foreign_keys= to make them explicit, "
            "or infer_keys=False to turn inference off): " + ("; ".join(report) or "none")
            + (". Not inferred: " + "; ".join(notes) if notes else "") + ".",
            KeyInferenceWarning, stacklevel=5,
        )
    return report


def _declared_from_schema(
    schema: Mapping[str, Any], names: list[str], source: str,
) -> dict[str, _Keys]:
    unknown = [t for t in schema if t not in names]
    if unknown:
        raise ValueError(
            f"{source} describes tables {unknown} that are not among the frames {names}."
        )
    declared = {}
    for name, spec in schema.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"{source}: the entry of table {name!r} must be an object with "
                             f"entries among {list(_SCHEMA_ENTRIES)}, got {spec!r}.")
        extra = set(spec) - set(_SCHEMA_ENTRIES)
        if extra:
            raise ValueError(
                f"schema of table {name!r} has unknown entries {sorted(extra)}; allowed: "
                "primary_key, foreign_keys, time_column, file."
            )
        declared[name] = _Keys(
            primary_key=spec.get("primary_key"),
            foreign_keys=dict(spec.get("foreign_keys") or {}),
            time_column=spec.get("time_column"),
            primary_key_said="primary_key" in spec,
            foreign_keys_said="foreign_keys" in spec,
        )
    return declared


def _assemble(
    frames: Mapping[str, pd.DataFrame],
    declared: dict[str, _Keys],
    source: str,
    arguments_win: bool,
    given: _Given,
    values: _Values | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, _Keys], list[str]]:
    """Declared keys + arguments + inference (see the module docstring): the frames (a
    dropped self-reference made categorical), each table's keys, and the inference report.
    ``frames`` may be samples of the tables; ``values`` then answers the value checks."""
    names = list(frames)
    _check_arguments(names, given.primary_keys, given.foreign_keys, given.time_columns)
    keys = {name: declared.get(name) or _Keys() for name in names}
    frames = dict(frames)
    for name, entry in keys.items():
        for column in [c for c, parent in entry.foreign_keys.items() if parent == name]:
            warnings.warn(dropped_self_reference(name, column) + f" (declared in {source}).",
                          stacklevel=4)
            del entry.foreign_keys[column]
            entry.references.pop(column, None)
            if column not in frames[name].columns:
                continue
            series = frames[name][column]
            if (pd.api.types.is_numeric_dtype(series.dtype)
                    and not pd.api.types.is_bool_dtype(series.dtype)
                    and not is_id_like(column, series)):
                # its values name rows: counted (MODE, NUM_UNIQUE), never averaged
                frames[name] = frames[name].assign(**{column: series.astype("category")})
    _apply_arguments(keys, given.primary_keys, given.foreign_keys, given.time_columns, source,
                     arguments_win)
    _check_columns(frames, keys)
    report = _infer(frames, keys, values) if given.infer_keys else []
    _check_references(keys)
    return frames, keys, report


class DatabaseFormats:
    """Readers (class methods) and writers of :class:`~rdbpfn.database.Database`.

    A mixin: every method relies on the database's ``tables``, ``relationships`` and
    ``foreign_key_codes`` and on ``cls(tables, validate=..., missing_foreign_keys=...,
    static_tables=...)``.
    """

    tables: dict[str, Table]
    inferred_keys: list[str]

    @classmethod
    def _from_frames(cls, frames: Mapping[str, pd.DataFrame], declared: dict[str, _Keys],
                     source: str, arguments_win: bool, given: _Given) -> Self:
        """Declared keys + arguments + inference (see the module docstring) -> Database."""
        frames, keys, report = _assemble(frames, declared, source, arguments_win, given)
        tables = {
            name: Table(frames[name], entry.primary_key, entry.foreign_keys, entry.time_column)
            for name, entry in keys.items()
        }
        return given.database(cls, tables, report)

    @classmethod
    def from_dataframes(
        cls,
        frames: Mapping[str, pd.DataFrame],
        schema: Mapping[str, Mapping[str, Any]] | None = None,
        validate: bool = True,
        missing_foreign_keys: str = "raise",
        *,
        primary_keys: Mapping[str, str | None] | None = None,
        foreign_keys: Mapping[str, Mapping[str, str | None]] | None = None,
        time_columns: Mapping[str, str | None] | None = None,
        infer_keys: bool = True,
        static_tables: Collection[str] | None = None,
    ) -> Self:
        """Build from DataFrames, a schema dict and/or key arguments.

        Args:
            frames: ``{table: DataFrame}``.
            schema: ``{table: {"primary_key": ..., "foreign_keys": {...},
                "time_column": ...}}``; every entry optional; what it leaves out can come
                from the arguments or inference.
            primary_keys, foreign_keys, time_columns: keys by table, added to the schema's;
                a contradiction with it is an error (see the module docstring).
            infer_keys: infer what neither the schema nor the arguments say (see the module
                docstring); every inferred key is reported.
            static_tables: see :class:`~rdbpfn.database.Database`.
        Raises:
            ValueError: unknown tables or columns, contradicting keys, or a failed check of
                :class:`~rdbpfn.database.Database`.
        """
        names = list(frames)
        declared = _declared_from_schema(schema or {}, names, "schema")
        return cls._from_frames(frames, declared, "the schema", False, _Given(
            primary_keys, foreign_keys, time_columns, infer_keys, validate,
            missing_foreign_keys, static_tables))

    @classmethod
    def from_folder(
        cls,
        path: str | os.PathLike[str],
        validate: bool = True,
        missing_foreign_keys: str = "raise",
        *,
        primary_keys: Mapping[str, str | None] | None = None,
        foreign_keys: Mapping[str, Mapping[str, str | None]] | None = None,
        time_columns: Mapping[str, str | None] | None = None,
        infer_keys: bool = True,
        static_tables: Collection[str] | None = None,
    ) -> Self:
        """Build from a folder of ``<table>.csv`` / ``<table>.parquet`` files.

        With a ``schema.json``, it lists the tables and declares their keys::

            {"tables": {
                "users":  {"primary_key": "id"},
                "orders": {"primary_key": "id", "foreign_keys": {"user_id": "users"},
                           "time_column": "created_at", "file": "orders_2024.parquet"}}}

        Every table of the database is listed under "tables" (in the order DFS should use);
        "file" is optional (default: ``<table>.parquet``, else ``<table>.csv``). Without a
        ``schema.json``, every ``.parquet`` and ``.csv`` file is a table named after it, in
        name order (``x.parquet`` wins over ``x.csv``), and the keys come from the arguments
        and inference. CSV time columns are parsed by the database (strings -> datetimes).

        Args:
            primary_keys, foreign_keys, time_columns, infer_keys, static_tables: as in
                :meth:`from_dataframes`; a contradiction with ``schema.json`` is an error.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise ValueError(
                f"{folder} is not a folder; pass the folder that holds the table files (and, "
                f"optionally, a {SCHEMA_FILE}: see Database.from_folder's docstring)."
            )
        schema_path = folder / SCHEMA_FILE
        if schema_path.is_file():
            try:
                schema = json.loads(schema_path.read_text())
            except json.JSONDecodeError as error:
                raise ValueError(f"{schema_path} is not valid JSON: {error}.") from None
            if not isinstance(schema, dict) or not isinstance(schema.get("tables"), dict):
                raise ValueError(
                    f"{schema_path} must be an object with a 'tables' object, got "
                    f"{type(schema).__name__}: {str(schema)[:200]}."
                )
            specs = schema["tables"]
            files = {}
            for name, spec in specs.items():
                candidates = (
                    [spec["file"]] if isinstance(spec, dict) and spec.get("file")
                    else [name + suffix for suffix in TABLE_FILE_SUFFIXES]
                )
                found = [folder / c for c in candidates if (folder / c).is_file()]
                if not found:
                    raise ValueError(
                        f"table {name!r}: none of {candidates} exists in {folder}; add the "
                        "file or set 'file' in the schema."
                    )
                files[name] = found[0]
        else:
            specs = {}
            files = {}
            for file in sorted(folder.iterdir(), key=lambda f: (f.stem, f.suffix != ".parquet")):
                if file.is_file() and file.suffix in TABLE_FILE_SUFFIXES:
                    files.setdefault(file.stem, file)
            if not files:
                raise ValueError(
                    f"{folder} has no {SCHEMA_FILE} and no .parquet or .csv files; add the "
                    "table files (one per table, named after it)."
                )
        frames = {}
        for name, file in files.items():
            if file.suffix == ".parquet":
                frames[name] = pd.read_parquet(file)
            elif file.suffix == ".csv":
                frames[name] = pd.read_csv(file)
            else:
                raise ValueError(f"table {name!r}: {file.name} is neither .csv nor .parquet.")
        declared = _declared_from_schema(specs, list(frames), str(schema_path))
        return cls._from_frames(frames, declared, str(schema_path), False, _Given(
            primary_keys, foreign_keys, time_columns, infer_keys, validate,
            missing_foreign_keys, static_tables))

    @classmethod
    def from_sqlite(
        cls,
        database: str | os.PathLike[str] | sqlite3.Connection,
        time_columns: Mapping[str, str | None] | None = None,
        tables: list[str] | None = None,
        validate: bool = True,
        missing_foreign_keys: str = "raise",
        *,
        primary_keys: Mapping[str, str | None] | None = None,
        foreign_keys: Mapping[str, Mapping[str, str | None]] | None = None,
        infer_keys: bool = True,
        static_tables: Collection[str] | None = None,
    ) -> Self:
        """Build from a SQLite file or connection; keys come from the database itself, the
        arguments and inference (see the module docstring).

        Primary keys are read with ``PRAGMA table_info`` (a composite key declares none) and
        foreign keys with ``PRAGMA foreign_key_list`` (a composite one is dropped with a
        warning, as is a self-reference). SQLite has no time type, so time columns are named
        in ``time_columns={table: column}`` (parsed as datetimes).

        Args:
            time_columns: ``{table: column}``.
            tables: read only these tables (foreign keys to the others are left out).
            primary_keys, foreign_keys: keys by table, added to the declared ones; where they
                contradict a declared key the argument wins, with a warning.
            infer_keys, static_tables: as in :meth:`from_dataframes`.
        Raises:
            ValueError: a named table is absent, or a foreign key does not point at a table
                of the database or at its parent's primary key (not representable here; the
                message says which argument fixes it).
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
            everything = {n.lower(): n for n in names}
            if tables is not None:
                absent = [t for t in tables if t not in names]
                if absent:
                    raise ValueError(f"tables {absent} are not in the SQLite database {names}.")
                names = list(tables)
            frames = {}
            declared = {}
            for name in names:
                info = connection.execute(f'PRAGMA table_info("{name}")').fetchall()
                pk_columns = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
                entry = _Keys(primary_key_said=len(pk_columns) == 1)
                entry.primary_key = pk_columns[0] if len(pk_columns) == 1 else None
                rows = connection.execute(f'PRAGMA foreign_key_list("{name}")').fetchall()
                by_id: dict[int, list[tuple]] = {}
                for row in rows:
                    by_id.setdefault(row[0], []).append(row)
                entry.foreign_keys_said = bool(by_id)
                for group in by_id.values():
                    parent, column, target = group[0][2], group[0][3], group[0][4]
                    parent = everything.get(parent.lower(), parent)
                    if len(group) > 1:
                        warnings.warn(
                            f"table {name!r}: composite foreign key {[g[3] for g in group]} -> "
                            f"{parent!r} is not supported and was dropped; its columns are "
                            "kept as ordinary columns.", stacklevel=2,
                        )
                        continue
                    if tables is not None and parent not in names and parent in everything.values():
                        continue  # parent deliberately left out by tables=
                    entry.foreign_keys[column] = parent
                    if target is not None:
                        entry.references[column] = target
                declared[name] = entry
                frames[name] = pd.read_sql_query(f'SELECT * FROM "{name}"', connection)
        finally:
            if own:
                connection.close()
        return cls._from_frames(frames, declared, "the SQLite database", True, _Given(
            primary_keys, foreign_keys, time_columns, infer_keys, validate,
            missing_foreign_keys, static_tables))

    @classmethod
    def from_duckdb(
        cls,
        database: str | os.PathLike[str] | duckdb.DuckDBPyConnection,
        *,
        primary_keys: Mapping[str, str | None] | None = None,
        foreign_keys: Mapping[str, Mapping[str, str | None]] | None = None,
        time_columns: Mapping[str, str | None] | None = None,
        tables: list[str] | None = None,
        load: bool = False,
        infer_keys: bool = True,
        validate: bool = True,
        missing_foreign_keys: str = "raise",
        static_tables: Collection[str] | None = None,
    ) -> Self:
        """Build from a DuckDB file or connection; by default the tables stay in DuckDB.

        Keys come from the database's ``PRIMARY KEY`` / ``REFERENCES`` constraints (single
        columns), the arguments (which win over a constraint, with a warning) and inference
        (see the module docstring), as for :meth:`from_sqlite`. The base tables of the main
        schema are read (views are not: they have no row ids).

        With ``load=False`` (the default) no table is read whole: the database's tables are
        :class:`~rdbpfn.duckdb_tables.DuckDBTable` objects, the checks and key inference run
        as SQL, and ``linearize`` computes DFS inside DuckDB (``engine="duckdb"``, which it
        picks by itself), spilling to disk under its ``memory_limit``. ``db.load()`` reads
        them into pandas later. With ``load=True`` every table is read into pandas now, as
        :meth:`from_sqlite` does.

        Args:
            database: path of a DuckDB file (opened read-only, on each use) or an open
                ``duckdb`` connection (pass the connection if this process writes the file).
            primary_keys, foreign_keys, time_columns: keys by table (``{"orders":
                "order_id"}``, ``{"orders": {"customer_id": "customers"}}``, ``{"orders":
                "at"}``), added to the declared ones.
            tables: read only these tables (foreign keys to the others are left out).
            load: read the tables into pandas now.
            infer_keys, validate, missing_foreign_keys, static_tables: as in
                :meth:`from_dataframes`; with tables in DuckDB, a foreign-key value absent
                from its parent reads as null (``missing_foreign_keys="null"``).
        Raises:
            FileNotFoundError: no file at the path.
            ValueError: a named table is absent; keys as in :meth:`from_sqlite`; a foreign
                key and its parent's key of different types (text and numbers); with the
                tables in DuckDB, a time column that is not a TIMESTAMP, DATE or ISO text.
        """
        source = DuckDBSource(database)
        names = source.table_names()
        if tables is not None:
            absent = [t for t in tables if t not in names]
            if absent:
                raise ValueError(f"tables {absent} are not in the DuckDB database {names}.")
        chosen = list(tables) if tables is not None else names
        declared: dict[str, _Keys] = {}
        types = {name: source.column_types(name) for name in chosen}
        for name in chosen:
            entry = declared[name] = _Keys()
            for kind, columns, parent, targets in source.constraints(name):
                if kind == "PRIMARY KEY":
                    entry.primary_key_said = True
                    entry.primary_key = columns[0] if len(columns) == 1 else None
                    continue
                entry.foreign_keys_said = True
                if len(columns) > 1:
                    warnings.warn(
                        f"table {name!r}: composite foreign key {columns} -> {parent!r} is not "
                        "supported and was dropped; its columns are kept as ordinary "
                        "columns.", stacklevel=2,
                    )
                elif parent in chosen or parent not in names:
                    entry.foreign_keys[columns[0]] = parent
                    entry.references[columns[0]] = targets[0]
        given = _Given(primary_keys, foreign_keys, time_columns, infer_keys, validate,
                       missing_foreign_keys, static_tables)
        if load:
            frames = {name: source.frame(f"SELECT * FROM {quote(name)} ORDER BY rowid")
                      for name in chosen}
            return cls._from_frames(frames, declared, "the DuckDB database", True, given)
        samples = {name: source.frame(f"SELECT * FROM {quote(name)} ORDER BY rowid "
                                      f"LIMIT {SAMPLE_ROWS}") for name in chosen}
        return cls._from_samples(source, samples, types, declared, given)

    @classmethod
    def _from_samples(cls, source: DuckDBSource, samples: Mapping[str, pd.DataFrame],
                      types: Mapping[str, Mapping[str, str]], declared: dict[str, _Keys],
                      given: _Given) -> Self:
        """Like :meth:`_from_frames` for tables that stay in DuckDB: ``samples`` give the
        columns and kinds, SQL the values."""
        values = DuckDBValues(source, types)
        frames, keys, report = _assemble(samples, declared, "the DuckDB database", True, given,
                                         values)
        made: dict[str, DuckDBTable] = {}
        for name, entry in keys.items():
            categorical = frozenset(
                c for c in frames[name].columns
                if isinstance(frames[name][c].dtype, pd.CategoricalDtype)
                and not isinstance(samples[name][c].dtype, pd.CategoricalDtype))
            made[name] = DuckDBTable(source, name, samples[name], types[name], entry.primary_key,
                                     entry.foreign_keys, entry.time_column, categorical)
        for name, table in made.items():
            for column, parent in table.foreign_keys.items():
                if not key_types_agree(table, column, made[parent]):
                    raise ValueError(
                        f"table {name!r}: foreign key {column!r} is {table.types[column]} but "
                        f"{parent}.{made[parent].primary_key} is "
                        f"{made[parent].types[str(made[parent].primary_key)]}; they do not "
                        "compare. Store both as the same type."
                    )
        return given.database(cls, made, report)

    @classmethod
    def from_entityset(cls, entityset: ft.EntitySet, validate: bool = True) -> Self:
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
