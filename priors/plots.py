"""Pictures of the relational prior: schema graph, foreign-key degrees, feature correlations.

Used by ``python -m priors show``. matplotlib runs with the non-interactive Agg backend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from priors.relational import SyntheticDatabase  # noqa: E402
from priors.structure import gini  # noqa: E402
from priors.tasks import feature_block  # noqa: E402
from rdbpfn.atomic import atomic_write  # noqa: E402


def plot_schema(db: SyntheticDatabase, path: str | Path) -> Path:
    """Schema graph, tables placed by layer, labelled with rows and time (clock mark)."""
    graph = db.graph.copy()
    layer = dict.fromkeys(graph, 0)
    for node in nx.topological_sort(graph):
        for child in graph.successors(node):
            layer[child] = max(layer[child], layer[node] + 1)
    nx.set_node_attributes(graph, layer, "layer")
    position = nx.multipartite_layout(graph, subset_key="layer", align="horizontal")
    position = {n: (x, -y) for n, (x, y) in position.items()}
    labels = {
        name: f"{name}\n{table.n_rows} rows" + ("\n(time)" if table.time_column else "")
        for name, table in db.tables.items()
    }
    figure, axis = plt.subplots(figsize=(8, 6))
    nx.draw_networkx(graph, position, labels=labels, node_size=2200, node_color="#cfe3f7",
                     font_size=8, arrowsize=14, ax=axis)
    axis.set_title(f"schema ({graph.graph.get('family', 'given')}): parent -> child")
    axis.axis("off")
    return _save(figure, path)


def plot_degrees(db: SyntheticDatabase, path: str | Path) -> Path:
    """Complementary CDF of parent degrees (children per parent row) for every foreign key."""
    figure, axis = plt.subplots(figsize=(7, 5))
    for name, table in db.tables.items():
        for column, (parent, index) in table.foreign_keys.items():
            degree = np.bincount(index, minlength=db.tables[parent].n_rows)
            values = np.sort(degree)[::-1]
            ccdf = np.arange(1, values.size + 1) / values.size
            axis.loglog(np.maximum(values, 0.5), ccdf, marker=".", linestyle="none",
                        label=f"{name}.{column} (gini {gini(degree):.2f})")
    axis.set_xlabel("children per parent row")
    axis.set_ylabel("share of parent rows with at least this many")
    axis.set_title("foreign-key degree distributions")
    axis.legend(fontsize=7)
    return _save(figure, path)


def plot_correlation(x: np.ndarray, names: list[str], path: str | Path) -> Path:
    """|correlation| heatmap of a linearized episode, columns grouped by feature block."""
    order = sorted(range(len(names)), key=lambda j: (feature_block(names[j]), names[j]))
    x = x[:, order]
    keep = np.nanstd(x, axis=0) > 0
    filled = np.where(np.isnan(x), np.nanmean(x, axis=0), x)[:, keep]
    corr = np.abs(np.corrcoef(filled, rowvar=False)) if filled.shape[1] > 1 else np.ones((1, 1))
    figure, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(np.nan_to_num(corr), cmap="viridis", vmin=0, vmax=1)
    kept = [names[j] for j, k in zip(order, keep, strict=True) if k]
    axis.set_yticks(range(len(kept)), [n[:40] for n in kept], fontsize=5)
    axis.set_xticks([])
    axis.set_title("|correlation| of DFS features (grouped by block)")
    figure.colorbar(image, ax=axis)
    return _save(figure, path)


def _save(figure: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    figure.tight_layout()
    path = atomic_write(path, lambda stream: figure.savefig(stream, format="png", dpi=110))
    plt.close(figure)
    return path
