"""Scikit-learn in-context regressor on top of a trained regression :class:`~rdbpfn.model.RDBPFN`.

``fit`` stores the context and caches it once per ensemble member; ``predict`` is one pass
over the query rows (see :mod:`rdbpfn.in_context` for the ensemble, the limits on rows and
columns, memory and pickling, shared with :class:`~rdbpfn.classifier.RDBPFNClassifier`).

The model predicts a distribution, not only a point: for every query row a bar
distribution over the target standardised with the context's mean and standard deviation
(:mod:`rdbpfn.bar_distribution`). With ``linear_trend=True`` (the default) the model reads
not the targets but their residuals from a cross-fitted ridge regression on the context
(:mod:`rdbpfn.trend`), and every prediction adds the query row's trend back: the ridge
carries what is linear, the model what is not and the spread. Members see the targets
with odd members' signs flipped; their distributions are mirrored back (the bins are
symmetric around 0) and averaged, a mixture from which :meth:`RDBPFNRegressor.predict`
reads the mean (``return_std=True``: and the standard deviation),
:meth:`RDBPFNRegressor.predict_quantiles` any quantiles and
:meth:`RDBPFNRegressor.predict_distribution` the cumulative distribution, all mapped back
to the target's units. Since the trend differs from row to row, so does the grid of
:meth:`RDBPFNRegressor.predict_distribution`.

Targets must be finite numbers that are not all equal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d

from rdbpfn.bar_distribution import MIN_SCALE
from rdbpfn.in_context import (
    DEFAULT_MAX_CACHE_MB,
    DEFAULT_MAX_CONTEXT,
    DEFAULT_QUERY_BATCH_SIZE,
    InContextEstimator,
    Member,
    _generator,
)
from rdbpfn.trend import LinearTrend, fit_trend

__all__ = ["ATOM_WIDTH", "RDBPFNRegressor"]

ATOM_WIDTH = 1e-9
"""Width, relative to ``1 + |value|`` in standardised units, of the interval that carries
an atom's mass (see :meth:`RDBPFNRegressor._member_grid`): narrow enough to read as the
value itself, wide enough that the cumulative distribution stays piecewise linear."""


class RDBPFNRegressor(RegressorMixin, InContextEstimator):
    """In-context regressor: ``fit`` stores the context, ``predict`` is one pass.

    Parameters
    ----------
    model_path : path to a regression checkpoint. ``None`` uses
        ``$RDBPFN_REGRESSION_CHECKPOINT``, then the shipped
        ``checkpoints/rdbpfn-regression.pt``.
    device, n_estimators, max_context, max_features, query_batch_size, max_cache_mb,
    random_state, verbose : as :class:`~rdbpfn.classifier.RDBPFNClassifier`'s; larger
        contexts are subsampled uniformly per member.
    linear_trend : take a cross-fitted ridge trend out of the targets before the model reads
        them and add it back to every prediction (:mod:`rdbpfn.trend`); ``False`` gives the
        model the targets themselves. Contexts under ``rdbpfn.trend.MIN_ROWS`` rows, or whose
        targets are mostly one value (``rdbpfn.trend.POINT_MASS_SHARE``), get no trend.

    Attributes
    ----------
    model_, checkpoint_path_, encoder_, context_, members_, cached_ : as the classifier's.
    context_labels_ : (m,) float32 standardised target (or residual) of every ``context_`` row.
    trend_ : the fitted :class:`~rdbpfn.trend.LinearTrend`, or ``None`` (``linear_trend=False``,
        or a context without one, see ``linear_trend``).
    target_mean_, target_scale_ : mean and standard deviation of what the model reads over
        all fitted rows (the targets, or their residuals from ``trend_``), which map the
        model's standardised outputs back to the target's units.
    integer_targets_ : whether every context target is an integer and some repeat (a count,
        a score): :meth:`predict_quantiles` then returns integers (see there).
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike | None = None,
        device: str = "cpu",
        n_estimators: int = 4,
        max_context: int = DEFAULT_MAX_CONTEXT,
        max_features: int | None = None,
        query_batch_size: int = DEFAULT_QUERY_BATCH_SIZE,
        max_cache_mb: float = DEFAULT_MAX_CACHE_MB,
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool = False,
        linear_trend: bool = True,
    ) -> None:
        super().__init__(
            model_path=model_path, device=device, n_estimators=n_estimators,
            max_context=max_context, max_features=max_features,
            query_batch_size=query_batch_size, max_cache_mb=max_cache_mb,
            random_state=random_state, verbose=verbose)
        self.linear_trend = linear_trend

    @staticmethod
    def _check_y(y: object, n_rows: int) -> np.ndarray:
        if y is None:
            raise ValueError("RDBPFNRegressor requires y to be passed, but the target y is "
                             "None; pass one number per row of X.")
        values = np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y)
        values = column_or_1d(values, warn=True)
        if len(values) != n_rows:
            raise ValueError(
                f"X has {n_rows} rows but y has {len(values)} targets; pass one per row.")
        try:
            numbers = values.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"y must be numbers for a regressor ({error}); for classes use "
                "RDBPFNClassifier.") from None
        bad = ~np.isfinite(numbers)
        if bad.any():
            raise ValueError(
                f"y contains {int(bad.sum())} NaN or infinite targets (first at row "
                f"{int(np.flatnonzero(bad)[0])}); drop those rows before fit.")
        if n_rows == 1:
            raise ValueError("y has 1 sample (n_samples=1); a regressor needs at least 2 "
                             "context rows with different targets.")
        if n_rows and np.ptp(numbers) == 0:
            raise ValueError(
                f"y is constant ({numbers[0]!r}); a regressor needs targets that vary. "
                "Predict that constant directly.")
        return numbers

    # ---- fit ---------------------------------------------------------------------------
    def fit(self, X: object, y: object) -> RDBPFNRegressor:
        """Store the context (X, y) and compute its cache once per ensemble member."""
        self._check_params()
        table = self._check_X(X, reset=True)
        targets = self._check_y(y, table.shape[0])
        if self.max_context < 2:
            raise ValueError(f"max_context={self.max_context}; a regressor needs at least 2 "
                             "context rows.")
        if not isinstance(self.linear_trend, (bool, np.bool_)):
            raise ValueError(f"linear_trend={self.linear_trend!r}; pass True or False.")
        loaded = self._load("regression")
        self.integer_targets_ = bool(np.array_equal(targets, np.round(targets))
                                     and len(np.unique(targets)) < len(targets))
        encoded = self._encode_context(table)
        fitted = None
        if self.linear_trend:
            fitted = fit_trend(encoded, targets, _trend_seed(self.random_state))
        self.trend_: LinearTrend | None = None if fitted is None else fitted[0]
        read = targets if fitted is None else targets - fitted[1]
        self.target_mean_ = float(read.mean())
        self.target_scale_ = max(float(read.std()), MIN_SCALE * (1.0 + abs(self.target_mean_)))
        standard = ((read - self.target_mean_) / self.target_scale_).astype(np.float32)
        n_rows = len(standard)
        self._fit_members(
            encoded, standard, loaded.config,
            lambda rng: np.sort(rng.choice(n_rows, size=self.max_context, replace=False)),
            shifts=2,
        )
        return self

    def _member_targets(self, member: Member, targets: np.ndarray) -> np.ndarray:
        """The member's standardised targets, re-standardised on its own rows (as in
        training), sign-flipped for odd members: (1, N) float32."""
        mean, scale = targets.mean(), targets.std()
        standard = (targets - mean) / max(float(scale), 1e-12)
        return (standard * (-1.0 if member.shift else 1.0))[None].astype(np.float32)

    def _batch_size(self) -> int:
        return 1

    # ---- the predictive distribution ----------------------------------------------------
    def _member_grid(self, member: Member) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A member's bins in the fitted standardised units (its context rows were
        re-standardised on their own, see :meth:`_member_targets`): borders (b + 1,), and
        for every bin the model bin whose mass it carries (b,) and whether it carries it
        (b,). A model bin whose context targets are all one value (at least two rows, e.g.
        the zeros of a count) is an *atom*: its mass sits on that value, not spread over
        the bin (an interval of width ``ATOM_WIDTH`` there), so that a median or a mean can
        be exactly 0 when the context says so."""
        bars = self.model_.bar_distribution()
        rows = slice(None) if member.rows is None else member.rows
        targets = self.context_labels_[rows].astype(np.float64)
        mean, scale = float(targets.mean()), max(float(targets.std()), 1e-12)
        borders = bars.borders.double().numpy() * scale + mean
        n_bins = len(borders) - 1
        which = np.clip(np.searchsorted(borders, targets, side="right") - 1, 0, n_bins - 1)
        low = np.full(n_bins, np.inf)
        high = np.full(n_bins, -np.inf)
        np.minimum.at(low, which, targets)
        np.maximum.at(high, which, targets)
        count = np.bincount(which, minlength=n_bins)
        atoms = (count >= 2) & (low == high)
        edges, source, carries = [], [], []
        for index in range(n_bins):
            left, right = borders[index], borders[index + 1]
            if not atoms[index]:
                edges.append(left), source.append(index), carries.append(True)
                continue
            half = ATOM_WIDTH * (1.0 + abs(low[index])) / 2
            start, stop = max(low[index] - half, left), min(low[index] + half, right)
            for piece_left, piece_right, mass in ((left, start, False), (start, stop, True),
                                                  (stop, right, False)):
                if piece_right > piece_left:
                    edges.append(piece_left), source.append(index), carries.append(mass)
        edges.append(borders[-1])
        return np.asarray(edges), np.asarray(source), np.asarray(carries)

    def _member_bins(self, logits: torch.Tensor, member: Member,
                     grid: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """(1, q, bins) logits -> (q, b) probabilities over the member's bins (see
        :meth:`_member_grid`), mirrored back for a flipped member (the model's bins are
        symmetric around 0)."""
        probabilities = logits[0].double().softmax(dim=-1).cpu().numpy()
        if member.shift:
            probabilities = probabilities[:, ::-1]
        _, source, carries = grid
        return probabilities[:, source] * carries

    def _to_units(self, values: np.ndarray) -> np.ndarray:
        return values * self.target_scale_ + self.target_mean_

    def _trend(self, encoded: np.ndarray) -> np.ndarray:
        """(q,) the fitted trend of encoded query rows (zeros without one)."""
        trend = getattr(self, "trend_", None)  # absent in estimators pickled before trends
        return np.zeros(len(encoded)) if trend is None else trend.predict(encoded)

    def predict(self, X: object, return_std: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(n, p) table -> (n,) predictive means; with ``return_std=True`` also (n,) standard
        deviations of the predictive distribution (the members' mixture)."""
        check_is_fitted(self)

        def moments(logits: torch.Tensor, member: Member) -> np.ndarray:
            grid = self._member_grid(member)
            centers, widths = (grid[0][:-1] + grid[0][1:]) / 2, np.diff(grid[0])
            p = self._member_bins(logits, member, grid)
            return np.stack([p @ centers, p @ (centers**2 + widths**2 / 12)], axis=1)

        encoded = self._encode_queries(X)
        first, second = self._accumulate(encoded, 2, moments).T
        mean = self._to_units(first) + self._trend(encoded)
        if not return_std:
            return mean
        return mean, np.sqrt(np.maximum(second - first**2, 0.0)) * self.target_scale_

    def predict_distribution(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        """The predictive distribution of every row as its cumulative distribution function
        on a grid: ``(grid (n, G), cdf (n, G))`` in the target's units, piecewise linear
        between a row's grid points, 0 at its first and 1 at its last (the members'
        mixture, on the union of their bin borders, shifted by the row's trend)."""
        encoded = self._encode_queries(X)
        grids = {id(member): self._member_grid(member) for member in self.members_}
        grid = np.unique(np.concatenate([bins[0] for bins in grids.values()]))

        def cdf(logits: torch.Tensor, member: Member) -> np.ndarray:
            bins = grids[id(member)]
            borders = bins[0]
            mass = np.concatenate([np.zeros((logits.shape[1], 1)), np.cumsum(
                self._member_bins(logits, member, bins), axis=1)], axis=1)
            # each grid point's place among this member's borders (same for every row)
            right = np.clip(np.searchsorted(borders, grid, side="right"), 1, len(borders) - 1)
            weight = np.clip((grid - borders[right - 1]) / (borders[right] - borders[right - 1]),
                             0.0, 1.0)
            return mass[:, right - 1] * (1 - weight) + mass[:, right] * weight

        shifted = self._to_units(grid)[None, :] + self._trend(encoded)[:, None]
        return shifted, self._accumulate(encoded, len(grid), cdf)

    def predict_quantiles(self, X: object, quantiles: Sequence[float] = (0.05, 0.5, 0.95)
                          ) -> np.ndarray:
        """(n, p) table -> (n, len(quantiles)) quantiles of the predictive distribution,
        e.g. a 90% interval from (0.05, 0.95).

        With several members these are the members' quantiles averaged level by level
        (Vincentization), not the quantiles of their mixture (:meth:`predict_distribution`):
        the mixture widens with every disagreement between members, and its 90% intervals
        covered more than 95% of the regression suite's targets at k = 256.

        Integer targets (``integer_targets_``: counts, scores) get integer quantiles: the
        number ``v`` takes the mass of ``(v - 0.5, v + 0.5]`` (a continuity correction), so a
        quantile is the nearest integer to the continuous one. The median of "games next
        season" for a player who stopped is then 0, not 0.2."""
        encoded = self._encode_queries(X)
        levels = np.asarray(quantiles, dtype=np.float64)
        if levels.ndim != 1 or not ((levels > 0) & (levels < 1)).all():
            raise ValueError(f"quantiles={list(quantiles)}; pass levels in (0, 1).")

        def member_quantiles(logits: torch.Tensor, member: Member) -> np.ndarray:
            bins = self._member_grid(member)
            borders = bins[0]
            p = self._member_bins(logits, member, bins)  # (q, bins)
            mass = np.cumsum(p, axis=1)  # mass up to each bin's right border
            rows = np.arange(len(p))
            out = np.empty((len(p), len(levels)))
            for j, level in enumerate(levels):
                bin_ = np.minimum((mass < level).sum(axis=1), p.shape[1] - 1)
                below = np.where(bin_ > 0, mass[rows, np.maximum(bin_ - 1, 0)], 0.0)
                inside = np.clip((level - below) / np.maximum(p[rows, bin_], 1e-300), 0.0, 1.0)
                out[:, j] = borders[bin_] + inside * (borders[bin_ + 1] - borders[bin_])
            return out

        out = self._to_units(self._accumulate(encoded, len(levels), member_quantiles))
        out += self._trend(encoded)[:, None]
        return np.round(out) if getattr(self, "integer_targets_", False) else out


def _trend_seed(random_state: int | np.random.RandomState | None) -> int:
    """The seed of the trend's row sample (contexts over ``rdbpfn.trend.MAX_ROWS``), drawn
    from ``random_state`` apart from the members'."""
    return int(_generator(random_state).integers(2**31 - 1))
