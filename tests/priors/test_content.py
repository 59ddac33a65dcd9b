"""Content GNN: column kinds, dependence on time and on linked rows, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from priors.content import ColumnSpec, ContentConfig, TableLayout, fill_content
from priors.temporal import sample_signature

D = 8


def _two_tables(rng, n_parent=300, n_child=1200):
    times = np.sort(rng.random(n_child))
    signature = sample_signature(rng)
    parent_columns = [ColumnSpec("p_num0", "numeric"), ColumnSpec("p_cat1", "categorical",
                                                                   ("a", "b", "c"))]
    child_columns = [ColumnSpec(f"c_num{j}", "numeric") for j in range(4)]
    child_columns.append(ColumnSpec("c_flag", "bool"))
    parent = TableLayout(rng.standard_normal((n_parent, D)), np.zeros((n_parent, 5)), {},
                         parent_columns)
    index = rng.integers(0, n_parent, n_child)
    child = TableLayout(rng.standard_normal((n_child, D)), 2.0 * signature.features(times),
                        {"p_id": ("p", index)}, child_columns)
    return {"p": parent, "c": child}, times, index


def test_columns_have_their_kinds_and_shapes():
    rng = np.random.default_rng(0)
    tables, _, _ = _two_tables(rng)
    out = fill_content(rng, tables)
    assert set(out) == {"p", "c"}
    cat = out["p"]["p_cat1"]
    assert cat.dtype == np.int64 and cat.shape == (300,) and set(np.unique(cat)) <= {-1, 0, 1, 2}
    assert out["p"]["p_num0"].dtype == np.float64
    assert set(np.unique(out["c"]["c_flag"])) <= {-1, 0, 1}
    for j in range(4):
        values = out["c"][f"c_num{j}"]
        assert values.shape == (1200,)
        assert np.isfinite(values[~np.isnan(values)]).all()
        assert np.nanstd(values) > 0


def _max_time_correlation(seed):
    rng = np.random.default_rng(seed)
    tables, times, _ = _two_tables(rng)
    out = fill_content(rng, tables, ContentConfig(rounds=2, aggregation="mean", hidden=12,
                                                  residual=0.5))
    best = 0.0
    for j in range(4):
        v = out["c"][f"c_num{j}"]
        keep = ~np.isnan(v)
        ranks = np.argsort(np.argsort(v[keep]))
        best = max(best, abs(np.corrcoef(ranks, times[keep])[0, 1]))
    return best


def test_child_content_depends_on_time():
    # with the temporal features switched on, some column follows time in most databases
    assert np.mean([_max_time_correlation(s) > 0.2 for s in range(8)]) >= 0.6


def test_linked_rows_are_more_alike_than_random_pairs():
    within, shuffled = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        tables, _, index = _two_tables(rng)
        out = fill_content(rng, tables, ContentConfig(rounds=2, aggregation="sum", hidden=12,
                                                      residual=0.5))
        parent = out["p"]["p_num0"]
        for j in range(4):
            child = out["c"][f"c_num{j}"]
            for idx, bucket in ((index, within), (rng.permutation(index), shuffled)):
                keep = ~np.isnan(child) & ~np.isnan(parent[idx])
                bucket.append(abs(np.corrcoef(child[keep], parent[idx][keep])[0, 1]))
    assert np.mean(within) > np.mean(shuffled) + 0.03


def test_same_seed_same_values_and_bad_kind():
    a = fill_content(np.random.default_rng(1), _two_tables(np.random.default_rng(9))[0])
    b = fill_content(np.random.default_rng(1), _two_tables(np.random.default_rng(9))[0])
    for table in a:
        for column in a[table]:
            assert a[table][column].tobytes() == b[table][column].tobytes()
    with pytest.raises(ValueError, match="unknown kind"):
        ColumnSpec("x", "text")


def _parent_columns(tables, causal, seed=3):
    out = fill_content(np.random.default_rng(seed), tables,
                       ContentConfig(rounds=2, aggregation="sum", hidden=12, residual=0.5),
                       causal=causal)
    return out["p"]


def _with_child_latent(tables, rows, rng):
    """A copy of ``tables`` whose child rows ``rows`` get new latent states."""
    child = tables["c"]
    latent = child.latent.copy()
    latent[rows] = rng.standard_normal((rows.sum(), D))
    return {"p": tables["p"], "c": TableLayout(latent, child.temporal, child.foreign_keys,
                                               child.columns, child.seconds)}


def test_causal_content_of_an_untimed_parent_ignores_its_timed_children():
    rng = np.random.default_rng(0)
    tables, times, _ = _two_tables(rng)
    child = tables["c"]
    tables["c"] = TableLayout(child.latent, child.temporal, child.foreign_keys, child.columns,
                              (times * 1e6).astype(np.int64))
    changed = _with_child_latent(tables, np.ones(child.n_rows, dtype=bool), rng)
    for column, values in _parent_columns(tables, causal=True).items():
        np.testing.assert_array_equal(values, _parent_columns(changed, causal=True)[column])
    # the paper's content: the parent's columns follow its children
    before, after = _parent_columns(tables, causal=False), _parent_columns(changed, causal=False)
    assert not np.allclose(before["p_num0"], after["p_num0"], equal_nan=True)


def test_causal_content_of_a_timed_parent_sees_only_earlier_children():
    rng = np.random.default_rng(1)
    tables, _, index = _two_tables(rng)
    parent_seconds = np.sort(rng.integers(0, 1000, tables["p"].n_rows))
    child_seconds = np.sort(rng.integers(0, 2000, tables["c"].n_rows))
    parent, child = tables["p"], tables["c"]
    tables = {
        "p": TableLayout(parent.latent, parent.temporal, {}, parent.columns, parent_seconds),
        "c": TableLayout(child.latent, child.temporal, child.foreign_keys, child.columns,
                         child_seconds),
    }
    later = child_seconds > parent_seconds[index]
    assert 0 < later.sum() < later.size
    base = _parent_columns(tables, causal=True)["p_num0"]
    keep = ~np.isnan(base)

    def correlation(rows):
        changed = _parent_columns(_with_child_latent(tables, rows, rng), causal=True)["p_num0"]
        return np.corrcoef(base[keep], changed[keep])[0, 1]

    # later children reach the parent only through the child table's standardisation (one
    # shift and scale shared by all rows): the parent's values barely move
    assert correlation(later) > 0.999
    # children that exist when their parent does still shape it
    assert correlation(~later) < 0.99
