"""The vectorized DFS engine equals featuretools (the reference) on randomized databases.

Each case draws a database of a given schema shape with NaNs (numeric, categorical,
boolean), null foreign keys, parents without children, few distinct timestamps (so ties
and cutoffs equal to row times are common), cutoffs taken from row times, target rows
created after their cutoff, and repeated entities. Both engines must give the same columns
in the same order, the same missing cells and values equal to 1e-9 relative.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from rdbpfn.database import Database
from rdbpfn.dfs import DEFAULT_PRIMITIVES, linearize
from rdbpfn.dfs.featuretools_engine import differences
from rdbpfn.dfs.synthesis import TIME_AWARE_PRIMITIVES
from rdbpfn.table import Table

logging.getLogger("featuretools").setLevel(logging.ERROR)

RELATIVE_TOLERANCE = 1e-9
CUTOFFS_PER_CASE = 4
TIME_ORIGIN = pd.Timestamp("2021-03-01")

# schema: table -> (foreign keys {column: parent}, has a time column)
SCHEMAS: dict[str, dict[str, tuple[dict[str, str], bool]]] = {
    "star": {
        "region": ({}, False),
        "shop": ({}, True),
        "client": ({}, True),
        "sale": ({"shop_id": "shop", "client_id": "client", "region_id": "region"}, True),
    },
    "snowflake": {
        "country": ({}, False),
        "city": ({"country_id": "country"}, False),
        "store": ({"city_id": "city"}, True),
        "visit": ({"store_id": "store"}, True),
    },
    "chain": {
        "customer": ({}, True),
        "product": ({}, False),
        "order": ({"customer_id": "customer"}, True),
        "item": ({"order_id": "order", "product_id": "product"}, True),
    },
    "two_keys": {
        "airport": ({}, False),
        "carrier": ({}, True),
        "flight": ({"origin": "airport", "dest": "airport", "carrier_id": "carrier"}, True),
        "ticket": ({"flight_id": "flight"}, True),
    },
    "diamond": {
        "user": ({}, True),
        "session": ({"user_id": "user"}, True),
        "event": ({"session_id": "session", "user_id": "user"}, True),
    },
}
NO_PRIMARY_KEY = {"sale", "visit", "event"}
"""Child tables built without a primary key (still counted by COUNT)."""


def random_database(schema: str, seed: int, numeric_time: bool = False) -> Database:
    """A small random database of one of the SCHEMAS shapes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    spec = SCHEMAS[schema]
    sizes = {name: int(rng.integers(6, 12)) if not fks else int(rng.integers(15, 40))
             for name, (fks, _) in spec.items()}
    tables = {}
    for name, (fks, has_time) in spec.items():
        n = sizes[name]
        frame = pd.DataFrame({"id": rng.permutation(n) * 3 + 100})
        for column, parent in fks.items():
            parent_ids = tables[parent].df["id"].to_numpy()
            # only some parents get children, so that empty child sets occur
            used = rng.choice(parent_ids, size=max(1, len(parent_ids) * 2 // 3), replace=False)
            values = rng.choice(used, n).astype(float)
            values[rng.random(n) < 0.1] = np.nan
            frame[column] = pd.array(values, dtype="Float64").astype("Int64")
        for j in range(int(rng.integers(1, 3))):
            values = rng.normal(0, 10, n).round(3)
            values[rng.random(n) < 0.15] = np.nan
            frame[f"x{j}"] = values
        frame["score"] = rng.integers(-5, 6, n).astype(float)
        labels = rng.choice(["a", "b", "c"], n).astype(object)
        labels[rng.random(n) < 0.15] = None
        frame["kind"] = labels
        flags = pd.array(rng.random(n) < 0.5, dtype="boolean")
        flags[rng.random(n) < 0.1] = pd.NA
        frame["flag"] = flags
        frame["seen"] = TIME_ORIGIN + pd.to_timedelta(rng.integers(0, 50, n), "h")  # ignored
        if has_time:
            days = rng.integers(0, 8, n)
            frame["t"] = (days.astype(float) if numeric_time
                          else TIME_ORIGIN + pd.to_timedelta(days, "D"))
        tables[name] = Table(frame, None if name in NO_PRIMARY_KEY else "id", fks or None,
                             "t" if has_time else None)
    # the untimed tables' datetime column `seen` is deliberately an ordinary column
    static = [name for name, table in tables.items() if table.time_column is None]
    return Database(tables, static_tables=static)


def random_requests(db: Database, target: str, seed: int, n: int = 12,
                    numeric_time: bool = False) -> tuple[np.ndarray, list]:
    """Entity ids (with repeats) and cutoffs on integer days, so equal to row times.

    Few distinct cutoffs (featuretools' cost grows with their number)."""
    rng = np.random.default_rng(seed + 1000)
    ids = rng.choice(db[target].df["id"].to_numpy(), n)
    ids[-1] = ids[0]  # the same entity at another cutoff
    days = rng.choice(rng.choice(9, size=CUTOFFS_PER_CASE, replace=False), n)
    days[-1] = (days[0] + 3) % 9
    days[-2] = days[0]
    ids[-2] = ids[0]  # an exact duplicate request
    cutoffs = (list(days.astype(float)) if numeric_time
               else list(TIME_ORIGIN + pd.to_timedelta(days, "D")))
    return ids, cutoffs


def assert_same_frames(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Same columns (and order), same missing cells, values equal to 1e-9 relative."""
    found = differences(ours, reference, rtol=RELATIVE_TOLERANCE)
    assert not found, found[:10]


def test_differences_detects_each_kind_of_mismatch() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan], "c": pd.Categorical(["a", None])})
    assert differences(frame, frame.copy()) == []
    assert differences(frame, frame.assign(x=[1.0 + 1e-8, np.nan])) == [
        "x: row 0: 1.0 vs 1.00000001"]
    assert differences(frame, frame.assign(x=[1.0 + 1e-12, np.nan])) == []
    assert differences(frame, frame.assign(x=[1.0, 0.0])) == ["x: row 1: nan vs 0.0"]
    assert differences(frame, frame.assign(c=pd.Categorical(["a", "a"]))) == [
        "c: row 1: None vs 'a'"]
    assert differences(frame, frame[["c", "x"]])[0].startswith("columns differ")


def _check(db: Database, target: str, ids: np.ndarray, cutoffs, depth: int = 2,
           include_cutoff_time: bool = True) -> pd.DataFrame:
    """Both engines on the default vocabulary (featuretools measures time only between
    datetimes: numeric-time databases leave out the time-since primitives)."""
    primitives = DEFAULT_PRIMITIVES if db.time_kind != "numeric" else tuple(
        p for p in DEFAULT_PRIMITIVES if p not in TIME_AWARE_PRIMITIVES)
    ours = linearize(db, target, ids, cutoffs, depth, primitives, engine="vectorized",
                     include_cutoff_time=include_cutoff_time)
    reference = linearize(db, target, ids, cutoffs, depth, primitives, engine="featuretools",
                          include_cutoff_time=include_cutoff_time)
    assert_same_frames(ours, reference)
    return ours


@pytest.mark.parametrize(("schema", "target"), [
    ("star", "client"), ("star", "shop"), ("snowflake", "country"), ("chain", "customer"),
    ("chain", "item"), ("two_keys", "airport"), ("two_keys", "carrier"), ("diamond", "user"),
])
def test_equal_to_featuretools_with_cutoffs(schema: str, target: str) -> None:
    db = random_database(schema, seed=len(schema) * 7 + len(target))
    ids, cutoffs = random_requests(db, target, seed=3)
    ours = _check(db, target, ids, cutoffs)
    assert ours.shape[1] > 5  # the case is not vacuous
    assert ours.notna().any().any()


def test_equal_to_featuretools_without_cutoffs() -> None:
    db = random_database("chain", seed=11)
    ids = db["customer"].df["id"].to_numpy()
    _check(db, "customer", ids, None)


def test_equal_to_featuretools_strict_cutoffs() -> None:
    db = random_database("chain", seed=12)
    ids, cutoffs = random_requests(db, "order", seed=5)
    _check(db, "order", ids, cutoffs, include_cutoff_time=False)


def test_equal_to_featuretools_numeric_times() -> None:
    db = random_database("star", seed=13, numeric_time=True)
    ids, cutoffs = random_requests(db, "client", seed=6, numeric_time=True)
    _check(db, "client", ids, cutoffs)


def test_equal_to_featuretools_single_table() -> None:
    db = random_database("star", seed=15)
    single = Database({"client": db["client"]})
    ids, cutoffs = random_requests(single, "client", seed=8)
    columns = list(_check(single, "client", ids, cutoffs).columns)
    # featuretools caps a one-table database at depth 1: the table's own columns and its age
    assert columns == [c for c, kind in single["client"].column_kinds.items()
                       if kind in ("numeric", "categorical", "boolean")] + [
        f"TIME_SINCE({single['client'].time_column})"]


def test_equal_to_featuretools_depth_one_and_primitive_subset() -> None:
    db = random_database("two_keys", seed=14)
    ids, cutoffs = random_requests(db, "flight", seed=7)
    for depth in (0, 1):
        _check(db, "flight", ids, cutoffs, depth)
    ours = linearize(db, "flight", ids, cutoffs, 2, primitives=("mode", "max"))
    reference = linearize(db, "flight", ids, cutoffs, 2, primitives=("mode", "max"),
                          engine="featuretools")
    assert_same_frames(ours, reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_equal_to_featuretools_sweep(seed: int) -> None:
    """Every schema, every table as target, depths 1-3, with and without cutoffs."""
    for schema in SCHEMAS:
        db = random_database(schema, seed=100 + seed, numeric_time=seed % 2 == 1)
        for target in db.tables:
            if target in NO_PRIMARY_KEY:
                continue
            ids, cutoffs = random_requests(db, target, seed=seed, numeric_time=seed % 2 == 1)
            for depth in (1, 2, 3):
                _check(db, target, ids, cutoffs if depth != 1 else None, depth,
                       include_cutoff_time=seed % 3 != 2)
