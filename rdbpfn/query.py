"""Predictive queries: a task written as text, labelled from the database's own history.

The language follows KumoRFM's predictive query syntax::

    PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id
    PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id
        WHERE customers.segment = 'gold'

A query names an *entity table* and its primary key (``FOR EACH customers.customer_id``) and
an aggregation over a *child table* (one with a foreign key to the entity table) in a future
window. For an entity at cutoff ``t`` the window holds the child rows whose time lies in
``(t + start, t + end]``: it starts strictly after the cutoff, so a label never uses a row the
features at ``t`` can see (those have time ``<= t``). With a comparison (``> 0``) the label
is 0/1 (a binary task), without one it is the number (a regression task).

Grammar (keywords, aggregations and units are case-insensitive)::

    query       = "PREDICT" target "FOR" "EACH" name "." name [ "WHERE" condition ] ;
    target      = aggregation [ operator number ] ;
    aggregation = ("COUNT" | "SUM" | "AVG" | "MIN" | "MAX")
                  "(" name "." ( name | "*" ) "," integer "," integer "," unit ")" ;
    unit        = "hours" | "days" | "months" ;       (singular forms too)
    condition   = conjunction { "OR" conjunction } ;
    conjunction = atom { "AND" atom } ;
    atom        = "(" condition ")" | [ name "." ] name operator ( number | string ) ;
    operator    = ">" | ">=" | "<" | "<=" | "=" | "!=" ;
    name        = letter { letter | digit | "_" } | '"' any text, "" for a quote '"' ;
    string      = "'" any text, '' for a quote "'" ;

Only ``COUNT`` takes ``*`` (rows); ``COUNT(orders.col)`` counts non-missing values. ``WHERE``
filters the entity table only (``customers.segment`` or just ``segment``).

:class:`Query` is a frozen dataclass: ``Query(text)`` parses, :meth:`Query.build` builds the
same value from Python, ``str(query)`` prints canonical text that parses back to an equal
query. :meth:`Query.check` checks it against a database, :meth:`Query.labels` computes the
labels at given cutoffs, :meth:`Query.label_horizon` says which cutoffs have full windows.
"""

from __future__ import annotations

import math
import operator
import re
import warnings
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.duckdb_tables import DuckDBTable
from rdbpfn.query_duckdb import duckdb_entity_pairs, duckdb_labels, duckdb_time_range
from rdbpfn.table import MISSING_TIME, Table, time_keys

__all__ = ["AGGREGATIONS", "OPERATORS", "UNITS", "BoolOp", "Comparison", "Condition", "Query",
           "QuerySyntaxError"]

AGGREGATIONS = ("count", "sum", "avg", "min", "max")
"""Aggregations of a query, in canonical (lower-case) spelling."""

UNITS = ("hours", "days", "months")
"""Window units. Hours and days are fixed durations; months are calendar months
(``pd.DateOffset(months=n)``: Jan 31 + 1 month = Feb 28/29)."""

_UNIT_ALIASES = {"hour": "hours", "day": "days", "month": "months"}

OPERATORS = (">", ">=", "<", "<=", "=", "!=")
"""Comparison operators of a target and of a ``WHERE`` condition."""

_NUMPY_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
                    "=": operator.eq, "!=": operator.ne}

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<string>'(?:[^']|'')*')
  | (?P<operator>>=|<=|!=|[<>=])
  | (?P<punct>[().,*])
""", re.VERBOSE)


class QuerySyntaxError(ValueError):
    """A query that does not parse: names the token, its column (1-based) and what was
    expected. Attributes ``column``, ``token`` (its text, ``None`` at the end) and
    ``expected``."""

    def __init__(self, text: str, column: int, token: str | None, expected: str) -> None:
        got = "end of query" if token is None else repr(token)
        super().__init__(
            f"expected {expected} at column {column}, got {got}\n  {text}\n  {' ' * (column - 1)}^"
        )
        self.column = column
        self.token = token
        self.expected = expected


# ------------------------------------------------------------------------------------ values
def _number(value: Any, what: str) -> int | float:
    """A finite int or float (numpy scalars unwrapped); bools are refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}.")
    return value


def _literal_text(value: int | float | str) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _name_text(name: str) -> str:
    """A name as query text: bare when it is a plain word, double-quoted otherwise."""
    return name if _PLAIN_NAME.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def _window_problem(start: Any, end: Any) -> str | None:
    """Why (start, end) is not a window, or None when it is one."""
    for what, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            return f"window {what} must be a whole number >= 0, got {value!r}"
    if start >= end:
        return (f"the window (start {start}, end {end}] is empty; start must be less than end, "
                f"e.g. (0, 30, days) is the 30 days after the cutoff")
    return None


# -------------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class Comparison:
    """``WHERE`` leaf: ``entity.column operator value`` (a number or a string).

    A missing value fails every comparison, ``!=`` included (SQL's NULL).
    """

    column: str
    operator: str
    value: int | float | str

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise ValueError(f"a WHERE column must be a non-empty string, got {self.column!r}.")
        if self.operator not in OPERATORS:
            raise ValueError(f"WHERE operator must be one of {OPERATORS}, got {self.operator!r}.")
        if not isinstance(self.value, str):
            object.__setattr__(self, "value", _number(self.value, f"WHERE {self.column} value"))

    def to_text(self, entity: str) -> str:
        """Canonical text, the column qualified by the entity table."""
        column = f"{_name_text(entity)}.{_name_text(self.column)}"
        return f"{column} {self.operator} {_literal_text(self.value)}"

    def to_sql(self, alias: str) -> str:
        """SQL over the entity table aliased ``alias`` (NULL fails, as in pandas); a string
        is compared with the column's text."""
        column = f'{alias}."{self.column.replace(chr(34), chr(34) * 2)}"'
        if isinstance(self.value, str):
            literal = "'" + self.value.replace("'", "''") + "'"
            return f"CAST({column} AS VARCHAR) {self.operator} {literal}"
        return f"CAST({column} AS DOUBLE) {self.operator} {float(self.value)!r}"


@dataclass(frozen=True)
class BoolOp:
    """``WHERE`` node: ``operator`` ("and" / "or") over two or more conditions. Nested nodes
    of the same operator are flattened, so ``(a AND b) AND c`` equals ``a AND b AND c``."""

    operator: str
    operands: tuple[Condition, ...]

    def __post_init__(self) -> None:
        if self.operator not in ("and", "or"):
            raise ValueError(f"BoolOp operator must be 'and' or 'or', got {self.operator!r}.")
        flat: list[Condition] = []
        for operand in self.operands:
            if not isinstance(operand, (Comparison, BoolOp)):
                raise TypeError(f"BoolOp operands are Comparison or BoolOp, got {operand!r}.")
            is_same = isinstance(operand, BoolOp) and operand.operator == self.operator
            flat.extend(operand.operands if is_same else [operand])
        if len(flat) < 2:
            raise ValueError(f"BoolOp needs at least two operands, got {len(flat)}.")
        object.__setattr__(self, "operands", tuple(flat))

    def to_sql(self, alias: str) -> str:
        """SQL over the entity table aliased ``alias``."""
        joiner = f" {self.operator.upper()} "
        return joiner.join(f"({operand.to_sql(alias)})" for operand in self.operands)

    def to_text(self, entity: str) -> str:
        """Canonical text: an OR inside an AND is parenthesised."""
        parts = [
            f"({operand.to_text(entity)})" if isinstance(operand, BoolOp)
            else operand.to_text(entity)
            for operand in self.operands
        ]
        return f" {self.operator.upper()} ".join(parts)


Condition = Comparison | BoolOp
"""A ``WHERE`` condition: a :class:`Comparison` or a :class:`BoolOp` of conditions."""


# ------------------------------------------------------------------------------------ parser
@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "number", "string", "operator", "punct", "end"
    text: str  # the value: a name unquoted, a string without quotes
    column: int  # 1-based
    raw: str  # as written, for error messages
    quoted: bool = False  # a double-quoted name is never a keyword


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position] in "'\"":
                kind = "string" if text[position] == "'" else "quoted name"
                raise QuerySyntaxError(text, position + 1, text[position:position + 20],
                                       f"a closing {text[position]} for the {kind} starting")
            raise QuerySyntaxError(text, position + 1, text[position], "a query token")
        kind, raw = match.lastgroup, match.group()
        column = position + 1
        position = match.end()
        if kind == "space":
            continue
        if kind == "quoted":
            tokens.append(_Token("name", raw[1:-1].replace('""', '"'), column, raw, True))
        elif kind == "string":
            tokens.append(_Token("string", raw[1:-1].replace("''", "'"), column, raw))
        else:
            tokens.append(_Token(str(kind), raw, column, raw))
    tokens.append(_Token("end", "", len(text) + 1, ""))
    return tokens


class _Parser:
    """Recursive descent over the tokens of one query (see the grammar in the module doc)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0

    # -- token helpers
    @property
    def token(self) -> _Token:
        return self.tokens[self.position]

    def error(self, expected: str, token: _Token | None = None) -> QuerySyntaxError:
        token = token or self.token
        return QuerySyntaxError(self.text, token.column,
                                None if token.kind == "end" else token.raw, expected)

    def is_keyword(self, *words: str) -> bool:
        token = self.token
        return token.kind == "name" and not token.quoted and token.text.lower() in words

    def keyword(self, word: str, expected: str | None = None) -> None:
        if not self.is_keyword(word):
            raise self.error(expected or word.upper())
        self.position += 1

    def punct(self, symbol: str, expected: str | None = None) -> None:
        if not (self.token.kind == "punct" and self.token.text == symbol):
            raise self.error(expected or f"'{symbol}'")
        self.position += 1

    def name(self, what: str) -> str:
        token = self.token
        if token.kind != "name":
            hint = " (double-quote names that are not plain words, e.g. \"2B\")" if (
                token.kind == "number") else ""
            raise self.error(f"{what}{hint}")
        self.position += 1
        return token.text

    def operator(self, expected: str) -> str:
        token = self.token
        if token.kind != "operator":
            raise self.error(expected)
        self.position += 1
        return token.text

    def number(self, what: str) -> int | float:
        token = self.token
        if token.kind != "number":
            raise self.error(what)
        self.position += 1
        value = int(token.text) if _WHOLE_NUMBER.fullmatch(token.text) else float(token.text)
        if not math.isfinite(value):
            raise self.error(f"{what} (a finite one)", token)
        return value

    def window_bound(self, what: str) -> tuple[int, _Token]:
        token = self.token
        if token.kind != "number" or not token.text.isdigit():
            raise self.error(f"the window {what} (a whole number >= 0)")
        self.position += 1
        return int(token.text), token

    # -- grammar
    def query(self) -> dict[str, Any]:
        self.keyword("predict")
        spec = self.aggregation()
        spec["comparison"] = spec["threshold"] = None
        if self.token.kind == "operator":
            spec["comparison"] = self.operator("a comparison")
            spec["threshold"] = self.number("a number to compare with")
        self.keyword("for", "FOR EACH")
        self.keyword("each", "EACH (after FOR)")
        spec["entity"] = self.name("the entity table name")
        self.punct(".", "'.' between the entity table and its primary key")
        spec["key"] = self.name("the entity table's primary key")
        spec["where"] = None
        if self.is_keyword("where"):
            self.position += 1
            spec["where"] = self.condition(spec["entity"])
            if self.token.kind != "end":
                raise self.error("AND, OR or the end of the query")
        elif self.token.kind != "end":
            raise self.error("WHERE or the end of the query")
        return spec

    def aggregation(self) -> dict[str, Any]:
        if not self.is_keyword(*AGGREGATIONS):
            raise self.error(f"an aggregation ({', '.join(a.upper() for a in AGGREGATIONS)})")
        aggregation = self.token.text.lower()
        self.position += 1
        self.punct("(", f"'(' after {aggregation.upper()}")
        table = self.name("the name of the table to aggregate")
        self.punct(".", "'.' between the table and the column")
        if self.token.kind == "punct" and self.token.text == "*":
            if aggregation != "count":
                raise self.error(f"a column ({aggregation.upper()} needs one; only COUNT "
                                 "takes '*')")
            column = "*"
            self.position += 1
        else:
            column = self.name("a column name or '*'")
        self.punct(",", "',' before the window start")
        start, start_token = self.window_bound("start")
        self.punct(",", "',' before the window end")
        end, _ = self.window_bound("end")
        if start >= end:
            raise self.error(f"a window start below the window end {end} (the window "
                             "(cutoff + start, cutoff + end] must not be empty)", start_token)
        self.punct(",", "',' before the window unit")
        unit_token = self.token
        unit = unit_token.text.lower() if unit_token.kind == "name" else ""
        unit = _UNIT_ALIASES.get(unit, unit)
        if unit not in UNITS or unit_token.quoted:
            raise self.error(f"a unit ({', '.join(UNITS)})")
        self.position += 1
        self.punct(")", f"')' after the unit {unit}")
        return {"aggregation": aggregation, "table": table, "column": column, "start": start,
                "end": end, "unit": unit}

    def condition(self, entity: str) -> Condition:
        operands = [self.conjunction(entity)]
        while self.is_keyword("or"):
            self.position += 1
            operands.append(self.conjunction(entity))
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def conjunction(self, entity: str) -> Condition:
        operands = [self.atom(entity)]
        while self.is_keyword("and"):
            self.position += 1
            operands.append(self.atom(entity))
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def atom(self, entity: str) -> Condition:
        if self.token.kind == "punct" and self.token.text == "(":
            self.position += 1
            inner = self.condition(entity)
            self.punct(")", "AND, OR or ')'")
            return inner
        table_token = self.token
        column = self.name("a column of the entity table or '('")
        if self.token.kind == "punct" and self.token.text == ".":
            if column != entity:
                raise self.error(f"a column of the entity table {entity!r} (WHERE filters "
                                 "the entity table only)", table_token)
            self.position += 1
            column = self.name(f"a column of {entity!r}")
        comparison = self.operator(f"a comparison ({' '.join(OPERATORS)})")
        token = self.token
        if token.kind == "string":
            self.position += 1
            return Comparison(column, comparison, token.text)
        return Comparison(column, comparison, self.number("a number or a 'quoted string'"))


def _parse_condition(text: str, entity: str) -> Condition:
    parser = _Parser(text)
    condition = parser.condition(entity)
    if parser.token.kind != "end":
        raise parser.error("AND, OR or the end of the condition")
    return condition


# ------------------------------------------------------------------------------------- query
@dataclass(frozen=True, init=False, repr=False)
class Query:
    """A predictive query: parse it with ``Query(text)`` or build it with :meth:`build`.

    Fields: ``aggregation`` (one of :data:`AGGREGATIONS`), ``table`` and ``column`` (the
    child table and its column, ``"*"`` = rows, COUNT only), ``start``, ``end``, ``unit``
    (the window ``(cutoff + start, cutoff + end]``), ``entity`` and ``key`` (the entity
    table and its primary key), ``comparison`` and ``threshold`` (both None for a
    regression target) and ``where`` (a :data:`Condition` on the entity table, or None).

    Raises:
        QuerySyntaxError: the text does not parse (names the token, its column and what was
            expected).
    """

    aggregation: str
    table: str
    column: str
    start: int
    end: int
    unit: str
    entity: str
    key: str
    comparison: str | None
    threshold: int | float | None
    where: Condition | None

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"Query needs the query text (a str), got {type(text).__name__}; "
                            "use Query.build(...) to build one from values.")
        self._set(**_Parser(text).query())

    @classmethod
    def build(
        cls,
        *,
        aggregation: str,
        table: str,
        column: str = "*",
        start: int = 0,
        end: int,
        unit: str,
        entity: str,
        key: str,
        comparison: str | None = None,
        threshold: float | None = None,
        where: Condition | str | None = None,
    ) -> Query:
        """The query with these parts, equal to the parsed canonical text.

        ``aggregation`` and ``unit`` are case-insensitive; ``where`` is a :data:`Condition`
        or its text (``"customers.segment = 'gold' AND age > 30"``).

        Raises:
            ValueError: a part is invalid (the message says which and why).
        """
        if isinstance(where, str):
            where = _parse_condition(where, entity)
        query = cls.__new__(cls)
        query._set(aggregation=aggregation, table=table, column=column, start=start, end=end,
                   unit=unit, entity=entity, key=key, comparison=comparison,
                   threshold=threshold, where=where)
        return query

    def _set(self, **parts: Any) -> None:
        """Validate and store the fields (the one place both constructors go through)."""
        for name in ("table", "column", "entity", "key"):
            if not isinstance(parts[name], str) or not parts[name]:
                raise ValueError(f"{name} must be a non-empty string, got {parts[name]!r}.")
        aggregation = str(parts["aggregation"]).lower()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got "
                             f"{parts['aggregation']!r}.")
        if parts["column"] == "*" and aggregation != "count":
            raise ValueError(f"{aggregation.upper()} needs a column; only COUNT takes '*'.")
        unit = _UNIT_ALIASES.get(str(parts["unit"]).lower(), str(parts["unit"]).lower())
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {parts['unit']!r}.")
        problem = _window_problem(parts["start"], parts["end"])
        if problem:
            raise ValueError(problem + ".")
        comparison, threshold = parts["comparison"], parts["threshold"]
        if (comparison is None) != (threshold is None):
            raise ValueError("give both comparison and threshold (a binary target) or neither "
                             f"(a regression target); got {comparison!r} and {threshold!r}.")
        if comparison is not None:
            if comparison not in OPERATORS:
                raise ValueError(f"comparison must be one of {OPERATORS}, got {comparison!r}.")
            threshold = _number(threshold, "threshold")
        where = parts["where"]
        if where is not None and not isinstance(where, (Comparison, BoolOp)):
            raise TypeError(f"where must be a Comparison, a BoolOp, their text or None; got "
                            f"{type(where).__name__}.")
        values = dict(parts, aggregation=aggregation, unit=unit, start=int(parts["start"]),
                      end=int(parts["end"]), threshold=threshold)
        for field in fields(self):
            object.__setattr__(self, field.name, values[field.name])

    # -------------------------------------------------------------------------- text
    def __str__(self) -> str:
        column = "*" if self.column == "*" else _name_text(self.column)
        text = (f"PREDICT {self.aggregation.upper()}({_name_text(self.table)}.{column}, "
                f"{self.start}, {self.end}, {self.unit})")
        if self.comparison is not None:
            text += f" {self.comparison} {_literal_text(self.threshold)}"
        text += f" FOR EACH {_name_text(self.entity)}.{_name_text(self.key)}"
        if self.where is not None:
            text += f" WHERE {self.where.to_text(self.entity)}"
        return text

    def __repr__(self) -> str:
        return f"Query({str(self)!r})"

    @property
    def task(self) -> str:
        """"binary" (with a comparison: labels 0/1) or "regression" (numeric labels)."""
        return "regression" if self.comparison is None else "binary"

    # ------------------------------------------------------------------------- check
    def check(self, db: Database) -> None:
        """Check the tables, keys and columns against ``db``.

        Raises:
            TypeError: ``db`` is not a Database.
            ValueError: the first problem found, named with how to fix it.
        """
        if not isinstance(db, Database):
            raise TypeError(f"db must be an rdbpfn Database, got {type(db).__name__}.")
        if db.time_kind is None:
            raise ValueError(
                "the database has no time columns, so it has no history to take labels from: "
                f"a query counts rows of {self.table!r} in a window after each cutoff. Give "
                "the tables their time columns (Table(..., time_column=...))."
            )
        if db.time_kind != "datetime":
            raise ValueError(
                "the database's time columns are numbers, but query windows are durations "
                f"({', '.join(UNITS)}). Convert every time column to datetimes, e.g. "
                "pd.to_datetime(year, format='%Y')."
            )
        entity = self._table(db, self.entity, "entity table")
        if entity.primary_key != self.key:
            raise ValueError(
                f"{self.key!r} is not the primary key of {self.entity!r} (its primary key is "
                f"{entity.primary_key!r}); write FOR EACH {self.entity}.{entity.primary_key}."
                if entity.primary_key is not None else
                f"table {self.entity!r} has no primary key, so its entities cannot be named; "
                f"give it primary_key={self.key!r}."
            )
        child = self._table(db, self.table, "aggregated table")
        self._foreign_key(child)
        if child.time_column is None:
            raise ValueError(
                f"table {self.table!r} has no time column, so its rows fall in no window; give "
                "it time_column=... (when each row happened)."
            )
        if self.column != "*":
            if self.column not in child.columns:
                raise ValueError(f"{self.column!r} is not a column of {self.table!r}; its "
                                 f"columns are {list(child.columns)}.")
            kind = child.column_kinds.get(self.column, "key or time")
            if self.aggregation != "count" and kind not in ("numeric", "boolean"):
                raise ValueError(
                    f"{self.aggregation.upper()}({self.table}.{self.column}) needs a numeric "
                    f"column, but {self.column!r} is {kind}; aggregate a numeric column, or "
                    f"COUNT it."
                )
        if self.where is not None:
            for comparison in _comparisons(self.where):
                _check_comparison(comparison, entity, self.entity)

    def _table(self, db: Database, name: str, role: str) -> Table:
        if name not in db:
            raise ValueError(f"the {role} {name!r} is not in the database; its tables are "
                             f"{list(db)}.")
        return db[name]

    def _foreign_key(self, child: Table) -> str:
        """The one foreign key of the child table to the entity table."""
        links = [column for column, parent in child.foreign_keys.items() if parent == self.entity]
        if not links:
            raise ValueError(
                f"table {self.table!r} has no foreign key to {self.entity!r} (its foreign keys: "
                f"{child.foreign_keys}); aggregate a table whose rows point to {self.entity!r}."
            )
        if len(links) > 1:
            raise ValueError(
                f"table {self.table!r} has {len(links)} foreign keys to {self.entity!r} "
                f"({', '.join(links)}), so the query cannot tell which rows belong to an "
                "entity; aggregate a copy of the table that keeps only the foreign key you mean."
            )
        return links[0]

    # ------------------------------------------------------------------------ labels
    def labels(self, db: Database, cutoff_times: Any) -> pd.DataFrame:
        """The label of every entity at every cutoff, from the database's own rows.

        For each cutoff ``t`` (duplicates count once), one row per entity that exists at
        ``t`` (entity time ``<= t`` when the entity table has a time column) and passes
        ``WHERE``; its label is the aggregation over its child rows with time in
        ``(t + start, t + end]`` (rows without a time or a parent never count). COUNT of
        nothing and SUM of nothing are 0; AVG / MIN / MAX of nothing are undefined and
        those rows are dropped, with a warning, their number in
        ``frame.attrs["dropped_undefined"]``. Cutoffs near the edges of the data are allowed
        (see :meth:`label_horizon`).

        Args:
            db: the database (checked with :meth:`check`).
            cutoff_times: one cutoff or an array-like of them (datetimes or strings;
                tz-aware ones are converted to UTC).
        Returns:
            DataFrame with columns ``[key, "cutoff_time", "label"]`` ordered by cutoff, then
            by entity row: ``label`` int64 0/1 for a binary task, float64 for regression;
            ``cutoff_time`` datetime64[ns] (tz-naive UTC). ``attrs``: ``"query"`` (the text)
            and ``"dropped_undefined"``.
        Raises:
            ValueError: :meth:`check` fails, or a cutoff is missing or not a datetime.
        """
        self.check(db)
        cutoffs = _cutoff_keys(cutoff_times)
        return self._frame(cutoffs, *self._window_values(
            db, cutoffs, _shift(cutoffs, self.start, self.unit),
            _shift(cutoffs, self.end, self.unit)))

    def recent(self, db: Database, cutoff_times: Any) -> pd.DataFrame:
        """The same aggregation over the window of the query's length that *ends* at each
        cutoff, ``(t - (end - start), t]``: what each entity did lately (the "same as the
        last window" guess, and the baseline a relative forecast adds its change to).

        Same rows and form as :meth:`labels` at the same cutoffs (the entities that exist
        at ``t``, not at ``t - (end - start)``: an entity created inside the window counts
        its rows there); reads nothing after ``t``.
        """
        self.check(db)
        cutoffs = _cutoff_keys(cutoff_times)
        return self._frame(cutoffs, *self._window_values(
            db, cutoffs, _shift(cutoffs, self.start - self.end, self.unit), cutoffs))

    def _window_values(self, db: Database, cutoffs: np.ndarray, low: np.ndarray,
                       high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key, cutoff index, value) of every entity existing at a cutoff and passing
        WHERE: the aggregation over its child rows with time in ``(low, high]`` of that
        cutoff; NaN where undefined."""
        entity = db[self.entity]
        if isinstance(entity, DuckDBTable):  # the tables stay in DuckDB: so does the work
            child = db[self.table]
            assert isinstance(child, DuckDBTable)
            return duckdb_labels(
                entity, self.key, self._where_sql(), child, self._foreign_key(child),
                self.aggregation, self.column, cutoffs, low, high)
        rows, cutoff_index = self._entity_cutoff_pairs(entity, cutoffs)
        values = self._aggregate(db, rows, low[cutoff_index], high[cutoff_index])
        return entity.df[self.key].iloc[rows].to_numpy(), cutoff_index, values

    def _frame(self, cutoffs: np.ndarray, keys: np.ndarray, cutoff_index: np.ndarray,
               values: np.ndarray) -> pd.DataFrame:
        """:meth:`labels`' frame from window values: undefined ones dropped with a
        warning, a comparison applied."""
        defined = ~np.isnan(values)
        dropped = int((~defined).sum())
        if dropped:
            warnings.warn(
                f"{dropped} of {len(values)} (entity, cutoff) pairs have no "
                f"{self.table}.{self.column} values in their window, so "
                f"{self.aggregation.upper()} is undefined; they were dropped "
                "(frame.attrs['dropped_undefined']).", UserWarning, stacklevel=2,
            )
        if self.comparison is None:
            label = values[defined]
        else:
            compare = _NUMPY_OPERATORS[self.comparison]
            label = compare(values[defined], self.threshold).astype(np.int64)
        frame = pd.DataFrame({
            self.key: pd.Series(keys[defined]),
            "cutoff_time": cutoffs[cutoff_index[defined]].astype("datetime64[ns]"),
            "label": label,
        })
        frame.attrs.update(query=str(self), dropped_undefined=dropped)
        return frame

    def entities(self, db: Database, cutoff_times: Any) -> pd.DataFrame:
        """The entities to predict for at each cutoff: those that exist then and pass WHERE.

        Returns:
            DataFrame ``[key, "cutoff_time"]`` ordered by cutoff, then entity row (the rows
            :meth:`labels` would label, without looking at any label window).
        """
        self.check(db)
        cutoffs = _cutoff_keys(cutoff_times)
        entity = db[self.entity]
        if isinstance(entity, DuckDBTable):
            keys, cutoff_index = duckdb_entity_pairs(entity, self.key, self._where_sql(),
                                                           cutoffs)
        else:
            rows, cutoff_index = self._entity_cutoff_pairs(entity, cutoffs)
            keys = entity.df[self.key].iloc[rows].to_numpy()
        return pd.DataFrame({
            self.key: pd.Series(keys),
            "cutoff_time": cutoffs[cutoff_index].astype("datetime64[ns]"),
        })

    def _where_sql(self) -> str | None:
        return None if self.where is None else self.where.to_sql("e")

    def window(self) -> pd.DateOffset | pd.Timedelta:
        """The label window's end as a duration from the cutoff (``end`` ``unit``)."""
        return duration(self.end, self.unit)

    def _entity_cutoff_pairs(self, entity: Table,
                             cutoffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(entity row, cutoff index) of every entity that exists at a cutoff and passes
        WHERE, ordered by cutoff then row; two int64 arrays of shape (n_pairs,)."""
        candidates = np.flatnonzero(_condition_mask(self.where, entity.df))
        if entity.time_column is None:
            rows = np.tile(candidates, len(cutoffs))
            cutoff_index = np.repeat(np.arange(len(cutoffs)), len(candidates))
            return rows, cutoff_index
        times = entity.time_keys(self.entity)[candidates]
        by_time = np.argsort(times, kind="stable")
        # At cutoff c, the entities that exist are the first n_c of by_time.
        counts = np.searchsorted(times[by_time], cutoffs, side="right")
        cutoff_index = np.repeat(np.arange(len(cutoffs)), counts)
        first_pair = np.repeat(np.cumsum(counts) - counts, counts)
        rows = candidates[by_time[np.arange(counts.sum()) - first_pair]]
        order = np.lexsort((rows, cutoff_index))
        return rows[order], cutoff_index[order]

    def _aggregate(self, db: Database, rows: np.ndarray, low: np.ndarray,
                   high: np.ndarray) -> np.ndarray:
        """Aggregation over the child rows of ``rows[i]`` with time in ``(low[i], high[i]]``
        (int64 time keys); float64 (n_pairs,), NaN where undefined."""
        child = db[self.table]
        parents = db.foreign_key_codes(self.table, self._foreign_key(child))
        times = child.time_keys(self.table)
        keep = (parents >= 0) & (times != MISSING_TIME)
        if self.aggregation == "count":
            values = np.ones(len(child))
            if self.column != "*":
                keep &= child.df[self.column].notna().to_numpy()
        else:
            values = child.numeric_values(self.column)
            keep &= ~np.isnan(values)
        parents, times, values = parents[keep], times[keep], values[keep]
        order = np.lexsort((times, parents))  # by parent, then time
        parents, times, values = parents[order], times[order], values[order]
        # Search (parent, time) pairs in one sorted int64 array: parent * stride + time rank.
        # Ranks keep the composite below 2**63 for any realistic table (rows * rows).
        distinct_times = np.unique(times)
        stride = len(distinct_times) + 1
        composite = parents * stride + np.searchsorted(distinct_times, times)

        def position(bound: np.ndarray) -> np.ndarray:
            # rank of the last time <= bound (-1 if none): child rows of `rows` up to bound
            rank = np.searchsorted(distinct_times, bound, side="right") - 1
            return np.searchsorted(composite, rows * stride + rank, side="right")

        begin, end = position(low), position(high)
        count = (end - begin).astype(np.float64)
        if self.aggregation == "count":
            return count
        if len(rows) == 0:
            return np.zeros(0)
        # reduceat over the interleaved [begin_i, end_i) pairs; a dummy value keeps every
        # index in range; empty windows (begin == end) are masked below.
        bounds = np.column_stack([begin, end]).ravel()
        padded = np.append(values, 0.0)
        reduce = {"sum": np.add, "avg": np.add, "min": np.minimum, "max": np.maximum}
        result = reduce[self.aggregation].reduceat(padded, bounds)[::2]
        empty = count == 0
        if self.aggregation == "sum":
            return np.where(empty, 0.0, result)
        if self.aggregation == "avg":
            result = result / np.maximum(count, 1)
        return np.where(empty, np.nan, result)

    def label_horizon(self, db: Database) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Cutoffs whose labels the database can decide: ``(earliest, latest)``.

        ``earliest`` is the earliest time in the database (before it the features see
        nothing); ``latest`` is the last time in the database minus the window end
        (calendar months for ``months``), so a window ``(t + start, t + end]`` with
        ``t <= latest`` ends by the last time and is complete. Both tz-naive UTC.

        Raises:
            ValueError: :meth:`check` fails, or the history is shorter than the window.
        """
        self.check(db)
        if db.duckdb_source is not None:
            found = duckdb_time_range([t for t in db.tables.values()
                                             if isinstance(t, DuckDBTable)])
        else:
            keys = np.concatenate([t.time_keys(name) for name, t in db.tables.items()])
            keys = keys[keys != MISSING_TIME]
            found = (keys.min(), keys.max()) if len(keys) else None
        if found is None:
            raise ValueError("the database has time columns but no row has a time; fill them.")
        earliest, last = found
        latest = _shift(np.array([last]), -self.end, self.unit)[0]
        as_time = pd.Timestamp
        if latest < earliest:
            raise ValueError(
                f"the database spans {as_time(earliest)} to {as_time(last)}, less than the "
                f"window of {self.end} {self.unit}: no cutoff has a complete window. Use a "
                "shorter window."
            )
        return as_time(earliest), as_time(latest)


# ------------------------------------------------------------------------------ helpers
def _comparisons(condition: Condition) -> list[Comparison]:
    if isinstance(condition, Comparison):
        return [condition]
    return [leaf for operand in condition.operands for leaf in _comparisons(operand)]


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) or (
        pd.api.types.is_string_dtype(dtype))


def _check_comparison(comparison: Comparison, entity: Table, name: str) -> None:
    column = comparison.column
    if column not in entity.columns:
        raise ValueError(f"WHERE uses {column!r}, which is not a column of the entity table "
                         f"{name!r}; its columns are {list(entity.columns)}.")
    series = entity.head(1)[column]  # the dtype is all it reads
    text = comparison.to_text(name)
    if isinstance(comparison.value, str) and not _is_text(series):
        raise ValueError(f"WHERE {text} compares column {column!r} of dtype {series.dtype} "
                         "with a string; compare it with a number.")
    is_number = pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
        series.dtype)
    if not isinstance(comparison.value, str) and not is_number:
        raise ValueError(f"WHERE {text} compares column {column!r} of dtype {series.dtype} "
                         "with a number; compare it with a 'quoted string'.")


def _condition_mask(condition: Condition | None, frame: pd.DataFrame) -> np.ndarray:
    """bool (n_rows,): the rows that pass the condition; a missing value fails."""
    if condition is None:
        return np.ones(len(frame), dtype=bool)
    if isinstance(condition, BoolOp):
        masks = [_condition_mask(operand, frame) for operand in condition.operands]
        combine = np.logical_and if condition.operator == "and" else np.logical_or
        return combine.reduce(masks)
    series = frame[condition.column]
    compare = _NUMPY_OPERATORS[condition.operator]
    present = series.notna().to_numpy()
    if isinstance(condition.value, str):
        values = series.astype(object).where(present, "").map(str).to_numpy(dtype=object)
        return present & compare(values, condition.value).astype(bool)
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return present & compare(values, condition.value)


def _cutoff_keys(cutoff_times: Any) -> np.ndarray:
    """Distinct cutoffs as int64 time keys (ns since the epoch, UTC), in the given order."""
    if np.ndim(cutoff_times) == 0:
        cutoff_times = [cutoff_times]
    values = pd.Series(cutoff_times if isinstance(cutoff_times, (pd.Series, pd.Index, np.ndarray))
                       else list(cutoff_times))
    keys = time_keys(values.reset_index(drop=True), "datetime", "cutoff_times")
    if (keys == MISSING_TIME).any():
        first = int(np.flatnonzero(keys == MISSING_TIME)[0])
        raise ValueError(f"cutoff_times has a missing value at position {first}; give every "
                         "cutoff a time.")
    return pd.unique(keys)


def duration(amount: int, unit: str) -> pd.DateOffset | pd.Timedelta:
    """``amount`` ``unit`` (hours, days, or calendar months) as a pandas duration."""
    return pd.DateOffset(months=amount) if unit == "months" else pd.Timedelta(**{unit: amount})


def _shift(keys: np.ndarray, amount: int, unit: str) -> np.ndarray:
    """Time keys (int64 ns) moved by ``amount`` units (calendar months for "months")."""
    times = pd.DatetimeIndex(keys.astype("datetime64[ns]"))
    return (times + duration(amount, unit)).as_unit("ns").asi8
