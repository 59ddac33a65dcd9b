"""Training episodes: one labelled table cut to a fixed (rows, columns) shape and split.

:func:`finalize` turns any labelled table (single-table prior or a linearized relational task)
into an :class:`rdbpfn.episode.Episode`:

1. rows are shuffled and subsampled to ``rows``. A table with fewer rows is **rejected**
   (``None``): a batch needs one fixed shape, and padding rows would leak into attention. The
   stream retries (or, when allowed, cuts a whole batch to fewer rows; see
   :class:`priors.streaming.EpisodeDataset`);
2. columns that are constant on those rows (NaN ignored) are dropped, the rest are randomly
   permuted and subsampled to ``columns``; narrower tables are padded on the right with all-zero
   columns (a constant column carries no information: the model standardises it to 0);
3. the two class ids are swapped with probability 1/2;
4. the first ``n_context`` rows are the context (drawn as ``round(rows * U(0.5, 0.9))`` unless
   given). If a class is missing from the context or from the queries although it has at least
   two rows, one row of that class is swapped in from the other side; tables where a class has
   fewer than :data:`MIN_ROWS_PER_CLASS` rows are rejected.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from rdbpfn.episode import Episode

__all__ = ["CONTEXT_FRACTION", "MAX_CLASSES", "MIN_ROWS_PER_CLASS", "Episode", "finalize",
           "finalize_multiclass_arrays", "finalize_regression_arrays", "relabel"]

# Default range of the context share of an episode's rows (the published training used 0.5-0.9).
CONTEXT_FRACTION = (0.5, 0.9)
# A class needs one row in the context and one among the queries.
MIN_ROWS_PER_CLASS = 2
# The most classes a multiclass episode has (the native classes of a multiclass model).
MAX_CLASSES = 10
# Draws of a multiclass episode's cut points per number of classes.
CUT_ATTEMPTS = 4
# Share of rows at a target's lowest value from which that value is, in half the draws, a
# class of its own (the binary relational tasks' ">= 1 event" question, for counts).
POINT_MASS_SHARE = 0.1


def _check_table(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2:
        raise ValueError(f"X must be 2-d (n, p), got shape {x.shape}; reshape it to (n, p)")
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"y must have shape (n,) = ({x.shape[0]},) to match X, got {y.shape}"
        )


def _draw_n_context(rows: int, rng: np.random.Generator) -> int:
    return int(np.clip(round(rows * rng.uniform(*CONTEXT_FRACTION)), 1, rows - 1))


def _checked_shape(x: np.ndarray, y: np.ndarray, rows: int, columns: int, min_rows: int,
                   rng: np.random.Generator, n_context: int | None) -> int:
    """Check a table and an episode shape (``rows >= min_rows``); the context size, drawn
    when not given."""
    _check_table(x, y)
    if rows < min_rows or columns < 1:
        raise ValueError(
            f"an episode needs rows >= {min_rows} and columns >= 1, "
            f"got rows={rows}, columns={columns}"
        )
    if n_context is None:
        n_context = _draw_n_context(rows, rng)
    if not 1 <= n_context < rows:
        raise ValueError(
            f"n_context must be in [1, rows) = [1, {rows}), got {n_context}; the queries "
            "need at least one row"
        )
    return n_context


def _draw_rows(x: np.ndarray, y: np.ndarray, rows: int, columns: int, min_rows: int,
               rng: np.random.Generator, n_context: int | None
               ) -> tuple[int, np.ndarray] | None:
    """The shape checks, then ``(n_context, the episode's rows of x in random order)``, or
    ``None`` when the table has fewer than ``rows`` rows."""
    n_context = _checked_shape(x, y, rows, columns, min_rows, rng, n_context)
    if x.shape[0] < rows:
        return None
    return n_context, rng.permutation(x.shape[0])[:rows]


def finalize_arrays(
    x: np.ndarray,
    y: np.ndarray,
    rows: int,
    columns: int,
    rng: np.random.Generator,
    n_context: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Numpy core of :func:`finalize`: returns ``(X (rows, columns) float32, y (rows,) int64,
    n_context)`` or ``None`` when the table cannot make a valid episode."""
    drawn = _draw_rows(x, y, rows, columns, 2 * MIN_ROWS_PER_CLASS, rng, n_context)
    if drawn is None:
        return None
    n_context, order = drawn
    y = np.asarray(y)[order]
    classes = np.unique(y)
    if len(classes) != 2:
        return None
    labels = (y == classes[1]).astype(np.int64)
    counts = np.bincount(labels, minlength=2)
    if counts.min() < MIN_ROWS_PER_CLASS or min(n_context, rows - n_context) < 1:
        return None
    if rng.random() < 0.5:
        labels = 1 - labels

    out = _cut_columns(x, order, columns, rng)
    if not _ensure_classes(labels, out, n_context, rng):
        return None
    return out, labels, n_context


def _cut_columns(x: np.ndarray, order: np.ndarray, columns: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Rows ``order`` of ``x`` (inf -> NaN), constant columns dropped, the rest permuted and
    cut or zero-padded to ``columns``: float32 (rows, columns)."""
    x = np.asarray(x, dtype=np.float32)[order]
    x[~np.isfinite(x)] = np.nan
    missing = np.isnan(x)
    # NaN-ignoring max > min; an all-NaN column gives -inf > inf, i.e. constant.
    varying = np.where(missing, -np.inf, x).max(axis=0) > np.where(missing, np.inf, x).min(axis=0)
    kept = np.flatnonzero(varying)
    kept = rng.permutation(kept)[:columns]
    out = np.zeros((len(order), columns), dtype=np.float32)
    out[:, : len(kept)] = x[:, kept]
    return out


def finalize_multiclass_arrays(
    x: np.ndarray,
    y: np.ndarray,
    rows: int,
    columns: int,
    rng: np.random.Generator,
    n_context: int | None = None,
    max_classes: int = MAX_CLASSES,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """:func:`finalize_arrays` for K classes cut from a numeric target: ``(X (rows, columns)
    float32, y (rows,) int64 in [0, K), n_context)``.

    K is 2 with probability 1/2, else uniform in ``[3, max_classes]``; its K - 1 cut points
    are distinct target values of the kept rows, so each class is a range of the target
    (when the lowest value holds >= :data:`POINT_MASS_SHARE` of the rows, it is a class of
    its own in half the draws: "none" against "some" for a count),
    and the class ids are then randomly permuted (a class's id says nothing about its rank).
    A draw that leaves a class with fewer than :data:`MIN_ROWS_PER_CLASS` rows is redrawn,
    with one class fewer after :data:`CUT_ATTEMPTS` draws. Every class occurs in the context
    (a row is swapped in from the queries when needed), as every class of a real fit does.
    ``None`` when the table has fewer than ``rows`` rows, a non-finite target, or no split
    into two such classes.
    """
    if max_classes < 2:
        raise ValueError(f"max_classes={max_classes}; a class target needs >= 2 classes")
    drawn = _draw_rows(x, y, rows, columns, 2 * MIN_ROWS_PER_CLASS, rng, n_context)
    if drawn is None:
        return None
    n_context, order = drawn
    target = np.asarray(y, dtype=np.float64)[order]
    if not np.isfinite(target).all():
        return None
    values = np.unique(target)
    # a count-like target ("no event" for many rows) often asks "none or some?"
    point_mass = np.mean(target == values[0]) >= POINT_MASS_SHARE
    wanted = 2 if max_classes == 2 or rng.random() < 0.5 else int(rng.integers(3, max_classes + 1))
    labels, k = None, 0
    for k in itertools.chain.from_iterable(
            itertools.repeat(k, CUT_ATTEMPTS) for k in range(min(wanted, len(values)), 1, -1)):
        if point_mass and rng.random() < 0.5:  # the lowest value is a class of its own
            rest = rng.choice(values[2:], size=min(k - 2, len(values) - 2), replace=False)
            cuts = np.sort(np.concatenate([values[1:2], rest]))
        else:
            cuts = np.sort(rng.choice(values[1:], size=k - 1, replace=False))
        labels = np.searchsorted(cuts, target, side="right")  # class c: [cut c-1, cut c)
        if np.bincount(labels, minlength=k).min() >= MIN_ROWS_PER_CLASS:
            break
        labels = None
    if labels is None:
        return None
    labels = rng.permutation(k)[labels].astype(np.int64)
    out = _cut_columns(x, order, columns, rng)
    if not _ensure_classes(labels, out, n_context, rng, k, queries_too=k == 2):
        return None
    return out, labels, n_context


def finalize_regression_arrays(
    x: np.ndarray,
    y: np.ndarray,
    rows: int,
    columns: int,
    rng: np.random.Generator,
    n_context: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """:func:`finalize_arrays` for a numeric target: ``(X (rows, columns) float32, y (rows,)
    float32, n_context)``, the target's sign flipped with probability 1/2, or ``None`` when
    the table has fewer than ``rows`` rows, a non-finite target, or a target constant over
    the context (nothing to learn from it)."""
    drawn = _draw_rows(x, y, rows, columns, 2, rng, n_context)
    if drawn is None:
        return None
    n_context, order = drawn
    target = np.asarray(y, dtype=np.float64)[order]
    if not np.isfinite(target).all() or np.ptp(target[:n_context]) == 0:
        return None
    if rng.random() < 0.5:
        target = -target
    return _cut_columns(x, order, columns, rng), target.astype(np.float32), n_context


def _ensure_classes(
    labels: np.ndarray, x: np.ndarray, n_context: int, rng: np.random.Generator,
    n_classes: int = 2, queries_too: bool = True,
) -> bool:
    """In place: make every class occur among the context rows [0, n_context) and, with
    ``queries_too``, among the query rows [n_context, rows).

    A side that lacks a class receives one row of it from the other side (which holds all of
    that class's >= 2 rows, so it keeps one) in exchange for a random row of its own that is
    not the only row of its class there. Returns whether the sides now hold every class.
    """
    sides = [(0, n_context, n_context, len(labels))]
    if queries_too:
        sides.append((n_context, len(labels), 0, n_context))
    for start, stop, other_start, other_stop in sides:
        for cls in range(n_classes):
            if (labels[start:stop] == cls).any():
                continue
            counts = np.bincount(labels[start:stop], minlength=n_classes)
            takers = start + np.flatnonzero(counts[labels[start:stop]] > 1)
            if len(takers) == 0:
                return False
            donors = other_start + np.flatnonzero(labels[other_start:other_stop] == cls)
            donor = int(rng.choice(donors))
            every = len(takers) == stop - start  # (always so for two classes)
            taker = int(rng.integers(start, stop)) if every else int(rng.choice(takers))
            labels[[donor, taker]] = labels[[taker, donor]]
            x[[donor, taker]] = x[[taker, donor]]
    return all(np.unique(labels[start:stop]).size == n_classes for start, stop, *_ in sides)


def finalize(
    X: np.ndarray,
    y: np.ndarray,
    rows: int,
    columns: int,
    rng: np.random.Generator,
    n_context: int | None = None,
) -> Episode | None:
    """Cut a labelled table to an :class:`Episode` of exactly ``(rows, columns)``.

    Args:
        X: (n, p) features (any float dtype, NaN/inf allowed: inf becomes NaN).
        y: (n,) labels with exactly two distinct values (any dtype).
        rows: episode rows; tables with ``n < rows`` give ``None``.
        columns: episode columns; extra columns are subsampled, missing ones zero-padded.
        rng: randomness for the row/column subsample, class permutation and split.
        n_context: context rows; default ``round(rows * U(0.5, 0.9))``.

    Returns:
        The episode, or ``None`` when the table has fewer than ``rows`` rows, not exactly two
        classes, or a class with fewer than :data:`MIN_ROWS_PER_CLASS` rows among the kept
        rows. Callers draw another table.
    """
    arrays = finalize_arrays(X, y, rows, columns, rng, n_context)
    if arrays is None:
        return None
    x, labels, n_ctx = arrays
    return Episode(X=torch.from_numpy(x), y=torch.from_numpy(labels), n_context=n_ctx)


def relabel(
    X: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """Task augmentation: a random feature becomes the label, the old label becomes a feature.

    The chosen column is thresholded at the value of a random row (NaN counts as "below"), the
    published stage-2 augmentation. Returns ``(X' (n, p), y' (n,) int64)`` or ``None`` when no
    column splits the rows into two classes of at least :data:`MIN_ROWS_PER_CLASS` rows.
    """
    _check_table(X, y)
    n, p = X.shape
    for j in rng.permutation(p):
        column = X[:, j]
        finite = np.flatnonzero(np.isfinite(column))
        if len(finite) < 2 * MIN_ROWS_PER_CLASS:
            continue
        threshold = column[rng.choice(finite)]
        with np.errstate(invalid="ignore"):
            labels = (column > threshold).astype(np.int64)
        positives = int(labels.sum())
        if min(positives, n - positives) < MIN_ROWS_PER_CLASS:
            continue
        old = (np.asarray(y) == np.max(y)).astype(X.dtype)
        features = np.concatenate([np.delete(X, j, axis=1), old[:, None]], axis=1)
        return features, labels
    return None
