"""DFS speed: rdbpfn's vectorized engine vs featuretools 1.31, side by side in one process.

    python -m eval.dfs_speed            # all three cases (~10-20 min, mostly featuretools)
    python -m eval.dfs_speed --quick    # smaller featuretools samples (~3 min)

Cases (depth 2, the paper's primitives mean/sum/max/min/count/mode, no windows; the time-aware
vocabulary and memory at scale are measured by ``python -m eval.dfs_scale``):

(a) a synthetic 5-table shop database (users, products, stores, orders, items; a few
    thousand rows per table), 600 users, no cutoffs;
(b) the same 600 users, each with its own cutoff (600 distinct cutoff times);
(c) Lahman (``eval.databases.lahman``): 2,000 player-seasons (players who batted in a
    season 1980-2023), cutoff Jan 1 of the next season.

Timings: vectorized = median of several runs, each on a *new* Database object (no cached
sort orders or codes: what the synthetic prior pays); "warm" = the same database again.
featuretools = one run of ``linearize(engine="featuretools")`` (EntitySet + ``ft.dfs``).
featuretools' cost grows linearly with the number of distinct cutoffs (it recomputes
everything once per cutoff), so where running it on every request takes too long it runs
on all the requests of a subset of the cutoffs -- (b): 60 of the 600 (one request each),
(c): 3 of the 44 seasons (all ~45 players of each) -- and its time is extrapolated by
(cutoffs in the case / cutoffs in the sample); the table says so. The featuretools sample
is also checked equal to the vectorized output (``differences``, 1e-9 relative). Peak
memory: the largest traced allocation (``tracemalloc``: Python objects + numpy buffers)
during one call on the same requests, measured in a separate run so that tracing does not
slow the timed one.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import resource
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eval.databases import lahman
from rdbpfn.database import Database
from rdbpfn.dfs import PAPER_PRIMITIVES, linearize
from rdbpfn.dfs.featuretools_engine import differences
from rdbpfn.table import Table

SYNTHETIC_ROWS = {"users": 2_000, "products": 1_000, "stores": 300, "orders": 5_000,
                  "items": 8_000}
"""Rows per table of the synthetic benchmark database."""

VOCABULARY = {"primitives": PAPER_PRIMITIVES, "windows": ()}
"""What these cases compute: the paper's linearization (comparable across versions)."""
TARGET_ROWS = 600
LAHMAN_ROWS = 2_000
LAHMAN_SEASONS = (1980, 2023)
VECTORIZED_REPEATS = 5
BARS = {"a": ("ratio", 20.0), "b": ("ratio", 100.0), "c": ("seconds", 30.0)}
"""Targets: (a) >= 20x, (b) >= 100x faster than featuretools; (c) vectorized < 30 s."""


def synthetic_database(seed: int = 0, rows: dict[str, int] | None = None) -> Database:
    """A random 5-table shop: users <- orders -> stores, orders <- items -> products.

    Numeric, categorical, boolean columns, NaNs, timestamps on users, orders and items.
    """
    sizes = dict(SYNTHETIC_ROWS, **(rows or {}))
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp("2015-01-01")

    def times(n: int) -> pd.Series:
        return origin + pd.to_timedelta(np.sort(rng.integers(0, 3_000, n)), "D")

    nu, npr, ns, no, ni = (sizes[t] for t in ("users", "products", "stores", "orders", "items"))
    users = pd.DataFrame({
        "user_id": np.arange(nu), "age": rng.normal(40, 12, nu).round(),
        "income": rng.lognormal(10, 1, nu), "country": rng.choice([f"c{i}" for i in range(12)], nu),
        "premium": rng.random(nu) < 0.2, "signup": times(nu)})
    products = pd.DataFrame({
        "product_id": np.arange(npr), "price": rng.lognormal(3, 1, npr),
        "weight": rng.gamma(2, 2, npr), "category": rng.choice([f"k{i}" for i in range(25)], npr)})
    stores = pd.DataFrame({
        "store_id": np.arange(ns), "size": rng.integers(50, 500, ns).astype(float),
        "region": rng.choice(list("NESW"), ns)})
    orders = pd.DataFrame({
        "order_id": np.arange(no), "user_id": rng.integers(0, nu, no),
        "store_id": rng.integers(0, ns, no), "amount": rng.gamma(2, 30, no),
        "channel": rng.choice(["web", "app", "phone"], no), "ordered_at": times(no)})
    items = pd.DataFrame({
        "item_id": np.arange(ni), "order_id": rng.integers(0, no, ni),
        "product_id": rng.integers(0, npr, ni), "quantity": rng.integers(1, 6, ni).astype(float),
        "discount": np.where(rng.random(ni) < 0.3, np.nan, rng.random(ni))})
    items["shipped_at"] = (orders["ordered_at"].to_numpy()[items["order_id"]]
                           + pd.to_timedelta(rng.integers(0, 10, ni), "D"))
    return Database({
        "users": Table(users, "user_id", time_column="signup"),
        "products": Table(products, "product_id"),
        "stores": Table(stores, "store_id"),
        "orders": Table(orders, "order_id", {"user_id": "users", "store_id": "stores"},
                        "ordered_at"),
        "items": Table(items, "item_id", {"order_id": "orders", "product_id": "products"},
                       "shipped_at"),
    })


def fresh(db: Database) -> Database:
    """The same data in new Table/Database objects: every cache empty."""
    return Database({name: Table(t.df, t.primary_key, t.foreign_keys, t.time_column)
                     for name, t in db.tables.items()}, validate=False)


@dataclass
class Request:
    """One benchmark case: what to linearize."""

    case: str
    title: str
    db: Database
    target: str
    ids: np.ndarray
    cutoffs: Any  # None or (n,) datetimes


@dataclass
class Result:
    case: str
    title: str
    rows: int
    features: int
    vectorized_s: float
    warm_s: float
    vectorized_mb: float
    featuretools_s: float | None = None
    featuretools_note: str = ""
    featuretools_mb: float | None = None
    equal: str = "-"


def _seconds(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _peak_mb(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _subset(request: Request, rows: np.ndarray) -> tuple[np.ndarray, Any]:
    cutoffs = None if request.cutoffs is None else np.asarray(request.cutoffs)[rows]
    return request.ids[rows], cutoffs


def _n_cutoffs(cutoffs: Any) -> int:
    return 1 if cutoffs is None else len(pd.unique(np.asarray(cutoffs)))


def run_case(request: Request, featuretools_rows: np.ndarray | None, repeats: int) -> Result:
    """Time both engines on a request; featuretools on ``featuretools_rows`` (None: skip)."""
    def vectorized(db: Database, rows: np.ndarray | None = None) -> pd.DataFrame:
        ids, cutoffs = (request.ids, request.cutoffs) if rows is None else _subset(request, rows)
        return linearize(db, request.target, ids, cutoffs, max_depth=2, engine="vectorized",
                         **VOCABULARY)

    cold = [_seconds(lambda: vectorized(fresh(request.db))) for _ in range(repeats)]
    warm_db = fresh(request.db)
    frame = vectorized(warm_db)
    warm = [_seconds(lambda: vectorized(warm_db)) for _ in range(repeats)]
    result = Result(request.case, request.title, len(request.ids), frame.shape[1],
                    float(np.median(cold)), float(np.median(warm)),
                    _peak_mb(lambda: vectorized(fresh(request.db))))
    if featuretools_rows is None:
        result.featuretools_note = "not run"
        return result
    ids, cutoffs = _subset(request, featuretools_rows)
    output: dict[str, pd.DataFrame] = {}

    def reference() -> None:
        output["ft"] = linearize(request.db, request.target, ids, cutoffs, max_depth=2,
                                 engine="featuretools", **VOCABULARY)

    seconds = _seconds(reference)
    found = differences(vectorized(warm_db, featuretools_rows), output["ft"])
    result.equal = "yes" if not found else f"NO: {found[0]}"
    sample_cutoffs, all_cutoffs = _n_cutoffs(cutoffs), _n_cutoffs(request.cutoffs)
    if len(featuretools_rows) == len(request.ids):
        result.featuretools_s = seconds
        result.featuretools_note = "measured"
    else:
        result.featuretools_s = seconds * all_cutoffs / sample_cutoffs
        result.featuretools_note = (f"extrapolated: {seconds:.1f} s on {len(ids)} rows with "
                                    f"{sample_cutoffs} cutoffs, x {all_cutoffs}/{sample_cutoffs}")
    result.featuretools_mb = _peak_mb(reference)
    return result


def synthetic_requests(seed: int) -> list[Request]:
    db = synthetic_database(seed)
    rng = np.random.default_rng(seed + 1)
    ids = rng.choice(SYNTHETIC_ROWS["users"], TARGET_ROWS, replace=False)
    seconds = rng.choice(3_000 * 86_400, TARGET_ROWS, replace=False)
    cutoffs = (pd.Timestamp("2015-01-01") + pd.to_timedelta(np.sort(seconds), "s")).to_numpy()
    return [
        Request("a", "synthetic 5 tables, no cutoffs", db, "users", ids, None),
        Request("b", "synthetic 5 tables, 600 distinct cutoffs", db, "users", ids, cutoffs),
    ]


def lahman_request(seed: int) -> Request:
    db = lahman()
    batting = db["batting"].df
    lo, hi = LAHMAN_SEASONS
    seasons = batting.loc[batting["yearID"].between(lo, hi), ["playerID", "yearID"]]
    seasons = seasons.drop_duplicates().reset_index(drop=True)
    rng = np.random.default_rng(seed)
    chosen = seasons.iloc[np.sort(rng.choice(len(seasons), LAHMAN_ROWS, replace=False))]
    cutoffs = pd.to_datetime(pd.DataFrame({"year": chosen["yearID"] + 1, "month": 1, "day": 1}))
    return Request("c", f"Lahman player-seasons {lo}-{hi}, cutoff Jan 1 next season", db,
                   "people", chosen["playerID"].to_numpy(), cutoffs.to_numpy())


def _sample_by_cutoff(request: Request, n_cutoffs: int) -> np.ndarray:
    """All rows of ``n_cutoffs`` distinct cutoffs spread over the range: a featuretools
    sample with the same rows per cutoff as the whole case, so that its time extrapolates
    by the number of cutoffs."""
    cutoffs = np.asarray(request.cutoffs)
    distinct = np.unique(cutoffs)
    picked = distinct[np.linspace(0, len(distinct) - 1, n_cutoffs).round().astype(int)]
    return np.flatnonzero(np.isin(cutoffs, picked))


HEADER = (f"{'case':<4} {'rows':>5} {'feats':>5} {'vectorized':>11} {'warm':>9} "
          f"{'featuretools':>13} {'ratio':>8} {'peak MB vec':>11} {'peak MB ft':>10} "
          f"{'equal':>5}  what; featuretools timing")


def format_row(r: Result) -> str:
    """One line of the results table (see ``HEADER``)."""
    ft = "-" if r.featuretools_s is None else f"{r.featuretools_s:11.2f} s"
    ratio = "-" if r.featuretools_s is None else f"{r.featuretools_s / r.vectorized_s:7.0f}x"
    ft_mb = "-" if r.featuretools_mb is None else f"{r.featuretools_mb:10.1f}"
    return (f"({r.case}) {r.rows:>5} {r.features:>5} {r.vectorized_s * 1e3:8.1f} ms "
            f"{r.warm_s * 1e3:6.1f} ms {ft:>13} {ratio:>8} {r.vectorized_mb:11.1f} {ft_mb:>10} "
            f"{r.equal[:5]:>5}  {r.title}; featuretools {r.featuretools_note}")


def check_bars(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        kind, bar = BARS[r.case]
        if kind == "ratio":
            if r.featuretools_s is None:
                lines.append(f"({r.case}) >= {bar:.0f}x: not measured")
                continue
            ratio = r.featuretools_s / r.vectorized_s
            verdict = "PASS" if ratio >= bar else "FAIL"
            lines.append(f"({r.case}) >= {bar:.0f}x faster: {ratio:.0f}x {verdict}")
        else:
            verdict = "PASS" if r.vectorized_s < bar else "FAIL"
            lines.append(f"({r.case}) vectorized < {bar:.0f} s: {r.vectorized_s:.2f} s {verdict}")
        if r.equal not in ("yes", "-"):
            lines.append(f"({r.case}) outputs differ: {r.equal}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.dfs_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller featuretools samples (extrapolated)")
    parser.add_argument("--ft-rows-b", type=int, default=None,
                        help="featuretools requests (distinct cutoffs) in case (b); default "
                             "60, 20 with --quick; 600 = run all")
    parser.add_argument("--skip-lahman", action="store_true", help="run only (a) and (b)")
    parser.add_argument("--no-featuretools-lahman", action="store_true",
                        help="case (c): vectorized only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("featuretools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    ft_rows_b = args.ft_rows_b or (20 if args.quick else 60)

    threads = os.environ.get("OMP_NUM_THREADS", "-")
    print(f"DFS speed, depth 2: rdbpfn vectorized vs featuretools (python "
          f"{platform.python_version()}, {os.cpu_count()} cpus, OMP_NUM_THREADS={threads})")
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    results = []
    case_a, case_b = synthetic_requests(args.seed)
    everything = np.arange(TARGET_ROWS)
    results.append(run_case(case_a, everything, VECTORIZED_REPEATS))
    print(format_row(results[-1]), flush=True)
    sample_b = np.unique(np.linspace(0, TARGET_ROWS - 1, min(ft_rows_b, TARGET_ROWS)).round()
                         .astype(int))
    results.append(run_case(case_b, sample_b, VECTORIZED_REPEATS))
    print(format_row(results[-1]), flush=True)
    if not args.skip_lahman:
        case_c = lahman_request(args.seed)
        ft_rows = None if args.no_featuretools_lahman else _sample_by_cutoff(
            case_c, 1 if args.quick else 3)
        results.append(run_case(case_c, ft_rows, 3))
        print(format_row(results[-1]), flush=True)
    print()
    print("\n".join(check_bars(results)))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {peak_rss:.0f} MB (whole run, featuretools included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
