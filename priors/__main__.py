"""Command line of the relational prior.

``python -m priors sample --n N --out DIR --format parquet|sqlite [--schema FILE.sql] [--seed S]``
writes N synthetic databases that open in ordinary tools:

- parquet: ``DIR/db_0000/<table>.parquet`` plus ``schema.json`` (keys and time columns, the
  format of ``rdbpfn.Database.from_folder``);
- sqlite: ``DIR/db_0000.sqlite`` with PRIMARY KEY / FOREIGN KEY constraints (read back by
  ``rdbpfn.Database.from_sqlite``; times are ISO text, their columns listed in
  ``DIR/db_0000.schema.json``).

``python -m priors show --out DIR [--seed S] [--schema FILE.sql]`` writes ``schema.png``,
``degrees.png`` and ``correlation.png`` (a linearized episode) for one database.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from priors.ddl import load_ddl
from priors.plots import plot_correlation, plot_degrees, plot_schema
from priors.relational import SyntheticDatabase, generate_database
from priors.schema import MAX_TABLES
from priors.tasks import linearize_task, sample_task
from rdbpfn.encoding import encode_frame

FORMATS = ("parquet", "sqlite")


def _generator(seed: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


def _schema_entry(db: SyntheticDatabase, name: str) -> dict[str, object]:
    table = db.tables[name]
    entry: dict[str, object] = {"primary_key": table.primary_key}
    if table.foreign_keys:
        entry["foreign_keys"] = {c: parent for c, (parent, _) in table.foreign_keys.items()}
    if table.time_column:
        entry["time_column"] = table.time_column
    return entry


def write_parquet(db: SyntheticDatabase, folder: Path) -> Path:
    """One parquet file per table plus ``schema.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in db.tables:
        db.frame(name).to_parquet(folder / f"{name}.parquet", index=False)
    schema = {"tables": {name: _schema_entry(db, name) for name in db.tables}}
    (folder / "schema.json").write_text(json.dumps(schema, indent=2))
    return folder


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "INTEGER"
    if pd.api.types.is_float_dtype(series.dtype):
        return "REAL"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "TIMESTAMP"
    return "TEXT"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def write_sqlite(db: SyntheticDatabase, path: Path) -> Path:
    """One SQLite file with declared primary and foreign keys (tables in topological order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        for name, table in db.tables.items():
            frame = db.frame(name)
            columns = [
                f"{_quote(c)} {_sql_type(frame[c])}"
                + (" PRIMARY KEY" if c == table.primary_key else "")
                for c in frame.columns
            ]
            columns += [
                f"FOREIGN KEY ({_quote(c)}) REFERENCES {_quote(parent)} "
                f"({_quote(db.tables[parent].primary_key)})"
                for c, (parent, _) in table.foreign_keys.items()
            ]
            connection.execute(f"CREATE TABLE {_quote(name)} ({', '.join(columns)})")
            for column in frame.columns:
                series = frame[column]
                if pd.api.types.is_datetime64_any_dtype(series.dtype):
                    frame[column] = series.dt.strftime("%Y-%m-%d %H:%M:%S")
                elif isinstance(series.dtype, pd.CategoricalDtype):
                    frame[column] = series.astype(object)
                elif pd.api.types.is_bool_dtype(series.dtype):
                    frame[column] = series.astype("Int64")
            frame = frame.astype(object).where(frame.notna(), None)
            placeholders = ", ".join("?" for _ in frame.columns)
            connection.executemany(
                f"INSERT INTO {_quote(name)} VALUES ({placeholders})",
                frame.itertuples(index=False, name=None),
            )
        connection.commit()
    finally:
        connection.close()
    times = {name: t.time_column for name, t in db.tables.items() if t.time_column}
    path.with_suffix(".schema.json").write_text(json.dumps({"time_columns": times}, indent=2))
    return path


def _generate(args: argparse.Namespace, index: int) -> SyntheticDatabase:
    schema = load_ddl(args.schema) if args.schema else None
    return generate_database(_generator(args.seed, index), schema=schema,
                             max_tables=args.max_tables)


def command_sample(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for index in range(args.n):
        db = _generate(args, index)
        if args.format == "parquet":
            written = write_parquet(db, out / f"db_{index:04d}")
        else:
            written = write_sqlite(db, out / f"db_{index:04d}.sqlite")
        rows = sum(t.n_rows for t in db.tables.values())
        print(f"{written}: {len(db.tables)} tables, {rows} rows")
    return 0


def command_show(args: argparse.Namespace) -> int:
    out = Path(args.out)
    db = _generate(args, 0)
    print(plot_schema(db, out / "schema.png"))
    print(plot_degrees(db, out / "degrees.png"))
    rng = _generator(args.seed, 1)
    for _ in range(20):
        task = sample_task(rng, db, rows=600)
        if task is not None:
            frame = linearize_task(db, task, max_depth=args.depth)
            break
    else:
        print("no task could be drawn on this database; correlation.png skipped")
        return 0
    print(plot_correlation(encode_frame(frame)[0], [str(c) for c in frame.columns],
                           out / "correlation.png"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m priors",
                                     description="Synthetic relational databases.")
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="write synthetic databases")
    sample.add_argument("--n", type=int, default=1, help="number of databases")
    sample.add_argument("--format", choices=FORMATS, default="parquet")
    show = commands.add_parser("show", help="write PNGs of one synthetic database")
    show.add_argument("--depth", type=int, choices=(1, 2), default=1, help="DFS depth")
    for command in (sample, show):
        command.add_argument("--out", required=True, help="output folder")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--schema", default=None,
                             help="SQL DDL file to fill instead of a sampled schema")
        command.add_argument("--max-tables", type=int, default=MAX_TABLES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "n", 1) < 1:
        raise SystemExit(f"--n must be >= 1, got {args.n}")
    return {"sample": command_sample, "show": command_show}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
