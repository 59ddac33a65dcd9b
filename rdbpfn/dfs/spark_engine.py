"""The Spark engine: the SQL plan of :mod:`rdbpfn.dfs.sql_plan`, transpiled to Spark SQL.

Nothing here computes a feature: the plan is generated once, in DuckDB's dialect and without
ASOF joins (``asof=False``; Spark has none), and each statement is translated by sqlglot
(:data:`READ_DIALECT` to :data:`WRITE_DIALECT`) and run with ``spark.sql``. Each relation is
materialized (``localCheckpoint``, which cuts the lineage a deep plan would otherwise grow)
and registered as a temporary view, dropped once nothing later reads it; the final select is
collected through Arrow. The inputs are the Arrow tables the DuckDB engine registers, made
Spark DataFrames.

The session is the one passed, else the active one, else a local one
(``local[*]``, no UI) started here and left running for later calls. To run on a cluster,
create the session first (``SparkSession.builder.master("spark://host:7077")`` or
``.remote("sc://host")``, with its memory settings), then call
``linearize(..., engine="spark")``: the engine uses it. Requests and the tables are sent from
this process, so the database must fit here; the joins, sorts and aggregations run in Spark.

pyspark and sqlglot are imported on use (``pip install 'rdbpfn[spark]'``); Spark needs Java
17 or later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.dfs.sql_plan import Plan, call_prefix, checked_requests
from rdbpfn.dfs.synthesis import Feature, feature_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["READ_DIALECT", "WRITE_DIALECT", "evaluate_features_spark", "spark_sql"]

READ_DIALECT = "duckdb"
WRITE_DIALECT = "spark"


def spark_sql(statement: str) -> str:
    """One statement of the plan in Spark SQL (sqlglot)."""
    import sqlglot  # imported on use (see the module docstring)

    return sqlglot.transpile(statement, read=READ_DIALECT, write=WRITE_DIALECT)[0]


def _session(spark: SparkSession | None) -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise ImportError(
            "engine='spark' needs pyspark and sqlglot: pip install 'rdbpfn[spark]' (and Java "
            "17 or later)."
        ) from error
    if spark is not None:
        return spark
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return (SparkSession.builder.master("local[*]").appName("rdbpfn")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .getOrCreate())


def evaluate_features_spark(
    db: Database,
    target_table: str,
    features: Sequence[Feature],
    rows: np.ndarray,
    cutoff_keys: np.ndarray,
    include_cutoff_time: bool = True,
    *,
    spark: SparkSession | None = None,
) -> pd.DataFrame:
    """Compute ``features`` of ``target_table`` for each (row, cutoff) request on Spark.

    Same arguments, output and values as
    :func:`rdbpfn.dfs.duckdb_engine.evaluate_features_duckdb` (sums and means to float
    rounding), for a database in memory.

    Args:
        spark: the session to run on; None = the active one, else a local one.
    Raises:
        ValueError: a feature needs a primitive the SQL plan lacks; ``rows`` and
            ``cutoff_keys`` of different lengths; a database whose tables stay in DuckDB.
        ImportError: pyspark or sqlglot is missing.
    """
    if db.duckdb_source is not None:
        raise ValueError(
            "engine='spark' reads tables from memory, and this database's stay in DuckDB "
            f"({db.duckdb_source}); use engine='duckdb', or load them with db.load()."
        )
    features, rows, cutoff_keys = checked_requests(features, rows, cutoff_keys)
    if not features:
        return pd.DataFrame(index=pd.RangeIndex(len(rows)))
    session = _session(spark)
    plan = Plan(db, include_cutoff_time, prefix=call_prefix(), asof=False)
    script = plan.build(target_table, features)
    inputs = plan.inputs(rows, cutoff_keys)
    views: set[str] = set()  # registered and not yet dropped
    try:
        for name, table in inputs.items():
            session.createDataFrame(table).createOrReplaceTempView(name)
            views.add(name)
        for (name, sql), done in zip(script.relations, script.drops(), strict=True):
            session.sql(spark_sql(sql)).localCheckpoint().createOrReplaceTempView(name)
            views.add(name)
            for finished in done:
                session.catalog.dropTempView(finished)
                views.discard(finished)
        result = session.sql(spark_sql(script.final)).toArrow()
    finally:
        for name in views:
            session.catalog.dropTempView(name)
    assert result.num_rows == len(rows), (result.num_rows, len(rows))
    values = [column.to_pandas().to_numpy(dtype=np.float64, na_value=np.nan)
              for column in result.columns]  # nulls become NaN
    return feature_frame(db, features, values, len(rows))
