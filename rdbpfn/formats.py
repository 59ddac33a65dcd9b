"""Databases in other forms: DataFrames + a schema dict, a folder of files, SQLite, featuretools.

:class:`DatabaseFormats` holds the readers and writers of :class:`rdbpfn.database.Database`
(which inherits them), so ``Database.from_sqlite(...)`` reads like a constructor while the
data model and its checks stay in :mod:`rdbpfn.database`.

featuretools is imported only inside the two EntitySet converters: it is heavy to import and
only the reference engine and these converters need it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from rdbpfn.table import MISSING_TIME, Table

if TYPE_CHECKING:
    import featuretools as ft

__all__ = ["MADE_INDEX", "SCHEMA_FILE", "DatabaseFormats"]

MADE_INDEX = "__row__"
"""Index column given to a table without a primary key in an EntitySet (DFS still counts
its rows with ``COUNT``)."""

SCHEMA_FILE = "schema.json"
"""Name of the schema file that :meth:`DatabaseFormats.from_folder` reads."""


class DatabaseFormats:
    """Readers (class methods) and writers of :class:`~rdbpfn.database.Database`.

    A mixin: every method relies on the database's ``tables``, ``relationships`` and
    ``foreign_key_codes`` and on ``cls(tables, validate=..., missing_foreign_keys=...)``.
    """

    tables: dict[str, Table]

    @classmethod
    def from_dataframes(
        cls,
        frames: Mapping[str, pd.DataFrame],
        schema: Mapping[str, Mapping[str, Any]],
        validate: bool = True,
        missing_foreign_keys: str = "raise",
    ) -> Self:
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
    ) -> Self:
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
    ) -> Self:
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
