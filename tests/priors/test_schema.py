"""Schema graphs: the corpus of real schemas, the fitted LayerDAG sampler, PluRel families."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from priors.schema import (
    SCHEMA_FAMILIES,
    default_statistics,
    describe,
    fit_schema_statistics,
    load_corpus,
    sample_schema,
)

REQUIRED = ("rel-amazon", "rel-avito", "rel-event", "rel-f1", "rel-hm", "rel-stack", "rel-trial",
            "lahman", "tpc-h", "tpc-ds", "chinook", "northwind", "sakila", "stackexchange-dump",
            "adventureworks-lt")


def test_corpus_has_the_public_schemas_with_sources_and_is_acyclic():
    corpus = load_corpus()
    names = {schema.name for schema in corpus}
    assert set(REQUIRED) <= names
    assert sum(name.startswith("4dbinfer") for name in names) >= 4
    for schema in corpus:
        assert schema.source.strip(), schema.name
        assert nx.is_directed_acyclic_graph(schema.graph)
        assert schema.graph.number_of_edges() >= schema.graph.number_of_nodes() - 2
    f1 = next(s for s in corpus if s.name == "rel-f1").graph
    assert set(f1.predecessors("results")) == {"races", "drivers", "constructors"}


@pytest.mark.parametrize("family", SCHEMA_FAMILIES)
def test_every_family_gives_connected_dags_in_topological_names(family):
    rng = np.random.default_rng(0)
    for _ in range(40):
        graph = sample_schema(rng, family, max_tables=12)
        assert nx.is_directed_acyclic_graph(graph)
        assert nx.is_weakly_connected(graph)
        assert 2 <= graph.number_of_nodes() <= 12
        index = {name: int(name[1:]) for name in graph}
        assert sorted(index.values()) == list(range(graph.number_of_nodes()))
        assert all(index[a] < index[b] for a, b in graph.edges)  # names follow a topo order
        assert all(graph.nodes[n]["layer"] == describe_layer(graph, n) for n in graph)


def describe_layer(graph: nx.DiGraph, node: str) -> int:
    parents = list(graph.predecessors(node))
    return 0 if not parents else 1 + max(describe_layer(graph, p) for p in parents)


def test_reverse_random_tree_is_a_tree_with_one_sink():
    rng = np.random.default_rng(1)
    for n in (2, 3, 7, 12):
        graph = sample_schema(rng, "reverse_random_tree", n_tables=n)
        assert graph.number_of_edges() == n - 1
        assert describe(graph)["n_sinks"] == 1


def test_layerdag_matches_the_corpus_distributions():
    corpus = [describe(s.graph) for s in load_corpus()]
    rng = np.random.default_rng(2)
    samples = [describe(sample_schema(rng, "layerdag", max_tables=30)) for _ in range(400)]

    def mean(rows, key):
        return float(np.mean([r[key] for r in rows]))

    assert abs(mean(samples, "depth") - mean(corpus, "depth")) < 0.4
    assert abs(mean(samples, "n_tables") - mean(corpus, "n_tables")) < 1.5
    sink_share = [r["n_sinks"] / r["n_tables"] for r in samples]
    corpus_sink_share = [r["n_sinks"] / r["n_tables"] for r in corpus]
    assert abs(np.mean(sink_share) - np.mean(corpus_sink_share)) < 0.08
    one_parent = np.mean([d == 1 for r in samples for d in r["in_degrees"]])
    assert abs(one_parent - default_statistics().in_degree_pmf[0]) < 0.1


def test_fit_uses_the_given_corpus():
    corpus = [s for s in load_corpus() if s.name in ("rel-amazon", "rel-hm")]  # two stars
    stats = fit_schema_statistics(corpus)
    assert stats.layer_sizes == ((2, 1), (2, 1))
    graph = sample_schema(np.random.default_rng(0), "layerdag", statistics=stats, n_tables=3)
    assert describe(graph)["depth"] == 1


def test_same_seed_same_schema_and_errors():
    a = sample_schema(np.random.default_rng(5))
    b = sample_schema(np.random.default_rng(5))
    assert list(a.edges) == list(b.edges) and a.graph["family"] == b.graph["family"]
    with pytest.raises(ValueError, match="unknown schema family"):
        sample_schema(np.random.default_rng(0), "erdos")
    with pytest.raises(ValueError, match="n_tables"):
        sample_schema(np.random.default_rng(0), "layerdag", max_tables=4, n_tables=9)
