"""One frame-to-matrix encoding: the prior, the benchmark and the classifier see the same numbers.

The same DFS-like frame (every column kind: floats with NaN and +-inf, ints, nullable
booleans, unordered and ordered categoricals, strings, datetimes with NaT) goes through the
three real paths: a prior task (``priors.tasks.tasks_for_database``), the benchmark's cached
features (``eval.features.task_features``) and a user's ``RDBPFNClassifier.fit``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import priors.tasks
from eval.features import FeatureSpec, task_features
from eval.tasks import Task
from priors.relational import generate_database
from priors.tasks import informative_columns, tasks_for_database
from rdbpfn import RDBPFNClassifier


def every_kind_frame(ids: np.ndarray) -> pd.DataFrame:
    """A frame whose row values are a function of the entity id alone."""
    ids = np.asarray(ids, dtype=np.int64)
    k = ids % 7
    return pd.DataFrame({
        "number": np.where(k == 0, np.nan, ids * 0.5),
        "extreme": np.select([k == 1, k == 2], [np.inf, -np.inf], ids / 3.0),
        "count": ids % 5,
        "flag": pd.array(np.where(k == 3, None, ids % 2 == 0), dtype="boolean"),
        "mode": pd.Categorical(np.where(k == 4, None, np.array(["b", "a", "c"])[ids % 3]),
                               categories=["c", "b", "a"]),
        "grade": pd.Categorical(np.array(["low", "mid", "high"])[ids % 3],
                                categories=["low", "mid", "high"], ordered=True),
        "text": pd.Series(np.where(k == 5, None, np.array(["x", "y", "z"])[ids % 3]),
                          dtype=object),
        "when": pd.Series(pd.to_datetime(2e9 + ids * 86_400.0, unit="s")).where(k != 6),
    })


@pytest.fixture(scope="module")
def prior_task() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(entity ids, X, y) of one prior task whose DFS frame is ``every_kind_frame``."""
    db = generate_database(np.random.default_rng(3), min_rows=300, max_tables=4)
    seen: list[np.ndarray] = []

    def frame_of_every_kind(database, task, *args, **kwargs) -> pd.DataFrame:
        ids = database.tables[task.target_table].keys[task.rows]
        seen.append(ids)
        return every_kind_frame(ids)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(priors.tasks, "linearize_task", frame_of_every_kind)
        (x, y), = tasks_for_database(np.random.default_rng(0), db, rows=300, columns=10_000,
                                     n_tasks=1, max_depth=1)
    return seen[-1], x, y


def test_prior_benchmark_and_classifier_encode_a_frame_identically(prior_task, tmp_path: Path):
    ids, x_prior, y = prior_task
    frame = every_kind_frame(ids)

    task = Task(database="shared", name="encoding", load_database=None, target_table="t",
                entity_ids=ids, cutoff_times=np.full(len(ids), np.datetime64("2020-01-01")),
                labels=y.astype(np.int8), split=np.full(len(ids), "train"),
                database_version="1")
    features = task_features(
        task, FeatureSpec(max_train_rows=len(ids)), cache_dir=tmp_path, verbose=False,
        linearize=lambda _db, _table, entity_ids, **_: every_kind_frame(entity_ids),
    )
    x_benchmark = np.empty_like(features.X)
    x_benchmark[features.task_rows] = features.X  # pool order -> the task's row order

    classifier = RDBPFNClassifier(n_estimators=1).fit(frame, y)
    x_classifier = classifier.encoder_.encode(frame)

    np.testing.assert_array_equal(x_benchmark, x_classifier)  # NaN == NaN, inf == inf
    np.testing.assert_array_equal(x_prior, x_benchmark[:, informative_columns(x_benchmark)])
    np.testing.assert_array_equal(features.categorical, classifier.encoder_.categorical_)
    assert features.columns == list(frame.columns)
    # the kinds were really exercised
    assert np.isposinf(x_classifier).any() and np.isneginf(x_classifier).any()
    assert np.isnan(x_classifier).any(axis=0).sum() >= 5
    assert list(np.flatnonzero(features.categorical)) == [4, 5, 6]
