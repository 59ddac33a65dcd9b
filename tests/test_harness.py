"""eval.harness / eval.features / eval.baselines / eval.single_table on small fakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval.baselines import XGBOOST_PAPER_PARAMS, Method, build_methods, logistic_regression
from eval.features import (
    FeatureSpec,
    feature_depth,
    feature_source,
    pool_rows,
    rank_columns,
    select_columns,
    task_features,
    to_numeric,
)
from eval.harness import evaluate, summarize
from eval.tasks import TASKS, Task, stable_seed, validation_episodes

N_ENTITIES = 120
N_ROWS = 600


def fake_database(seed: int = 0) -> dict[str, pd.DataFrame]:
    """entities (id, size, kind) <- events (entity_id, time, value)."""
    rng = np.random.default_rng(seed)
    entities = pd.DataFrame({"id": np.arange(N_ENTITIES), "size": rng.normal(size=N_ENTITIES),
                             "kind": rng.choice(["a", "b", "c"], size=N_ENTITIES)})
    n_events = 3000
    events = pd.DataFrame({
        "entity_id": rng.integers(0, N_ENTITIES, n_events),
        "time": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, n_events),
                                                             unit="D"),
        "value": rng.normal(size=n_events),
    })
    return {"entities": entities, "events": events}


def fake_linearize(db: dict[str, pd.DataFrame], target_table: str, entity_ids: list,
                   cutoff_times: pd.DatetimeIndex, **_: object) -> pd.DataFrame:
    """Depth-1 DFS reference: own columns, COUNT and MEAN of events up to the cutoff."""
    fake_linearize.calls += 1
    entities = db[target_table].set_index("id")
    events = db["events"]
    rows = []
    for entity, cutoff in zip(entity_ids, cutoff_times, strict=True):
        seen = events[(events["entity_id"] == entity) & (events["time"] <= cutoff)]
        rows.append({"size": entities.loc[entity, "size"], "kind": entities.loc[entity, "kind"],
                     "COUNT(events)": len(seen), "MEAN(events.value)": seen["value"].mean(),
                     "SUM(events.value)": seen["value"].sum(),
                     "constant": 1.0})
    return pd.DataFrame(rows)


fake_linearize.calls = 0


def fake_task(name: str = "toy", positive_rate: float | None = None, seed: int = 0) -> Task:
    """600 rows: entity, monthly cutoff, label from future events (known to the fake)."""
    db = fake_database(seed)
    rng = np.random.default_rng(seed + 1)
    ids = rng.integers(0, N_ENTITIES, N_ROWS)
    cutoffs = pd.Timestamp("2020-02-01") + pd.to_timedelta(rng.integers(0, 300, N_ROWS),
                                                           unit="D")
    size = db["entities"].set_index("id").loc[ids, "size"].to_numpy()
    if positive_rate is None:
        labels = (size + 0.3 * rng.normal(size=N_ROWS) > 0).astype(np.int8)
    else:
        labels = (rng.random(N_ROWS) < positive_rate).astype(np.int8)
    split = np.where(cutoffs < pd.Timestamp("2020-08-01"), "train",
                     np.where(cutoffs < pd.Timestamp("2020-10-01"), "val", "test"))
    if positive_rate is not None:  # keep the test sample two-class
        labels[np.flatnonzero(split == "test")[:2]] = [0, 1]
    return Task(database="fake", name=name, load_database=db, target_table="entities",
                entity_ids=ids, cutoff_times=cutoffs.to_numpy(), labels=labels, split=split,
                database_version=f"fake-{seed}")


@pytest.fixture()
def cache(tmp_path):
    return tmp_path / "cache"


def test_stable_seed_is_sha256_based_and_fixed() -> None:
    assert stable_seed("lahman", "player-hof", 0) == stable_seed("lahman", "player-hof", 0)
    assert stable_seed("lahman", "player-hof", 0) != stable_seed("lahman", "player-hof", 1)
    assert stable_seed("lahman", "player-hof", 0) == 824452429123194783
    assert 0 <= stable_seed("x") < 2**63


def test_task_validates_its_arrays() -> None:
    task = fake_task()
    with pytest.raises(ValueError, match="labels must be 0/1"):
        Task(database="d", name="t", load_database={}, target_table="x", entity_ids=[1, 2],
             cutoff_times=np.array(["2020-01-01"] * 2, "datetime64[ns]"), labels=[0, 2],
             split=["train", "test"])
    with pytest.raises(ValueError, match="has 1 entries"):
        Task(database="d", name="t", load_database={}, target_table="x", entity_ids=[1, 2],
             cutoff_times=np.array(["2020-01-01"], "datetime64[ns]"), labels=[0, 1],
             split=["train", "test"])
    assert task.summary()["rows"] == N_ROWS
    assert task.fingerprint() == fake_task().fingerprint()
    assert task.fingerprint() != fake_task(seed=3).fingerprint()


def test_features_are_cached_on_disk_and_keyed_by_the_task(cache) -> None:
    task = fake_task()
    fake_linearize.calls = 0
    first = task_features(task, cache_dir=cache, linearize=fake_linearize, verbose=False)
    calls = fake_linearize.calls
    assert calls >= 1
    again = task_features(fake_task(), cache_dir=cache, linearize=fake_linearize, verbose=False)
    assert fake_linearize.calls == calls  # loaded from disk, DFS not rerun
    np.testing.assert_array_equal(first.X, again.X)
    np.testing.assert_array_equal(first.task_rows, again.task_rows)
    assert first.columns == again.columns
    assert "constant" not in first.columns  # constant on train rows: dropped
    other = task_features(fake_task(seed=5), cache_dir=cache, linearize=fake_linearize,
                          verbose=False)
    assert fake_linearize.calls > calls
    assert not np.array_equal(other.y, first.y)
    # features match the reference computed row by row, in pool order
    rows = first.task_rows[:7]
    reference = fake_linearize(task.load_database, "entities", task.entity_ids[rows].tolist(),
                               pd.DatetimeIndex(task.cutoff_times[rows]))
    column = first.columns.index("MEAN(events.value)")
    np.testing.assert_allclose(first.X[:7, column], reference["MEAN(events.value)"], rtol=1e-6)
    np.testing.assert_array_equal(first.y, task.labels[first.task_rows])


def test_pool_respects_limits_and_is_a_fixed_uniform_subsample() -> None:
    task = fake_task()
    spec = FeatureSpec(max_train_rows=100, max_val_rows=20, max_test_rows=30)
    rows = pool_rows(task, spec)
    np.testing.assert_array_equal(rows, pool_rows(task, spec))
    counts = pd.Series(task.split[rows]).value_counts()
    assert counts["train"] == 100 and counts["val"] == 20 and counts["test"] == 30
    assert len(np.unique(rows)) == len(rows)


def test_feature_budget_is_label_free_and_drops_duplicates() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 3))
    X = np.column_stack([base, 2 * base[:, 0] + 1, np.ones(200), np.full(200, np.nan)])
    names = ["a", "MEAN(t.b)", "MEAN(t.u.c)", "SUM(t.b2)", "const", "empty"]
    kept = select_columns(X.astype(np.float32), names, max_features=10, correlation_limit=0.98)
    assert kept == [0, 1, 2]  # duplicate of column 0, constant and empty columns dropped
    assert select_columns(X.astype(np.float32), names, 2, 0.98) == [0, 1]
    assert [feature_depth(n) for n in ("a", "COUNT(t)", "MEAN(t.b)", "MEAN(t.u.c)",
                                       "MEAN(u.COUNT(t))")] == [0, 1, 1, 2, 2]
    assert feature_source("MEAN(batting.teams.W)") == "batting"
    assert feature_source("teams.W") == "teams" and feature_source("x") == ""
    order = rank_columns(["MEAN(a.x)", "MEAN(a.y)", "MEAN(b.x)", "own", "MEAN(a.c.z)"])
    assert order == [3, 0, 2, 1, 4]


def test_to_numeric_codes_categories_and_keeps_missing() -> None:
    frame = pd.DataFrame({"n": [1, None, 3], "c": ["b", None, "a"], "flag": [True, False, True],
                          "when": pd.to_datetime(["2020", "2021", "2022"])})
    X, names = to_numeric(frame)
    assert names == ["n", "c", "flag"]
    np.testing.assert_array_equal(X, np.array([[1, 1, 1], [np.nan, np.nan, 0], [3, 0, 1]],
                                              np.float32))


def test_evaluate_protocol_counts_draws_and_is_reproducible(cache) -> None:
    task = fake_task()
    methods = [logistic_regression()]
    kwargs = dict(ks=[8, 32], seeds=range(3), test_rows=50, cache_dir=cache,
                  linearize=fake_linearize, verbose=False)
    results = evaluate([task], methods, **kwargs)
    assert len(results) == 2 * 3
    assert set(results["status"]) == {"ok"}
    assert (results["n_test"] == 50).all()
    # label = sign(size) + noise: learnable from 32 rows, better than chance from 8
    assert results.loc[results["k"] == 32, "roc_auc"].min() > 0.85
    assert results["roc_auc"].min() > 0.5
    again = evaluate(task, methods, **kwargs)
    pd.testing.assert_frame_equal(results.drop(columns=["fit_s", "predict_s"]),
                                  again.drop(columns=["fit_s", "predict_s"]))
    summary = summarize(results)
    assert list(summary["k"]) == [8, 32] and (summary["n_ok"] == 3).all()
    by_k = results.groupby("k")["roc_auc"]
    np.testing.assert_allclose(summary["roc_auc_mean"], by_k.mean().to_numpy())
    np.testing.assert_allclose(summary["roc_auc_std"], by_k.std(ddof=1).to_numpy())


class _ContextRecorder:
    """A method that records its contexts and predicts a fixed score."""

    def __init__(self) -> None:
        self.contexts: list[np.ndarray] = []

    def make(self, seed: int) -> _ContextRecorder:
        return self

    def fit(self, X: np.ndarray, y: np.ndarray) -> _ContextRecorder:
        self.contexts.append(X.copy())
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        score = np.nan_to_num(X[:, 0])
        score = 1 / (1 + np.exp(-score))
        return np.column_stack([1 - score, score])


def test_contexts_are_nested_uniform_train_rows_and_skips_are_counted(cache) -> None:
    task = fake_task(positive_rate=0.02)
    recorder = _ContextRecorder()
    method = Method("recorder", recorder.make)
    results = evaluate(task, [method], ks=[4, 64, 10_000], seeds=range(20), test_rows=40,
                       cache_dir=cache, linearize=fake_linearize, verbose=False)
    features = task_features(task, cache_dir=cache, linearize=fake_linearize, verbose=False)
    counts = results.groupby(["k", "status"]).size()
    assert counts[(10_000, "k_exceeds_train")] == 20
    assert counts[(4, "one_class")] > 0  # 2% positives: most 4-row contexts are one-class
    summary = summarize(results).set_index("k")
    assert summary.loc[4, "n_one_class"] + summary.loc[4, "n_ok"] == 20
    assert summary.loc[10_000, "n_k_exceeds_train"] == 20
    train_X = {row.tobytes() for row in features.X[features.rows("train")]}
    for context in recorder.contexts:
        assert all(row.tobytes() in train_X for row in context)
    # per seed the 4-row context (when kept) is the head of the 64-row context
    ok = results[results["status"] == "ok"].reset_index(drop=True)
    assert len(ok) == len(recorder.contexts)
    nested = 0
    for _, draws in ok.groupby("seed"):
        if set(draws["k"]) == {4, 64}:
            small, large = (recorder.contexts[i] for i in draws.sort_values("k").index)
            np.testing.assert_array_equal(small, large[:4])
            nested += 1
    assert nested > 0


def test_validation_episodes_never_touch_test_rows(cache) -> None:
    task = fake_task(name="validation-probe")
    TASKS["fake/validation-probe"] = lambda: task

    def tagging_linearize(db, target_table, entity_ids, cutoff_times, **kwargs):
        """Adds the cutoff day: rows with equal features then share (entity, cutoff, split)."""
        frame = fake_linearize(db, target_table, entity_ids, cutoff_times, **kwargs)
        frame["cutoff_day"] = pd.DatetimeIndex(cutoff_times).dayofyear.to_numpy()
        return frame

    try:
        episodes = validation_episodes(["fake/validation-probe"], context_size=64,
                                       max_val_rows=30, cache_dir=cache,
                                       linearize=tagging_linearize)
    finally:
        del TASKS["fake/validation-probe"]
    X_context, y_context, X_val, y_val = episodes["fake/validation-probe"]
    assert X_context.shape[0] == 64 and X_val.shape[0] == 30
    assert X_context.dtype == np.float32 and y_context.dtype == np.int64
    assert set(np.unique(y_context)) == {0, 1}
    features = task_features(task, cache_dir=cache, linearize=tagging_linearize)
    assert "cutoff_day" in features.columns
    split_of = {row.tobytes(): s for row, s in zip(features.X, features.split, strict=True)}
    assert {split_of[row.tobytes()] for row in X_context} == {"train"}
    assert {split_of[row.tobytes()] for row in X_val} == {"val"}


def test_build_methods_skips_missing_checkpoint_with_a_note(tmp_path) -> None:
    methods, notes = build_methods(["rdbpfn", "logreg"], checkpoint=tmp_path / "missing.pt")
    assert [m.name for m in methods] == ["logreg"]
    assert len(notes) == 1 and "RDBPFN skipped" in notes[0] and "missing.pt" in notes[0]
    with pytest.raises(FileNotFoundError, match="no RDB-PFN checkpoint"):
        build_methods(["rdbpfn-peer"], peer_checkpoint=tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="Unknown method"):
        build_methods(["catboost"])


def test_baselines_learn_a_separable_problem() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) > 0).astype(np.int64)
    names = ["logreg", "random-forest", "xgboost", "lightgbm"]
    methods, _ = build_methods(names, threads=1)
    from eval.harness import score_draw

    for method in methods:
        scores = score_draw(method, X[:200], y[:200], X[200:], y[200:], seed=1)
        assert scores["roc_auc"] > 0.85, (method.name, scores)
        assert scores["fit_s"] >= 0 and scores["predict_s"] >= 0
    paper = build_methods(["xgboost-paper"], threads=1)[0][0].make(3)
    params = paper.get_params()
    assert {k: params[k] for k in XGBOOST_PAPER_PARAMS} == XGBOOST_PAPER_PARAMS
    forest = build_methods(["random-forest"], threads=1)[0][0].make(3)
    assert forest.get_params()["n_estimators"] == 500


def test_single_table_protocol() -> None:
    from eval.single_table import DATASETS, MAX_ROWS, _rdataset, evaluate_single_table, load_dataset

    X, y = load_dataset("sklearn/digits-3")
    assert X.shape == (MAX_ROWS, 64) and set(np.unique(y)) == {0, 1}
    np.testing.assert_array_equal(load_dataset("sklearn/digits-3")[0], X)
    assert all(not name.startswith(("ISLR", "MASS")) for name in DATASETS)
    with pytest.raises(ValueError, match="reserved"):
        _rdataset("MASS", "Pima.tr", "type", "Yes")
    results = evaluate_single_table([logistic_regression()], ["sklearn/breast-cancer"],
                                    range(2), verbose=False)
    assert len(results) == 2 and (results["k"] == 398).all() and (results["n_test"] == 171).all()
    assert results["roc_auc"].min() > 0.95
