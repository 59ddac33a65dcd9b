"""Databases whose tables stay in DuckDB (``Database.from_duckdb``): the same features as the
tables loaded into memory, keys read from the file and inferred by SQL, clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from rdbpfn.database import Database, UndeclaredTimeWarning
from rdbpfn.dfs import linearize
from rdbpfn.duckdb_tables import DuckDBTable
from rdbpfn.forecast import predict
from rdbpfn.formats import KeyInferenceWarning
from rdbpfn.query import Query
from tests.rdbpfn.test_dfs_duckdb import assert_engines_agree
from tests.rdbpfn.test_dfs_equivalence import SCHEMAS, random_database, random_requests
from tests.rdbpfn.test_forecast import shop as forecast_shop


def write_duckdb(db: Database, path: Path) -> dict:
    """Write ``db``'s frames to a DuckDB file (no constraints); return its keys as
    from_duckdb arguments."""
    with duckdb.connect(str(path)) as connection:
        for name, table in db.tables.items():
            frame = table.df  # noqa: F841 (read by DuckDB's replacement scan)
            connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
    return {
        "primary_keys": {n: t.primary_key for n, t in db.tables.items()},
        "foreign_keys": {n: dict(t.foreign_keys) for n, t in db.tables.items()},
        "time_columns": {n: t.time_column for n, t in db.tables.items() if t.time_column},
    }


def open_quietly(path: Path | duckdb.DuckDBPyConnection, **kwargs) -> Database:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndeclaredTimeWarning)
        return Database.from_duckdb(path, **kwargs)


@pytest.mark.parametrize("schema", list(SCHEMAS))
def test_features_equal_the_tables_in_memory(schema: str, tmp_path: Path) -> None:
    """Every schema shape, every target, default vocabulary with windows, strict and not:
    DFS inside DuckDB equals the vectorized engine on the same tables in memory (in the
    file's table order, by name, on which the feature list depends)."""
    original = random_database(schema, seed=7)
    stored = open_quietly(tmp_path / "db.duckdb",
                          **write_duckdb(original, tmp_path / "db.duckdb"))
    memory = stored.load()
    assert list(memory.tables) == sorted(original.tables)
    for name, table in original.tables.items():
        pd.testing.assert_frame_equal(memory[name].df, table.df, check_dtype=False)
    assert stored.duckdb_source is not None
    assert all(isinstance(t, DuckDBTable) for t in stored.tables.values())
    for target in [n for n, t in memory.tables.items() if t.primary_key is not None]:
        ids, cutoffs = random_requests(memory, target, seed=3)
        for strict in (False, True):
            ours = linearize(stored, target, ids, cutoffs, 2, include_cutoff_time=not strict,
                             windows=("1 days", "3 days"))
            reference = linearize(memory, target, ids, cutoffs, 2, engine="vectorized",
                                  include_cutoff_time=not strict, windows=("1 days", "3 days"))
            assert_engines_agree(ours, reference)


def shop_file(path: Path) -> Path:
    """Declared keys, DuckDB's own types: DATE and TIMESTAMPTZ times, DECIMAL, ENUM,
    BOOLEAN, NaN, an id-like integer, a reserved word as column name."""
    with duckdb.connect(str(path)) as c:
        c.execute("CREATE TABLE stores(store_id INTEGER PRIMARY KEY, region VARCHAR, "
                  "opened DATE)")
        c.execute("CREATE TABLE customers(id BIGINT PRIMARY KEY, joined TIMESTAMPTZ)")
        c.execute("CREATE TABLE orders(order_id BIGINT PRIMARY KEY, store_id INTEGER "
                  "REFERENCES stores(store_id), customer_id BIGINT REFERENCES customers(id), "
                  "\"at\" TIMESTAMP, amount DECIMAL(10, 2), ratio DOUBLE, "
                  "channel ENUM('web', 'app', 'shop'), product_id INTEGER, gift BOOLEAN)")
        c.execute("INSERT INTO stores SELECT i, CASE WHEN i % 2 = 0 THEN 'north' ELSE 'south' "
                  "END, CAST(DATE '2020-01-01' + INTERVAL (i * 40) DAY AS DATE) FROM range(4) t(i)")
        c.execute("INSERT INTO customers SELECT i, TIMESTAMPTZ '2020-01-01 00:00:00+02' + "
                  "INTERVAL (i) DAY FROM range(60) t(i)")
        c.execute("INSERT INTO orders SELECT i, i % 4, (i * 7) % 60, TIMESTAMP '2020-01-01' + "
                  "INTERVAL (i * 37 % 9000) HOUR, CASE WHEN i % 11 = 0 THEN NULL ELSE "
                  "(i % 97) * 1.25 END, CASE WHEN i % 13 = 0 THEN 'NaN'::DOUBLE ELSE i / 7 END, "
                  "CASE i % 3 WHEN 0 THEN 'web' WHEN 1 THEN 'shop' ELSE 'app' END, i % 5, "
                  "CASE WHEN i % 9 = 0 THEN NULL ELSE i % 4 = 0 END FROM range(3000) t(i)")
    return path


def test_declared_keys_and_duckdb_types(tmp_path: Path) -> None:
    path = shop_file(tmp_path / "shop.duckdb")
    stored = Database.from_duckdb(path, time_columns={"orders": "at", "customers": "joined",
                                                      "stores": "opened"})
    assert stored["orders"].foreign_keys == {"store_id": "stores", "customer_id": "customers"}
    assert stored["customers"].primary_key == "id" and len(stored["orders"]) == 3000
    assert stored["orders"].column_kinds["product_id"] == "categorical"  # id-like
    loaded = stored.load()
    assert loaded.duckdb_source is None and len(loaded["orders"].df) == 3000
    for target, ids in (("customers", np.arange(0, 60, 2)), ("stores", np.arange(4)),
                        ("orders", np.arange(0, 3000, 37))):
        for cutoff in (pd.Timestamp("2020-06-01"), pd.Timestamp("2020-12-01 10:00")):
            ours = linearize(stored, target, ids, cutoff, 2)
            assert_engines_agree(ours, linearize(loaded, target, ids, cutoff, 2))
    modes = linearize(stored, "stores", [1], None, 1, features=["MODE(orders.channel)"])
    assert list(modes.iloc[:, 0].cat.categories) == ["app", "shop", "web"]  # as pandas sorts


def test_load_true_equals_staying_in_duckdb(tmp_path: Path) -> None:
    path = shop_file(tmp_path / "shop.duckdb")
    times = {"orders": "at", "customers": "joined", "stores": "opened"}
    loaded = Database.from_duckdb(path, time_columns=times, load=True)
    assert loaded.duckdb_source is None
    stored = Database.from_duckdb(path, time_columns=times)
    ids = np.arange(0, 3000, 101)
    assert_engines_agree(linearize(stored, "orders", ids, "2020-09-01", 2),
                         linearize(loaded, "orders", ids, "2020-09-01", 2))


def test_keys_inferred_by_sql_equal_those_inferred_from_frames(tmp_path: Path) -> None:
    path = tmp_path / "plain.duckdb"
    with duckdb.connect(str(path)) as c:
        c.execute("CREATE TABLE customers AS SELECT i AS customer_id, i % 3 AS grade "
                  "FROM range(20) t(i)")
        c.execute("CREATE TABLE products AS SELECT 'p' || i AS product_id FROM range(5) t(i)")
        c.execute("CREATE TABLE orders AS SELECT i AS id, i % 20 AS customer_id, "
                  "'p' || (i % 5) AS product_id, i % 25 AS store_id FROM range(100) t(i)")
    with pytest.warns(KeyInferenceWarning) as stored_warnings:
        stored = Database.from_duckdb(path)
    with pytest.warns(KeyInferenceWarning):
        loaded = Database.from_duckdb(path, load=True)
    assert stored.inferred_keys == loaded.inferred_keys
    assert stored["orders"].foreign_keys == {"customer_id": "customers",
                                             "product_id": "products"}
    assert stored["orders"].primary_key == "id"
    assert "orders.customer_id -> customers" in str(stored_warnings[0].message)


def test_an_open_connection_is_a_source(tmp_path: Path) -> None:
    """A file this process holds open for writing cannot be opened again: pass the
    connection, whose settings stay as they are."""
    path = shop_file(tmp_path / "shop.duckdb")
    with duckdb.connect(str(path)) as connection:
        with pytest.raises(OSError, match="pass that connection"):
            Database.from_duckdb(path, time_columns={"orders": "at"})
        stored = Database.from_duckdb(connection, time_columns={"orders": "at"})
        frame = linearize(stored, "stores", [0, 1], "2020-05-01", 1)
        assert frame["COUNT(orders)"].tolist() == [
            connection.execute("SELECT count(*) FROM orders WHERE store_id = ? AND "
                               "\"at\" <= TIMESTAMP '2020-05-01'", [i]).fetchone()[0]
            for i in (0, 1)]
        assert connection.execute("SELECT count(*) FROM duckdb_tables() "
                                   "WHERE temporary").fetchone()[0] == 0


def broken(path: Path, statement: str) -> Path:
    with duckdb.connect(str(path)) as c:
        c.execute("CREATE TABLE parents(pid INTEGER, name VARCHAR)")
        c.execute("INSERT INTO parents VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        c.execute("CREATE TABLE kids(kid INTEGER, pid INTEGER, born VARCHAR, year INTEGER)")
        c.execute("INSERT INTO kids VALUES (1, 1, '2020-01-01', 2020), "
                  "(2, 2, '2020-02-01', 2021), (3, NULL, NULL, NULL)")
        if statement:
            c.execute(statement)
    return path


KEYS = {"primary_keys": {"parents": "pid", "kids": "kid"},
        "foreign_keys": {"kids": {"pid": "parents"}}}


@pytest.mark.parametrize(("statement", "kwargs", "error", "message"), [
    ("INSERT INTO parents VALUES (2, 'again')", {}, ValueError, r"2 .*duplicate|duplicate"),
    ("INSERT INTO parents VALUES (NULL, 'none')", {}, ValueError, "null values"),
    ("INSERT INTO kids VALUES (4, 9, NULL, NULL)", {}, ValueError,
     "not found in 'parents'.pid, e.g. 9"),
    ("INSERT INTO kids VALUES (4, 1, 'soon', NULL)", {"time_columns": {"kids": "born"}},
     ValueError, "does not parse as datetimes, e.g. 'soon'"),
    ("", {"time_columns": {"kids": "year"}}, ValueError, "numeric"),
    ("", {"time_columns": {"kids": "name"}}, ValueError, "not one of its columns"),
    ("", {"tables": ["kids", "nope"]}, ValueError, r"\['nope'\] are not in the DuckDB"),
])
def test_bad_databases_are_clear_errors(tmp_path: Path, statement: str, kwargs: dict,
                                        error: type, message: str) -> None:
    path = broken(tmp_path / "bad.duckdb", statement)
    with pytest.raises(error, match=message):
        Database.from_duckdb(path, **{**KEYS, **kwargs})


def test_missing_parents_can_read_as_null(tmp_path: Path) -> None:
    path = broken(tmp_path / "bad.duckdb", "INSERT INTO kids VALUES (4, 9, NULL, NULL)")
    stored = Database.from_duckdb(path, **KEYS, missing_foreign_keys="null")
    frame = linearize(stored, "parents", [1, 2, 3], None, 1, primitives=("count",))
    assert frame["COUNT(kids)"].tolist() == [1.0, 1.0, 0.0]


def test_bad_requests_are_clear_errors(tmp_path: Path) -> None:
    stored = Database.from_duckdb(broken(tmp_path / "ok.duckdb", ""), **KEYS,
                                  time_columns={"kids": "born"})
    with pytest.raises(ValueError, match=r"not primary-key values .* e.g. \[7\]"):
        linearize(stored, "parents", [1, 7], None, 1)
    with pytest.raises(ValueError, match="do not compare"):
        linearize(stored, "parents", ["x"], None, 1)
    with pytest.raises(ValueError, match="needs the tables in memory"):
        linearize(stored, "parents", [1], None, 1, engine="vectorized")
    with pytest.raises(ValueError, match="is not a table"):
        linearize(stored, "nope", [1], None, 1)
    with pytest.raises(ValueError, match="must be datetimes"):
        linearize(stored, "parents", [1], [3.5], 1)
    with pytest.raises(ValueError, match="missing values"):
        linearize(stored, "parents", [1], [pd.NaT], 1)
    with pytest.raises(ValueError, match="stays in DuckDB"):
        _ = stored["kids"].df
    with pytest.raises(FileNotFoundError, match="no DuckDB file"):
        Database.from_duckdb(tmp_path / "absent.duckdb")


# ---------------------------------------------------------------- predictive queries
QUERIES = [
    "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id",
    "PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id",
    "PREDICT AVG(orders.amount, 7, 60, days) > 40 FOR EACH customers.customer_id "
    "WHERE customers.segment = 'a'",
    "PREDICT MAX(orders.amount, 0, 2, months) FOR EACH customers.customer_id "
    "WHERE customers.customer_id >= 20 AND customers.segment != 'b'",
    "PREDICT COUNT(orders.channel, 0, 90, days) FOR EACH customers.customer_id",
]


@pytest.fixture(scope="module")
def shop_in_duckdb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Database, Database]:
    """The forecast tests' shop database, in memory and in a DuckDB file."""
    memory = forecast_shop()
    path = tmp_path_factory.mktemp("shop") / "shop.duckdb"
    keys = write_duckdb(memory, path)
    return memory, Database.from_duckdb(path, **keys)


@pytest.mark.parametrize("text", QUERIES)
def test_query_labels_computed_in_duckdb_equal_pandas(shop_in_duckdb, text: str) -> None:
    memory, stored = shop_in_duckdb
    query = Query(text)
    cutoffs = ["2022-04-01", "2022-07-15", "2022-10-01"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dropped undefined AVG/MAX windows
        ours, reference = query.labels(stored, cutoffs), query.labels(memory, cutoffs)
        recent = query.recent(stored, cutoffs), query.recent(memory, cutoffs)
    pd.testing.assert_frame_equal(ours, reference, check_dtype=False)
    assert ours.attrs == reference.attrs
    pd.testing.assert_frame_equal(*recent, check_dtype=False)
    pd.testing.assert_frame_equal(query.entities(stored, cutoffs),
                                  query.entities(memory, cutoffs), check_dtype=False)
    assert query.label_horizon(stored) == query.label_horizon(memory)


def test_predict_runs_in_duckdb_as_in_memory(shop_in_duckdb) -> None:
    memory, stored = shop_in_duckdb
    options = {"n_estimators": 1, "max_depth": 1, "verbose": False, "context_rows": 256}
    ours = predict(stored, QUERIES[0], "2022-10-01", **options)
    reference = predict(memory, QUERIES[0], "2022-10-01", **options)
    assert list(ours["customer_id"]) == list(reference["customer_id"])
    np.testing.assert_allclose(ours["probability"], reference["probability"], atol=1e-6)
