"""priors: synthetic training data for rdbpfn, generated on the fly.

Public surface:

- :func:`stream` -- an infinite iterator of :class:`rdbpfn.episode.Episode` (single-table,
  relational, mixed).
- :class:`EpisodeDataset` -- a ``torch`` ``IterableDataset`` of fixed-shape episode batches,
  deterministic per (seed, rank, worker, batch index) and disjoint across DDP ranks and workers.

Modules: :mod:`priors.single_table` (SCM prior), :mod:`priors.relational` (relational
databases), :mod:`priors.tasks` (tasks on them, linearized by DFS), :mod:`priors.episode`
(shape, split, validity), :mod:`priors.streaming` (streaming). ``python -m priors`` writes
databases and pictures.
"""

from __future__ import annotations

from priors.streaming import EpisodeDataset, stream

__all__ = ["EpisodeDataset", "stream"]
