"""Command line: ``python -m rdbpfn predict DB "QUERY" --at T --out preds.csv``.

DB is a SQLite file (``.sqlite``, ``.sqlite3``, ``.db``), a DuckDB file (``.duckdb``) or a
folder of CSV / parquet files. Keys and time columns the files do not declare are given on
the command line (``--primary-key orders=order_id``, ``--foreign-key
orders.customer_id=customers``, ``--time-column orders=ordered_at``); undeclared ones may be
inferred from names and values, and every inferred key is reported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rdbpfn.atomic import atomic_write_text
from rdbpfn.database import Database
from rdbpfn.forecast import CONTEXT_ROWS, backtest, predict

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
DUCKDB_SUFFIXES = (".duckdb",)


def _table_column(text: str) -> tuple[str, str]:
    """``TABLE=COLUMN`` (argparse type of --primary-key and --time-column)."""
    table, found, column = text.partition("=")
    if not found or not table or not column:
        raise argparse.ArgumentTypeError(f"expected TABLE=COLUMN, e.g. orders=order_id; got "
                                         f"{text!r}")
    return table, column


def _foreign_key(text: str) -> tuple[str, str, str]:
    """``TABLE.COLUMN=PARENT`` (argparse type of --foreign-key)."""
    column, found, parent = text.partition("=")
    table, dot, name = column.partition(".")
    if not found or not dot or not (table and name and parent):
        raise argparse.ArgumentTypeError(f"expected TABLE.COLUMN=PARENT, e.g. "
                                         f"orders.customer_id=customers; got {text!r}")
    return table, name, parent


def _schema_options(args: argparse.Namespace) -> dict[str, dict]:
    primary, times = dict(args.primary_key), dict(args.time_column)
    foreign: dict[str, dict[str, str]] = {}
    for table, name, parent in args.foreign_key:
        foreign.setdefault(table, {})[name] = parent
    options = {"primary_keys": primary, "foreign_keys": foreign, "time_columns": times}
    return {name: value for name, value in options.items() if value}


def load_database(path: str, options: dict[str, dict]) -> Database:
    """A database from a SQLite or DuckDB file or a folder, with the given keys."""
    location = Path(path)
    if not location.exists():
        raise SystemExit(f"{path}: no such file or folder; pass a SQLite or DuckDB file or a "
                         "folder of CSV/parquet files.")
    if location.is_dir():
        return Database.from_folder(location, **options)
    if location.suffix.lower() in SQLITE_SUFFIXES:
        return Database.from_sqlite(location, **options)
    if location.suffix.lower() in DUCKDB_SUFFIXES:  # the tables stay in DuckDB
        return Database.from_duckdb(location, **options)
    raise SystemExit(f"{path}: unknown kind of file {location.suffix!r}; pass a SQLite file "
                     f"({', '.join(SQLITE_SUFFIXES)}), a DuckDB file (.duckdb) or a folder.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rdbpfn", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("predict", "answer a query at a time, from history alone; writes key,probability "
                    "(a yes/no query) or key,prediction,std,median,low_90,high_90 (a number)"),
        ("backtest", "predict at past times and score against the truth, the heuristic "
                     "and a gradient-boosted tree model; writes a report folder"),
    ):
        command = commands.add_parser(name, help=helptext, description=helptext)
        command.add_argument("database", help="SQLite file, DuckDB file or folder of CSV/parquet")
        command.add_argument("query", help='e.g. "PREDICT COUNT(orders.*, 0, 30, days) > 0 '
                                           'FOR EACH customers.customer_id"')
        command.add_argument("--at", required=True, nargs="+" if name == "backtest" else None,
                             help="time(s) to predict at, e.g. 2024-06-01"
                             + (" (several for a backtest)" if name == "backtest" else ""))
        command.add_argument("--out", required=True,
                             help="CSV file of predictions" if name == "predict"
                             else "folder for the report")
        command.add_argument("--primary-key", action="append", default=[],
                             type=_table_column, metavar="TABLE=COLUMN",
                             help="a table's primary key (repeatable)")
        command.add_argument("--foreign-key", action="append", default=[],
                             type=_foreign_key, metavar="TABLE.COLUMN=PARENT",
                             help="a foreign key to PARENT's primary key (repeatable)")
        command.add_argument("--time-column", action="append", default=[],
                             type=_table_column, metavar="TABLE=COLUMN",
                             help="when a table's rows become known (repeatable)")
        command.add_argument("--n-anchors", type=int, default=None,
                             help="anchor times to label from history (default: until the "
                                  "pool is large enough, at most 12)")
        command.add_argument("--context-rows", type=int, default=CONTEXT_ROWS,
                             help="labelled rows the model sees (default %(default)s)")
        command.add_argument("--max-depth", type=int, default=2, help="DFS depth (default 2)")
        command.add_argument("--estimators", type=int, default=4,
                             help="ensemble members (default 4)")
        command.add_argument("--absolute", action="store_true",
                             help="a numeric COUNT or SUM query: learn the number itself, not "
                                  "its change from the last window (the default)")
        command.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        command.add_argument("--quiet", action="store_true", help="no progress or context report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        db = load_database(args.database, _schema_options(args))
        options = {"n_anchors": args.n_anchors, "context_rows": args.context_rows,
                   "random_state": args.seed, "verbose": not args.quiet,
                   "max_depth": args.max_depth, "n_estimators": args.estimators,
                   "relative": False if args.absolute else None}
        if args.command == "predict":
            predictions = predict(db, args.query, args.at, **options)
            atomic_write_text(args.out, predictions.to_csv(index=False))
            if not args.quiet:
                print(f"{len(predictions):,} predictions written to {args.out}", file=sys.stderr)
        else:
            summary = backtest(db, args.query, args.at, out=args.out, **options)
            print(summary.to_string(index=False))
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
