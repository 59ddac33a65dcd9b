"""priors: synthetic training data for rdbpfn, generated on the fly.

Public surface (imported lazily: ``import priors`` loads neither torch nor the relational
generator):

- :func:`stream` -- an infinite iterator of :class:`Episode` (single-table, relational, mixed).
- :class:`EpisodeDataset` -- a ``torch`` ``IterableDataset`` of fixed-shape episode batches,
  deterministic per (seed, rank, worker, batch index) and disjoint across DDP ranks and workers.
- :class:`Episode` -- one in-context task: ``X`` (rows, columns), ``y`` (rows,), ``n_context``.

Modules: :mod:`priors.single_table` (SCM prior), :mod:`priors.episode` (shape, split,
validity), :mod:`priors.streaming` (streaming), :mod:`priors.relational` (relational prior).
"""

from __future__ import annotations

from rdbpfn._lazy import lazy_exports

_EXPORTS = {
    "stream": "priors.streaming",
    "EpisodeDataset": "priors.streaming",
    "Episode": "priors.episode",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
