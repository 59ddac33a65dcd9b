"""rdbpfn.database: Table/Database validation messages and the constructors."""

from __future__ import annotations

import json
import logging
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdbpfn.database import Database, UndeclaredTimeWarning
from rdbpfn.table import MISSING_TIME, Table, time_keys

logging.getLogger("featuretools").setLevel(logging.ERROR)


def frames() -> dict[str, pd.DataFrame]:
    users = pd.DataFrame({
        "id": [1, 2, 3],
        "age": [30, 40, np.nan],
        "country": ["fr", "de", "fr"],
        "vip": [True, False, True],
        "joined": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"]),
    })
    orders = pd.DataFrame({
        "id": [10, 11, 12, 13],
        "user_id": [1, 1, 2, np.nan],
        "amount": [5.0, 7.5, 1.0, 3.0],
        "at": pd.to_datetime(["2020-01-05", "2020-02-05", "2020-02-07", "2020-03-01"]),
    })
    return {"users": users, "orders": orders}


def database(**kwargs) -> Database:
    f = frames()
    return Database({
        "users": Table(f["users"], "id", time_column="joined"),
        "orders": Table(f["orders"], "id", {"user_id": "users"}, "at"),
    }, **kwargs)


def test_valid_database_and_column_kinds() -> None:
    db = database()
    assert list(db) == ["users", "orders"]
    assert db.time_kind == "datetime"
    assert db["users"].column_kinds == {"age": "numeric", "country": "categorical",
                                        "vip": "boolean"}
    assert db["orders"].column_kinds == {"amount": "numeric"}
    np.testing.assert_array_equal(db.foreign_key_codes("orders", "user_id"), [0, 0, 1, -1])
    codes, categories = db["users"].categorical_codes("country")
    assert list(categories) == ["de", "fr"] and codes.tolist() == [1, 0, 1]
    assert [(r.child, r.column, r.parent) for r in db.relationships] == [
        ("orders", "user_id", "users")]


def test_duplicate_primary_key_message() -> None:
    users = frames()["users"].assign(id=[1, 2, 2])
    with pytest.raises(ValueError, match=r"table 'users': primary key 'id' has 1 duplicate "
                                         r"values, e\.g\. 2\. Make the key unique"):
        Database({"users": Table(users, "id")})


def test_null_primary_key_message() -> None:
    users = frames()["users"].assign(id=[1, None, 3])
    with pytest.raises(ValueError, match=r"table 'users': primary key 'id' has 1 null values "
                                         r"\(first at row 1\)"):
        Database({"users": Table(users, "id")})


def test_foreign_key_to_missing_table_message() -> None:
    f = frames()
    with pytest.raises(ValueError, match=r"foreign key 'user_id' points to table 'userz', "
                                         r"which is not in the database"):
        Database({"users": Table(f["users"], "id"),
                  "orders": Table(f["orders"], "id", {"user_id": "userz"})})


def test_foreign_key_to_table_without_primary_key_message() -> None:
    f = frames()
    with pytest.raises(ValueError, match=r"points to table 'users', which has no primary key"):
        Database({"users": Table(f["users"]),
                  "orders": Table(f["orders"], "id", {"user_id": "users"})})


def test_foreign_key_values_missing_in_parent_message_and_null_option() -> None:
    f = frames()
    orders = f["orders"].assign(user_id=[1, 7, 2, 9])
    tables = {"users": Table(f["users"], "id", time_column="joined"),
              "orders": Table(orders, "id", {"user_id": "users"}, "at")}
    with pytest.raises(ValueError, match=r"foreign key 'user_id' has 2 values not found in "
                                         r"'users'\.id, e\.g\. 7, 9\. .*missing_foreign_keys"):
        Database(tables)
    db = Database(tables, missing_foreign_keys="null")
    assert db["orders"].df["user_id"].isna().tolist() == [False, True, False, True]
    np.testing.assert_array_equal(db.foreign_key_codes("orders", "user_id"), [0, -1, 1, -1])
    assert orders["user_id"].tolist() == [1, 7, 2, 9]  # the caller's frame is untouched
    # validate=False skips the data checks (unknown keys then read as null)
    unchecked = Database(tables, validate=False)
    np.testing.assert_array_equal(unchecked.foreign_key_codes("orders", "user_id"),
                                  [0, -1, 1, -1])


def test_schema_cycle_message() -> None:
    a = pd.DataFrame({"id": [1], "b_id": [1]})
    b = pd.DataFrame({"id": [1], "c_id": [1]})
    c = pd.DataFrame({"id": [1], "a_id": [1]})
    with pytest.raises(ValueError, match=r"the foreign keys form a cycle: a -> b -> c -> a\."):
        Database({"a": Table(a, "id", {"b_id": "b"}), "b": Table(b, "id", {"c_id": "c"}),
                  "c": Table(c, "id", {"a_id": "a"})}, validate=False)



def test_self_reference_raises_and_says_what_the_readers_do() -> None:
    employees = pd.DataFrame({"id": [1, 2], "boss": [None, 1]})
    with pytest.raises(ValueError, match=r"cycle: employees -> employees\. Table 'employees''s "
                                         r"foreign key 'boss' points at its own table \(a "
                                         r"self-reference\).*keep 'boss' as an ordinary column: "
                                         r"that is what Database\.from_sqlite"):
        Database({"employees": Table(employees, "id", {"boss": "employees"})})
    # the readers drop a declared one and keep the column (see test_formats for SQLite)
    with pytest.warns(UserWarning, match=r"table 'employees': foreign key 'boss' points at its "
                                         r"own table \(a self-reference\).*\(declared in the "
                                         r"schema\)"):
        db = Database.from_dataframes({"employees": employees}, {"employees": {
            "primary_key": "id", "foreign_keys": {"boss": "employees"}}})
    assert db.relationships == [] and db["employees"].column_kinds == {"boss": "categorical"}


def test_undeclared_time_columns_warn_unless_declared_or_static() -> None:
    f = frames()
    users, orders = Table(f["users"], "id"), Table(f["orders"], "id", {"user_id": "users"})
    with pytest.warns(UndeclaredTimeWarning) as caught:
        Database({"users": users, "orders": orders})
    assert len(caught) == 1
    assert str(caught[0].message).startswith(
        "tables without a time column have datetime columns ('users': ['joined']; 'orders': "
        "['at']). DFS sees every row of such a table at every cutoff, so rows from the future "
        "enter the features. If a column says when each row became known, declare it: "
        "time_columns={'users': 'joined', 'orders': 'at'} in Database.from_sqlite/")
    assert "static_tables=['users', 'orders']" in str(caught[0].message)
    timed_orders = Table(f["orders"], "id", {"user_id": "users"}, "at")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndeclaredTimeWarning)
        db = Database({"users": users, "orders": timed_orders}, static_tables=["users"])
        Database({"users": Table(f["users"], "id", time_column="joined"),
                  "orders": timed_orders})
        Database({"users": users, "orders": orders}, validate=False)  # made by code
        Database({"users": Table(f["users"].drop(columns="joined"), "id"),  # no datetimes
                  "orders": timed_orders})
    assert db.static_tables == {"users"}
    assert db.undeclared_times() == {}
    # text that parses as ISO dates counts (SQLite and CSV store times so); other text not
    text = f["orders"].assign(at=["2020-01-05", None, "2020-02-07 10:00:00", "2020-03-01"],
                              note=["2020", "a-b", "x", None])
    with pytest.warns(UndeclaredTimeWarning, match=r"\('orders': \['at'\]\)"):
        assert Database({"orders": Table(text, "id")}).undeclared_times() == {"orders": ["at"]}
    with pytest.raises(ValueError, match=r"static_tables names unknown tables \['user'\]"):
        Database({"users": users}, static_tables=["user"])
    with pytest.raises(ValueError, match=r"static_tables lists \['orders'\], which have a time "
                                         r"column \(\['at'\]\)"):
        Database({"users": users, "orders": timed_orders}, static_tables=["users", "orders"])


def test_unparseable_time_column_message() -> None:
    f = frames()
    orders = f["orders"].assign(at=["2020-01-05", "soon", "2020-02-07", None])
    with pytest.raises(ValueError, match=r"time column 'at' of table 'orders' does not parse "
                                         r"as datetimes: 1 unparseable values, e\.g\. 'soon'"):
        Database({"orders": Table(orders, "id", time_column="at")})
    flags = f["orders"].assign(at=[True, False, True, True])
    with pytest.raises(ValueError, match=r"time column 'at' of table 'orders' is boolean"):
        Database({"orders": Table(flags, "id", time_column="at")})


def test_mixed_time_kinds_message() -> None:
    f = frames()
    orders = f["orders"].assign(at=[2020, 2020, 2021, 2021])
    with pytest.raises(ValueError, match=r"time columns mix datetimes and numbers"):
        Database({"users": Table(f["users"], "id", time_column="joined"),
                  "orders": Table(orders, "id", {"user_id": "users"}, "at")})


def test_table_argument_errors() -> None:
    f = frames()
    with pytest.raises(ValueError, match=r"primary_key 'uid' is not a column of the table"):
        Table(f["users"], "uid")
    with pytest.raises(ValueError, match=r"foreign key 'uid' is not a column"):
        Table(f["orders"], "id", {"uid": "users"})
    with pytest.raises(TypeError, match=r"Table needs a pandas DataFrame, got dict"):
        Table({"id": [1]}, "id")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Database needs a dict \{name: Table\}"):
        Database({"users": f["users"]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"missing_foreign_keys must be 'raise' or 'null'"):
        database(missing_foreign_keys="drop")


def test_time_keys_preserve_order_and_missing() -> None:
    numbers = np.array([-2.5, -0.0, 0.0, 1e-300, 3.0, np.nan, -1e300, np.inf])
    keys = time_keys(numbers, "numeric", "t")
    finite = ~np.isnan(numbers)
    order = np.argsort(numbers[finite], kind="stable")
    assert np.all(np.diff(keys[finite][order]) >= 0)
    assert keys[1] == keys[2]  # -0.0 == 0.0
    assert keys[5] == MISSING_TIME
    dates = pd.Series(pd.to_datetime(["2020-01-02", None, "2020-01-01"]))
    date_keys = time_keys(dates, "datetime", "t")
    assert date_keys[2] < date_keys[0] and date_keys[1] == MISSING_TIME
    aware = pd.Series(pd.to_datetime(["2020-01-01 01:00"]).tz_localize("Europe/Paris"))
    assert time_keys(aware, "datetime", "t")[0] == pd.Timestamp("2020-01-01 00:00").value
    with pytest.raises(ValueError, match=r"cutoffs must be numbers"):
        time_keys(dates, "numeric", "cutoffs")


def test_from_dataframes_and_folder(tmp_path: Path) -> None:
    f = frames()
    schema = {"users": {"primary_key": "id", "time_column": "joined"},
              "orders": {"primary_key": "id", "foreign_keys": {"user_id": "users"},
                         "time_column": "at"}}
    db = Database.from_dataframes(f, schema)
    assert db["orders"].foreign_keys == {"user_id": "users"}
    f["users"].to_parquet(tmp_path / "users.parquet")
    f["orders"].to_csv(tmp_path / "orders.csv", index=False)
    (tmp_path / "schema.json").write_text(json.dumps({"tables": schema}))
    loaded = Database.from_folder(tmp_path)
    assert list(loaded) == ["users", "orders"]
    np.testing.assert_array_equal(loaded["orders"].time_keys(), db["orders"].time_keys())
    np.testing.assert_array_equal(loaded.foreign_key_codes("orders", "user_id"), [0, 0, 1, -1])
    with pytest.raises(ValueError, match=r"schema of table 'users' has unknown entries \['pk'\]"):
        Database.from_dataframes(f, {"users": {"pk": "id"}})
    (tmp_path / "schema.json").write_text(json.dumps({"tables": {"items": {}}}))
    with pytest.raises(ValueError, match=r"table 'items': none of \['items.parquet', "
                                         r"'items.csv'\] exists"):
        Database.from_folder(tmp_path)
    with pytest.raises(ValueError, match=r"nowhere is not a folder"):
        Database.from_folder(tmp_path / "nowhere")


def test_from_sqlite_reads_keys_from_the_database(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE users (uid INTEGER PRIMARY KEY, name TEXT, age REAL);
            CREATE TABLE orders (oid INTEGER PRIMARY KEY, buyer INTEGER REFERENCES users(uid),
                                 seller INTEGER, amount REAL, at TEXT,
                                 FOREIGN KEY (seller) REFERENCES users);
            INSERT INTO users VALUES (1, 'ann', 30), (2, 'bob', 41);
            INSERT INTO orders VALUES (7, 1, 2, 9.5, '2021-05-01'), (8, 2, NULL, 1.0, '2021-06-01');
        """)
    db = Database.from_sqlite(path, time_columns={"orders": "at"})
    assert db["users"].primary_key == "uid" and db["orders"].primary_key == "oid"
    assert db["orders"].foreign_keys == {"buyer": "users", "seller": "users"}
    assert db.time_kind == "datetime"
    np.testing.assert_array_equal(db.foreign_key_codes("orders", "seller"), [1, -1])
    with pytest.raises(ValueError, match=r"tables \['nope'\] are not in the SQLite database"):
        Database.from_sqlite(path, tables=["nope"])


def test_entityset_round_trip() -> None:
    db = database()
    entityset = db.to_entityset(name="shop")
    assert entityset["orders"].ww.time_index == "at"
    assert str(entityset["users"].ww.logical_types["country"]) == "Categorical"
    back = Database.from_entityset(entityset)
    assert list(back) == ["users", "orders"]
    assert back["orders"].foreign_keys == {"user_id": "users"}
    assert back["users"].time_column == "joined"
    np.testing.assert_array_equal(back.foreign_key_codes("orders", "user_id"), [0, 0, 1, -1])
    np.testing.assert_array_equal(back["orders"].numeric_values("amount"), [5.0, 7.5, 1.0, 3.0])
    encoded = db.to_entityset(encode_keys=True)
    assert encoded["orders"]["user_id"].tolist()[:3] == [0, 0, 1]
