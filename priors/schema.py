"""Schema graphs: which tables exist and which table holds a foreign key to which.

A schema is a ``networkx.DiGraph`` whose nodes are tables and whose edges point from the
parent table to the child table (the child holds the foreign key), as in the paper
(seed 003, definition 3.3). Every sampler returns an acyclic, weakly connected graph whose
nodes are named ``t0, t1, ...`` in a topological order and carry their ``layer`` (length of
the longest path from a source table).

Four families:

- ``layerdag``: a LayerDAG-like sampler (seed 003, appendix C.1.1) that builds the graph one
  layer of tables at a time, each new table attaching to earlier layers. Its distributions
  (depth and layer sizes jointly, in-degree, number of sink tables) are fitted to a corpus of
  real public schemas stored in ``priors/data/schemas.json``.
- ``barabasi_albert``, ``reverse_random_tree``, ``watts_strogatz``: PluRel's families
  (seed 002): hub tables, a star/snowflake with one fact table, a staged pipeline.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

CORPUS_PATH = Path(__file__).with_name("data") / "schemas.json"

SCHEMA_FAMILIES = ("layerdag", "barabasi_albert", "reverse_random_tree", "watts_strogatz")
# Default mixture over families: mostly the corpus-fitted sampler, PluRel's as alternatives.
FAMILY_WEIGHTS = (0.6, 0.15, 0.15, 0.1)

MIN_TABLES = 2
# Default cap on tables per schema: generation time grows with tables x rows (the corpus
# goes up to 24 tables); override with ``max_tables``.
MAX_TABLES = 12
# Foreign keys per table are capped: a tuple of p parents is embedded per candidate.
MAX_IN_DEGREE = 4
# The LayerDAG sampler draws this many candidate graphs and keeps the one whose number of
# sink tables is closest to a number drawn from the corpus.
SINK_CANDIDATES = 4


@dataclass(frozen=True)
class CorpusSchema:
    """One real schema of the corpus: its name, where it is documented, and its graph."""

    name: str
    source: str
    graph: nx.DiGraph


@dataclass(frozen=True)
class SchemaStatistics:
    """Distributions of the LayerDAG-like sampler, fitted to a corpus of schemas.

    ``layer_sizes`` keeps the joint sample (depth, sizes of every layer) of each corpus
    schema, which the sampler bootstraps and jitters; ``in_degree_pmf[k - 1]`` is the
    probability that a dependent table references ``k`` distinct parent tables;
    ``sink_fractions`` are the corpus' fractions of tables without children.
    """

    layer_sizes: tuple[tuple[int, ...], ...]
    in_degree_pmf: np.ndarray
    sink_fractions: tuple[float, ...]


def load_corpus(path: str | Path = CORPUS_PATH) -> list[CorpusSchema]:
    """Read the corpus of public schemas; one DAG (parent -> child) per database.

    Foreign keys to the same parent from several columns become one edge. Raises
    ``ValueError`` if a schema names an unknown table or is not acyclic.
    """
    document = json.loads(Path(path).read_text())
    corpus = []
    for entry in document["schemas"]:
        graph = nx.DiGraph()
        graph.add_nodes_from(entry["tables"])
        for child, column, parent in entry["foreign_keys"]:
            if child not in graph or parent not in graph:
                raise ValueError(
                    f"schema {entry['name']!r}: foreign key {child}.{column} -> {parent} names a "
                    f"table missing from its 'tables' list; add the table or fix the key"
                )
            graph.add_edge(parent, child)
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            raise ValueError(
                f"schema {entry['name']!r} has the cycle {cycle}; move one of its foreign keys "
                f"to 'dropped_for_acyclicity'"
            )
        corpus.append(CorpusSchema(entry["name"], entry["source"], graph))
    return corpus


def layers(graph: nx.DiGraph) -> dict[str, int]:
    """Layer of every table: 0 for sources, else 1 + the largest layer of its parents."""
    layer: dict[str, int] = {}
    for node in nx.topological_sort(graph):
        parents = list(graph.predecessors(node))
        layer[node] = 1 + max(layer[p] for p in parents) if parents else 0
    return layer


def describe(graph: nx.DiGraph) -> dict[str, object]:
    """Summary statistics of a schema graph (the quantities the sampler is fitted on)."""
    layer = layers(graph)
    depth = max(layer.values()) if layer else 0
    sizes = [0] * (depth + 1)
    for value in layer.values():
        sizes[value] += 1
    return {
        "n_tables": graph.number_of_nodes(),
        "n_edges": graph.number_of_edges(),
        "depth": depth,
        "layer_sizes": tuple(sizes),
        "in_degrees": tuple(d for _, d in graph.in_degree() if d > 0),
        "n_sinks": sum(1 for _, d in graph.out_degree() if d == 0),
        "n_sources": sum(1 for _, d in graph.in_degree() if d == 0),
    }


def fit_schema_statistics(corpus: Sequence[CorpusSchema]) -> SchemaStatistics:
    """Fit the sampler's distributions to a corpus (empirical, add-one smoothed in-degree)."""
    if not corpus:
        raise ValueError("cannot fit schema statistics to an empty corpus; pass >= 1 schema")
    layer_sizes, in_degrees, sink_fractions = [], [], []
    for schema in corpus:
        summary = describe(schema.graph)
        layer_sizes.append(summary["layer_sizes"])
        in_degrees.extend(summary["in_degrees"])
        sink_fractions.append(summary["n_sinks"] / summary["n_tables"])
    counts = np.bincount(np.minimum(in_degrees, MAX_IN_DEGREE), minlength=MAX_IN_DEGREE + 1)[1:]
    counts = counts.astype(np.float64) + 1.0
    return SchemaStatistics(tuple(layer_sizes), counts / counts.sum(), tuple(sink_fractions))


@functools.lru_cache(maxsize=1)
def default_statistics() -> SchemaStatistics:
    """Statistics fitted to the shipped corpus (cached)."""
    return fit_schema_statistics(load_corpus())


def sample_schema(
    rng: np.random.Generator,
    family: str | None = None,
    max_tables: int = MAX_TABLES,
    n_tables: int | None = None,
    statistics: SchemaStatistics | None = None,
) -> nx.DiGraph:
    """Sample a schema graph (parent -> child), acyclic and weakly connected.

    ``family`` is one of ``SCHEMA_FAMILIES`` (None: drawn with ``FAMILY_WEIGHTS``);
    ``n_tables`` fixes the size (None: LayerDAG draws it from the corpus, the PluRel
    families draw it uniformly in [3, max_tables]).
    """
    if max_tables < MIN_TABLES:
        raise ValueError(f"max_tables={max_tables} is below {MIN_TABLES}; pass >= {MIN_TABLES}")
    if n_tables is not None and not MIN_TABLES <= n_tables <= max_tables:
        raise ValueError(
            f"n_tables={n_tables} is outside [{MIN_TABLES}, max_tables={max_tables}]; "
            f"raise max_tables or pick a size in range"
        )
    if family is None:
        family = SCHEMA_FAMILIES[rng.choice(len(SCHEMA_FAMILIES), p=FAMILY_WEIGHTS)]
    if family not in SCHEMA_FAMILIES:
        raise ValueError(f"unknown schema family {family!r}; choose one of {SCHEMA_FAMILIES}")
    if family == "layerdag":
        graph = _sample_layerdag(rng, statistics or default_statistics(), max_tables, n_tables)
    else:
        n = n_tables if n_tables is not None else int(rng.integers(3, max(3, max_tables) + 1))
        n = min(n, max_tables)
        builder = {
            "barabasi_albert": _barabasi_albert,
            "reverse_random_tree": _reverse_random_tree,
            "watts_strogatz": _watts_strogatz,
        }[family]
        graph = builder(rng, n)
    graph = _connect_components(rng, graph)
    return _canonical(graph, family)


# ---------------------------------------------------------------------------- LayerDAG


def _layer_plan(
    rng: np.random.Generator, stats: SchemaStatistics, max_tables: int, n_tables: int | None
) -> list[int]:
    """Layer sizes: a corpus schema's (depth, sizes) jittered by +-1, fitted to the cap."""
    template = stats.layer_sizes[rng.integers(len(stats.layer_sizes))]
    sizes = [max(1, s + int(rng.choice((-1, 0, 1), p=(0.2, 0.6, 0.2)))) for s in template]
    if len(sizes) == 1:  # a corpus schema of isolated tables only: give it one child layer
        sizes.append(1)
    target = n_tables if n_tables is not None else min(sum(sizes), max_tables)
    while sum(sizes) > target:
        if len(sizes) > 2 and sizes[-1] == 1:
            sizes.pop()
        else:
            widest = int(np.argmax(sizes))
            if sizes[widest] == 1:
                sizes.pop()
            else:
                sizes[widest] -= 1
    while sum(sizes) < target:
        sizes[int(rng.integers(len(sizes)))] += 1
    return sizes


def _sample_layerdag(
    rng: np.random.Generator, stats: SchemaStatistics, max_tables: int, n_tables: int | None
) -> nx.DiGraph:
    sizes = _layer_plan(rng, stats, max_tables, n_tables)
    target_sinks = stats.sink_fractions[rng.integers(len(stats.sink_fractions))] * sum(sizes)
    best, best_gap = None, np.inf
    for _ in range(SINK_CANDIDATES):
        graph = _layerdag_once(rng, sizes, stats.in_degree_pmf)
        gap = abs(describe(graph)["n_sinks"] - target_sinks)
        if gap < best_gap:
            best, best_gap = graph, gap
    assert best is not None
    return best


def _layerdag_once(rng: np.random.Generator, sizes: list[int], in_pmf: np.ndarray) -> nx.DiGraph:
    graph = nx.DiGraph()
    by_layer: list[list[int]] = []
    next_id = 0
    for layer_index, size in enumerate(sizes):
        nodes = list(range(next_id, next_id + size))
        next_id += size
        graph.add_nodes_from(nodes, layer=layer_index)
        if layer_index > 0:
            earlier = [n for group in by_layer for n in group]
            previous = by_layer[-1]
            for node in nodes:
                k = min(int(rng.choice(len(in_pmf), p=in_pmf)) + 1, len(earlier))
                # one parent from the previous layer (this keeps the node in its layer),
                # preferring tables that have no child yet, then hubs
                uncovered = [n for n in previous if graph.out_degree(n) == 0]
                pool = uncovered or previous
                weights = np.array([graph.out_degree(n) + 1.0 for n in pool])
                parents = [pool[rng.choice(len(pool), p=weights / weights.sum())]]
                others = [n for n in earlier if n not in parents]
                if k > 1 and others:
                    weights = np.array([graph.out_degree(n) + 1.0 for n in others])
                    extra = rng.choice(
                        len(others), size=min(k - 1, len(others)), replace=False,
                        p=weights / weights.sum(),
                    )
                    parents += [others[i] for i in extra]
                graph.add_edges_from((p, node) for p in parents)
        by_layer.append(nodes)
    # a source table nobody references would be isolated: give it a child in a later layer
    for source in by_layer[0]:
        dependents = [
            n for group in by_layer[1:] for n in group if graph.in_degree(n) < MAX_IN_DEGREE
        ]
        if graph.out_degree(source) == 0 and dependents:
            graph.add_edge(source, dependents[int(rng.integers(len(dependents)))])
    return graph


# ---------------------------------------------------------------------- PluRel families


def _barabasi_albert(rng: np.random.Generator, n: int) -> nx.DiGraph:
    """Preferential attachment: each new table references m earlier tables (hubs favoured)."""
    m = int(rng.integers(1, 3))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    degree = np.zeros(n)
    for node in range(1, n):
        k = min(m, node)
        weights = degree[:node] + 1.0
        parents = rng.choice(node, size=k, replace=False, p=weights / weights.sum())
        for parent in parents:
            graph.add_edge(int(parent), node)
            degree[parent] += 1
            degree[node] += 1
    return graph


def _reverse_random_tree(rng: np.random.Generator, n: int) -> nx.DiGraph:
    """Uniform random labelled tree (Pruefer code) with every edge pointing to one root.

    The root is the single sink: the fact table that references all the dimension chains.
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    if n == 2:
        undirected = [(0, 1)]
    else:
        code = rng.integers(0, n, size=n - 2)
        degree = np.ones(n, dtype=np.int64)
        np.add.at(degree, code, 1)
        undirected = []
        for value in code:
            leaf = int(np.flatnonzero(degree == 1)[0])
            undirected.append((leaf, int(value)))
            degree[leaf] -= 1
            degree[value] -= 1
        u, v = np.flatnonzero(degree == 1)
        undirected.append((int(u), int(v)))
    tree = nx.Graph(undirected)
    root = int(rng.integers(n))
    for parent_in_bfs, node in nx.bfs_edges(tree, root):
        graph.add_edge(node, parent_in_bfs)  # away from the root -> towards it
    return graph


def _watts_strogatz(rng: np.random.Generator, n: int) -> nx.DiGraph:
    """Ring lattice of k nearest neighbours with a fraction of edges rewired; low -> high id."""
    k = int(rng.choice((2, 4))) if n > 4 else 2
    rewire = float(rng.uniform(0.05, 0.3))
    edges = set()
    for i in range(n):
        for j in range(1, k // 2 + 1):
            edges.add(tuple(sorted((i, (i + j) % n))))
    final = set()
    for a, b in sorted(edges):
        if rng.random() < rewire:
            b = int(rng.integers(n))
        if a != b:
            final.add(tuple(sorted((a, b))))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    for a, b in sorted(final):
        if graph.in_degree(b) < MAX_IN_DEGREE:
            graph.add_edge(a, b)
    return graph


# ------------------------------------------------------------------------------ shared


def _connect_components(rng: np.random.Generator, graph: nx.DiGraph) -> nx.DiGraph:
    """Join weak components: a source of each extra component becomes a parent of a
    non-source table of the main one (source -> anything keeps the graph acyclic)."""
    components = sorted(nx.weakly_connected_components(graph), key=lambda c: (-len(c), min(c)))
    main = components[0]
    for component in components[1:]:
        sources = sorted(n for n in component if graph.in_degree(n) == 0)
        targets = sorted(n for n in main if graph.in_degree(n) > 0) or sorted(main)
        source = sources[int(rng.integers(len(sources)))]
        target = targets[int(rng.integers(len(targets)))]
        if graph.in_degree(target) == 0:  # main is a single table: it becomes the child
            source, target = target, source
        graph.add_edge(source, target)
        main = main | component
    return graph


def _canonical(graph: nx.DiGraph, family: str) -> nx.DiGraph:
    """Rename tables t0, t1, ... in a topological order and annotate layers."""
    order = list(nx.lexicographical_topological_sort(graph, key=str))
    names = {node: f"t{i}" for i, node in enumerate(order)}
    out = nx.DiGraph(family=family)
    out.add_nodes_from(names[node] for node in order)
    out.add_edges_from((names[a], names[b]) for a, b in sorted(graph.edges, key=str))
    nx.set_node_attributes(out, layers(out), "layer")
    return out
