"""Feature budget: depth-2 DFS on a real database gives hundreds to thousands of columns.

Two deterministic caps:

1. *Before* computing: :func:`fit_budget` picks the richest (depth, primitives, windows) of
   a fixed ladder (:data:`BUDGET_LADDER`) whose number of features fits ``max_features``;
   the count comes from the schema alone (:func:`feature_names`), nothing is computed.
2. *After* computing on the context rows: :func:`select_features` keeps at most
   ``max_features`` columns chosen from the context rows only (never the queries):

   a. drop columns that are constant on the context rows (missing counts as a value, so a
      column that is missing for some rows and constant elsewhere is kept);
   b. drop exact duplicates (same values and same missing cells), keeping the first;
   c. order the rest: with labels, by their association with the label on the context rows
      (|Spearman correlation| for numeric columns, the correlation ratio for categorical
      ones; multi-class labels: the largest over one-vs-rest; a numeric target: the same
      with its ranks), ties and the unlabeled case
      keeping featuretools' order (shallow features first);
   d. walk that order and keep a column unless its |correlation| (Spearman, missing cells
      at the median) with an already kept column is >= ``correlation_limit``; stop at
      ``max_features``.

   Then compute the queries with ``linearize(..., features=selected)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.dfs.linearize import DEFAULT_PRIMITIVES, DEFAULT_WINDOWS, PAPER_PRIMITIVES
from rdbpfn.dfs.synthesis import WINDOW_PRIMITIVES, build_features, check_primitives

__all__ = ["BUDGET_LADDER", "feature_names", "fit_budget", "select_features"]

_RECENCY = ("num_unique", "percent_true", "time_since_first", "time_since_last", "time_since")

BUDGET_LADDER: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = (
    (2, PAPER_PRIMITIVES + _RECENCY, DEFAULT_WINDOWS),
    (2, PAPER_PRIMITIVES + _RECENCY, ()),
    (2, PAPER_PRIMITIVES, ()),
    (2, ("mean", "max", "min", "count", "mode"), ()),
    (2, ("mean", "count", "mode"), ()),
    (2, ("mean", "count"), ()),
    (1, PAPER_PRIMITIVES + _RECENCY, DEFAULT_WINDOWS),
    (1, PAPER_PRIMITIVES + _RECENCY, ()),
    (1, PAPER_PRIMITIVES, ()),
    (1, ("mean", "count", "mode"), ()),
    (1, ("mean", "count"), ()),
    (0, (), ()),
)
"""(max_depth, primitives, windows) from richest to poorest, the order :func:`fit_budget`
tries."""

CORRELATION_LIMIT = 0.95
"""Default |correlation| above which :func:`select_features` treats two columns as copies."""


def feature_names(
    db: Database,
    target_table: str,
    max_depth: int = 2,
    primitives: Sequence[str] = DEFAULT_PRIMITIVES,
    windows: Sequence[object] = DEFAULT_WINDOWS,
) -> list[str]:
    """Names of the columns ``linearize`` returns with these arguments (schema only)."""
    return [f.name for f in build_features(db, target_table, max_depth, primitives, windows)]


def fit_budget(
    db: Database,
    target_table: str,
    max_features: int,
    max_depth: int = 2,
    primitives: Sequence[str] = DEFAULT_PRIMITIVES,
    windows: Sequence[object] = DEFAULT_WINDOWS,
) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """The first ladder entry within the allowed depth, primitives and windows that gives
    <= max_features features.

    Returns:
        (max_depth, primitives, windows) to pass to ``linearize``; the poorest allowed entry
        if none fits (depth 0 = the target's own columns).
    """
    if max_features < 1:
        raise ValueError(f"max_features must be >= 1, got {max_features}.")
    allowed = set(check_primitives(primitives))
    allowed_windows = {str(w) for w in windows}
    candidates = []
    for depth, ladder_primitives, ladder_windows in BUDGET_LADDER:
        chosen = tuple(p for p in ladder_primitives if p in allowed)
        chosen_windows = tuple(w for w in ladder_windows if w in allowed_windows
                               and set(chosen) & set(WINDOW_PRIMITIVES))
        entry = (depth, chosen, chosen_windows)
        if depth > max_depth or entry in candidates:
            continue
        candidates.append(entry)
    if (0, (), ()) not in candidates:
        candidates.append((0, (), ()))
    for depth, chosen, chosen_windows in candidates:
        if len(build_features(db, target_table, depth, chosen, chosen_windows)) <= max_features:
            return depth, chosen, chosen_windows
    return candidates[-1]


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of each column of a (n, p) float matrix; NaN -> the column's median."""
    n = len(values)
    ordered = np.sort(values, axis=0)  # NaN last
    present = (~np.isnan(values)).sum(axis=0)
    low = np.clip((present - 1) // 2, 0, n - 1)
    high = np.clip(present // 2, 0, n - 1)
    medians = 0.5 * (np.take_along_axis(ordered, low[None], 0)[0]
                     + np.take_along_axis(ordered, high[None], 0)[0])
    medians[present == 0] = 0.0
    filled = np.where(np.isnan(values), medians[None, :], values)
    by_column = np.ascontiguousarray(filled.T)  # (p, n)
    order = np.argsort(by_column, axis=1, kind="stable")
    ordered = np.take_along_axis(by_column, order, axis=1)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts.ravel()) - 1  # (p * n,) tie groups, numbered across columns
    first = np.flatnonzero(starts.ravel()) % n  # 0-based position where each group starts
    size = np.bincount(group)
    average = first + (size + 1) / 2  # ties share the average of their 1-based ranks
    ranks = np.empty_like(by_column)
    np.put_along_axis(ranks, order, average[group].reshape(ordered.shape), axis=1)
    return ranks.T


def _standardize(values: np.ndarray) -> np.ndarray:
    centered = values - values.mean(axis=0)
    scale = np.sqrt((centered**2).mean(axis=0))
    return np.divide(centered, scale, out=np.zeros_like(centered), where=scale > 0)


def _label_scores(codes: np.ndarray, ranked: np.ndarray, categorical: np.ndarray,
                  y: np.ndarray, continuous: bool = False) -> np.ndarray:
    """Association of each column with the label: |Spearman| (numeric) or the correlation
    ratio (categorical, missing as its own category); max over one-vs-rest targets, or (a
    ``continuous`` target) with the target's ranks."""
    if continuous:
        targets = [_ranks(np.asarray(y, dtype=np.float64)[:, None])[:, 0]]
    else:
        classes = np.unique(y)
        targets = [y == c for c in (classes[1:] if len(classes) == 2 else classes)]
    scores = np.zeros(codes.shape[1])
    for target in targets:
        t = _standardize(target.astype(np.float64)[:, None])[:, 0]
        scores = np.maximum(scores, np.where(categorical, 0.0, np.abs(t @ ranked) / len(t)))
        total = target.var()
        for j in np.flatnonzero(categorical):
            groups = np.where(np.isnan(codes[:, j]), -1, codes[:, j])
            means = pd.Series(target).groupby(groups).transform("mean").to_numpy()
            scores[j] = max(scores[j], np.sqrt(means.var() / total) if total > 0 else 0.0)
    return scores


def select_features(
    X_context: pd.DataFrame,
    max_features: int,
    y_context: np.ndarray | Sequence[int] | None = None,
    correlation_limit: float = CORRELATION_LIMIT,
    continuous: bool = False,
) -> list[str]:
    """At most ``max_features`` column names of ``X_context`` (rule in the module docstring).

    Args:
        X_context: ``linearize`` output for the context rows only, shape (n, p).
        max_features: the cap (>= 1).
        y_context: labels of those rows, shape (n,), or None for a label-free choice.
        correlation_limit: |correlation| at which a column counts as a copy of a kept one.
        continuous: ``y_context`` is a number (regression): association is measured with
            its ranks (|Spearman|, the correlation ratio of the ranks), not per class.
    Returns:
        names in ``X_context``'s column order (deterministic; may be fewer than the cap).
    """
    if max_features < 1:
        raise ValueError(f"max_features must be >= 1, got {max_features}.")
    if y_context is not None and len(y_context) != len(X_context):
        raise ValueError(
            f"y_context has {len(y_context)} labels for {len(X_context)} rows of X_context."
        )
    columns = list(X_context.columns)
    if not columns or len(X_context) == 0:
        return columns[:max_features]
    categorical = np.array([isinstance(d, pd.CategoricalDtype) for d in X_context.dtypes])
    codes = np.empty(X_context.shape, dtype=np.float64)
    if (~categorical).any():
        codes[:, ~categorical] = X_context.iloc[:, np.flatnonzero(~categorical)].to_numpy(
            np.float64, na_value=np.nan)
    for j in np.flatnonzero(categorical):
        column_codes = X_context.iloc[:, j].cat.codes.to_numpy(np.float64)
        codes[:, j] = np.where(column_codes < 0, np.nan, column_codes)
    # (a) constant (missing is a value) and (b) exact duplicates, keeping the first
    # (missing is compared as its own value, apart from every number, +-inf included)
    missing = np.isnan(codes)
    filled = np.where(missing, 0.0, codes)
    varies = ((filled != filled[:1]) | (missing != missing[:1])).any(axis=0)
    _, first = np.unique(np.concatenate([missing.T, filled.T], axis=1), axis=0,
                         return_index=True)
    keep = np.zeros(len(columns), dtype=bool)
    keep[first] = True
    candidates = np.flatnonzero(keep & varies)
    if len(candidates) == 0:
        return []
    # (c) order by label association (stable: featuretools order on ties / without labels)
    ranked = _standardize(_ranks(codes[:, candidates]))
    if y_context is not None:
        scores = _label_scores(codes[:, candidates], ranked, categorical[candidates],
                               np.asarray(y_context), continuous)
        order = np.argsort(-np.round(scores, 12), kind="stable")
        candidates, ranked = candidates[order], ranked[:, order]
    # (d) greedy decorrelation
    n_rows = len(ranked)
    kept_columns = np.empty((n_rows, min(max_features, len(candidates))), order="F")
    kept: list[int] = []
    for position in range(len(candidates)):
        if len(kept) == kept_columns.shape[1]:
            break
        column = ranked[:, position]
        if kept:
            correlation = np.abs(column @ kept_columns[:, : len(kept)]) / n_rows
            if correlation.max() >= correlation_limit:
                continue
        kept_columns[:, len(kept)] = column
        kept.append(position)
    return [columns[i] for i in sorted(candidates[kept])]
