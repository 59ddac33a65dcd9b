"""Tables that stay in DuckDB: the schema in Python, the rows in a DuckDB file or connection.

:meth:`rdbpfn.Database.from_duckdb` builds a :class:`~rdbpfn.database.Database` of
:class:`DuckDBTable` objects. Each knows its columns, their DuckDB types, its keys and time
column, and a small sample of rows (the first :data:`SAMPLE_ROWS` by ``rowid``) from which
column kinds are read exactly as for a DataFrame (:mod:`rdbpfn.table`). No table is ever
loaded whole: counts, the database's checks, key inference, category lists and DFS
(``linearize(..., engine="duckdb")``) run as SQL inside DuckDB, which spills to disk under
its ``memory_limit``. ``db.load()`` (or ``from_duckdb(..., load=True)``) reads the tables
into pandas for what needs them there (the vectorized and featuretools engines, predictive
queries).

The values DFS reads are those of the same tables loaded into pandas: a row is named by its
``rowid`` (base tables only, not views), a foreign key by its parent's ``rowid`` (a value
absent from the parent is null), numbers and booleans as DOUBLE (NaN is missing), categories
by their rank among the column's sorted distinct values (ENUMs as text, as pandas sorts
them), times as integer nanoseconds since the epoch (``TIMESTAMP``, ``TIMESTAMP_*``, ``DATE``,
``TIMESTAMP WITH TIME ZONE`` as its UTC instant, ISO 8601 text). Numeric time columns (a year
as INTEGER) are supported in memory only.

A file is opened read-only for each use (several readers may share it); a database another
process or connection holds open for writing cannot be opened so: pass that connection.

duckdb is imported on use, like featuretools: most callers never need it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rdbpfn.table import Table, column_kind, examples

if TYPE_CHECKING:
    import duckdb

__all__ = ["MEMORY_LIMIT", "SAMPLE_ROWS", "TEMP_DIRECTORY", "DuckDBSource", "DuckDBTable",
           "DuckDBValues", "check_duckdb_tables", "connect", "key_types_agree",
           "memory_limit_or_default", "quote"]

MEMORY_LIMIT = "2GB"
"""DuckDB ``memory_limit`` of the connections the project opens (DFS with
``engine="duckdb"``, the checks of DuckDB-backed tables); past it DuckDB spills to disk.
Override per call (``memory_limit=``, ``linearize(..., max_memory_mb=)``) or for the process
(assign this constant)."""

TEMP_DIRECTORY: str | None = None
"""Folder in which each connection makes, and then removes, its spill folder; None = the
system's temp folder. Override per call (``temp_directory=``) or by assigning this
constant."""

SAMPLE_ROWS = 1000
"""Rows a :class:`DuckDBTable` reads to tell column kinds (id-like columns, date text)."""

_TIME_TYPES = ("TIMESTAMP", "DATE", "VARCHAR")
"""Type prefixes of the time columns a DuckDB-backed table supports (TIMESTAMP covers
TIMESTAMP_NS/_MS/_S and TIMESTAMP WITH TIME ZONE)."""

_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def quote(name: str) -> str:
    """A SQL identifier in double quotes, inner quotes doubled: ``at`` -> ``"at"``."""
    return '"' + str(name).replace('"', '""') + '"'


def memory_limit_or_default(memory_limit: str | None) -> str:
    """``memory_limit``, or :data:`MEMORY_LIMIT` as it is now when None."""
    return memory_limit or MEMORY_LIMIT


@contextmanager
def connect(database: str = ":memory:", *, read_only: bool = False,
            memory_limit: str | None = None, temp_directory: str | None = None,
            threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh DuckDB connection with ``memory_limit`` (None: :data:`MEMORY_LIMIT`) and a
    private spill folder made in ``temp_directory`` (None: :data:`TEMP_DIRECTORY`), both
    removed on exit. Each thread needs buffers of its own: under a small limit use few."""
    import duckdb  # imported on use (see the module docstring)

    parent = temp_directory if temp_directory is not None else TEMP_DIRECTORY
    with tempfile.TemporaryDirectory(prefix="rdbpfn-duckdb-", dir=parent) as spill:
        config: dict[str, str | int | bool] = {
            "memory_limit": memory_limit_or_default(memory_limit), "temp_directory": spill,
            "preserve_insertion_order": False}
        if threads is not None:
            config["threads"] = threads
        try:
            connection = duckdb.connect(database, read_only=read_only, config=config)
        except duckdb.Error as error:
            raise OSError(
                f"DuckDB cannot open {database!r} read-only: {str(error).splitlines()[0]}. If "
                "this process holds it open for writing, pass that connection instead: "
                "Database.from_duckdb(connection)."
            ) from error
        try:
            yield connection
        finally:
            connection.close()


class DuckDBSource:
    """Where DuckDB-backed tables live: a DuckDB file, opened read-only on each use, or an
    open connection (used through cursors; its settings are left as they are).

    Raises:
        FileNotFoundError: no file at the path.
        TypeError: neither a path nor a DuckDB connection.
    """

    def __init__(self, database: str | os.PathLike[str] | duckdb.DuckDBPyConnection) -> None:
        import duckdb  # imported on use (see the module docstring)

        self.connection: duckdb.DuckDBPyConnection | None = None
        self.path: str | None = None
        if isinstance(database, duckdb.DuckDBPyConnection):
            self.connection = database
        elif isinstance(database, (str, os.PathLike)):
            path = Path(database)
            if not path.is_file():
                raise FileNotFoundError(
                    f"no DuckDB file at {str(path)!r}; pass the path of an existing .duckdb "
                    "file or an open duckdb connection."
                )
            self.path = str(path)
        else:
            raise TypeError(
                "from_duckdb needs the path of a DuckDB file or a duckdb connection, got "
                f"{type(database).__name__}."
            )

    def __repr__(self) -> str:
        return f"DuckDBSource({self.path!r})" if self.path else "DuckDBSource(<connection>)"

    @contextmanager
    def cursor(self, memory_limit: str | None = None, temp_directory: str | None = None,
               threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that sees the tables: a cursor of the given connection (the limits
        are then its own), or the file opened read-only with these limits."""
        if self.connection is not None:
            cursor = self.connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            return
        assert self.path is not None
        with connect(self.path, read_only=True, memory_limit=memory_limit,
                     temp_directory=temp_directory, threads=threads) as connection:
            yield connection

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
        """All rows of one statement (for small results: schema, counts, examples).

        Raises:
            MemoryError: DuckDB ran out of its ``memory_limit`` in a step it cannot spill.
        """
        import duckdb  # imported on use (see the module docstring)

        with self.cursor() as cursor:
            try:
                return cursor.execute(sql, parameters).fetchall()
            except duckdb.OutOfMemoryException as error:
                raise MemoryError(
                    f"DuckDB ran out of its memory_limit checking or reading {self} "
                    f"({str(error).splitlines()[0]}). Raise it for the process "
                    "(rdbpfn.duckdb_tables.MEMORY_LIMIT = '8GB'), or pass a connection "
                    "with a larger memory_limit."
                ) from error

    def frame(self, sql: str) -> pd.DataFrame:
        with self.cursor() as cursor:
            return cursor.execute(sql).df()

    def table_names(self) -> list[str]:
        """Base tables of the main schema, by name (DuckDB keeps no creation order)."""
        return [row[0] for row in self.query(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "AND database_name = current_database() ORDER BY table_name")]

    def column_types(self, table: str) -> dict[str, str]:
        return dict(self.query(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
            "AND schema_name = 'main' AND database_name = current_database() "
            "ORDER BY column_index", [table]))

    def constraints(self, table: str) -> list[tuple[str, list[str], str | None, list[str]]]:
        """(kind, columns, referenced table, referenced columns) of every PRIMARY KEY and
        FOREIGN KEY constraint of ``table``."""
        return self.query(
            "SELECT constraint_type, constraint_column_names, referenced_table, "
            "referenced_column_names FROM duckdb_constraints() WHERE table_name = ? "
            "AND schema_name = 'main' AND database_name = current_database() "
            "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY constraint_index",
            [table])


class DuckDBTable(Table):
    """A table whose rows stay in DuckDB (see the module docstring).

    Args:
        source: where the table lives.
        name: its name there.
        sample: its first :data:`SAMPLE_ROWS` rows, as DuckDB gives them to pandas (column
            kinds are read from it); the columns are the table's.
        types: ``{column: DuckDB type}``.
        primary_key, foreign_keys, time_column: as :class:`~rdbpfn.table.Table`'s.
        categorical: columns to treat as categorical whatever their type (a dropped
            self-reference).
    Raises:
        ValueError: a named column is missing, or the time column has an unsupported type.
    """

    def __init__(self, source: DuckDBSource, name: str, sample: pd.DataFrame,
                 types: Mapping[str, str], primary_key: str | None = None,
                 foreign_keys: Mapping[str, str] | None = None, time_column: str | None = None,
                 categorical: frozenset[str] = frozenset()) -> None:
        self.source = source
        self.name = name
        self.types = dict(types)
        self.sample = sample
        self._set_roles(list(sample.columns), primary_key, foreign_keys, time_column)
        keys = {primary_key, time_column, *self.foreign_keys} - {None}
        self.column_kinds = {
            str(c): "categorical" if c in categorical else column_kind(c, sample[c])
            for c in sample.columns if c not in keys
        }
        self._cache: dict[str, Any] = {}
        if time_column is not None and not self.types[time_column].startswith(
                _TIME_TYPES + _NUMERIC_TYPES):
            raise ValueError(
                f"table {name!r}: time column {time_column!r} has DuckDB type "
                f"{self.types[time_column]}; use a TIMESTAMP, DATE or ISO 8601 text column."
            )
        if time_column is not None and self.time_kind == "numeric":
            raise ValueError(
                f"table {name!r}: time column {time_column!r} is numeric "
                f"({self.types[time_column]}); tables that stay in DuckDB need TIMESTAMP, DATE "
                "or ISO 8601 text times. Load the database into memory "
                "(Database.from_duckdb(..., load=True)), where numeric times work, or store "
                "the times as TIMESTAMP."
            )

    @property
    def df(self) -> pd.DataFrame:  # type: ignore[override]
        raise ValueError(
            f"table {self.name!r} stays in DuckDB ({self.source}), so it has no DataFrame. "
            "Use linearize(..., engine='duckdb'), or load the database into memory: "
            "db.load() (or Database.from_duckdb(..., load=True))."
        )

    @property
    def columns(self) -> list[Any]:
        return list(self.sample.columns)

    def head(self, n: int) -> pd.DataFrame:
        return self.sample.head(n)

    def __len__(self) -> int:
        if "len" not in self._cache:
            self._cache["len"] = int(self.source.query(
                f"SELECT count(*) FROM {self.sql_name}")[0][0])
        return self._cache["len"]

    @property
    def time_kind(self) -> str | None:
        if self.time_column is None:
            return None
        kind = self.types[self.time_column]
        if kind == "BOOLEAN":
            return "invalid"
        return "numeric" if kind.startswith(_NUMERIC_TYPES) else "datetime"

    @property
    def sql_name(self) -> str:
        return quote(self.name)

    def load(self) -> pd.DataFrame:
        """The whole table as a DataFrame, rows in ``rowid`` order."""
        return self.source.frame(f"SELECT * FROM {self.sql_name} ORDER BY rowid")

    # ------------------------------------------------------------------ values as SQL
    def text(self, column: str, alias: str) -> str:
        """SQL of a column's value, ENUMs as text (the order pandas sorts them in)."""
        expression = f"{alias}.{quote(column)}"
        if self.types[column].startswith("ENUM"):
            return f"CAST({expression} AS VARCHAR)"
        return expression

    def time_key(self, alias: str) -> str:
        """SQL: the time column as an int64 time key (nanoseconds), null when missing."""
        assert self.time_column is not None
        column = f"{alias}.{quote(self.time_column)}"
        if self.types[self.time_column].startswith("TIMESTAMP WITH TIME ZONE"):
            return f"epoch_ns({column})"
        return f"epoch_ns(CAST({column} AS TIMESTAMP))"

    def numeric(self, column: str, alias: str) -> str:
        """SQL: a numeric or boolean column as DOUBLE, NaN as null."""
        return f"nullif(CAST({alias}.{quote(column)} AS DOUBLE), 'NaN'::DOUBLE)"

    def categories_sql(self, column: str) -> str:
        """SQL: (v, code) for the column's non-null distinct values, codes by sorted value."""
        value = self.text(column, "x")
        return (f"SELECT v, row_number() OVER (ORDER BY v) - 1 AS code FROM (SELECT DISTINCT "
                f"{value} AS v FROM {self.sql_name} AS x WHERE {value} IS NOT NULL)")

    def categories(self, column: str) -> pd.Index:
        key = f"categories:{column}"
        if key not in self._cache:
            # through a frame: the dtype pandas gives the column's values (int32, object...)
            values = self.source.frame(
                f"SELECT v FROM ({self.categories_sql(column)}) ORDER BY code")["v"]
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(object)
            self._cache[key] = pd.Index(values)
        return self._cache[key]


# ---------------------------------------------------------------------- the data checks
def check_duckdb_tables(tables: Mapping[str, DuckDBTable], relationships: list[Any],
                        missing_foreign_keys: str) -> None:
    """The data checks of :meth:`rdbpfn.database.Database.validate`, as SQL: unique non-null
    primary keys, foreign-key values present in their parent (unless
    ``missing_foreign_keys="null"``: then they read as null), time columns that parse.

    Raises:
        ValueError: the first failed check; the message names table, column and values.
    """
    for name, table in tables.items():
        if table.primary_key is not None:
            key = quote(table.primary_key)
            nulls = table.source.query(
                f"SELECT count(*) - count({key}) FROM {table.sql_name}")[0][0]
            # a GROUP BY spills to disk; count(DISTINCT ...) does not
            duplicates = table.source.query(
                f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM "
                f"{table.sql_name} GROUP BY {key} HAVING count(*) > 1) AS d")[0][0]
            if nulls:
                raise ValueError(
                    f"table {name!r}: primary key {table.primary_key!r} has {nulls} null "
                    "values. Drop those rows or fill the keys."
                )
            if duplicates:
                shown = table.source.query(
                    f"SELECT {key} FROM {table.sql_name} GROUP BY {key} HAVING count(*) > 1 "
                    f"ORDER BY {key} LIMIT 5")
                raise ValueError(
                    f"table {name!r}: primary key {table.primary_key!r} has {duplicates} "
                    f"duplicate values, e.g. {examples([row[0] for row in shown])}. Make the "
                    "key unique (deduplicate rows or use another column)."
                )
        if table.time_column is not None and table.types[table.time_column] == "VARCHAR":
            column = quote(table.time_column)
            shown = table.source.query(
                f"SELECT {column} FROM {table.sql_name} WHERE {column} IS NOT NULL AND "
                f"try_cast({column} AS TIMESTAMP) IS NULL LIMIT 5")
            if shown:
                raise ValueError(
                    f"time column {table.time_column!r} of table {name!r} does not parse as "
                    f"datetimes, e.g. {examples([row[0] for row in shown])}. Fix those values "
                    "or store the column as TIMESTAMP."
                )
    if missing_foreign_keys == "null":
        return
    for relationship in relationships:
        child, parent = tables[relationship.child], tables[relationship.parent]
        assert parent.primary_key is not None
        column, key = quote(relationship.column), quote(parent.primary_key)
        absent = (f"FROM {child.sql_name} AS c WHERE c.{column} IS NOT NULL AND NOT EXISTS "
                  f"(SELECT 1 FROM {parent.sql_name} AS p WHERE p.{key} = c.{column})")
        count = child.source.query(f"SELECT count(*) {absent}")[0][0]
        if count:
            shown = child.source.query(f"SELECT DISTINCT c.{column} {absent} LIMIT 5")
            raise ValueError(
                f"table {relationship.child!r}: foreign key {relationship.column!r} has "
                f"{count} values not found in {relationship.parent!r}.{parent.primary_key}, "
                f"e.g. {examples([row[0] for row in shown])}. Fix them, or pass "
                "missing_foreign_keys='null' to treat them as null."
            )


class DuckDBValues:
    """The value checks of key inference (:mod:`rdbpfn.formats`) as SQL."""

    def __init__(self, source: DuckDBSource, types: Mapping[str, Mapping[str, str]]) -> None:
        self.source = source
        self.types = types

    def unique(self, table: str, column: str) -> bool:
        """Whether the column is non-null and unique over the whole table."""
        name = quote(column)
        nulls, repeated = self.source.query(
            f"SELECT (SELECT count(*) - count({name}) FROM {quote(table)}), (SELECT count(*) "
            f"FROM (SELECT 1 FROM {quote(table)} GROUP BY {name} HAVING count(*) > 1) AS d)")[0]
        return nulls == 0 and repeated == 0

    def contained(self, table: str, column: str, parent: str, key: str) -> float | None:
        """Share of the column's non-null values that are ``parent.key`` values (0 when
        text meets numbers); None when it has no values."""
        if (self.types[table][column] == "VARCHAR") != (self.types[parent][key] == "VARCHAR"):
            return 0.0
        name = quote(column)
        total, found = self.source.query(
            f"SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {quote(parent)} "
            f"AS p WHERE p.{quote(key)} = c.{name})) FROM {quote(table)} AS c "
            f"WHERE c.{name} IS NOT NULL")[0]
        return None if total == 0 else found / total


def key_types_agree(child: DuckDBTable, column: str, parent: DuckDBTable) -> bool:
    """Whether a foreign key and its parent's key compare in SQL: both text or both not."""
    assert parent.primary_key is not None
    text = [table.types[name] == "VARCHAR" for table, name in
            ((child, column), (parent, parent.primary_key))]
    return text[0] == text[1]
