"""Read a SQL DDL schema (``CREATE TABLE`` / ``ALTER TABLE ... FOREIGN KEY``) into a schema
graph that the relational prior fills with synthetic rows (PluRel's "generate from a SQL
schema", seed 001).

Understood: column names and types, inline ``PRIMARY KEY`` / ``REFERENCES t(c)``, table
constraints ``PRIMARY KEY (...)``, ``[CONSTRAINT n] FOREIGN KEY (a) REFERENCES t (b)``,
``ALTER TABLE t ADD [CONSTRAINT n] FOREIGN KEY ...``, quoted identifiers ("x", `x`, [x]),
``--`` and ``/* */`` comments. Other statements (indexes, views, inserts) are skipped.

Column kinds: integer types -> "integer"; real/float/double/decimal/numeric/money ->
"numeric"; bool -> "bool"; date/time/timestamp -> "time"; everything else (char, text,
enum, ...) -> "categorical". The first time column of a table becomes its time column.
Self-references (``employees.manager_id -> employees``) follow the project's rule (see
:mod:`rdbpfn.database`): the foreign key is dropped with a warning that names it, and the column
stays an ordinary column of its SQL type, as ``rdbpfn.Database.from_sqlite`` does. Foreign keys
that close a longer cycle are dropped with a warning too (the prior generates acyclic schemas);
composite foreign keys are not supported and are dropped as well.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from rdbpfn.formats import dropped_self_reference

INTEGER_TYPES = ("int", "serial", "tinyint", "smallint", "mediumint", "bigint", "year")
NUMERIC_TYPES = ("real", "float", "double", "decimal", "numeric", "money", "number")
TIME_TYPES = ("date", "time", "timestamp", "datetime")
BOOL_TYPES = ("bool", "bit")


@dataclass
class DDLColumn:
    """A column: ``kind`` in integer / numeric / bool / time / categorical; ``categories``
    holds the labels of an ``ENUM('a', 'b', ...)`` type (empty otherwise)."""

    name: str
    kind: str
    sql_type: str
    categories: tuple[str, ...] = ()


@dataclass
class DDLTable:
    """One table: its columns in file order, single-column primary key (or None) and foreign
    keys (column -> parent table)."""

    name: str
    columns: list[DDLColumn] = field(default_factory=list)
    primary_key: str | None = None
    primary_key_kind: str = "integer"
    foreign_keys: dict[str, str] = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[DDLColumn]:
        """Columns that are neither the primary key nor a foreign key."""
        keys = set(self.foreign_keys) | {self.primary_key}
        return [c for c in self.columns if c.name not in keys]

    @property
    def time_column(self) -> str | None:
        times = [c.name for c in self.feature_columns if c.kind == "time"]
        return times[0] if times else None


@dataclass
class DDLSchema:
    """Parsed schema: tables by name and the graph (parent -> child, edge attribute
    ``columns``: the child's FK columns to that parent)."""

    tables: dict[str, DDLTable]
    graph: nx.DiGraph


def column_kind(sql_type: str) -> str:
    """Map a SQL type (e.g. ``VARCHAR(20)``, ``DECIMAL(10,2)``) to a column kind."""
    base = re.split(r"[\s(]", sql_type.strip().lower(), maxsplit=1)[0]
    if base.startswith(BOOL_TYPES):
        return "bool"
    if base.startswith(TIME_TYPES):
        return "time"
    if any(base.endswith(t) or base == t for t in INTEGER_TYPES) or base.startswith("int"):
        return "integer"
    if base.startswith(NUMERIC_TYPES):
        return "numeric"
    return "categorical"


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"--[^\n]*", " ", text)


def _ident(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] + token[-1] in ('""', "``", "[]"):
        return token[1:-1]
    return token.split(".")[-1].strip('"`[]')  # schema.table -> table


def _split_top_level(body: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, current, quote = [], 0, [], ""
    for ch in body:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w.]+)'
_CREATE = re.compile(rf"create\s+(?:temporary\s+)?table\s+(?:if\s+not\s+exists\s+)?({_IDENT})\s*\(",
                     re.I)
_FK = re.compile(
    rf"foreign\s+key\s*\(([^)]*)\)\s*references\s+({_IDENT})\s*(?:\(([^)]*)\))?", re.I
)
_INLINE_REF = re.compile(rf"references\s+({_IDENT})", re.I)
_ALTER_FK = re.compile(rf"alter\s+table\s+(?:only\s+)?({_IDENT})\s+add\s+(.*)", re.I | re.S)


def _matching_paren(text: str, open_index: int) -> int:
    depth = 0
    for i in range(open_index, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses after: {text[open_index:open_index + 60]!r}")


def parse_ddl(text: str) -> DDLSchema:
    """Parse DDL text; raises ``ValueError`` when no table is found or a foreign key names an
    unknown table."""
    text = _strip_comments(text)
    tables: dict[str, DDLTable] = {}
    pending_fks: list[tuple[str, list[str], str]] = []
    for match in _CREATE.finditer(text):
        name = _ident(match.group(1))
        close = _matching_paren(text, match.end() - 1)
        table = DDLTable(name)
        for item in _split_top_level(text[match.end():close]):
            _parse_item(item, table, pending_fks)
        tables[name] = table
    for statement in text.split(";"):
        alter = _ALTER_FK.search(statement)
        if alter and _FK.search(alter.group(2)):
            _parse_item(alter.group(2), tables.get(_ident(alter.group(1))) or DDLTable(""),
                        pending_fks, owner=_ident(alter.group(1)))
    if not tables:
        raise ValueError("no CREATE TABLE statement found in the DDL; pass a schema file with "
                         "CREATE TABLE name (column TYPE, ...) statements")
    graph = nx.DiGraph()
    graph.add_nodes_from(tables)
    lowered = {name.lower(): name for name in tables}
    for child, columns, parent in pending_fks:
        parent_name = lowered.get(parent.lower())
        if child not in tables or parent_name is None:
            raise ValueError(
                f"foreign key {child}({', '.join(columns)}) references unknown table {parent!r}; "
                f"known tables: {sorted(tables)}"
            )
        if len(columns) != 1:
            warnings.warn(f"composite foreign key {child}({', '.join(columns)}) -> {parent_name} "
                          "is not supported and was dropped", stacklevel=2)
            continue
        column = columns[0]
        if parent_name == child:
            warnings.warn(dropped_self_reference(child, column) + " (declared in the DDL).",
                          stacklevel=2)
            continue
        if graph.has_edge(child, parent_name) or nx.has_path(graph, child, parent_name):
            warnings.warn(f"foreign key {child}.{column} -> {parent_name} closes a cycle and was "
                          "dropped (schemas must be acyclic)", stacklevel=2)
            continue
        if tables[parent_name].primary_key is None:
            warnings.warn(f"foreign key {child}.{column} -> {parent_name} dropped: the parent has "
                          "no single-column primary key", stacklevel=2)
            continue
        tables[child].foreign_keys[column] = parent_name
        if graph.has_edge(parent_name, child):
            graph.edges[parent_name, child]["columns"].append(column)
        else:
            graph.add_edge(parent_name, child, columns=[column])
    for table in tables.values():
        for column in table.columns:
            if column.name == table.primary_key:
                table.primary_key_kind = "integer" if column.kind == "integer" else "text"
    return DDLSchema(tables, graph)


def _parse_item(
    item: str,
    table: DDLTable,
    pending_fks: list[tuple[str, list[str], str]],
    owner: str | None = None,
) -> None:
    owner = owner or table.name
    lowered = item.lower().lstrip()
    if lowered.startswith("constraint"):
        item = re.sub(rf"^\s*constraint\s+{_IDENT}\s*", "", item, flags=re.I)
        lowered = item.lower().lstrip()
    if lowered.startswith("primary key"):
        inside = item[item.index("(") + 1:item.rindex(")")]
        keys = [_ident(k) for k in _split_top_level(inside)]
        table.primary_key = keys[0] if len(keys) == 1 else None
        return
    if lowered.startswith("foreign key"):
        fk = _FK.search(item)
        if fk:
            columns = [_ident(c) for c in _split_top_level(fk.group(1))]
            pending_fks.append((owner, columns, _ident(fk.group(2))))
        return
    if lowered.startswith(("unique", "check", "index", "key ", "fulltext", "exclude")):
        return
    tokens = re.match(rf"\s*({_IDENT})\s+(.*)", item, flags=re.S)
    if tokens is None:
        return
    name, rest = _ident(tokens.group(1)), tokens.group(2)
    type_match = re.match(r"([\w ]+?(?:\([^)]*\))?)(?=\s|$)", rest.strip())
    sql_type = type_match.group(1) if type_match else rest.split()[0]
    labels: tuple[str, ...] = ()
    if sql_type.lower().startswith(("enum", "set")) and "(" in sql_type:
        labels = tuple(dict.fromkeys(re.findall(r"'((?:[^']|'')*)'", sql_type)))
    table.columns.append(DDLColumn(name, column_kind(sql_type), sql_type,
                                   labels if len(labels) >= 2 else ()))
    if re.search(r"primary\s+key", rest, re.I):
        table.primary_key = name
    reference = _INLINE_REF.search(rest)
    if reference:
        pending_fks.append((owner, [name], _ident(reference.group(1))))


def load_ddl(path: str | Path) -> DDLSchema:
    """Parse a DDL file (see :func:`parse_ddl`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"schema file {str(path)!r} does not exist; pass a .sql DDL file")
    return parse_ddl(path.read_text())

