"""A shortcut in the relational prior: an entity's own columns reveal its future events.

    python -m training.shortcuts --databases 60
    python -m training.shortcuts --databases 60 --out results/shortcuts.json

An event task asks whether an entity has child rows in a window after a cutoff ("will this
customer order in the next 30 days?"). The DFS hides the rows after the cutoff from the
aggregates, as it must. But in the paper's content generator an entity's own columns are
generated from its final state, which the foreign-key linker's feedback and the GNN's
child -> parent messages build from all its children, later ones included: the columns of
a customer can encode how many orders it will place. Real databases rarely offer that (a
customer's region is set at sign-up), so a model trained on it learns to trust the
entity's own columns more than real tasks warrant.

For each database (seeded by ``--seed`` and its index) this draws the same schema, links,
times and one ``event_count`` task twice: with the default content and with causal content
(``generate_database(causal_content=True)``: a row's columns never depend on rows after
it). The labels are identical by construction (checked). The task is linearized at depth 1
and a random forest is scored by 5-fold cross-validated ROC-AUC on three column sets: the
entity's own columns, the aggregates of its (visible) children, and all columns. The
difference between the two contents on "own columns" is the shortcut. A third draw adds
entity lifetimes (``entity_lifetimes=1.0``: every entity stops taking children at some
time), which changes the links and so the task: its scores are compared as means only.

``--real`` scores the same three column sets on the benchmark's relational tasks (their
train split only, ``ROWS`` rows drawn with the seed, the eval package's cached DFS
features): how much real entities' own columns tell about their future, for comparison.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from eval.features import task_features
from eval.tasks import get_task, task_names
from priors.relational import generate_database
from priors.tasks import linearize_task, sample_event_task
from rdbpfn.atomic import atomic_write_json
from rdbpfn.encoding import encode_frame

# generate_database keyword arguments per prior variant; the first two draw the same task
VARIANTS = {
    "paper": {},
    "causal": {"causal_content": True},
    "causal + lifetimes": {"causal_content": True, "entity_lifetimes": 1.0},
}
PAIRED = ("paper", "causal")
COLUMN_SETS = ("own", "aggregates", "all")
ROWS = 400
FOLDS = 5
TREES = 100


def column_sets(names: Sequence[str], own: Sequence[str]) -> dict[str, np.ndarray]:
    """Column indices of a depth-1 DFS frame per set: the target table's own columns, the
    aggregates of its children (names with a primitive call, e.g. ``MEAN(t3.t3_num0)``),
    and all columns (parent lookups included)."""
    own = set(own)
    names = list(names)
    return {
        "own": np.array([j for j, name in enumerate(names) if name in own], dtype=np.int64),
        "aggregates": np.array([j for j, name in enumerate(names) if "(" in name],
                               dtype=np.int64),
        "all": np.arange(len(names), dtype=np.int64),
    }


def cross_validated_auc(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """ROC-AUC of a random forest's out-of-fold probabilities; 0.5 without columns."""
    if x.shape[1] == 0:
        return 0.5
    forest = RandomForestClassifier(n_estimators=TREES, min_samples_leaf=2, n_jobs=1,
                                    random_state=seed)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    proba = cross_val_predict(forest, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def measure_database(seed: int, index: int, rows: int = ROWS
                     ) -> dict[str, dict[str, float]] | None:
    """AUC per prior variant and column set on one database's event task of at most
    ``rows`` rows (None: some variant of the database has no usable event task)."""
    out: dict[str, dict[str, float]] = {}
    labels = None
    for variant, kwargs in VARIANTS.items():
        key = (seed, index)
        db = generate_database(np.random.default_rng(key), **kwargs)
        task = sample_event_task(np.random.default_rng((*key, 1)), db, rows)
        if task is None:
            return None
        if variant in PAIRED:
            if labels is not None and not np.array_equal(labels, task.labels):
                raise AssertionError(f"database {key}: the two contents drew different tasks")
            labels = task.labels
        frame = linearize_task(db, task, max_depth=1)
        x, _ = encode_frame(frame)
        sets = column_sets(frame.columns, db.tables[task.target_table].columns)
        out[variant] = {name: cross_validated_auc(x[:, columns], task.labels, seed)
                        for name, columns in sets.items()}
    return out


def measure_real_task(name: str, seed: int, rows: int = ROWS) -> dict[str, float]:
    """AUC per column set on at most ``rows`` train-split rows of a benchmark task (own
    columns: the entity's, without a relationship path or a primitive)."""
    features = task_features(get_task(name), verbose=False)
    pool = features.rows("train")
    rows = np.sort(np.random.default_rng(seed).choice(pool, size=min(rows, pool.size),
                                                      replace=False))
    own = [column for column in features.columns if "(" not in column and "." not in column]
    sets = column_sets(features.columns, own)
    y = features.y[rows].astype(np.int64)
    return {set_name: cross_validated_auc(features.X[np.ix_(rows, columns)], y, seed)
            for set_name, columns in sets.items()}


def summarise(results: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """Mean and standard error per variant and column set, and of the paired difference
    (paper - causal)."""
    summary: dict[str, dict[str, list[float]]] = {}
    for variant in (*VARIANTS, "paper - causal"):
        summary[variant] = {}
        for name in COLUMN_SETS:
            if variant == "paper - causal":
                values = np.array([r["paper"][name] - r["causal"][name] for r in results])
            else:
                values = np.array([r[variant][name] for r in results])
            summary[variant][name] = [float(values.mean()),
                                      float(values.std(ddof=1) / math.sqrt(len(values)))]
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.shortcuts",
        description="How much an entity's own columns reveal about its future events in the "
                    "relational prior (paper, causal content, entity lifetimes) and on real tasks.")
    parser.add_argument("--databases", type=int, default=60,
                        help="databases drawn (those without an event task are skipped)")
    parser.add_argument("--rows", type=int, default=ROWS, help="rows per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", action="store_true",
                        help="also score the benchmark's relational tasks (train split)")
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON")
    args = parser.parse_args(argv)
    if args.databases < 2:
        parser.error(f"--databases must be >= 2, got {args.databases}")
    if args.rows < 4 * FOLDS:
        parser.error(f"--rows must be >= {4 * FOLDS} (5 folds with both classes), "
                     f"got {args.rows}")
    results = [r for index in range(args.databases)
               if (r := measure_database(args.seed, index, args.rows)) is not None]
    if len(results) < 2:
        parser.error(f"only {len(results)} of {args.databases} databases had an event task")
    summary = summarise(results)
    print(f"{len(results)} event tasks ({args.databases} databases), random forest, "
          f"{FOLDS}-fold ROC-AUC, mean +- standard error")
    print("| prior | " + " | ".join(COLUMN_SETS) + " |")
    print("|---|" + "---|" * len(COLUMN_SETS))
    for variant, row in summary.items():
        cells = " | ".join(f"{mean:.3f} +- {se:.3f}" for mean, se in row.values())
        print(f"| {variant} | {cells} |")
    real = {}
    if args.real:
        real = {name: measure_real_task(name, args.seed, args.rows) for name in task_names()}
        print(f"\nbenchmark tasks, train split, {args.rows} rows, the same forest")
        print("| task | " + " | ".join(COLUMN_SETS) + " |")
        print("|---|" + "---|" * len(COLUMN_SETS))
        for name, row in real.items():
            print(f"| {name} | " + " | ".join(f"{row[s]:.3f}" for s in COLUMN_SETS) + " |")
    if args.out is not None:
        atomic_write_json(args.out, {"tasks": len(results), "databases": args.databases,
                                     "rows": args.rows, "seed": args.seed, "summary": summary,
                                     "per_task": results, "real": real})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
