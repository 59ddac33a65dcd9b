"""DFS features for a task: computed once with ``rdbpfn.linearize``, cached on disk.

Which rows are featurised (the *pool*): the whole task is often larger than the protocol
needs (a 1,024-row context from the train split, a 2,000-row test sample), so each split is
subsampled uniformly once, with a seed derived from the task name: at most
``max_train_rows`` train rows, ``max_val_rows`` val rows and ``max_test_rows`` test rows. A
uniform k-subset of a uniform subset of the train split is a uniform k-subset of the split,
so contexts drawn from the pool follow the paper's protocol. Pool rows are stored per split
in that random order; "the first n test rows" is therefore a uniform sample too.

What is cached: every DFS column (``max_depth`` 2, the paper's primitives mean, sum, max,
min, count, mode and no recent windows: the protocol the shipped checkpoint is measured on;
``FeatureSpec(primitives=DEFAULT_PRIMITIVES, windows=DEFAULT_WINDOWS)`` gives the full
vocabulary) for every pool row, encoded by :func:`rdbpfn.encoding.encode_frame` -- the encoding the
classifier and the prior use: float64 with NaN for missing and +-inf kept, categorical
columns as ordinal codes of their sorted values (flagged in ``TaskFeatures.categorical``),
booleans 0/1, datetimes and timedeltas as seconds.

Feature budget (per draw, :meth:`TaskFeatures.select`): at most ``max_features``
(``FEATURE_BUDGET`` = 100, the shipped model's width) columns, chosen by
``rdbpfn.dfs.select_features`` from the CONTEXT rows only: constant and duplicate columns
dropped, columns ranked by their association with the context labels (``use_labels``; else
DFS order, shallow first), greedy removal of columns correlated >= ``correlation_limit``
(0.95) with a kept one. Test rows and other labels are never looked at, so every method sees
exactly what a user with k labelled rows would have. Same selection for every method.

The cache file name holds a sha256 of the task definition (entities, cutoffs, labels, split,
database version), the DFS/pool settings, ``FEATURES_VERSION``, the DFS engine's source and
the encoding's source (``rdbpfn/encoding.py``), so any change recomputes (the budget is
applied after the cache and is not part of the key).
Cache dir: ``$RDBPFN_EVAL_CACHE`` or ``.cache/eval``; files are written with
:func:`rdbpfn.atomic.atomic_write`, so parallel workers never read half a file.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eval.tasks import SPLITS, Task, stable_seed
from rdbpfn.atomic import atomic_write, atomic_write_json
from rdbpfn.dfs import PAPER_PRIMITIVES, select_features
from rdbpfn.dfs import linearize as default_linearize
from rdbpfn.encoding import encode_frame

FEATURE_BUDGET = 100
"""Default columns per draw (``FeatureSpec.max_features``): ``ModelConfig.max_features``."""
CORRELATION_LIMIT = 0.95
"""Default |Spearman| at which a column counts as a copy (``rdbpfn.dfs`` budget default)."""
MAX_TRAIN_ROWS = 8192
MAX_VAL_ROWS = 2048
MAX_TEST_ROWS = 2000
"""The paper's fixed test sample: at most 2,000 test rows per task."""
LINEARIZE_CHUNK_ROWS = 4096
"""Rows per ``linearize`` call (sorted by cutoff), so that progress can be shown."""
FEATURES_VERSION = 3
"""Bump when this module's cached output for the same inputs changes (invalidates caches)."""
CACHE_ENV = "RDBPFN_EVAL_CACHE"
DEFAULT_CACHE_DIR = Path(".cache") / "eval"
_BUDGET_FIELDS = ("max_features", "correlation_limit", "use_labels")

Linearize = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class FeatureSpec:
    """DFS and pool settings (cache key) and the per-draw feature budget (not in the key)."""

    max_depth: int = 2
    primitives: tuple[str, ...] = PAPER_PRIMITIVES
    windows: tuple[str, ...] = ()
    max_train_rows: int = MAX_TRAIN_ROWS
    max_val_rows: int = MAX_VAL_ROWS
    max_test_rows: int = MAX_TEST_ROWS
    engine: str = "auto"
    max_features: int = FEATURE_BUDGET
    correlation_limit: float = CORRELATION_LIMIT
    use_labels: bool = True

    def __post_init__(self) -> None:
        for name in ("max_features", "max_train_rows", "max_val_rows", "max_test_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureSpec.{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_depth < 0:
            raise ValueError(f"FeatureSpec.max_depth must be >= 0, got {self.max_depth}.")
        if not 0.0 < self.correlation_limit <= 1.0:
            raise ValueError("FeatureSpec.correlation_limit must be in (0, 1], got "
                             f"{self.correlation_limit}.")

    def cache_fields(self) -> dict[str, Any]:
        """The settings that change the cached matrix (all but the budget)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if name not in _BUDGET_FIELDS}


@dataclass(frozen=True)
class TaskFeatures:
    """Featurised pool of one task. Arrays have one entry per pool row (n rows).

    ``X`` float64 (n, P) with NaN for missing and +-inf kept, all DFS columns
    (:func:`rdbpfn.encoding.encode_frame`); ``categorical`` bool (P,);
    ``y`` int8 (n,); ``split`` str (n,); ``task_rows`` int64 (n,): index of each pool row in
    the task's arrays. Rows of each split appear in a fixed random order.
    """

    task: str
    X: np.ndarray
    y: np.ndarray
    split: np.ndarray
    task_rows: np.ndarray
    columns: list[str]
    categorical: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def rows(self, split: str) -> np.ndarray:
        """Indices into ``X`` of the pool rows in ``split`` (in stored order)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        return np.flatnonzero(self.split == split)

    def select(self, context: np.ndarray, spec: FeatureSpec | None = None) -> np.ndarray:
        """Budgeted column indices (int64, sorted) chosen from the context rows only.

        ``context``: indices into ``X`` of the context rows, shape (k,). Uses their labels
        when ``spec.use_labels`` (default), nothing else.
        """
        spec = spec or FeatureSpec()
        frame = pd.DataFrame(self.X[context], columns=range(len(self.columns)))
        for index in np.flatnonzero(self.categorical):
            codes = frame[index].to_numpy()
            present = ~np.isnan(codes)
            integer = np.where(present, codes, -1).astype(np.int64)
            frame[index] = pd.Categorical.from_codes(integer, range(max(integer.max() + 1, 1)))
        labels = self.y[context].astype(np.int64) if spec.use_labels else None
        kept = select_features(frame, spec.max_features, labels, spec.correlation_limit)
        return np.asarray(sorted(kept), dtype=np.int64)


def cache_dir_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Resolved cache directory: argument > ``$RDBPFN_EVAL_CACHE`` > ``.cache/eval``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR))


def pool_rows(task: Task, spec: FeatureSpec) -> np.ndarray:
    """Task-row indices (int64) of the pool: per split a seeded uniform subsample, in order."""
    limits = {"train": spec.max_train_rows, "val": spec.max_val_rows,
              "test": spec.max_test_rows}
    parts = []
    for split in SPLITS:
        rng = np.random.default_rng(stable_seed(task.database, task.name, "pool", split))
        rows = task.rows(split)
        parts.append(rng.permutation(rows)[: limits[split]])
    return np.concatenate(parts).astype(np.int64)


def _engine_version(linearize: Linearize) -> str:
    """Identity of the DFS engine for the cache key: its package's source hash."""
    module = inspect.getmodule(linearize)
    name = f"{getattr(linearize, '__module__', '?')}.{getattr(linearize, '__qualname__', '?')}"
    digest = hashlib.sha256()
    try:
        path = Path(inspect.getfile(module)) if module else None
    except TypeError:
        path = None
    if path is not None:
        sources = sorted(path.parent.glob("*.py")) if path.parent.name == "dfs" else [path]
        schema = [path.parent.parent / name for name in ("database.py", "table.py")]
        for source in [*sources, *(file for file in schema if file.exists())]:
            digest.update(source.read_bytes())
    return f"{name}:{digest.hexdigest()[:16]}"


def _encoding_version() -> str:
    """Identity of the frame-to-matrix encoding for the cache key: its source hash."""
    source = Path(inspect.getfile(encode_frame)).read_bytes()
    return hashlib.sha256(source).hexdigest()[:16]


def cache_key(task: Task, spec: FeatureSpec, linearize: Linearize) -> str:
    """sha256 of everything the cached features depend on."""
    payload = json.dumps(
        {"task": task.fingerprint(), "spec": spec.cache_fields(), "version": FEATURES_VERSION,
         "engine": _engine_version(linearize), "encoding": _encoding_version()},
        sort_keys=True, default=list,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _linearize_pool(task: Task, rows: np.ndarray, spec: FeatureSpec, linearize: Linearize,
                    verbose: bool) -> pd.DataFrame:
    database = task.get_database()
    by_time = rows[np.argsort(task.cutoff_times[rows], kind="stable")]
    chunks = [by_time[i : i + LINEARIZE_CHUNK_ROWS]
              for i in range(0, len(by_time), LINEARIZE_CHUNK_ROWS)]
    frames = []
    for chunk in tqdm(chunks, desc=f"DFS {task.full_name}", disable=not verbose, leave=False):
        frame = linearize(
            database, task.target_table, task.entity_ids[chunk],
            cutoff_times=pd.DatetimeIndex(task.cutoff_times[chunk]),
            max_depth=spec.max_depth, primitives=spec.primitives, windows=spec.windows,
            engine=spec.engine,
        )
        if len(frame) != len(chunk):
            raise ValueError(f"linearize returned {len(frame)} rows for {len(chunk)} requested "
                             f"(task {task.full_name}); it must return one row per request.")
        frame.index = chunk
        frames.append(frame)
    return pd.concat(frames, axis=0, sort=False).reindex(rows)


def task_features(
    task: Task,
    spec: FeatureSpec | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    linearize: Linearize | None = None,
    verbose: bool = True,
    refresh: bool = False,
) -> TaskFeatures:
    """Features of ``task``'s pool, from the disk cache or computed (then cached).

    ``linearize`` defaults to ``rdbpfn.dfs.linearize`` (tests pass a fake). ``refresh``
    recomputes even if cached.
    """
    spec = spec or FeatureSpec()
    linearize = linearize or default_linearize
    directory = cache_dir_path(cache_dir)
    key = cache_key(task, spec, linearize)
    stem = f"{task.database}_{task.name}_{key[:20]}"
    path_npz, path_json = directory / f"{stem}.npz", directory / f"{stem}.json"
    if path_npz.exists() and path_json.exists() and not refresh:
        with np.load(path_npz, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        info = json.loads(path_json.read_text())
        return TaskFeatures(task.full_name, arrays["X"], arrays["y"], arrays["split"],
                            arrays["task_rows"], list(info["columns"]), arrays["categorical"],
                            info)

    start = time.perf_counter()
    rows = pool_rows(task, spec)
    frame = _linearize_pool(task, rows, spec, linearize, verbose)
    X, categorical = encode_frame(frame)
    columns = [str(name) for name in frame.columns]
    split = task.split[rows]
    info = {"task": task.full_name, "key": key, "columns": columns,
            "n_columns": len(columns), "n_rows": int(len(rows)),
            "seconds": round(time.perf_counter() - start, 3), "spec": spec.cache_fields()}
    features = TaskFeatures(task.full_name, X, task.labels[rows], split, rows, columns,
                            categorical, info)
    atomic_write(path_npz, lambda stream: np.savez(stream, X=X, y=features.y, split=split,
                                                    task_rows=rows, categorical=categorical))
    atomic_write_json(path_json, info, indent=1)
    return features
