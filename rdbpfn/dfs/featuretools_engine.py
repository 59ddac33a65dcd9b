"""The reference engine: featuretools' ``ft.dfs`` on an EntitySet built from the database.

Slow (featuretools recomputes everything once per distinct cutoff time) but it *is* the
definition that :mod:`rdbpfn.dfs.vectorized` must match. Setup, chosen so that featuretools
sees exactly what rdbpfn's DFS sees:

- keys are encoded as row numbers (``Database.to_entityset(encode_keys=True)``), so
  featuretools treats every foreign key as a numeric key and never aggregates it;
- every time (table times and cutoffs) is replaced by its rank among all times, placed on a
  one-second grid: order and ties are kept exactly, numeric and datetime databases are
  handled alike, and "no cutoff" becomes a cutoff after the last row;
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
from rdbpfn.table import LATEST_CUTOFF, MISSING_TIME

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


def linearize_featuretools(
    db: Database,
    target_table: str,
    rows: np.ndarray,
    cutoff_keys: np.ndarray,
    max_depth: int,
    primitives: Sequence[str],
    include_cutoff_time: bool = True,
) -> pd.DataFrame:
    """Features of ``target_table`` rows at cutoffs, computed by featuretools.

    Args:
        db: the database.
        target_table: table whose rows get features (must have a primary key).
        rows: (n,) int64 row numbers of the requested entities.
        cutoff_keys: (n,) int64 time keys of the cutoffs (``LATEST_CUTOFF`` = none).
        max_depth, primitives, include_cutoff_time: as in :func:`rdbpfn.dfs.linearize`.
    Returns:
        DataFrame (n, p), one row per request in order, featuretools' column order.
    """
    import featuretools as ft

    table_keys = [db[t].time_keys(t) for t in db.tables if db[t].time_column is not None]
    all_keys = np.unique(np.concatenate(table_keys + [cutoff_keys]))
    finite = all_keys[(all_keys != MISSING_TIME) & (all_keys != LATEST_CUTOFF)]
    latest_rank = len(finite) + 1  # after every row: "no cutoff"

    def to_time(keys: np.ndarray) -> pd.DatetimeIndex:
        ranks = np.searchsorted(finite, keys).astype(np.int64)
        ranks[keys == LATEST_CUTOFF] = latest_rank
        times = _TIME_ORIGIN + pd.to_timedelta(ranks, unit="s")
        return times.where(keys != MISSING_TIME)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entityset = db.to_entityset(encode_keys=True, time_map=to_time)
        pairs = pd.DataFrame({"instance_id": rows, "time": to_time(cutoff_keys)})
        unique_pairs = pairs.drop_duplicates().reset_index(drop=True)
        has_time = any(db[t].time_column is not None for t in db.tables)
        matrix, features = ft.dfs(
            entityset=entityset,
            target_dataframe_name=target_table,
            agg_primitives=list(primitives),
            trans_primitives=[],
            max_depth=max_depth,
            cutoff_time=unique_pairs if has_time else None,
            instance_ids=None if has_time else unique_pairs["instance_id"].tolist(),
            cutoff_time_in_index=has_time,
            include_cutoff_time=include_cutoff_time,
            verbose=False,
        )
    if has_time:
        wanted = pd.MultiIndex.from_arrays([pairs["instance_id"], pairs["time"]])
    else:
        wanted = pd.Index(pairs["instance_id"])
    matrix = matrix.reindex(wanted)
    out: dict[str, object] = {}
    for feature in features:
        if _is_key_feature(feature):
            continue
        name = feature.get_name()
        values = matrix[name]
        schema = feature.column_schema
        if "category" in schema.semantic_tags:
            table, column = _source_column(feature)
            categories = db[table].categorical_codes(column)[1]
            out[name] = pd.Categorical(values.astype(object).where(values.notna(), None),
                                       categories=categories)
        else:
            out[name] = _as_float(values)
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows)))


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
