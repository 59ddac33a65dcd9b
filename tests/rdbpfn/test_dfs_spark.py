"""engine="spark": the SQL plan without ASOF joins, transpiled to Spark SQL by sqlglot.

The default run checks the translation without Spark: every statement goes DuckDB -> Spark
SQL -> DuckDB and the round-tripped script, run in DuckDB, equals the vectorized engine.
The slow test runs local Spark (pyspark, Java 17) against the vectorized engine, on random
databases and on a 100k-row hub database.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from eval.dfs_scale import hub_database
from rdbpfn.database import Database
from rdbpfn.dfs import linearize
from rdbpfn.dfs.duckdb_engine import _run
from rdbpfn.dfs.linearize import DEFAULT_PRIMITIVES
from rdbpfn.dfs.sql_plan import Plan, Script
from rdbpfn.dfs.synthesis import build_features, feature_frame
from rdbpfn.dfs.vectorized import evaluate_features
from rdbpfn.table import time_keys
from tests.rdbpfn.test_dfs_duckdb import assert_engines_agree
from tests.rdbpfn.test_dfs_equivalence import random_database, random_requests

sqlglot = pytest.importorskip("sqlglot")
from rdbpfn.dfs.spark_engine import spark_sql  # noqa: E402 (needs sqlglot)

WINDOWS = ("1 days", "3 days")


def plan_of(db, target: str, strict: bool = False):
    ids, cutoffs = random_requests(db, target, seed=5)
    features = build_features(db, target, 2, DEFAULT_PRIMITIVES, WINDOWS)
    rows = db[target].key_index().get_indexer(ids)
    keys = time_keys(pd.Series(cutoffs), "datetime", "cutoffs")
    plan = Plan(db, not strict, prefix="p_", asof=False)
    return plan, plan.build(target, features), features, rows, keys


@pytest.mark.parametrize(("schema", "target"), [
    ("star", "client"), ("chain", "customer"), ("two_keys", "airport"), ("diamond", "user")])
@pytest.mark.parametrize("strict", [False, True])
def test_the_plan_survives_the_round_trip_through_spark_sql(schema: str, target: str,
                                                           strict: bool) -> None:
    db = random_database(schema, seed=11)
    plan, script, features, rows, keys = plan_of(db, target, strict)

    def back(statement: str) -> str:
        return sqlglot.transpile(spark_sql(statement), read="spark", write="duckdb")[0]

    trip = Script([(name, back(sql)) for name, sql in script.relations], back(script.final))
    with duckdb.connect() as connection:
        result = _run(connection, trip, plan.inputs(rows, keys), None)
    values = [np.ma.filled(np.ma.asarray(c).astype(np.float64), np.nan) for c in result.values()]
    ours = feature_frame(db, features, values, len(rows))
    assert_engines_agree(ours, evaluate_features(db, target, features, rows, keys, not strict))


def test_spark_sql_is_spark_sql() -> None:
    """No DuckDB-only syntax survives: no ASOF join, no ``::`` casts; mode is MIN_BY."""
    db = random_database("chain", seed=11)
    _, script, *_ = plan_of(db, "customer")
    statements = [spark_sql(sql) for _, sql in script.relations] + [spark_sql(script.final)]
    text = "\n".join(statements)
    assert "ASOF" not in text.upper() and "::" not in text
    assert "MIN_BY(" in text.upper()


def test_tables_in_duckdb_are_refused_before_spark_starts(tmp_path) -> None:
    db = random_database("chain", seed=1)
    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        for name, table in db.tables.items():
            frame = table.df  # noqa: F841 (read by DuckDB's replacement scan)
            connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
    stored = Database.from_duckdb(tmp_path / "db.duckdb", infer_keys=False,
                                  primary_keys={"customer": "id"}, validate=False)
    with pytest.raises(ValueError, match="needs the tables in memory"):
        linearize(stored, "customer", [db["customer"].df["id"].iloc[0]], None, 1,
                  engine="spark")


@pytest.mark.slow
def test_local_spark_equals_the_vectorized_engine() -> None:
    pytest.importorskip("pyspark")
    for schema, target in (("chain", "customer"), ("diamond", "user")):
        db = random_database(schema, seed=11)
        ids, cutoffs = random_requests(db, target, seed=5)
        for strict in (False, True):
            options = {"windows": WINDOWS, "include_cutoff_time": not strict}
            assert_engines_agree(linearize(db, target, ids, cutoffs, 2, engine="spark", **options),
                                 linearize(db, target, ids, cutoffs, 2, engine="vectorized",
                                           **options))
    hub = hub_database(100_000, seed=0)  # the bar: a 100k-row version
    orders = hub["orders"].df
    picked = np.random.default_rng(0).choice(len(orders), 300, replace=False)
    ids, cutoffs = orders["order_id"].to_numpy()[picked], orders["at"].to_numpy()[picked]
    assert_engines_agree(linearize(hub, "orders", ids, cutoffs, 2, engine="spark"),
                         linearize(hub, "orders", ids, cutoffs, 2, engine="vectorized"))
