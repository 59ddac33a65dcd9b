"""rdbpfn.formats: the readers' keys (declared, given, inferred), their reports and errors."""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdbpfn.database import Database, UndeclaredTimeWarning
from rdbpfn.formats import KeyInferenceWarning, inferred_foreign_keys, inferred_primary_key

SHOP_TIMES = {"customers": "signup", "orders": "at"}
"""The time columns of :func:`shop_frames` (SQLite and CSV keep them as ISO text)."""

SHOP_INFERRED = [
    "customers.id (primary key, inferred: name and unique non-null values)",
    "orders.order_id (primary key, inferred: name and unique non-null values)",
    "products.productId (primary key, inferred: name and unique non-null values)",
    "tickets.ticket_id (primary key, inferred: name and unique non-null values)",
    "orders.customer_id -> customers (inferred: name and 100% containment)",
    "order_items.order_id -> orders (inferred: name and 100% containment)",
    "order_items.productId -> products (inferred: name and 100% containment)",
]
"""What inference finds in :func:`shop_frames`, in report order."""


def shop_frames() -> dict[str, pd.DataFrame]:
    """A shop without declared keys. ``tickets.customer_id`` is named like a key of
    ``customers`` but holds an unknown customer (99), so it is no foreign key."""
    return {
        "customers": pd.DataFrame({"id": [1, 2, 3], "name": ["ann", "bob", "cy"],
                                   "signup": ["2020-01-01", "2020-02-01", "2020-03-01"]}),
        "orders": pd.DataFrame({"order_id": [10, 11, 12, 13],
                                "customer_id": [1, 1, 2, np.nan],
                                "amount": [5.0, 7.5, 1.0, 3.0],
                                "at": ["2020-01-05", "2020-02-05", "2020-02-07", "2020-03-01"]}),
        "products": pd.DataFrame({"productId": ["a", "b"], "price": [1.0, 2.0]}),
        "order_items": pd.DataFrame({"order_id": [10, 10, 12], "productId": ["a", "b", "b"],
                                     "quantity": [1, 2, 3]}),
        "tickets": pd.DataFrame({"ticket_id": [1, 2], "customer_id": [1, 99]}),
    }


def shop_sqlite(tmp_path: Path) -> Path:
    """:func:`shop_frames` written with ``DataFrame.to_sql``: no key is declared."""
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as connection:
        for name, frame in shop_frames().items():
            frame.to_sql(name, connection, index=False)
    connection.close()
    return path


SHOP_KEYS = {
    "primary_keys": {"customers": "id", "orders": "order_id", "products": "productId",
                     "tickets": "ticket_id"},
    "foreign_keys": {"orders": {"customer_id": "customers"},
                     "order_items": {"order_id": "orders", "productId": "products"},
                     "tickets": {}},
}
"""The keys of :func:`shop_frames`, given explicitly (``tickets`` has no foreign key)."""


@contextmanager
def no_schema_warnings() -> Iterator[None]:
    """Fail on any warning about keys, self-references or time columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", KeyInferenceWarning)
        warnings.simplefilter("error", UndeclaredTimeWarning)
        warnings.filterwarnings("error", message=".*(self-reference|the argument wins)")
        yield


def assert_shop_schema(db: Database) -> None:
    assert list(db) == ["customers", "orders", "products", "order_items", "tickets"]
    assert {n: t.primary_key for n, t in db.tables.items()} == {
        "customers": "id", "orders": "order_id", "products": "productId",
        "order_items": None, "tickets": "ticket_id"}
    assert [(r.child, r.column, r.parent) for r in db.relationships] == [
        ("orders", "customer_id", "customers"), ("order_items", "order_id", "orders"),
        ("order_items", "productId", "products")]
    np.testing.assert_array_equal(db.foreign_key_codes("orders", "customer_id"), [0, 0, 1, -1])
    np.testing.assert_array_equal(db.foreign_key_codes("order_items", "productId"), [0, 1, 1])
    assert db.time_kind == "datetime"
    assert db["orders"].time_keys()[0] == pd.Timestamp("2020-01-05").value


# ----------------------------------------------------------------------------- SQLite
def test_sqlite_without_declared_keys_takes_the_given_keys(tmp_path: Path) -> None:
    path = shop_sqlite(tmp_path)
    with no_schema_warnings():
        db = Database.from_sqlite(path, time_columns=SHOP_TIMES, infer_keys=False,
                                  **SHOP_KEYS)
    assert_shop_schema(db)
    assert db.inferred_keys == []
    # the second positional argument is still time_columns; an open connection works too
    with sqlite3.connect(path) as connection, no_schema_warnings():
        positional = Database.from_sqlite(connection, SHOP_TIMES, infer_keys=False,
                                          **SHOP_KEYS)
    assert_shop_schema(positional)


def test_sqlite_inference_finds_the_keys_and_reports_them(tmp_path: Path) -> None:
    path = shop_sqlite(tmp_path)
    with pytest.warns(KeyInferenceWarning) as caught:
        db = Database.from_sqlite(path, time_columns=SHOP_TIMES)
    assert_shop_schema(db)
    assert db.inferred_keys == SHOP_INFERRED
    message = str(caught[0].message)
    assert all(line in message for line in SHOP_INFERRED)
    assert ("Not inferred: tickets.customer_id -> customers: only 50% of its values are keys "
            "of customers.") in message
    with no_schema_warnings():
        silent = Database.from_sqlite(path, time_columns=SHOP_TIMES, infer_keys=False,
                                      static_tables=["products", "order_items", "tickets"])
    assert silent.inferred_keys == [] and silent.relationships == []
    assert all(t.primary_key is None for t in silent.tables.values())


def test_inference_fills_only_what_is_neither_declared_nor_given(tmp_path: Path) -> None:
    path = shop_sqlite(tmp_path)
    # customers: "no primary key" said explicitly, so no parent for orders.customer_id;
    # order_items: foreign keys given (one), so its productId is not inferred
    with pytest.warns(KeyInferenceWarning):
        db = Database.from_sqlite(
            path, time_columns=SHOP_TIMES, primary_keys={"customers": None},
            foreign_keys={"order_items": {"order_id": "orders"}},
        )
    assert db["customers"].primary_key is None
    assert db["order_items"].foreign_keys == {"order_id": "orders"}
    assert db.inferred_keys == [
        "orders.order_id (primary key, inferred: name and unique non-null values)",
        "products.productId (primary key, inferred: name and unique non-null values)",
        "tickets.ticket_id (primary key, inferred: name and unique non-null values)",
    ]


DECLARED_SHOP = """
    CREATE TABLE users (uid INTEGER PRIMARY KEY, name TEXT, manager INTEGER REFERENCES users);
    CREATE TABLE orders (oid INTEGER PRIMARY KEY, buyer INTEGER REFERENCES users(uid),
                         seller INTEGER REFERENCES users(uid), user_id INTEGER, amount REAL);
    INSERT INTO users VALUES (1, 'ann', NULL), (2, 'bob', 1);
    INSERT INTO orders VALUES (7, 1, 2, 1, 9.5), (8, 2, NULL, 2, 1.0);
"""


def declared_sqlite(tmp_path: Path, script: str = DECLARED_SHOP) -> Path:
    path = tmp_path / "declared.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(script)
    connection.close()
    return path


@pytest.mark.filterwarnings("ignore:.*self-reference")
def test_sqlite_arguments_add_to_declared_keys_and_win_with_a_warning(tmp_path: Path) -> None:
    path = declared_sqlite(tmp_path)
    with pytest.warns(UserWarning, match=r"'users': foreign key 'manager' points at its own "
                                         r"table \(a self-reference\)"):
        declared = Database.from_sqlite(path)
    # declared keys are read; orders declares foreign keys, so user_id is not inferred
    assert declared["orders"].foreign_keys == {"buyer": "users", "seller": "users"}
    assert declared.inferred_keys == []
    with pytest.warns(UserWarning) as caught:
        db = Database.from_sqlite(path, foreign_keys={
            "orders": {"seller": None, "user_id": "users"}})
    assert db["orders"].foreign_keys == {"buyer": "users", "user_id": "users"}
    assert any("table 'orders': foreign_keys gives no foreign key 'seller', but the SQLite "
               "database declares 'seller' -> 'users'; the argument wins." in str(w.message)
               for w in caught)
    with pytest.warns(UserWarning) as caught:
        renamed = Database.from_sqlite(path, primary_keys={"users": "name"},
                                       foreign_keys={"orders": {"buyer": None, "seller": None}})
    assert sorted(str(w.message) for w in caught if "argument wins" in str(w.message)) == [
        "table 'orders': foreign_keys gives no foreign key 'buyer', but the SQLite database "
        "declares 'buyer' -> 'users'; the argument wins.",
        "table 'orders': foreign_keys gives no foreign key 'seller', but the SQLite database "
        "declares 'seller' -> 'users'; the argument wins.",
        "table 'users': primary_keys gives 'name', but the SQLite database declares the "
        "primary key 'uid'; the argument wins.",
    ]
    assert renamed["users"].primary_key == "name" and renamed.relationships == []
    # declared references to users(uid) must then go too
    with pytest.warns(UserWarning), pytest.raises(
        ValueError, match=r"table 'orders': foreign key '\w+' references users\.uid, which is "
                          r"not 'users''s single-column primary key \('name'\)"):
        Database.from_sqlite(path, primary_keys={"users": "name"})


def test_sqlite_self_reference_is_dropped_and_the_column_kept(tmp_path: Path) -> None:
    path = declared_sqlite(tmp_path)
    with pytest.warns(UserWarning, match=r"table 'users': foreign key 'manager' points at its "
                                         r"own table \(a self-reference\), which DFS cannot "
                                         r"walk; the foreign key was dropped and 'manager' is "
                                         r"kept as an ordinary column \(declared in the SQLite "
                                         r"database\)"):
        db = Database.from_sqlite(path)
    assert db["users"].foreign_keys == {}
    # its values name rows: categorical, so counted (MODE, NUM_UNIQUE) and never averaged
    assert db["users"].column_kinds["manager"] == "categorical"
    assert db["users"].df["manager"].astype(object).tolist()[1] == 1
    with pytest.raises(ValueError, match=r"foreign_keys\['users'\] makes 'manager' point at "
                                         r"its own table \(a self-reference\)"):
        Database.from_sqlite(path, foreign_keys={"users": {"manager": "users"}})


def test_sqlite_composite_and_non_key_references(tmp_path: Path) -> None:
    path = declared_sqlite(tmp_path, """
        CREATE TABLE a (x INTEGER, y INTEGER, code TEXT, PRIMARY KEY (x, y));
        CREATE TABLE b (id INTEGER PRIMARY KEY, ax INTEGER, ay INTEGER, code TEXT,
                        FOREIGN KEY (ax, ay) REFERENCES a (x, y));
        CREATE TABLE c (id INTEGER PRIMARY KEY, code TEXT REFERENCES a (code));
        INSERT INTO a VALUES (1, 1, 'p'), (1, 2, 'q');
        INSERT INTO b VALUES (1, 1, 2, 'q');
        INSERT INTO c VALUES (1, 'q');
    """)
    with pytest.warns(UserWarning, match="composite"), pytest.raises(
            ValueError, match=r"table 'c': foreign key 'code' references a\.code, which is not "
                              r"'a''s single-column primary key \(None\).*primary_keys="
                              r"\{'a': 'code'\}, or drop it with foreign_keys=\{'c': "
                              r"\{'code': None\}\}"):
        Database.from_sqlite(path, infer_keys=False)
    with pytest.warns(UserWarning, match=r"table 'b': composite foreign key \['ax', 'ay'\] -> "
                                         r"'a' is not supported and was dropped"):
        db = Database.from_sqlite(path, primary_keys={"a": "code"}, infer_keys=False)
    assert db["c"].foreign_keys == {"code": "a"} and db["b"].foreign_keys == {}


def test_sqlite_argument_errors(tmp_path: Path) -> None:
    path = shop_sqlite(tmp_path)
    tables = r"tables are \['customers', 'orders', 'products', 'order_items', 'tickets'\]"
    with pytest.raises(ValueError, match=r"primary_keys names unknown tables \['clients'\]; "
                                         + tables):
        Database.from_sqlite(path, primary_keys={"clients": "id"})
    with pytest.raises(ValueError, match=r"foreign_keys names unknown tables \['order'\]"):
        Database.from_sqlite(path, foreign_keys={"order": {"customer_id": "customers"}})
    with pytest.raises(ValueError, match=r"time_columns names unknown tables \['x'\]"):
        Database.from_sqlite(path, time_columns={"x": "at"})
    with pytest.raises(ValueError, match=r"foreign_keys\['orders'\]\['customer_id'\] points "
                                         r"to table 'clients', which is not among the tables"):
        Database.from_sqlite(path, foreign_keys={"orders": {"customer_id": "clients"}})
    with pytest.raises(TypeError, match=r"foreign_keys\['orders'\] must map columns to parent "
                                        r"tables"):
        Database.from_sqlite(path, foreign_keys={"orders": "customers"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"table 'orders': primary key 'oid' is not one of its "
                                         r"columns \['order_id', 'customer_id', 'amount', "
                                         r"'at'\]"):
        Database.from_sqlite(path, primary_keys={"orders": "oid"})
    with pytest.raises(ValueError, match=r"table 'order_items': primary key 'order_id' has 1 "
                                         r"duplicate values, e\.g\. 10\. Make the key unique"):
        Database.from_sqlite(path, primary_keys={"order_items": "order_id"}, infer_keys=False)
    with pytest.raises(ValueError, match=r"table 'orders': foreign key 'customer_id' points to "
                                         r"table 'customers', which has no primary key\. Give "
                                         r"'customers' a primary key: .*primary_keys="
                                         r"\{'customers': \.\.\.\}"):
        Database.from_sqlite(path, foreign_keys={"orders": {"customer_id": "customers"}},
                             infer_keys=False)
    with pytest.raises(ValueError, match=r"table 'orders': time column 'order_id' is also a key "
                                         r"column"):
        Database.from_sqlite(path, time_columns={"orders": "order_id"},
                             primary_keys={"orders": "order_id"})


# ----------------------------------------------------------------------------- folders
def write_shop_folder(folder: Path) -> Path:
    folder.mkdir()
    for name, frame in shop_frames().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_folder_of_csvs_without_schema_json(tmp_path: Path) -> None:
    folder = write_shop_folder(tmp_path / "shop")
    with no_schema_warnings():
        given = Database.from_folder(folder, time_columns=SHOP_TIMES, infer_keys=False,
                                     **SHOP_KEYS)
    # without schema.json the tables come in file-name order
    assert list(given) == ["customers", "order_items", "orders", "products", "tickets"]
    assert given["orders"].foreign_keys == {"customer_id": "customers"}
    np.testing.assert_array_equal(given.foreign_key_codes("order_items", "order_id"),
                                  [0, 0, 2])
    with pytest.warns(KeyInferenceWarning):
        inferred = Database.from_folder(folder, time_columns=SHOP_TIMES)
    assert sorted(inferred.inferred_keys) == sorted(SHOP_INFERRED)
    assert {n: t.foreign_keys for n, t in inferred.tables.items()} == {
        n: t.foreign_keys for n, t in given.tables.items()}
    # a parquet file wins over a CSV of the same table
    shop_frames()["products"].assign(price=[9.0, 9.5]).to_parquet(folder / "products.parquet")
    with pytest.warns(KeyInferenceWarning):
        parquet = Database.from_folder(folder, time_columns=SHOP_TIMES)
    assert parquet["products"].df["price"].tolist() == [9.0, 9.5]
    with pytest.raises(ValueError, match=r"has no schema\.json and no \.parquet or \.csv files"):
        Database.from_folder(tmp_path)
    with pytest.raises(ValueError, match=r"nowhere is not a folder"):
        Database.from_folder(tmp_path / "nowhere")


@pytest.mark.filterwarnings("ignore:.*self-reference")
def test_folder_schema_json_merges_with_the_arguments(tmp_path: Path) -> None:
    folder = write_shop_folder(tmp_path / "shop")
    schema = {"customers": {"primary_key": "id", "time_column": "signup"},
              "orders": {"primary_key": "order_id", "foreign_keys": {}},
              "employees": {"primary_key": "id", "foreign_keys": {"boss": "employees"}}}
    pd.DataFrame({"id": [1, 2], "boss": [None, 1]}).to_csv(folder / "employees.csv", index=False)
    (folder / "schema.json").write_text(json.dumps({"tables": schema}))
    with pytest.warns(UserWarning, match=r"table 'employees': foreign key 'boss' points at its "
                                         r"own table \(a self-reference\).*\(declared in .*"
                                         r"schema\.json\)"):
        db = Database.from_folder(folder, foreign_keys={"orders": {"customer_id": "customers"}},
                                  time_columns={"orders": "at"}, infer_keys=False)
    assert list(db) == ["customers", "orders", "employees"]  # schema.json lists the tables
    assert db["orders"].foreign_keys == {"customer_id": "customers"}
    assert db["customers"].time_column == "signup" and db["orders"].time_column == "at"
    assert db["employees"].foreign_keys == {} and "boss" in db["employees"].column_kinds
    with pytest.raises(ValueError, match=r"table 'customers': primary_keys gives 'name', but "
                                         r".*schema\.json declares the primary key 'id'\. Make "
                                         r"them agree"):
        Database.from_folder(folder, primary_keys={"customers": "name"})
    with pytest.raises(ValueError, match=r"table 'customers': time_columns gives 'name', but "
                                         r".*schema\.json declares the time column 'signup'"):
        Database.from_folder(folder, time_columns={"customers": "name"})
    with pytest.raises(ValueError, match=r"primary_keys names unknown tables \['products'\]"):
        Database.from_folder(folder, primary_keys={"products": "productId"})


def test_from_dataframes_takes_the_same_arguments() -> None:
    with no_schema_warnings():
        db = Database.from_dataframes(shop_frames(), time_columns=SHOP_TIMES, infer_keys=False,
                                      **SHOP_KEYS)
    assert_shop_schema(db)
    with pytest.raises(ValueError, match=r"table 'orders': foreign_keys gives 'customer_id' -> "
                                         r"'customers', but the schema declares 'customer_id' "
                                         r"-> 'tickets'"):
        Database.from_dataframes(shop_frames(), {"orders": {"foreign_keys": {
            "customer_id": "tickets"}}}, foreign_keys={"orders": {"customer_id": "customers"}})


# ------------------------------------------------------------------------- the rules
def test_primary_key_name_rules() -> None:
    frame = pd.DataFrame({"paid": [1, 2], "CategoryID": [1, 2], "category_id": [1, 1]})
    assert inferred_primary_key("categories", frame) == "CategoryID"  # category_id repeats
    assert inferred_primary_key("categories", frame.assign(id=[5, 6])) == "id"  # id first
    assert inferred_primary_key("categories", frame, taken=["CategoryID"]) is None
    assert inferred_primary_key("boxes", pd.DataFrame({"box-id": ["a", "b"]})) == "box-id"
    assert inferred_primary_key("orders", pd.DataFrame({"ordersId": [1, 2]})) == "ordersId"
    assert inferred_primary_key("orders", pd.DataFrame({"id": [1.0, 2.0]})) is None  # floats
    assert inferred_primary_key("orders", pd.DataFrame({"id": ["a", None]})) is None  # null
    assert inferred_primary_key("orders", pd.DataFrame({"paid": [1, 2]})) is None


def test_foreign_key_name_and_containment_rules() -> None:
    parents = {"customers": ("id", pd.Series([1, 2, 3])),
               "customer": ("customer_id", pd.Series([1, 2])),
               "orders": ("order_no", pd.Series(["x", "y"]))}
    frame = pd.DataFrame({"customer_id": [1, 2], "order_no": ["x", None], "id": [1, 2],
                          "customerId": [3, 3], "flag_id": [True, False]})
    found, notes = inferred_foreign_keys("returns", frame, parents)
    # customer_id fits both customers (name) and customer (its key name): left out
    assert found == {"order_no": "orders", "customerId": "customers"}
    assert notes == ["returns.customer_id matches ['customers', 'customer'] by name and "
                     "containment; choose with foreign_keys={'returns': {'customer_id': ...}}"]
    # never on taken columns, never to the table itself
    assert inferred_foreign_keys("returns", frame, parents, taken=["order_no"])[0] == {
        "customerId": "customers"}
    own, notes = inferred_foreign_keys("customers", frame[["customerId"]], parents)
    assert own == {} and notes == [
        "customers.customerId -> customer: only 0% of its values are keys of customer"]


def test_inference_never_closes_a_cycle() -> None:
    frames = {"a": pd.DataFrame({"id": [1, 2], "b_id": [1, 2]}),
              "b": pd.DataFrame({"id": [1, 2], "a_id": [1, 2]})}
    with pytest.warns(KeyInferenceWarning, match=r"Not inferred: b\.a_id -> a would close a "
                                                 r"cycle"):
        db = Database.from_dataframes(frames)
    assert [(r.child, r.column, r.parent) for r in db.relationships] == [("a", "b_id", "b")]
