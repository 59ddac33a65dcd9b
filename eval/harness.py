"""The few-shot protocol (paper, Appendix A.3) and the plug-in API :func:`evaluate`.

For every task, seed s in ``seeds`` and context size k in ``ks``:

- the draw seed is ``stable_seed(database, task, s)`` (sha256, identical across runs);
- the context is the first k rows of a seeded permutation of the train split, i.e. k rows
  sampled uniformly without replacement (contexts of one seed are nested across k);
- every method is fitted on that context and scored by ROC-AUC on one fixed test sample
  (the first ``test_rows`` <= 2,000 test rows of the feature pool, same for all draws);
- the feature budget is chosen from the context rows and their labels only
  (:meth:`eval.features.TaskFeatures.select`), the same columns for every method;
- a draw whose context holds one class only is skipped (``status="one_class"``) and so is
  a k larger than the train split (``status="k_exceeds_train"``); both are counted.

``evaluate`` returns one row per (task, method, k, seed); :func:`summarize` turns it into
ROC-AUC mean and standard deviation per (task, method, k), with the skip counts.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from eval.baselines import Method
from eval.features import MAX_TEST_ROWS, FeatureSpec, Linearize, TaskFeatures, task_features
from eval.tasks import Task, stable_seed

KS = (64, 128, 256, 512, 1024)
"""Context sizes of the paper's protocol."""
N_SEEDS = 10
TEST_ROWS = MAX_TEST_ROWS
STATUSES = ("ok", "one_class", "k_exceeds_train", "no_features", "error")

RESULT_COLUMNS = ["database", "task", "method", "k", "seed", "draw_seed", "status", "roc_auc",
                  "accuracy", "fit_s", "predict_s", "n_context_positive", "n_test",
                  "n_features", "error"]


def score_draw(method: Method, X_context: np.ndarray, y_context: np.ndarray,
               X_test: np.ndarray, y_test: np.ndarray, seed: int) -> dict[str, Any]:
    """Fit ``method`` on one context, score the test rows: ROC-AUC, accuracy and timings.

    X_context (k, p), y_context (k,) in {0, 1}, X_test (m, p), y_test (m,) in {0, 1}.
    """
    model = method.make(seed)
    start = time.perf_counter()
    model.fit(X_context, y_context)
    fitted = time.perf_counter()
    proba = np.asarray(model.predict_proba(X_test))
    predicted = time.perf_counter()
    classes = list(getattr(model, "classes_", [0, 1]))
    positive = proba[:, classes.index(1)]
    if not np.isfinite(positive).all():
        raise ValueError(f"{method.name} returned non-finite probabilities.")
    return {"status": "ok", "roc_auc": float(roc_auc_score(y_test, positive)),
            "accuracy": float(((positive >= 0.5) == (y_test == 1)).mean()),
            "fit_s": fitted - start, "predict_s": predicted - fitted}


def _test_rows(features: TaskFeatures, test_rows: int) -> np.ndarray:
    rows = features.rows("test")[:test_rows]
    if len(np.unique(features.y[rows])) < 2:
        raise ValueError(f"{features.task}: the test sample of {len(rows)} rows holds one "
                         "class; ROC-AUC is undefined. Enlarge the test split.")
    return rows


def _run_unit(task: Task, features: TaskFeatures, methods: Sequence[Method], ks: list[int],
              seed: int, test_rows: int, spec: FeatureSpec | None, on_error: str,
              progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """All draws of one (task, seed): every k (nested contexts) and every method."""
    test = _test_rows(features, test_rows)
    X_test, y_test = features.X[test], features.y[test].astype(np.int64)
    train = features.rows("train")
    draw_seed = stable_seed(task.database, task.name, seed)
    order = np.random.default_rng(draw_seed).permutation(train)
    records = []
    for k in ks:
        context = order[:k]
        y_context = features.y[context].astype(np.int64)
        base = {"database": task.database, "task": task.name, "k": k, "seed": seed,
                "draw_seed": draw_seed, "n_context_positive": int(y_context.sum()),
                "n_test": len(test), "n_features": 0}
        status = ("k_exceeds_train" if k > len(train)
                  else "one_class" if len(np.unique(y_context)) < 2 else "ok")
        if status == "ok":
            columns = features.select(context, spec)
            base["n_features"] = len(columns)
            if len(columns) == 0:
                status = "no_features"
        for method in methods:
            if progress is not None:
                progress(f"{task.full_name} k={k} {method.name}")
            record = {**base, "method": method.name, "status": status}
            if status == "ok":
                try:
                    record.update(score_draw(method, features.X[np.ix_(context, columns)],
                                             y_context, X_test[:, columns], y_test, draw_seed))
                except Exception as error:  # noqa: BLE001 - recorded on request
                    if on_error == "raise":
                        raise
                    warnings.warn(f"{method.name} failed on {task.full_name} k={k} "
                                  f"seed={seed}: {error!r}", stacklevel=2)
                    record.update(status="error", error=repr(error))
            records.append(record)
    return records


# Set in the parent before forking workers; the children inherit it (nothing is pickled but
# the unit indices and the result records, so any Method, closures included, works).
_FORKED: dict[str, Any] = {}


def _run_forked_unit(task_index: int, seed: int) -> list[dict[str, Any]]:
    state = _FORKED
    features = task_features(state["tasks"][task_index], spec=state["spec"],
                             cache_dir=state["cache_dir"], linearize=state["linearize"],
                             verbose=False)
    return _run_unit(state["tasks"][task_index], features, state["methods"], state["ks"], seed,
                     state["test_rows"], state["spec"], state["on_error"])


def evaluate(
    tasks: Sequence[Task] | Task,
    methods: Sequence[Method],
    ks: Iterable[int] = KS,
    seeds: Iterable[int] = range(N_SEEDS),
    test_rows: int = TEST_ROWS,
    spec: FeatureSpec | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    linearize: Linearize | None = None,
    on_error: str = "raise",
    workers: int = 1,
    verbose: bool = True,
) -> pd.DataFrame:
    """Run the few-shot protocol for every task x method x k x seed; one row per draw.

    Works for any :class:`eval.tasks.Task`. Features are computed once per task and cached
    (``eval.features.task_features``; ``linearize`` overrides the DFS engine). ``on_error``:
    ``"raise"`` stops at a failing fit, ``"record"`` stores it as ``status="error"`` and
    warns. ``workers`` > 1 runs (task, seed) units in that many forked processes (POSIX);
    results are identical to ``workers=1`` except timings. Columns: ``RESULT_COLUMNS``,
    rows ordered by task, seed, k, method.
    """
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}.")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    tasks = [tasks] if isinstance(tasks, Task) else list(tasks)
    ks, seeds = sorted(set(int(k) for k in ks)), list(seeds)
    if not ks or min(ks) < 2:
        raise ValueError(f"ks must be context sizes >= 2, got {ks}.")
    if not 1 <= test_rows <= (spec or FeatureSpec()).max_test_rows:
        raise ValueError(f"test_rows must be in [1, max_test_rows], got {test_rows}.")
    features = [task_features(task, spec=spec, cache_dir=cache_dir, linearize=linearize,
                              verbose=verbose) for task in tasks]
    for task_features_ in features:
        _test_rows(task_features_, test_rows)  # fail before any draw if a test set is invalid
    units = [(index, seed) for index in range(len(tasks)) for seed in seeds]
    per_unit = len(ks) * len(methods)
    bar = tqdm(total=len(units) * per_unit, desc="few-shot draws", disable=not verbose)
    results: list[list[dict[str, Any]]] = []
    if workers == 1 or len(units) == 1:
        def show(text: str) -> None:
            bar.set_postfix_str(text, refresh=False)
            bar.update(1)

        for index, seed in units:
            results.append(_run_unit(tasks[index], features[index], methods, ks, seed,
                                     test_rows, spec, on_error, show))
    else:
        _FORKED.update(tasks=tasks, methods=list(methods), ks=ks, test_rows=test_rows,
                       spec=spec, cache_dir=cache_dir, linearize=linearize, on_error=on_error)
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = [pool.submit(_run_forked_unit, index, seed) for index, seed in units]
                for (index, seed), future in zip(units, futures, strict=True):
                    results.append(future.result())
                    bar.set_postfix_str(f"{tasks[index].full_name} seed={seed}", refresh=False)
                    bar.update(per_unit)
        finally:
            _FORKED.clear()
    bar.close()
    records = [record for unit in results for record in unit]
    return pd.DataFrame.from_records(records, columns=RESULT_COLUMNS)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """ROC-AUC mean/std (over ok draws, ddof=1) and draw counts per (task, method, k)."""
    keys = [key for key in ("database", "task", "method", "k") if key in results.columns]
    rows = []
    for values, group in results.groupby(keys, sort=False):
        ok = group[group["status"] == "ok"]
        row = dict(zip(keys, values, strict=True))
        row.update(
            roc_auc_mean=ok["roc_auc"].mean() if len(ok) else np.nan,
            roc_auc_std=ok["roc_auc"].std(ddof=1) if len(ok) > 1 else np.nan,
            accuracy_mean=ok["accuracy"].mean() if len(ok) else np.nan,
            n_ok=len(ok),
            n_one_class=int((group["status"] == "one_class").sum()),
            n_k_exceeds_train=int((group["status"] == "k_exceeds_train").sum()),
            n_no_features=int((group["status"] == "no_features").sum()),
            n_error=int((group["status"] == "error").sum()),
            fit_s=ok["fit_s"].mean() if len(ok) else np.nan,
            predict_s=ok["predict_s"].mean() if len(ok) else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows)
