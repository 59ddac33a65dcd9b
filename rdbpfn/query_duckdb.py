"""Predictive-query labels for tables that stay in DuckDB, as SQL.

:class:`rdbpfn.query.Query` calls these for a database made by
:meth:`~rdbpfn.formats.DatabaseFormats.from_duckdb`: the same (entity, cutoff) pairs, in the
same order (cutoff, then the entity's ``rowid``), and the same aggregates as its pandas path,
computed inside DuckDB, so that :func:`rdbpfn.predict` and :func:`rdbpfn.backtest` work on
data that is never loaded into pandas. Cutoffs and window bounds arrive as int64 time keys
(nanoseconds since the epoch); ``where`` is the SQL of the query's ``WHERE`` over the entity
table aliased ``e`` (from :meth:`rdbpfn.query.Comparison.to_sql`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rdbpfn.duckdb_tables import DuckDBTable, quote

__all__ = ["duckdb_entity_pairs", "duckdb_labels", "duckdb_time_range"]

_CUTOFFS = "rdbpfn_query_cutoffs"


def _pairs_sql(entity: DuckDBTable, key: str, where: str | None) -> str:
    """(idx, row, key, low, high): every entity that exists at cutoff ``idx`` and passes
    ``where`` (``low``/``high``: the cutoff's label window, when given)."""
    conditions = []
    if entity.time_column is not None:
        conditions.append(f"{entity.time_key('e')} <= c.cutoff")
    if where is not None:
        conditions.append(f"({where})")
    filtered = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (f"SELECT c.idx, e.rowid AS row, e.{quote(key)} AS key, c.low, c.high "
            f"FROM {entity.sql_name} AS e CROSS JOIN {_CUTOFFS} AS c{filtered}")


def _run(entity: DuckDBTable, cutoffs: np.ndarray, low: np.ndarray, high: np.ndarray,
         sql: str) -> dict[str, np.ndarray]:
    table = pa.table({"idx": np.arange(len(cutoffs), dtype=np.int64), "cutoff": cutoffs,
                      "low": low, "high": high})
    with entity.source.cursor() as cursor:
        cursor.register(_CUTOFFS, table)
        try:
            return cursor.execute(sql).fetchnumpy()
        finally:
            cursor.unregister(_CUTOFFS)


def duckdb_entity_pairs(entity: DuckDBTable, key: str, where: str | None,
                 cutoffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entity keys, cutoff index) of every pair, ordered by cutoff, then ``rowid``."""
    zeros = np.zeros(len(cutoffs), dtype=np.int64)
    result = _run(entity, cutoffs, zeros, zeros,
                  f"SELECT key, idx FROM ({_pairs_sql(entity, key, where)}) ORDER BY idx, row")
    return np.asarray(result["key"]), np.asarray(result["idx"], dtype=np.int64)


def duckdb_labels(entity: DuckDBTable, key: str, where: str | None, child: DuckDBTable,
           foreign_key: str, aggregation: str, column: str, cutoffs: np.ndarray,
           low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(entity keys, cutoff index, value) of every pair: ``aggregation`` ("count", "sum",
    "avg", "min", "max") of the child's ``column`` ("*" counts rows) over its rows with time
    in ``(low, high]``; COUNT and SUM of nothing are 0, the others NaN."""
    time = child.time_key("x")
    if column == "*":
        value, present = "1.0", "TRUE"
    else:
        value = (child.numeric(column, "x") if aggregation != "count"
                 else f"CAST(x.{quote(column)} IS NOT NULL AS DOUBLE)")
        present = f"x.{quote(column)} IS NOT NULL" if aggregation == "count" else (
            f"{value} IS NOT NULL")
    function = {"count": "count", "sum": "sum", "avg": "avg", "min": "min", "max": "max"}
    aggregate = f"{function[aggregation]}({value})" if aggregation != "count" else "count(*)"
    default = "0" if aggregation in ("count", "sum") else "NULL"
    sql = (f"WITH p AS ({_pairs_sql(entity, key, None if where is None else where)}), "
           f"a AS (SELECT p.idx, p.row, {aggregate} AS v FROM p JOIN {child.sql_name} AS x "
           f"ON x.{quote(foreign_key)} = p.key AND {time} > p.low AND {time} <= p.high "
           f"AND {present} GROUP BY p.idx, p.row) "
           f"SELECT p.key, p.idx, coalesce(CAST(a.v AS DOUBLE), {default}) AS v FROM p "
           "LEFT JOIN a ON a.idx = p.idx AND a.row = p.row ORDER BY p.idx, p.row")
    result = _run(entity, cutoffs, low, high, sql)
    values = np.ma.filled(np.ma.asarray(result["v"]).astype(np.float64), np.nan)
    return np.asarray(result["key"]), np.asarray(result["idx"], dtype=np.int64), values


def duckdb_time_range(tables: list[DuckDBTable]) -> tuple[int, int] | None:
    """(earliest, latest) time key over every timed table; None when no row has a time."""
    timed = [t for t in tables if t.time_column is not None]
    if not timed:
        return None
    parts = " UNION ALL ".join(f"SELECT min({t.time_key('x')}) AS lo, max({t.time_key('x')}) "
                               f"AS hi FROM {t.sql_name} AS x" for t in timed)
    low, high = timed[0].source.query(f"SELECT min(lo), max(hi) FROM ({parts})")[0]
    return None if low is None else (int(low), int(high))
