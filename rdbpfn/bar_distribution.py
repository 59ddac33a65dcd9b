"""The predictive distribution of the regression head: a bar distribution over a number.

A regression model (``ModelConfig(task="regression")``) reads the context's targets
standardised with the context's own mean and standard deviation (:func:`target_scale`) and
returns, for every query row, ``n_bins`` logits over fixed bins of the standardised target:
a piecewise-constant density (TabPFN's "bar distribution"). The bins are narrow where a
standard normal puts its mass and wide in the tails (:func:`default_borders`); targets
beyond ``+-clip`` standard deviations count in the outer bins. Training minimises the
negative log density of the query targets (:meth:`BarDistribution.loss`); predictions read
the mean, the standard deviation or quantiles off the same distribution, then undo the
standardisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BarDistribution", "default_borders", "target_scale"]

MIN_SCALE = 1e-12
"""Smallest standard deviation :func:`target_scale` divides by (relative to the mean)."""


def default_borders(n_bins: int, clip: float) -> Tensor:
    """``n_bins + 1`` increasing borders on standardised targets: the inner ones at the
    standard normal's ``i / n_bins`` quantiles, the outer two at ``-clip`` and ``+clip``.

    Raises:
        ValueError: fewer than 2 bins, or a clip inside the inner borders.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins={n_bins}; a bar distribution needs at least 2 bins.")
    # on the CPU whatever the default device (models are built under torch.device("meta"))
    probabilities = torch.arange(1, n_bins, dtype=torch.float64, device="cpu") / n_bins
    inner = math.sqrt(2.0) * torch.erfinv(2.0 * probabilities - 1.0)
    if clip <= float(inner[-1]):
        raise ValueError(f"clip={clip} is inside the inner borders (last {float(inner[-1]):.2f}); "
                         "use a larger clip or fewer bins.")
    outer = torch.tensor([clip], dtype=torch.float64, device="cpu")
    return torch.cat([-outer, inner, outer]).to(torch.float32)


def target_scale(y_context: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of the context targets, per episode: (B, N) -> (B, 1)
    each. The deviation is floored at ``MIN_SCALE * (1 + |mean|)`` so that a constant
    context does not divide by zero (the regressor refuses constant targets before)."""
    mean = y_context.mean(dim=1, keepdim=True)
    std = y_context.std(dim=1, keepdim=True, unbiased=False)
    return mean, torch.maximum(std, MIN_SCALE * (1.0 + mean.abs()))


class BarDistribution:
    """A piecewise-constant density on ``borders`` (``n_bins + 1`` increasing values).

    Every method takes logits (..., n_bins) and works on the last dimension.
    """

    def __init__(self, borders: Tensor) -> None:
        borders = torch.as_tensor(borders, dtype=torch.float32, device="cpu")
        if borders.dim() != 1 or len(borders) < 3 or not bool((borders.diff() > 0).all()):
            raise ValueError("borders must be a 1-d increasing tensor of at least 3 values.")
        self.borders = borders
        self.widths = borders.diff()
        self.centers = borders[:-1] + self.widths / 2

    @property
    def n_bins(self) -> int:
        return len(self.widths)

    def _on(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        device = logits.device
        return self.borders.to(device), self.widths.to(device), self.centers.to(device)

    def bin_of(self, y: Tensor) -> Tensor:
        """Index of the bin holding each standardised target (outside: the outer bins)."""
        borders = self.borders.to(y.device)
        return torch.bucketize(y.contiguous(), borders[1:-1], right=True)

    def log_density(self, logits: Tensor, y: Tensor) -> Tensor:
        """log p(y) of standardised targets ``y`` (...,) under ``logits`` (..., n_bins)."""
        _, widths, _ = self._on(logits)
        index = self.bin_of(y)
        log_mass = F.log_softmax(logits.float(), dim=-1).gather(-1, index.unsqueeze(-1))
        return log_mass.squeeze(-1) - torch.log(widths[index])

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Mean negative log density: the training loss."""
        return -self.log_density(logits, y).mean()

    def mean(self, logits: Tensor) -> Tensor:
        _, _, centers = self._on(logits)
        return (logits.float().softmax(-1) * centers).sum(-1)

    def std(self, logits: Tensor) -> Tensor:
        """Standard deviation (uniform within each bin)."""
        _, widths, centers = self._on(logits)
        p = logits.float().softmax(-1)
        second = (p * (centers**2 + widths**2 / 12)).sum(-1)
        return (second - self.mean(logits) ** 2).clamp_min(0).sqrt()

    def quantile(self, logits: Tensor, q: float) -> Tensor:
        """The ``q`` quantile (0 < q < 1), linear within the bin where the CDF crosses q."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile q={q}; use 0 < q < 1.")
        borders, widths, _ = self._on(logits)
        p = logits.float().softmax(-1)
        cdf = p.cumsum(-1)
        index = torch.searchsorted(cdf, torch.full_like(cdf[..., :1], q)).clamp_max(
            self.n_bins - 1)
        before = (cdf.gather(-1, index) - p.gather(-1, index)).squeeze(-1)
        mass = p.gather(-1, index).squeeze(-1).clamp_min(1e-12)
        fraction = ((q - before) / mass).clamp(0, 1)
        return borders[index.squeeze(-1)] + fraction * widths[index.squeeze(-1)]
