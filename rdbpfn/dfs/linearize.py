"""``linearize``: one row of DFS features per requested (entity, cutoff)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.dfs.duckdb_engine import evaluate_features_duckdb
from rdbpfn.dfs.featuretools_engine import linearize_featuretools
from rdbpfn.dfs.spark_engine import evaluate_features_spark
from rdbpfn.dfs.synthesis import build_features, check_primitives
from rdbpfn.dfs.vectorized import DEFAULT_MAX_MEMORY_MB, evaluate_features
from rdbpfn.table import LATEST_CUTOFF, MISSING_TIME, time_keys

__all__ = ["DEFAULT_PRIMITIVES", "DEFAULT_WINDOWS", "ENGINES", "PAPER_PRIMITIVES", "linearize"]

PAPER_PRIMITIVES = ("mean", "sum", "max", "min", "count", "mode")
"""The aggregation primitives of the RDB-PFN paper's linearization."""

DEFAULT_PRIMITIVES = PAPER_PRIMITIVES + (
    "num_unique", "percent_true", "time_since_first", "time_since_last", "time_since")
"""The paper's primitives plus what practitioners add first: distinct categories, shares of
true values, recency and tenure (see :mod:`rdbpfn.dfs.synthesis`)."""

DEFAULT_WINDOWS = ("7 days", "30 days", "90 days", "365 days")
"""Recent windows of the default ``COUNT`` / ``SUM`` aggregations over direct children."""

ENGINES = ("auto", "vectorized", "featuretools", "duckdb", "spark")


def _entity_rows(db: Database, target_table: str, entity_ids: Any) -> np.ndarray:
    table = db[target_table]
    if table.primary_key is None:
        raise ValueError(
            f"target table {target_table!r} has no primary key, so its rows cannot be named; "
            "give it a primary_key."
        )
    ids = pd.Index(np.asarray(entity_ids) if not isinstance(entity_ids, pd.Index) else entity_ids)
    if ids.ndim != 1:
        raise ValueError(f"entity_ids must be one-dimensional, got shape {ids.shape}.")
    rows = table.key_index().get_indexer(ids) if len(ids) else np.zeros(0, dtype=np.int64)
    if (rows < 0).any():
        missing = ids[rows < 0]
        raise ValueError(
            f"{len(missing)} entity_ids are not {target_table}.{table.primary_key} values, "
            f"e.g. {list(missing[:5])}. Pass existing primary-key values."
        )
    return rows.astype(np.int64)


def _entity_keys(db: Database, target_table: str, entity_ids: Any) -> np.ndarray:
    """The requested primary-key values of a table that stays in DuckDB (the engine finds
    their rows, and names the unknown ones)."""
    if db[target_table].primary_key is None:
        raise ValueError(
            f"target table {target_table!r} has no primary key, so its rows cannot be named; "
            "give it a primary_key."
        )
    ids = np.asarray(entity_ids)
    if ids.ndim != 1:
        raise ValueError(f"entity_ids must be one-dimensional, got shape {ids.shape}.")
    return ids


def _cutoff_keys(db: Database, cutoff_times: Any, n: int) -> np.ndarray:
    if cutoff_times is None:
        return np.full(n, LATEST_CUTOFF, dtype=np.int64)
    if np.ndim(cutoff_times) == 0:
        cutoff_times = [cutoff_times] * n
    values = pd.Series(list(cutoff_times) if not isinstance(
        cutoff_times, (pd.Series, pd.Index, np.ndarray)) else np.asarray(cutoff_times))
    if len(values) != n:
        raise ValueError(
            f"cutoff_times has {len(values)} entries for {n} entity_ids; pass one cutoff per "
            "entity, a single cutoff, or None."
        )
    kind = db.time_kind
    if kind is None:  # no table has a time column: every row is always visible
        return np.full(n, LATEST_CUTOFF, dtype=np.int64)
    keys = time_keys(values, kind, "cutoff_times")
    if (keys == MISSING_TIME).any():
        first = int(np.flatnonzero(keys == MISSING_TIME)[0])
        raise ValueError(
            f"cutoff_times has missing values (first at position {first}); give every "
            "request a cutoff, or pass cutoff_times=None for no cutoff."
        )
    return np.minimum(keys, LATEST_CUTOFF)


def linearize(
    db: Database,
    target_table: str,
    entity_ids: Sequence[Any] | np.ndarray | pd.Index | pd.Series,
    cutoff_times: Any = None,
    max_depth: int = 2,
    primitives: Sequence[str] = DEFAULT_PRIMITIVES,
    engine: str = "auto",
    *,
    windows: Sequence[Any] = DEFAULT_WINDOWS,
    include_cutoff_time: bool = True,
    features: Sequence[str] | None = None,
    max_memory_mb: float | None = DEFAULT_MAX_MEMORY_MB,
) -> pd.DataFrame:
    """Deep Feature Synthesis: one feature row per requested (entity, cutoff), in order.

    Semantics are featuretools' (``ft.dfs`` with ``trans_primitives=[]``):

    - **Features**: the target's own non-key columns; forward (direct) features
      inherit a parent's features (``users.age``, ``users.MEAN(orders.amount)``); backward
      aggregations ``mean, sum, max, min`` (numeric), ``count`` (rows), ``mode``
      (categorical) over children and deeper descendants (``MEAN(orders.SUM(items.price))``,
      ``MEAN(orders.products.price)``, ``COUNT(items)``), stacked up to ``max_depth``
      exactly as featuretools stacks them (see :mod:`rdbpfn.dfs.synthesis`). Names are
      featuretools'. Key columns and features of keys are dropped, as are time and
      datetime columns; boolean columns are passed through as 0/1 but never aggregated.
    - **Cutoffs**: a row is visible at cutoff ``t`` iff its time is <= ``t``: rows stamped
      exactly at the cutoff are visible (featuretools' default, RelBench). With
      ``include_cutoff_time=False`` only rows strictly before ``t`` are. Rows without a time
      column are always visible; rows with a missing time never are. This holds for every
      table, the target included: a target row created after its cutoff gives the
      features of an absent row (counts and sums 0, everything else missing), as in
      featuretools. The target's own time column is never a feature. ``cutoff_times=None``
      means no cutoff.
    - **Missing values**: an entity with no visible children gets ``COUNT = 0``,
      ``SUM = 0`` and missing ``MEAN/MAX/MIN/MODE``; ``mean/sum/max/min`` skip missing
      values; ``mode`` ties go to the smallest category.

    Args:
        db: the database.
        target_table: table whose rows are described (needs a primary key).
        entity_ids: primary-key values of the rows to describe, shape (n,); repeats are
            fine (e.g. one entity at several cutoffs).
        cutoff_times: None, one cutoff for all, or (n,) cutoffs; datetimes (or strings) for a
            database with datetime time columns, numbers for numeric ones.
        max_depth: stacking depth (0 = own columns, 1 = + one hop, 2 = RDB-PFN's default).
        primitives: subset of :data:`rdbpfn.dfs.synthesis.PRIMITIVES`; the default adds
            ``num_unique``, ``percent_true``, ``time_since_first``, ``time_since_last``
            (recency of a child table) and ``time_since`` (the entity's own age) to the
            paper's :data:`PAPER_PRIMITIVES`. Time-since features and windows are measured
            from the cutoff: missing for a request without one.
        windows: recent windows for ``COUNT`` / ``SUM`` over the target's direct timed
            children, e.g. ``COUNT(orders, last 30 days)`` = rows in ``(cutoff - 30 days,
            cutoff]`` (``[cutoff - 30 days, cutoff)`` with ``include_cutoff_time=False``);
            ``()`` for none. Only for databases with datetime times.
        engine: "vectorized" (numpy, fast), "featuretools" (the slow reference), "duckdb"
            (set-based SQL in DuckDB, which spills to disk past its memory limit,
            ``memory_limit``; same values, every primitive and window), or "auto"
            (= vectorized for tables in memory, duckdb for tables that stay in DuckDB:
            :meth:`~rdbpfn.formats.DatabaseFormats.from_duckdb`, which only "duckdb" runs),
            or "spark" (the same SQL plan on the active Spark session, or a local one: see
            :mod:`rdbpfn.dfs.spark_engine`; needs ``pip install 'rdbpfn[spark]'``).
        include_cutoff_time: see Cutoffs above.
        features: compute only these feature names (e.g. a selection made with
            :func:`rdbpfn.dfs.select_features`), in this order.
        max_memory_mb: what the vectorized engine may hold at once; the requests are
            computed in pieces that fit (the values do not depend on it). ``None``: one
            piece. With engine="duckdb": DuckDB's ``memory_limit``, past which it spills
            to disk (rounded to whole MB; ``None``:
            :data:`rdbpfn.duckdb_tables.MEMORY_LIMIT`).
    Returns:
        DataFrame (n, p) with a RangeIndex: float64 columns for numeric and boolean
        features, ``pd.Categorical`` columns for categorical ones. The columns depend only
        on the schema and the arguments, never on the requested rows.
    Raises:
        ValueError: unknown table, engine, primitive or feature; entity ids not in the
            table; cutoffs of the wrong kind or length.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if not isinstance(db, Database):
        raise TypeError(f"db must be an rdbpfn Database, got {type(db).__name__}.")
    primitives = check_primitives(primitives)
    all_features = build_features(db, target_table, max_depth, primitives, windows)
    if features is not None:
        by_name = {f.name: f for f in all_features}
        unknown = [name for name in features if name not in by_name]
        if unknown:
            raise ValueError(
                f"features {unknown[:5]} are not DFS features of {target_table!r} with "
                f"max_depth={max_depth} and primitives={list(primitives)}."
            )
        chosen = [by_name[name] for name in features]
    else:
        chosen = all_features
    if db.duckdb_source is not None:  # the tables stay in DuckDB: so does the work
        if engine not in ("auto", "duckdb"):
            raise ValueError(
                f"engine={engine!r} needs the tables in memory, and this database's stay in "
                f"DuckDB ({db.duckdb_source}); use engine='duckdb' (or 'auto'), or load them "
                "with db.load()."
            )
        engine = "duckdb"
        rows = _entity_keys(db, target_table, entity_ids)
    else:
        rows = _entity_rows(db, target_table, entity_ids)
    cutoff_keys = _cutoff_keys(db, cutoff_times, len(rows))
    if engine == "featuretools":
        if len(rows) == 0:
            frame = linearize_featuretools(db, target_table, np.zeros(1, np.int64),
                                           np.full(1, LATEST_CUTOFF), max_depth, primitives,
                                           chosen, include_cutoff_time).iloc[:0]
        else:
            frame = linearize_featuretools(db, target_table, rows, cutoff_keys, max_depth,
                                           primitives, chosen, include_cutoff_time)
        return frame[[f.name for f in chosen]]
    if engine == "duckdb":
        if max_memory_mb is not None and not max_memory_mb > 0:
            raise ValueError(f"max_memory_mb must be > 0 (or None), got {max_memory_mb!r}.")
        # whole megabytes: DuckDB reads "512MB", not "5.12e+02MB"
        memory_limit = None if max_memory_mb is None else f"{max(1, round(max_memory_mb))}MB"
        return evaluate_features_duckdb(db, target_table, chosen, rows, cutoff_keys,
                                        include_cutoff_time, memory_limit=memory_limit)
    if engine == "spark":
        return evaluate_features_spark(db, target_table, chosen, rows, cutoff_keys,
                                       include_cutoff_time)
    return evaluate_features(db, target_table, chosen, rows, cutoff_keys, include_cutoff_time,
                             max_memory_mb)
