"""Real-task validation episodes for training: the registered tasks' train and val splits only.

Training (:mod:`training.validation`) scores its checkpoints on these next to held-back
synthetic episodes. Per task, context size and draw, :func:`validation_episodes` gives one
:class:`rdbpfn.episode.Episode`: context rows drawn uniformly from the train split of the
task's feature pool (:mod:`eval.features`), redrawn until both classes appear, followed by
the first val rows of the pool (stored in a fixed random order). The test split is never
read. The columns are the feature budget chosen from the context rows only, and the values
are what :class:`rdbpfn.RDBPFNClassifier` would feed the model for the same rows:
:class:`rdbpfn.encoding.TableEncoder` fitted on the context, applied to all rows (float32).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from eval.features import FeatureSpec, Linearize, TaskFeatures, task_features
from eval.tasks import Task, get_tasks, stable_seed
from rdbpfn.encoding import TableEncoder
from rdbpfn.episode import Episode

GROUP = "relational"
"""``Episode.group`` of every real-task validation episode."""
MAX_CONTEXT_ATTEMPTS = 100
"""Context draws tried per episode before a task is declared to have no two-class context."""


def validation_rows(task: Task, features: TaskFeatures, context_size: int, max_val_rows: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(context, val)``: indices into ``features.X`` of one validation draw.

    ``context`` (k,), k = min(``context_size``, train rows), uniform from the train split
    without replacement and holding both classes; ``val`` (v,), the first v <=
    ``max_val_rows`` val rows. Same (task, seed) -> same rows.
    """
    train, val = features.rows("train"), features.rows("val")
    rng = np.random.default_rng(stable_seed(task.database, task.name, "validation", seed))
    k = min(context_size, len(train))
    for _ in range(MAX_CONTEXT_ATTEMPTS):
        context = rng.choice(train, size=k, replace=False)
        if len(np.unique(features.y[context])) == 2:
            return context, val[:max_val_rows]
    raise ValueError(f"{task.full_name}: no two-class context of {k} train rows in "
                     f"{MAX_CONTEXT_ATTEMPTS} draws; the train split is (nearly) one class.")


def validation_episodes(
    task_names: Iterable[str] | None = None,
    context_sizes: Sequence[int] = (512,),
    max_val_rows: int = 1000,
    draws: int = 1,
    seed: int = 0,
    spec: FeatureSpec | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    linearize: Linearize | None = None,
) -> list[Episode]:
    """One episode per (context size, draw, task), in that nesting order, tasks by name.

    Episode ``name`` is ``"<task>@<context size>#<draw>"`` and ``group`` is ``GROUP``; draw d
    uses the rows of :func:`validation_rows` with seed ``seed + d``. ``X`` float32 (k + v, p),
    ``y`` int64 (k + v,), ``n_context`` = k. Features come from the on-disk feature cache
    (``linearize`` overrides the DFS engine). Same arguments -> same tensors.
    """
    tasks = sorted(get_tasks(task_names), key=lambda task: task.full_name)
    features = {task.full_name: task_features(task, spec=spec, cache_dir=cache_dir,
                                              linearize=linearize, verbose=verbose)
                for task in tasks}
    episodes = []
    for context_size in context_sizes:
        for draw in range(draws):
            for task in tasks:
                pool = features[task.full_name]
                context, val = validation_rows(task, pool, context_size, max_val_rows,
                                               seed + draw)
                columns = pool.select(context, spec)  # budget from the context rows only
                encoder = TableEncoder().fit(pool.X[np.ix_(context, columns)])
                rows = np.concatenate([context, val])
                episodes.append(Episode(
                    X=torch.from_numpy(encoder.transform(pool.X[np.ix_(rows, columns)])),
                    y=torch.from_numpy(pool.y[rows].astype(np.int64)),
                    n_context=len(context), group=GROUP,
                    name=f"{task.full_name}@{context_size}#{draw}",
                ))
    return episodes
