"""A probe where the answer is known: targets linear in the columns.

    python -m eval.linear_probe                     # classification and regression
    python -m eval.linear_probe --peer-checkpoint ../shared/peers/rdbpfn-official.pt

Every table has ``p`` standard-normal columns and a target that is a linear function of one
of them (sparse) or of all of them (dense), plus Gaussian noise of 0 or ``NOISE`` standard
deviations of the signal; the classification target is its sign. k context rows, ``TEST_ROWS``
test rows, ``REPEATS`` tables per cell, all seeded. A linear model is the right answer here,
so logistic regression and ridge are the ceiling to measure against, and the gap to it is
how well a model combines many columns additively, which real targets often need (calories
from fat, carbs and protein) and a prior built from sparse causal graphs may never teach.

Classification: RDB-PFN (1 member), the published weights (``--peer-checkpoint``), logistic
regression; ROC-AUC. Regression: RDB-PFN's regressor (1 member) with and without its linear
trend (:mod:`rdbpfn.trend`), ridge; R^2. Writes ``probe.csv`` and prints the mean per cell.
Synthetic data only: nothing here is a benchmark split.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score, roc_auc_score

from eval.tasks import stable_seed
from rdbpfn.atomic import atomic_write_text
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.regressor import RDBPFNRegressor

CELLS = ((8, "sparse"), (8, "dense"), (20, "dense"))
"""(columns, which columns the target uses): one column, or all of them."""
NOISES = (0.0, 0.5)
KS = (64, 256)
TEST_ROWS = 1000
REPEATS = 3


def draw_table(p: int, kind: str, noise: float, n_rows: int, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """X (n, p) standard normal and the linear signal plus noise, standardised: (n,)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, p))
    weights = np.zeros(p)
    used = 1 if kind == "sparse" else p
    weights[:used] = rng.normal(size=used)
    signal = X @ weights
    signal = signal / signal.std()
    return X, signal + noise * rng.normal(size=n_rows)


Maker = Callable[[int], Any]


def methods(task: str, checkpoint: str | None, regression_checkpoint: str | None,
            peer: str | None) -> dict[str, Maker]:
    """Method name -> ``make(seed)`` of a fresh estimator for ``task``."""
    if task == "classification":
        out: dict[str, Maker] = {
            "rdbpfn": lambda seed: RDBPFNClassifier(model_path=checkpoint, n_estimators=1,
                                                    random_state=seed)}
        if peer is not None:
            out["rdbpfn-peer"] = lambda seed: RDBPFNClassifier(model_path=peer, n_estimators=1,
                                                               random_state=seed)
        out["logreg"] = lambda seed: LogisticRegression(max_iter=1000)
        return out
    return {
        "rdbpfn": lambda seed: RDBPFNRegressor(model_path=regression_checkpoint,
                                               n_estimators=1, random_state=seed),
        "rdbpfn-no-trend": lambda seed: RDBPFNRegressor(
            model_path=regression_checkpoint, n_estimators=1, random_state=seed,
            linear_trend=False),
        "ridge": lambda seed: RidgeCV(alphas=np.logspace(-3, 3, 13)),
    }


def run(tasks: Sequence[str], checkpoint: str | None = None,
        regression_checkpoint: str | None = None, peer: str | None = None,
        ks: Sequence[int] = KS, repeats: int = REPEATS) -> pd.DataFrame:
    """One row per (task, cell, noise, k, repeat, method) with its ``score``."""
    records = []
    for task in tasks:
        candidates = methods(task, checkpoint, regression_checkpoint, peer)
        for p, kind in CELLS:
            for noise in NOISES:
                for k in ks:
                    for repeat in range(repeats):
                        seed = stable_seed("linear-probe", task, p, kind, noise, k, repeat)
                        X, value = draw_table(p, kind, noise, k + TEST_ROWS, seed)
                        y = (value > 0).astype(np.int64) if task == "classification" else value
                        for name, make in candidates.items():
                            model = make(seed % 2**31).fit(X[:k], y[:k])
                            if task == "classification":
                                score = roc_auc_score(y[k:], model.predict_proba(X[k:])[:, 1])
                            else:
                                score = r2_score(y[k:], model.predict(X[k:]))
                            records.append({"task": task, "columns": p, "kind": kind,
                                            "noise": noise, "k": k, "repeat": repeat,
                                            "method": name, "score": float(score)})
    return pd.DataFrame.from_records(records)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean score per cell (rows) and method (columns)."""
    cells = ["task", "columns", "kind", "noise", "k"]
    return results.pivot_table(index=cells, columns="method", values="score", aggfunc="mean")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.linear_probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=["classification", "regression"],
                        default=["classification", "regression"])
    parser.add_argument("--checkpoint", default=None, help="classifier weights (default ours)")
    parser.add_argument("--regression-checkpoint", default=None,
                        help="regressor weights (default ours)")
    parser.add_argument("--peer-checkpoint", default=None,
                        help="published RDB-PFN weights to compare (a path you give)")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--out", default=os.path.join("results", "linear_probe"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run(args.tasks, args.checkpoint, args.regression_checkpoint,
                  args.peer_checkpoint, repeats=args.repeats)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "probe.csv", results.to_csv(index=False))
    print(summarize(results).round(3).to_string())
    print(f"wrote {out}/probe.csv in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
