"""Predictive queries on the project's real databases, from history alone, backtested.

    python -m eval.backtest                    # Lahman, three times, report in results/backtest
    python -m eval.backtest --at 2005-01-01 --estimators 1

For each query, :func:`rdbpfn.backtest` predicts at past times with context labels taken
from the database's own history before each time (no hand-made labels), and scores the
predictions against the true outcome, the obvious heuristic (activity in the last window of
the same length) and a gradient-boosted tree model on the same features and context rows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from eval.databases import lahman
from rdbpfn.atomic import atomic_write_text
from rdbpfn.forecast import backtest

QUERIES = {
    "lahman/bats-next-season": (
        lahman, "PREDICT COUNT(batting.*, 0, 12, months) > 0 FOR EACH people.playerID"),
    "lahman/pitches-next-season": (
        lahman, "PREDICT COUNT(pitching.*, 0, 12, months) > 0 FOR EACH people.playerID"),
}
"""Query name -> (database loader, query text): tasks of the form "activity in a window"."""

DEFAULT_TIMES = ("2000-01-01", "2005-01-01", "2010-01-01")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.backtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", nargs="+", choices=sorted(QUERIES), default=list(QUERIES))
    parser.add_argument("--at", nargs="+", default=list(DEFAULT_TIMES),
                        help="times to predict at (default: %(default)s)")
    parser.add_argument("--estimators", type=int, default=4, help="ensemble members")
    parser.add_argument("--context-rows", type=int, default=1024)
    parser.add_argument("--out", default="results/backtest", help="report folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tables = []
    for name in args.queries:
        load, query = QUERIES[name]
        summary = backtest(load(), query, args.at, out=Path(args.out) / name.replace("/", "-"),
                           n_estimators=args.estimators, context_rows=args.context_rows,
                           random_state=args.seed, verbose=False)
        summary.insert(0, "query", name)
        print(summary.to_string(index=False), flush=True)
        tables.append(summary)
    merged = pd.concat(tables, ignore_index=True)
    atomic_write_text(Path(args.out) / "summary.csv", merged.to_csv(index=False))
    auc = [c for c in merged.columns if c.endswith("_auc")]
    print("\nmean over queries and times:\n" + merged[auc].mean().round(3).to_string(),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
