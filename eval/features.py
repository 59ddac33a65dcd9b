"""DFS features for a task: computed once with ``rdbpfn.linearize``, cached on disk.

Which rows are featurised (the *pool*): the whole task is often larger than the protocol
needs (a 1,024-row context from the train split, a 2,000-row test sample), so each split is
subsampled uniformly once, with a seed derived from the task name: at most
``max_train_rows`` train rows, ``max_val_rows`` val rows and ``max_test_rows`` test rows. A
uniform k-subset of a uniform subset of the train split is a uniform k-subset of the split,
so contexts drawn from the pool follow the paper's protocol. Pool rows are stored per split
in that random order; "the first n test rows" is therefore a uniform sample too.

Feature budget (label-free, computed on the pool's train rows only):

1. DFS with ``max_depth`` (2) and ``primitives`` (mean, sum, max, min, count, mode).
2. Categorical columns become ordinal codes (sorted values), booleans 0/1, datetimes dropped.
3. Columns that are all-missing or constant on the train rows are dropped.
4. Columns are ranked by depth (own columns, then 1-hop, then 2-hop features), within a depth
   round-robin over the related table they come from, and kept greedily unless their absolute
   correlation with an already kept column is >= ``correlation_limit`` (0.98), until
   ``max_features`` (``FEATURE_BUDGET`` = 100) are kept.

The cache file name holds a sha256 of the task definition (entities, cutoffs, labels, split,
database version), the :class:`FeatureSpec`, ``FEATURES_VERSION`` and the DFS engine's source,
so any change recomputes. Cache dir: ``$RDBPFN_EVAL_CACHE`` or ``.cache/eval``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval.tasks import SPLITS, Task, stable_seed

FEATURE_BUDGET = 100
"""Default number of DFS columns kept per task (``FeatureSpec.max_features``)."""
MAX_TRAIN_ROWS = 8192
MAX_VAL_ROWS = 2048
MAX_TEST_ROWS = 2000
"""The paper's fixed test sample: at most 2,000 test rows per task."""
CORRELATION_LIMIT = 0.98
LINEARIZE_CHUNK_ROWS = 2048
"""Rows per ``linearize`` call (sorted by cutoff), so that progress can be shown."""
FEATURES_VERSION = 1
"""Bump when this module's output for the same inputs changes (invalidates caches)."""
CACHE_ENV = "RDBPFN_EVAL_CACHE"
DEFAULT_CACHE_DIR = Path(".cache") / "eval"

Linearize = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class FeatureSpec:
    """DFS settings and feature budget for one featurisation (part of the cache key)."""

    max_depth: int = 2
    primitives: tuple[str, ...] = ("mean", "sum", "max", "min", "count", "mode")
    max_features: int = FEATURE_BUDGET
    max_train_rows: int = MAX_TRAIN_ROWS
    max_val_rows: int = MAX_VAL_ROWS
    max_test_rows: int = MAX_TEST_ROWS
    correlation_limit: float = CORRELATION_LIMIT
    engine: str = "auto"

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_features", "max_train_rows", "max_val_rows",
                     "max_test_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureSpec.{name} must be >= 1, got {getattr(self, name)}.")
        if not 0.0 < self.correlation_limit <= 1.0:
            raise ValueError("FeatureSpec.correlation_limit must be in (0, 1], got "
                             f"{self.correlation_limit}.")


@dataclass(frozen=True)
class TaskFeatures:
    """Featurised pool of one task. Arrays have one entry per pool row (n rows).

    ``X`` float32 (n, p) with NaN for missing; ``y`` int8 (n,); ``split`` str (n,);
    ``task_rows`` int64 (n,): index of each pool row in the task's arrays. Rows of each split
    appear in a fixed random order.
    """

    task: str
    X: np.ndarray
    y: np.ndarray
    split: np.ndarray
    task_rows: np.ndarray
    columns: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def rows(self, split: str) -> np.ndarray:
        """Indices into ``X`` of the pool rows in ``split`` (in stored order)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        return np.flatnonzero(self.split == split)


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
    """Identity of the DFS engine for the cache key: its module's source hash."""
    module = inspect.getmodule(linearize)
    name = f"{getattr(linearize, '__module__', '?')}.{getattr(linearize, '__qualname__', '?')}"
    try:
        source = Path(inspect.getfile(module)).read_bytes() if module else b""
    except (TypeError, OSError):
        source = b""
    return f"{name}:{hashlib.sha256(source).hexdigest()[:16]}"


def cache_key(task: Task, spec: FeatureSpec, linearize: Linearize) -> str:
    """sha256 of everything the cached features depend on."""
    payload = json.dumps(
        {"task": task.fingerprint(), "spec": dataclasses.asdict(spec),
         "version": FEATURES_VERSION, "engine": _engine_version(linearize)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def to_numeric(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """DataFrame -> (float32 (n, p) matrix with NaN, column names).

    Numbers stay numbers, booleans become 0/1, categories/strings become ordinal codes of
    their sorted values (missing stays NaN), datetimes and timedeltas are dropped.
    """
    columns, names = [], []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_bool_dtype(values):
            numeric = values.astype("float64")
        elif pd.api.types.is_numeric_dtype(values):
            numeric = pd.to_numeric(values, errors="coerce").astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(
            values
        ):
            continue
        else:
            present = values.notna()
            text = values[present].astype(str)
            categories = np.sort(text.unique())
            codes = np.full(len(values), np.nan)
            codes[present.to_numpy()] = np.searchsorted(categories, text.to_numpy())
            numeric = pd.Series(codes, index=values.index)
        array = numeric.to_numpy(dtype="float64", na_value=np.nan)
        array[~np.isfinite(array)] = np.nan
        columns.append(array.astype(np.float32))
        names.append(str(name))
    matrix = np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0), np.float32)
    return matrix, names


def feature_depth(name: str) -> int:
    """Relationship hops of a featuretools-style name: ``birthYear`` 0, ``MEAN(batting.HR)``
    and ``COUNT(batting)`` 1, ``MEAN(batting.teams.W)`` and ``MEAN(teams.COUNT(x))`` 2."""
    return max(name.count("."), name.count("("))


def feature_source(name: str) -> str:
    """The related table a feature is computed through (first name inside or before '.')."""
    if "(" not in name and "." not in name:
        return ""
    inner = name.split("(", 1)[1] if "(" in name else name
    return re.match(r"[^.()]*", inner).group(0)


def rank_columns(names: list[str]) -> list[int]:
    """Column order for the budget: by depth, then round-robin over source tables."""
    order = []
    for depth in sorted({feature_depth(n) for n in names}):
        groups: dict[str, list[int]] = {}
        for index, name in enumerate(names):
            if feature_depth(name) == depth:
                groups.setdefault(feature_source(name), []).append(index)
        queues = list(groups.values())
        while any(queues):
            for queue in queues:
                if queue:
                    order.append(queue.pop(0))
    return order


def select_columns(X_train: np.ndarray, names: list[str], max_features: int,
                   correlation_limit: float) -> list[int]:
    """Label-free feature budget on train rows X_train (n, p): indices of kept columns."""
    with np.errstate(invalid="ignore", divide="ignore"):
        present = ~np.isnan(X_train)
        count = present.sum(axis=0)
        mean = np.where(count > 0, np.nansum(X_train, axis=0) / np.maximum(count, 1), 0.0)
        centered = np.where(present, X_train - mean, 0.0).astype(np.float64)
        std = np.sqrt((centered**2).sum(axis=0) / np.maximum(count, 1))
    informative = (count > 0) & (std > 0)
    z = np.divide(centered, std, out=np.zeros_like(centered), where=std > 0)
    corr = np.abs(z.T @ z) / max(len(X_train), 1)
    kept: list[int] = []
    for index in rank_columns(names):
        if len(kept) >= max_features:
            break
        if not informative[index]:
            continue
        if kept and corr[index, kept].max() >= correlation_limit:
            continue
        kept.append(index)
    return sorted(kept)


def _linearize_pool(task: Task, rows: np.ndarray, spec: FeatureSpec, linearize: Linearize,
                    verbose: bool) -> pd.DataFrame:
    from tqdm.auto import tqdm

    database = task.get_database()
    by_time = rows[np.argsort(task.cutoff_times[rows], kind="stable")]
    chunks = [by_time[i : i + LINEARIZE_CHUNK_ROWS]
              for i in range(0, len(by_time), LINEARIZE_CHUNK_ROWS)]
    frames = []
    for chunk in tqdm(chunks, desc=f"DFS {task.full_name}", disable=not verbose, leave=False):
        frame = linearize(
            database, task.target_table, task.entity_ids[chunk].tolist(),
            cutoff_times=pd.DatetimeIndex(task.cutoff_times[chunk]),
            max_depth=spec.max_depth, primitives=spec.primitives, engine=spec.engine,
        )
        if len(frame) != len(chunk):
            raise ValueError(f"linearize returned {len(frame)} rows for {len(chunk)} requested "
                             f"(task {task.full_name}); it must return one row per request.")
        frame.index = chunk
        frames.append(frame)
    return pd.concat(frames, axis=0, sort=False).reindex(rows)


def _default_linearize() -> Linearize:
    from rdbpfn.dfs import linearize

    return linearize


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
    linearize = linearize or _default_linearize()
    directory = cache_dir_path(cache_dir)
    key = cache_key(task, spec, linearize)
    stem = f"{task.database}_{task.name}_{key[:20]}"
    path_npz, path_json = directory / f"{stem}.npz", directory / f"{stem}.json"
    if path_npz.exists() and path_json.exists() and not refresh:
        with np.load(path_npz, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        info = json.loads(path_json.read_text())
        return TaskFeatures(task.full_name, arrays["X"], arrays["y"], arrays["split"],
                            arrays["task_rows"], list(info["columns"]), info)

    start = time.perf_counter()
    rows = pool_rows(task, spec)
    frame = _linearize_pool(task, rows, spec, linearize, verbose)
    dfs_seconds = time.perf_counter() - start
    X_all, names = to_numeric(frame)
    split = task.split[rows]
    kept = select_columns(X_all[split == "train"], names, spec.max_features,
                          spec.correlation_limit)
    X = np.ascontiguousarray(X_all[:, kept])
    columns = [names[i] for i in kept]
    info = {"task": task.full_name, "key": key, "columns": columns,
            "n_dfs_columns": len(frame.columns), "n_numeric_columns": len(names),
            "n_rows": int(len(rows)), "dfs_seconds": round(dfs_seconds, 3),
            "seconds": round(time.perf_counter() - start, 3), "spec": dataclasses.asdict(spec)}
    features = TaskFeatures(task.full_name, X, task.labels[rows], split, rows, columns, info)
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(path_npz, lambda f: np.savez(f, X=X, y=features.y, split=split,
                                                 task_rows=rows))
    _atomic_write(path_json, lambda f: f.write(json.dumps(info, indent=1).encode()))
    return features


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, path)
