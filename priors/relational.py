"""The relational prior: synthetic databases and the classification tasks cut from them.

``sample_database(rng)`` runs the three stages of the paper (seed 003, section 5.1):
schema (:mod:`priors.schema`, or a user's SQL DDL via :mod:`priors.ddl`), structure
(:mod:`priors.structure`: foreign keys by the selective SCM or a block model, timestamps from
:mod:`priors.temporal`) and content (:mod:`priors.content`: a random relational GNN).
``priors.tasks.sample_tasks(rng, rows, columns)`` generates one database and several binary
tasks on it (:mod:`priors.tasks`), each linearized with ``rdbpfn.linearize``.

Time: every timed table's rows are in time order, and a row of a timed table only
references parent rows that exist at its time. Tables referencing a timed table are timed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from priors.content import ColumnSpec, TableLayout, fill_content, sample_columns
from priors.ddl import DDLSchema
from priors.schema import MAX_TABLES, sample_schema
from priors.structure import (
    LinkerConfig,
    ParentState,
    RandomMLP,
    SelectiveSCM,
    initial_latents,
    link_hsbm,
    link_scm,
    sample_linker_config,
)
from priors.temporal import N_TEMPORAL_FEATURES, sample_signature
from rdbpfn.database import Database
from rdbpfn.table import Table

__all__ = ["SyntheticDatabase", "SyntheticTable", "generate_database", "sample_database"]

# Rows per table: (smallest, largest). Sources draw in the lower half, activity (sink)
# tables in the upper part; override with row_range=(lo, hi).
DEFAULT_ROW_RANGE = (200, 3000)
# Total rows of one database; larger draws are scaled down (generation time is linear in it).
MAX_TOTAL_ROWS = 15_000
FEATURE_COLUMNS_PER_TABLE = (3, 10)
TIMED_SOURCE_PROBABILITY = 0.4
TIMED_TABLE_PROBABILITY = 0.5
LATENT_DIMS = (8, 12, 16)
# Share of categorical feature columns (drawn per database).
CATEGORICAL_FRACTION_RANGE = (0.15, 0.6)
# Scale of a table's temporal features in its latent initialisation and content (drawn per
# table): how strongly its rows drift, cycle and spike with time.
TEMPORAL_STRENGTH_RANGE = (0.3, 2.0)
# Time span of a database, in days, and the range of its first day.
TIME_SPAN_DAYS = (60, 3650)
FIRST_DAY = np.datetime64("2000-01-01", "s")
FIRST_DAY_RANGE_DAYS = 7300
SECONDS_PER_DAY = 86_400
PRIMARY_KEY = "id"
TIME_COLUMN = "time"
# Entity lifetimes (entity_lifetimes > 0): median as a share of the time span, log-normal
# spread, and the correlation of the log lifetime with the entity's latent state.
LIFETIME_MEDIAN_RANGE = (0.03, 0.3)
LIFETIME_SPREAD_RANGE = (0.3, 1.2)
LIFETIME_SIGNAL_RANGE = (0.3, 0.9)


@dataclass
class SyntheticTable:
    """One generated table, column-wise in numpy.

    ``columns``: feature column -> float64 (NaN missing) or int64 category codes (-1
    missing); ``specs`` says which. ``foreign_keys``: FK column -> (parent table, (n,) parent
    row index). ``seconds``: (n,) int64 seconds since the database's first instant, sorted,
    for timed tables (None otherwise); ``time_column`` names it in frames (None: hidden).
    ``keys``: (n,) primary key values.
    """

    name: str
    keys: np.ndarray
    columns: dict[str, np.ndarray]
    specs: list[ColumnSpec]
    foreign_keys: dict[str, tuple[str, np.ndarray]]
    seconds: np.ndarray | None
    time_column: str | None
    primary_key: str = PRIMARY_KEY
    extra_times: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(self.keys.shape[0])


@dataclass
class SyntheticDatabase:
    """A generated database: the schema graph (parent -> child), tables in topological
    order, and the calendar (first instant, span) that turns seconds into datetimes."""

    graph: nx.DiGraph
    tables: dict[str, SyntheticTable]
    first_instant: np.datetime64
    span_seconds: int

    def datetimes(self, seconds: np.ndarray) -> np.ndarray:
        """int64 seconds since the first instant -> datetime64[ns]."""
        return (self.first_instant + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")

    def frame(self, name: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
        """Table ``name`` as a DataFrame: key, foreign keys, time, features (minus ``drop``)."""
        table = self.tables[name]
        data: dict[str, Any] = {table.primary_key: table.keys}
        for column, (parent, index) in table.foreign_keys.items():
            data[column] = self.tables[parent].keys[index]
        if table.time_column is not None and table.seconds is not None:
            data[table.time_column] = self.datetimes(table.seconds)
        for column, seconds in table.extra_times.items():
            data[column] = self.datetimes(seconds)
        for spec in table.specs:
            if spec.name in drop:
                continue
            values = table.columns[spec.name]
            if spec.kind == "categorical":
                data[spec.name] = pd.Categorical.from_codes(
                    values, dtype=_categorical_dtype(spec.categories))
            elif spec.kind == "bool":
                data[spec.name] = pd.array(values == 1, dtype="boolean")
                data[spec.name][values < 0] = pd.NA
            else:
                data[spec.name] = values
        return pd.DataFrame(data)

    def to_database(
        self,
        drop: dict[str, tuple[str, ...]] | None = None,
        validate: bool = False,
        reuse: Database | None = None,
    ) -> Database:
        """As an ``rdbpfn.Database``; ``drop`` removes feature columns per table.

        ``reuse``: a ``to_database()`` of this database whose tables are taken as they are
        for every table without dropped columns (saves rebuilding frames). Integrity holds
        by construction (tested), so validation is off by default.
        """
        drop = drop or {}
        tables = {}
        for name, table in self.tables.items():
            if reuse is not None and not drop.get(name):
                tables[name] = reuse.tables[name]
                continue
            tables[name] = Table(
                self.frame(name, drop.get(name, ())),
                primary_key=table.primary_key,
                foreign_keys={col: parent for col, (parent, _) in table.foreign_keys.items()}
                or None,
                time_column=table.time_column,
            )
        return Database(tables, validate=validate)


@functools.lru_cache(maxsize=256)
def _categorical_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """Cached: building a CategoricalDtype validates its categories (about a millisecond)."""
    return pd.CategoricalDtype(list(categories))


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> int:
    return int(round(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo))))))


def _row_counts(
    rng: np.random.Generator, graph: nx.DiGraph, order: list[str], row_range: tuple[int, int],
    min_rows: int,
) -> dict[str, int]:
    lo, hi = row_range
    if not 1 <= lo <= hi:
        raise ValueError(f"row_range={row_range} must satisfy 1 <= lo <= hi")
    counts = {}
    for name in order:
        if graph.out_degree(name) == 0 and graph.in_degree(name) > 0:  # activity table
            counts[name] = _loguniform(rng, max(lo, min(hi, max(min_rows, 0.2 * hi))), hi)
        elif graph.in_degree(name) == 0:
            counts[name] = _loguniform(rng, lo, max(lo, 0.5 * hi))
        else:
            counts[name] = _loguniform(rng, lo, max(lo, 0.7 * hi))
    total = sum(counts.values())
    if total > MAX_TOTAL_ROWS:
        scale = MAX_TOTAL_ROWS / total
        counts = {name: max(lo, int(n * scale)) for name, n in counts.items()}
    return counts


def _fk_slots(graph: nx.DiGraph, name: str) -> list[tuple[str, str]]:
    """(FK column, parent table) pairs of a table, in a fixed order."""
    slots = []
    for parent in sorted(graph.predecessors(name)):
        columns = graph.edges[parent, name].get("columns") or [f"{parent}_{PRIMARY_KEY}"]
        slots.extend((column, parent) for column in columns)
    return slots


def _lifetimes(rng: np.random.Generator, z: np.ndarray) -> np.ndarray:
    """(n,) activity lifetimes in units of the database's time span: log-normal around a
    median drawn in ``LIFETIME_MEDIAN_RANGE``, the log partly read off the rows' latent
    states (so that an entity's own columns hint at its lifetime) and partly noise."""
    median = rng.uniform(*LIFETIME_MEDIAN_RANGE)
    spread = rng.uniform(*LIFETIME_SPREAD_RANGE)
    signal = rng.uniform(*LIFETIME_SIGNAL_RANGE)
    readout = z @ rng.standard_normal(z.shape[1])
    readout = (readout - readout.mean()) / (readout.std() + 1e-9)
    u = signal * readout + np.sqrt(1.0 - signal**2) * rng.standard_normal(z.shape[0])
    return median * np.exp(spread * u)


def generate_database(
    rng: np.random.Generator,
    *,
    family: str | None = None,
    max_tables: int = MAX_TABLES,
    n_tables: int | None = None,
    row_range: tuple[int, int] = DEFAULT_ROW_RANGE,
    min_rows: int = 0,
    linker: str | LinkerConfig | None = None,
    hsbm_probability: float = 0.2,
    latent_dim: int | None = None,
    schema: DDLSchema | nx.DiGraph | None = None,
    causal_content: bool = False,
    entity_lifetimes: float = 0.0,
) -> SyntheticDatabase:
    """Generate one synthetic database.

    Args:
        rng: the only source of randomness (same seed, same database).
        family, max_tables, n_tables: schema sampler settings (:func:`priors.schema.sample_schema`).
        row_range: (lo, hi) rows per table; activity tables get at least ``min_rows`` when
            ``hi`` allows (task sampling asks for the episode's row count).
        linker: "scm", "hsbm" or a fixed :class:`LinkerConfig` for every table (None: drawn
            per table, block model with probability ``hsbm_probability``).
        latent_dim: width d of the structural states (None: drawn from LATENT_DIMS).
        schema: a parsed DDL (:func:`priors.ddl.load_ddl`) or a DAG to fill instead of a
            sampled schema.
        causal_content: a row's columns never depend on rows that come after it: a
            parent's content is generated from its state before its children's feedback
            and from messages of the children that exist when it does
            (:func:`priors.content.fill_content`). Off by default, as in the paper, where a
            parent's columns see all its children, later ones included, so that they can
            reveal a future event count (``python -m training.shortcuts`` measures it).
            The same seed draws the same schema, links, times and tasks either way.
        entity_lifetimes: probability that a table with children gives its rows an end of
            activity (a customer who churns, a player who retires): each row takes no
            children after its start plus a lifetime drawn from its latent state
            (:func:`_lifetimes`). 0 (the default, as in the paper): rows take children until
            the end of time, so an entity's past activity says little about whether it is
            still active (``python -m training.shortcuts`` compares with real tasks).
    """
    ddl = schema if isinstance(schema, DDLSchema) else None
    if isinstance(schema, DDLSchema):
        graph = schema.graph.copy()
    elif isinstance(schema, nx.DiGraph):
        if not nx.is_directed_acyclic_graph(schema):
            raise ValueError("schema graph has a cycle; pass a DAG (parent -> child edges)")
        graph = schema.copy()
    elif schema is None:
        graph = sample_schema(rng, family, max_tables=max_tables, n_tables=n_tables)
    else:
        raise TypeError(f"schema must be a DDLSchema, a networkx.DiGraph or None, got {schema!r}")
    order = list(nx.lexicographical_topological_sort(graph, key=str))
    d = int(latent_dim or rng.choice(LATENT_DIMS))
    counts = _row_counts(rng, graph, order, row_range, min_rows)
    span = int(rng.uniform(*TIME_SPAN_DAYS) * SECONDS_PER_DAY)
    first = FIRST_DAY + np.timedelta64(int(rng.integers(FIRST_DAY_RANGE_DAYS)) * SECONDS_PER_DAY,
                                       "s")
    categorical_fraction = float(rng.uniform(*CATEGORICAL_FRACTION_RANGE))
    if isinstance(linker, str):
        linker = LinkerConfig(mode=linker)

    timed: dict[str, bool] = {}
    states: dict[str, ParentState] = {}
    seconds: dict[str, np.ndarray | None] = {}
    temporal: dict[str, np.ndarray] = {}
    fks: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    own_latents: dict[str, np.ndarray] = {}
    for name in order:
        n = counts[name]
        slots = _fk_slots(graph, name)
        parents = sorted({parent for _, parent in slots})
        if ddl is not None:
            wants_time = ddl.tables[name].time_column is not None
        elif graph.out_degree(name) == 0 and parents:
            wants_time = True
        else:
            probability = TIMED_TABLE_PROBABILITY if parents else TIMED_SOURCE_PROBABILITY
            wants_time = bool(rng.random() < probability)
        timed[name] = wants_time or any(timed[p] for p in parents)
        signature = sample_signature(rng)
        if timed[name]:
            start = max([states[p].available_from[0] for p in parents if timed[p]], default=0.0)
            # the event rate grows with the share of parent rows that exist at each time
            log_weight = sum(
                np.log(np.searchsorted(states[p].available_from, signature.grid, side="right")
                       / len(states[p].available_from) + 1e-3)
                for p in parents if timed[p]
            ) + np.zeros_like(signature.grid)
            raw = signature.sample_times(rng, n, min(start, 1.0 - 1e-6), 1.0, log_weight)
            seconds[name] = np.maximum(np.floor(raw * span).astype(np.int64),
                                       int(round(start * span)))
            times = seconds[name] / span
        else:
            seconds[name] = None
            times = rng.random(n)  # hidden: conditions the latent state only
        temporal[name] = signature.features(times) * rng.uniform(*TEMPORAL_STRENGTH_RANGE)
        mlp_init = RandomMLP.sample(rng, d + N_TEMPORAL_FEATURES, 2 * d, d)
        z0 = initial_latents(rng, mlp_init, temporal[name], d)
        available = times if timed[name] else np.zeros(n)
        if slots:
            config = linker or sample_linker_config(rng, hsbm_probability)
            weights = SelectiveSCM.sample(rng, d, len(slots))
            parent_states = [states[parent] for _, parent in slots]
            if config.mode == "hsbm":
                chosen, z = link_hsbm(rng, z0, available, parent_states, weights)
            else:
                chosen, z = link_scm(rng, z0, available, parent_states, weights, config)
            fks[name] = {col: (parent, idx) for (col, parent), idx in zip(slots, chosen,
                                                                           strict=True)}
        else:
            z, fks[name] = z0, {}
        own_latents[name] = z
        until = None
        if entity_lifetimes and graph.out_degree(name) and rng.random() < entity_lifetimes:
            until = times + _lifetimes(rng, z)
        states[name] = ParentState(z.copy(), available, available_until=until)

    layouts, extra_time_columns = {}, {}
    for name in order:
        if ddl is not None:
            specs, extra_time_columns[name] = _ddl_specs(rng, ddl, name)
        else:
            n_columns = int(rng.integers(FEATURE_COLUMNS_PER_TABLE[0],
                                         FEATURE_COLUMNS_PER_TABLE[1] + 1))
            specs = sample_columns(rng, name, n_columns, categorical_fraction)
            extra_time_columns[name] = []
        # the final dynamic embedding: a parent's state also reflects feedback of its children
        # (causal content: the state before any child's feedback)
        latent = own_latents[name] if causal_content else states[name].embedding
        layouts[name] = TableLayout(latent, temporal[name], fks[name], specs, seconds[name])
    values = fill_content(rng, layouts, causal=causal_content)

    tables = {}
    for name in order:
        specs = layouts[name].columns
        extra = {}
        for column in extra_time_columns[name]:  # later dates: the row's time plus a delay
            delay = values[name].pop(column)
            delay = np.nan_to_num((delay - np.nanmean(delay)) / (np.nanstd(delay) + 1e-9))
            days = np.exp(delay + rng.uniform(0.0, 3.0))
            base = seconds[name] if seconds[name] is not None else np.zeros(counts[name], np.int64)
            extra[column] = base + (days * SECONDS_PER_DAY).astype(np.int64)
        specs = [s for s in specs if s.name not in extra]
        tables[name] = SyntheticTable(
            name=name,
            keys=_keys(ddl, name, counts[name]),
            columns=values[name],
            specs=specs,
            foreign_keys=fks[name],
            seconds=seconds[name],
            time_column=_time_column(ddl, name, timed[name]),
            primary_key=_primary_key(ddl, name),
            extra_times=extra,
        )
    return SyntheticDatabase(graph, tables, first, span)


def _time_column(ddl: DDLSchema | None, name: str, timed: bool) -> str | None:
    if ddl is None:
        return TIME_COLUMN if timed else None
    return ddl.tables[name].time_column  # a table timed only through its parents keeps none


def _primary_key(ddl: DDLSchema | None, name: str) -> str:
    """The DDL's primary key, or an added ``id`` column (``id_``, ... if that name is taken)
    for a table without a single-column key."""
    if ddl is None:
        return PRIMARY_KEY
    table = ddl.tables[name]
    if table.primary_key:
        return table.primary_key
    taken = {c.name for c in table.columns}
    key = PRIMARY_KEY
    while key in taken:
        key += "_"
    return key


def _keys(ddl: DDLSchema | None, name: str, n: int) -> np.ndarray:
    if ddl is None:
        return np.arange(n, dtype=np.int64)
    if ddl.tables[name].primary_key_kind == "text":
        return np.array([f"{name}_{i}" for i in range(1, n + 1)], dtype=object)
    return np.arange(1, n + 1, dtype=np.int64)


def _ddl_specs(
    rng: np.random.Generator, ddl: DDLSchema, name: str
) -> tuple[list[ColumnSpec], list[str]]:
    """Feature column specs of a DDL table; extra time columns are generated as numeric
    delays (returned separately) and converted to dates after content generation."""
    table = ddl.tables[name]
    specs, extra_times = [], []
    for column in table.feature_columns:
        if column.kind == "time":
            if column.name != table.time_column:
                specs.append(ColumnSpec(column.name, "numeric"))
                extra_times.append(column.name)
        elif column.kind == "categorical":
            k = int(rng.integers(2, 11))
            labels = column.categories or tuple(f"{column.name}_{c}" for c in range(k))
            specs.append(ColumnSpec(column.name, "categorical", labels))
        else:
            specs.append(ColumnSpec(column.name, column.kind))
    return specs, extra_times


def sample_database(rng: np.random.Generator, **kwargs: Any) -> Database:
    """One synthetic ``rdbpfn.Database``; keyword arguments as :func:`generate_database`."""
    return generate_database(rng, **kwargs).to_database()
