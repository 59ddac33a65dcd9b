"""The fast engine: DFS features as numpy segment reductions, per-request cutoffs included.

Every feature is a chain of steps from the target table (see :mod:`rdbpfn.dfs.synthesis`).
It is evaluated on *request sets*: arrays of (row, cutoff) pairs of one table. The target's
request set is the user's (entity, cutoff) pairs. A step moves a request set along a
foreign key:

- forward (child -> parent, a direct feature): each request becomes (parent row, same
  cutoff), the parent row counting as absent if its time is after the cutoff; equal pairs
  are merged (``np.unique``) so a parent shared by many requests is computed once;
- backward (parent -> children, an aggregation): each request becomes the list of its
  children visible at its cutoff. Children are pre-sorted by (parent, time) once per
  foreign key, so the visible ones are a prefix of the parent's segment, found for all
  requests at once with one ``np.searchsorted`` on a composite (parent, time-rank) key;
  the lists are laid out contiguously, so a request owns the slice ``[offsets[i],
  offsets[i+1])`` of the child request set.

Aggregations are then reductions over those slices: ``np.add.reduceat`` (sum, mean),
counts of non-missing values, ``np.fmax/fmin.reduceat`` (max/min, NaN skipped), mode by
counting (segment, code) pairs (ties to the smallest category), distinct (segment, code)
pairs (num_unique), true values over rows (percent_true) and the latest / earliest visible
time key (time_since_last / time_since_first, in integer time keys, then
:func:`rdbpfn.table.time_differences`). A recent window is a backward hop whose slice also
starts after ``cutoff - window`` (one more ``np.searchsorted``). Request sets, their offsets
and every intermediate feature are memoised, so shared sub-chains run once. No Python loop
runs over rows, requests or cutoffs; the loops are over features and schema edges.

Memory: a backward hop materialises every request's visible children, so memory grows with
requests x children per parent. The requests are therefore processed in *pieces* whose
materialised rows stay within ``max_memory_mb`` (:data:`BYTES_PER_HELD_ROW` per row): the
size of a hop is known before it is allocated (one ``np.searchsorted``), and a piece that
would exceed the budget is halved and retried; after a piece whose footprint stayed well
below the budget, the next one doubles. Everything a piece memoised is freed with it. One
request whose own children exceed the budget still runs (it cannot be split).

Missing values follow featuretools: absent rows (invisible or null foreign keys) give NaN,
``COUNT`` and ``SUM`` over nothing give 0, and these defaults travel through direct
features.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.dfs.synthesis import Feature, Link, feature_frame, links_of
from rdbpfn.table import LATEST_CUTOFF, MISSING_TIME, time_differences

__all__ = ["BYTES_PER_HELD_ROW", "DEFAULT_MAX_MEMORY_MB", "evaluate_features"]

DEFAULT_MAX_MEMORY_MB = 512.0
"""Default budget of the rows one piece of requests may materialise (``max_memory_mb``)."""

BYTES_PER_HELD_ROW = 64
"""What one materialised request row costs at the peak of a hop or a reduction: its row and
cutoff (16 bytes), a forward hop's inverse or a memoised value (8 each) and the int64/float64
temporaries of ``np.repeat`` / ``reduceat`` (measured: 48-64 bytes)."""

MODE_DENSE_LIMIT = 4_000_000
"""Largest (segments x categories) table that ``mode`` counts densely with ``np.bincount``;
above it, mode sorts the (segment, category) pairs instead."""

_Key = tuple[tuple[str, int], ...]


@dataclass
class _LinkIndex:
    """Children of one foreign key sorted by (parent row, time); built once per database."""

    order: np.ndarray  # (n_linked,) child rows sorted by (parent, time)
    starts: np.ndarray  # (n_parent + 1,) segment offsets into ``order``
    times: np.ndarray | None  # (n_unique,) sorted unique child time keys; None: no time
    composite: np.ndarray | None  # (n_linked,) parent * (n_unique + 1) + time rank, sorted


class _Compiled:
    """Per-database arrays reused by every ``linearize`` call on it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.links = links_of(db)
        self._link_index: dict[int, _LinkIndex] = {}
        self._columns: dict[tuple[str, str, str], np.ndarray] = {}

    def link_index(self, link: Link) -> _LinkIndex:
        if link.index not in self._link_index:
            db = self.db
            codes = db.foreign_key_codes(link.child, link.column)
            n_parent = len(db[link.parent])
            child = db[link.child]
            linked = np.flatnonzero(codes >= 0)
            if child.time_column is None:
                order = linked[np.argsort(codes[linked], kind="stable")]
                times = composite = None
            else:
                keys = child.time_keys(link.child)[linked]
                order = linked[np.lexsort((keys, codes[linked]))]
                times, ranks = np.unique(child.time_keys(link.child)[order],
                                         return_inverse=True)
                composite = codes[order] * (len(times) + 1) + ranks
            starts = np.zeros(n_parent + 1, dtype=np.int64)
            np.cumsum(np.bincount(codes[linked], minlength=n_parent), out=starts[1:])
            self._link_index[link.index] = _LinkIndex(order, starts, times, composite)
        return self._link_index[link.index]

    def linked_column(self, link: Link, column: str, value: str) -> np.ndarray:
        """A child column in the link's (parent, time) order, with one trailing "missing"
        entry so that every slice end is a valid index."""
        key = (f"link{link.index}", column, value)
        if key not in self._columns:
            order = self.link_index(link).order
            values = self.column(link.child, column, value)
            self._columns[key] = np.append(values[order], values[-1:])
        return self._columns[key]

    def category_prefix(self, link: Link, column: str) -> np.ndarray:
        """(categories, n_linked + 1) int32: row k, position i = children among the first
        i (in the link's order) whose category code is k."""
        key = (f"link{link.index}", column, "category_prefix")
        if key not in self._columns:
            codes = self.linked_column(link, column, "categorical")[:-1]
            n_categories = len(self.db[link.child].categorical_codes(column)[1])
            prefix = np.zeros((n_categories, len(codes) + 1), dtype=np.int32)
            for code in range(n_categories):
                np.cumsum(codes == code, out=prefix[code, 1:])
            self._columns[key] = prefix
        return self._columns[key]

    def column(self, table: str, column: str, value: str) -> np.ndarray:
        """A column with one extra trailing "missing" entry, so that row -1 reads missing.

        numeric/boolean: float64 (n+1,) NaN-terminated; index: ones; categorical: int64
        codes terminated by -1; time: int64 time keys terminated by ``MISSING_TIME``.
        """
        key = (table, column, value)
        if key not in self._columns:
            info = self.db[table]
            if value == "categorical":
                codes = info.categorical_codes(column)[0]
                array = np.append(codes, np.int64(-1))
            elif value == "index":
                array = np.append(np.ones(len(info)), np.nan)
            elif value == "time":
                array = np.append(info.time_keys(table), np.int64(MISSING_TIME))
            else:
                array = np.append(info.numeric_values(column), np.nan)
            self._columns[key] = array
        return self._columns[key]


_COMPILED: weakref.WeakKeyDictionary[Database, _Compiled] = weakref.WeakKeyDictionary()


def compiled(db: Database) -> _Compiled:
    """The cached per-database arrays (built lazily, dropped with the database)."""
    if db not in _COMPILED:
        _COMPILED[db] = _Compiled(db)
    return _COMPILED[db]


@dataclass
class _Requests:
    table: str
    rows: np.ndarray  # (m,) int64 row, -1 = absent
    cutoff: np.ndarray  # (m,) int64 index into the evaluator's sorted unique cutoff keys


# ------------------------------------------------------------------ reductions
def _segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of values[offsets[i]:offsets[i+1]] for each i, NaN skipped, empty -> 0."""
    n = len(offsets) - 1
    if len(values) == 0:
        return np.zeros(n)
    padded = np.append(np.nan_to_num(values, nan=0.0), 0.0)
    sums = np.add.reduceat(padded, offsets[:-1])
    sums[offsets[1:] == offsets[:-1]] = 0.0
    return sums


def _segment_count(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Number of non-missing values per segment (float64)."""
    present = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(~np.isnan(values), out=present[1:])
    return (present[offsets[1:]] - present[offsets[:-1]]).astype(np.float64)


def _segment_extreme(values: np.ndarray, offsets: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """fmax/fmin per segment, NaN skipped, empty or all-NaN -> NaN."""
    n = len(offsets) - 1
    if len(values) == 0:
        return np.full(n, np.nan)
    padded = np.append(values, np.nan)
    out = ufunc.reduceat(padded, offsets[:-1])
    out[offsets[1:] == offsets[:-1]] = np.nan
    return out


def _segment_mode(codes: np.ndarray, offsets: np.ndarray, n_categories: int) -> np.ndarray:
    """Most frequent code per segment (ties -> smallest code), -1 when none (int64)."""
    n = len(offsets) - 1
    segment = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    present = codes >= 0
    segment, codes = segment[present], codes[present]
    out = np.full(n, -1, dtype=np.int64)
    if len(codes) == 0:
        return out
    width = max(n_categories, 1)
    if n * width <= MODE_DENSE_LIMIT:
        counts = np.bincount(segment * width + codes, minlength=n * width).reshape(n, width)
        best = counts.argmax(axis=1)
        has = counts[np.arange(n), best] > 0
        out[has] = best[has]
        return out
    pair, counts = np.unique(segment * width + codes, return_counts=True)
    pair_segment, pair_code = pair // width, pair % width
    order = np.lexsort((pair_code, -counts, pair_segment))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair_segment[order][1:] != pair_segment[order][:-1]
    winners = order[first]
    out[pair_segment[winners]] = pair_code[winners]
    return out


def _segment_num_unique(codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Distinct non-missing codes per segment (float64); 0 when all are missing, NaN when
    the segment is empty (featuretools)."""
    n = len(offsets) - 1
    segment = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    present = codes >= 0
    width = int(codes.max(initial=0)) + 1
    pairs = np.unique(segment[present] * width + codes[present])
    counts = np.bincount(pairs // width, minlength=n).astype(np.float64)
    counts[offsets[1:] == offsets[:-1]] = np.nan
    return counts


def _segment_percent_true(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Share of true values per segment, missing counted as false; empty -> NaN."""
    true = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values == 1.0, out=true[1:])
    sizes = np.diff(offsets)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (true[offsets[1:]] - true[offsets[:-1]]) / sizes
    return np.where(sizes > 0, share, np.nan)


def _segment_time_extreme(keys: np.ndarray, offsets: np.ndarray, latest: bool) -> np.ndarray:
    """Latest (or earliest) int64 time key per segment; ``MISSING_TIME`` when empty."""
    n = len(offsets) - 1
    if len(keys) == 0:
        return np.full(n, MISSING_TIME, dtype=np.int64)
    if latest:
        out = np.maximum.reduceat(np.append(keys, np.int64(0)), offsets[:-1])
    else:
        out = np.minimum.reduceat(np.append(keys, np.int64(MISSING_TIME)), offsets[:-1])
    out[offsets[1:] == offsets[:-1]] = MISSING_TIME
    return out


RANGED_PRIMITIVES = ("count", "sum", "mean", "max", "min", "percent_true", "time_since_first",
                     "time_since_last", "mode", "num_unique")
"""Aggregations of a table's own columns over its direct children that are computed on each
request's slice of the time-sorted children in place (``reduceat`` over slice bounds, prefix
counts, per-category prefix counts, the slice's first/last row), without materialising the
children."""

RANGED_MAX_CATEGORIES = 64
"""``mode`` / ``num_unique`` use per-category prefix counts (categories x children int32)
up to this many categories; beyond, they materialise the children."""


def _range_reduce(primitive: str | None, values: np.ndarray, start: np.ndarray, end: np.ndarray,
                  cutoffs: np.ndarray, time_kind: str | None) -> np.ndarray:
    """An aggregation of ``values[start[i]:end[i]]`` per request i (``values`` ends with one
    padding entry, so ``end`` may equal the number of children)."""
    empty = end <= start
    if primitive in ("time_since_first", "time_since_last"):
        picked = values[end - 1 if primitive == "time_since_last" else start]
        seen = np.where(empty, MISSING_TIME, picked)
        return time_differences(cutoffs, seen, time_kind)
    if primitive in ("count", "mean", "percent_true"):
        marks = ~np.isnan(values) if primitive != "percent_true" else values == 1.0
        prefix = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(marks, out=prefix[1:])
        counted = (prefix[end] - prefix[start]).astype(np.float64)
        if primitive == "count":
            return counted
        if primitive == "percent_true":
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(empty, np.nan, counted / (end - start))
    # reduceat over interleaved bounds reduces values[start:end] in order for each request;
    # by increasing start, the stretches between requests it also reduces (and we drop)
    # never overlap, so the work is the visible rows plus at most one pass over values
    by_start = np.argsort(start, kind="stable")
    bounds = np.empty(2 * len(start), dtype=np.int64)
    bounds[0::2], bounds[1::2] = start[by_start], end[by_start]
    bounds = np.minimum(bounds, len(values) - 1)
    if len(bounds) == 0:
        return np.zeros(0)

    def reduce(ufunc: np.ufunc, array: np.ndarray) -> np.ndarray:
        out = np.empty(len(start))
        out[by_start] = ufunc.reduceat(array, bounds)[0::2]
        return out

    if primitive in ("sum", "mean"):
        sums = np.where(empty, 0.0, reduce(np.add, np.nan_to_num(values, nan=0.0)))
        if primitive == "sum":
            return sums
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counted > 0, sums / counted, np.nan)
    extremes = reduce(np.fmax if primitive == "max" else np.fmin, values)
    return np.where(empty, np.nan, extremes)


def _range_categories(primitive: str | None, prefix: np.ndarray, start: np.ndarray,
                      end: np.ndarray) -> np.ndarray:
    """``mode`` (int64 code, -1 if none; ties to the smallest code) or ``num_unique`` (NaN for
    an empty slice) of each request's slice, from per-category prefix counts."""
    counts = (prefix[:, end] - prefix[:, start]).T  # (m, categories)
    if primitive == "num_unique":
        distinct = (counts > 0).sum(axis=1).astype(np.float64)
        return np.where(end > start, distinct, np.nan)
    if counts.shape[1] == 0:
        return np.full(len(start), -1, dtype=np.int64)
    best = counts.argmax(axis=1)
    return np.where(counts[np.arange(len(best)), best] > 0, best, -1).astype(np.int64)


class _PieceTooLarge(Exception):
    """The current piece of requests would materialise more rows than the budget allows."""


class _Evaluator:
    """Evaluates features on memoised request sets reached from the target's requests."""

    def __init__(self, db: Database, root: _Requests, cutoff_keys: np.ndarray,
                 include_cutoff_time: bool, budget_rows: int | None = None) -> None:
        self.db = db
        self.budget_rows = budget_rows  # None: unbounded (a piece of one request)
        self.held_rows = 0
        self.compiled = compiled(db)
        self.cutoff_keys = cutoff_keys  # (c,) sorted unique int64
        self.side = "right" if include_cutoff_time else "left"
        # a target row created after its cutoff is absent (featuretools' default row)
        root = _Requests(root.table, self._visible(root.table, root.rows, root.cutoff),
                         root.cutoff)
        self.nodes: dict[_Key, _Requests] = {(): root}
        self.offsets: dict[_Key, np.ndarray] = {}  # backward hop: (m_parent + 1,)
        self.inverse: dict[_Key, np.ndarray] = {}  # forward hop: (m_child,) into parents
        self.values: dict[tuple[_Key, int], np.ndarray] = {}
        self._cutoff_rank: dict[int, np.ndarray] = {}

    def _visible(self, table: str, rows: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
        """rows with those whose time is after their cutoff replaced by -1."""
        info = self.db[table]
        if info.time_column is None:
            return rows
        times = info.time_keys(table)[rows]
        limit = self.cutoff_keys[cutoff]
        late = times > limit if self.side == "right" else times >= limit
        return np.where((rows >= 0) & ~late, rows, -1)

    def _forward(self, key: _Key, link: Link) -> _Key:
        new = (*key, ("f", link.index))
        if new in self.nodes:
            return new
        node = self.nodes[key]
        codes = self.db.foreign_key_codes(link.child, link.column)
        parents = np.where(node.rows >= 0, codes[node.rows], -1)
        parents = self._visible(link.parent, parents, node.cutoff)
        width = len(self.cutoff_keys)
        merged, inverse = np.unique((parents + 1) * width + node.cutoff, return_inverse=True)
        self._hold(2 * len(merged) + len(inverse))
        self.nodes[new] = _Requests(link.parent, merged // width - 1, merged % width)
        self.inverse[new] = inverse.reshape(-1)
        return new

    def _hold(self, rows: int) -> None:
        """Account for ``rows`` more materialised rows; over the budget -> split the piece."""
        self.held_rows += rows
        if self.budget_rows is not None and self.held_rows > self.budget_rows:
            raise _PieceTooLarge

    def _ranged(self, feature: Feature) -> bool:
        """Whether ``feature`` is computed on slices in place (see RANGED_PRIMITIVES)."""
        base = feature.base
        if (feature.kind != "aggregation" or len(feature.path) != 1 or base is None
                or base.kind != "identity" or feature.primitive not in RANGED_PRIMITIVES):
            return False
        if feature.primitive in ("mode", "num_unique"):
            table, column = base.table, str(base.column)
            return len(self.db[table].categorical_codes(column)[1]) <= RANGED_MAX_CATEGORIES
        return True

    def _visible_range(self, node: _Requests, link: Link,
                       window: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Per request, the slice ``[start, end)`` of the link's (parent, time)-sorted
        children that it sees (empty for an absent request). No child is materialised."""
        index = self.compiled.link_index(link)
        present = node.rows >= 0
        rows = np.where(present, node.rows, 0)
        start = index.starts[rows]
        if index.composite is None:
            end = index.starts[rows + 1]
        else:
            if link.index not in self._cutoff_rank:
                self._cutoff_rank[link.index] = np.searchsorted(
                    index.times, self.cutoff_keys, side=self.side)
            rank = self._cutoff_rank[link.index][node.cutoff]
            segment = rows * (len(index.times) + 1)
            end = np.searchsorted(index.composite, segment + rank)
            if window is not None:
                # (cutoff - window, cutoff], or [cutoff - window, cutoff) when strict: the
                # window keeps its length (featuretools' training_window)
                after = np.searchsorted(index.times, self.cutoff_keys[node.cutoff] - window,
                                        side=self.side)
                start = np.minimum(np.searchsorted(index.composite, segment + after), end)
        end = np.where(present, end, start)
        return start, end

    def _backward(self, key: _Key, link: Link, window: int | None = None) -> _Key:
        """The children of every request visible at its cutoff (and, with ``window``, after
        ``cutoff - window``)."""
        new = (*key, ("b", link.index) if window is None else ("w", link.index, window))
        if new in self.nodes:
            return new
        node = self.nodes[key]
        index = self.compiled.link_index(link)
        start, end = self._visible_range(node, link, window)
        counts = end - start
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        self._hold(2 * int(offsets[-1]))  # before allocating: rows and cutoffs
        positions = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - start, counts)
        self.nodes[new] = _Requests(link.child, index.order[positions],
                                    np.repeat(node.cutoff, counts))
        self.offsets[new] = offsets
        return new

    def evaluate(self, feature: Feature, key: _Key = ()) -> np.ndarray:
        """Values of ``feature`` on request set ``key``: float64, or int64 codes if
        categorical; shape (m,)."""
        memo = (key, id(feature))
        if memo in self.values:
            return self.values[memo]
        node = self.nodes[key]
        if feature.kind == "identity":
            assert feature.column is not None
            column = self.compiled.column(feature.table, feature.column, feature.value)
            out = column[node.rows]
        elif feature.kind == "age":
            born = self.compiled.column(feature.table, str(feature.column), "time")[node.rows]
            out = time_differences(self.cutoff_keys[node.cutoff], born, self.db.time_kind)
        elif feature.kind == "direct":
            assert feature.link is not None and feature.base is not None
            parent_key = self._forward(key, feature.link)
            out = self.evaluate(feature.base, parent_key)[self.inverse[parent_key]]
        elif self._ranged(feature):
            assert feature.base is not None and feature.base.column is not None
            link = feature.path[0]
            start, end = self._visible_range(node, link, feature.window)
            if feature.primitive in ("mode", "num_unique"):
                prefix = self.compiled.category_prefix(link, feature.base.column)
                out = _range_categories(feature.primitive, prefix, start, end)
            else:
                values = self.compiled.linked_column(link, feature.base.column,
                                                     feature.base.value)
                out = _range_reduce(feature.primitive, values, start, end,
                                    self.cutoff_keys[node.cutoff], self.db.time_kind)
            if feature.window is not None:  # no cutoff, no window before it
                out = np.where(self.cutoff_keys[node.cutoff] == LATEST_CUTOFF, np.nan, out)
        else:
            assert feature.base is not None
            child_key = key
            offsets = None
            for link in feature.path:
                child_key = self._backward(child_key, link, feature.window)
                step = self.offsets[child_key]
                offsets = step if offsets is None else step[offsets]
            assert offsets is not None
            values = self.evaluate(feature.base, child_key)
            out = self._reduce(feature, values, offsets, self.cutoff_keys[node.cutoff])
            if feature.window is not None:  # no cutoff, no window before it
                out = np.where(self.cutoff_keys[node.cutoff] == LATEST_CUTOFF, np.nan, out)
        self._hold(len(out))
        self.values[memo] = out
        return out

    def _reduce(self, feature: Feature, values: np.ndarray, offsets: np.ndarray,
                cutoffs: np.ndarray) -> np.ndarray:
        primitive = feature.primitive
        if primitive == "count":
            return _segment_count(values, offsets)
        if primitive == "sum":
            return _segment_sum(values, offsets)
        if primitive == "mean":
            count = _segment_count(values, offsets)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(count > 0, _segment_sum(values, offsets) / count, np.nan)
        if primitive == "max":
            return _segment_extreme(values, offsets, np.fmax)
        if primitive == "min":
            return _segment_extreme(values, offsets, np.fmin)
        if primitive == "mode":
            assert feature.category is not None
            table, column = feature.category
            n_categories = len(self.db[table].categorical_codes(column)[1])
            return _segment_mode(values, offsets, n_categories)
        if primitive == "num_unique":
            return _segment_num_unique(values, offsets)
        if primitive == "percent_true":
            return _segment_percent_true(values, offsets)
        if primitive in ("time_since_last", "time_since_first"):
            seen = _segment_time_extreme(values, offsets, latest=primitive == "time_since_last")
            return time_differences(cutoffs, seen, self.db.time_kind)
        raise ValueError(f"unknown primitive {primitive!r}")


def evaluate_features(
    db: Database,
    target_table: str,
    features: Sequence[Feature],
    rows: np.ndarray,
    cutoff_keys: np.ndarray,
    include_cutoff_time: bool = True,
    max_memory_mb: float | None = DEFAULT_MAX_MEMORY_MB,
) -> pd.DataFrame:
    """Compute ``features`` of ``target_table`` for each (row, cutoff) request.

    Args:
        db: the database.
        target_table: table of the requested rows.
        features: output features of ``target_table`` (from ``build_features``).
        rows: (n,) int64 row numbers (-1 = unknown entity: all features missing/default).
        cutoff_keys: (n,) int64 time keys (``LATEST_CUTOFF`` = no cutoff).
        include_cutoff_time: rows stamped exactly at the cutoff are visible.
        max_memory_mb: budget of one piece of requests (see the module docstring); None
            computes all requests in one piece.
    Returns:
        DataFrame (n, len(features)): float64 columns, ``pd.Categorical`` for categorical
        features.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cutoff_keys = np.asarray(cutoff_keys, dtype=np.int64)
    if max_memory_mb is not None and not max_memory_mb > 0:
        raise ValueError(f"max_memory_mb must be > 0 (or None), got {max_memory_mb!r}.")
    budget = None if max_memory_mb is None else max(
        1, int(max_memory_mb * 2**20 / BYTES_PER_HELD_ROW))
    n = len(rows)
    pieces: list[dict[str, np.ndarray]] = []
    start, size = 0, max(n, 1)
    while start < n or not pieces:
        stop = min(n, start + size)
        try:
            values, held = _evaluate_piece(db, target_table, features, rows[start:stop],
                                           cutoff_keys[start:stop], include_cutoff_time,
                                           budget if stop - start > 1 else None)
        except _PieceTooLarge:
            size = max(1, (stop - start) // 2)
            continue
        pieces.append(values)
        start = stop
        if budget is not None and held < budget // 4:
            size *= 2
    values = [np.concatenate([piece[feature.name] for piece in pieces]) for feature in features]
    return feature_frame(db, features, values, n)


def _evaluate_piece(
    db: Database, target_table: str, features: Sequence[Feature], rows: np.ndarray,
    cutoff_keys: np.ndarray, include_cutoff_time: bool, budget_rows: int | None,
) -> tuple[dict[str, np.ndarray], int]:
    """Feature values of one piece of requests (codes for categorical features) and the
    rows it held at its peak. Raises :class:`_PieceTooLarge` past ``budget_rows``."""
    unique_keys, cutoff = np.unique(cutoff_keys, return_inverse=True)
    cutoff = cutoff.reshape(-1).astype(np.int64)
    evaluator = _Evaluator(db, _Requests(target_table, rows, cutoff), unique_keys,
                           include_cutoff_time, budget_rows)
    no_cutoff = unique_keys[cutoff] == LATEST_CUTOFF
    out = {}
    for feature in features:
        values = evaluator.evaluate(feature)
        if feature.measures_time and no_cutoff.any():  # no "now" to measure from
            values = np.where(no_cutoff, np.nan, values)
        out[feature.name] = values
    return out, evaluator.held_rows
