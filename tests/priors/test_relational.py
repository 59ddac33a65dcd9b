"""Relational prior: generated databases (integrity, time order, determinism) and SQL DDL."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from priors.ddl import column_kind, parse_ddl
from priors.relational import generate_database
from priors.structure import LinkerConfig

SEEDS = range(6)


@pytest.fixture(scope="module")
def databases():
    return [generate_database(np.random.default_rng(seed)) for seed in SEEDS]


def test_schema_acyclic_and_foreign_keys_point_at_existing_rows(databases):
    for db in databases:
        assert nx.is_directed_acyclic_graph(db.graph)
        order = list(db.tables)
        for name, table in db.tables.items():
            assert len(np.unique(table.keys)) == table.n_rows
            for column, (parent, index) in table.foreign_keys.items():
                assert order.index(parent) < order.index(name)
                assert db.graph.has_edge(parent, name)
                assert index.shape == (table.n_rows,)
                assert index.min() >= 0 and index.max() < db.tables[parent].n_rows
                frame = db.frame(name)
                assert frame[column].isin(db.frame(parent)["id"]).all()


def test_no_child_row_references_a_later_parent_and_times_are_sorted(databases):
    n_checked = 0
    for db in databases:
        for table in db.tables.values():
            if table.seconds is not None:
                assert np.all(np.diff(table.seconds) >= 0)
            for parent_name, index in table.foreign_keys.values():
                parent = db.tables[parent_name]
                if parent.seconds is None:
                    continue
                assert table.seconds is not None  # children of timed tables are timed
                assert np.all(parent.seconds[index] <= table.seconds)
                n_checked += 1
    assert n_checked >= 5


def test_sinks_are_timed_activity_tables_and_sizes_are_bounded(databases):
    for db in databases:
        total = sum(t.n_rows for t in db.tables.values())
        assert total <= 15_000
        for name, table in db.tables.items():
            if db.graph.out_degree(name) == 0 and db.graph.in_degree(name) > 0:
                assert table.time_column == "time"
            assert 3 <= len(table.specs) <= 10


def test_same_seed_same_bytes():
    a = generate_database(np.random.default_rng(11), linker="scm")
    b = generate_database(np.random.default_rng(11), linker="scm")
    assert list(a.tables) == list(b.tables)
    for name in a.tables:
        fa, fb = a.frame(name), b.frame(name)
        assert fa.columns.tolist() == fb.columns.tolist()
        assert pd.util.hash_pandas_object(fa).to_numpy().tobytes() == \
            pd.util.hash_pandas_object(fb).to_numpy().tobytes()
    c = generate_database(np.random.default_rng(12))
    assert any(name not in c.tables or not c.frame(name).equals(a.frame(name))
               for name in a.tables)


def test_linker_modes_and_fixed_config():
    for linker in ("hsbm", LinkerConfig(feedback_strength=0.0, mode_b_fraction=0.0)):
        db = generate_database(np.random.default_rng(3), linker=linker, n_tables=4,
                               family="reverse_random_tree")
        assert len(db.tables) == 4


def test_sample_database_is_an_rdbpfn_database():
    pytest.importorskip("rdbpfn.database")
    from priors.relational import sample_database
    from rdbpfn.database import Database

    database = sample_database(np.random.default_rng(0), max_tables=5)
    assert isinstance(database, Database)
    database.validate()  # integrity, checked by the data layer itself
    for table in database.tables.values():
        assert table.primary_key == "id"
        for column, parent in table.foreign_keys.items():
            assert column == f"{parent}_id"


DDL = """
-- a small shop
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    country VARCHAR(2) NOT NULL,
    signup_date DATE,
    vip BOOLEAN,
    referrer_id INTEGER REFERENCES customers(customer_id)   /* self-reference: dropped */
);
CREATE TABLE "products" (
    sku TEXT,
    price DECIMAL(10, 2),
    category ENUM('toys', 'books', 'food'),
    PRIMARY KEY (sku)
) ENGINE=InnoDB;
CREATE TABLE orders (
    order_id BIGINT NOT NULL,
    customer_id INTEGER NOT NULL,
    ordered_at TIMESTAMP NOT NULL,
    shipped_at TIMESTAMP,
    CONSTRAINT pk_orders PRIMARY KEY (order_id),
    CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (customer_id)
);
CREATE TABLE order_items (
    order_id BIGINT,
    sku TEXT,
    quantity SMALLINT UNSIGNED,
    discount REAL,
    id INT,
    PRIMARY KEY (order_id, sku),
    KEY idx_sku (sku)
);
ALTER TABLE order_items ADD CONSTRAINT fk_o FOREIGN KEY (order_id) REFERENCES orders(order_id);
ALTER TABLE order_items ADD FOREIGN KEY (sku) REFERENCES products (sku);
"""


def test_ddl_parses_types_keys_and_drops_self_references():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = parse_ddl(DDL)
    assert any("self-reference" in str(w.message) for w in caught)
    assert set(schema.tables) == {"customers", "products", "orders", "order_items"}
    assert sorted(schema.graph.edges) == [("customers", "orders"), ("orders", "order_items"),
                                          ("products", "order_items")]
    orders = schema.tables["orders"]
    assert orders.primary_key == "order_id" and orders.time_column == "ordered_at"
    assert schema.tables["products"].primary_key_kind == "text"
    kinds = {c.name: c.kind for c in schema.tables["customers"].columns}
    assert kinds == {"customer_id": "integer", "country": "categorical", "signup_date": "time",
                     "vip": "bool", "referrer_id": "integer"}
    assert column_kind("DOUBLE PRECISION") == "numeric"
    category = schema.tables["products"].columns[2]
    assert category.kind == "categorical" and category.categories == ("toys", "books", "food")
    assert schema.tables["order_items"].primary_key is None
    assert column_kind("datetime2(7)") == "time"


def test_ddl_schema_is_filled():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = parse_ddl(DDL)
    db = generate_database(np.random.default_rng(0), schema=schema, row_range=(50, 400))
    orders = db.frame("orders")
    assert list(orders.columns) == ["order_id", "customer_id", "ordered_at", "shipped_at"]
    assert pd.api.types.is_datetime64_any_dtype(orders["ordered_at"])
    assert (orders["shipped_at"] >= orders["ordered_at"]).all()
    customers = db.frame("customers")
    assert orders["customer_id"].isin(customers["customer_id"]).all()
    signed_up = customers.set_index("customer_id")["signup_date"]
    assert (signed_up.loc[orders["customer_id"]].to_numpy() <= orders["ordered_at"]).all()
    items = db.frame("order_items")
    assert items["sku"].isin(db.frame("products")["sku"]).all()
    # composite key in the DDL: a key column is added, named apart from the "id" column
    assert db.tables["order_items"].primary_key == "id_"
    assert items["id_"].is_unique and "id" in items.columns
    assert set(db.frame("products")["category"].dropna()) <= {"toys", "books", "food"}
    assert set(customers["vip"].dropna().unique()) <= {True, False}
    assert customers["country"].dtype == "category"


def test_ddl_errors_say_what_to_fix():
    with pytest.raises(ValueError, match="no CREATE TABLE"):
        parse_ddl("SELECT 1;")
    with pytest.raises(ValueError, match="unknown table 'nowhere'"):
        parse_ddl("CREATE TABLE a (id INT PRIMARY KEY, b INT REFERENCES nowhere(id));")
    with pytest.warns(UserWarning, match="closes a cycle"):
        schema = parse_ddl("CREATE TABLE a (id INT PRIMARY KEY, b_id INT REFERENCES b(id));"
                           "CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a(id));")
    assert nx.is_directed_acyclic_graph(schema.graph)


def test_causal_content_keeps_schema_links_and_times():
    for seed in range(3):
        paper = generate_database(np.random.default_rng(seed))
        causal = generate_database(np.random.default_rng(seed), causal_content=True)
        assert list(paper.tables) == list(causal.tables)
        changed = 0
        for name, table in paper.tables.items():
            other = causal.tables[name]
            assert (table.seconds is None) == (other.seconds is None)
            if table.seconds is not None:
                np.testing.assert_array_equal(table.seconds, other.seconds)
            for column, (parent, index) in table.foreign_keys.items():
                assert other.foreign_keys[column][0] == parent
                np.testing.assert_array_equal(index, other.foreign_keys[column][1])
            changed += any(not np.array_equal(table.columns[c], other.columns[c], equal_nan=True)
                           for c in table.columns)
        assert changed > 0


def _share_of_parents_active_at_the_end(**kwargs):
    """Over a few databases: share of parent rows (of timed children) whose last child
    comes in the final fifth of the child table's time span."""
    shares = []
    for seed in range(4):
        db = generate_database(np.random.default_rng(seed), linker="scm", **kwargs)
        for table in db.tables.values():
            if table.seconds is None:
                continue
            late = table.seconds > table.seconds[0] + 0.8 * (table.seconds[-1] - table.seconds[0])
            for parent, index in table.foreign_keys.values():
                has_children = np.bincount(index, minlength=db.tables[parent].n_rows) > 0
                active_late = np.bincount(index[late], minlength=db.tables[parent].n_rows) > 0
                shares.append(active_late[has_children].mean())
    return float(np.mean(shares))


def test_entity_lifetimes_end_the_activity_of_parents():
    assert _share_of_parents_active_at_the_end(entity_lifetimes=1.0) < \
        _share_of_parents_active_at_the_end() - 0.1
