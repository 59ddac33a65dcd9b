"""Tasks on generated databases: both classes, no leakage, block-structured DFS features."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from priors.relational import generate_database
from priors.tasks import (
    MIN_CLASS_ROWS,
    feature_block,
    informative_columns,
    linearize_task,
    sample_column_task,
    sample_event_task,
    sample_tasks,
)
from rdbpfn.encoding import encode_frame

pytest.importorskip("rdbpfn.dfs")

KEY_NAME = re.compile(r"(^|[.(])id($|[.)])|_id($|[.)])")


@pytest.fixture(scope="module")
def database():
    return generate_database(np.random.default_rng(7), min_rows=400, max_tables=6,
                             family="layerdag")


def test_sample_tasks_gives_binary_tasks_with_both_classes():
    tasks = sample_tasks(np.random.default_rng(0), rows=300, columns=20, n_tasks=6, max_depth=1)
    assert len(tasks) >= 4
    for x, y in tasks:
        assert x.dtype == np.float64 and x.ndim == 2 and x.shape[0] == y.shape[0] <= 300
        assert 1 <= x.shape[1] <= 40  # over-generated up to 2 x columns at depth 1
        assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
        assert np.bincount(y).min() >= MIN_CLASS_ROWS


def test_same_seed_same_bytes():
    a = sample_tasks(np.random.default_rng(3), rows=200, columns=10, n_tasks=3)
    b = sample_tasks(np.random.default_rng(3), rows=200, columns=10, n_tasks=3)
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert xa.tobytes() == xb.tobytes() and ya.tobytes() == yb.tobytes()


def test_column_task_drops_its_label_and_every_key(database):
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(30):
        task = sample_column_task(rng, database, rows=400)
        if task is None:
            continue
        names = [str(c) for c in linearize_task(database, task, max_depth=2).columns]
        assert not any(task.source in name for name in names), task.source
        assert not any(KEY_NAME.search(name) for name in names), names
        checked += 1
    assert checked >= 10


def _event_task_at_one_cutoff(database, seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        task = sample_event_task(rng, database, rows=400)
        if task is not None:
            first = task.cutoff_seconds == task.cutoff_seconds.min()
            if first.sum() >= 20 and len(np.unique(task.labels[first])) == 2:
                return replace(task, rows=task.rows[first], labels=task.labels[first],
                               cutoff_seconds=task.cutoff_seconds[first])
    raise AssertionError("no event task drawn")


@pytest.mark.parametrize("seed", [0, 1])
def test_event_task_features_ignore_everything_after_the_cutoff(database, seed):
    task = _event_task_at_one_cutoff(database, seed)
    cutoff = int(task.cutoff_seconds[0])
    before = encode_frame(linearize_task(database, task, max_depth=2))[0]
    # scramble every value and every link of rows created after the cutoff
    rng = np.random.default_rng(99)
    future = generate_database(np.random.default_rng(7), min_rows=400, max_tables=6,
                               family="layerdag")
    changed = 0
    for table in future.tables.values():
        if table.seconds is None:
            continue
        late = table.seconds > cutoff
        changed += int(late.sum())
        for values in table.columns.values():
            values[late] = values[rng.permutation(np.flatnonzero(late))] if late.sum() else 0
        for parent, index in table.foreign_keys.values():
            index[late] = rng.integers(0, future.tables[parent].n_rows, int(late.sum()))
    assert changed > 0
    # the label really depends on the scrambled rows ...
    assert 0 < task.labels.mean() < 1
    after = encode_frame(linearize_task(future, task, max_depth=2))[0]
    # ... but the features do not
    np.testing.assert_array_equal(before, after)


def test_features_form_blocks_by_source_column():
    within, between = [], []
    for seed in range(4):
        db = generate_database(np.random.default_rng(seed), min_rows=500, max_tables=8)
        rng = np.random.default_rng(seed)
        for _ in range(4):
            task = sample_event_task(rng, db, 500) or sample_column_task(rng, db, rows=500)
            if task is None:
                continue
            frame = linearize_task(db, task, max_depth=1)
            x = encode_frame(frame)[0]
            keep = informative_columns(x)
            x = x[:, keep]
            x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
            sources = [feature_block(str(c)) for c, k in zip(frame.columns, keep, strict=True)
                       if k]
            if x.shape[1] < 3:
                continue
            corr = np.abs(np.corrcoef(x, rowvar=False))
            same = np.equal.outer(sources, sources)
            off = ~np.eye(len(sources), dtype=bool)
            if (same & off).any() and (~same).any():
                within.append(np.nanmean(corr[same & off]))
                between.append(np.nanmean(corr[~same]))
    assert len(within) >= 8
    assert np.mean(within) > np.mean(between) + 0.2, (np.mean(within), np.mean(between))


def test_numeric_tasks_keep_their_values() -> None:
    """target="continuous": the same task kinds without thresholds; every task's target is
    finite and varies, and the binary stream of the same seed is unchanged."""
    rng = np.random.default_rng(4)
    tasks = sample_tasks(rng, rows=60, columns=8, n_tasks=4, target="continuous",
                         max_tables=4, row_range=(80, 160))
    assert tasks
    for x, y in tasks:
        assert y.dtype == np.float64 and np.isfinite(y).all() and np.ptp(y) > 0
        assert x.shape[0] == len(y)
    binary = sample_tasks(np.random.default_rng(4), rows=60, columns=8, n_tasks=4,
                          max_tables=4, row_range=(80, 160))
    again = sample_tasks(np.random.default_rng(4), rows=60, columns=8, n_tasks=4,
                         target="binary", max_tables=4, row_range=(80, 160))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(binary, again, strict=True))
