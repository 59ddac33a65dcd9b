"""The DuckDB engine equals the vectorized engine (the reference semantics) on random databases.

The random databases and requests are those of ``test_dfs_equivalence`` (NaNs, null foreign
keys, childless parents, tied times and cutoffs equal to row times, target rows created after
their cutoff, repeated and duplicate requests), with linearize's default vocabulary (windows
included) unless a test says otherwise. Features whose chain holds no SUM or MEAN (identity,
COUNT, MAX, MIN, MODE, NUM_UNIQUE, PERCENT_TRUE, the TIME_SINCE family and direct features of
those) must be equal exactly; the others to 1e-9 relative, as DuckDB sums in another order.
"""

from __future__ import annotations

import dataclasses
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from eval.dfs_scale import hub_database
from rdbpfn.database import Database
from rdbpfn.dfs import linearize
from rdbpfn.dfs.duckdb_engine import evaluate_features_duckdb
from rdbpfn.dfs.featuretools_engine import differences
from rdbpfn.dfs.linearize import DEFAULT_PRIMITIVES, PAPER_PRIMITIVES
from rdbpfn.dfs.sql_plan import features_sql
from rdbpfn.dfs.synthesis import build_features
from rdbpfn.dfs.vectorized import evaluate_features
from rdbpfn.table import LATEST_CUTOFF, Table, time_keys
from tests.rdbpfn.test_dfs import day, shop
from tests.rdbpfn.test_dfs_equivalence import random_database, random_requests

RELATIVE_TOLERANCE = 1e-9
TINY_MEMORY_LIMIT = "50MB"
ROUNDED = ("SUM(", "MEAN(")
"""Primitives whose values may differ by float rounding (names stack, so the name says)."""


def assert_engines_agree(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Same columns, dtypes and index; exact values unless a SUM or MEAN is on the way."""
    assert list(ours.columns) == list(reference.columns)
    assert ours.index.equals(reference.index)
    assert list(ours.dtypes) == list(reference.dtypes)
    found = differences(ours, reference, rtol=RELATIVE_TOLERANCE)
    assert not found, found[:10]
    for column in ours.columns:
        if isinstance(ours[column].dtype, pd.CategoricalDtype):
            assert list(ours[column].cat.categories) == list(reference[column].cat.categories)
            np.testing.assert_array_equal(ours[column].cat.codes, reference[column].cat.codes)
        elif not any(p in column for p in ROUNDED):
            np.testing.assert_array_equal(ours[column].to_numpy(), reference[column].to_numpy(),
                                          err_msg=column)


def check(db: Database, target: str, ids, cutoffs, depth: int = 2, **kwargs) -> pd.DataFrame:
    """linearize with both engines (linearize's default primitives and windows unless
    given)."""
    ours = linearize(db, target, ids, cutoffs, depth, engine="duckdb", **kwargs)
    reference = linearize(db, target, ids, cutoffs, depth, engine="vectorized", **kwargs)
    assert_engines_agree(ours, reference)
    return ours


@pytest.mark.parametrize(("schema", "target"), [
    ("star", "client"), ("star", "shop"), ("snowflake", "country"), ("chain", "customer"),
    ("chain", "item"), ("two_keys", "airport"), ("two_keys", "flight"), ("diamond", "user"),
])
def test_equal_to_vectorized_with_cutoffs(schema: str, target: str) -> None:
    db = random_database(schema, seed=len(schema) * 7 + len(target))
    ids, cutoffs = random_requests(db, target, seed=3)
    ours = check(db, target, ids, cutoffs)
    assert ours.shape[1] > 5 and ours.notna().any().any()  # not vacuous
    assert (ours.select_dtypes("number") > 0).any().any()


def test_equal_to_vectorized_paper_primitives() -> None:
    db = random_database("chain", seed=13)
    ids, cutoffs = random_requests(db, "customer", seed=3)
    ours = check(db, "customer", ids, cutoffs, primitives=PAPER_PRIMITIVES, windows=())
    assert not any("NUM_UNIQUE" in name or "last" in name for name in ours.columns)


@pytest.mark.parametrize("strict", [False, True])
def test_equal_to_vectorized_short_windows(strict: bool) -> None:
    """Windows shorter than the random databases' few days, so that they cut rows."""
    db = random_database("star", seed=17)
    ids, cutoffs = random_requests(db, "client", seed=8)
    ours = check(db, "client", ids, cutoffs, 1, windows=("1 day", "2 days", "36h"),
                 include_cutoff_time=not strict)
    short = [name for name in ours.columns if "last 1 day" in name]
    full = [name.split(",")[0] + ")" for name in short]
    assert short and (ours[short].to_numpy() != ours[full].to_numpy()).any()


@pytest.mark.parametrize(("schema", "target", "numeric_time", "no_cutoffs", "strict", "depth"), [
    ("chain", "customer", False, True, False, 2),
    ("chain", "order", False, False, True, 2),
    ("star", "client", True, False, False, 2),
    ("diamond", "session", True, False, True, 2),
    ("two_keys", "carrier", False, False, False, 3),
    ("snowflake", "store", True, True, False, 3),
    ("two_keys", "flight", False, False, False, 0),
    ("two_keys", "flight", False, False, True, 1),
])
def test_equal_to_vectorized_options(schema: str, target: str, numeric_time: bool,
                                     no_cutoffs: bool, strict: bool, depth: int) -> None:
    """Numeric times, no cutoffs, strict cutoffs, depths 0 to 3."""
    db = random_database(schema, seed=20 + depth, numeric_time=numeric_time)
    ids, cutoffs = random_requests(db, target, seed=4, numeric_time=numeric_time)
    ours = check(db, target, ids, None if no_cutoffs else cutoffs, depth,
                 include_cutoff_time=not strict)
    measured = [name for name in ours.columns if "TIME_SINCE" in name or "last" in name]
    if no_cutoffs:  # nothing to measure from
        assert ours[measured].isna().all().all()
    elif depth >= 1:
        assert any(name.startswith("TIME_SINCE_LAST(") for name in measured)
        assert ours[measured].notna().any().any()


@pytest.mark.parametrize("primitives", [("mode", "max"), ("count",), ("mean", "sum"), (),
                                        ("num_unique", "percent_true"),
                                        ("time_since_first", "time_since_last", "time_since")])
def test_equal_to_vectorized_primitive_subsets(primitives: tuple[str, ...]) -> None:
    db = random_database("chain", seed=31)
    ids, cutoffs = random_requests(db, "customer", seed=5)
    ours = check(db, "customer", ids, cutoffs, primitives=primitives)
    wanted = {p.upper() for p in primitives if p != "time_since"}
    used = {name.split("(")[0].split(".")[-1] for name in ours.columns
            if "(" in name and not name.startswith("TIME_SINCE(")}
    assert used == wanted


def test_hand_checked_database_and_feature_selection() -> None:
    db = shop()
    ids, cutoffs = [1, 2, 3, 1, 1], [day(2), day(1), day(4), day(9), day(2)]
    frame = check(db, "customers", ids, cutoffs)
    assert frame.loc[0, "MEAN(orders.SUM(items.price))"] == pytest.approx((8 + 7) / 2)
    assert frame.loc[0, "COUNT(items)"] == 3 and frame.loc[1, "COUNT(orders)"] == 0
    assert np.isnan(frame.loc[2, "age"])  # customer 3 does not exist yet at day 4
    assert frame.loc[0, "MODE(orders.channel)"] == "app"  # tie -> smallest category
    pd.testing.assert_frame_equal(frame.iloc[[4]].reset_index(drop=True),
                                  frame.iloc[[0]].reset_index(drop=True))
    # customer 1 at day 2 sees orders 10 (day 1, web) and 11 (day 2, app)
    assert frame.loc[0, "NUM_UNIQUE(orders.channel)"] == 2
    assert frame.loc[0, "TIME_SINCE_FIRST(orders.at)"] == 86_400
    assert frame.loc[0, "TIME_SINCE_LAST(orders.at)"] == 0
    assert frame.loc[0, "TIME_SINCE(joined)"] == 2 * 86_400
    assert np.isnan(frame.loc[1, "NUM_UNIQUE(orders.channel)"])  # customer 2: no order yet
    assert frame.loc[3, "COUNT(orders, last 7 days)"] == 1  # (day 2, day 9]: order 12
    strict = check(db, "customers", [1], [day(9)], include_cutoff_time=False)
    assert strict.loc[0, "COUNT(orders, last 7 days)"] == 2  # [day 2, day 9): 11 and 12
    names = ["COUNT(items)", "age", "MODE(orders.channel)"]
    subset = linearize(db, "customers", ids, cutoffs, engine="duckdb", features=names)
    pd.testing.assert_frame_equal(subset, frame[names])
    check(db, "orders", [11, 14, 10], [day(2), day(5), day(0)])  # direct features
    orders = db["orders"].df.assign(at=[day(1), pd.NaT, day(3), day(2), day(1)])
    patched = Database({"customers": db["customers"], "items": db["items"],
                        "orders": Table(orders, "id", {"customer_id": "customers"}, "at")})
    never = check(patched, "customers", [1, 2], [day(9), day(9)])
    assert never.loc[0, "COUNT(orders)"] == 2  # order 11 has no time: never visible
    assert never.loc[0, "COUNT(items)"] == 3  # nor its item 102


def test_empty_requests_and_unknown_rows() -> None:
    db = random_database("chain", seed=41)
    empty = check(db, "customer", [], None)
    assert empty.shape[0] == 0 and empty.shape[1] > 5
    features = build_features(db, "order", 2, DEFAULT_PRIMITIVES)
    rows = np.array([-1, 0, 3, -1])  # -1: an unknown entity, every feature missing/default
    keys = np.full(4, LATEST_CUTOFF)
    ours = evaluate_features_duckdb(db, "order", features, rows, keys)
    assert_engines_agree(ours, evaluate_features(db, "order", features, rows, keys))
    assert ours.loc[0, "COUNT(item)"] == 0 and np.isnan(ours.loc[0, "x0"])


@pytest.mark.parametrize(("schema", "target"), [
    ("star", "client"), ("chain", "customer"), ("two_keys", "airport"), ("diamond", "user")])
@pytest.mark.parametrize("strict", [False, True])
def test_the_plan_without_asof_joins_is_equal(schema: str, target: str, strict: bool) -> None:
    """asof=False (what Spark runs) computes the same values as the ASOF plan."""
    db = random_database(schema, seed=11)
    ids, cutoffs = random_requests(db, target, seed=5)
    features = build_features(db, target, 2, DEFAULT_PRIMITIVES, ("1 days", "3 days"))
    rows = db[target].key_index().get_indexer(ids)
    keys = time_keys(pd.Series(cutoffs), "datetime", "cutoffs")
    ours = evaluate_features_duckdb(db, target, features, rows, keys, not strict, asof=False)
    reference = evaluate_features(db, target, features, rows, keys, not strict)
    assert_engines_agree(ours, reference)
    assert "ASOF" not in features_sql(db, target, features, not strict, asof=False)


def test_asof_joins_per_path_whatever_the_primitives() -> None:
    """Depth 1 over one timed child: one ASOF join buckets the orders by the first cutoff
    that sees them, all prefix primitives share one running relation read by one ASOF
    join, and MODE adds one."""
    db = shop()
    features = build_features(db, "customers", 1, PAPER_PRIMITIVES)
    script = features_sql(db, "customers", features)
    assert script.count("ASOF JOIN") == 3
    # running partials of orders.amount: rows, non-missing values, sum, max, min; mode: one
    assert script.count("OVER w") == 5 and script.count("OVER (PARTITION") == 1
    assert "requests" in script and "ORDER BY r.request" in script


def test_tiny_memory_limit_on_a_larger_table() -> None:
    """300k child rows under a 50 MB DuckDB limit (it spills) still match, default
    vocabulary and a window included."""
    rng = np.random.default_rng(0)
    n_users, n_orders = 5_000, 300_000
    users = pd.DataFrame({"id": np.arange(n_users), "age": rng.normal(40, 10, n_users),
                          "t": day(0) + pd.to_timedelta(rng.integers(0, 300, n_users), "D")})
    amount = rng.normal(0, 100, n_orders)
    amount[rng.random(n_orders) < 0.1] = np.nan
    orders = pd.DataFrame({
        "id": np.arange(n_orders), "user": rng.integers(0, n_users, n_orders),
        "amount": amount, "channel": rng.choice(list("abcde"), n_orders),
        "ok": rng.random(n_orders) < 0.3,
        "t": day(0) + pd.to_timedelta(rng.integers(0, 1000, n_orders), "D"),
    })
    db = Database({"users": Table(users, "id", time_column="t"),
                   "orders": Table(orders, "id", {"user": "users"}, "t")})
    features = build_features(db, "orders", 2, DEFAULT_PRIMITIVES, ("30 days",))
    rows = rng.integers(0, n_orders, 20_000)
    keys = db["orders"].time_keys("orders")[rows] + rng.integers(0, 200, 20_000) * 86_400 * 10**9
    ours = evaluate_features_duckdb(db, "orders", features, rows, keys,
                                    memory_limit=TINY_MEMORY_LIMIT, threads=2)
    assert {"users.MODE(orders.channel)", "users.PERCENT_TRUE(orders.ok)",
            "users.TIME_SINCE_LAST(orders.t)", "users.NUM_UNIQUE(orders.channel)"
            } <= set(ours.columns)
    assert_engines_agree(ours, evaluate_features(db, "orders", features, rows, keys))


def test_existing_connection_is_left_clean() -> None:
    db = random_database("diamond", seed=51)
    ids, cutoffs = random_requests(db, "user", seed=6)
    features = build_features(db, "user", 2, PAPER_PRIMITIVES)
    reference = linearize(db, "user", ids, cutoffs, primitives=PAPER_PRIMITIVES, windows=(),
                          engine="vectorized")
    rows = db["user"].key_index().get_indexer(ids)
    keys = time_keys(pd.Series(cutoffs), "datetime", "cutoffs")
    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    ours = evaluate_features_duckdb(db, "user", features, rows, keys, connection=connection)
    assert_engines_agree(ours, reference)
    assert connection.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
    assert connection.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal"
                              ).fetchone() == (0,)
    assert connection.execute("SELECT current_setting('threads')").fetchone() == (1,)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target_table": "shops"}, r"target_table 'shops' is not a table"),
    ({"cutoff_times": [1.0, 2.0]}, r"cutoff_times must be datetimes"),
    ({"cutoff_times": [day(1), pd.NaT]}, r"cutoff_times has missing values"),
    ({"entity_ids": [1, 99]}, r"1 entity_ids are not customers\.id values"),
    ({"primitives": ("mean", "median")}, r"unknown primitives \['median'\]"),
    ({"windows": ("-30 days",)}, r"must be a positive duration"),
    ({"max_memory_mb": 0}, r"max_memory_mb must be > 0"),
])
@pytest.mark.parametrize("engine", ["vectorized", "featuretools", "duckdb", "spark"])
def test_linearize_checks_apply_to_every_engine(kwargs: dict, message: str,
                                                engine: str) -> None:
    """Raised before any engine runs (no Spark session starts)."""
    if engine in ("featuretools", "spark") and "max_memory_mb" in kwargs:
        return  # their memory is featuretools' or the Spark session's, not linearize's
    arguments = {"db": shop(), "target_table": "customers", "entity_ids": [1, 2],
                 "cutoff_times": None, "primitives": PAPER_PRIMITIVES, "windows": (),
                 "engine": engine} | kwargs
    with pytest.raises(ValueError, match=message):
        linearize(**arguments)


def test_unknown_primitive_is_named() -> None:
    db = shop()
    features = build_features(db, "customers", 2, PAPER_PRIMITIVES)
    stacked = next(f for f in features if f.name == "MEAN(orders.SUM(items.price))")
    assert stacked.base is not None
    odd = dataclasses.replace(stacked, base=dataclasses.replace(stacked.base,
                                                                primitive="median"))
    with pytest.raises(ValueError, match=r"unknown primitive 'median'.*AGGREGATIONS"):
        evaluate_features_duckdb(db, "customers", [odd], np.array([0]),
                                 np.array([LATEST_CUTOFF]))


def test_max_memory_mb_is_duckdbs_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("memory_limit"))
        return evaluate_features_duckdb(*args, **kwargs)

    # the module, not the function rdbpfn.dfs re-exports under its name
    monkeypatch.setattr(sys.modules["rdbpfn.dfs.linearize"], "evaluate_features_duckdb", spy)
    db = shop()
    small = linearize(db, "customers", [1, 2], [day(2), day(3)], engine="duckdb",
                      max_memory_mb=64.4)
    default = linearize(db, "customers", [1, 2], [day(2), day(3)], engine="duckdb",
                        max_memory_mb=None)
    assert seen == ["64MB", None]
    pd.testing.assert_frame_equal(small, default)


def test_running_out_of_the_memory_limit_is_a_clear_error() -> None:
    """A limit DuckDB cannot work in is a MemoryError that says how to fix it."""
    db = hub_database(20_000)
    target, ids, cutoffs = "orders", db["orders"].df["order_id"].to_numpy()[:500], None
    with pytest.raises(MemoryError, match=r"ran out of its memory_limit=1MB .* max_memory_mb"):
        linearize(db, target, ids, cutoffs, max_depth=2, engine="duckdb", max_memory_mb=1)
