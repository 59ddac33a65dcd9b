"""Deep Feature Synthesis (DFS): relational rows -> one feature row per (entity, cutoff).

- :func:`linearize` -- features of target-table rows at cutoff times, featuretools'
  semantics, computed by the vectorized engine (or by featuretools itself, the reference).
- :func:`feature_names` / :func:`fit_budget` / :func:`select_features` -- the feature budget:
  which features exist, which depth and primitives fit a cap, and a capped selection
  made from context rows only.
"""

from __future__ import annotations

from rdbpfn.dfs.budget import feature_names, fit_budget, select_features
from rdbpfn.dfs.linearize import (
    DEFAULT_PRIMITIVES,
    DEFAULT_WINDOWS,
    PAPER_PRIMITIVES,
    linearize,
)

__all__ = [
    "DEFAULT_PRIMITIVES",
    "DEFAULT_WINDOWS",
    "PAPER_PRIMITIVES",
    "feature_names",
    "fit_budget",
    "linearize",
    "select_features",
]
