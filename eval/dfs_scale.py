"""DFS at scale: time and peak memory of each engine as rows and targets grow.

    python -m eval.dfs_scale                      # hub and many-to-many, three sizes each
    python -m eval.dfs_scale --cases hub-1m       # one case
    python -m eval.dfs_scale --engines vectorized featuretools

Two generated databases (seeded, nothing downloaded):

- **hub**: 10 stores, customers with about 20 orders each, orders over two years (orders ->
  stores, orders -> customers). Targets: orders at their own times, depth 2. Every target
  reaches its store's whole history, so a store-level aggregate sees up to n / 10 orders:
  the fan-out that a naive engine multiplies by the number of targets.
- **many-to-many**: users <- purchases -> products. Targets: users at cutoffs, depth 3, so
  a user's features go through the products they bought to everyone else who bought them
  (``MEAN(purchases.products.COUNT(purchases))``).

Every (engine, case) runs in a fresh process (``python -m eval.dfs_scale --one ...``) that
builds the database, computes the features and reports its wall time and its peak RSS
(``ru_maxrss``: the database, the engine and the interpreter together). featuretools runs on
a sample of the targets (``--featuretools-targets``) and its output is checked equal to the
vectorized engine's on the same sample.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.dfs import linearize
from rdbpfn.dfs.featuretools_engine import differences
from rdbpfn.table import Table

ORIGIN = pd.Timestamp("2022-01-01")
SPAN_DAYS = 730
FEATURETOOLS_TARGETS = 20
PEAK_RSS_BAR_MB = 2048
"""The hub database with 1M orders and 3,000 targets must stay under this (issue bar)."""


@dataclass(frozen=True)
class Case:
    """One database size and its targets."""

    name: str
    kind: str  # "hub" | "m2m"
    rows: int  # orders (hub) or purchases (many-to-many)
    targets: int

    @property
    def depth(self) -> int:
        """DFS depth: 2 for the hub, 3 for many-to-many (to reach the other side)."""
        return 2 if self.kind == "hub" else 3


CASES = {
    case.name: case
    for case in (
        Case("hub-100k", "hub", 100_000, 1_000),
        Case("hub-300k", "hub", 300_000, 1_000),
        Case("hub-1m", "hub", 1_000_000, 3_000),
        Case("m2m-100k", "m2m", 100_000, 1_000),
        Case("m2m-300k", "m2m", 300_000, 1_000),
        Case("m2m-1m", "m2m", 1_000_000, 1_000),
    )
}
ENGINES = ("vectorized", "duckdb", "featuretools")


def _times(rng: np.random.Generator, n: int) -> pd.Series:
    seconds = np.sort(rng.integers(0, SPAN_DAYS * 86_400, n))
    return pd.Series(ORIGIN + pd.to_timedelta(seconds, unit="s"))


def hub_database(n_orders: int, seed: int = 0) -> Database:
    """10 stores <- orders -> customers (about 20 orders each), orders over two years."""
    rng = np.random.default_rng(seed)
    n_customers = max(1, n_orders // 20)
    stores = pd.DataFrame({"store_id": np.arange(10), "size": rng.integers(50, 500, 10) * 1.0,
                           "region": rng.choice(list("NESW"), 10)})
    customers = pd.DataFrame({
        "customer_id": np.arange(n_customers), "segment": rng.choice(["a", "b", "c"], n_customers),
        "signup": ORIGIN - pd.to_timedelta(rng.integers(0, 365, n_customers), unit="D")})
    orders = pd.DataFrame({
        "order_id": np.arange(n_orders),
        "store_id": rng.integers(0, 10, n_orders),
        "customer_id": rng.integers(0, n_customers, n_orders),
        "amount": rng.gamma(2.0, 30.0, n_orders),
        "channel": pd.Categorical(rng.choice(["web", "app", "phone"], n_orders)),
        "gift": rng.random(n_orders) < 0.1,
        "at": _times(rng, n_orders),
    })
    return Database({
        "stores": Table(stores, "store_id"),
        "customers": Table(customers, "customer_id", time_column="signup"),
        "orders": Table(orders, "order_id", {"store_id": "stores", "customer_id": "customers"},
                        "at"),
    }, validate=False)


def m2m_database(n_purchases: int, seed: int = 0) -> Database:
    """users <- purchases -> products, purchases over two years."""
    rng = np.random.default_rng(seed)
    n_users, n_products = max(1, n_purchases // 25), max(1, n_purchases // 200)
    users = pd.DataFrame({"user_id": np.arange(n_users), "age": rng.normal(40, 12, n_users)})
    products = pd.DataFrame({"product_id": np.arange(n_products),
                             "price": rng.lognormal(3, 1, n_products),
                             "category": rng.choice([f"k{i}" for i in range(20)], n_products)})
    popularity = rng.zipf(1.6, n_purchases) % n_products
    purchases = pd.DataFrame({
        "purchase_id": np.arange(n_purchases),
        "user_id": rng.integers(0, n_users, n_purchases),
        "product_id": popularity,
        "quantity": rng.integers(1, 5, n_purchases) * 1.0,
        "at": _times(rng, n_purchases),
    })
    return Database({
        "users": Table(users, "user_id"),
        "products": Table(products, "product_id"),
        "purchases": Table(purchases, "purchase_id",
                           {"user_id": "users", "product_id": "products"}, "at"),
    }, validate=False)


def requests(case: Case, db: Database, seed: int = 0) -> tuple[str, np.ndarray, pd.Series]:
    """(target table, entity ids, cutoffs) of a case."""
    rng = np.random.default_rng(seed + 1)
    if case.kind == "hub":
        orders = db["orders"].df
        rows = np.sort(rng.choice(len(orders), case.targets, replace=False))
        return "orders", orders["order_id"].to_numpy()[rows], orders["at"].iloc[rows]
    users = db["users"].df["user_id"].to_numpy()
    ids = rng.choice(users, case.targets, replace=True)
    cutoffs = pd.Series(ORIGIN + pd.to_timedelta(rng.integers(60, SPAN_DAYS, case.targets),
                                                 unit="D"))
    return "users", ids, cutoffs


def build(case: Case, seed: int = 0) -> Database:
    return (hub_database if case.kind == "hub" else m2m_database)(case.rows, seed)


def run_one(case: Case, engine: str, featuretools_targets: int, seed: int = 0) -> dict:
    """Build the case's database and compute its features with one engine, in this process."""
    db = build(case, seed)
    target, ids, cutoffs = requests(case, db, seed)
    if engine == "featuretools":
        ids, cutoffs = ids[:featuretools_targets], cutoffs.iloc[:featuretools_targets]
    start = time.perf_counter()
    frame = linearize(db, target, ids, cutoffs.to_numpy(), max_depth=case.depth, engine=engine)
    seconds = time.perf_counter() - start
    result = {"case": case.name, "engine": engine, "targets": len(ids),
              "features": frame.shape[1], "seconds": seconds,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if engine == "featuretools":
        ours = linearize(db, target, ids, cutoffs.to_numpy(), max_depth=case.depth,
                         engine="vectorized")
        found = differences(ours, frame)
        result["equal_to_vectorized"] = "yes" if not found else found[0]
    return result


def _in_subprocess(case: str, engine: str, featuretools_targets: int, seed: int) -> dict:
    command = [sys.executable, "-m", "eval.dfs_scale", "--one", case, engine,
               "--featuretools-targets", str(featuretools_targets), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"case": case, "engine": engine, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['case']:<9} {r['engine']:<12} failed: {r['error']}"
    per_target = r["seconds"] / max(r["targets"], 1) * 1e3
    equal = r.get("equal_to_vectorized", "-")
    return (f"{r['case']:<9} {r['engine']:<12} {r['targets']:>7} {r['features']:>5} "
            f"{r['seconds']:>9.2f} {per_target:>9.2f} {r['peak_rss_mb']:>9.0f}  {equal}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.dfs_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--featuretools-targets", type=int, default=FEATURETOOLS_TARGETS,
                        help="targets featuretools computes (a sample; default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("CASE", "ENGINE"),
                        help="run one case with one engine in this process, print JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.one:
        case, engine = args.one
        if case not in CASES or engine not in ENGINES:
            parser.error(f"--one takes a case of {sorted(CASES)} and an engine of {ENGINES}")
        print(json.dumps(run_one(CASES[case], engine, args.featuretools_targets, args.seed)))
        return 0
    threads = os.environ.get("OMP_NUM_THREADS", "-")
    print(f"DFS at scale, hub depth 2, many-to-many depth 3 (python "
          f"{platform.python_version()}, {os.cpu_count()} cpus, OMP_NUM_THREADS={threads}); "
          "one process per row")
    header = (f"{'case':<9} {'engine':<12} {'targets':>7} {'feats':>5} {'seconds':>9} "
              f"{'ms/target':>9} {'peak MB':>9}  equal to vectorized")
    print(header)
    print("-" * len(header), flush=True)
    failed = False
    for case in args.cases:
        for engine in args.engines:
            result = _in_subprocess(case, engine, args.featuretools_targets, args.seed)
            print(format_row(result), flush=True)
            failed |= "error" in result or result.get("equal_to_vectorized", "yes") != "yes"
            if case == "hub-1m" and engine == "vectorized" and "error" not in result:
                verdict = "PASS" if result["peak_rss_mb"] <= PEAK_RSS_BAR_MB else "FAIL"
                print(f"  bar: peak RSS <= {PEAK_RSS_BAR_MB} MB: {verdict}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
