"""From a database and a question to predictions, with context labels from its own history.

:func:`predict` answers a :class:`~rdbpfn.query.Query` at a time ``at`` with no labels from
the user: it picks *anchor* times before ``at`` whose label windows end by ``at``, labels
the entities that existed at each anchor from what happened next (the database's history),
and predicts for the entities that exist at ``at`` in context, one forward pass, with
:class:`~rdbpfn.relational.RelationalClassifier` (a yes/no query: a probability; the
context holds the rarer answer as often as the history allows, up to half its rows, and the
probabilities are calibrated back to the history's rate on held-out history rows) or
:class:`~rdbpfn.relational.RelationalRegressor` (a query without a comparison: a number,
its spread, median and 90% interval; for COUNT and SUM learnt as the change from the last
window, with separate contexts and models for entities active and idle in it). Nothing
after ``at`` is read: the anchors' labels end by ``at`` and every feature sees rows with
time <= its cutoff.

:func:`backtest` does that at past times whose outcome the database already knows, and
scores it against the true labels, the obvious heuristic (activity in the last window of
the same length; for a number: the same aggregation over the last window) and a
gradient-boosted tree model on the same features; it writes a small report (JSON, CSV,
markdown, a PNG: ROC and calibration curves, or predicted against true values).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

from rdbpfn.atomic import atomic_write, atomic_write_json, atomic_write_text
from rdbpfn.database import Database
from rdbpfn.encoding import TableEncoder
from rdbpfn.query import Query
from rdbpfn.relational import CUTOFF_COLUMN, RelationalClassifier, RelationalRegressor

__all__ = ["MAX_ANCHORS", "Forecast", "backtest", "predict"]

MAX_ANCHORS = 12
"""Most anchor times :func:`predict` labels when ``n_anchors`` is not given."""
CONTEXT_ROWS = 1024
"""Default labelled context rows (the shipped model's largest trained context)."""
POOL_FACTOR = 4
"""Without ``n_anchors``, anchors are added until the labelled pool holds this many times
the context rows (or ``MAX_ANCHORS`` are used)."""
RARE_SHARE = 0.5
"""A yes/no context holds the rarer answer as often as the history allows, up to this share
of its rows (case-control sampling; the probabilities are then calibrated to the history's
rate, see :class:`Calibration`)."""
MIN_SEGMENT_ROWS = 32
"""A relative numeric forecast fits one model on the history's rows with activity in their
last window and one on the idle rows when each holds at least this many rows."""
ADDITIVE = ("count", "sum")
"""Aggregations whose numeric queries are predicted, by default, as the change from the
same aggregation over the last window of the query's length (0 for an entity without
rows there)."""
MIN_CALIBRATION_ROWS = 10
"""Held-out rows of each answer needed to fit the calibration; with fewer, the odds are
only corrected for the context's answer rate."""


def _last_window(query: Query, db: Database, at: pd.Timestamp, entities: pd.Series,
               fill: float) -> np.ndarray:
    """The obvious guess from the last window of the query's length up to ``at``: the
    number of child rows (a yes/no query's score), or the query's own aggregation there (a
    number: "same as the last window"; ``fill`` where it is undefined)."""
    binary = query.task == "binary"
    recent = Query.build(aggregation="count" if binary else query.aggregation,
                         table=query.table, column="*" if binary else query.column,
                         start=query.start, end=query.end, unit=query.unit,
                         entity=query.entity, key=query.key)
    with warnings.catch_warnings():  # undefined AVG/MIN/MAX windows are filled below
        warnings.simplefilter("ignore", UserWarning)
        values = recent.recent(db, [at])
    by_entity = dict(zip(values[query.key], values["label"], strict=True))
    default = 0.0 if binary or query.aggregation in ADDITIVE else fill
    return entities.map(by_entity).fillna(default).to_numpy(dtype=np.float64)


def _last_windows(query: Query, db: Database, rows: pd.DataFrame) -> np.ndarray:
    """:func:`_last_window` of every ``[key, cutoff_time]`` row at its own cutoff: (n,)."""
    out = np.empty(len(rows))
    for cutoff, group in rows.groupby(CUTOFF_COLUMN, sort=False):
        out[rows.index.get_indexer(group.index)] = _last_window(query, db, cutoff,
                                                                group[query.key], 0.0)
    return out


def _relative(query: Query, relative: bool | None) -> bool:
    """Whether a forecast predicts the change from the last window (see :func:`predict`)."""
    additive = query.task != "binary" and query.aggregation in ADDITIVE
    if relative is None:
        return additive
    if relative and not additive:
        raise ValueError(
            f"relative=True needs a numeric COUNT or SUM query, whose last window is 0 for "
            f"an entity without rows; {query} is not one. Pass relative=False.")
    return bool(relative)


class Routed(NamedTuple):
    """Rows of a question routed to a forecast's estimators (:meth:`Forecast.route`)."""

    last: np.ndarray  # (n,) each row's last-window value (0 unless the forecast is relative)
    # (estimator or constant change, (n,) mask of its rows, their selected features or None)
    parts: list[tuple[RelationalClassifier | RelationalRegressor | float, np.ndarray,
                      pd.DataFrame | None]]


@dataclass
class Forecast:
    """What :func:`predict` used: the fitted estimator(s) and their context."""

    query: Query
    at: pd.Timestamp
    anchors: list[pd.Timestamp]
    # [key, cutoff_time, label] (relative numbers: and last_window): the rows the model saw
    context: pd.DataFrame
    # every row; a segmented numeric forecast: the rows with activity in their last window
    estimator: RelationalClassifier | RelationalRegressor
    notes: list[str] = field(default_factory=list)
    calibration: Calibration | None = None  # yes/no queries: context -> history rate
    positive_rate: float | None = None  # yes/no queries: the history's rate (the pool's)
    relative: bool = False  # numbers: the model predicts the change from the last window
    # segmented: the rows whose last window is 0, or the one change every such row showed
    idle: RelationalRegressor | float | None = None

    def parts(self, last_window: np.ndarray
              ) -> list[tuple[RelationalClassifier | RelationalRegressor | float, np.ndarray]]:
        """(estimator or constant change, rows it answers) for rows with these last-window
        values."""
        if self.idle is None:
            return [(self.estimator, np.ones(len(last_window), dtype=bool))]
        return [(self.estimator, last_window != 0), (self.idle, last_window == 0)]

    def route(self, rows: pd.DataFrame) -> Routed:
        """``[key, cutoff_time]`` rows sent to the estimators that answer them (see
        :meth:`parts`), with each part's selected DFS features computed once."""
        last = (_last_windows(self.query, self.estimator.database, rows) if self.relative
                else np.zeros(len(rows)))
        parts = []
        for estimator, mask in self.parts(last):
            fitted = isinstance(estimator, RelationalClassifier | RelationalRegressor)
            features = estimator.transform(rows[mask]) if fitted and mask.any() else None
            parts.append((estimator, mask, features))
        return Routed(last, parts)

    def numbers(self, rows: pd.DataFrame, routed: Routed | None = None
                ) -> dict[str, np.ndarray]:
        """A numeric query's answer for ``[key, cutoff_time]`` rows (``routed``: those rows
        already routed, :meth:`route`): ``prediction`` (the predictive mean), ``std``,
        ``median``, ``low_90`` and ``high_90``, each (n,) float64. A relative forecast adds
        each row's last-window value to the predicted change (the spread is the change's);
        a segmented one answers the rows idle in their last window with the estimator
        fitted on idle rows."""
        last, parts = routed if routed is not None else self.route(rows)
        out = {name: np.full(len(rows), np.nan) for name in NUMBER_COLUMNS}
        for estimator, mask, features in parts:
            if not mask.any():
                continue
            if features is None:  # every such row: one change
                for name in NUMBER_COLUMNS:
                    out[name][mask] = 0.0 if name == "std" else estimator + last[mask]
                continue
            mean, std = estimator.regressor_.predict(features, return_std=True)
            low, median, high = estimator.regressor_.predict_quantiles(
                features, SUMMARY_LEVELS).T
            for name, values in zip(NUMBER_COLUMNS, (mean, std, median, low, high),
                                    strict=True):
                out[name][mask] = values + (0.0 if name == "std" else last[mask])
        return out

    def probability(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of "yes" for rows of the selected features (what
        ``estimator.transform`` returns): (n,) float64."""
        raw = self.estimator.classifier_.predict_proba(features)[:, -1]
        return raw if self.calibration is None else self.calibration(raw)

    def describe(self) -> str:
        """One paragraph: anchors, context size and label rate (or mean), features."""
        labels = self.context["label"]
        first, last = min(self.anchors), max(self.anchors)
        summary = (f"{labels.mean():.1%} positive (history: {self.positive_rate:.1%}; "
                   f"{self.calibration})" if self.query.task == "binary"
                   else f"label mean {labels.mean():.4g}, median {labels.median():.4g}"
                   + ("; the model predicts the change from the last window"
                      if self.relative else ""))
        features = f"{len(self.estimator.features_)} DFS features selected from the context rows"
        if isinstance(self.idle, RelationalRegressor):
            idle = int((self.context["last_window"] == 0).sum())
            features = (f"two contexts, {len(self.context) - idle:,} rows active in their last "
                        f"window and {idle:,} idle, each with its own model and "
                        f"{len(self.estimator.features_)} / {len(self.idle.features_)} DFS "
                        "features")
        elif self.idle is not None:
            features += (f"; every row idle in its last window changed by {self.idle:g} in "
                         "the history, and so do the idle entities")
        return (
            f"context: {len(self.context):,} labelled (entity, anchor) rows from "
            f"{len(self.anchors)} anchor times {first.date()} .. {last.date()} "
            f"(label windows end by {self.at.date()}), {summary}; {features}."
        )


def _timestamp(value: Any, what: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{what}={value!r} is not a time ({error}); pass e.g. '2024-01-01'.") from None
    if pd.isna(stamp):
        raise ValueError(f"{what} is missing; pass a time such as '2024-01-01'.")
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _anchors(query: Query, db: Database, at: pd.Timestamp, n_anchors: int | None,
             step: Any) -> list[pd.Timestamp]:
    """Anchor times at - end, at - end - step, ... (newest first), none before the history."""
    earliest, _ = query.label_horizon(db)
    if at <= earliest:
        raise ValueError(
            f"at={at} is not after the database's first time {earliest}: there is no history "
            "to learn from. Pass a later time."
        )
    window = query.window()
    stride = window if step is None else pd.tseries.frequencies.to_offset(step)
    limit = n_anchors if n_anchors is not None else MAX_ANCHORS
    anchors, anchor = [], at - window
    while anchor > earliest and len(anchors) < limit:
        anchors.append(pd.Timestamp(anchor))
        anchor = anchor - stride
    if not anchors:
        raise ValueError(
            f"no anchor time fits between the database's first time {earliest} and "
            f"at={at} minus the label window ({query.end} {query.unit}): the history is "
            "shorter than one window. Pass a later `at` or use a shorter window."
        )
    return anchors


def _sample(labels: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most ``size`` rows, uniformly (the context of a numeric query)."""
    if len(labels) <= size:
        return labels.reset_index(drop=True)
    chosen = np.sort(rng.choice(len(labels), size=size, replace=False))
    return labels.iloc[chosen].reset_index(drop=True)


@dataclass(frozen=True)
class Calibration:
    """``logit(p) -> slope * logit(p) + intercept``: maps the probabilities of a classifier
    that saw a context with one answer rate to the history's rate.

    :meth:`fit` is Platt scaling on held-out history rows, weighted so that the two answers
    count as often as in the history; :meth:`odds_ratio` is the exact correction for a
    context sampled by answer (case-control), for when too few rows are held out.
    """

    slope: float
    intercept: float
    method: str

    def __call__(self, probability: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(probability) + self.intercept)))

    def __str__(self) -> str:
        return f"calibrated by {self.method}, slope {self.slope:.3g}"

    @classmethod
    def odds_ratio(cls, context_rate: float, history_rate: float) -> Calibration:
        """Scale the odds by the history's odds over the context's."""
        return cls(1.0, float(_logit(np.array(history_rate)) - _logit(np.array(context_rate))),
                   "the odds ratio")

    @classmethod
    def fit(cls, probability: np.ndarray, labels: np.ndarray, history_rate: float,
            context_rate: float) -> Calibration:
        """Platt scaling of ``probability`` against 0/1 ``labels`` of held-out rows, each
        answer weighted to the history's rate; the odds ratio when an answer has fewer than
        :data:`MIN_CALIBRATION_ROWS` rows or the fitted slope is not positive."""
        labels = np.asarray(labels)
        counts = np.bincount(labels, minlength=2)
        if counts.min() < MIN_CALIBRATION_ROWS:
            return cls.odds_ratio(context_rate, history_rate)
        weights = np.where(labels == 1, history_rate / counts[1],
                           (1.0 - history_rate) / counts[0]) * len(labels)
        model = LogisticRegression(C=1e6).fit(_logit(probability)[:, None], labels,
                                              sample_weight=weights)
        slope = float(model.coef_[0, 0])
        if slope <= 0:
            return cls.odds_ratio(context_rate, history_rate)
        return cls(slope, float(model.intercept_[0]), "Platt scaling on held-out history")


def _logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _balanced_sample(pool: pd.DataFrame, size: int, rng: np.random.Generator
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(context, held out): a context of at most ``size`` rows holding the rarer label in up
    to ``RARE_SHARE`` of its rows, and at most ``size`` of the other rows, uniformly."""
    labels = pool["label"].to_numpy()
    rare = int(np.mean(labels) <= 0.5) if len(labels) else 1  # the rarer answer
    by_label = {value: rng.permutation(np.flatnonzero(labels == value)) for value in (0, 1)}
    n_rare = min(len(by_label[rare]), int(size * RARE_SHARE))
    n_common = min(len(by_label[1 - rare]), size - n_rare)
    chosen = np.sort(np.concatenate([by_label[rare][:n_rare], by_label[1 - rare][:n_common]]))
    rest = np.setdiff1d(np.arange(len(pool)), chosen)
    held = np.sort(rng.choice(rest, size=min(size, len(rest)), replace=False))
    return (pool.iloc[chosen].reset_index(drop=True), pool.iloc[held].reset_index(drop=True))


def fit_from_history(
    db: Database,
    query: Query | str,
    at: Any,
    *,
    n_anchors: int | None = None,
    anchor_step: Any = None,
    context_rows: int = CONTEXT_ROWS,
    relative: bool | None = None,
    random_state: int = 0,
    verbose: bool = False,
    **classifier_options: Any,
) -> Forecast:
    """Label anchors before ``at`` from history and fit an estimator on them.

    Arguments as :func:`predict`. Returns the :class:`Forecast` (no prediction yet).
    """
    query = query if isinstance(query, Query) else Query(query)
    query.check(db)
    if context_rows < 2:
        raise ValueError(f"context_rows={context_rows}; pass at least 2.")
    at = _timestamp(at, "at")
    rng = np.random.default_rng(random_state)
    anchors = _anchors(query, db, at, n_anchors, anchor_step)
    pools, used = [], []
    for anchor in anchors:  # newest first: the most relevant history
        pools.append(query.labels(db, [anchor]))
        used.append(anchor)
        if n_anchors is None and sum(map(len, pools)) >= POOL_FACTOR * context_rows:
            break
    pool = pd.concat(pools, ignore_index=True)
    if pool["label"].nunique() < 2:
        value = pool["label"].iloc[0] if len(pool) else "none"
        raise ValueError(
            f"every one of the {len(pool):,} labelled rows at the anchors {used[-1].date()} .. "
            f"{used[0].date()} has the label {value}: history shows no contrast to learn "
            "from. Use more anchors (n_anchors=...), a later `at` or another threshold."
        )
    binary = query.task == "binary"
    options = {"database": db, "entity_table": query.entity, "random_state": random_state,
               "verbose": verbose, **classifier_options}
    if not binary:
        return _fit_numbers(query, at, used, pool, context_rows, _relative(query, relative),
                            rng, options, verbose)
    context, held_out = _balanced_sample(pool, context_rows, rng)
    estimator = RelationalClassifier(**options).fit(context[[query.key, CUTOFF_COLUMN]],
                                                    context["label"].to_numpy())
    forecast = Forecast(query, at, used, context, estimator)
    if held_out is not None:
        history_rate = float(pool["label"].mean())
        forecast.positive_rate = history_rate
        raw = (forecast.probability(estimator.transform(held_out[[query.key, CUTOFF_COLUMN]]))
               if len(held_out) else np.empty(0))
        forecast.calibration = Calibration.fit(
            raw, held_out["label"].to_numpy(), history_rate, float(context["label"].mean()))
    if verbose:
        print(forecast.describe(), file=sys.stderr)
    return forecast


def _fit_numbers(query: Query, at: pd.Timestamp, anchors: list[pd.Timestamp],
                 pool: pd.DataFrame, context_rows: int, relative: bool,
                 rng: np.random.Generator, options: dict[str, Any], verbose: bool
                 ) -> Forecast:
    """A numeric query's forecast: one regressor on a uniform sample of the pool, or, for a
    relative forecast whose pool holds at least :data:`MIN_SEGMENT_ROWS` rows with and
    without activity in their last window, one regressor per segment, each on up to
    ``context_rows`` rows of its own."""
    db = options["database"]
    if relative:
        pool = pool.assign(last_window=_last_windows(query, db, pool))
        active = pool["last_window"].to_numpy() != 0
        change = pool["label"].to_numpy() - pool["last_window"].to_numpy()
    segmented = (relative and min(active.sum(), (~active).sum()) >= MIN_SEGMENT_ROWS
                 and np.ptp(change[active]) > 0)
    segments = [pool[active], pool[~active]] if segmented else [pool]
    contexts, estimators = [], []
    for rows in segments:
        context = _sample(rows, context_rows, rng)
        targets = context["label"].to_numpy() - (
            context["last_window"].to_numpy() if relative else 0.0)
        contexts.append(context)
        if np.ptp(targets) == 0 and len(contexts) > 1:  # the idle rows all changed alike
            estimators.append(float(targets[0]))
            continue
        estimators.append(RelationalRegressor(**options).fit(
            context[[query.key, CUTOFF_COLUMN]], targets))
    forecast = Forecast(query, at, anchors, pd.concat(contexts, ignore_index=True),
                        estimators[0], relative=relative,
                        idle=estimators[1] if segmented else None)
    if verbose:
        print(forecast.describe(), file=sys.stderr)
    return forecast


INTERVAL = (0.05, 0.95)
"""The predictive interval (90%) that a numeric prediction reports and a backtest checks
the coverage of."""
SUMMARY_LEVELS = (INTERVAL[0], 0.5, INTERVAL[1])
"""The quantiles a numeric prediction reports: the interval's ends and the median."""
NUMBER_COLUMNS = ("prediction", "std", "median", "low_90", "high_90")
"""A numeric prediction's columns: the predictive mean, standard deviation, median and the
ends of the 90% interval."""


def predict(
    db: Database,
    query: Query | str,
    at: Any,
    *,
    n_anchors: int | None = None,
    anchor_step: Any = None,
    context_rows: int = CONTEXT_ROWS,
    relative: bool | None = None,
    random_state: int = 0,
    verbose: bool = True,
    **classifier_options: Any,
) -> pd.DataFrame:
    """Answer ``query`` for every entity that exists at ``at``, from history alone.

    Args:
        db: the database.
        query: a :class:`~rdbpfn.query.Query` or its text, e.g.
            ``"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id"``.
        at: the time to predict at; features see rows with time <= ``at``.
        n_anchors: anchor times to label (default: newest first until the labelled pool
            holds ``POOL_FACTOR x context_rows`` rows, at most :data:`MAX_ANCHORS`).
        anchor_step: time between anchors (default: the label window, so that their label
            windows do not overlap); a pandas offset or timedelta string such as ``"7D"``.
        context_rows: labelled rows the model sees: for a yes/no query the rarer answer
            in up to half of them (:data:`RARE_SHARE`), with up to as many other history
            rows held out to calibrate the probabilities to the history's rate
            (:class:`Calibration`); for a number, a uniform sample of the history.
        relative: for a numeric COUNT or SUM query (the default there, ``None``), the model
            learns and predicts the change from the same aggregation over the last window
            of the query's length, which is then added back: most entities repeat their
            last window (often 0), and a change of 0 is what the model learns best.
            When the history holds at least :data:`MIN_SEGMENT_ROWS` rows with and
            without activity in their last window, each kind gets its own context of up
            to ``context_rows`` rows and its own model (the active entities would
            otherwise be a few dozen rows of a uniform sample). ``False`` predicts the
            number itself (the only choice for AVG, MIN and MAX).
        random_state: seed of the sample and of the classifier's ensemble.
        verbose: print the context used and show progress.
        classifier_options: passed to :class:`~rdbpfn.relational.RelationalClassifier`
            or :class:`~rdbpfn.relational.RelationalRegressor` (``max_depth``,
            ``n_estimators``, ``model_path``, ``max_features``, ...).
    Returns:
        DataFrame ``[key, "probability"]`` (a yes/no query) or ``[key, "prediction",
        "std", "median", "low_90", "high_90"]`` (a number: the predictive mean, standard
        deviation, median and 90% interval; the median is the better point for absolute
        error when the target is skewed, e.g. mostly zero), one row per entity
        existing at ``at`` (and passing WHERE); ``attrs["context"]`` describes the context
        used.
    Raises:
        ValueError: a bad query, ``at`` before any history, no anchor or no contrast in the
            history.
    """
    forecast = fit_from_history(
        db, query, at, n_anchors=n_anchors, anchor_step=anchor_step, context_rows=context_rows,
        relative=relative, random_state=random_state, verbose=verbose, **classifier_options)
    return _predict(forecast)


def _predict(forecast: Forecast) -> pd.DataFrame:
    query, estimator = forecast.query, forecast.estimator
    targets = query.entities(estimator.database, [forecast.at])
    if isinstance(estimator, RelationalRegressor):
        out = pd.DataFrame({query.key: targets[query.key].to_numpy(),
                            **forecast.numbers(targets)})
    else:
        probability = forecast.probability(estimator.transform(targets))
        out = pd.DataFrame({query.key: targets[query.key], "probability": probability})
    out.attrs["context"] = forecast.describe()
    out.attrs["anchors"] = [str(a) for a in forecast.anchors]
    out.attrs["features"] = list(estimator.features_)
    return out


# ------------------------------------------------------------------------------ backtest


def _tree_model(random_state: int, binary: bool = True) -> tuple[str, Any]:
    """LightGBM when installed (an optional extra), else scikit-learn's histogram GBM."""
    try:
        import lightgbm  # optional heavy package: only backtests use it

        kind = lightgbm.LGBMClassifier if binary else lightgbm.LGBMRegressor
        return "LightGBM", kind(n_estimators=200, learning_rate=0.05,
                                random_state=random_state, verbose=-1)
    except ImportError:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        kind = HistGradientBoostingClassifier if binary else HistGradientBoostingRegressor
        return "HistGradientBoosting", kind(random_state=random_state)


def _tree_predictions(forecast: Forecast, routed: Routed, random_state: int
                      ) -> tuple[str, np.ndarray, dict[str, float]]:
    """The tree model's answers for rows routed by ``forecast`` (:meth:`Forecast.route`),
    learnt as RDB-PFN learns: on the same context rows and selected features, with the
    same targets (the label, or its change from the last window), one tree model per
    estimator of a segmented forecast. Returns (its name, (n,) probabilities of "yes" or
    numbers, feature importances of the main estimator's tree)."""
    query, context = forecast.query, forecast.context
    binary = query.task == "binary"
    context_last = (context["last_window"].to_numpy() if forecast.relative
                    else np.zeros(len(context)))
    out, importance = np.full(len(routed.last), np.nan), {}
    name = _tree_model(random_state, binary)[0]
    for (estimator, rows_mask, features), (_, context_mask) in zip(
            routed.parts, forecast.parts(context_last), strict=True):
        if not rows_mask.any():
            continue
        if features is None:
            out[rows_mask] = estimator + routed.last[rows_mask]  # one change for all of them
            continue
        tree = _tree_model(random_state, binary)[1]
        encoder = TableEncoder()
        train = estimator.transform(context.loc[context_mask, [query.key, CUTOFF_COLUMN]])
        train = encoder.fit(train).encode(train)
        labels = context["label"].to_numpy()[context_mask] - context_last[context_mask]
        tree.fit(np.where(np.isfinite(train), train, np.nan), labels)
        test = encoder.encode(features)
        test = np.where(np.isfinite(test), test, np.nan)
        out[rows_mask] = (tree.predict_proba(test)[:, -1] if binary
                          else tree.predict(test) + routed.last[rows_mask])
        weights = getattr(tree, "feature_importances_", None)
        if estimator is forecast.estimator and weights is not None:
            importance = dict(zip(estimator.features_, np.asarray(weights, float), strict=True))
    return name, out, importance


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC, NaN when only one class occurs."""
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    used = [b for b in range(bins) if (which == b).any()]
    return (np.array([p[which == b].mean() for b in used]),
            np.array([y[which == b].mean() for b in used]))


def backtest(
    db: Database,
    query: Query | str,
    at: Sequence[Any],
    *,
    out: str | os.PathLike | None = None,
    random_state: int = 0,
    verbose: bool = True,
    **predict_options: Any,
) -> pd.DataFrame:
    """Predict at past times whose outcome is known and score it.

    For each time in ``at``: :func:`predict` from the history before it; the true labels
    of the entities that exist then; the heuristic (rows in the last window of the same
    length; for a number: the same aggregation over that window); a gradient-boosted tree
    model (LightGBM when installed) fitted on the same context rows and selected features.
    With ``out``, writes ``backtest.json``, ``backtest.csv``, ``backtest.md`` (with the
    features that mattered most to the tree model) and ``backtest.png`` (ROC and
    calibration curves; for a number: predicted against true values).

    Returns:
        DataFrame, one row per time: ``at``, ``n``, then for a yes/no query
        ``positive_rate``, ``rdbpfn_auc``, ``heuristic_auc``, ``<tree>_auc``; for a number
        ``mean``, ``rdbpfn_mae``, ``heuristic_mae``, ``<tree>_mae``, the same with ``_r2``,
        ``rdbpfn_median_mae`` (the MAE of the predictive median) and ``rdbpfn_coverage_90``
        (share of true values inside the 90% predictive interval); then ``n_anchors``,
        ``context_rows``.
    """
    query = query if isinstance(query, Query) else Query(query)
    query.check(db)
    _, latest = query.label_horizon(db)
    times = [_timestamp(t, "at") for t in at]
    late = [t for t in times if t > latest]
    if late:
        raise ValueError(
            f"backtest times {[str(t.date()) for t in late]} are after {latest.date()}, the "
            "last time whose label window the database has seen in full; pick earlier times."
        )
    binary = query.task == "binary"
    rows, curves, importances = [], [], {}
    tree_name = _tree_model(random_state, binary)[0]
    for time in times:
        forecast = fit_from_history(db, query, time, random_state=random_state,
                                    verbose=verbose, **predict_options)
        truth = query.labels(db, [time])
        y = truth["label"].to_numpy()
        target_rows = truth[[query.key, CUTOFF_COLUMN]]
        # the targets' last windows and DFS features once, for RDB-PFN and the tree model
        routed = forecast.route(target_rows)
        guess = routed.last if forecast.relative else _last_window(
            query, db, time, truth[query.key], float(forecast.context["label"].mean()))
        name, trees, importance = _tree_predictions(forecast, routed, random_state)
        if importance:
            importances[str(time.date())] = importance
        row: dict[str, Any] = {"at": str(time.date()), "n": len(y)}
        if binary:
            ours = forecast.probability(routed.parts[0][2])
            row.update({"positive_rate": float(y.mean()), "rdbpfn_auc": _auc(y, ours),
                        "heuristic_auc": _auc(y, guess), f"{name}_auc": _auc(y, trees)})
        else:
            numbers = forecast.numbers(target_rows, routed)
            ours, median = numbers["prediction"], numbers["median"]
            low, high = numbers["low_90"], numbers["high_90"]
            row["mean"] = float(y.mean())
            for metric, score in (("mae", mean_absolute_error), ("r2", r2_score)):
                row.update({f"rdbpfn_{metric}": float(score(y, ours)),
                            f"heuristic_{metric}": float(score(y, guess)),
                            f"{name}_{metric}": float(score(y, trees))})
            # the median is the point that minimises the expected absolute error
            row["rdbpfn_median_mae"] = float(mean_absolute_error(y, median))
            row["rdbpfn_coverage_90"] = float(np.mean((y >= low) & (y <= high)))
        row.update({"n_anchors": len(forecast.anchors), "context_rows": len(forecast.context)})
        rows.append(row)
        curves.append((str(time.date()), y, ours, guess, trees))
        if verbose:
            print(f"{time.date()}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in row.items() if k.endswith(("_auc", "_mae", "_r2"))),
                file=sys.stderr)
    summary = pd.DataFrame(rows)
    summary.attrs.update(query=str(query), tree=tree_name)
    if out is not None:
        _write_report(Path(out), query, summary, curves, importances, tree_name)
    return summary


def _write_report(folder: Path, query: Query, summary: pd.DataFrame, curves: list,
                  importances: dict[str, dict[str, float]], tree_name: str) -> None:
    import matplotlib  # heavy, and only needed for the picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "backtest.json", {"query": str(query), "tree_model": tree_name,
                                                 "rows": summary.to_dict(orient="records")})
    atomic_write_text(folder / "backtest.csv", summary.to_csv(index=False))
    mean_importance = pd.DataFrame(importances).mean(axis=1).sort_values(ascending=False)
    header = "| " + " | ".join(summary.columns) + " |"
    table = [header, "|" + "---|" * len(summary.columns)] + [
        "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in summary.itertuples(index=False)]
    lines = [f"# Backtest of `{query}`", "", *table,
             "", f"Features that mattered most to {tree_name} (mean importance over times):",
             ""] + [f"- `{name}`: {value:.1f}" for name, value in mean_importance.head(10).items()]
    atomic_write_text(folder / "backtest.md", "\n".join(lines) + "\n")
    if query.task != "binary":
        _write_scatter(folder, query, curves, tree_name)
        return
    figure, (roc_axis, calibration_axis) = plt.subplots(1, 2, figsize=(10, 4.5))
    for label, y, p_ours, p_heuristic, p_tree in curves:
        if len(np.unique(y)) < 2:
            continue
        for name, p, style in (("RDB-PFN", p_ours, "-"), ("heuristic", p_heuristic, ":"),
                               (tree_name, p_tree, "--")):
            fpr, tpr, _ = roc_curve(y, p)
            roc_axis.plot(fpr, tpr, style, lw=1, label=f"{name} {label}")
        calibration_axis.plot(*_calibration(y, p_ours), "o-", ms=3, lw=1, label=f"RDB-PFN {label}")
    roc_axis.plot([0, 1], [0, 1], color="grey", lw=0.5)
    roc_axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    calibration_axis.plot([0, 1], [0, 1], color="grey", lw=0.5)
    calibration_axis.set(xlabel="predicted probability", ylabel="observed rate",
                         title="calibration (deciles)")
    roc_axis.legend(fontsize=6)
    calibration_axis.legend(fontsize=6)
    figure.suptitle(str(query), fontsize=8)
    figure.tight_layout()
    atomic_write(folder / "backtest.png", lambda stream: figure.savefig(stream, format="png",
                                                                          dpi=110))
    plt.close(figure)


def _write_scatter(folder: Path, query: Query, curves: list, tree_name: str) -> None:
    """backtest.png of a numeric query: predicted against true values, one panel per model."""
    import matplotlib.pyplot as plt  # matplotlib.use("Agg") ran in _write_report

    figure, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    for label, y, ours, guess, trees in curves:
        for axis, name, values in zip(axes, ("RDB-PFN", "last window", tree_name),
                                      (ours, guess, trees), strict=True):
            axis.scatter(y, values, s=3, alpha=0.4, label=label)
            axis.set(title=name, xlabel="true value")
    axes[0].set_ylabel("predicted")
    for axis in axes:
        low, high = axis.get_xlim()
        axis.plot([low, high], [low, high], color="grey", lw=0.5)
    axes[0].legend(fontsize=6, markerscale=3)
    figure.suptitle(str(query), fontsize=8)
    figure.tight_layout()
    atomic_write(folder / "backtest.png", lambda stream: figure.savefig(stream, format="png",
                                                                          dpi=110))
    plt.close(figure)
