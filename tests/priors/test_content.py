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
