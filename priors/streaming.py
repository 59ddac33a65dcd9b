"""On-the-fly episode streaming: fixed-shape batches, deterministic, disjoint across processes.

Indexing (what makes streams reproducible, disjoint and resumable):

- A rank's DataLoader yields batches ``i = start_index, start_index + 1, ...``. With ``W``
  workers the DataLoader takes batches from workers round robin, so worker ``w`` produces
  ``i = start_index + w + m * W`` (m = 0, 1, ...), which keeps the loader's output in index
  order. Resuming with ``start_index = <batches this rank already consumed>`` (and the same
  ``num_workers``) continues the stream exactly.
- Batch ``i`` of rank ``r`` (of ``world_size``) has the global index ``g = i * world_size + r``;
  every (rank, worker) pair reads different ``g``, so no two processes repeat a shard.
- Batch ``g`` draws its context share and slot kinds from ``SeedSequence(seed, spawn_key=(0,
  g))``; its single-table episodes from ``SeedSequence(seed, spawn_key=(2, g, slot))``: they
  depend on (seed, g) only, not on the number of workers or ranks.
- Relational episodes are cut from databases that yield several tasks each
  (``tasks_per_database``, default 6), and every task is used: the relational slots of the
  batches ``i ≡ ℓ (mod W)`` form a *lane* ℓ that consumes databases ``d = 0, 1, ...`` of
  ``SeedSequence(seed, spawn_key=(1, world_size, rank, W, ℓ, d, attempt))`` in order, task after
  task. Relational content therefore also depends on ``num_workers``; resuming regenerates at
  most one database per worker.

In "mixed" streams batch ``i`` holds ``floor((i+1) B f) - floor(i B f)`` relational episodes
(f = ``relational_fraction``, exact on average), at random positions in the batch.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from priors.episode import (
    CONTEXT_FRACTION,
    MAX_CLASSES,
    MIN_ROWS_PER_CLASS,
    finalize_arrays,
    finalize_multiclass_arrays,
    finalize_regression_arrays,
    relabel,
)
from priors.single_table import DEFAULT_PRIOR, TARGETS, SingleTablePrior, sample_table
from priors.tasks import sample_tasks
from rdbpfn.episode import Episode

__all__ = ["KINDS", "STREAM_TARGETS", "TASKS_PER_DATABASE", "EpisodeDataset", "stream"]

KINDS = ("single_table", "relational", "mixed")
STREAM_TARGETS = (*TARGETS, "multiclass")
"""What an episode's ``y`` is: the priors' targets, or classes cut from a numeric one."""
# Tasks used from each generated database (the published prior draws 6 targets per database).
TASKS_PER_DATABASE = 6
# Draws of one episode slot before giving up (a valid table is found in 1-2 draws in practice).
MAX_SLOT_ATTEMPTS = 32
# Databases drawn for one lane position before giving up (each must yield >= 1 usable task).
MAX_DATABASE_ATTEMPTS = 16

# First spawn-key word: which kind of randomness (batch-level draws, databases, one slot).
_BATCH_KEY = 0
_DATABASE_KEY = 1
_SLOT_KEY = 2

# One labelled task: X (n, p) float64, y (n,) labels.
LabelledArrays = tuple[np.ndarray, np.ndarray]
RelationalSampler = Callable[..., list[LabelledArrays]]


def _generator(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _usable(x: np.ndarray, y: np.ndarray, min_rows: int, target: str = "binary") -> bool:
    """A task can make an episode: enough rows, two classes with enough rows each (a
    numeric target: finite and not constant)."""
    if x.ndim != 2 or x.shape[0] < min_rows or y.shape != (x.shape[0],):
        return False
    if target == "continuous":
        return bool(np.isfinite(y).all() and np.ptp(y) > 0)
    _, counts = np.unique(y, return_counts=True)
    return len(counts) == 2 and counts.min() >= MIN_ROWS_PER_CLASS


class _RelationalLane:
    """Serves the tasks of one lane's databases in order: slot s -> database s // T, task s % T.

    If a database yields fewer than T usable tasks the remaining slots are filled by
    :func:`priors.episode.relabel` of its usable tasks (or repeat one, which then gets another
    row/column subsample and split; numeric targets are always repeated); a database with
    none is redrawn (``attempt`` + 1).
    """

    def __init__(
        self,
        sampler: RelationalSampler,
        seed: int,
        lane_key: tuple[int, ...],
        rows: int,
        columns: int,
        min_rows: int,
        tasks_per_database: int,
        sampler_kwargs: dict[str, Any],
        stats: dict[str, int],
        target: str = "binary",
    ) -> None:
        self.sampler = sampler
        self.target = target
        self.seed = seed
        self.lane_key = lane_key
        self.rows = rows
        self.columns = columns
        self.min_rows = min_rows
        self.tasks_per_database = tasks_per_database
        self.sampler_kwargs = sampler_kwargs
        self.stats = stats
        self._database_index = -1
        self._tasks: list[LabelledArrays] = []

    def take(self, start: int, count: int) -> list[LabelledArrays]:
        """The raw tasks of lane slots ``[start, start + count)``."""
        out = []
        for slot in range(start, start + count):
            database, task = divmod(slot, self.tasks_per_database)
            if database != self._database_index:
                self._load(database)
            out.append(self._tasks[task])
        return out

    def _load(self, database: int) -> None:
        for attempt in range(MAX_DATABASE_ATTEMPTS):
            rng = _generator(self.seed, (_DATABASE_KEY, *self.lane_key, database, attempt))
            tasks = self.sampler(rng, self.rows, self.columns, **self.sampler_kwargs)
            self.stats["databases"] += 1
            usable = [
                (np.asarray(x), np.asarray(y))
                for x, y in tasks
                if _usable(np.asarray(x), np.asarray(y), self.min_rows, self.target)
            ][: self.tasks_per_database]
            self.stats["tasks_unusable"] += len(tasks) - len(usable)
            if usable:
                break
        else:
            raise RuntimeError(
                f"{MAX_DATABASE_ATTEMPTS} relational databases in a row gave no usable task "
                f"(each needs >= min_rows={self.min_rows} rows and two classes with >= "
                f"{MIN_ROWS_PER_CLASS} rows each); lower min_rows or rows, or check the "
                "relational generator"
            )
        originals = len(usable)
        while len(usable) < self.tasks_per_database:
            x, y = usable[len(usable) % originals]
            relabelled = relabel(x, y, rng) if self.target == "binary" else None
            usable.append(relabelled if relabelled is not None else (x, y))
            self.stats["tasks_relabelled"] += 1
        self._database_index = database
        self._tasks = usable


class EpisodeDataset(IterableDataset):
    """Infinite (or ``num_batches``-long) stream of fixed-shape episode batches.

    Use with ``DataLoader(dataset, batch_size=None, num_workers=...)``: the dataset batches
    itself. Each item is ``dict(X=(B, R, C) float32, y=(B, R) int64, n_context=int, index=int)``
    where all B episodes share ``n_context``, R = ``rows`` and C = ``columns``, and ``index`` is
    the batch index ``i`` of this rank (see the module docstring for the indexing scheme).

    Args:
        kind: "single_table", "relational" or "mixed".
        rows, columns: episode shape R x C.
        batch_size: episodes per batch B.
        seed: stream seed.
        relational_fraction: share of relational episodes in "mixed" streams.
        start_index: first batch index of this rank (resume: batches already consumed).
        num_batches: stop before batch index ``num_batches`` (None: infinite).
        rank, world_size: DDP position; default from ``torch.distributed`` when initialised,
            else (0, 1).
        context_fraction: range of the context share of rows, drawn once per batch.
        min_rows: allow relational tasks with fewer rows (down to ``min_rows``): the whole
            batch is then cut to the smallest such task's row count. Default ``rows`` (every
            batch has exactly ``rows`` rows).
        single_table_min_columns: single-table episodes draw their true width uniformly in
            ``[single_table_min_columns, columns]`` and are zero-padded to ``columns``
            (default ``ceil(columns / 2)``; ``columns`` gives fixed-width tables).
        single_table_prior: the single-table meta-distribution, or a mapping of its fields
            to override (JSON-friendly, for training configs' ``prior_kwargs``).
        tasks_per_database: relational tasks used from each generated database.
        relational_sampler: replaces ``priors.tasks.sample_tasks`` (same signature).
        relational_kwargs: extra keyword arguments for the relational sampler (``n_tasks`` is
            set to ``tasks_per_database`` when the sampler takes it).
        relabel_fraction: share of relational episodes whose label is replaced by a random
            feature thresholded at a random row, the old label becoming a feature (the
            published stage-2 task augmentation, :func:`priors.episode.relabel`); default 0.
        target: "binary" (labels, int64), "continuous" (numeric targets, float32, for a
            regression model: numeric single-table targets and relational tasks that keep
            their number; the relational sampler must accept ``target``) or "multiclass"
            (2 to ``max_classes`` classes cut from those numeric targets, int64; see
            :func:`priors.episode.finalize_multiclass_arrays`).
        max_classes: the most classes of a "multiclass" episode.
    """

    def __init__(
        self,
        kind: str = "single_table",
        rows: int = 600,
        columns: int = 30,
        batch_size: int = 8,
        seed: int = 0,
        *,
        relational_fraction: float = 0.5,
        start_index: int = 0,
        num_batches: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        context_fraction: tuple[float, float] = CONTEXT_FRACTION,
        min_rows: int | None = None,
        single_table_min_columns: int | None = None,
        single_table_prior: SingleTablePrior | Mapping[str, Any] = DEFAULT_PRIOR,
        tasks_per_database: int = TASKS_PER_DATABASE,
        relational_sampler: RelationalSampler | None = None,
        relational_kwargs: dict[str, Any] | None = None,
        relabel_fraction: float = 0.0,
        target: str = "binary",
        max_classes: int = MAX_CLASSES,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if target not in STREAM_TARGETS:
            raise ValueError(f"target must be one of {STREAM_TARGETS}, got {target!r}")
        if target != "binary" and relabel_fraction > 0:
            raise ValueError(f"relabel_fraction makes a binary label; it has no meaning with "
                             f"target={target!r} (pass 0).")
        if not isinstance(max_classes, int) or max_classes < 2:
            raise ValueError(f"max_classes must be an integer >= 2, got {max_classes!r}")
        if rows < 2 * MIN_ROWS_PER_CLASS or columns < 1 or batch_size < 1:
            raise ValueError(
                f"need rows >= {2 * MIN_ROWS_PER_CLASS}, columns >= 1, batch_size >= 1; got "
                f"rows={rows}, columns={columns}, batch_size={batch_size}"
            )
        for name, value in (("relational_fraction", relational_fraction),
                            ("relabel_fraction", relabel_fraction)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        low, high = context_fraction
        if not 0.0 < low <= high < 1.0:
            raise ValueError(
                f"context_fraction must satisfy 0 < low <= high < 1, got {context_fraction}"
            )
        min_rows = rows if min_rows is None else min_rows
        if not 2 * MIN_ROWS_PER_CLASS <= min_rows <= rows:
            raise ValueError(
                f"min_rows must be in [{2 * MIN_ROWS_PER_CLASS}, rows={rows}], got {min_rows}"
            )
        if single_table_min_columns is None:
            single_table_min_columns = -(-columns // 2)
        if not 1 <= single_table_min_columns <= columns:
            raise ValueError(
                f"single_table_min_columns must be in [1, columns={columns}], "
                f"got {single_table_min_columns}"
            )
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        if (rank is None) != (world_size is None):
            raise ValueError(
                f"give both rank and world_size or neither, got rank={rank}, "
                f"world_size={world_size}"
            )
        if world_size is not None and not 0 <= rank < world_size:  # type: ignore[operator]
            raise ValueError(f"need 0 <= rank < world_size, got {rank=} and {world_size=}")
        self.kind = kind
        self.rows = rows
        self.columns = columns
        self.batch_size = batch_size
        self.seed = seed
        self.relational_fraction = relational_fraction
        self.start_index = start_index
        self.num_batches = num_batches
        self.rank = rank
        self.world_size = world_size
        self.context_fraction = (float(low), float(high))
        self.min_rows = min_rows
        self.single_table_min_columns = single_table_min_columns
        if isinstance(single_table_prior, Mapping):
            unknown = sorted(set(single_table_prior) - {f.name for f in
                                                        dataclasses.fields(SingleTablePrior)})
            if unknown:
                raise ValueError(f"single_table_prior has unknown fields {unknown}; use fields "
                                 "of priors.single_table.SingleTablePrior")
            single_table_prior = dataclasses.replace(DEFAULT_PRIOR, **single_table_prior)
        self.single_table_prior = single_table_prior
        self.tasks_per_database = tasks_per_database
        self.relational_sampler = relational_sampler
        self.relational_kwargs = dict(relational_kwargs or {})
        self.relabel_fraction = relabel_fraction
        self.target = target
        self.max_classes = max_classes
        # what the priors draw: a multiclass target is cut from a numeric one
        self._drawn = "continuous" if target == "multiclass" else target
        share = {"single_table": Fraction(0), "relational": Fraction(1)}.get(
            kind, Fraction(relational_fraction).limit_denominator(1_000_000)
        )
        self._relational_share = share
        self.stats = _new_stats()

    # ------------------------------------------------------------------ indexing helpers

    def _rank_world(self) -> tuple[int, int]:
        if self.world_size is not None:
            return int(self.rank), int(self.world_size)  # type: ignore[arg-type]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def relational_count(self, index: int) -> int:
        """Number of relational episodes in batch ``index`` (exact running share)."""
        share, b = self._relational_share, self.batch_size
        return (
            ((index + 1) * b * share.numerator) // share.denominator
            - (index * b * share.numerator) // share.denominator
        )

    def _lane_offset(self, index: int, num_workers: int) -> int:
        """Relational slots used by the lane's batches before ``index``."""
        earlier = np.arange(index % num_workers, index, num_workers, dtype=np.int64)
        share, b = self._relational_share, self.batch_size
        # sum of floor((i+1) b p / q) - floor(i b p / q); int64 holds i * b * p below ~9e18
        scaled = b * share.numerator
        after = (earlier + 1) * scaled // share.denominator
        before = earlier * scaled // share.denominator
        return int((after - before).sum())

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world_size = self._rank_world()
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        index = self.start_index + worker
        lane = None
        if self._relational_share > 0:
            sampler = self.relational_sampler or sample_tasks
            kwargs = dict(self.relational_kwargs)
            parameters = inspect.signature(sampler).parameters
            if "n_tasks" in parameters:
                kwargs.setdefault("n_tasks", self.tasks_per_database)
            if self._drawn != "binary":
                if "target" not in parameters:
                    raise ValueError(f"target={self.target!r} needs a relational sampler that "
                                     "takes target= (priors.tasks.sample_tasks does).")
                kwargs["target"] = self._drawn
            lane_key = (world_size, rank, num_workers, index % num_workers)
            lane = _RelationalLane(
                sampler, self.seed, lane_key, self.rows, self.columns, self.min_rows,
                self.tasks_per_database, kwargs, self.stats, self._drawn,
            )
        offset = self._lane_offset(index, num_workers) if lane is not None else 0
        while self.num_batches is None or index < self.num_batches:
            count = self.relational_count(index)
            yield self._batch(index, index * world_size + rank, lane, offset, count)
            offset += count
            index += num_workers

    def _batch(
        self,
        index: int,
        global_index: int,
        lane: _RelationalLane | None,
        offset: int,
        relational_count: int,
    ) -> dict[str, Any]:
        """Batch ``index`` (global ``global_index``): relational slots take lane slots
        ``[offset, offset + relational_count)``."""
        b = self.batch_size
        rng = _generator(self.seed, (_BATCH_KEY, global_index))
        fraction = rng.uniform(*self.context_fraction)
        relational_slots = rng.permutation(b)[:relational_count]
        raw: dict[int, LabelledArrays] = {}
        if relational_count:
            assert lane is not None
            tasks = lane.take(offset, relational_count)
            raw = {int(slot): task for slot, task in zip(relational_slots, tasks, strict=True)}
        rows = min([self.rows, *(len(y) for _, y in raw.values())])
        n_context = int(np.clip(round(rows * fraction), 1, rows - 1))
        xs = np.empty((b, rows, self.columns), dtype=np.float32)
        ys = np.empty((b, rows), dtype=np.float32 if self.target == "continuous" else np.int64)
        for slot in range(b):
            slot_rng = _generator(self.seed, (_SLOT_KEY, global_index, slot))
            if slot in raw:
                arrays = self._relational_episode(raw[slot], rows, n_context, slot_rng)
            else:
                arrays = self._single_table_episode(rows, n_context, slot_rng)
            xs[slot], ys[slot] = arrays
        self.stats["episodes"] += b
        return {
            "X": torch.from_numpy(xs),
            "y": torch.from_numpy(ys),
            "n_context": n_context,
            "index": index,
        }

    def _finalize(self, x: np.ndarray, y: np.ndarray, rows: int, n_context: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int] | None:
        """The episode finalizer of the stream's target."""
        if self.target == "continuous":
            return finalize_regression_arrays(x, y, rows, self.columns, rng, n_context)
        if self.target == "multiclass":
            return finalize_multiclass_arrays(x, y, rows, self.columns, rng, n_context,
                                              self.max_classes)
        return finalize_arrays(x, y, rows, self.columns, rng, n_context)

    def _single_table_episode(
        self, rows: int, n_context: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(MAX_SLOT_ATTEMPTS):
            width = int(rng.integers(self.single_table_min_columns, self.columns + 1))
            x, y = sample_table(rng, rows, width, prior=self.single_table_prior,
                                target=self._drawn)
            arrays = self._finalize(x, y, rows, n_context, rng)
            if arrays is not None:
                return arrays[0], arrays[1]
            self.stats["single_table_rejected"] += 1
        raise RuntimeError(
            f"{MAX_SLOT_ATTEMPTS} single-table draws in a row gave no valid {rows}-row episode "
            f"with n_context={n_context}; check single_table_prior (label quantiles)"
        )

    def _relational_episode(
        self, task: LabelledArrays, rows: int, n_context: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        x, y = task
        if self.target != "binary":
            for _ in range(MAX_SLOT_ATTEMPTS):
                arrays = self._finalize(x, y, rows, n_context, rng)
                if arrays is not None:
                    return arrays[0], arrays[1]
                self.stats["relational_rejected"] += 1
            self.stats["relational_fallback"] += 1
            return self._single_table_episode(rows, n_context, rng)
        if self.relabel_fraction > 0.0 and rng.random() < self.relabel_fraction:
            relabelled = relabel(x, y, rng)
            if relabelled is not None:
                x, y = relabelled
                self.stats["relational_augmented"] += 1
        for _ in range(MAX_SLOT_ATTEMPTS):
            arrays = finalize_arrays(x, y, rows, self.columns, rng, n_context)
            if arrays is not None:
                return arrays[0], arrays[1]
            # the kept rows lost a class: use the task with another label
            self.stats["relational_rejected"] += 1
            relabelled = relabel(x, y, rng)
            if relabelled is not None:
                x, y = relabelled
        self.stats["relational_fallback"] += 1
        return self._single_table_episode(rows, n_context, rng)


def _new_stats() -> dict[str, int]:
    keys = (
        "episodes", "databases", "tasks_unusable", "tasks_relabelled", "single_table_rejected",
        "relational_rejected", "relational_fallback", "relational_augmented",
    )
    return dict.fromkeys(keys, 0)


def stream(
    kind: str = "relational",
    rows: int = 600,
    columns: int = 30,
    seed: int = 0,
    **kwargs: Any,
) -> Iterator[Episode]:
    """Infinite iterator of :class:`~rdbpfn.episode.Episode` (X (rows, columns), y (rows,)).

    Each episode draws its own context size. ``kwargs`` go to :class:`EpisodeDataset`
    (e.g. ``relational_fraction``, ``single_table_prior``, ``rank``/``world_size``); the
    iterator is episode ``j`` = batch ``j`` of an ``EpisodeDataset`` with ``batch_size=1``.
    """
    if "batch_size" in kwargs:
        raise TypeError("stream() yields single episodes; use EpisodeDataset for batches")
    dataset = EpisodeDataset(kind, rows, columns, 1, seed, **kwargs)
    for batch in dataset:
        yield Episode(X=batch["X"][0], y=batch["y"][0], n_context=batch["n_context"])
