"""Predictive queries on the project's real databases, from history alone, backtested.

    python -m eval.backtest                    # Lahman, three times, report in results/backtest
    python -m eval.backtest --at 2005-01-01 --estimators 1
    python -m eval.backtest --at 1995-01-01 --max-features 24   # a validation time, a width

For each query, :func:`rdbpfn.backtest` predicts at past times with context labels taken
from the database's own history before each time (no hand-made labels), and scores the
predictions against the true outcome, the obvious heuristic (activity in the last window of
the same length; for a number, "same as the last window") and a gradient-boosted tree model
on the same features and context rows. Yes/no queries are scored by ROC-AUC, numeric ones
by MAE, R^2 and the coverage of the 90% predictive interval; a numeric query needs a
regression checkpoint (``--regression-checkpoint``, else the shipped one) and is skipped
with a note when there is none.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from eval.databases import lahman
from rdbpfn.atomic import atomic_write_text
from rdbpfn.checkpoint import CheckpointNotFoundError, resolve_checkpoint
from rdbpfn.forecast import backtest
from rdbpfn.query import Query

QUERIES = {
    "lahman/bats-next-season": (
        lahman, "PREDICT COUNT(batting.*, 0, 12, months) > 0 FOR EACH people.playerID"),
    "lahman/pitches-next-season": (
        lahman, "PREDICT COUNT(pitching.*, 0, 12, months) > 0 FOR EACH people.playerID"),
    "lahman/games-next-season": (
        lahman, "PREDICT SUM(batting.G, 0, 12, months) FOR EACH people.playerID"),
    "lahman/hits-next-season": (
        lahman, "PREDICT SUM(batting.H, 0, 12, months) FOR EACH people.playerID"),
    "lahman/franchise-wins-next-season": (
        lahman, "PREDICT SUM(teams.W, 0, 12, months) FOR EACH franchises.franchID"),
}
"""Query name -> (database loader, query text): "activity in a window" (yes/no) and "how
much in a window" (a number)."""

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
    parser.add_argument("--regression-checkpoint", default=None,
                        help="weights for numeric queries (default: the shipped ones)")
    parser.add_argument("--max-features", type=int, default=None,
                        help="DFS columns kept per fit (default: the estimator's)")
    parser.add_argument("--no-trend", action="store_true",
                        help="numeric queries: the regressor without its linear trend")
    args = parser.parse_args(argv)
    tables = []
    for name in args.queries:
        load, query = QUERIES[name]
        options = {} if args.max_features is None else {"max_features": args.max_features}
        if Query(query).task == "regression":
            options["linear_trend"] = not args.no_trend
            try:
                options["model_path"] = resolve_checkpoint(args.regression_checkpoint,
                                                           task="regression")
            except CheckpointNotFoundError as error:
                print(f"{name}: skipped, {str(error).splitlines()[0]}", file=sys.stderr)
                continue
        summary = backtest(load(), query, args.at, out=Path(args.out) / name.replace("/", "-"),
                           n_estimators=args.estimators, context_rows=args.context_rows,
                           random_state=args.seed, verbose=False, **options)
        summary.insert(0, "query", name)
        print(summary.to_string(index=False), flush=True)
        tables.append(summary)
    if not tables:
        return 1
    merged = pd.concat(tables, ignore_index=True)
    atomic_write_text(Path(args.out) / "summary.csv", merged.to_csv(index=False))
    scores = [c for c in merged.columns if c.endswith(("_auc", "_mae", "_r2", "_90"))]
    print("\nmean over queries and times:\n" + merged[scores].mean().round(3).to_string(),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
