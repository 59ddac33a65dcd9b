"""Feature budget: depth-2 DFS on a real database gives hundreds to thousands of columns.

Two deterministic caps:

1. *Before* computing: :func:`fit_budget` picks the richest (depth, primitives) of a fixed
   ladder (:data:`BUDGET_LADDER`) whose number of features fits ``max_features``; the count
   comes from the schema alone (:func:`feature_names`), nothing is computed.
2. *After* computing on the context rows: :func:`select_features` keeps at most
   ``max_features`` columns chosen from the context rows only (never the queries):

   a. drop columns that are constant on the context rows (missing counts as a value, so a
      column that is missing for some rows and constant elsewhere is kept);
   b. drop exact duplicates (same values and same missing cells), keeping the first;
   c. order the rest: with labels, by their association with the label on the context rows
      (|Spearman correlation| for numeric columns, the correlation ratio for categorical
      ones; multi-class labels: the largest over one-vs-rest), ties and the unlabeled case
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
from rdbpfn.dfs.linearize import DEFAULT_PRIMITIVES
from rdbpfn.dfs.synthesis import build_features, check_primitives

__all__ = ["BUDGET_LADDER", "feature_names", "fit_budget", "select_features"]

BUDGET_LADDER: tuple[tuple[int, tuple[str, ...]], ...] = (
    (2, ("mean", "sum", "max", "min", "count", "mode")),
    (2, ("mean", "max", "min", "count", "mode")),
    (2, ("mean", "count", "mode")),
    (2, ("mean", "count")),
    (1, ("mean", "sum", "max", "min", "count", "mode")),
    (1, ("mean", "count", "mode")),
    (1, ("mean", "count")),
    (0, ()),
)
"""(max_depth, primitives) from richest to poorest, the order :func:`fit_budget` tries."""

CORRELATION_LIMIT = 0.95
"""Default |correlation| above which :func:`select_features` treats two columns as copies."""


def feature_names(
    db: Database,
    target_table: str,
    max_depth: int = 2,
    primitives: Sequence[str] = DEFAULT_PRIMITIVES,
) -> list[str]:
    """Names of the columns ``linearize`` returns with these arguments (schema only)."""
    return [f.name for f in build_features(db, target_table, max_depth, primitives)]


def fit_budget(
    db: Database,
    target_table: str,
    max_features: int,
    max_depth: int = 2,
    primitives: Sequence[str] = DEFAULT_PRIMITIVES,
) -> tuple[int, tuple[str, ...]]:
    """The first ladder entry within ``max_depth``/``primitives`` with <= max_features features.

    Returns:
        (max_depth, primitives) to pass to ``linearize``; the poorest allowed entry if none
        fits (depth 0 = the target's own columns).
    """
    if max_features < 1:
        raise ValueError(f"max_features must be >= 1, got {max_features}.")
    allowed = set(check_primitives(primitives))
    candidates = []
    for depth, ladder_primitives in BUDGET_LADDER:
        chosen = tuple(p for p in ladder_primitives if p in allowed)
        if depth > max_depth or (depth, chosen) in candidates:
            continue
        candidates.append((depth, chosen))
    if (0, ()) not in candidates:
        candidates.append((0, ()))
    for depth, chosen in candidates:
        if len(build_features(db, target_table, depth, chosen)) <= max_features:
            return depth, chosen
    return candidates[-1]


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of each column of a (n, p) float matrix; NaN -> the column's median."""
    values = values.copy()
    medians = np.nanmedian(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0)
    missing = np.isnan(values)
    values[missing] = np.broadcast_to(medians, values.shape)[missing]
    return pd.DataFrame(values).rank(method="average").to_numpy(dtype=np.float64)


def _standardize(values: np.ndarray) -> np.ndarray:
    centered = values - values.mean(axis=0)
    scale = np.sqrt((centered**2).mean(axis=0))
    return np.divide(centered, scale, out=np.zeros_like(centered), where=scale > 0)


def _label_scores(frame: pd.DataFrame, codes: np.ndarray, y: np.ndarray) -> np.ndarray:
    classes = np.unique(y)
    targets = [y == c for c in (classes[1:] if len(classes) == 2 else classes)]
    ranked = _standardize(_ranks(codes))
    scores = np.zeros(frame.shape[1])
    for target in targets:
        t = _standardize(target.astype(np.float64)[:, None])[:, 0]
        spearman = np.abs(t @ ranked) / len(t)
        for j, column in enumerate(frame.columns):
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                groups = np.where(np.isnan(codes[:, j]), -1, codes[:, j])
                means = pd.Series(target).groupby(groups).transform("mean").to_numpy()
                total = target.var()
                eta = np.sqrt(means.var() / total) if total > 0 else 0.0
                scores[j] = max(scores[j], eta)
            else:
                scores[j] = max(scores[j], spearman[j])
    return scores


def select_features(
    X_context: pd.DataFrame,
    max_features: int,
    y_context: np.ndarray | Sequence[int] | None = None,
    correlation_limit: float = CORRELATION_LIMIT,
) -> list[str]:
    """At most ``max_features`` column names of ``X_context`` (rule in the module docstring).

    Args:
        X_context: ``linearize`` output for the context rows only, shape (n, p).
        max_features: the cap (>= 1).
        y_context: labels of those rows, shape (n,), or None for a label-free choice.
        correlation_limit: |correlation| at which a column counts as a copy of a kept one.
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
    codes = np.column_stack([
        X_context[c].cat.codes.to_numpy(np.float64) if isinstance(
            X_context[c].dtype, pd.CategoricalDtype) else X_context[c].to_numpy(np.float64)
        for c in columns
    ])
    if any(isinstance(X_context[c].dtype, pd.CategoricalDtype) for c in columns):
        categorical = [isinstance(X_context[c].dtype, pd.CategoricalDtype) for c in columns]
        codes[:, categorical] = np.where(codes[:, categorical] < 0, np.nan,
                                         codes[:, categorical])
    # (a) constant (missing is a value) and (b) exact duplicates, keeping the first
    filled = np.where(np.isnan(codes), np.inf, codes)
    varies = (filled != filled[:1]).any(axis=0)
    _, first = np.unique(filled.T, axis=0, return_index=True)
    keep = np.zeros(len(columns), dtype=bool)
    keep[first] = True
    candidates = np.flatnonzero(keep & varies)
    if len(candidates) == 0:
        return []
    # (c) order by label association (stable: featuretools order on ties / without labels)
    if y_context is not None:
        scores = _label_scores(X_context.iloc[:, candidates], codes[:, candidates],
                               np.asarray(y_context))
        candidates = candidates[np.argsort(-np.round(scores, 12), kind="stable")]
    # (d) greedy decorrelation
    ranked = _standardize(_ranks(codes[:, candidates]))
    kept: list[int] = []
    for position in range(len(candidates)):
        if len(kept) == max_features:
            break
        if kept:
            correlation = np.abs(ranked[:, position] @ ranked[:, kept]) / len(ranked)
            if correlation.max() >= correlation_limit:
                continue
        kept.append(position)
    return [columns[i] for i in sorted(candidates[kept])]
