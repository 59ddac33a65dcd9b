"""The reference engine: featuretools' ``ft.dfs`` on an EntitySet built from the database.

Slow (featuretools recomputes everything once per distinct cutoff time) but it *is* the
definition that :mod:`rdbpfn.dfs.vectorized` must match. Setup, chosen so that featuretools
sees exactly what rdbpfn's DFS sees:

- keys are encoded as row numbers (``Database.to_entityset(encode_keys=True)``), so
  featuretools treats every foreign key as a numeric key and never aggregates it;
- every time (table times and cutoffs) is replaced by its rank among all times, placed on a
  one-second grid: order and ties are kept exactly, numeric and datetime databases are
  handled alike, and "no cutoff" becomes a cutoff after the last row. Features measured in
  time (``TIME_SINCE*``, recent windows) need the real times instead: then datetimes are
  passed as they are (numeric times cannot be: featuretools measures only datetimes);
- the entity's age is featuretools' ``time_since`` transform of the target's time index,
  and each recent window is one more ``ft.dfs`` with that ``training_window`` (its
  ``COUNT`` / ``SUM`` renamed ``COUNT(orders, last 30 days)``) on an EntitySet whose target
  has no time index: featuretools would otherwise drop a target row created before the
  window (or, with last-time indexes, count children by their latest grandchild). A target
  row created after its cutoff gets the absent row's 0, as in the main run;
- features built on key columns (``user_id``, ``orders.user_id``) are dropped afterwards;
- values are converted as the vectorized engine returns them: numeric and boolean features
  as float64, categorical ones as ``pd.Categorical`` over the source column's categories.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.dfs.synthesis import AGGREGATION_PRIMITIVES, TIME_AWARE_PRIMITIVES, Feature
from rdbpfn.table import LATEST_CUTOFF, MISSING_TIME, Table

__all__ = ["differences", "linearize_featuretools"]

_TIME_ORIGIN = pd.Timestamp("2000-01-01")


def _is_key_feature(feature: object) -> bool:
    """Identity or inherited (direct) value of a primary or foreign key column."""
    from featuretools.feature_base import DirectFeature, IdentityFeature

    while isinstance(feature, DirectFeature):
        feature = feature.base_features[0]
    if not isinstance(feature, IdentityFeature):
        return False
    tags = feature.column_schema.semantic_tags
    return bool({"index", "foreign_key"} & set(tags))


def _source_column(feature: object) -> tuple[str, str]:
    from featuretools.feature_base import IdentityFeature

    while not isinstance(feature, IdentityFeature):
        feature = feature.base_features[0]
    return feature.dataframe_name, feature.column_name


def _as_float(values: pd.Series) -> np.ndarray:
    if values.dtype == object:
        return np.array([np.nan if pd.isna(v) else float(v) for v in values], dtype=np.float64)
    return values.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _time_map(db: Database, cutoff_keys: np.ndarray, real: bool):
    """int64 time keys -> the datetimes featuretools sees (ranks, or the real times)."""
    table_keys = [db[t].time_keys(t) for t in db.tables if db[t].time_column is not None]
    all_keys = np.unique(np.concatenate(table_keys + [cutoff_keys]))
    finite = all_keys[(all_keys != MISSING_TIME) & (all_keys != LATEST_CUTOFF)]
    if real:
        after_everything = (finite.max() if len(finite) else 0) + 10**9

        def to_time(keys: np.ndarray) -> pd.DatetimeIndex:
            nanos = np.where(keys == LATEST_CUTOFF, after_everything, keys)
            nanos = np.where(keys == MISSING_TIME, 0, nanos)
            return pd.DatetimeIndex(pd.to_datetime(nanos, unit="ns")).where(
                keys != MISSING_TIME)

        return to_time
    latest_rank = len(finite) + 1  # after every row: "no cutoff"

    def to_ranks(keys: np.ndarray) -> pd.DatetimeIndex:
        ranks = np.searchsorted(finite, keys).astype(np.int64)
        ranks[keys == LATEST_CUTOFF] = latest_rank
        times = _TIME_ORIGIN + pd.to_timedelta(ranks, unit="s")
        return times.where(keys != MISSING_TIME)

    return to_ranks


def linearize_featuretools(
    db: Database,
    target_table: str,
    rows: np.ndarray,
    cutoff_keys: np.ndarray,
    max_depth: int,
    primitives: Sequence[str],
    features: Sequence[Feature],
    include_cutoff_time: bool = True,
) -> pd.DataFrame:
    """Features of ``target_table`` rows at cutoffs, computed by featuretools.

    Args:
        db: the database.
        target_table: table whose rows get features (must have a primary key).
        rows: (n,) int64 row numbers of the requested entities.
        cutoff_keys: (n,) int64 time keys of the cutoffs (``LATEST_CUTOFF`` = none).
        max_depth, primitives, include_cutoff_time: as in :func:`rdbpfn.dfs.linearize`.
        features: the features wanted (from ``build_features``); the age and windowed
            ones take extra ``ft.dfs`` runs.
    Returns:
        DataFrame (n, p), one row per request in order: featuretools' own DFS columns in
        its order, then the age and windowed features asked for.
    """
    import featuretools as ft  # heavy: only the reference engine needs it

    aggregations = [p for p in primitives if p in AGGREGATION_PRIMITIVES]
    ages = [f for f in features if f.kind == "age"]
    windows = sorted({f.window for f in features if f.window is not None})
    timed = bool(ages or windows or set(aggregations) & set(TIME_AWARE_PRIMITIVES))
    if timed and db.time_kind == "numeric":
        raise ValueError(
            "engine='featuretools' measures time only between datetimes, and this database's "
            "times are numbers; use the vectorized engine for TIME_SINCE features and windows."
        )
    to_time = _time_map(db, cutoff_keys, real=timed)
    has_time = any(db[t].time_column is not None for t in db.tables)
    pairs = pd.DataFrame({"instance_id": rows, "time": to_time(cutoff_keys)})
    unique_pairs = pairs.drop_duplicates().reset_index(drop=True)
    if has_time:
        wanted = pd.MultiIndex.from_arrays([pairs["instance_id"], pairs["time"]])
    else:
        wanted = pd.Index(pairs["instance_id"])

    untimed_target = Database(
        {name: table if name != target_table else Table(
            table.df, table.primary_key, table.foreign_keys, time_column=None)
         for name, table in db.tables.items()}, validate=False)

    def run(agg: list[str], trans: list[str], depth: int, window: int | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = db if window is None else untimed_target
            entityset = source.to_entityset(encode_keys=True, time_map=to_time)
            matrix, found = ft.dfs(
                entityset=entityset,
                target_dataframe_name=target_table,
                agg_primitives=agg,
                trans_primitives=trans,
                max_depth=depth,
                cutoff_time=unique_pairs if has_time else None,
                instance_ids=None if has_time else unique_pairs["instance_id"].tolist(),
                cutoff_time_in_index=has_time,
                include_cutoff_time=include_cutoff_time,
                training_window=None if window is None else pd.Timedelta(window, unit="ns"),
                verbose=False,
            )
        return matrix.reindex(wanted), found

    out: dict[str, object] = {}
    matrix, found = run(aggregations, [], max_depth)
    for feature in found:
        if not _is_key_feature(feature):
            out[feature.get_name()] = _values(db, feature, matrix[feature.get_name()])
    if ages:
        matrix, found = run([], ["time_since"], 1)
        for age in ages:
            out[age.name] = _as_float(matrix[age.name])
    target = db[target_table]
    absent = np.zeros(len(rows), dtype=bool)
    if target.time_column is not None:
        born = target.time_keys(target_table)[rows]
        absent = born > cutoff_keys if include_cutoff_time else born >= cutoff_keys
    for window in windows:
        matrix, found = run([p for p in aggregations if p in ("count", "sum")], [], 1, window)
        for feature in features:
            if feature.window != window:
                continue
            plain = feature.name.rsplit(", last ", 1)[0] + ")"
            out[feature.name] = np.where(absent, 0.0, _as_float(matrix[plain]))
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(rows)))
    no_cutoff = cutoff_keys == LATEST_CUTOFF
    if timed and no_cutoff.any():  # no "now" to measure from: missing, as in our engine
        measured = [f.name for f in features if f.measures_time]
        frame.loc[no_cutoff, measured] = np.nan
    return frame


def _values(db: Database, feature: object, values: pd.Series) -> object:
    """featuretools' column -> ours: float64, or a Categorical over the source categories."""
    if "category" in feature.column_schema.semantic_tags:
        table, column = _source_column(feature)
        categories = db[table].categorical_codes(column)[1]
        return pd.Categorical(values.astype(object).where(values.notna(), None),
                              categories=categories)
    return _as_float(values)


def differences(ours: pd.DataFrame, reference: pd.DataFrame,
                rtol: float = 1e-9) -> list[str]:
    """Where two ``linearize`` outputs differ (empty list = equal).

    Equal means: same columns in the same order, same number of rows, same categorical
    columns with equal labels, and for the others the same missing cells and values equal
    to ``rtol`` relative (no absolute tolerance).
    """
    if list(ours.columns) != list(reference.columns):
        only_ours = [c for c in ours.columns if c not in reference.columns]
        only_reference = [c for c in reference.columns if c not in ours.columns]
        return [f"columns differ: only ours {only_ours[:5]}, only reference "
                f"{only_reference[:5]}, or a different order"]
    if len(ours) != len(reference):
        return [f"{len(ours)} rows vs {len(reference)}"]
    found = []
    for column in ours.columns:
        a, b = ours[column], reference[column]
        categorical = isinstance(a.dtype, pd.CategoricalDtype)
        if categorical != isinstance(b.dtype, pd.CategoricalDtype):
            found.append(f"{column}: categorical in one frame only")
            continue
        if categorical:
            left = a.astype(object).where(a.notna(), None).tolist()
            right = b.astype(object).where(b.notna(), None).tolist()
            if left != right:
                row = next(i for i, (x, y) in enumerate(zip(left, right, strict=True)) if x != y)
                found.append(f"{column}: row {row}: {left[row]!r} vs {right[row]!r}")
            continue
        x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
        both_missing = np.isnan(x) & np.isnan(y)
        close = np.isclose(x, y, rtol=rtol, atol=0.0) | both_missing
        if not close.all():
            row = int(np.flatnonzero(~close)[0])
            found.append(f"{column}: row {row}: {float(x[row])!r} vs {float(y[row])!r}")
    return found
