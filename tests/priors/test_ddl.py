"""priors.ddl: the project's self-reference rule (the rest of the reader is tested in
test_relational.py, next to the prior that fills the schemas)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from priors.ddl import parse_ddl
from rdbpfn.database import Database
from rdbpfn.formats import dropped_self_reference

EMPLOYEES = """
CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    department_id INTEGER REFERENCES departments(id),
    manager_id INTEGER REFERENCES employees(id),
    salary REAL
);
"""


def test_ddl_drops_a_self_reference_like_the_database_readers(tmp_path: Path) -> None:
    message = dropped_self_reference("employees", "manager_id")
    with pytest.warns(UserWarning) as caught:
        schema = parse_ddl(EMPLOYEES)
    assert [str(w.message) for w in caught] == [message + " (declared in the DDL)."]
    employees = schema.tables["employees"]
    assert employees.foreign_keys == {"department_id": "departments"}
    assert [c.name for c in employees.feature_columns] == ["manager_id", "salary"]
    assert sorted(schema.graph.edges) == [("departments", "employees")]
    # the same file through SQLite: the same foreign keys, the same message
    path = tmp_path / "staff.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(EMPLOYEES + """
            INSERT INTO departments VALUES (1, 'sales');
            INSERT INTO employees VALUES (1, 1, NULL, 90.0), (2, 1, 1, 60.5);
        """)
    connection.close()
    with pytest.warns(UserWarning) as caught:
        db = Database.from_sqlite(path, infer_keys=False)
    assert [str(w.message) for w in caught] == [
        message + " (declared in the SQLite database)."]
    assert db["employees"].foreign_keys == employees.foreign_keys
    assert db["employees"].column_kinds == {"manager_id": "categorical", "salary": "numeric"}
