"""Which DFS features exist: featuretools' Deep Feature Synthesis, re-derived on our schema.

:func:`build_features` returns the same feature list, names and order as

    ft.dfs(entityset=db.to_entityset(encode_keys=True), target_dataframe_name=target,
           agg_primitives=primitives, trans_primitives=[], max_depth=max_depth)

minus key columns (featuretools 1.31), without building an EntitySet. It follows
featuretools' traversal step by step, because the feature set depends on its details:

- tables are visited depth-first from the target (children first, then parents), each at
  most once, with the depth budget it had when first reached; a parent's features are the
  ones it had *when* the child looked at it;
- aggregations run over every backward path (children and deeper descendants, e.g.
  ``COUNT(items)`` on customers <- orders <- items), over child features of depth <= d-1,
  never over direct features of the aggregating table itself;
- stacking rules: ``SUM`` not on ``SUM``/``COUNT``, ``MAX`` not on ``MAX``, ``MIN`` not on
  ``MIN``; ``MEAN`` and ``MODE`` stack on anything of their input type;
- features are named by featuretools' rules (``MEAN(orders.SUM(items.price))``,
  ``users.age``, ``COUNT(flights[origin])`` when two foreign keys join the same tables) and
  deduplicated by name, first one wins;
- a quirk kept for equality: with two foreign keys between the same tables, the parent's
  primary key is inherited as a direct feature, and ``COUNT`` may count it (non-null values)
  instead of child rows, whichever name sorts first.

Keys (primary, foreign), time columns and datetime columns never become output features.

Beyond the paper's six aggregations (count, max, mean, min, mode, sum) the vocabulary holds
the features practitioners add first, with featuretools' names and values:
``NUM_UNIQUE`` (distinct categories), ``PERCENT_TRUE`` (share of true values, missing counted
as false), ``TIME_SINCE_FIRST`` / ``TIME_SINCE_LAST`` of a child table's time column
(seconds for datetime times, the time unit for numeric ones), the entity's age
``TIME_SINCE(<its time column>)`` (transform primitive ``time_since``, on the target table
only), and recent-window aggregations ``COUNT(orders, last 30 days)`` /
``SUM(orders.amount, last 30 days)`` over the target's direct children: the rows in
``(cutoff - window, cutoff]`` (featuretools' ``training_window``, one window at a time).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.formats import MADE_INDEX

__all__ = [
    "AGGREGATION_PRIMITIVES",
    "PRIMITIVES",
    "TIME_AWARE_PRIMITIVES",
    "WINDOW_PRIMITIVES",
    "Feature",
    "Link",
    "build_features",
    "links_of",
    "window_keys",
]

AGGREGATION_PRIMITIVES = ("count", "max", "mean", "min", "mode", "num_unique", "percent_true",
                          "sum", "time_since_first", "time_since_last")
"""Supported aggregation primitives, in featuretools' order (alphabetical)."""

TRANSFORM_PRIMITIVES = ("time_since",)
"""Supported transform primitives: ``time_since`` = the target row's age at its cutoff."""

PRIMITIVES = AGGREGATION_PRIMITIVES + TRANSFORM_PRIMITIVES
"""Every primitive name ``linearize`` accepts."""

TIME_AWARE_PRIMITIVES = ("time_since", "time_since_first", "time_since_last")
"""Primitives measured from the cutoff: missing for a request without a cutoff."""

WINDOW_PRIMITIVES = ("count", "sum")
"""Primitives that also run over recent windows (when they are among the primitives)."""

_INPUT = {"count": "index", "max": "numeric", "mean": "numeric", "min": "numeric",
          "mode": "categorical", "num_unique": "categorical", "percent_true": "boolean",
          "sum": "numeric", "time_since_first": "time", "time_since_last": "time"}
"""What each aggregation takes (a feature's ``value``)."""

_NO_STACK_ON = {"count": ("count",), "sum": ("sum", "count"), "max": ("max",), "min": ("min",),
                "mean": (), "mode": (), "num_unique": (), "percent_true": (),
                "time_since_first": (), "time_since_last": ()}
"""Root primitives each primitive may not be stacked on (featuretools' stacking rules)."""

_NANOSECONDS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class Link:
    """A foreign key seen by DFS. ``unique``: it is the only one from child to parent."""

    index: int
    child: str
    column: str
    parent: str
    parent_key: str
    unique: bool

    @property
    def child_name(self) -> str:
        """Name of the child relative to the parent (``flights[origin]`` if not unique)."""
        return self.child if self.unique else f"{self.child}[{self.column}]"

    @property
    def parent_name(self) -> str:
        """Name of the parent relative to the child (``airports[origin]`` if not unique)."""
        return self.parent if self.unique else f"{self.parent}[{self.column}]"


@dataclass(eq=False)
class Feature:
    """One DFS feature of table ``table``: a chain of direct / aggregation steps on a column.

    ``value`` is what it holds: "numeric", "categorical", "boolean", "index" (a primary
    key: 1 where the row exists; only ``COUNT`` uses it) or "time" (the table's time
    column; only ``TIME_SINCE_*`` use it). ``category`` names the ``(table, column)`` whose
    categories a categorical feature takes. ``window`` (time-key units) limits an
    aggregation to the rows in ``(cutoff - window, cutoff]``; kind "age" is the target
    row's ``TIME_SINCE`` of its own time column.
    """

    table: str
    name: str
    kind: str  # "identity" | "direct" | "aggregation" | "age"
    value: str
    depth: int
    column: str | None = None
    base: Feature | None = None
    link: Link | None = None
    path: tuple[Link, ...] = ()
    primitive: str | None = None
    category: tuple[str, str] | None = None
    root_primitive: str | None = field(default=None, repr=False)
    window: int | None = None

    @property
    def measures_time(self) -> bool:
        """Whether it (or a feature it is built on) is measured from the cutoff: an age, a
        window or a ``TIME_SINCE_*``; such features are missing without a cutoff."""
        feature: Feature | None = self
        while feature is not None:
            if (feature.kind == "age" or feature.window is not None
                    or feature.primitive in TIME_AWARE_PRIMITIVES):
                return True
            feature = feature.base
        return False

    @property
    def returnable(self) -> bool:
        """Whether featuretools returns it (numeric, categorical or boolean)."""
        return self.value in ("numeric", "categorical", "boolean")


def links_of(db: Database) -> list[Link]:
    """The database's foreign keys as :class:`Link` objects, in the database's order."""
    pairs = [(r.child, r.parent) for r in db.relationships]
    return [
        Link(i, r.child, r.column, r.parent, str(db[r.parent].primary_key),
             pairs.count((r.child, r.parent)) == 1)
        for i, r in enumerate(db.relationships)
    ]


class _Synthesis:
    """featuretools' DeepFeatureSynthesis traversal (aggregations and direct features only)."""

    def __init__(self, db: Database, primitives: Sequence[str]) -> None:
        self.db = db
        self.primitives = sorted(set(primitives) & set(AGGREGATION_PRIMITIVES))
        self.links = links_of(db)
        self.forward: dict[str, list[Link]] = {t: [] for t in db.tables}
        self.backward: dict[str, list[Link]] = {t: [] for t in db.tables}
        for link in self.links:
            self.forward[link.child].append(link)
            self.backward[link.parent].append(link)
        self.features: dict[str, dict[str, Feature]] = {}
        self._unique_path: dict[tuple[str, str], bool] = {}

    # ----------------------------------------------------------------- helpers
    def _add(self, feature: Feature) -> None:
        table_features = self.features[feature.table]
        if feature.name not in table_features:  # featuretools: first one wins
            table_features[feature.name] = feature

    def _up_to_depth(self, table: str, max_depth: int) -> list[Feature]:
        if max_depth < 0 or table not in self.features:
            return []
        return [f for f in self.features[table].values() if f.depth <= max_depth]

    def _deep_backward(self, table: str) -> Iterator[tuple[str, tuple[Link, ...]]]:
        for link in self.backward[table]:
            yield link.child, (link,)
            for child, path in self._deep_backward(link.child):
                yield child, (link, *path)

    def _forward_paths(self, start: str, goal: str, seen: frozenset[str]) -> Iterator[int]:
        if start in seen:
            return
        if start == goal:
            yield 1
        for link in self.forward[start]:
            yield from self._forward_paths(link.parent, goal, seen | {start})

    def _path_is_unique(self, child: str, parent: str) -> bool:
        key = (child, parent)
        if key not in self._unique_path:
            paths = self._forward_paths(child, parent, frozenset())
            next(paths, None)
            self._unique_path[key] = next(paths, None) is None
        return self._unique_path[key]

    @staticmethod
    def _in_path(path: Sequence[Link], feature: Feature) -> bool:
        # featuretools compares the relationship's *display* names with the table name, so
        # keys along a non-unique relationship are not recognised (kept for equality).
        if feature.kind != "identity":
            return False
        for link in path:
            if link.child_name == feature.table and link.column == feature.column:
                return True
            if link.parent_name == feature.table and link.parent_key == feature.column:
                return True
        return False

    # ------------------------------------------------------------------- steps
    def _identity_features(self, table: str) -> None:
        info = self.db[table]
        if info.primary_key is None:  # featuretools makes an index column, first
            self._add(Feature(table=table, name=MADE_INDEX, kind="identity", value="index",
                              depth=0, column=MADE_INDEX))
        for column in info.columns:
            if column == info.primary_key:
                value = "index"
            elif column == info.time_column:
                value = "time"  # never returned; TIME_SINCE_* aggregate it
            else:
                kind = info.column_kinds.get(column)
                if kind not in ("numeric", "categorical", "boolean"):
                    continue  # keys, time, datetime and other columns: never used by DFS
                value = kind
            self._add(Feature(
                table=table, name=str(column), kind="identity", value=value, depth=0,
                column=str(column),
                category=(table, str(column)) if value == "categorical" else None,
            ))

    def _aggregations(self, parent: str, child: str, path: tuple[Link, ...],
                      max_depth: int) -> None:
        candidates = self._up_to_depth(child, max_depth - 1)
        if not candidates:
            return
        candidates = [
            f for f in candidates
            if not (f.kind == "direct" and f.link is not None and f.link.parent == parent)
            and not self._in_path(path, f)
        ]
        candidates.sort(key=lambda f: f"{child}: {f.name}")
        if self._path_is_unique(child, parent):
            path_name = child
        else:
            path_name = ".".join(link.child_name for link in path)
        for primitive in self.primitives:
            wanted = _INPUT[primitive]
            for base in candidates:
                if base.value != wanted or base.root_primitive in _NO_STACK_ON[primitive]:
                    continue
                if wanted == "time" and base.kind != "identity":
                    continue  # only a table's own time column (featuretools: time_index)
                if primitive == "count":
                    name = f"COUNT({path_name})"
                else:
                    name = f"{primitive.upper()}({path_name}.{base.name})"
                self._add(Feature(
                    table=parent, name=name, kind="aggregation",
                    value="categorical" if primitive == "mode" else "numeric",
                    depth=base.depth + 1, base=base, path=path, primitive=primitive,
                    category=base.category if primitive == "mode" else None,
                    root_primitive=primitive,
                ))

    def _direct_features(self, link: Link, max_depth: int) -> None:
        for base in self._up_to_depth(link.parent, max_depth):
            if self._in_path((link,), base):
                continue
            self._add(Feature(
                table=link.child, name=f"{link.parent_name}.{base.name}", kind="direct",
                value=base.value, depth=base.depth + 1, base=base, link=link,
                category=base.category, root_primitive=base.root_primitive,
            ))

    def run(self, table: str, max_depth: int) -> None:
        """featuretools' ``_run_dfs``: identity, backward recursion, aggregations, forward
        recursion, direct features."""
        if max_depth < 0:
            return
        self.features[table] = {}
        self._identity_features(table)
        for link in self.backward[table]:
            if link.child not in self.features:
                self.run(link.child, max_depth - 1)
        for child, path in self._deep_backward(table):
            self._aggregations(table, child, path, max_depth)
        for link in self.forward[table]:
            if link.parent not in self.features:
                self.run(link.parent, max_depth - 1)
        for link in self.forward[table]:
            self._direct_features(link, max_depth)


def feature_frame(db: Database, features: Sequence[Feature], values: Sequence[object],
                  n_rows: int) -> pd.DataFrame:
    """An engine's output frame: one column per feature, float64, or a ``pd.Categorical`` over
    the source column's categories for a categorical feature (``values`` are then int64
    codes, -1 = missing); a RangeIndex of ``n_rows`` requests."""
    columns: dict[str, object] = {}
    for feature, column in zip(features, values, strict=True):
        if feature.value == "categorical":
            assert feature.category is not None
            categories = db[feature.category[0]].categories(feature.category[1])
            columns[feature.name] = pd.Categorical.from_codes(
                np.asarray(column, dtype=np.int64), categories=categories)
        else:
            columns[feature.name] = np.asarray(column, dtype=np.float64)
    return pd.DataFrame(columns, index=pd.RangeIndex(n_rows))


def check_primitives(primitives: Sequence[str]) -> tuple[str, ...]:
    """Lower-case and validate primitive names.

    Raises:
        ValueError: an unknown primitive.
    """
    if isinstance(primitives, str):
        primitives = (primitives,)
    names = tuple(str(p).lower() for p in primitives)
    unknown = [p for p in names if p not in PRIMITIVES]
    if unknown:
        raise ValueError(f"unknown primitives {unknown}; supported: {list(PRIMITIVES)}.")
    return names


def window_keys(db: Database, windows: Sequence[object]) -> tuple[tuple[str, int], ...]:
    """Recent windows as ``(label, length in time-key units)``, e.g. ``("30 days", 30 days
    in nanoseconds)``.

    Windows need datetime times: a database with numeric times (years, say) or none gets no
    windowed features. Each window is anything ``pd.Timedelta`` reads ("30 days", "12h",
    ``pd.Timedelta(days=7)``) and must be positive.

    Raises:
        ValueError: a window that is not a positive duration.
    """
    parsed = []
    for window in windows:
        try:
            length = pd.Timedelta(window)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"window {window!r} is not a duration ({error}); pass e.g. '30 days' or "
                "pd.Timedelta(days=30)."
            ) from error
        if pd.isna(length) or length <= pd.Timedelta(0):
            raise ValueError(f"window {window!r} must be a positive duration, e.g. '30 days'.")
        days = length / pd.Timedelta(days=1)
        label = f"{days:g} days" if days != 1 else "1 day"
        if length.value % _NANOSECONDS_PER_DAY:
            label = str(length)
        parsed.append((label, int(length.value)))
    if db.time_kind != "datetime":
        return ()
    return tuple(dict(parsed).items())


def _age_feature(db: Database, table: str) -> list[Feature]:
    info = db[table]
    if info.time_column is None:
        return []
    name = f"TIME_SINCE({info.time_column})"
    return [Feature(table=table, name=name, kind="age", value="numeric", depth=1,
                    column=str(info.time_column))]


def _window_features(synthesis: _Synthesis, table: str, primitives: Sequence[str],
                     windows: tuple[tuple[str, int], ...]) -> list[Feature]:
    """COUNT/SUM of the table's direct timed children over each recent window."""
    out = []
    wanted = [p for p in WINDOW_PRIMITIVES if p in primitives]
    for label, length in windows:
        for link in synthesis.backward[table]:
            if synthesis.db[link.child].time_column is None:
                continue
            bases = [f for f in synthesis.features.get(link.child, {}).values()
                     if f.kind == "identity"]
            for primitive in wanted:
                for base in bases:
                    if base.value != _INPUT[primitive]:
                        continue
                    inner = link.child_name if primitive == "count" else (
                        f"{link.child_name}.{base.name}")
                    out.append(Feature(
                        table=table, name=f"{primitive.upper()}({inner}, last {label})",
                        kind="aggregation", value="numeric", depth=1, base=base, path=(link,),
                        primitive=primitive, root_primitive=primitive, window=length,
                    ))
    return out


def build_features(
    db: Database,
    target_table: str,
    max_depth: int = 2,
    primitives: Sequence[str] = ("mean", "sum", "max", "min", "count", "mode"),
    windows: Sequence[object] = (),
) -> list[Feature]:
    """The DFS features of ``target_table``, in featuretools' order (by depth, then creation).

    Args:
        db: the database (only its schema is read).
        target_table: the table whose rows get features.
        max_depth: maximum stacking depth (>= 0); 0 = the table's own columns. As in
            featuretools, a one-table database is capped at depth 1.
        primitives: a subset of :data:`PRIMITIVES`.
        windows: recent windows (e.g. ``("30 days",)``) for :data:`WINDOW_PRIMITIVES` over
            the target's direct timed children (needs ``max_depth >= 1`` and datetime times).
    Returns:
        the output features (numeric, categorical, boolean), keys excluded: featuretools'
        features (by depth), then the entity's age, then the windowed aggregations.
    """
    if target_table not in db.tables:
        raise ValueError(f"target_table {target_table!r} is not a table; tables: {list(db)}.")
    if not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < 0:
        raise ValueError(f"max_depth must be an int >= 0, got {max_depth!r}.")
    primitives = check_primitives(primitives)
    parsed_windows = window_keys(db, windows)
    if len(db.tables) == 1:
        max_depth = min(max_depth, 1)
    synthesis = _Synthesis(db, primitives)
    synthesis.run(target_table, max_depth)
    features = [f for f in synthesis.features[target_table].values() if f.returnable]
    features = sorted(features, key=lambda f: f.depth)
    if "time_since" in primitives and max_depth >= 1:  # a transform: depth 1, as in featuretools
        features += _age_feature(db, target_table)
    if max_depth >= 1:
        features += _window_features(synthesis, target_table, primitives, parsed_windows)
    return features
