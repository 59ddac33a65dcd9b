"""The DuckDB engine: the SQL plan of :mod:`rdbpfn.dfs.sql_plan`, run inside DuckDB.

DuckDB spills its sorts, hash joins and aggregates to a temp folder under its
``memory_limit``: databases and request lists larger than memory still run, and tables that
stay in DuckDB (:meth:`~rdbpfn.formats.DatabaseFormats.from_duckdb`) are read where they are.

**Execution.** Each relation of the plan is one ``CREATE TEMP TABLE ... AS SELECT`` (dropped
once nothing later reads it), then one final select, all on a cursor of a connection with
:data:`rdbpfn.duckdb_tables.MEMORY_LIMIT` and a private spill folder; temp tables spill
too. Only the final (n, p) frame is fetched. One statement of CTEs would be the same plan,
but DuckDB's optimizer takes minutes on the 100-250 CTEs of a depth-3 plan, and
milliseconds on each piece. :func:`rdbpfn.dfs.sql_plan.features_sql` shows the script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from rdbpfn.database import Database
from rdbpfn.dfs.sql_plan import Plan, Script, call_prefix, checked_requests
from rdbpfn.dfs.synthesis import Feature, feature_frame
from rdbpfn.duckdb_tables import connect, memory_limit_or_default

if TYPE_CHECKING:
    import duckdb

__all__ = ["evaluate_features_duckdb"]


def _run(connection: duckdb.DuckDBPyConnection, script: Script,
         inputs: dict[str, pa.Table | str], unknown: str | None) -> dict[str, np.ndarray]:
    """Run ``script`` on a cursor of ``connection`` (its registered inputs and temp tables
    vanish with the cursor) and fetch the final select, column by column."""
    import duckdb  # imported on use, like featuretools in the reference engine

    cursor = connection.cursor()
    try:
        for name, table in inputs.items():
            if isinstance(table, str):
                try:
                    cursor.execute(f"CREATE TEMP TABLE {name} AS {table}")
                except (duckdb.BinderException, duckdb.ConversionException) as error:
                    raise ValueError(
                        "the entity ids or a foreign key do not compare with the primary key "
                        f"they name: {str(error).splitlines()[0]}. Pass ids of the key's type, "
                        "and give foreign keys their parent key's type."
                    ) from None
            else:
                cursor.register(name, table)
        if unknown is not None:
            missing = [row[0] for row in cursor.execute(unknown).fetchall()]
            if missing:
                raise ValueError(
                    f"entity_ids holds values that are not primary-key values of the target "
                    f"table, e.g. {missing}. Pass existing primary-key values."
                )
        for (name, sql), done in zip(script.relations, script.drops(), strict=True):
            cursor.execute(f"CREATE TEMP TABLE {name} AS {sql}")
            for finished in done:
                cursor.execute(f"DROP TABLE {finished}")
        return cursor.execute(script.final).fetchnumpy()
    finally:
        cursor.close()


def evaluate_features_duckdb(
    db: Database,
    target_table: str,
    features: Sequence[Feature],
    rows: np.ndarray,
    cutoff_keys: np.ndarray,
    include_cutoff_time: bool = True,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
    asof: bool = True,
) -> pd.DataFrame:
    """Compute ``features`` of ``target_table`` for each (row, cutoff) request in DuckDB.

    Same arguments, output and values as :func:`rdbpfn.dfs.vectorized.evaluate_features`
    (sums and means to float rounding).

    Args:
        db: the database, in memory or staying in DuckDB
            (:meth:`~rdbpfn.formats.DatabaseFormats.from_duckdb`).
        target_table: table of the requested rows.
        features: output features of ``target_table`` (from ``build_features``).
        rows: (n,) int64 row numbers (-1 = unknown entity: all features missing/default);
            for a database that stays in DuckDB, (n,) primary-key values of the target.
        cutoff_keys: (n,) int64 time keys (``LATEST_CUTOFF`` = no cutoff).
        include_cutoff_time: rows stamped exactly at the cutoff are visible.
        connection: run on this DuckDB connection (its settings are left as they are, the
            inputs are registered under unique names and dropped after); None = a fresh
            connection with ``memory_limit`` and a spill folder, closed after (for a
            database in a DuckDB file: the file opened read-only; for one given as a
            connection: that connection).
        memory_limit: DuckDB memory limit of the fresh connection, e.g. "8GB";
            None = :data:`rdbpfn.duckdb_tables.MEMORY_LIMIT`.
        temp_directory: folder for the fresh connection's spill folder;
            None = :data:`rdbpfn.duckdb_tables.TEMP_DIRECTORY`.
        threads: DuckDB threads of the fresh connection; None = DuckDB's default (one per
            core). Each thread needs buffers of its own: under a small ``memory_limit`` use
            few threads.
        asof: False = the plan without ASOF joins (running minima and maxima over sorted
            unions instead), the one engines without ASOF joins run (Spark); same values.
    Returns:
        DataFrame (n, len(features)) with a RangeIndex: float64 columns, ``pd.Categorical``
        for categorical features.
    Raises:
        ValueError: a feature needs a primitive this engine lacks; ``rows``
            and ``cutoff_keys`` of different lengths; ids that name no row or do not
            compare with the key.
        MemoryError: DuckDB ran out of ``memory_limit`` in a step it cannot spill; the
            message says which limit and how to raise it.
    """
    import duckdb  # imported on use, like featuretools in the reference engine

    source = db.duckdb_source
    features, rows, cutoff_keys = checked_requests(features, rows, cutoff_keys,
                                                   ids=source is not None)
    if not features:
        return pd.DataFrame(index=pd.RangeIndex(len(rows)))
    plan = Plan(db, include_cutoff_time, prefix=call_prefix(), asof=asof)
    script = plan.build(target_table, features)
    inputs = plan.inputs(rows, cutoff_keys)
    if connection is None and source is not None:
        connection = source.connection
    if connection is not None:
        result = _run(connection, script, inputs, plan.unknown())
    else:
        limit = memory_limit_or_default(memory_limit)
        with connect(source.path if source is not None else ":memory:",
                     read_only=source is not None, memory_limit=limit,
                     temp_directory=temp_directory, threads=threads) as fresh:
            try:
                result = _run(fresh, script, inputs, plan.unknown())
            except duckdb.OutOfMemoryException as error:
                raise MemoryError(
                    f"engine='duckdb' ran out of its memory_limit={limit} (a join it could "
                    f"not spill: {str(error).splitlines()[0]}). Raise the limit "
                    "(linearize(..., max_memory_mb=4096)), pass fewer requests per call, "
                    "or use engine='vectorized'."
                ) from error
    fetched = list(result.values())
    assert len(fetched[0]) == len(rows), (len(fetched[0]), len(rows))
    # null (masked) cells are missing values; categorical codes have none
    values = [np.ma.filled(np.ma.asarray(column).astype(np.float64), np.nan)
              for column in fetched]
    return feature_frame(db, features, values, len(rows))
