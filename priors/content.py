"""Content: the observable columns of every table, given the linked rows (seed 003,
section 5.1.3).

A bidirectional relational GNN with random weights, drawn once per database:

- every row starts from its latent state and its temporal features,
  ``h0 = act(z W_in + phi(t) W_time + b_table)``;
- K rounds of heterogeneous message passing: each foreign key is a relation in both
  directions (parent -> child and child -> parent), with its own message MLP; messages are
  aggregated per relation (sum, mean or degree-normalised sum, permutation invariant) and
  combined with the row's own state;
- a decoder shared by all tables, ``g = act(h W_dec + phi(t) W_dec_time)``, feeds one head per
  column: a Gaussian head (mean and heteroscedastic spread) for numeric columns and a
  softmax head for categorical ones, followed by a random marginal shape (amounts, counts,
  percentages, integers) and optional missing values.

Because ``phi(t)`` enters both the initial state and the decoder, a timed table's column
values drift, cycle and spike with time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from priors.structure import (
    Activation,
    random_matrix,
    sample_activation,
    standardise_columns,
)
from priors.temporal import N_TEMPORAL_FEATURES

COLUMN_KINDS = ("numeric", "integer", "categorical", "bool")
AGGREGATIONS = ("sum", "mean", "sqrt")
NUMERIC_SHAPES = ("gaussian", "lognormal", "count", "percent", "integer")
MAX_ROUNDS = 3
MAX_CATEGORIES = 10
# Chance that a column has missing values, and the range of its missing rate.
MISSING_COLUMN_PROBABILITY = 0.15
MISSING_RATE_RANGE = (0.02, 0.3)


@dataclass(frozen=True)
class ColumnSpec:
    """One feature column: ``kind`` in COLUMN_KINDS; ``categories`` labels (categorical)."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(
                f"column {self.name!r}: unknown kind {self.kind!r}; use one of {COLUMN_KINDS}"
            )
        if self.kind == "categorical" and len(self.categories) < 2:
            raise ValueError(f"categorical column {self.name!r} needs >= 2 categories")


@dataclass
class TableLayout:
    """What content generation needs to know about one table.

    ``latent`` (n, d) structural states; ``temporal`` (n, N_TEMPORAL_FEATURES) features of the
    rows' times; ``foreign_keys`` FK column -> (parent table, (n,) parent row index);
    ``seconds`` (n,) the rows' times for a timed table (None: untimed), read only by causal
    content (:func:`fill_content`).
    """

    latent: np.ndarray
    temporal: np.ndarray
    foreign_keys: dict[str, tuple[str, np.ndarray]]
    columns: list[ColumnSpec]
    seconds: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return self.latent.shape[0]


def sample_columns(
    rng: np.random.Generator, table: str, n_columns: int, categorical_fraction: float
) -> list[ColumnSpec]:
    """Random feature columns named ``{table}_num{j}`` / ``{table}_cat{j}`` (unique in a
    database, so a feature name tells which column it was derived from)."""
    specs = []
    for j in range(n_columns):
        if rng.random() < categorical_fraction:
            k = int(rng.integers(2, MAX_CATEGORIES + 1))
            labels = tuple(f"v{c}" for c in range(k))
            specs.append(ColumnSpec(f"{table}_cat{j}", "categorical", labels))
        else:
            specs.append(ColumnSpec(f"{table}_num{j}", "numeric"))
    return specs


@dataclass(frozen=True)
class ContentConfig:
    """Hyperparameters of the content GNN of one database."""

    rounds: int
    aggregation: str
    hidden: int
    residual: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ContentConfig:
        return cls(
            rounds=int(rng.integers(1, MAX_ROUNDS + 1)),
            aggregation=AGGREGATIONS[rng.integers(len(AGGREGATIONS))],
            hidden=int(rng.choice((8, 12, 16))),
            residual=float(rng.uniform(0.0, 1.0)),
        )


def _reverse_operator(
    child_to_parent: np.ndarray, n_parent: int, aggregation: str,
    visible: np.ndarray | None = None,
) -> sp.csr_matrix:
    """(n_parent, n_child) sparse matrix that aggregates child messages onto parents;
    ``visible`` (n_child,) bool keeps only those children (None: all)."""
    n_child = child_to_parent.size
    weight = np.ones(n_child) if visible is None else visible.astype(np.float64)
    matrix = sp.csr_matrix(
        (weight, (child_to_parent, np.arange(n_child))), shape=(n_parent, n_child)
    )
    if aggregation == "sum":
        return matrix
    degree = np.bincount(child_to_parent, weights=weight, minlength=n_parent)
    scale = 1.0 / np.maximum(degree, 1.0)
    if aggregation == "sqrt":
        scale = np.sqrt(scale)
    return sp.diags(scale) @ matrix


def fill_content(
    rng: np.random.Generator,
    tables: dict[str, TableLayout],
    config: ContentConfig | None = None,
    causal: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """Generate every table's feature columns; returns table -> column -> values.

    ``tables`` must be in a topological order (parents before children). All latent
    states must share one width d. ``causal``: a parent row receives messages only from
    the children that exist when it does (untimed children, and timed children of a timed
    parent no later than the parent's own time), so no column of a row encodes rows that
    come after it (beyond each table's standardisation, one shift and scale shared by its
    rows); the random draws are the same as without it.
    """
    config = config or ContentConfig.sample(rng)
    names = list(tables)
    d = next(iter(tables.values())).latent.shape[1]
    hidden = config.hidden
    act: Activation = sample_activation(rng)
    w_in = random_matrix(rng, d, hidden)
    w_time = random_matrix(rng, N_TEMPORAL_FEATURES, hidden) * rng.uniform(0.5, 2.0)
    # one relation per foreign key column, used in both directions
    relations = [
        (child, parent, index)
        for child in names
        for parent, index in tables[child].foreign_keys.values()
    ]
    reverse = [
        _reverse_operator(index, tables[parent].n_rows, config.aggregation,
                          _visible_children(tables[child], tables[parent], index)
                          if causal else None)
        for child, parent, index in relations
    ]
    state = {
        name: standardise_columns(
            act(t.latent @ w_in + t.temporal @ w_time + rng.normal(0.0, 1.0, hidden))
        )
        for name, t in tables.items()
    }
    for _ in range(config.rounds):
        w_self = random_matrix(rng, hidden, hidden)
        incoming = {name: state[name] @ w_self for name in names}
        n_relations = dict.fromkeys(names, 1)
        for (child, parent, index), aggregate in zip(relations, reverse, strict=True):
            w_down, w_up = random_matrix(rng, hidden, hidden), random_matrix(rng, hidden, hidden)
            # parent -> child: every child has exactly one parent per key: a gather
            incoming[child] += act(state[parent] @ w_down)[index]
            # child -> parent: permutation-invariant aggregation over the children
            incoming[parent] += aggregate @ act(state[child] @ w_up)
            n_relations[child] += 1
            n_relations[parent] += 1
        state = {
            name: standardise_columns(
                config.residual * state[name]
                + act(incoming[name] / np.sqrt(n_relations[name]))
            )
            for name in names
        }
    return _decode(rng, tables, state, act)


def _visible_children(
    child: TableLayout, parent: TableLayout, child_to_parent: np.ndarray
) -> np.ndarray | None:
    """(n_child,) bool: children that exist when their parent does (None: all of them).
    An untimed parent exists before every timed row."""
    if child.seconds is None:
        return None
    if parent.seconds is None:
        return np.zeros(child.n_rows, dtype=bool)
    return child.seconds <= parent.seconds[child_to_parent]


def _decode(
    rng: np.random.Generator,
    tables: dict[str, TableLayout],
    state: dict[str, np.ndarray],
    act: Activation,
) -> dict[str, dict[str, np.ndarray]]:
    hidden = next(iter(state.values())).shape[1]
    width = 2 * hidden
    w_dec = random_matrix(rng, hidden, width)
    w_dec_time = random_matrix(rng, N_TEMPORAL_FEATURES, width) * rng.uniform(0.3, 1.5)
    b_dec = rng.normal(0.0, 0.5, width)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, table in tables.items():
        g = act(state[name] @ w_dec + table.temporal @ w_dec_time + b_dec)  # (n, width)
        n = table.n_rows
        columns: dict[str, np.ndarray] = {}
        for spec in table.columns:
            if spec.kind in ("categorical", "bool"):
                k = len(spec.categories) if spec.kind == "categorical" else 2
                logits = standardise_columns(g @ random_matrix(rng, width, k))
                logits = logits * np.exp(rng.uniform(np.log(0.5), np.log(4.0)))
                logits = logits + np.log(rng.dirichlet(np.ones(k)) + 1e-3)  # class imbalance
                values = np.argmax(logits + rng.gumbel(size=(n, k)), axis=1).astype(np.int64)
                if rng.random() < MISSING_COLUMN_PROBABILITY:
                    values[rng.random(n) < rng.uniform(*MISSING_RATE_RANGE)] = -1
            else:
                mean = g @ random_matrix(rng, width, 1)[:, 0]
                mean = (mean - mean.mean()) / (mean.std() + 1e-9)
                spread = np.exp(rng.uniform(np.log(0.05), np.log(1.0)))
                spread = spread * np.exp(0.3 * np.tanh(g @ random_matrix(rng, width, 1)[:, 0]))
                values = _shape(rng, mean + spread * rng.standard_normal(n), spec.kind)
                if rng.random() < MISSING_COLUMN_PROBABILITY:
                    values[rng.random(n) < rng.uniform(*MISSING_RATE_RANGE)] = np.nan
            columns[spec.name] = values
        out[name] = columns
    return out


def _shape(rng: np.random.Generator, x: np.ndarray, kind: str) -> np.ndarray:
    """Random realistic marginal for a standardised numeric column (float64 output)."""
    x = x / (x.std() + 1e-9)
    shape = "integer" if kind == "integer" else NUMERIC_SHAPES[rng.integers(len(NUMERIC_SHAPES))]
    scale = float(np.exp(rng.uniform(np.log(0.1), np.log(1000.0))))
    if shape == "gaussian":
        return x * scale + rng.normal(0.0, 3.0) * scale
    if shape == "lognormal":
        return np.round(np.exp(x * rng.uniform(0.3, 1.2)) * scale, 2)
    if shape == "count":
        return np.floor(np.exp(x * rng.uniform(0.3, 1.0) + rng.uniform(0.0, 3.0)))
    if shape == "percent":
        return np.round(100.0 / (1.0 + np.exp(-x * rng.uniform(0.5, 2.0))), 1)
    return np.round(x * min(scale, 50.0) + rng.integers(-10, 100))
