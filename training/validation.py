"""Validation during training: held-back synthetic episodes and small real tables.

Three groups, each summarised by a mean ROC-AUC:

- ``synthetic``: episodes of each prior kind drawn once with a validation seed that no
  training phase uses (:func:`held_back_episodes`).
- ``real``: single tables bundled with scikit-learn (no download), made binary, evaluated
  on fixed-seed context/query draws (:data:`REAL_SETS`).
- ``relational``: the *validation* split of the project's real relational tasks
  (:func:`eval.validation.validation_episodes`, contexts from their train split); their test
  split is never touched. Skipped with a warning when the eval extras (the database
  packages) are not installed.

Every episode is an :class:`rdbpfn.episode.Episode` with ``group`` and ``name`` set.

``score`` is the mean of the group AUCs that are available; the loop keeps the checkpoint
with the best value of the configured ``select_metric``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import datasets as sklearn_datasets
from sklearn.metrics import roc_auc_score

from eval.validation import validation_episodes as real_task_episodes
from priors import stream as prior_stream
from rdbpfn.bar_distribution import target_scale
from rdbpfn.episode import Episode
from training.config import ValidationConfig

MAX_SPLIT_ATTEMPTS = 100  # random context/query draws tried before a set is declared unusable
LOWER_IS_BETTER = ("synthetic_loss",)


@dataclass(frozen=True)
class LabeledTable:
    """A binary classification table: ``X`` (n, p) float32 (NaN allowed), ``y`` (n,) in {0,1}."""

    name: str
    X: np.ndarray
    y: np.ndarray


def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    data = sklearn_datasets.load_breast_cancer()
    return data.data, data.target


def _iris_versicolor_virginica() -> tuple[np.ndarray, np.ndarray]:
    data = sklearn_datasets.load_iris()
    keep = data.target > 0
    return data.data[keep], (data.target[keep] == 2)


def _wine_class0() -> tuple[np.ndarray, np.ndarray]:
    data = sklearn_datasets.load_wine()
    return data.data, data.target == 0


def _digits_3_vs_8() -> tuple[np.ndarray, np.ndarray]:
    data = sklearn_datasets.load_digits()
    keep = np.isin(data.target, (3, 8))
    return data.data[keep], data.target[keep] == 8


def _digits_even() -> tuple[np.ndarray, np.ndarray]:
    data = sklearn_datasets.load_digits()
    return data.data, data.target % 2 == 0


REAL_SETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "breast_cancer": _breast_cancer,
    "iris_versicolor_virginica": _iris_versicolor_virginica,
    "wine_class0": _wine_class0,
    "digits_3_vs_8": _digits_3_vs_8,
    "digits_even": _digits_even,
}


def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    data = sklearn_datasets.load_diabetes()
    return data.data, data.target


REGRESSION_SETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "diabetes": _diabetes,
}
"""Real regression tables bundled with scikit-learn (validation of regression runs)."""


def load_real_set(name: str) -> LabeledTable:
    """One of :data:`REAL_SETS` as float32 features and int64 {0, 1} labels, or of
    :data:`REGRESSION_SETS` with float32 targets."""
    if name in REGRESSION_SETS:
        features, targets = REGRESSION_SETS[name]()
        return LabeledTable(name, np.asarray(features, np.float32),
                            np.asarray(targets, np.float32))
    if name not in REAL_SETS:
        raise ValueError(f"unknown real validation set {name!r}; choose from "
                         f"{sorted(REAL_SETS) + sorted(REGRESSION_SETS)}")
    features, labels = REAL_SETS[name]()
    return LabeledTable(name, np.asarray(features, np.float32), np.asarray(labels, np.int64))


def context_query_split(
    y: np.ndarray, n_context: int, n_query: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random disjoint (context, query) row indices, both classes present in each part.

    ``y`` (n,) binary labels (float targets: any split). Sizes are capped so that both parts
    fit in ``n`` rows.
    """
    n = len(y)
    n_context = min(n_context, n // 2)
    n_query = min(n_query, n - n_context)
    if n_context < 2 or n_query < 2:
        raise ValueError(f"table of {n} rows is too small for a context/query split")
    if np.issubdtype(y.dtype, np.floating):
        order = rng.permutation(n)
        return order[:n_context], order[n_context : n_context + n_query]
    for _ in range(MAX_SPLIT_ATTEMPTS):
        order = rng.permutation(n)
        context, query = order[:n_context], order[n_context : n_context + n_query]
        if len(np.unique(y[context])) == 2 and len(np.unique(y[query])) == 2:
            return context, query
    raise ValueError(
        f"no split with both classes in context and queries after {MAX_SPLIT_ATTEMPTS} draws"
        f" (class counts {np.bincount(y, minlength=2).tolist()}); use a more balanced table"
    )


def table_episodes(
    group: str,
    table: LabeledTable,
    n_context: int,
    n_query: int,
    draws: int,
    seed: int,
) -> list[Episode]:
    """``draws`` fixed-seed in-context episodes from one labeled table."""
    rng = np.random.default_rng(seed)
    episodes = []
    for draw in range(draws):
        context, query = context_query_split(table.y, n_context, n_query, rng)
        rows = np.concatenate([context, query])
        episodes.append(
            Episode(
                X=torch.from_numpy(np.ascontiguousarray(table.X[rows])),
                y=torch.from_numpy(np.ascontiguousarray(table.y[rows])),
                n_context=len(context),
                group=group,
                name=f"{table.name}@{len(context)}#{draw}",
            )
        )
    return episodes


def held_back_episodes(
    kind: str, rows: int, columns: int, count: int, seed: int, target: str = "binary"
) -> list[Episode]:
    """The first ``count`` episodes of ``priors.stream(kind, rows, columns, seed)``."""
    stream = prior_stream(kind=kind, rows=rows, columns=columns, seed=seed, target=target)
    dtype = torch.float32 if target == "continuous" else torch.int64
    episodes = []
    for index, episode in enumerate(itertools.islice(stream, count)):
        episodes.append(
            Episode(
                X=torch.as_tensor(episode.X, dtype=torch.float32),
                y=torch.as_tensor(episode.y, dtype=dtype),
                n_context=int(episode.n_context),
                group="synthetic",
                name=f"{kind}#{index}",
            )
        )
    if len(episodes) < count:
        raise ValueError(f"priors.stream({kind!r}) ended after {len(episodes)} of {count}")
    return episodes


def relational_validation_episodes(
    context_rows: Sequence[int], query_rows: int, draws: int, seed: int
) -> list[Episode]:
    """Episodes of the real relational tasks ([] with a warning without the eval extras).

    :func:`eval.validation.validation_episodes` draws the context from each task's *train*
    split and the queries from its *validation* split; the test split is never read. One
    episode per (context size, draw, task), named ``"<task>@<context size>#<draw>"``.
    """
    try:
        return real_task_episodes(context_sizes=context_rows, max_val_rows=query_rows,
                                  draws=draws, seed=seed)
    except ImportError as error:  # the eval extras (database packages) are missing
        warnings.warn(f"relational validation skipped: {error}; install '.[eval]'",
                      stacklevel=2)
        return []


@torch.no_grad()
def score_episode(
    model: torch.nn.Module, episode: Episode, device: torch.device
) -> tuple[float, float]:
    """(ROC-AUC, mean cross-entropy) of ``model`` on the query rows of one episode.

    The episode's K classes are those of its context (ids ``0..K-1``); the model's outputs
    beyond them are dropped, as :class:`rdbpfn.RDBPFNClassifier` does. With K > 2 the AUC is
    the mean one-vs-rest AUC over the classes that the queries hold with some other class.
    Non-finite outputs (a diverged model) give NaN for both instead of an exception.
    """
    x = episode.X.unsqueeze(0).to(device)  # (1, R, C)
    y_context = episode.y[: episode.n_context].unsqueeze(0).to(device)  # (1, N)
    n_classes = int(y_context.max()) + 1
    logits = model(x, y_context)[0].float().cpu()[:, :n_classes]  # (Q, K)
    y_query = episode.y[episode.n_context :]
    loss = F.cross_entropy(logits, y_query).item()
    probability = torch.softmax(logits, dim=-1).numpy()
    if not np.isfinite(probability).all():
        return math.nan, math.nan
    truth = y_query.numpy()
    if n_classes == 2:
        return float(roc_auc_score(truth, probability[:, 1])), loss
    present = [c for c in np.unique(truth) if 0 < np.sum(truth == c) < len(truth)]
    if not present:
        return math.nan, loss
    return float(np.mean([roc_auc_score(truth == c, probability[:, c])
                          for c in present])), loss


@torch.no_grad()
def score_regression_episode(
    model: torch.nn.Module, episode: Episode, device: torch.device
) -> tuple[float, float]:
    """(R^2 of the predictive mean, floored at -1, and the mean negative log density of the
    standardised targets) of a regression ``model`` on the query rows of one episode; NaN
    for both when the outputs are not finite. The floor keeps one episode with an outlier
    among its queries from deciding the average of many."""
    y = episode.y.to(torch.float32)
    mean, scale = target_scale(y[: episode.n_context].unsqueeze(0))
    standard = (y.unsqueeze(0) - mean) / scale
    x = episode.X.unsqueeze(0).to(device)
    logits = model(x, standard[:, : episode.n_context].to(device))[0].float().cpu()
    bars = model.bar_distribution()
    loss = bars.loss(logits, standard[0, episode.n_context:]).item()
    prediction = (bars.mean(logits) * scale[0] + mean[0]).numpy()
    truth = y[episode.n_context:].numpy()
    if not np.isfinite(prediction).all():
        return math.nan, math.nan
    residual = float(np.sum((truth - prediction) ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    return (max(1.0 - residual / total, -1.0) if total > 0 else math.nan), loss


def _mean(values: Iterable[float]) -> float:
    """The mean of the finite values (NaN when there are none: e.g. a diverged model)."""
    values = [value for value in values if not math.isnan(value)]
    return float(np.mean(values)) if values else math.nan


class Validator:
    """Builds the validation episodes once, then scores a model on all of them.

    Build it on the process that validates (rank 0 under DDP); generation of the held-back
    synthetic episodes happens here, once per run.
    """

    def __init__(self, config: ValidationConfig) -> None:
        self.config = config
        self.episodes: list[Episode] = []
        for offset, kind in enumerate(config.synthetic_kinds):
            self.episodes += held_back_episodes(
                kind, config.rows, config.columns, config.synthetic_episodes,
                seed=config.seed + offset, target=config.target,
            )
        for offset, name in enumerate(config.real_sets):
            self.episodes += table_episodes(
                "real", load_real_set(name), config.real_context_rows,
                config.real_query_rows, config.real_draws, seed=config.seed + 1000 + offset,
            )
        if config.relational:
            self.episodes += relational_validation_episodes(
                config.relational_context_rows, config.relational_query_rows,
                config.relational_draws, seed=config.seed,
            )

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """Metrics keyed ``<group>/<name>/auc`` (regression: ``.../r2``, the R^2 of the
        predictive mean), group means (``<group>_auc`` / ``<group>_r2``) and ``score``.

        The caller puts the model (and a schedule-free optimizer) into eval mode first.
        """
        metrics: dict[str, float] = {}
        per_group: dict[str, list[float]] = {}
        per_item: dict[str, list[float]] = {}
        synthetic_losses = []
        regression = self.config.target == "continuous"
        measure = "r2" if regression else "auc"
        score = score_regression_episode if regression else score_episode
        for episode in self.episodes:
            auc, loss = score(model, episode, device)
            base = episode.name.split("#")[0]
            if episode.group == "synthetic":
                synthetic_losses.append(loss)
            per_item.setdefault(f"{episode.group}/{base}", []).append(auc)
        for key, values in per_item.items():
            metrics[f"{key}/{measure}"] = _mean(values)
            per_group.setdefault(key.split("/")[0], []).append(metrics[f"{key}/{measure}"])
        for group, values in per_group.items():
            metrics[f"{group}_{measure}"] = _mean(values)
        if synthetic_losses:
            metrics["synthetic_loss"] = _mean(synthetic_losses)
        group_aucs = [metrics[f"{group}_{measure}"] for group in per_group]
        metrics["score"] = _mean(group_aucs)
        return metrics


def is_better(metric: str, new: float, best: float | None) -> bool:
    """Whether ``new`` improves on ``best`` for ``metric`` (NaN never improves)."""
    if math.isnan(new):
        return False
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best
