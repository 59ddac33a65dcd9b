"""Episode finalisation: exact shape, padding, constant columns, split validity, relabelling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from priors.episode import (
    MIN_ROWS_PER_CLASS,
    Episode,
    finalize,
    finalize_arrays,
    finalize_multiclass_arrays,
    relabel,
)


def _table(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = (x[:, 0] + rng.normal(size=n) > 0).astype(np.int64)
    return x, y


def test_shapes_dtypes_and_both_classes_on_each_side() -> None:
    x, y = _table(700, 25)
    for seed in range(20):
        episode = finalize(x, y, 600, 18, np.random.default_rng(seed))
        assert isinstance(episode, Episode)
        assert episode.X.shape == (600, 18) and episode.X.dtype == torch.float32
        assert episode.y.shape == (600,) and episode.y.dtype == torch.int64
        assert 300 <= episode.n_context <= 540  # round(600 * U(0.5, 0.9))
        context, queries = episode.y[: episode.n_context], episode.y[episode.n_context :]
        assert set(context.tolist()) == {0, 1} and set(queries.tolist()) == {0, 1}


def test_same_rng_same_bytes() -> None:
    x, y = _table(300, 10)
    a = finalize(x, y, 200, 12, np.random.default_rng(3))
    b = finalize(x, y, 200, 12, np.random.default_rng(3))
    assert a is not None and b is not None
    assert a.X.numpy().tobytes() == b.X.numpy().tobytes()
    assert torch.equal(a.y, b.y) and a.n_context == b.n_context


def test_rows_are_a_subset_of_the_table_with_their_own_labels() -> None:
    x, y = _table(300, 4)
    out = finalize_arrays(x, y, 250, 4, np.random.default_rng(0), n_context=100)
    assert out is not None
    features, labels, n_context = out
    assert n_context == 100
    # columns are permuted: match rows on the (sorted) feature values
    rows = [tuple(np.sort(row.astype(np.float32))) for row in x]
    source = dict(zip(rows, y, strict=True))
    mapped = [source[tuple(np.sort(row))] for row in features]
    # the class ids are either kept or swapped, the same way for every row
    assert np.array_equal(mapped, labels) or np.array_equal(mapped, 1 - labels)


def test_narrow_tables_are_zero_padded_and_constant_columns_dropped() -> None:
    x, y = _table(100, 5)
    x[:, 1] = 3.0                     # constant
    x[:, 3] = np.nan                  # all missing
    x[::2, 4], x[1::2, 4] = np.nan, 7.0  # constant where present
    out = finalize_arrays(x, y, 100, 8, np.random.default_rng(0))
    assert out is not None
    features = out[0]
    assert np.all(features[:, 2:] == 0.0)                 # 2 informative columns survive
    assert np.all(np.nanstd(features[:, :2], axis=0) > 0)


def test_wide_tables_are_subsampled_to_random_columns() -> None:
    x, y = _table(100, 50)
    x += np.arange(50) * 100.0       # column j lives around 100 j
    chosen = set()
    for seed in range(10):
        features = finalize_arrays(x, y, 100, 6, np.random.default_rng(seed))[0]
        chosen.update(np.round(np.median(features, axis=0) / 100.0).astype(int).tolist())
    assert len(chosen) > 30


def test_class_ids_are_permuted_at_random() -> None:
    x = np.arange(200.0)[:, None]
    y = (x[:, 0] >= 150).astype(np.int64)  # 50 positives
    positives = [
        int(finalize_arrays(x, y, 200, 1, np.random.default_rng(s))[1].sum()) for s in range(40)
    ]
    assert set(positives) == {50, 150}


def test_any_two_label_values_map_to_zero_and_one() -> None:
    x, _ = _table(50, 3)
    y = np.where(np.arange(50) % 3 == 0, "churn", "stay")
    out = finalize_arrays(x, y, 50, 3, np.random.default_rng(0))
    assert out is not None and set(out[1].tolist()) == {0, 1}


def test_a_class_with_two_rows_is_split_between_context_and_queries() -> None:
    x, _ = _table(600, 3)
    y = np.zeros(600, dtype=np.int64)
    y[[5, 17]] = 1
    for seed in range(30):
        out = finalize_arrays(x, y, 600, 3, np.random.default_rng(seed))
        assert out is not None
        labels, n_context = out[1], out[2]
        minority = int(labels.sum() < 300)
        assert (labels[:n_context] == minority).sum() == 1
        assert (labels[n_context:] == minority).sum() == 1


def test_invalid_tables_give_none() -> None:
    x, y = _table(100, 3)
    assert finalize(x, y, 150, 3, np.random.default_rng(0)) is None           # too few rows
    assert finalize(x, np.zeros(100), 100, 3, np.random.default_rng(0)) is None  # one class
    single = np.zeros(100)
    single[0] = 1
    assert finalize(x, single, 100, 3, np.random.default_rng(0)) is None      # 1-row class
    three = np.arange(100) % 3
    assert finalize(x, three, 100, 3, np.random.default_rng(0)) is None       # three classes


def test_inf_becomes_nan() -> None:
    x, y = _table(50, 2)
    x[0, 0] = np.inf
    features = finalize_arrays(x, y, 50, 2, np.random.default_rng(0))[0]
    assert np.isnan(features).sum() == 1 and not np.isinf(features).any()


def test_bad_arguments_raise_with_the_value_seen() -> None:
    x, y = _table(50, 2)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_context"):
        finalize(x, y, 50, 2, rng, n_context=50)
    with pytest.raises(ValueError, match=r"\(50,\)"):
        finalize(x, y[:10], 50, 2, rng)
    with pytest.raises(ValueError, match="2-d"):
        finalize(x[:, 0], y, 50, 2, rng)


def test_relabel_moves_a_feature_to_the_label_and_the_label_to_the_features() -> None:
    x, y = _table(200, 4)
    features, labels = relabel(x, y, np.random.default_rng(0))
    assert features.shape == (200, 4) and labels.shape == (200,)
    assert set(labels.tolist()) == {0, 1} and min(labels.sum(), 200 - labels.sum()) >= 2
    assert np.array_equal(features[:, -1], y)
    # the new label is a threshold of exactly the one removed column
    removed = [j for j in range(4) if not any(np.array_equal(x[:, j], f) for f in features.T)]
    assert len(removed) == 1
    column = x[:, removed[0]]
    assert column[labels == 1].min() > column[labels == 0].max()


def test_relabel_gives_none_without_a_splittable_column() -> None:
    x = np.ones((20, 3))
    assert relabel(x, np.arange(20) % 2, np.random.default_rng(0)) is None


def test_multiclass_episodes_cut_ranges_of_the_target_into_2_to_10_classes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    target = x[:, 0] + 0.1 * rng.normal(size=300)
    counts = np.zeros(11, dtype=int)
    for seed in range(200):
        arrays = finalize_multiclass_arrays(x, target, 100, 5, np.random.default_rng(seed))
        assert arrays is not None
        _, labels, n_context = arrays
        k = labels.max() + 1
        counts[k] += 1
        assert labels.dtype == np.int64 and np.bincount(labels).min() >= MIN_ROWS_PER_CLASS
        assert set(labels[:n_context]) == set(range(k))  # every class is in the context
        if k == 2:
            assert set(labels[n_context:]) == {0, 1}
    assert counts[2] > 70 and counts[3:].sum() > 70 and counts[10] > 0
    assert counts[:2].sum() == 0


def test_multiclass_classes_are_ranges_and_ids_are_shuffled() -> None:
    x = np.arange(200, dtype=float)[:, None] * np.ones((1, 3))
    x[:, 1] = np.random.default_rng(1).normal(size=200)
    target = np.arange(200, dtype=float)
    ranked = 0
    for seed in range(50):
        out = finalize_multiclass_arrays(x, target, 120, 3, np.random.default_rng(seed))
        assert out is not None
        features, labels, _ = out
        values = features[:, np.argmax(features.std(axis=0) > 5)]  # the arange column
        spans = [(values[labels == c].min(), values[labels == c].max())
                 for c in range(labels.max() + 1)]
        spans.sort()
        assert all(high < low for (_, high), (low, _) in zip(spans[:-1], spans[1:], strict=True))
        ranked += all(np.diff([np.median(values[labels == c])
                               for c in range(labels.max() + 1)]) > 0)
    assert ranked < 40  # ids are permuted, not in the target's order


def test_multiclass_needs_a_target_with_two_classes_of_two_rows() -> None:
    x = np.ones((50, 2))
    assert finalize_multiclass_arrays(x, np.zeros(50), 40, 2, np.random.default_rng(0)) is None
    one_off = np.zeros(50)
    one_off[0] = 1.0
    for seed in range(10):  # the rare value has one row: never a class of its own
        assert finalize_multiclass_arrays(x, one_off, 50, 2,
                                          np.random.default_rng(seed)) is None
    with pytest.raises(ValueError, match="max_classes"):
        finalize_multiclass_arrays(x, np.arange(50.0), 40, 2, np.random.default_rng(0),
                                   max_classes=1)


def test_a_count_target_often_asks_none_or_some() -> None:
    """A target with a point mass at its lowest value (70% zeros): the zeros are a class of
    their own in about half the draws (a random cut would rarely fall just above zero)."""
    rng = np.random.default_rng(3)
    counts = np.where(rng.random(400) < 0.7, 0, rng.integers(1, 30, 400)).astype(float)
    x = np.column_stack([counts, rng.normal(size=(400, 2))])  # the count is a feature too
    alone = 0
    for seed in range(100):
        out = finalize_multiclass_arrays(x, counts, 200, 3, np.random.default_rng(seed))
        assert out is not None
        features, labels, _ = out
        column = features[:, np.argmax((features == np.round(features)).all(axis=0))]
        zero_classes = set(labels[column == 0])
        assert len(zero_classes) == 1  # a class is a range: the zeros share one
        alone += not np.isin(labels[column > 0], list(zero_classes)).any()
    assert 40 <= alone <= 80
