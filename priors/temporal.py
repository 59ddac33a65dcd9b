"""Temporal vocabulary: trend, seasonality, spikes and noise composed into one signature
per table (seed 003, appendix C.1.2, "Temporal Latent Initialization").

Database time runs over [0, 1]. A :class:`TemporalSignature` is a set of curves on a grid
over that interval. It serves twice:

- as an *intensity*: timestamps of an activity table are drawn from ``exp(log_intensity)``
  (bursty, growing or seasonal event rates instead of i.i.d. uniform times), sorted;
- as *features*: ``features(t)`` gives every row the values of the curves at its time,
  which condition the row's latent initialisation (structure) and its content (GNN), so
  that column values drift, cycle and jump with time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

GRID_POINTS = 256
TREND_KINDS = ("flat", "linear", "exponential", "logistic", "decay", "sqrt", "piecewise", "u_shape")
SEASON_KINDS = ("none", "sine", "two_harmonics", "sawtooth", "square")
MAX_SPIKES = 4
# Each primitive enters a table's signature with this probability (trend is always drawn).
SEASON_PROBABILITY = 0.6
SPIKE_PROBABILITY = 0.4
# Number of features returned by TemporalSignature.features.
N_TEMPORAL_FEATURES = 5


@dataclass(frozen=True)
class TemporalSignature:
    """Curves over database time, each of shape (GRID_POINTS,), roughly unit scale.

    ``weights`` (4,) mixes trend, season, spikes and noise into the log-intensity.
    """

    grid: np.ndarray
    trend: np.ndarray
    season: np.ndarray
    spikes: np.ndarray
    noise: np.ndarray
    weights: np.ndarray

    @property
    def log_intensity(self) -> np.ndarray:
        """(GRID_POINTS,) log event rate: the weighted sum of the four primitives."""
        stacked = np.stack([self.trend, self.season, self.spikes, self.noise])
        return self.weights @ stacked

    def features(self, t: np.ndarray) -> np.ndarray:
        """Temporal features of rows at times ``t`` (n,) -> (n, N_TEMPORAL_FEATURES):
        centred time, trend, season, spikes, noise (linear interpolation on the grid)."""
        t = np.asarray(t, dtype=np.float64)
        columns = [t - 0.5]
        for curve in (self.trend, self.season, self.spikes, self.noise):
            columns.append(np.interp(t, self.grid, curve))
        return np.stack(columns, axis=1)

    def sample_times(
        self,
        rng: np.random.Generator,
        n: int,
        start: float = 0.0,
        end: float = 1.0,
        log_weight: np.ndarray | None = None,
    ) -> np.ndarray:
        """``n`` sorted times in [start, end] drawn from the intensity (inverse CDF on the
        piecewise-constant grid). ``log_weight`` (GRID_POINTS,) is added to the log-intensity
        (e.g. the log share of parent rows that exist: activity grows with the population)."""
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(
                f"time window [{start}, {end}] must satisfy 0 <= start < end <= 1"
            )
        edges = self.grid
        log_rate = self.log_intensity[:-1]
        if log_weight is not None:
            log_rate = log_rate + log_weight[:-1]
        rate = np.exp(log_rate - log_rate.max())
        overlap = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0.0, None)
        mass = rate * overlap
        cdf = np.cumsum(mass)
        u = rng.random(n) * cdf[-1]
        cell = np.minimum(np.searchsorted(cdf, u, side="right"), len(mass) - 1)
        lo = np.maximum(edges[:-1][cell], start)
        hi = np.minimum(edges[1:][cell], end)
        return np.sort(lo + rng.random(n) * (hi - lo))


def _standardise(curve: np.ndarray) -> np.ndarray:
    spread = curve.std()
    return (curve - curve.mean()) / spread if spread > 1e-12 else np.zeros_like(curve)


def sample_trend(rng: np.random.Generator, grid: np.ndarray) -> np.ndarray:
    """One trend pattern (growth, decay, saturation, regime change, ...), standardised."""
    kind = TREND_KINDS[rng.integers(len(TREND_KINDS))]
    if kind == "flat":
        return np.zeros_like(grid)
    if kind == "linear":
        curve = grid
    elif kind == "exponential":
        curve = np.exp(rng.uniform(1.0, 5.0) * grid)
    elif kind == "logistic":
        curve = 1.0 / (1.0 + np.exp(-rng.uniform(8.0, 30.0) * (grid - rng.uniform(0.2, 0.8))))
    elif kind == "decay":
        curve = np.exp(-rng.uniform(1.0, 5.0) * grid)
    elif kind == "sqrt":
        curve = np.sqrt(grid)
    elif kind == "piecewise":
        curve = (grid > rng.uniform(0.2, 0.8)).astype(np.float64) + 0.3 * grid
    else:  # u_shape
        curve = (grid - rng.uniform(0.3, 0.7)) ** 2
    return _standardise(curve) * rng.choice((-1.0, 1.0))


def sample_season(rng: np.random.Generator, grid: np.ndarray) -> np.ndarray:
    """One cyclic pattern; periods from 1/60 to 1/2 of the time span, standardised."""
    kind = SEASON_KINDS[rng.integers(len(SEASON_KINDS))]
    if kind == "none":
        return np.zeros_like(grid)
    period = float(np.exp(rng.uniform(np.log(1 / 60), np.log(0.5))))
    phase = rng.uniform(0.0, 1.0)
    cycle = grid / period + phase
    if kind == "sine":
        curve = np.sin(2 * np.pi * cycle)
    elif kind == "two_harmonics":
        curve = np.sin(2 * np.pi * cycle) + rng.uniform(0.2, 0.8) * np.sin(4 * np.pi * cycle + 1.0)
    elif kind == "sawtooth":
        curve = cycle % 1.0
    else:  # square
        curve = (cycle % 1.0 < rng.uniform(0.2, 0.8)).astype(np.float64)
    return _standardise(curve)


def sample_spikes(rng: np.random.Generator, grid: np.ndarray) -> np.ndarray:
    """Sparse narrow bumps (e.g. a sales day): 1..MAX_SPIKES Gaussians, peak height ~2-6."""
    n_spikes = int(rng.integers(1, MAX_SPIKES + 1))
    centres = rng.uniform(0.0, 1.0, size=n_spikes)
    widths = rng.uniform(0.003, 0.03, size=n_spikes)
    heights = rng.uniform(2.0, 6.0, size=n_spikes)
    bumps = heights * np.exp(-0.5 * ((grid[:, None] - centres) / widths) ** 2)
    return bumps.sum(axis=1)


def sample_noise(rng: np.random.Generator, grid: np.ndarray) -> np.ndarray:
    """AR(1) noise on the grid (correlation 0.5-0.98 between neighbours), standardised."""
    rho = rng.uniform(0.5, 0.98)
    shocks = rng.standard_normal(grid.size)
    return _standardise(lfilter([1.0], [1.0, -rho], shocks))  # x_i = rho x_{i-1} + e_i


def sample_signature(rng: np.random.Generator) -> TemporalSignature:
    """A table's temporal signature: a random mixture of trend, season, spikes and noise."""
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    trend = sample_trend(rng, grid)
    season = sample_season(rng, grid) if rng.random() < SEASON_PROBABILITY else np.zeros_like(grid)
    spikes = sample_spikes(rng, grid) if rng.random() < SPIKE_PROBABILITY else np.zeros_like(grid)
    noise = sample_noise(rng, grid)
    weights = np.array([
        rng.uniform(0.0, 1.5),  # trend
        rng.uniform(0.0, 1.0),  # season
        rng.uniform(0.5, 1.0),  # spikes (already zero when absent)
        rng.uniform(0.0, 0.4),  # noise
    ])
    return TemporalSignature(grid, trend, season, spikes, noise, weights)
