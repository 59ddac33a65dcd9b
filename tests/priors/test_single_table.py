"""Single-table SCM prior: determinism, shapes, rates of its features, learnable labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor
from sklearn.metrics import roc_auc_score

from priors.single_table import (
    ACTIVATIONS,
    DEFAULT_PRIOR,
    SingleTablePrior,
    _additive_node,
    _group_rows,
    _readable_node,
    sample_recipe,
    sample_table,
)


def _is_ordinal_code(column: np.ndarray) -> bool:
    """Values (NaN ignored) are exactly 0..k-1 for some k <= 9."""
    values = np.unique(column[~np.isnan(column)])
    return 2 <= len(values) <= 9 and bool(np.all(values == np.arange(len(values))))


def test_same_seed_same_bytes_and_different_seed_different_table() -> None:
    x1, y1 = sample_table(np.random.default_rng(7), 200, 12)
    x2, y2 = sample_table(np.random.default_rng(7), 200, 12)
    x3, _ = sample_table(np.random.default_rng(8), 200, 12)
    assert x1.tobytes() == x2.tobytes() and y1.tobytes() == y2.tobytes()
    assert x1.tobytes() != x3.tobytes()


@pytest.mark.parametrize("mlp_fraction", [0.0, 1.0])
def test_shapes_dtypes_and_binary_labels(mlp_fraction: float) -> None:
    rng = np.random.default_rng(0)
    prior = SingleTablePrior(mlp_fraction=mlp_fraction)
    for columns in (1, 5, 40):
        x, y = sample_table(rng, 150, columns, prior=prior)
        assert x.shape == (150, columns) and x.dtype == np.float32
        assert y.shape == (150,) and y.dtype == np.int64
        assert set(np.unique(y)) <= {0, 1}
        assert not np.isinf(x).any()


def test_every_activation_is_finite_and_shape_preserving() -> None:
    rng = np.random.default_rng(0)
    z = np.clip(rng.normal(size=(64, 5)) * 3.0, -30.0, 30.0)
    for name, activation in ACTIVATIONS.items():
        out = activation(z, rng)
        assert out.shape == z.shape, name
        assert np.isfinite(out).all(), name


def test_every_activation_occurs_in_recipes() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        seen.update(sample_recipe(rng, 10).activations)
    assert seen == set(ACTIVATIONS)


def test_recipe_has_enough_nodes_for_features_and_label() -> None:
    rng = np.random.default_rng(0)
    for columns in (1, 18, 30, 100):
        for _ in range(20):
            recipe = sample_recipe(rng, columns)
            assert sum(recipe.widths) >= columns + 1


def test_tree_and_mlp_scms_mix_at_the_configured_rate() -> None:
    rng = np.random.default_rng(3)
    kinds = [sample_recipe(rng, 18).kind for _ in range(1000)]
    # P(mlp) = 0.7: binomial std over 1000 draws is 0.0145
    assert abs(np.mean([k == "mlp" for k in kinds]) - DEFAULT_PRIOR.mlp_fraction) < 0.05


def test_missing_values_and_categorical_columns_at_expected_rates() -> None:
    rng = np.random.default_rng(11)
    tables = [sample_table(rng, 200, 10) for _ in range(300)]
    with_missing = np.mean([np.isnan(x).any() for x, _ in tables])
    # P(table has missing values) = 0.4 (a few "missing" tables draw no NaN at low rates)
    assert 0.30 <= with_missing <= 0.48, with_missing
    missing_share = np.mean([np.isnan(x).mean() for x, _ in tables if np.isnan(x).any()])
    assert 0.03 <= missing_share <= 0.2, missing_share
    ordinal = np.mean([_is_ordinal_code(x[:, j]) for x, _ in tables for j in range(10)])
    # expected bucketed share 0.5 * mean U(0.05, 0.6) = 0.16, minus codes lost to NaN / ties
    assert 0.09 <= ordinal <= 0.25, ordinal


def test_fully_categorical_recipe_gives_ordinal_codes_only() -> None:
    rng = np.random.default_rng(5)
    recipe = dataclasses.replace(
        sample_recipe(rng, 8), categorical_fraction=1.0, missing_rate=0.0, max_categories=5
    )
    x, _ = sample_table(rng, 300, 8, recipe=recipe)
    for j in range(8):
        values = np.unique(x[:, j])
        assert len(values) <= 5 and np.all(values == np.arange(len(values))), values


def test_label_imbalance_spans_a_wide_range() -> None:
    rng = np.random.default_rng(2)
    rates = np.array([sample_table(rng, 300, 6)[1].mean() for _ in range(200)])
    assert rates.min() < 0.1 and rates.max() > 0.9
    assert 0.3 < np.median(rates) < 0.7


def test_label_depends_on_the_features() -> None:
    """ExtraTrees fitted on 150 rows beats chance on held-out rows of most tables."""
    rng = np.random.default_rng(0)
    aucs = []
    for _ in range(40):
        x, y = sample_table(rng, 300, 10)
        if min(np.unique(y[:150]).size, np.unique(y[150:]).size) < 2:
            continue
        x = np.nan_to_num(x, nan=0.0)
        model = ExtraTreesClassifier(n_estimators=25, random_state=0).fit(x[:150], y[:150])
        aucs.append(roc_auc_score(y[150:], model.predict_proba(x[150:])[:, 1]))
    aucs = np.array(aucs)
    assert len(aucs) >= 35
    # measured with these seeds: mean ~0.73; chance is 0.5 with std ~0.05 per table
    assert aucs.mean() > 0.65, aucs.mean()
    assert (aucs > 0.6).mean() > 0.6, aucs


def test_rejects_impossible_sizes_and_bad_priors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rows >= 2"):
        sample_table(rng, 1, 5)
    with pytest.raises(ValueError, match="columns >= 1"):
        sample_table(rng, 10, 0)
    with pytest.raises(ValueError, match="mlp_fraction"):
        SingleTablePrior(mlp_fraction=1.5)
    with pytest.raises(ValueError, match="width"):
        SingleTablePrior(width=(5, 2))


def test_continuous_targets_are_numbers_of_varied_shapes() -> None:
    """Numeric targets: finite floats, many distinct values in most tables, skewed ones
    among them (amounts and counts), the same bytes for the same seed."""
    tables = [sample_table(np.random.default_rng(seed), 200, 6, target="continuous")
              for seed in range(40)]
    assert all(y.dtype == np.float64 and np.isfinite(y).all() for _, y in tables)
    skews = [float(((y - y.mean()) ** 3).mean() / max(y.std(), 1e-12) ** 3) for _, y in tables]
    assert max(np.abs(skews)) > 1.0  # some exp-shaped targets
    assert np.mean([len(np.unique(y)) > 50 for _, y in tables]) > 0.5
    again = sample_table(np.random.default_rng(3), 200, 6, target="continuous")
    assert np.array_equal(again[1], tables[3][1]) and np.array_equal(again[0], tables[3][0],
                                                                      equal_nan=True)
    with pytest.raises(ValueError, match="target must be one of"):
        sample_table(np.random.default_rng(0), 20, 3, target="ordinal")


def test_readable_targets_are_functions_of_the_observed_columns() -> None:
    """Half of the numeric targets come from observed columns only: a forest fitted on 200
    rows predicts such a target well on the rest (the SCM node alone is often far weaker)."""
    scores = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x, _ = sample_table(rng, 400, 6)
        y = _readable_node(x, rng)
        features = np.nan_to_num(x, nan=-999.0)
        model = RandomForestRegressor(100, random_state=0).fit(features[:200], y[:200])
        residual = y[200:] - model.predict(features[200:])
        scores.append(1 - residual.var() / y[200:].var())
    assert np.median(scores) > 0.5


def test_additive_targets_sum_many_columns_and_are_off_by_default() -> None:
    """An additive target depends on several of the observed columns (changing one chosen
    column changes it), and a regression on simple shapes of the columns explains most of it;
    ``additive_targets=1`` makes every readable target additive, and the default prior's
    tables are untouched by the option."""
    used, scores = [], []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(400, 12)).astype(np.float32)
        y = _additive_node(x, np.random.default_rng(seed + 100))
        used.append(sum(
            not np.allclose(_additive_node(np.where(np.arange(12) == j, x[::-1], x),
                                           np.random.default_rng(seed + 100)), y)
            for j in range(12)))
        design = np.hstack([x, x**2, np.abs(x), np.tanh(x), np.ones((400, 1))])
        residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
        scores.append(1 - residual.var() / y.var())
    assert min(used) >= 2 and np.mean(used) > 4
    assert np.median(scores) > 0.8
    plain = sample_table(np.random.default_rng(5), 120, 6, target="continuous")
    off = sample_table(np.random.default_rng(5), 120, 6, target="continuous",
                       prior=SingleTablePrior(additive_targets=0.0, grouped_tables=0.0))
    on = sample_table(np.random.default_rng(5), 120, 6, target="continuous",
                      prior=SingleTablePrior(additive_targets=1.0))
    assert plain[1].tobytes() == off[1].tobytes()
    assert on[1].tobytes() != plain[1].tobytes()


def test_additive_classes_are_linear_in_the_columns_and_off_by_default() -> None:
    """``additive_targets=1`` with a binary target: the class lies on one side of a noisy
    weighted sum of observed columns, so a logistic regression on simple shapes of the
    columns ranks it well (in-sample) on most tables; the default stream's classes are the
    bytes they were."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    aucs = []
    for seed in range(10):
        x, y = sample_table(np.random.default_rng(seed), 300, 8, target="binary",
                            prior=SingleTablePrior(additive_targets=1.0))
        if len(np.unique(y)) < 2:
            continue
        z = np.nan_to_num(x.astype(np.float64))
        z = (z - z.mean(0)) / (z.std(0) + 1e-9)
        design = np.hstack([z, z**2, np.abs(z), np.tanh(z)])
        model = LogisticRegression(C=10.0, max_iter=2000).fit(design, y)
        aucs.append(roc_auc_score(y, model.decision_function(design)))
    assert len(aucs) >= 8 and np.median(aucs) > 0.85
    plain = sample_table(np.random.default_rng(5), 120, 6, target="binary")
    off = sample_table(np.random.default_rng(5), 120, 6, target="binary",
                       prior=SingleTablePrior(additive_targets=0.0))
    assert plain[1].tobytes() == off[1].tobytes() and plain[0].tobytes() == off[0].tobytes()
    changed = [sample_table(np.random.default_rng(seed), 120, 6, target="binary",
                            prior=SingleTablePrior(additive_targets=1.0))[1].tobytes()
               != sample_table(np.random.default_rng(seed), 120, 6, target="binary")[1].tobytes()
               for seed in range(5)]
    assert sum(changed) >= 4


def test_grouped_rows_share_columns_and_a_group_effect() -> None:
    """Rows of one group carry the same values in the shared columns (at least one) and the
    same effect; ``grouped_tables=1`` changes the table, reproducibly."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 7)).astype(np.float32)
    grouped, effect = _group_rows(x, np.random.default_rng(1))
    shared = np.flatnonzero(~np.all(np.isclose(grouped, x), axis=0))
    assert len(shared) >= 1
    keys = [tuple(row) for row in grouped[:, shared]]
    assert len(set(keys)) < 300 / 1.5
    for key in set(keys):
        rows = [i for i, k in enumerate(keys) if k == key]
        assert np.ptp(effect[rows]) == 0.0
    prior = SingleTablePrior(grouped_tables=1.0)
    tables = [sample_table(np.random.default_rng(3), 200, 6, target=target, prior=prior)
              for target in ("continuous", "continuous", "binary")]
    plain = sample_table(np.random.default_rng(3), 200, 6, target="continuous")
    assert tables[0][1].tobytes() == tables[1][1].tobytes()
    assert tables[0][1].tobytes() != plain[1].tobytes()
    assert set(np.unique(tables[2][1])) == {0, 1}
