"""Binary (or numeric) tasks on a generated database, linearized with ``rdbpfn.linearize``.

Three kinds, as real benchmarks pose them (with ``target="continuous"`` the same tasks keep
their number instead of a class: a numeric column's value, the count or the sum in the
window; categorical columns are then not targets):

- ``column``: a feature column of the target table, binarised (numeric: above a random
  quantile; categorical: in a random subset of the categories). The column is removed from
  the database before linearization, so no aggregate of it can leak. Rows of a timed target
  table are linearized at their own time (what existed when the row was created) or, for
  half of the tasks, a random while after it (the attribute predicted from early activity).
- ``event_count``: "the entity has >= k child rows in (cutoff, cutoff + window]" for a timed
  child table, at 1-12 cutoff times (one row per entity alive at the cutoff and cutoff).
- ``event_value``: "the sum of a numeric column of the entity's child rows in the window is
  above a threshold".

For event tasks the DFS uses the cutoff of each row: child rows after the cutoff (which
define the label) are invisible to the features. Keys and key-derived features are
dropped by ``linearize``; columns constant on the task's rows (e.g. aggregates of children
that no row can see yet) are dropped here. The DFS over-generates columns (up to
``OVERGENERATE`` x the episode width) and the episode later subsamples them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from priors.relational import SyntheticDatabase, generate_database
from rdbpfn.database import Database
from rdbpfn.dfs import feature_names, linearize
from rdbpfn.encoding import encode_frame

TASK_KINDS = ("column", "event_count", "event_value")
TASK_KIND_WEIGHTS = (0.4, 0.4, 0.2)
# Probability of depth 1 when max_depth is not given (the paper's corpus is ~80% 1-hop).
DEPTH_ONE_PROBABILITY = 0.75
# DFS columns kept per task, as a multiple of the episode width (the paper keeps 60 / 90
# columns for 30-wide episodes at depth 1 / 2).
OVERGENERATE = {1: 2, 2: 3}
# The DFS computes at most DFS_MARGIN x that many (a random subset of all its features).
DFS_MARGIN = 1.5
# A task needs this many rows in its smaller class (and this share of its rows).
MIN_CLASS_ROWS = 8
MIN_CLASS_SHARE = 0.03
# Column tasks pick a table with children this many times more often than a leaf table.
PARENT_TARGET_WEIGHT = 3.0
# Event tasks draw 1..MIN_CUTOFFS_DRAWN cutoff times, more (up to MAX_CUTOFFS) when the
# entities alive at a cutoff are fewer than the episode's rows.
MIN_CUTOFFS_DRAWN = 4
MAX_CUTOFFS = 12
# Column tasks on timed tables: share of tasks whose cutoff is some time after the row's own
# time (up to MAX_CUTOFF_LAG of the database's time span) instead of at it.
LATER_CUTOFF_PROBABILITY = 0.5
MAX_CUTOFF_LAG = 0.3
# Draws of a task before the database is declared to have no more tasks.
ATTEMPTS_PER_TASK = 4


_PRIMITIVE_CALL = re.compile(r"\b(?:MEAN|SUM|MAX|MIN|MODE|COUNT)\(")


def feature_block(name: str) -> str:
    """The block of a featuretools-style DFS feature: its relationship path and source
    column with the primitives removed, so that ``MEAN(t3.t3_num0)``, ``MAX(t3.t3_num0)`` and
    ``SUM(t3.t3_num0)`` share the block ``t3.t3_num0`` (``t1.MEAN(t5.t5_num0)`` ->
    ``t1.t5.t5_num0``, ``COUNT(t6)`` -> ``t6``)."""
    return _PRIMITIVE_CALL.sub("", name).replace(")", "")


@dataclass
class TaskSpec:
    """One task: rows of ``target_table`` (row indices, with cutoff seconds or None) and
    their labels; ``drop`` lists feature columns removed before linearization."""

    kind: str
    target_table: str
    rows: np.ndarray
    labels: np.ndarray
    cutoff_seconds: np.ndarray | None
    source: str
    drop: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _binarise_numeric(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    threshold = np.quantile(values, rng.uniform(0.1, 0.9))
    labels = (values > threshold).astype(np.int64)
    if labels.min() == labels.max():  # ties at the quantile (count-like columns)
        labels = (values >= threshold).astype(np.int64)
    return labels


def _balanced_enough(labels: np.ndarray) -> bool:
    counts = np.bincount(labels, minlength=2)
    return counts.min() >= max(MIN_CLASS_ROWS, MIN_CLASS_SHARE * labels.size)


def _numeric_enough(values: np.ndarray) -> bool:
    """A numeric target worth learning: finite, and not one value for almost every row."""
    if not np.isfinite(values).all():
        return False
    _, counts = np.unique(values, return_counts=True)
    return len(counts) >= 2 and values.size - counts.max() >= max(
        MIN_CLASS_ROWS, MIN_CLASS_SHARE * values.size)


def sample_column_task(
    rng: np.random.Generator, db: SyntheticDatabase, rows: int, target: str = "binary"
) -> TaskSpec | None:
    """A feature column of a random table, binarised (``target="continuous"``: a numeric
    column, its values); None if the draw is unusable."""
    numeric_only = target == "continuous"
    tables = [t for t in db.tables.values()
              if [s for s in t.specs if not numeric_only or s.kind in ("numeric", "integer")]
              and t.n_rows >= 2 * MIN_CLASS_ROWS]
    if not tables:
        return None
    pool = [t for t in tables if t.n_rows >= rows] or tables
    # tables with children (whose features include aggregations) are favoured, as in real
    # benchmarks, whose targets are mostly entities
    weight = np.array([PARENT_TARGET_WEIGHT if db.graph.out_degree(t.name) else 1.0
                       for t in pool])
    table = pool[rng.choice(len(pool), p=weight / weight.sum())]
    specs = [s for s in table.specs if not numeric_only or s.kind in ("numeric", "integer")]
    spec = specs[rng.integers(len(specs))]
    values = table.columns[spec.name]
    valid = np.flatnonzero(values >= 0) if spec.kind in ("categorical", "bool") else np.flatnonzero(
        ~np.isnan(values)
    )
    chosen = np.sort(rng.choice(valid, size=min(rows, valid.size), replace=False))
    picked = values[chosen]
    if numeric_only:
        labels = picked.astype(np.float64)
        if not _numeric_enough(labels):
            return None
    elif spec.kind in ("categorical", "bool"):
        present = np.unique(picked)
        if present.size < 2:
            return None
        positive = rng.choice(present, size=int(rng.integers(1, present.size)), replace=False)
        labels = np.isin(picked, positive).astype(np.int64)
    else:
        labels = _binarise_numeric(rng, picked)
    if not numeric_only and not _balanced_enough(labels):
        return None
    cutoffs = None
    if table.seconds is not None:
        # the row's own time (what was known at its creation), or a while after it (an
        # attribute of the row predicted from its first activity)
        cutoffs = table.seconds[chosen]
        if rng.random() < LATER_CUTOFF_PROBABILITY:
            lag = rng.uniform(0.0, MAX_CUTOFF_LAG) * db.span_seconds
            cutoffs = cutoffs + (rng.random(chosen.size) * lag).astype(np.int64)
    return TaskSpec(
        kind="column",
        target_table=table.name,
        rows=chosen,
        labels=labels,
        cutoff_seconds=cutoffs,
        source=spec.name,
        drop={table.name: (spec.name,)},
    )


def _event_pairs(db: SyntheticDatabase) -> list[tuple[str, str, str]]:
    """(entity table, child table, FK column) for every FK whose child table is timed."""
    pairs = []
    for child in db.tables.values():
        if child.seconds is None:
            continue
        for column, (parent, _) in child.foreign_keys.items():
            pairs.append((parent, child.name, column))
    return pairs


def sample_event_task(
    rng: np.random.Generator, db: SyntheticDatabase, rows: int, kind: str = "event_count",
    target: str = "binary",
) -> TaskSpec | None:
    """Future activity of an entity after a cutoff (``target="continuous"``: the count or
    sum itself); None if the draw is unusable."""
    pairs = _event_pairs(db)
    if not pairs:
        return None
    entity_name, child_name, column = pairs[rng.integers(len(pairs))]
    entity, child = db.tables[entity_name], db.tables[child_name]
    _, parent_index = child.foreign_keys[column]
    times = child.seconds
    assert times is not None
    first, last = int(times[0]), int(times[-1])
    if last - first < 10:
        return None
    window = int(rng.uniform(0.03, 0.3) * (last - first)) + 1
    lo, hi = np.quantile(times, [0.3, 0.9])
    hi = min(hi, last - window)
    if hi <= lo:
        return None
    # enough cutoffs that (entity, cutoff) pairs can fill the episode's rows
    alive = entity.n_rows if entity.seconds is None else int(
        np.searchsorted(entity.seconds, (lo + hi) / 2, side="right"))
    n_cut = max(int(rng.integers(1, MIN_CUTOFFS_DRAWN + 1)), -(-rows // max(alive, 1)))
    n_cut = min(n_cut, MAX_CUTOFFS)
    cutoffs = np.sort(rng.uniform(lo, hi, size=n_cut)).astype(np.int64)
    numeric = [s.name for s in child.specs if s.kind in ("numeric", "integer")]
    if kind == "event_value" and not numeric:
        kind = "event_count"
    value_column = numeric[rng.integers(len(numeric))] if kind == "event_value" else None
    entity_rows, cutoff_list, scores = [], [], []
    for cutoff in cutoffs:
        alive = (np.arange(entity.n_rows) if entity.seconds is None
                 else np.flatnonzero(entity.seconds <= cutoff))
        in_window = (times > cutoff) & (times <= cutoff + window)
        if value_column is None:
            weight = None
        else:
            weight = np.nan_to_num(child.columns[value_column][in_window])
        score = np.bincount(parent_index[in_window], weights=weight, minlength=entity.n_rows)
        entity_rows.append(alive)
        cutoff_list.append(np.full(alive.size, cutoff, dtype=np.int64))
        scores.append(score[alive])
    entity_rows_all = np.concatenate(entity_rows)
    if entity_rows_all.size < 2 * MIN_CLASS_ROWS:
        return None
    pick = np.sort(rng.choice(entity_rows_all.size, size=min(rows, entity_rows_all.size),
                              replace=False))
    score = np.concatenate(scores)[pick]
    if target == "continuous":
        labels = score.astype(np.float64)
        if not _numeric_enough(labels):
            return None
    elif value_column is None:
        # ">= 1 event" mostly; sometimes ">= k" at a quantile of the active entities' counts
        active = score[score > 0]
        k = 1.0
        if active.size and rng.random() < 0.3:
            k = max(1.0, float(np.quantile(active, rng.uniform(0.2, 0.8))))
        labels = (score >= k).astype(np.int64)
    else:
        labels = _binarise_numeric(rng, score)
    if target != "continuous" and not _balanced_enough(labels):
        return None
    return TaskSpec(
        kind=kind,
        target_table=entity_name,
        rows=entity_rows_all[pick],
        labels=labels,
        cutoff_seconds=np.concatenate(cutoff_list)[pick],
        source=f"{child_name}.{column}" + (f".{value_column}" if value_column else ""),
    )


def sample_task(rng: np.random.Generator, db: SyntheticDatabase, rows: int,
                target: str = "binary") -> TaskSpec | None:
    """One task of a random kind (TASK_KIND_WEIGHTS); None if the draw is unusable."""
    kind = TASK_KINDS[rng.choice(len(TASK_KINDS), p=TASK_KIND_WEIGHTS)]
    if kind == "column":
        return sample_column_task(rng, db, rows, target)
    return (sample_event_task(rng, db, rows, kind, target)
            or sample_column_task(rng, db, rows, target))


def linearize_task(
    db: SyntheticDatabase,
    task: TaskSpec,
    max_depth: int,
    database: Database | None = None,
    max_features: int | None = None,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """DFS features of a task's rows, one row per (entity, cutoff), in the task's order.

    ``database``: ``db.to_database()`` if already built (tables without dropped columns are
    reused). ``max_features`` (with ``rng``): compute only a random subset of that many of
    the DFS features (in their DFS order) instead of all of them.
    """
    if task.drop or database is None:
        database = db.to_database(drop=task.drop, reuse=database)
    features = None
    if max_features is not None:
        if rng is None:
            raise ValueError("linearize_task: max_features needs rng to choose the subset")
        names = feature_names(database, task.target_table, max_depth)
        if len(names) > max_features:
            chosen = np.sort(rng.choice(len(names), size=max_features, replace=False))
            features = [names[j] for j in chosen]
    table = db.tables[task.target_table]
    cutoffs = None if task.cutoff_seconds is None else db.datetimes(task.cutoff_seconds)
    return linearize(
        database,
        task.target_table,
        table.keys[task.rows],
        cutoff_times=cutoffs,
        max_depth=max_depth,
        features=features,
    )


def informative_columns(x: np.ndarray) -> np.ndarray:
    """(p,) bool: columns that are not constant (all missing counts as constant) on these
    rows; e.g. aggregates of children that no row can see yet at its cutoff."""
    with np.errstate(invalid="ignore"):
        low = np.nanmin(np.where(np.isnan(x), np.inf, x), axis=0)
        high = np.nanmax(np.where(np.isnan(x), -np.inf, x), axis=0)
    return high > low


def tasks_for_database(
    rng: np.random.Generator,
    db: SyntheticDatabase,
    rows: int,
    columns: int,
    n_tasks: int = 6,
    max_depth: int | None = None,
    target: str = "binary",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``n_tasks`` distinct tasks on one database, each ``(X (n, p), y (n,))``.

    Columns beyond ``OVERGENERATE[depth] * columns`` are subsampled at random.
    """
    if max_depth is not None and max_depth not in (1, 2):
        raise ValueError(f"max_depth={max_depth} is not supported; use 1, 2 or None (random)")
    database = db.to_database()
    out: list[tuple[np.ndarray, np.ndarray]] = []
    seen: set[tuple[str, str, str]] = set()
    for _ in range(ATTEMPTS_PER_TASK * n_tasks):
        if len(out) == n_tasks:
            break
        task = sample_task(rng, db, rows, target)
        if task is None or (task.kind, task.target_table, task.source) in seen:
            continue
        seen.add((task.kind, task.target_table, task.source))
        depth = max_depth or (1 if rng.random() < DEPTH_ONE_PROBABILITY else 2)
        keep = OVERGENERATE[depth] * columns
        # computed with a margin for the columns that turn out constant on these rows
        frame = linearize_task(db, task, depth, database, int(DFS_MARGIN * keep), rng)
        x, _ = encode_frame(frame)
        x = x[:, informative_columns(x)]
        if x.shape[1] == 0:  # nothing varies across these rows: no task
            continue
        if x.shape[1] > keep:
            x = x[:, np.sort(rng.choice(x.shape[1], size=keep, replace=False))]
        out.append((x, task.labels))
    return out


def sample_tasks(
    rng: np.random.Generator,
    rows: int,
    columns: int,
    n_tasks: int = 6,
    max_depth: int | None = None,
    target: str = "binary",
    **kwargs: Any,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Generate ONE database and up to ``n_tasks`` binary (or numeric) tasks on it.

    Each task is ``(X, y)``: X (n, p) float64 DFS features (NaN allowed) with n <= rows
    (n == rows whenever the database allows it), y (n,) int64 in {0, 1} with both classes
    (``target="continuous"``: float64 numbers, not all equal). ``max_depth`` is the DFS depth
    (None: 1 with probability 0.75, else 2); other keyword arguments go to
    :func:`priors.relational.generate_database`.
    """
    database = generate_database(rng, min_rows=rows, **kwargs)
    return tasks_for_database(rng, database, rows, columns, n_tasks, max_depth, target)
