"""``python -m rdbpfn predict|backtest`` on a SQLite file written with ``DataFrame.to_sql``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import rdbpfn.__main__ as cli
from rdbpfn.__main__ import main
from tests.common import ROOT
from tests.rdbpfn.test_forecast import QUERY, shop

KEYS = ["--primary-key", "customers=customer_id", "--primary-key", "orders=order_id",
        "--foreign-key", "orders.customer_id=customers", "--time-column", "orders=at",
        "--time-column", "customers=signup"]
FAST = ["--estimators", "1", "--max-depth", "1", "--quiet"]


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop database as plain tables: no declared keys, times as text."""
    path = tmp_path_factory.mktemp("db") / "shop.sqlite"
    db = shop()
    with sqlite3.connect(path) as connection:
        for name in ("customers", "orders"):
            db[name].df.to_sql(name, connection, index=False)
    return path


def test_predict_writes_one_probability_per_entity(sqlite_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    assert main(["predict", str(sqlite_file), QUERY, "--at", "2022-10-01", "--out", str(out),
                 *KEYS, *FAST]) == 0
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["customer_id", "probability"]
    assert len(predictions) == 150 and predictions["probability"].between(0, 1).all()


def test_a_duckdb_file_predicts_as_the_sqlite_file(sqlite_file: Path, tmp_path: Path) -> None:
    """The same tables in a DuckDB file (typed times, keys on the command line), left there:
    labels, DFS and predictions computed in DuckDB match the SQLite file's (to float
    rounding of sums and means)."""
    path = tmp_path / "shop.duckdb"
    db = shop()
    with duckdb.connect(str(path)) as connection:
        for name in ("customers", "orders"):
            frame = db[name].df  # noqa: F841 (read by DuckDB's replacement scan)
            connection.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
    outputs = []
    for source in (sqlite_file, path):
        out = tmp_path / f"{source.suffix[1:]}.csv"
        assert main(["predict", str(source), QUERY, "--at", "2022-10-01", "--out", str(out),
                     *KEYS, *FAST]) == 0
        outputs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(outputs[0], outputs[1], check_exact=False, atol=1e-6)


def test_backtest_prints_and_writes_a_report(sqlite_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    assert main(["backtest", str(sqlite_file), QUERY, "--at", "2022-09-01", "--out",
                 str(tmp_path / "report"), "--context-rows", "256", *KEYS, *FAST]) == 0
    assert "rdbpfn_auc" in capsys.readouterr().out
    assert (tmp_path / "report" / "backtest.png").is_file()


def test_absolute_asks_for_the_number_itself(sqlite_file: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_predict(db: object, query: str, at: str, **options: object) -> pd.DataFrame:
        seen.append(options["relative"])
        return pd.DataFrame({"customer_id": [1], "prediction": [0.0]})

    monkeypatch.setattr(cli, "predict", fake_predict)
    query = "PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id"
    for flags in ([], ["--absolute"]):
        assert main(["predict", str(sqlite_file), query, "--at", "2022-10-01", "--out",
                     str(tmp_path / "p.csv"), *KEYS, *flags]) == 0
    assert seen == [None, False]


def test_bad_input_is_an_error_not_a_traceback(sqlite_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "p.csv")
    assert main(["predict", str(sqlite_file), "PREDICT COUNT(orders.*, 0, 0, days) > 0 FOR EACH "
                 "customers.customer_id", "--at", "2022-10-01", "--out", out, *KEYS]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no such file or folder"):
        main(["predict", str(tmp_path / "missing.sqlite"), QUERY, "--at", "2022-10-01",
              "--out", out])
    with pytest.raises(SystemExit):  # argparse: exit code 2 with a usage message
        main(["predict", str(sqlite_file), QUERY, "--at", "2022-10-01", "--out", out,
              "--primary-key", "customers"])
    assert "expected TABLE=COLUMN" in capsys.readouterr().err


def test_help_explains_every_option() -> None:
    done = subprocess.run([sys.executable, "-m", "rdbpfn", "predict", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for option in ("--at", "--out", "--primary-key", "--foreign-key", "--time-column",
                   "--n-anchors", "--context-rows", "--estimators"):
        assert option in done.stdout
