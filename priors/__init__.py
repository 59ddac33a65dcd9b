"""priors: synthetic training data for rdbpfn, generated on the fly.

Public surface (imported lazily: ``import priors`` loads neither torch nor the relational
generator):

- :func:`stream` -- an infinite iterator of :class:`Episode` (single-table, relational, mixed).
- :class:`EpisodeDataset` -- a ``torch`` ``IterableDataset`` of fixed-shape episode batches,
  deterministic per (seed, rank, worker, batch index) and disjoint across DDP ranks and workers.
- :class:`Episode` -- one in-context task: ``X`` (rows, columns), ``y`` (rows,), ``n_context``.

Modules: :mod:`priors.single_table` (SCM prior), :mod:`priors.episode` (shape, split,
validity), :mod:`priors.stream` (streaming), :mod:`priors.relational` (relational prior).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "stream": "priors.stream",
    "EpisodeDataset": "priors.stream",
    "Episode": "priors.episode",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'priors' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    # Importing the submodule priors.stream binds the *module* to priors.stream; rebind the
    # function of the same name (the submodule is also callable, for imports in other orders).
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
