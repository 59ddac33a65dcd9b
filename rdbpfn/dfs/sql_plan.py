"""The SQL plan of DFS features: one set-based plan, run by DuckDB or Spark.

It computes the features of :mod:`rdbpfn.dfs.vectorized` (the reference semantics) with the
same values, as a script of SQL statements whose cost grows with rows and requests, never
with requests times children.

**Inputs.** Each table reaches the engine as an Arrow table of what the plan reads (a table
that stays in DuckDB: a SELECT over it with the same columns, see
:mod:`rdbpfn.duckdb_tables`): ``rownum`` (row number), ``t`` (the table's int64 time keys,
when it has a time column), ``k<i>`` (parent row of foreign key ``i``, from
``db.foreign_key_codes``, null when none) and value columns (numeric and boolean: float64,
missing = null; categorical: int64 category codes). Both engines thus compare the same
integers: a row is visible at cutoff ``c`` iff ``t <= c`` (``t < c`` with
``include_cutoff_time=False``); a row with a missing time (``MISSING_TIME``) never is, and
tables without a time column always are.

**Plan.** It follows the vectorized engine's request sets. A *domain* is a relation of the
distinct ``(rownum, cutoff)`` pairs of one table reached by one path of hops (rownum -1 =
an absent row); a feature's value depends only on that pair. The values of a set of
features on a domain form one relation with a column per feature, defaults applied (COUNT
and SUM over nothing are 0, everything else null), made of:

- identity features: one join with the table;
- direct features, per foreign key: a *hop* relation (each pair -> its parent row if the
  parent is visible at the cutoff, else -1), the parents' distinct pairs as a new domain,
  the parent features computed on it (recursively) and joined back;
- aggregations, per backward path of foreign keys (children, grandchildren, ...):

  * base *static* (a column of the last table, possibly through direct features: once a
    row is visible its value no longer depends on the cutoff). The path is flattened to
    ``(root row, t, value)``, ``t`` = the latest time along the path and the direct hops
    (when the value becomes visible), and one ASOF join puts each row in the *bucket* of
    the first cutoff among its root's pairs that sees it (rows no pair sees drop out).
    "prefix" primitives (count, sum, mean, max, min, percent_true, time_since_first/last)
    aggregate per (root, bucket), then run over the buckets of each root (a window over at
    most as many rows as the domain has pairs), read for every pair at once by one ASOF
    join on ``cutoff >= bucket``. "per_value" primitives (mode) keep a running count per
    (root, value, bucket); the (pair, value) pairs seen by the cutoff are read by one ASOF
    join, then aggregated. ``num_unique`` runs a count of each value's first bucket. A
    recent window of count or sum (``COUNT(orders, last 30 days)``) is the running value at
    the cutoff minus the one at ``cutoff - window``: the same plan over the pairs and their
    shifted twins.
  * the rest: a base that depends on the cutoff (an aggregation,
    ``MEAN(orders.SUM(items.price))``, or a direct feature of one), a primitive that counts
    rows (percent_true, num_unique) over values that appear after their rows (a direct hop
    to a timed table), or a window over a longer path: one join of all the domain's pairs
    with their visible descendants (the child request set; with a window they must also be
    after ``cutoff - window``, at or after with strict cutoffs), the base computed on the
    distinct ``(child, cutoff)`` pairs (recursively), then one GROUP BY over all pairs.

- the age ``TIME_SINCE(<time column>)``: one join with the table, like identity features.

**Time.** Differences to the cutoff follow :func:`rdbpfn.table.time_differences`: datetime
keys are subtracted as integers (nanoseconds), then divided by 1e9; numeric-time databases
get their times as float columns and a relation ``cutoffs(cutoff, now)`` of each cutoff
key's float. A feature measured from the cutoff (an age, a window, a ``TIME_SINCE_*``, or
built on one) is missing for a request without a cutoff (``LATEST_CUTOFF``).

So depth 1 is a few ASOF joins per (path, time signature) whatever the primitives and
windows, and nothing joins a parent with all its children per cutoff; depth 2 adds one hop
or one child join per request set; nothing runs per request. How each
primitive aggregates lives in one mapping, :data:`AGGREGATIONS`; a primitive missing from it
raises a ValueError naming it.

The plan is DuckDB SQL; :mod:`rdbpfn.dfs.duckdb_engine` runs it in DuckDB and
:mod:`rdbpfn.dfs.spark_engine` transpiles it to Spark SQL (with ``asof=False``: running
minima and maxima over sorted unions where DuckDB uses ASOF joins; same values).
:func:`features_sql` shows the script.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rdbpfn.database import Database
from rdbpfn.dfs.synthesis import Feature, Link, links_of
from rdbpfn.duckdb_tables import DuckDBTable, quote
from rdbpfn.table import LATEST_CUTOFF, MISSING_TIME, time_differences, time_keys

__all__ = ["AGGREGATIONS", "Aggregation", "Plan", "Script", "call_prefix", "check_supported",
           "checked_requests", "features_sql"]


@dataclass(frozen=True)
class Aggregation:
    """How one primitive aggregates the values ``{x}`` of a segment (the rows a request sees).

    ``strategy="prefix"``: ``partials`` are ``(name, aggregate of {x}, merge)``; ``merge`` is
    the aggregate that combines the partials of consecutive slices (count -> sum, max ->
    max), so the aggregate over the rows visible at a cutoff is a running aggregate over
    time. ``final`` combines the partials, named in braces.

    ``strategy="per_value"``: the rows are first counted per distinct non-missing value;
    ``final`` aggregates the (value ``{x}``, count ``{n}``) pairs of a segment.

    ``strategy="distinct"``: the number of distinct non-missing values (``final`` is the SQL
    aggregate over a segment's rows); over time, a running count of each value's first
    appearance.

    ``counts_rows``: the primitive counts rows whatever their value (``percent_true`` counts
    missing as false; ``num_unique`` is 0, not missing, over rows without values). Running
    aggregates add a static base's value when it becomes visible, which for such primitives
    is right only when the row and its value become visible together: a base without
    direct hops to a timed table.

    ``elapsed``: ``final`` is a time (a table's time column) and the feature is the time
    from it to the cutoff.

    ``subtractive``: the aggregate over ``(cutoff - window, cutoff]`` is the running
    aggregate at the cutoff minus the one at ``cutoff - window`` (count, sum), which serves
    recent windows from the same running relation.

    ``default``: the value over no rows (SQL).
    """

    strategy: str
    final: str
    partials: tuple[tuple[str, str, str], ...] = ()
    default: str = "NULL"
    counts_rows: bool = False
    elapsed: bool = False
    subtractive: bool = False


AGGREGATIONS: dict[str, Aggregation] = {
    "count": Aggregation("prefix", "{n}", (("n", "count({x})", "sum"),), default="0",
                         subtractive=True),
    "sum": Aggregation("prefix", "{s}", (("s", "sum({x})", "sum"),), default="0",
                       subtractive=True),
    "mean": Aggregation("prefix", "CASE WHEN {n} > 0 THEN {s} / {n} END",
                        (("s", "sum({x})", "sum"), ("n", "count({x})", "sum"))),
    "max": Aggregation("prefix", "{hi}", (("hi", "max({x})", "max"),)),
    "min": Aggregation("prefix", "{lo}", (("lo", "min({x})", "min"),)),
    # the most frequent code, ties to the smallest (as the vectorized engine): the code that
    # minimises x - n * 2**32 (codes and counts < 2**31); arg_min is Spark's min_by
    "mode": Aggregation("per_value", "arg_min({x}, {x} - {n} * 4294967296)"),
    # 0 when the segment has rows but no value; no rows -> no group -> NULL (featuretools)
    "num_unique": Aggregation("distinct", "count(DISTINCT {x})", counts_rows=True),
    # missing counts as false: true rows over all rows, in integers then one division
    "percent_true": Aggregation(
        "prefix", "CAST({t} AS DOUBLE) / {n}",
        (("t", "count(*) FILTER (WHERE {x} = 1)", "sum"), ("n", "count(*)", "sum")),
        counts_rows=True),
    "time_since_first": Aggregation("prefix", "{lo}", (("lo", "min({x})", "min"),),
                                    elapsed=True),
    "time_since_last": Aggregation("prefix", "{hi}", (("hi", "max({x})", "max"),),
                                   elapsed=True),
}
"""primitive -> how DuckDB aggregates it. Missing values (null) are skipped by all."""

_STRATEGIES = ("prefix", "per_value", "distinct")
_VALUE_KINDS = ("numeric", "boolean", "categorical", "index", "time")
_ROWS_SO_FAR = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


# ------------------------------------------------------------------ feature helpers
def _unique(features: Sequence[Feature]) -> list[Feature]:
    seen: dict[int, Feature] = {}
    for feature in features:
        seen.setdefault(id(feature), feature)
    return list(seen.values())


def _grouped(features: Sequence[Feature], key: Callable[[Feature], Hashable]
             ) -> list[list[Feature]]:
    """Features grouped by ``key``, groups in order of first appearance."""
    groups: dict[Hashable, list[Feature]] = {}
    for feature in features:
        groups.setdefault(key(feature), []).append(feature)
    return list(groups.values())


def _direct_chain(feature: Feature) -> tuple[list[Link], Feature]:
    """The forward links of a chain of direct features, and the feature at its end."""
    links = []
    while feature.kind == "direct":
        assert feature.link is not None and feature.base is not None
        links.append(feature.link)
        feature = feature.base
    return links, feature


def _is_static(feature: Feature) -> bool:
    """Whether a visible row's value of ``feature`` is the same at every cutoff: an identity
    feature, possibly through direct features (only its visibility depends on the cutoff)."""
    return _direct_chain(feature)[1].kind == "identity"


def check_supported(features: Sequence[Feature]) -> None:
    """Raises a ValueError naming every feature (or base) this engine cannot compute."""
    problems: list[str] = []
    stack, seen = list(features), set()
    while stack:
        feature = stack.pop()
        if id(feature) in seen:
            continue
        seen.add(id(feature))
        if feature.kind == "aggregation":
            if feature.primitive not in AGGREGATIONS:
                problems.append(f"{feature.name}: unknown primitive {feature.primitive!r}")
            elif AGGREGATIONS[feature.primitive].strategy not in _STRATEGIES:
                problems.append(f"{feature.name}: strategy "
                                f"{AGGREGATIONS[feature.primitive].strategy!r}")
        elif feature.kind not in ("identity", "direct", "age"):
            problems.append(f"{feature.name}: feature kind {feature.kind!r}")
        elif feature.kind == "identity" and feature.value not in _VALUE_KINDS:
            problems.append(f"{feature.name}: value {feature.value!r}")
        if feature.base is not None:
            stack.append(feature.base)
    if problems:
        raise ValueError(
            f"the SQL engines (duckdb, spark) cannot compute {len(problems)} features: "
            f"{problems[:5]}. They know the primitives {sorted(AGGREGATIONS)}; pass those, "
            "use engine='vectorized', or add the primitive to "
            "rdbpfn.dfs.sql_plan.AGGREGATIONS."
        )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:24]


# ------------------------------------------------------------------ the plan
@dataclass
class Script:
    """The SQL of one request: relations (temp tables) in dependency order, then the final
    select."""

    relations: list[tuple[str, str]]  # (name, SELECT statement)
    final: str

    def drops(self) -> list[list[str]]:
        """For each relation statement, the relations no later statement reads (drop them
        once it has run); those the final select reads are left to the connection."""
        names = {name for name, _ in self.relations}
        last_use: dict[str, int] = {}
        for i, (_, sql) in enumerate(self.relations):
            for word in set(re.findall(r"\w+", sql)) & names:
                last_use[word] = i
        for word in set(re.findall(r"\w+", self.final)) & names:
            last_use.pop(word, None)
        out: list[list[str]] = [[] for _ in self.relations]
        for name, i in last_use.items():
            out[i].append(name)
        return out

    def text(self) -> str:
        statements = [f"CREATE TEMP TABLE {name} AS\n  {sql};" for name, sql in self.relations]
        return "\n".join([*statements, self.final + ";"])


class Plan:
    """Builds the SQL of one request from its features (see the module docstring)."""

    def __init__(self, db: Database, include_cutoff_time: bool, prefix: str,
                 asof: bool = True) -> None:
        self.db = db
        self.asof = asof
        self.strict = not include_cutoff_time
        self.prefix = prefix
        self.requests = f"{prefix}requests"
        self.cutoffs = f"{prefix}cutoffs"
        self.numeric_time = db.time_kind == "numeric"
        self.relations: list[tuple[str, str]] = []
        self.links_from: dict[str, list[Link]] = {name: [] for name in db.tables}
        for link in links_of(db):
            self.links_from[link.child].append(link)
        self.value_columns: dict[str, dict[tuple[str, str], str]] = {}
        self._ids: dict[int, int] = {}
        self.target = ""

    # ---------------------------------------------------------------- naming
    def relation(self, table: str) -> str:
        """Name of the registered input relation of ``table``."""
        self.value_columns.setdefault(table, {})
        return f"{self.prefix}t{list(self.db.tables).index(table)}"

    def value_column(self, table: str, column: str, value: str) -> str:
        kind = value if value in ("categorical", "time") else "numeric"
        columns = self.value_columns.setdefault(table, {})
        return columns.setdefault((column, kind), f"x{len(columns)}")

    def col(self, feature: Feature) -> str:
        """Column of ``feature`` in every relation that holds it."""
        return f"f{self._ids.setdefault(id(feature), len(self._ids))}"

    def add(self, what: str, sql: str) -> str:
        """A new relation (a temp table) holding the result of ``sql``."""
        name = f"{self.prefix}q{len(self.relations)}_{what}"
        self.relations.append((name, sql))
        return name

    def timed(self, table: str) -> bool:
        return self.db[table].time_column is not None

    def visible(self, time: str, cutoff: str) -> str:
        """SQL: a row stamped ``time`` is visible at ``cutoff``."""
        return f"{time} {'<' if self.strict else '<='} {cutoff}"

    def identity(self, feature: Feature, alias: str) -> str:
        """Value of an identity feature read from ``alias`` (its table, left-joined)."""
        if feature.value == "index":
            return f"CASE WHEN {alias}.rownum IS NOT NULL THEN 1.0::DOUBLE END"
        if feature.value == "time":  # the time column: key (datetime) or float (numeric)
            return f"{alias}.{self.value_column(feature.table, str(feature.column), 'time')}"
        assert feature.column is not None
        return f"{alias}.{self.value_column(feature.table, feature.column, feature.value)}"

    def elapsed(self, cutoff: str, time: str, now: str) -> str:
        """SQL: seconds (datetime) or time units (numeric) from ``time`` (a time column's
        value, null when missing) to ``cutoff`` (a key), NULL without a cutoff, as
        :func:`rdbpfn.table.time_differences`. Datetime: integer nanoseconds, then one
        division. Numeric: ``now`` is the cutoff's float (null without a cutoff), read from
        the cutoffs relation (aliased ``z``, see :meth:`now_join`)."""
        if self.numeric_time:
            return f"{now} - ({time})"
        return (f"CASE WHEN {cutoff} < {LATEST_CUTOFF} "
                f"THEN CAST({cutoff} - ({time}) AS DOUBLE) / 1e9 END")

    def now_join(self, cutoff: str) -> str:
        """The join that puts each cutoff's float time in ``z.now`` (numeric times only)."""
        if not self.numeric_time:
            return ""
        return f" LEFT JOIN {self.cutoffs} AS z ON z.cutoff = {cutoff}"

    def finish(self, feature: Feature, expression: str) -> str:
        """An aggregation's value with its default over nothing; NaN (inf - inf) as missing."""
        assert feature.primitive is not None
        default = AGGREGATIONS[feature.primitive].default
        if default.upper() != "NULL":
            expression = f"coalesce({expression}, {default})"
        if feature.value == "categorical":
            return expression
        return f"nullif(CAST({expression} AS DOUBLE), 'NaN'::DOUBLE)"

    # ---------------------------------------------------------------- statement
    def build(self, target: str, features: Sequence[Feature]) -> Script:
        """The script: one row per request, in request order, a column per feature."""
        self.target = target
        if self.timed(target):
            row = (f"CASE WHEN {self.visible('x.t', 'q.cutoff')} THEN q.rownum ELSE -1 END")
            join = f" LEFT JOIN {self.relation(target)} AS x ON x.rownum = q.rownum"
        else:
            row, join = "q.rownum", ""
        requests = self.add("requests", f"SELECT q.request, {row} AS rownum, q.cutoff "
                                        f"FROM {self.requests} AS q{join}")
        domain = self.add(f"domain_{_safe(target)}",
                          f"SELECT DISTINCT rownum, cutoff FROM {requests}")
        values = self.values(target, domain, features)
        outputs = ", ".join(self.output(f) + f" AS o{i}" for i, f in enumerate(features))
        final = (f"SELECT {outputs} FROM {requests} AS r JOIN {values} AS v "
                 "ON v.rownum = r.rownum AND v.cutoff = r.cutoff ORDER BY r.request")
        return Script(list(self.relations), final)

    def output(self, feature: Feature) -> str:
        """A feature's output column; one measured from the cutoff (an age, a window, a
        ``TIME_SINCE_*``) is missing for a request without a cutoff."""
        if feature.value == "categorical":
            return f"coalesce(v.{self.col(feature)}, -1)"
        if feature.measures_time:
            return f"CASE WHEN r.cutoff <> {LATEST_CUTOFF} THEN v.{self.col(feature)} END"
        return f"v.{self.col(feature)}"

    def values(self, table: str, domain: str, features: Sequence[Feature]) -> str:
        """A relation (rownum, cutoff, one column per feature) over every pair of ``domain``."""
        features = _unique(features)
        select, joins = ["d.rownum", "d.cutoff"], []
        identity = [f for f in features if f.kind == "identity"]
        ages = [f for f in features if f.kind == "age"]
        if identity or ages:
            joins.append(f"LEFT JOIN {self.relation(table)} AS x ON x.rownum = d.rownum")
            select += [f"{self.identity(f, 'x')} AS {self.col(f)}" for f in identity]
        if ages:
            joins.append(self.now_join("d.cutoff").strip())
            for f in ages:  # the row's own time, read like a time column's value
                born = f"x.{self.value_column(table, str(f.column), 'time')}"
                select.append(f"{self.elapsed('d.cutoff', born, 'z.now')} AS {self.col(f)}")
        direct = [f for f in features if f.kind == "direct"]
        for j, group in enumerate(_grouped(direct, lambda f: f.link.index)):
            link = group[0].link
            assert link is not None
            hop, parent_values = self.forward(domain, link, [f.base for f in group])
            joins += [
                f"JOIN {hop} AS h{j} ON h{j}.rownum = d.rownum AND h{j}.cutoff = d.cutoff",
                f"JOIN {parent_values} AS p{j} ON p{j}.rownum = h{j}.parent "
                f"AND p{j}.cutoff = d.cutoff",
            ]
            select += [f"p{j}.{self.col(f.base)} AS {self.col(f)}" for f in group]
        aggregations = [f for f in features if f.kind == "aggregation"]
        n = 0
        for group in _grouped(aggregations,
                              lambda f: (tuple(link.index for link in f.path), f.window)):
            for relation, produced in self.aggregate(domain, group[0].path, group):
                joins.append(f"LEFT JOIN {relation} AS a{n} "
                             f"ON a{n}.rownum = d.rownum AND a{n}.cutoff = d.cutoff")
                select += [f"{self.finish(f, f'a{n}.{self.col(f)}')} AS {self.col(f)}"
                           for f in produced]
                n += 1
        return self.add(f"values_{_safe(table)}",
                        f"SELECT {', '.join(select)}\n  FROM {domain} AS d "
                        + "\n    ".join(join for join in joins if join))

    def forward(self, domain: str, link: Link, bases: list[Feature]) -> tuple[str, str]:
        """The hop child -> parent of every pair, and the bases' values on the parents."""
        child = self.relation(link.child)
        if self.timed(link.parent):
            sql = (f"SELECT d.rownum, d.cutoff, coalesce(p.rownum, -1) AS parent "
                   f"FROM {domain} AS d LEFT JOIN {child} AS c ON c.rownum = d.rownum "
                   f"LEFT JOIN {self.relation(link.parent)} AS p ON p.rownum = c.k{link.index} "
                   f"AND {self.visible('p.t', 'd.cutoff')}")
        else:
            sql = (f"SELECT d.rownum, d.cutoff, coalesce(c.k{link.index}, -1) AS parent "
                   f"FROM {domain} AS d LEFT JOIN {child} AS c ON c.rownum = d.rownum")
        hop = self.add(f"hop_{_safe(link.parent)}", sql)
        parents = self.add(f"domain_{_safe(link.parent)}",
                           f"SELECT DISTINCT parent AS rownum, cutoff FROM {hop}")
        return hop, self.values(link.parent, parents, bases)

    # ---------------------------------------------------------------- aggregations
    def aggregate(self, domain: str, path: tuple[Link, ...], features: list[Feature]
                  ) -> list[tuple[str, list[Feature]]]:
        """Relations (rownum, cutoff, a column per feature; pairs without rows may be absent)
        of the aggregations over one backward path (all with one window), and the features
        each holds. Static bases run over buckets (:meth:`bucketed`; recent windows of
        subtractive primitives as the difference of two running values, :meth:`windowed`);
        the rest (cutoff-dependent bases, row-counting primitives over values that appear
        after their rows, other windows) over the expanded segments (:meth:`segmented`)."""
        window = features[0].window

        def bucketed(f: Feature) -> bool:
            aggregation = AGGREGATIONS[f.primitive]
            if not _is_static(f.base) or (aggregation.counts_rows
                                          and self.time_signature(f.base)):
                return False
            # a window bounds the path's own times only: one timed hop, no timed direct hops
            return window is None or (aggregation.subtractive and len(path) == 1
                                      and self.timed(path[0].child)
                                      and not self.time_signature(f.base))

        static = [f for f in features if bucketed(f)]
        dynamic = [f for f in features if not bucketed(f)]
        out: list[tuple[str, list[Feature]]] = []
        if static and window is None:
            out += self.bucketed(domain, path, static)
        elif static:
            out += self.windowed(domain, path, static, window)
        if dynamic:
            out += self.segmented(domain, path, dynamic, window)
        return out

    def bucketed(self, domain: str, path: tuple[Link, ...], features: list[Feature]
                 ) -> list[tuple[str, list[Feature]]]:
        """Aggregations of static bases: each flattened row goes to the bucket of the first
        cutoff among its root's pairs that sees it, then running aggregates over buckets."""
        out: list[tuple[str, list[Feature]]] = []
        for group in _grouped(features, lambda f: self.time_signature(f.base)):
            flat, timed = self.flatten(path, [f.base for f in group])
            leaf = _safe(path[-1].child)
            if timed:  # each row -> the first cutoff of its root's pairs that sees it
                columns = [self.col(base) for base in _unique([f.base for f in group])]
                leaf_rows = self.add(f"seen_{leaf}", self.first_seen(flat, columns, domain))
            else:
                leaf_rows = self.add(f"flat_{leaf}", flat)
            prefix = [f for f in group if AGGREGATIONS[f.primitive].strategy == "prefix"]
            if prefix:
                out.append((self.running(domain, leaf_rows, timed, prefix), prefix))
            for feature in group:
                strategy = AGGREGATIONS[feature.primitive].strategy
                if strategy == "per_value":
                    counts = self.running_counts(domain, leaf_rows, timed, feature)
                    out.append((self.per_value(counts, feature), [feature]))
                elif strategy == "distinct":
                    out.append((self.running_distinct(domain, leaf_rows, timed, feature),
                                [feature]))
        return out

    def windowed(self, domain: str, path: tuple[Link, ...], features: list[Feature],
                 window: int) -> list[tuple[str, list[Feature]]]:
        """Recent-window aggregations of subtractive primitives: the running value at the
        cutoff minus the one at ``cutoff - window``, both read from one bucketed relation
        over the pairs and their shifted twins. With strict cutoffs both exclude their
        instant, which leaves ``[cutoff - window, cutoff)``."""
        shift = int(window)
        both = self.add("window_domain", (
            f"SELECT rownum, cutoff FROM {domain} UNION SELECT rownum, cutoff - {shift} "
            f"FROM {domain} WHERE cutoff < {LATEST_CUTOFF}"))
        out: list[tuple[str, list[Feature]]] = []
        for relation, produced in self.bucketed(both, path, features):
            columns = ", ".join(f"coalesce(a.{self.col(f)}, 0) - coalesce(b.{self.col(f)}, 0) "
                                f"AS {self.col(f)}" for f in produced)
            out.append((self.add("window", (
                f"SELECT d.rownum, d.cutoff, {columns} FROM {domain} AS d "
                f"LEFT JOIN {relation} AS a ON a.rownum = d.rownum AND a.cutoff = d.cutoff "
                f"LEFT JOIN {relation} AS b ON b.rownum = d.rownum "
                f"AND b.cutoff = d.cutoff - {shift}")), produced))
        return out

    def segmented(self, domain: str, path: tuple[Link, ...], features: list[Feature],
                  window: int | None) -> list[tuple[str, list[Feature]]]:
        """Aggregations over the expanded segments: every pair joined with its visible
        descendants, then one GROUP BY per strategy."""
        out: list[tuple[str, list[Feature]]] = []
        segments = self.expand(domain, path, [f.base for f in features], window)
        prefix = [f for f in features if AGGREGATIONS[f.primitive].strategy == "prefix"]
        if prefix:
            partials, finals = self.partials(prefix, "r.cutoff")
            aggregates = ", ".join(f"{aggregate} AS {name}" for name, aggregate, _ in partials)
            inner = (f"SELECT rownum, cutoff, {aggregates} FROM {segments} "
                     "GROUP BY rownum, cutoff")
            out.append((self.add("aggregates", (
                f"SELECT r.rownum, r.cutoff, {finals} FROM ({inner}) AS r"
                f"{self.now_join('r.cutoff')}")), prefix))
        for feature in features:
            aggregation = AGGREGATIONS[feature.primitive]
            x = self.col(feature.base)
            if aggregation.strategy == "per_value":
                counts = self.add("value_counts", (
                    f"SELECT rownum, cutoff, {x} AS x, count(*) AS n FROM {segments} "
                    f"WHERE {x} IS NOT NULL GROUP BY rownum, cutoff, {x}"))
                out.append((self.per_value(counts, feature), [feature]))
            elif aggregation.strategy == "distinct":
                final = aggregation.final.format(x=x)
                out.append((self.add("distinct", (
                    f"SELECT rownum, cutoff, {final} AS {self.col(feature)} FROM {segments} "
                    "GROUP BY rownum, cutoff")), [feature]))
        return out

    def first_seen(self, flat: str, columns: list[str], domain: str) -> str:
        """SQL: the rows of ``flat`` (root, t, ``columns``), each with ``bucket`` = the first
        cutoff among its root's pairs in ``domain`` that sees it; rows none sees drop out.
        One ASOF join, or (``asof=False``) a running minimum over the rows and the pairs
        sorted by time, ties ordered so that a cutoff sees the rows at its instant (or, with
        strict cutoffs, does not)."""
        if self.asof:
            return (f"SELECT l.*, b.cutoff AS bucket FROM ({flat}) AS l ASOF JOIN {domain} AS b "
                    f"ON b.rownum = l.root AND l.t {'<' if self.strict else '<='} b.cutoff")
        row, pair = (1, 0) if self.strict else (0, 1)
        values = ", ".join(columns)
        nulls = ", ".join(f"NULL AS {c}" for c in columns)
        both = (f"SELECT root, t, {values}, NULL AS c, {row} AS kind FROM ({flat}) AS l "
                f"UNION ALL SELECT rownum AS root, cutoff AS t, {nulls}, cutoff AS c, "
                f"{pair} AS kind FROM {domain}")
        return (f"SELECT root, t, {values}, bucket FROM (SELECT u.*, min(c) OVER (PARTITION BY "
                "root ORDER BY t, kind ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS "
                f"bucket FROM ({both}) AS u) AS s WHERE kind = {row} AND bucket IS NOT NULL")

    def latest(self, pairs: str, totals: str, keys: list[str]) -> str:
        """FROM clause: each row of ``pairs`` (``keys``, cutoff; aliased ``d``) with the row of
        ``totals`` (root, the other keys, bucket; aliased ``r``) of the same keys and the
        latest bucket at or before its cutoff; rows without one drop out. One ASOF join, or
        (``asof=False``) a running maximum of the buckets over the buckets and the pairs
        sorted by time (a bucket at a cutoff's instant counts), then an equi-join."""
        names = {"rownum": "root"}
        on = " AND ".join(f"r.{names.get(k, k)} = d.{k}" for k in keys)
        if self.asof:
            return f"{pairs} AS d ASOF JOIN {totals} AS r ON {on} AND d.cutoff >= r.bucket"
        listed = ", ".join(keys)
        both = (f"SELECT {', '.join(f'{names.get(k, k)} AS {k}' for k in keys)}, bucket AS "
                f"cutoff, bucket AS b, 0 AS kind FROM {totals} UNION ALL SELECT {listed}, "
                f"cutoff, NULL AS b, 1 AS kind FROM {pairs}")
        marks = self.add("latest", (
            f"SELECT {listed}, cutoff, kind, max(b) OVER (PARTITION BY {listed} ORDER BY "
            f"cutoff, kind {_ROWS_SO_FAR}) AS bucket FROM ({both}) AS u"))
        return (f"(SELECT {listed}, cutoff, bucket FROM {marks} WHERE kind = 1 AND bucket IS "
                f"NOT NULL) AS d JOIN {totals} AS r ON {on} AND r.bucket = d.bucket")

    def time_signature(self, base: Feature) -> tuple[tuple[int, ...], ...]:
        """The direct hops of a static base that reach a timed table (their times delay the
        value): bases with equal signatures share one flattened relation."""
        links, _ = _direct_chain(base)
        return tuple(tuple(link.index for link in links[:i + 1])
                     for i, link in enumerate(links) if self.timed(link.parent))

    def flatten(self, path: tuple[Link, ...], bases: list[Feature]) -> tuple[str, bool]:
        """The rows at the end of ``path`` as (root, t, a column per static base): ``root`` is
        the row at the path's start, ``t`` when the values become visible (the latest time
        along the path and the bases' direct hops; absent when no table there has a time).
        Returns the SELECT and whether it has ``t``."""
        k = len(path)
        joins = [f"{self.relation(path[-1].child)} AS c{k}"]
        for i in range(k - 1, 0, -1):  # c{i} is the parent of c{i+1} through path[i]
            joins.append(f"JOIN {self.relation(path[i - 1].child)} AS c{i} "
                         f"ON c{i}.rownum = c{i + 1}.k{path[i].index}")
        times = [f"c{i + 1}.t" for i, link in enumerate(path) if self.timed(link.child)]
        aliases: dict[tuple[int, ...], str] = {(): f"c{k}"}
        columns = []
        for base in _unique(bases):
            links, identity = _direct_chain(base)
            key: tuple[int, ...] = ()
            for link in links:
                source, key = aliases[key], (*key, link.index)
                if key not in aliases:
                    aliases[key] = alias = f"j{len(aliases)}"
                    joins.append(f"LEFT JOIN {self.relation(link.parent)} AS {alias} "
                                 f"ON {alias}.rownum = {source}.k{link.index}")
                    if self.timed(link.parent):
                        times.append(f"{alias}.t")
            columns.append(f"{self.identity(identity, aliases[key])} AS {self.col(base)}")
        root = f"c1.k{path[0].index}"
        select = [f"{root} AS root"]
        if len(times) == 1:
            select.append(f"{times[0]} AS t")
        elif times:
            select.append(f"greatest({', '.join(times)}) AS t")
        sql = (f"SELECT {', '.join(select + columns)} FROM {' '.join(joins)} "
               f"WHERE {root} IS NOT NULL")
        return sql, bool(times)

    def partials(self, features: list[Feature], cutoff: str
                 ) -> tuple[list[tuple[str, str, str]], str]:
        """The partial aggregates of the prefix ``features`` as ``(name, aggregate, merge)``
        (``p0, p1, ...``, shared between features), and their finals (``... AS f<id>``) as
        one SQL list over the partials of a relation aliased ``r``; an elapsed final is
        measured to ``cutoff`` (numeric times: from ``z.now``, see :meth:`now_join`)."""
        names: dict[tuple[str, str], str] = {}
        finals = []
        for feature in features:
            assert feature.primitive is not None and feature.base is not None
            aggregation = AGGREGATIONS[feature.primitive]
            mapping = {}
            for name, aggregate, merge in aggregation.partials:
                key = (aggregate.format(x=self.col(feature.base)), merge)
                mapping[name] = "r." + names.setdefault(key, f"p{len(names)}")
            final = aggregation.final.format(**mapping)
            if aggregation.elapsed:
                final = self.elapsed(cutoff, final, "z.now")
            finals.append(f"{final} AS {self.col(feature)}")
        partials = [(name, aggregate, merge) for (aggregate, merge), name in names.items()]
        return partials, ", ".join(finals)

    def running(self, domain: str, rows: str, timed: bool, features: list[Feature]) -> str:
        """Prefix aggregations of static bases: partials per (root, bucket), running over the
        buckets of each root (a window), read at each pair's cutoff by one ASOF join (one
        equi-join when nothing is timed)."""
        partials, finals = self.partials(features, "d.cutoff")
        aggregates = ", ".join(f"{aggregate} AS {name}" for name, aggregate, _ in partials)
        if timed:
            merged = ", ".join(f"{merge}({name}) OVER w AS {name}" for name, _, merge in partials)
            sql = (f"SELECT root, bucket, {merged} FROM (SELECT root, bucket, {aggregates} "
                   f"FROM {rows} GROUP BY root, bucket) AS g "
                   f"WINDOW w AS (PARTITION BY root ORDER BY bucket {_ROWS_SO_FAR})")
            source = self.latest(domain, self.add("running", sql), ["rownum"])
        else:
            totals = self.add("totals", f"SELECT root, {aggregates} FROM {rows} GROUP BY root")
            source = f"{domain} AS d JOIN {totals} AS r ON r.root = d.rownum"
        return self.add("aggregates", f"SELECT d.rownum, d.cutoff, {finals} "
                                      f"FROM {source}{self.now_join('d.cutoff')}")

    def running_distinct(self, domain: str, rows: str, timed: bool, feature: Feature) -> str:
        """Distinct values of a static base seen by each pair: a running count of each
        value's first bucket, over every bucket with rows (0 where rows have no value)."""
        x, column = self.col(feature.base), self.col(feature)
        if not timed:
            totals = f"SELECT root, count(DISTINCT {x}) AS u FROM {rows} GROUP BY root"
            return self.add("distinct", f"SELECT d.rownum, d.cutoff, r.u AS {column} FROM "
                                        f"{domain} AS d JOIN ({totals}) AS r ON r.root = d.rownum")
        first = (f"SELECT root, bucket, count(*) AS u FROM (SELECT root, min(bucket) AS bucket "
                 f"FROM {rows} WHERE {x} IS NOT NULL GROUP BY root, {x}) AS m "
                 "GROUP BY root, bucket")
        buckets = f"SELECT root, bucket FROM {rows} GROUP BY root, bucket"
        running = self.add("running_distinct", (
            f"SELECT b.root, b.bucket, sum(coalesce(f.u, 0)) OVER (PARTITION BY b.root "
            f"ORDER BY b.bucket {_ROWS_SO_FAR}) AS u FROM ({buckets}) AS b LEFT JOIN ({first}) "
            "AS f ON f.root = b.root AND f.bucket = b.bucket"))
        return self.add("distinct", (f"SELECT d.rownum, d.cutoff, r.u AS {column} FROM "
                                     f"{self.latest(domain, running, ['rownum'])}"))

    def running_counts(self, domain: str, rows: str, timed: bool, feature: Feature) -> str:
        """Per-value aggregation of a static base: (rownum, cutoff, x, n) = how many rows
        with value x each pair sees, for the values it sees at all."""
        x = self.col(feature.base)
        if not timed:
            totals = (f"SELECT root, {x} AS x, count(*) AS n FROM {rows} "
                      f"WHERE {x} IS NOT NULL GROUP BY root, {x}")
            return self.add("value_counts", f"SELECT d.rownum, d.cutoff, s.x, s.n FROM "
                                            f"{domain} AS d JOIN ({totals}) AS s "
                                            "ON s.root = d.rownum")
        first = self.add("first_seen", (
            f"SELECT root, {x} AS x, min(bucket) AS bucket FROM {rows} "
            f"WHERE {x} IS NOT NULL GROUP BY root, {x}"))
        running = self.add("running_counts", (
            f"SELECT root, {x} AS x, bucket, sum(count(*)) OVER (PARTITION BY root, {x} "
            f"ORDER BY bucket {_ROWS_SO_FAR}) AS n FROM {rows} WHERE {x} IS NOT NULL "
            f"GROUP BY root, {x}, bucket"))
        pairs = self.add("seen_values", (
            f"SELECT d.rownum, d.cutoff, s.x FROM {domain} AS d JOIN {first} AS s "
            "ON s.root = d.rownum AND s.bucket <= d.cutoff"))
        return self.add("value_counts", (f"SELECT d.rownum, d.cutoff, d.x, r.n FROM "
                                         f"{self.latest(pairs, running, ['rownum', 'x'])}"))

    def per_value(self, counts: str, feature: Feature) -> str:
        assert feature.primitive is not None
        final = AGGREGATIONS[feature.primitive].final.format(x="x", n="n")
        return self.add("per_value", f"SELECT rownum, cutoff, {final} AS {self.col(feature)} "
                                     f"FROM {counts} GROUP BY rownum, cutoff")

    def expand(self, domain: str, path: tuple[Link, ...], bases: list[Feature],
               window: int | None = None) -> str:
        """Every pair joined with its visible descendants along ``path`` (the child request
        set), with the bases' values there: (rownum, cutoff, a column per base). With
        ``window``, a timed descendant must also be after ``cutoff - window`` (at or after
        with strict cutoffs: the window keeps its length)."""
        joins, previous = [f"{domain} AS d"], "d"
        for i, link in enumerate(path, 1):
            condition = f"c{i}.k{link.index} = {previous}.rownum"
            if self.timed(link.child):
                condition += f" AND {self.visible(f'c{i}.t', 'd.cutoff')}"
                if window is not None:
                    condition += (f" AND c{i}.t {'>=' if self.strict else '>'} "
                                  f"d.cutoff - {int(window)}")
            joins.append(f"JOIN {self.relation(link.child)} AS c{i} ON {condition}")
            previous = f"c{i}"
        leaf = path[-1].child
        children = self.add(f"children_{_safe(leaf)}", (
            f"SELECT d.rownum, d.cutoff, c{len(path)}.rownum AS child FROM {' '.join(joins)}"))
        domain_of_children = self.add(f"domain_{_safe(leaf)}", (
            f"SELECT DISTINCT child AS rownum, cutoff FROM {children}"))
        bases = _unique(bases)
        child_values = self.values(leaf, domain_of_children, bases)
        columns = ", ".join(f"v.{self.col(base)}" for base in bases)
        return self.add("segments", (
            f"SELECT e.rownum, e.cutoff, {columns} FROM {children} AS e JOIN {child_values} "
            "AS v ON v.rownum = e.child AND v.cutoff = e.cutoff"))

    # ---------------------------------------------------------------- inputs
    def inputs(self, rows: np.ndarray, cutoff_keys: np.ndarray) -> dict[str, pa.Table | str]:
        """What the statement reads, by relation name, in creation order: Arrow tables
        (registered) for tables in memory, SELECTs (materialized once) for tables that stay
        in DuckDB. For those, ``rows`` are the target's primary-key values and the requests
        find their rows by a join (unknown ones get a null rownum, see :meth:`unknown`)."""
        out: dict[str, pa.Table | str] = {}
        in_duckdb = self.db.duckdb_source is not None
        if in_duckdb:
            ids = f"{self.prefix}ids"
            out[ids] = pa.table({"request": pa.array(np.arange(len(rows), dtype=np.int64)),
                                 "id": _arrow_ids(rows), "cutoff": pa.array(cutoff_keys)})
            target = self.db[self.target]
            assert isinstance(target, DuckDBTable) and target.primary_key is not None
            out[self.requests] = (
                f"SELECT q.request, x.rowid AS rownum, q.cutoff FROM {ids} AS q LEFT JOIN "
                f"{target.sql_name} AS x ON x.{quote(target.primary_key)} = q.id")
        else:
            out[self.requests] = pa.table({
                "request": pa.array(np.arange(len(rows), dtype=np.int64)),
                "rownum": pa.array(rows),
                "cutoff": pa.array(cutoff_keys),
            })
        for table, columns in self.value_columns.items():
            info = self.db[table]
            if isinstance(info, DuckDBTable):
                out[self.relation(table)] = self.duckdb_input(info, columns)
                continue
            arrays = {"rownum": pa.array(np.arange(len(info), dtype=np.int64))}
            if info.time_column is not None:
                arrays["t"] = pa.array(info.time_keys(table))
            for link in self.links_from[table]:
                codes = self.db.foreign_key_codes(table, link.column)
                arrays[f"k{link.index}"] = pa.array(codes, mask=codes < 0)
            for (column, kind), name in columns.items():
                if kind == "time":  # int64 keys (datetime) or the float times (numeric)
                    keys = info.time_keys(table)
                    if self.numeric_time:
                        arrays[name] = pa.array(_float_times(keys), from_pandas=True)
                    else:
                        arrays[name] = pa.array(keys, mask=keys == MISSING_TIME)
                elif kind == "categorical":
                    codes = info.categorical_codes(column)[0]
                    arrays[name] = pa.array(codes, mask=codes < 0)
                else:  # NaN becomes null: missing, skipped by every aggregate
                    arrays[name] = pa.array(info.numeric_values(column), from_pandas=True)
            out[self.relation(table)] = pa.table(arrays)
        if self.numeric_time:
            unique = np.unique(cutoff_keys)
            out[self.cutoffs] = pa.table({"cutoff": pa.array(unique),
                                          "now": pa.array(_float_times(unique),
                                                          from_pandas=True)})
        return out

    def duckdb_input(self, info: DuckDBTable, columns: dict[tuple[str, str], str]) -> str:
        """The SELECT of a table that stays in DuckDB, with the columns of the Arrow input of
        a table in memory (see the module docstring): rownum = rowid, k<i> = the parent's
        rowid, categories ranked by sorted value."""
        select, joins = ["x.rowid AS rownum"], []
        if info.time_column is not None:
            select.append(f"coalesce({info.time_key('x')}, {MISSING_TIME}) AS t")
        for link in self.links_from[info.name]:
            parent = self.db[link.parent]
            assert isinstance(parent, DuckDBTable) and parent.primary_key is not None
            alias = f"p{link.index}"
            joins.append(f"LEFT JOIN {parent.sql_name} AS {alias} ON "
                         f"{alias}.{quote(parent.primary_key)} = x.{quote(link.column)}")
            select.append(f"{alias}.rowid AS k{link.index}")
        for (column, kind), name in columns.items():
            if kind == "time":
                select.append(f"{info.time_key('x')} AS {name}")
            elif kind == "categorical":
                joins.append(f"LEFT JOIN ({info.categories_sql(column)}) AS {name}_codes "
                             f"ON {name}_codes.v = {info.text(column, 'x')}")
                select.append(f"{name}_codes.code AS {name}")
            else:
                select.append(f"{info.numeric(column, 'x')} AS {name}")
        return f"SELECT {', '.join(select)} FROM {info.sql_name} AS x " + " ".join(joins)

    def unknown(self) -> str | None:
        """SQL of up to five requested ids that name no row (tables in DuckDB), else None."""
        if self.db.duckdb_source is None:
            return None
        return (f"SELECT q.id FROM {self.prefix}ids AS q JOIN {self.requests} AS r "
                "ON r.request = q.request WHERE r.rownum IS NULL LIMIT 5")


def _arrow_ids(ids: np.ndarray) -> pa.Array:
    try:
        return pa.array(list(ids) if ids.dtype == object else ids, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
        raise ValueError(
            f"entity_ids mix types ({str(error).splitlines()[0]}); pass primary-key values "
            "of one type."
        ) from None


def _float_times(keys: np.ndarray) -> np.ndarray:
    """The float times of numeric time keys (NaN for missing times and "no cutoff"), taken
    as ``time_differences(keys, key of 0.0)``: exactly the floats the reference subtracts."""
    zero = time_keys(np.zeros(1), "numeric", "zero")
    return time_differences(keys, np.broadcast_to(zero, np.shape(keys)), "numeric")


# ------------------------------------------------------------------ entry points
def checked_requests(features: Sequence[Feature], rows: np.ndarray, cutoff_keys: np.ndarray,
                     ids: bool = False) -> tuple[list[Feature], np.ndarray, np.ndarray]:
    """What the SQL engines check and normalise before planning: supported features, (n,)
    int64 rows (``ids``: primary-key values of a table that stays in DuckDB, any dtype) and
    (n,) int64 cutoff keys of one length."""
    features = list(features)
    check_supported(features)
    rows = np.asarray(rows).reshape(-1) if ids else np.asarray(rows, np.int64).reshape(-1)
    cutoff_keys = np.asarray(cutoff_keys, dtype=np.int64).reshape(-1)
    if len(rows) != len(cutoff_keys):
        raise ValueError(f"rows has {len(rows)} entries and cutoff_keys {len(cutoff_keys)}; "
                         "pass one cutoff key per row.")
    return features, rows, cutoff_keys


def call_prefix() -> str:
    """A prefix for one call's relation names, unique on a shared connection or session."""
    return f"rdbpfn_{uuid.uuid4().hex[:12]}_"


def features_sql(db: Database, target_table: str, features: Sequence[Feature],
                 include_cutoff_time: bool = True, asof: bool = True) -> str:
    """The SQL script :func:`evaluate_features_duckdb` runs, for reading or ``EXPLAIN``.

    It reads ``requests(request, rownum, cutoff)``, ``cutoffs(cutoff, now)`` (numeric-time
    databases with time features) and one relation ``t<i>`` per table (``i``
    = the table's position in the database), as described in the module docstring.
    ``asof=False`` gives the plan without ASOF joins (see :func:`evaluate_features_duckdb`).
    """
    check_supported(features)
    plan = Plan(db, include_cutoff_time, prefix="", asof=asof)
    return plan.build(target_table, list(features)).text()


