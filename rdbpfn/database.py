"""A relational database: named :class:`~rdbpfn.table.Table` objects linked by foreign keys.

A :class:`Database` is checked once:

- schema (always, it is cheap): keys and time columns exist, foreign keys point at tables
  that exist and have a primary key, the foreign-key graph has no cycle (a self-reference,
  ``employees.manager_id -> employees``, is one: see below), all time columns are of one kind
  (all datetimes or all numbers);
- data (``validate=True``, vectorised): primary keys unique and non-null, every non-null
  foreign-key value present in the parent (or, with ``missing_foreign_keys="null"``, set to
  null), time columns parse; and a warning (:class:`UndeclaredTimeWarning`) for every table
  that has datetime columns but no time column (see :meth:`Database.undeclared_times`).

Self-references, one rule for the project: a foreign key from a table to itself is a cycle
that DFS cannot walk. ``Database({...})`` given one raises; the readers of declared schemas
(:meth:`Database.from_sqlite`, :meth:`Database.from_folder`, :meth:`Database.from_dataframes`
and ``priors.ddl``) drop the declaration with a warning that names it and keep the column as
an ordinary column. The ``Database`` readers make it categorical (its values name rows, so they
are counted, never averaged): id-like names already are (:func:`rdbpfn.table.is_id_like`),
other number columns become ``category``; ``priors.ddl`` keeps the column's SQL type.

Constructors: ``Database({...})`` here; :meth:`Database.from_dataframes`,
:meth:`Database.from_folder`, :meth:`Database.from_sqlite`, :meth:`Database.from_entityset`
and :meth:`Database.to_entityset` come from :class:`rdbpfn.formats.DatabaseFormats`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from rdbpfn.duckdb_tables import DuckDBSource, DuckDBTable, check_duckdb_tables
from rdbpfn.formats import DatabaseFormats
from rdbpfn.table import Table, examples

__all__ = ["DATE_TEXT_SAMPLE", "Database", "Relationship", "UndeclaredTimeWarning"]

DATE_TEXT_SAMPLE = 20
"""How many leading non-null values of a text column :meth:`Database.undeclared_times` parses
to call it a datetime column (all must be ISO 8601 dates: ``2021-05-01``,
``2021-05-01 10:00:00``, ...). SQLite and CSV store times as such text."""

_ISO_DATE_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}")


class UndeclaredTimeWarning(UserWarning):
    """A table has datetime columns but no time column, so DFS sees its rows at every cutoff.

    Declare the time column, or list the table in ``static_tables=`` when its rows are known
    at all times; ``warnings.simplefilter("ignore", UndeclaredTimeWarning)`` silences it all.
    """


@dataclass(frozen=True)
class Relationship:
    """A foreign key: ``child.column`` holds values of ``parent``'s primary key."""

    child: str
    column: str
    parent: str


class Database(DatabaseFormats):
    """Named tables linked by foreign keys.

    Args:
        tables: ``{name: Table}``; order matters only for the order of DFS features.
        validate: run the data checks (vectorised; the schema checks always run).
            ``False`` is for callers whose data is correct by construction.
        missing_foreign_keys: "raise" (default) or "null": foreign-key values absent from
            the parent become null (the table's frame is copied).
        static_tables: names of tables without a time column whose rows are known at all
            times on purpose (e.g. ``users`` with a ``birthday``): no
            :class:`UndeclaredTimeWarning` for them. The warning is one of the data checks,
            so ``validate=False`` skips it too.
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
        static_tables: Collection[str] | None = None,
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
        self.static_tables: frozenset[str] = self._check_static_tables(static_tables)
        """Tables without a time column whose rows are known at all times (no warning)."""
        self.inferred_keys: list[str] = []
        """Keys a reader inferred (``infer_keys=`` of :meth:`from_sqlite` and the other
        readers), e.g. ``"orders.customer_id -> customers (inferred: name and 100%
        containment)"``; empty for ``Database({...})``."""
        self._fk_codes: dict[tuple[str, str], np.ndarray] = {}
        self.duckdb_source: DuckDBSource | None = self._check_sources()
        """Where the tables live when they stay in DuckDB
        (:meth:`~rdbpfn.formats.DatabaseFormats.from_duckdb`); None when they are in memory."""
        self._check_schema()
        if validate:
            self.validate(missing_foreign_keys)
            self._warn_undeclared_times()

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

    def load(self) -> Database:
        """This database in memory: the same keys, every table read into pandas (a
        database already in memory is returned as it is)."""
        if self.duckdb_source is None:
            return self
        tables = {name: Table(table.load(), table.primary_key, table.foreign_keys,
                              table.time_column) for name, table in self.tables.items()
                  if isinstance(table, DuckDBTable)}
        loaded = Database(tables, validate=False, static_tables=self.static_tables)
        loaded.inferred_keys = list(self.inferred_keys)
        return loaded

    # -------------------------------------------------------------- validation
    def _check_sources(self) -> DuckDBSource | None:
        sources = {id(t.source): t.source for t in self.tables.values()
                   if isinstance(t, DuckDBTable)}
        if not sources:
            return None
        in_memory = [n for n, t in self.tables.items() if not isinstance(t, DuckDBTable)]
        if in_memory or len(sources) > 1:
            raise ValueError(
                "a database's tables all stay in one DuckDB source or all are in memory; got "
                f"{len(sources)} DuckDB sources and tables in memory {in_memory}. Load the "
                "DuckDB ones with db.load(), or put every table in one DuckDB database."
            )
        return next(iter(sources.values()))

    def _check_static_tables(self, static_tables: Collection[str] | None) -> frozenset[str]:
        if isinstance(static_tables, str):
            static_tables = [static_tables]
        names = frozenset(static_tables or ())
        unknown = sorted(names - set(self.tables))
        if unknown:
            raise ValueError(
                f"static_tables names unknown tables {unknown}; tables are {list(self.tables)}."
            )
        timed = sorted(n for n in names if self.tables[n].time_column is not None)
        if timed:
            raise ValueError(
                f"static_tables lists {timed}, which have a time column "
                f"({[self.tables[n].time_column for n in timed]}); a static table has none. "
                "Remove them from static_tables or drop their time column."
            )
        return names

    def undeclared_times(self) -> dict[str, list[str]]:
        """``{table: datetime columns}`` for every table with datetime columns but no time
        column that is not in :attr:`static_tables`.

        Datetime columns are datetime dtypes and text columns whose first
        :data:`DATE_TEXT_SAMPLE` non-null values all parse as ISO 8601 dates (how SQLite and
        CSV files store times). Key columns are never counted.
        """
        found = {}
        for name, table in self.tables.items():
            if table.time_column is not None or name in self.static_tables:
                continue
            columns = [
                c for c, kind in table.column_kinds.items()
                if kind == "datetime" or (kind == "categorical" and _is_date_text(
                    table.head(100 * DATE_TEXT_SAMPLE)[c]))
            ]
            if columns:
                found[name] = columns
        return found

    def _warn_undeclared_times(self) -> None:
        found = self.undeclared_times()
        if not found:
            return
        listing = "; ".join(f"{name!r}: {columns}" for name, columns in found.items())
        declare = ", ".join(f"{name!r}: {columns[0]!r}" for name, columns in found.items())
        warnings.warn(
            f"tables without a time column have datetime columns ({listing}). DFS sees every "
            "row of such a table at every cutoff, so rows from the future enter the features. "
            "If a column says when each row became known, declare it: "
            f"time_columns={{{declare}}} in Database.from_sqlite/from_folder/from_duckdb/"
            "from_dataframes, or Table(..., time_column=...). If the rows are known at all "
            f"times, say so: static_tables={list(found)}.",
            UndeclaredTimeWarning, stacklevel=3,
        )

    def _check_schema(self) -> None:
        for rel in self.relationships:
            if rel.parent == rel.child:
                raise ValueError(
                    f"the foreign keys form a cycle: {rel.child} -> {rel.child}. Table "
                    f"{rel.child!r}'s foreign key {rel.column!r} points at its own table (a "
                    "self-reference), which DFS cannot walk. Leave the foreign key out and keep "
                    f"{rel.column!r} as an ordinary column: that is what Database.from_sqlite, "
                    "from_folder, from_dataframes and priors.ddl do (with a warning) when a "
                    "schema they read declares one."
                )
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
                    f"primary key: Table(..., primary_key=...), or primary_keys={{{rel.parent!r}"
                    ": ...} in Database.from_sqlite/from_folder/from_duckdb/from_dataframes."
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
        if self.duckdb_source is not None:  # the same checks as SQL; missing keys read null
            check_duckdb_tables({n: t for n, t in self.tables.items()
                                 if isinstance(t, DuckDBTable)},
                                self.relationships, missing_foreign_keys)
            return
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
                        f"{len(duplicated)} duplicate values, e.g. {examples(duplicated)}. "
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
                    f", e.g. {examples(values[missing])}. Fix them, or pass "
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


def _is_date_text(series: pd.Series) -> bool:
    """Whether a text column's first DATE_TEXT_SAMPLE non-null values are all ISO dates."""
    if not (pd.api.types.is_object_dtype(series.dtype)
            or pd.api.types.is_string_dtype(series.dtype)):
        return False
    # a bounded prefix: dropna over a whole column of millions of rows would copy it
    sample = series.head(100 * DATE_TEXT_SAMPLE).dropna().head(DATE_TEXT_SAMPLE)
    if sample.empty or not all(isinstance(v, str) and _ISO_DATE_START.match(v) for v in sample):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, format="ISO8601", errors="coerce", utc=True)
    return bool(parsed.notna().all())


def _find_cycle(relationships: list[Relationship]) -> list[str]:
    """A cycle in the child -> parent graph as [t0, t1, ..., t0], or [] if acyclic."""
    graph = nx.DiGraph((rel.child, rel.parent) for rel in relationships)
    try:
        edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return []
    return [child for child, _ in edges] + [edges[0][0]]
