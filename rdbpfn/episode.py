"""The episode: one in-context classification problem, the unit every package exchanges.

The prior (:mod:`priors`) generates episodes, training batches and validates on them, and
the benchmark's real tasks become episodes for validation. One type for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Episode"]


@dataclass
class Episode:
    """One in-context learning task.

    Attributes:
        X: (rows, columns) float32 features, NaN for missing values; all-zero padding columns.
        y: (rows,) int64 class ids.
        n_context: the first ``n_context`` rows are the labelled context, the rest are queries.
        group: where it comes from, e.g. ``"synthetic"``, ``"real"``, ``"relational"``
            (empty for training episodes).
        name: what it is within its group, e.g. a dataset or task name, ``#draw`` suffixed.
    """

    X: torch.Tensor
    y: torch.Tensor
    n_context: int
    group: str = ""
    name: str = ""

    @property
    def n_queries(self) -> int:
        """Rows after the context."""
        return int(self.X.shape[0]) - self.n_context
