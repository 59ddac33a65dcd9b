"""rdbpfn.dfs: linearize semantics on a hand-checked database, errors, and the budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rdbpfn.database import Database
from rdbpfn.dfs import feature_names, fit_budget, linearize, select_features, vectorized
from rdbpfn.dfs.budget import BUDGET_LADDER
from rdbpfn.dfs.linearize import PAPER_PRIMITIVES
from rdbpfn.table import Table

DAY0 = pd.Timestamp("2022-01-01")


def day(d: int) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=d)


def shop() -> Database:
    """customers <- orders <- items; hand-checked values below."""
    customers = pd.DataFrame({
        "id": [1, 2, 3],
        "age": [30.0, 40.0, 50.0],
        "joined": [day(0), day(0), day(5)],
    })
    orders = pd.DataFrame({
        "id": [10, 11, 12, 13, 14],
        "customer_id": [1, 1, 1, 2, None],
        "amount": [1.0, 2.0, 4.0, np.nan, 16.0],
        "channel": ["web", "app", "web", "app", "web"],
        "at": [day(1), day(2), day(3), day(2), day(1)],
    })
    items = pd.DataFrame({
        "id": [100, 101, 102, 103],
        "order_id": [10, 10, 11, 12],
        "price": [3.0, 5.0, 7.0, 11.0],
        "at": [day(1), day(2), day(2), day(3)],
    })
    return Database({
        "customers": Table(customers, "id", time_column="joined"),
        "orders": Table(orders, "id", {"customer_id": "customers"}, "at"),
        "items": Table(items, "id", {"order_id": "orders"}, "at"),
    })


DEPTH_ONE_CUSTOMER_FEATURES = [
    "age", "COUNT(orders)", "MAX(orders.amount)", "MEAN(orders.amount)",
    "MIN(orders.amount)", "MODE(orders.channel)", "SUM(orders.amount)",
]


def test_depth_one_names_keys_and_time_dropped() -> None:
    assert feature_names(shop(), "customers", max_depth=1,
                         primitives=PAPER_PRIMITIVES, windows=()) == DEPTH_ONE_CUSTOMER_FEATURES
    names = feature_names(shop(), "orders", max_depth=2)
    assert names[:2] == ["amount", "channel"]
    assert "customers.COUNT(orders)" in names and "customers.age" in names
    assert "SUM(items.price)" in names
    assert not any("customer_id" in n or "order_id" in n or n in ("id", "at") for n in names)


def test_cutoff_edge_is_inclusive_and_strict_option() -> None:
    db = shop()
    inclusive = linearize(db, "customers", [1], [day(2)], max_depth=1)
    strict = linearize(db, "customers", [1], [day(2)], max_depth=1, include_cutoff_time=False)
    # order 11 is stamped exactly at the cutoff: visible by default, not with strict cutoffs
    assert inclusive.loc[0, "COUNT(orders)"] == 2 and inclusive.loc[0, "SUM(orders.amount)"] == 3
    assert strict.loc[0, "COUNT(orders)"] == 1 and strict.loc[0, "SUM(orders.amount)"] == 1
    # mode tie between "web" and "app" goes to the smallest category
    assert inclusive.loc[0, "MODE(orders.channel)"] == "app"
    assert strict.loc[0, "MODE(orders.channel)"] == "web"


def test_no_children_and_target_after_cutoff_give_defaults() -> None:
    db = shop()
    frame = linearize(db, "customers", [2, 3, 2], [day(1), day(4), day(9)], max_depth=1)
    # customer 2 at day 1: no visible orders -> count 0, sum 0, the rest missing
    assert frame.loc[0, "age"] == 40 and frame.loc[0, "COUNT(orders)"] == 0
    assert frame.loc[0, "SUM(orders.amount)"] == 0
    assert frame.loc[0, ["MEAN(orders.amount)", "MAX(orders.amount)"]].isna().all()
    assert pd.isna(frame.loc[0, "MODE(orders.channel)"])
    # customer 3 joined on day 5: at day 4 it does not exist yet (featuretools' default row)
    assert np.isnan(frame.loc[1, "age"]) and frame.loc[1, "COUNT(orders)"] == 0
    assert frame.loc[1, "SUM(orders.amount)"] == 0
    # customer 2 at day 9: one order whose amount is missing -> count 1, sum 0, mean missing
    assert frame.loc[2, "COUNT(orders)"] == 1 and frame.loc[2, "SUM(orders.amount)"] == 0
    assert np.isnan(frame.loc[2, "MEAN(orders.amount)"])


def test_depth_two_stacking_and_deep_paths() -> None:
    db = shop()
    frame = linearize(db, "customers", [1], [day(2)], max_depth=2)
    # visible at day 2: orders 10, 11; items 100, 101 (order 10) and 102 (order 11)
    assert frame.loc[0, "MEAN(orders.SUM(items.price))"] == pytest.approx((8 + 7) / 2)
    assert frame.loc[0, "MAX(orders.COUNT(items))"] == 2
    assert frame.loc[0, "COUNT(items)"] == 3  # aggregation over grandchildren
    assert frame.loc[0, "SUM(items.price)"] == 15
    assert "SUM(orders.COUNT(items))" not in frame.columns  # featuretools' stacking rule
    assert "MAX(orders.MAX(items.price))" not in frame.columns
    late = linearize(db, "customers", [1], None, max_depth=2)
    assert late.loc[0, "COUNT(items)"] == 4 and late.loc[0, "MIN(orders.MEAN(items.price))"] == 4


def test_direct_features_see_siblings_at_the_cutoff() -> None:
    db = shop()
    frame = linearize(db, "orders", [11, 14, 10], [day(2), day(5), day(0)], max_depth=2)
    assert frame.loc[0, "customers.age"] == 30
    assert frame.loc[0, "customers.COUNT(orders)"] == 2  # orders 10 and 11 at day 2
    assert frame.loc[0, "customers.SUM(orders.amount)"] == 3
    # order 14 has no customer: inherited counts and sums are 0, values missing
    assert frame.loc[1, "customers.COUNT(orders)"] == 0 and np.isnan(frame.loc[1, "customers.age"])
    # order 10 does not exist at day 0
    assert np.isnan(frame.loc[2, "amount"]) and frame.loc[2, "COUNT(items)"] == 0


def test_rows_follow_requests_and_columns_do_not_depend_on_rows() -> None:
    db = shop()
    both = linearize(db, "customers", [3, 1, 1], [day(9), day(1), day(9)])
    one = linearize(db, "customers", [1], [day(9)])
    assert list(both.columns) == list(one.columns)
    assert both.index.tolist() == [0, 1, 2]
    assert both.loc[0, "age"] == 50 and both.loc[1, "COUNT(orders)"] == 1
    pd.testing.assert_series_equal(both.iloc[2], one.iloc[0], check_names=False)
    assert linearize(db, "customers", [], None).shape == (0, both.shape[1])


def test_features_argument_selects_columns() -> None:
    db = shop()
    full = linearize(db, "customers", [1, 2], [day(3), day(3)])
    names = ["COUNT(items)", "age", "MODE(orders.channel)"]
    subset = linearize(db, "customers", [1, 2], [day(3), day(3)], features=names)
    pd.testing.assert_frame_equal(subset, full[names])


def test_categorical_output_keeps_the_column_categories() -> None:
    frame = linearize(shop(), "customers", [1, 2], None, max_depth=1)
    column = frame["MODE(orders.channel)"]
    assert isinstance(column.dtype, pd.CategoricalDtype)
    assert list(column.cat.categories) == ["app", "web"] and column.tolist() == ["web", "app"]


def test_missing_times_are_never_visible() -> None:
    db = shop()
    orders = db["orders"].df.assign(at=[day(1), pd.NaT, day(3), day(2), day(1)])
    patched = Database({"customers": db["customers"],
                        "orders": Table(orders, "id", {"customer_id": "customers"}, "at")})
    frame = linearize(patched, "customers", [1], None, max_depth=1)
    assert frame.loc[0, "COUNT(orders)"] == 2 and frame.loc[0, "SUM(orders.amount)"] == 5


def test_time_aware_vocabulary_by_hand() -> None:
    """Recency, tenure, distinct categories and recent windows on the hand-checked shop."""
    frame = linearize(shop(), "customers", [1, 2, 3, 1], [day(2), day(2), day(4), day(40)],
                      max_depth=1)
    seconds = 86_400.0
    expected = {
        # customer 1 at day 2 sees orders 10 (day 1, web) and 11 (day 2, app); customer 3
        # joins on day 5, so at day 4 it is absent
        "NUM_UNIQUE(orders.channel)": [2.0, 1.0, np.nan, 2.0],
        "TIME_SINCE_LAST(orders.at)": [0.0, 0.0, np.nan, 37 * seconds],
        "TIME_SINCE_FIRST(orders.at)": [seconds, 0.0, np.nan, 39 * seconds],
        "TIME_SINCE(joined)": [2 * seconds, 2 * seconds, np.nan, 40 * seconds],
        "COUNT(orders, last 7 days)": [2.0, 1.0, 0.0, 0.0],
        "SUM(orders.amount, last 7 days)": [3.0, 0.0, 0.0, 0.0],
        "COUNT(orders, last 90 days)": [2.0, 1.0, 0.0, 3.0],
        "SUM(orders.amount, last 90 days)": [3.0, 0.0, 0.0, 7.0],
    }
    for name, values in expected.items():
        np.testing.assert_array_equal(frame[name].to_numpy(), values, err_msg=name)
    # windows are (cutoff - window, cutoff]: an order exactly 7 days before is out
    at_day8 = linearize(shop(), "customers", [1], day(8), max_depth=1)
    assert at_day8["COUNT(orders, last 7 days)"].tolist() == [2.0]  # days 2 and 3, not 1
    # strict cutoffs shift both ends: [cutoff - window, cutoff) (featuretools' training_window)
    strict = linearize(shop(), "customers", [1], day(8), max_depth=1, include_cutoff_time=False)
    assert strict["COUNT(orders, last 7 days)"].tolist() == [3.0]
    # without a cutoff there is no "now": everything measured from it is missing
    static = linearize(shop(), "customers", [1], None, max_depth=1)
    measured = [c for c in static.columns if "TIME_SINCE" in c or "last " in c]
    assert len(measured) == 11 and static[measured].isna().all().all()
    assert static["NUM_UNIQUE(orders.channel)"].tolist() == [2.0]


def test_numeric_time_database() -> None:
    customers = pd.DataFrame({"id": [1], "since": [2000]})
    seasons = pd.DataFrame({"id": [1, 2, 3], "customer_id": [1, 1, 1], "year": [2001, 2002, 2003],
                            "runs": [5.0, 6.0, 7.0]})
    db = Database({"customers": Table(customers, "id", time_column="since"),
                   "seasons": Table(seasons, "id", {"customer_id": "customers"}, "year")})
    frame = linearize(db, "customers", [1, 1], [2002, 2002.5], max_depth=1)
    assert frame["SUM(seasons.runs)"].tolist() == [11.0, 11.0]
    # times are years: recency and age in years, no windows (they need datetimes)
    assert frame["TIME_SINCE_LAST(seasons.year)"].tolist() == [0.0, 0.5]
    assert frame["TIME_SINCE_FIRST(seasons.year)"].tolist() == [1.0, 1.5]
    assert frame["TIME_SINCE(since)"].tolist() == [2.0, 2.5]
    assert not [c for c in frame.columns if "last " in c]
    assert "year" not in " ".join(c for c in frame.columns if "TIME_SINCE" not in c)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"entity_ids": [1, 99]}, r"1 entity_ids are not customers\.id values, e\.g\. \[99\]"),
    ({"cutoff_times": [day(1)] * 3}, r"cutoff_times has 3 entries for 2 entity_ids"),
    ({"cutoff_times": [1.0, 2.0]}, r"cutoff_times must be datetimes"),
    ({"cutoff_times": [day(1), pd.NaT]}, r"cutoff_times has missing values \(first at "
                                         r"position 1\)"),
    ({"engine": "polars"},
     r"engine must be one of \('auto', 'vectorized', 'featuretools', 'duckdb', 'spark'\)"),
    ({"primitives": ("mean", "std")}, r"unknown primitives \['std'\]"),
    ({"windows": ("30 days", "-2 days")}, r"window '-2 days' must be a positive duration"),
    ({"windows": ("soon",)}, r"window 'soon' is not a duration"),
    ({"features": ["age", "AGE"]}, r"features \['AGE'\] are not DFS features"),
    ({"max_depth": -1}, r"max_depth must be an int >= 0, got -1"),
    ({"target_table": "shops"}, r"target_table 'shops' is not a table"),
])
def test_linearize_errors(kwargs: dict, message: str) -> None:
    arguments = {"db": shop(), "target_table": "customers", "entity_ids": [1, 2],
                 "cutoff_times": None} | kwargs
    with pytest.raises(ValueError, match=message):
        linearize(**arguments)


def test_target_without_primary_key_error() -> None:
    db = Database({"log": Table(pd.DataFrame({"x": [1.0, 2.0]}))})
    with pytest.raises(ValueError, match=r"target table 'log' has no primary key"):
        linearize(db, "log", [0])


def test_batched_cutoffs_equal_one_cutoff_at_a_time() -> None:
    """Per-request cutoffs (one search for all) equal separate calls with one cutoff each."""
    rng = np.random.default_rng(0)
    n_users, n_orders, n_items = 40, 300, 900
    users = pd.DataFrame({"id": np.arange(n_users), "score": rng.normal(size=n_users),
                          "t": day(0) + pd.to_timedelta(rng.integers(0, 30, n_users), "D")})
    orders = pd.DataFrame({"id": np.arange(n_orders), "user": rng.integers(0, n_users, n_orders),
                           "v": rng.normal(size=n_orders),
                           "c": rng.choice(list("xyz"), n_orders),
                           "t": day(0) + pd.to_timedelta(rng.integers(0, 60, n_orders), "D")})
    items = pd.DataFrame({"id": np.arange(n_items), "order": rng.integers(0, n_orders, n_items),
                          "w": rng.normal(size=n_items),
                          "t": day(0) + pd.to_timedelta(rng.integers(0, 60, n_items), "D")})
    db = Database({"users": Table(users, "id", time_column="t"),
                   "orders": Table(orders, "id", {"user": "users"}, "t"),
                   "items": Table(items, "id", {"order": "orders"}, "t")})
    ids = rng.integers(0, n_users, 60)
    cutoffs = day(0) + pd.to_timedelta(rng.integers(0, 70, 60), "D")
    batched = linearize(db, "orders", rng.integers(0, n_orders, 60), cutoffs)
    assert batched.shape[1] > 10
    batched = linearize(db, "users", ids, cutoffs)
    single = pd.concat([linearize(db, "users", [i], [c]) for i, c in zip(ids, cutoffs,
                                                                         strict=True)],
                       ignore_index=True)
    pd.testing.assert_frame_equal(batched, single)


def test_fit_budget_follows_the_ladder() -> None:
    db = shop()
    full = len(feature_names(db, "customers", 2))
    assert fit_budget(db, "customers", full) == BUDGET_LADDER[0]
    depth, primitives, windows = fit_budget(db, "customers", full - 1)
    assert (depth, primitives, windows) != BUDGET_LADDER[0]
    assert len(feature_names(db, "customers", depth, primitives, windows)) <= full - 1
    assert fit_budget(db, "customers", 1) == (0, (), ())
    assert fit_budget(db, "customers", 100, max_depth=1, primitives=("mean",)) == (
        1, ("mean",), ())


def test_select_features_rule() -> None:
    rng = np.random.default_rng(0)
    n = 200
    signal = rng.normal(size=n)
    y = (signal > 0).astype(int)
    X = pd.DataFrame({
        "constant": np.ones(n),
        "noise": rng.normal(size=n),
        "signal": signal,
        "copy_of_noise": None,
        "signal_scaled": 3 * signal + 1,  # correlation 1 with signal
        "category": pd.Categorical(np.where(y == 1, "p", "q")),
        "sparse": np.where(rng.random(n) < 0.5, np.nan, 1.0),  # missing pattern varies
    })
    X["copy_of_noise"] = X["noise"]
    free = select_features(X, 10)
    assert free == ["noise", "signal", "category", "sparse"]
    labeled = select_features(X, 2, y)
    assert labeled == ["signal", "category"]
    assert select_features(X, 2, y) == labeled  # deterministic
    # only the rows given count: "noise" constant on them is dropped
    context = X.iloc[:50].assign(noise=1.0, copy_of_noise=1.0)
    assert "noise" not in select_features(context, 10)
    with pytest.raises(ValueError, match=r"y_context has 3 labels for 200 rows"):
        select_features(X, 2, [0, 1, 0])


def test_one_to_one_table_whose_primary_key_is_a_foreign_key() -> None:
    db = shop()
    profile = pd.DataFrame({"id": [1, 3], "height": [1.8, 1.6]})
    tables = dict(db.tables, profile=Table(profile, "id", {"id": "customers"}))
    linked = Database(tables)
    frame = linearize(linked, "customers", [1, 2, 3], None, max_depth=1)
    assert frame["MEAN(profile.height)"].tolist()[0] == 1.8
    assert np.isnan(frame["MEAN(profile.height)"].tolist()[1])
    assert frame["MAX(profile.height)"].tolist()[2] == 1.6
    back = linearize(linked, "profile", [3], None, max_depth=1)
    assert back.loc[0, "customers.age"] == 50
    with pytest.raises(ValueError, match=r"column 'id' is both the primary key and a foreign "
                                         r"key to 'customers'; featuretools cannot"):
        linked.to_entityset()


def test_mode_sparse_path_equals_dense_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdbpfn.dfs import vectorized

    rng = np.random.default_rng(3)
    codes = rng.integers(-1, 6, 400)
    offsets = np.concatenate([[0], np.sort(rng.integers(0, 400, 59)), [400]])
    dense = vectorized._segment_mode(codes, offsets, 6)
    monkeypatch.setattr(vectorized, "MODE_DENSE_LIMIT", 0)
    sparse = vectorized._segment_mode(codes, offsets, 6)
    np.testing.assert_array_equal(dense, sparse)
    # reference: most frequent present code, ties to the smallest, -1 if none
    for i in range(len(offsets) - 1):
        segment = codes[offsets[i]:offsets[i + 1]]
        segment = segment[segment >= 0]
        expected = np.bincount(segment, minlength=6).argmax() if len(segment) else -1
        assert dense[i] == expected


def test_identifiers_that_are_not_keys_are_counted_not_averaged() -> None:
    db = shop()
    orders = db["orders"].df.assign(product_id=[7, 7, 8, 9, 7], yearID=2022)
    db = Database({
        "customers": db["customers"],
        "orders": Table(orders, "id", {"customer_id": "customers"}, "at"),
    })
    names = feature_names(db, "customers", max_depth=1)
    assert "NUM_UNIQUE(orders.product_id)" in names and "MODE(orders.product_id)" in names
    assert not [n for n in names if "product_id" in n and n.startswith(("MEAN", "SUM", "MAX"))]
    assert "MEAN(orders.yearID)" in names  # a year numbers a time: it stays numeric
    frame = linearize(db, "customers", [1], day(3), max_depth=1)
    assert frame["NUM_UNIQUE(orders.product_id)"].tolist() == [2.0]  # 7, 7, 8


@pytest.mark.parametrize(("max_memory_mb", "pieces_at_least"), [(0.0005, 7), (1.0, 1)])
def test_pieces_under_a_memory_budget_give_the_same_values(
    monkeypatch: pytest.MonkeyPatch, max_memory_mb: float, pieces_at_least: int
) -> None:
    """A budget of a few rows forces one piece per request; values never depend on it."""
    db = shop()
    ids = [1, 2, 3, 1, 2, 1, 3]
    cutoffs = [day(d) for d in (1, 2, 4, 3, 40, 40, 6)]
    computed: list[int] = []
    real = vectorized._evaluate_piece

    def counted(*args, **kwargs):
        result = real(*args, **kwargs)
        computed.append(len(args[3]))  # requests in the piece that succeeded
        return result

    monkeypatch.setattr(vectorized, "_evaluate_piece", counted)
    for target, keys in (("customers", ids), ("orders", [10, 11, 12, 13, 14, 10, 12])):
        whole = linearize(db, target, keys, cutoffs, max_depth=2, max_memory_mb=None)
        computed.clear()
        pieces = linearize(db, target, keys, cutoffs, max_depth=2, max_memory_mb=max_memory_mb)
        pd.testing.assert_frame_equal(pieces, whole)
        assert sum(computed) == len(keys) and len(computed) >= pieces_at_least
    with pytest.raises(ValueError, match="max_memory_mb must be > 0"):
        linearize(db, "customers", ids, cutoffs, max_memory_mb=0)


def test_in_place_slices_equal_materialised_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slice shortcuts (prefix counts, reduceat over bounds) give exactly what reducing
    the materialised children gives, for every primitive, with and without windows."""
    db = shop()
    ids = [1, 2, 3, 1, 2, 1, 3, 1]
    cutoffs = [day(d) for d in (1, 2, 4, 3, 40, 40, 6, 8)]
    in_place = linearize(db, "customers", ids, cutoffs, max_depth=2)
    monkeypatch.setattr(vectorized, "RANGED_PRIMITIVES", ())
    materialised = linearize(db, "customers", ids, cutoffs, max_depth=2)
    pd.testing.assert_frame_equal(in_place, materialised)
    monkeypatch.setattr(vectorized, "RANGED_PRIMITIVES", ("mode", "num_unique"))
    monkeypatch.setattr(vectorized, "RANGED_MAX_CATEGORIES", 0)  # categories: materialised
    pd.testing.assert_frame_equal(linearize(db, "customers", ids, cutoffs, max_depth=2),
                                  materialised)
