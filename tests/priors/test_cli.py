"""``python -m priors``: databases written as parquet / SQLite open in ordinary tools."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from priors.__main__ import main
from tests.common import ROOT


def test_sample_parquet_reads_back_with_pandas(tmp_path):
    assert main(["sample", "--n", "2", "--out", str(tmp_path), "--format", "parquet",
                 "--seed", "4", "--max-tables", "5"]) == 0
    for index in range(2):
        folder = tmp_path / f"db_{index:04d}"
        schema = json.loads((folder / "schema.json").read_text())["tables"]
        frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in schema}
        for name, entry in schema.items():
            frame = frames[name]
            assert frame[entry["primary_key"]].is_unique
            for column, parent in entry.get("foreign_keys", {}).items():
                assert frame[column].isin(frames[parent][schema[parent]["primary_key"]]).all()
            if "time_column" in entry:
                assert pd.api.types.is_datetime64_any_dtype(frame[entry["time_column"]])


def test_sample_sqlite_reads_back_with_sqlite3(tmp_path):
    assert main(["sample", "--n", "1", "--out", str(tmp_path), "--format", "sqlite",
                 "--seed", "2", "--max-tables", "5"]) == 0
    path = tmp_path / "db_0000.sqlite"
    connection = sqlite3.connect(path)
    try:
        names = [r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")]
        assert names
        n_keys = 0
        for name in names:
            frame = pd.read_sql(f'SELECT * FROM "{name}"', connection)
            assert len(frame) > 0
            for _, _, parent, column, parent_column, *_ in connection.execute(
                    f'PRAGMA foreign_key_list("{name}")'):
                parents = pd.read_sql(f'SELECT "{parent_column}" FROM "{parent}"', connection)
                assert frame[column].isin(parents[parent_column]).all()
                n_keys += 1
        assert n_keys >= 1
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        connection.close()
    assert "time_columns" in json.loads((tmp_path / "db_0000.schema.json").read_text())


def test_sample_fills_a_ddl_schema_file(tmp_path):
    ddl = tmp_path / "shop.sql"
    ddl.write_text("CREATE TABLE users (id INTEGER PRIMARY KEY, age INT, joined DATE);\n"
                   "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL "
                   "REFERENCES users(id), amount DECIMAL(8,2), at TIMESTAMP);")
    assert main(["sample", "--n", "1", "--out", str(tmp_path / "out"), "--schema", str(ddl)]) == 0
    orders = pd.read_parquet(tmp_path / "out" / "db_0000" / "orders.parquet")
    assert list(orders.columns) == ["id", "user_id", "at", "amount"]


def test_module_entry_point_and_bad_arguments(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "priors", "sample", "--n", "1", "--out", str(tmp_path),
         "--max-tables", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "db_0000" / "schema.json").is_file()
    with pytest.raises(SystemExit):
        main(["sample", "--n", "1", "--out", str(tmp_path), "--format", "csv"])
    with pytest.raises(ValueError, match="does not exist"):
        main(["sample", "--n", "1", "--out", str(tmp_path), "--schema", "missing.sql"])


def test_show_writes_the_three_pngs(tmp_path):
    pytest.importorskip("rdbpfn.dfs")
    from rdbpfn import dfs

    if not hasattr(dfs, "linearize"):
        pytest.skip("rdbpfn.linearize is not available yet")
    assert main(["show", "--out", str(tmp_path), "--seed", "1", "--max-tables", "5"]) == 0
    for name in ("schema.png", "degrees.png", "correlation.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
