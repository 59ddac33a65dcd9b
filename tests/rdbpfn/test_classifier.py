"""RDBPFNClassifier: input encoding, ensembles, limits, cache, devices, errors, pickling.

Everything runs on tiny random weights except the pickle-size bar, which uses the shipped
checkpoint.
"""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

import rdbpfn.checkpoint as checkpoints
from rdbpfn.checkpoint import CheckpointNotFoundError, load_checkpoint, save_random_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.encoding import TableEncoder
from rdbpfn.model import ModelConfig
from tests.common import BATCHING_ATOL

TINY = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=2, n_thinking_rows=2,
                   decoder_hidden=16, max_features=8)
TINY_3_CLASSES = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_classes=3,
                             decoder_hidden=16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", TINY, seed=0)


@pytest.fixture(scope="module")
def tiny3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt3") / "tiny3.pt"
    return save_random_checkpoint(path, TINY_3_CLASSES, seed=1)


def _data(n: int = 60, p: int = 4, n_classes: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = rng.integers(0, n_classes, size=n)
    y[:n_classes] = np.arange(n_classes)
    return X, y


def _mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "int_na": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            "cat": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "text": pd.Series(rng.choice(["a", "b", "c"], n), dtype="string"),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
            "constant": 3.0,
            "all_nan": np.nan,
        }
    )
    frame.loc[frame.index[::7], "int_na"] = pd.NA
    frame.loc[frame.index[::5], "text"] = pd.NA
    frame.loc[frame.index[::6], "num"] = np.nan
    frame.loc[frame.index[3], "num"] = np.inf
    return frame


def test_mixed_pandas_table(tiny: Path) -> None:
    train, test = _mixed_frame(50, 0), _mixed_frame(30, 1)
    y = np.array(["no", "yes"] * 25)
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=3).fit(train, y)
    proba = clf.predict_proba(test)
    assert proba.shape == (30, 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert set(clf.predict(test)) <= {"no", "yes"}
    assert list(clf.feature_names_in_) == list(train.columns)


def test_n_estimators_1_is_one_forward_pass(tiny: Path) -> None:
    X, y = _data(seed=1)
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=1).fit(X[:40], y[:40])
    model = load_checkpoint(tiny).model
    x = torch.tensor(X, dtype=torch.float32)[None]
    with torch.no_grad():
        expected = model(x, torch.tensor(y[:40])[None])[0].double().softmax(-1).numpy()
    np.testing.assert_allclose(clf.predict_proba(X[40:]), expected, atol=1e-5)


def test_strings_are_ordinal_codes_fitted_on_the_context(tiny: Path) -> None:
    X, y = _data(seed=2)
    words = np.array(["apple", "kiwi", "pear"])
    codes = np.random.default_rng(0).integers(0, 3, len(X))
    as_text = pd.DataFrame({"x0": X[:, 0], "fruit": words[codes]})
    as_codes = pd.DataFrame({"x0": X[:, 0], "fruit": codes.astype(float)})
    a = RDBPFNClassifier(model_path=tiny, n_estimators=2).fit(as_text[:40], y[:40])
    b = RDBPFNClassifier(model_path=tiny, n_estimators=2).fit(as_codes[:40], y[:40])
    # The same encoded numbers in the same chunks: exact.
    np.testing.assert_array_equal(a.predict_proba(as_text[40:]), b.predict_proba(as_codes[40:]))
    unseen = as_text[40:].copy()
    unseen.iloc[0, 1] = "mango"  # not in the context -> missing
    missing = as_text[40:].copy()
    missing.iloc[0, 1] = None
    np.testing.assert_allclose(a.predict_proba(unseen), a.predict_proba(missing), atol=0)


def test_table_encoder_kinds() -> None:
    frame = pd.DataFrame(
        {
            "ordered": pd.Categorical(["lo", "hi", None], categories=["lo", "hi"], ordered=True),
            "mixed_numbers": np.array([1, 2.5, None], dtype=object),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "inf": [np.inf, 0.0, -np.inf],
        }
    )
    encoder = TableEncoder().fit(frame)
    raw = encoder.transform(frame) * encoder.scale_ + encoder.center_
    np.testing.assert_allclose(raw[:, 0], [0.0, 1.0, np.nan])
    np.testing.assert_allclose(raw[:, 1], [1.0, 2.5, np.nan])
    np.testing.assert_allclose(raw[:, 2], [1.0, np.nan, 0.0])
    assert raw[0, 3] == np.inf and raw[2, 3] == -np.inf
    assert encoder.transform(frame).dtype == np.float32


def test_large_values_keep_float64_precision(tiny: Path) -> None:
    X, y = _data(seed=3)
    shifted = X + 1.7e9  # e.g. timestamps in seconds: float32 alone would round them
    a = RDBPFNClassifier(model_path=tiny, n_estimators=1).fit(X[:40], y[:40])
    b = RDBPFNClassifier(model_path=tiny, n_estimators=1).fit(shifted[:40], y[:40])
    np.testing.assert_allclose(a.predict_proba(X[40:]), b.predict_proba(shifted[40:]), atol=1e-5)


def test_constant_columns_do_not_depend_on_their_value(tiny: Path) -> None:
    X, y = _data(seed=4)
    a, b = X.copy(), X.copy()
    a[:, 1], b[:, 1] = 5.0, -123.0
    pa = RDBPFNClassifier(model_path=tiny).fit(a[:40], y[:40]).predict_proba(a[40:])
    pb = RDBPFNClassifier(model_path=tiny).fit(b[:40], y[:40]).predict_proba(b[40:])
    np.testing.assert_allclose(pa, pb, atol=1e-6)


def test_one_vs_rest_beyond_the_model_classes(tiny: Path) -> None:
    X, y = _data(n=80, n_classes=4, seed=5)
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=2).fit(X[:60], y[:60])
    assert clf.multiclass_ == "one_vs_rest" and list(clf.classes_) == [0, 1, 2, 3]
    proba = clf.predict_proba(X[60:])
    assert proba.shape == (20, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)


def test_native_multiclass_with_class_shift(tiny3: Path) -> None:
    X, y = _data(n=80, n_classes=3, seed=6)
    single = RDBPFNClassifier(model_path=tiny3, n_estimators=1).fit(X[:60], y[:60])
    assert single.multiclass_ == "native"
    model = load_checkpoint(tiny3).model
    x = torch.tensor(X, dtype=torch.float32)[None]
    with torch.no_grad():
        direct = model(x, torch.tensor(y[:60])[None])[0].double().softmax(-1).numpy()
    np.testing.assert_allclose(single.predict_proba(X[60:]), direct, atol=1e-5)
    three = RDBPFNClassifier(model_path=tiny3, n_estimators=3).fit(X[:60], y[:60])
    assert [m.shift for m in three.members_] == [0, 1, 2]
    np.testing.assert_allclose(three.predict_proba(X[60:]).sum(axis=1), 1.0, atol=1e-12)


def test_context_larger_than_max_context_is_subsampled_per_member(tiny: Path) -> None:
    X, y = _data(n=120, n_classes=3, seed=7)
    y[:100] = 0
    y[100], y[101] = 1, 2  # rare classes must survive the subsample
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=3, max_context=20).fit(X[:110], y[:110])
    contexts = []
    for member in clf.members_:
        assert member.x_context.shape[1] == 20
        labels = set(member.y_context[0].tolist())
        assert labels == {0, 1}  # one-vs-rest task 0 has both labels
        contexts.append(member.x_context[0].clone())
    assert not torch.equal(contexts[1][:, 0].sort().values, contexts[2][:, 0].sort().values)
    assert np.isfinite(clf.predict_proba(X[110:])).all()


def test_wide_inputs_use_feature_subsets_covering_every_column(tiny: Path) -> None:
    X, y = _data(n=50, p=20, seed=8)
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=3).fit(X[:40], y[:40])
    used = np.concatenate([m.columns for m in clf.members_])
    for member in clf.members_:
        assert len(member.columns) == TINY.max_features == len(set(member.columns))
    assert set(used) == set(range(20))
    assert clf.predict_proba(X[40:]).shape == (10, 2)


def test_chunking_cache_and_single_rows_agree(tiny: Path) -> None:
    X, y = _data(n=70, seed=9)
    big = RDBPFNClassifier(model_path=tiny, n_estimators=2).fit(X[:40], y[:40])
    small = RDBPFNClassifier(model_path=tiny, n_estimators=2, query_batch_size=4,
                             max_cache_mb=0).fit(X[:40], y[:40])
    assert big.cached_ and not small.cached_
    full = big.predict_proba(X[40:])
    np.testing.assert_allclose(small.predict_proba(X[40:]), full, atol=BATCHING_ATOL, rtol=0)
    rows = np.vstack([big.predict_proba(X[i : i + 1]) for i in range(40, 70)])
    np.testing.assert_allclose(rows, full, atol=BATCHING_ATOL, rtol=0)
    np.testing.assert_array_equal(big.predict_proba(X[40:]), full)  # same chunks: exact


def test_deterministic_given_random_state(tiny: Path) -> None:
    X, y = _data(n=60, p=6, seed=10)

    def proba(seed: int) -> np.ndarray:
        clf = RDBPFNClassifier(model_path=tiny, n_estimators=3, random_state=seed)
        return clf.fit(X[:40], y[:40]).predict_proba(X[40:])

    assert np.array_equal(proba(3), proba(3))
    assert not np.array_equal(proba(3), proba(4))


def test_label_names_do_not_change_probabilities(tiny: Path) -> None:
    X, y = _data(seed=11)
    names = np.array(["cat", "dog"])[y]
    a = RDBPFNClassifier(model_path=tiny).fit(X[:40], y[:40]).predict_proba(X[40:])
    b = RDBPFNClassifier(model_path=tiny).fit(X[:40], names[:40]).predict_proba(X[40:])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("make_inputs", "message"),
    [
        (lambda X, y: (X[:0], y[:0]), "0 sample"),
        (lambda X, y: (X[:, :0], y), "0 feature"),
        (lambda X, y: (X, np.zeros_like(y)), "only one class"),
        (lambda X, y: (X, np.where(np.arange(len(y)) == 3, np.nan, y)), "NaN"),
        (lambda X, y: (X, np.array([None, *y[1:]], dtype=object)), "missing labels"),
        (lambda X, y: (X, y[:-1]), "one label per row"),
        (lambda X, y: (X[:, 0], y), "Reshape"),
        (lambda X, y: (X, y + 0.5), "continuous"),
    ],
)
def test_bad_fit_input_raises_value_error(tiny: Path, make_inputs, message: str) -> None:
    X, y = _data(seed=12)
    with pytest.raises(ValueError, match=message):
        RDBPFNClassifier(model_path=tiny).fit(*make_inputs(X, y.astype(float)))


def test_wrong_column_count_at_predict(tiny: Path) -> None:
    X, y = _data(seed=13)
    clf = RDBPFNClassifier(model_path=tiny).fit(X, y)
    with pytest.raises(ValueError, match="3 features.*expecting 4.*same columns"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(X[:0])


@pytest.mark.parametrize("param", ["n_estimators", "max_context", "query_batch_size"])
def test_bad_parameters(tiny: Path, param: str) -> None:
    X, y = _data(seed=14)
    with pytest.raises(ValueError, match=f"{param}=0"):
        RDBPFNClassifier(model_path=tiny, **{param: 0}).fit(X, y)


def test_no_checkpoint_says_what_to_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(checkpoints.ENV_VAR, raising=False)
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", tmp_path / "rdbpfn.pt")
    X, y = _data(seed=15)
    with pytest.raises(CheckpointNotFoundError, match="(?s)No trained.*model_path="):
        RDBPFNClassifier().fit(X, y)


def test_threaded_queries_match_row_by_row_and_restore_threads(tiny: Path) -> None:
    X, y = _data(n=300, seed=16)
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=2, query_batch_size=64)
    clf.fit(X[:40], y[:40])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        together = clf.predict_proba(X[40:])
        assert torch.get_num_threads() == 2
        np.testing.assert_array_equal(clf.predict_proba(X[40:]), together)  # same chunks
        rows = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(40, 300, 37)])
        shuffled = np.random.default_rng(0).permutation(np.arange(40, 300))
        reordered = clf.predict_proba(X[shuffled])
        torch.set_num_threads(1)
        one_thread = clf.predict_proba(X[40:])
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(one_thread, together, atol=BATCHING_ATOL, rtol=0)
    np.testing.assert_allclose(rows, together[::37], atol=BATCHING_ATOL, rtol=0)
    np.testing.assert_allclose(reordered, together[shuffled - 40], atol=BATCHING_ATOL, rtol=0)


# ---- devices -------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_so_and_suggests_cpu() -> None:
    X, y = _data(seed=17)
    with pytest.raises(ValueError, match=r"(?s)device='cuda'.*no CUDA GPU.*device='cpu'"):
        RDBPFNClassifier(device="cuda").fit(X, y)


def test_bad_device_string_says_what_to_pass() -> None:
    X, y = _data(seed=18)
    with pytest.raises(ValueError, match=r"device='gpu0' is not a torch device.*'cpu'"):
        RDBPFNClassifier(device="gpu0").fit(X, y)


# ---- pickling ------------------------------------------------------------------------------
PICKLE_BAR_BYTES = 10 * 2**20  # the default classifier on a 1,024 x 100 context


def _round_trip(clf: RDBPFNClassifier) -> RDBPFNClassifier:
    return pickle.loads(pickle.dumps(clf))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_estimators": 3},
        {"n_estimators": 1},
        {"n_estimators": 3, "max_cache_mb": 0},  # the caches are never built
        {"n_estimators": 3, "max_context": 20},  # per-member row subsamples
    ],
    ids=["cached", "one_member", "uncached", "subsampled"],
)
@pytest.mark.parametrize("predict_first", [True, False], ids=["predict_first", "pickle_first"])
def test_pickle_round_trip_predicts_the_same_bits(
    tiny: Path, kwargs: dict, predict_first: bool
) -> None:
    X, y = _data(n=100, p=12, n_classes=3, seed=19)  # 12 > 8 columns: feature subsets too
    clf = RDBPFNClassifier(model_path=tiny, **kwargs).fit(X[:70], y[:70])
    expected = clf.predict_proba(X[70:]) if predict_first else None
    loaded = _round_trip(clf)
    assert all(m.x_context is None and m.cache is None for m in loaded.members_)
    assert loaded.cached_ == ("max_cache_mb" not in kwargs)
    got = loaded.predict_proba(X[70:])
    if expected is None:
        expected = clf.predict_proba(X[70:])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(_round_trip(loaded).predict(X[70:]), clf.predict(X[70:]))
    if loaded.cached_:
        assert all(m.cache is not None for m in loaded.members_)


def test_pickle_stores_the_context_once_and_no_caches(tiny: Path) -> None:
    X, y = _data(n=200, p=6, seed=20)
    sizes = {}
    for n_estimators in (1, 8):
        clf = RDBPFNClassifier(model_path=tiny, n_estimators=n_estimators).fit(X, y)
        sizes[n_estimators] = len(pickle.dumps(clf))
        assert sum(m.cache is not None for m in clf.members_) == n_estimators
    context_bytes = clf.context_.nbytes  # (200, 6) float32: 4,800 bytes
    assert clf.context_.dtype == np.float32 and clf.context_.shape == (200, 6)
    # 7 more members add indices and a shift (~300 bytes each), not context copies (or caches).
    assert sizes[8] - sizes[1] < 7 * context_bytes // 2
    uncached = RDBPFNClassifier(model_path=tiny, n_estimators=8, max_cache_mb=0).fit(X, y)
    assert abs(len(pickle.dumps(uncached)) - sizes[8]) < 64


def test_subsampled_context_keeps_only_the_rows_members_use(tiny: Path) -> None:
    X, y = _data(n=2000, p=6, seed=21)
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=3, max_context=20).fit(X, y)
    assert len(clf.context_) <= 3 * 20
    encoded = clf.encoder_.transform(X)
    for member in clf.members_:
        x = clf.context_[member.rows][:, member.columns]
        torch.testing.assert_close(member.x_context[0], torch.from_numpy(x), atol=0, rtol=0)
        matches = (encoded[:, None, :] == clf.context_[member.rows][None]).all(axis=2)
        assert (matches.sum(axis=0) >= 1).all()  # every kept row is a row of X
        labels = y[matches.argmax(axis=0)]
        np.testing.assert_array_equal(clf.classes_[clf.context_labels_[member.rows]], labels)


def test_pickle_is_self_contained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_random_checkpoint(tmp_path / "gone.pt", TINY, seed=3)
    X, y = _data(seed=22)
    clf = RDBPFNClassifier(model_path=path).fit(X[:40], y[:40])
    blob = pickle.dumps(clf)
    path.unlink()
    monkeypatch.setenv(checkpoints.ENV_VAR, str(tmp_path / "missing.pt"))
    loaded = pickle.loads(blob)
    np.testing.assert_array_equal(loaded.predict_proba(X[40:]), clf.predict_proba(X[40:]))
    assert loaded.checkpoint_path_ == path


def test_unpickling_is_quiet_and_leaves_the_global_rng_alone(tiny: Path) -> None:
    X, y = _data(seed=23)
    blob = pickle.dumps(RDBPFNClassifier(model_path=tiny).fit(X, y))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(blob)
    torch.testing.assert_close(torch.rand(3), expected, atol=0, rtol=0)


def test_deepcopy_and_clone(tiny: Path) -> None:
    X, y = _data(seed=24)
    clf = RDBPFNClassifier(model_path=tiny, n_estimators=2).fit(X[:40], y[:40])
    copied = copy.deepcopy(clf)
    assert copied.model_ is not clf.model_
    np.testing.assert_array_equal(copied.predict_proba(X[40:]), clf.predict_proba(X[40:]))
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "model_")
    np.testing.assert_array_equal(
        fresh.fit(X[:40], y[:40]).predict_proba(X[40:]), clf.predict_proba(X[40:])
    )
    unfitted = copy.deepcopy(RDBPFNClassifier(model_path=tiny))
    assert not hasattr(_round_trip(unfitted), "model_")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unpickled_where_its_device_is_missing_runs_on_the_cpu(tiny: Path) -> None:
    X, y = _data(seed=25)
    clf = RDBPFNClassifier(model_path=tiny).fit(X[:40], y[:40])
    expected = clf.predict_proba(X[40:])
    clf.set_params(device="cuda")  # as if pickled on a GPU machine (the weights are on CPU)
    with pytest.warns(UserWarning, match=r"(?s)no CUDA GPU.*loaded on the CPU"):
        loaded = _round_trip(clf)
    assert loaded.device == "cuda" and loaded._device() == torch.device("cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X[40:]), expected)


@pytest.fixture(scope="module")
def default_fitted() -> Iterator[tuple[RDBPFNClassifier, np.ndarray]]:
    """The default classifier on the shipped weights, fitted on a 1,024 x 100 float context;
    and 32 query rows."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(checkpoints.ENV_VAR, raising=False)
        rng = np.random.default_rng(26)
        X = rng.normal(size=(1024 + 32, 100))
        y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
        clf = RDBPFNClassifier().fit(X[:1024], y[:1024])
        assert clf.checkpoint_path_ == checkpoints.DEFAULT_CHECKPOINT
        yield clf, X[1024:]


def test_default_classifier_pickle_is_under_the_bar(
    default_fitted: tuple[RDBPFNClassifier, np.ndarray],
) -> None:
    clf, _ = default_fitted
    assert clf.cached_ and all(m.cache is not None for m in clf.members_)
    size = len(pickle.dumps(clf))
    print(f"default classifier, 1,024 x 100 context: pickle {size:,} bytes")
    assert size <= PICKLE_BAR_BYTES


@pytest.mark.slow  # rebuilds four 1,024-row context caches (~10 s on 2 cores)
def test_default_classifier_round_trip_predicts_the_same_bits(
    default_fitted: tuple[RDBPFNClassifier, np.ndarray],
) -> None:
    clf, queries = default_fitted
    np.testing.assert_array_equal(_round_trip(clf).predict_proba(queries),
                                  clf.predict_proba(queries))
