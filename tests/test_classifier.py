"""RDBPFNClassifier: input encoding, ensembles, limits, cache, errors (tiny random weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import checkpoints
from checkpoints import CheckpointNotFoundError, load_checkpoint, save_random_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.model import ModelConfig
from rdbpfn.preprocessing import TableEncoder

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
    np.testing.assert_allclose(a.predict_proba(as_text[40:]), b.predict_proba(as_codes[40:]),
                               atol=1e-6)
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
    np.testing.assert_allclose(small.predict_proba(X[40:]), full, atol=1e-6)
    rows = np.vstack([big.predict_proba(X[i : i + 1]) for i in range(40, 70)])
    np.testing.assert_allclose(rows, full, atol=1e-6)


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
        rows = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(40, 300, 37)])
        shuffled = np.random.default_rng(0).permutation(np.arange(40, 300))
        reordered = clf.predict_proba(X[shuffled])
    finally:
        torch.set_num_threads(before)
    # Float32 kernels give batch-size-dependent rounding (~1e-8); sklearn allows 1e-7.
    np.testing.assert_allclose(rows, together[::37], atol=1e-7, rtol=0)
    np.testing.assert_allclose(reordered, together[shuffled - 40], atol=1e-9, rtol=0)
