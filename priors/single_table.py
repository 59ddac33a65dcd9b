"""Single-table prior: random structural causal models (SCMs) that emit labelled tables.

Stage 1 of the curriculum trains on these tables. Each table comes from its own causal model
whose hyperparameters are themselves drawn at random ("meta-sampling"):

1. **Root causes** ``(rows, n_roots)``: every root column draws from its own distribution
   (normal, uniform, categorical codes with random per-category values, heavy-tailed Student-t,
   Zipf counts, Gaussian mixtures).
2. **Causal layers**: either a random MLP (70% by default; sparse random weights, per-unit
   activations from a per-table subset of :data:`ACTIVATIONS`, additive noise) or a random tree
   SCM (each unit is a sum of random axis-aligned regression trees over the previous layer,
   evaluated vectorised in numpy, no fitting).
3. **Read-out**: the label and the features are read off random internal nodes, so a feature can
   be a cause, an effect or a sibling of the label.
4. **Post-processing**: outliers and optional 4-sigma squashing (as in TabICL), quantile bucketing
   of some columns into 2-9 randomly permuted ordinal codes, random monotone transforms and
   scales, missing values (MCAR or value-dependent), a label threshold at a random quantile
   (class imbalance; sometimes a two-sided band), random label flips.

Everything is float32 numpy and vectorised: a 600 x 18 table takes a few milliseconds of one core
(``python -m eval.prior_speed``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ACTIVATIONS", "TARGETS", "SingleTablePrior", "TableRecipe", "sample_recipe",
           "sample_table"]

# Numerical guards.
_EPS = 1e-8
# Standardised values are clipped here before activations (keeps exp/square finite).
_PREACTIVATION_CLIP = 30.0


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _random_fourier(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random smooth 1-d function per unit: sum of 4 random sinusoids. z: (n, k) -> (n, k)."""
    n_waves = 4
    k = z.shape[1]
    frequencies = rng.normal(0.0, 1.5, size=(k, n_waves))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(k, n_waves))
    amplitudes = rng.normal(0.0, 1.0, size=(k, n_waves)) / np.sqrt(n_waves)
    # (n, k, 1) * (k, waves) -> (n, k, waves) -> sum over waves -> (n, k)
    waves = np.sin(z[:, :, None] * frequencies + phases)
    return np.einsum("nkw,kw->nk", waves, amplitudes)


def _quantize(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.round(z * rng.uniform(0.5, 3.0)) + 0.0


# Every activation takes standardised pre-activations z (n, k) and a generator (used by the
# random ones) and returns (n, k).
ACTIVATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "identity": lambda z, rng: z,
    "tanh": lambda z, rng: np.tanh(z),
    "relu": lambda z, rng: np.maximum(z, 0.0),
    "leaky_relu": lambda z, rng: np.where(z > 0.0, z, 0.1 * z),
    "sigmoid": lambda z, rng: 1.0 / (1.0 + np.exp(-z)),
    "sin": lambda z, rng: np.sin(z),
    "abs": lambda z, rng: np.abs(z),
    "square": lambda z, rng: z * z,
    "sign": lambda z, rng: np.sign(z),
    "rbf": lambda z, rng: np.exp(-z * z),
    "softplus": lambda z, rng: _softplus(z),
    "elu": lambda z, rng: np.where(z > 0.0, z, np.expm1(np.minimum(z, 0.0))),
    "cube": lambda z, rng: z * z * z / 3.0,
    "log_abs": lambda z, rng: np.log(np.abs(z) + 0.1),
    "random_fourier": _random_fourier,
    "quantize": _quantize,
}

ROOT_DISTRIBUTIONS = ("normal", "uniform", "categorical", "student_t", "zipf", "mixture")


@dataclass(frozen=True)
class SingleTablePrior:
    """Ranges from which each table's causal model is drawn (the meta-distribution).

    Every ``(low, high)`` pair is an inclusive range; rates are probabilities. Override any field
    to change the prior, e.g. ``SingleTablePrior(mlp_fraction=1.0)`` for MLP SCMs only.
    """

    mlp_fraction: float = 0.7            # P(MLP SCM); otherwise a tree SCM
    layers: tuple[int, int] = (1, 5)     # MLP causal layers after the roots
    tree_layers: tuple[int, int] = (1, 3)  # tree-SCM causal layers after the roots
    width: tuple[int, int] = (4, 32)     # units per layer (raised so that nodes >= columns + 1)
    roots: tuple[int, int] = (2, 16)     # root causes of MLP SCMs
    tree_roots: tuple[int, int] = (2, 8)  # root causes of tree SCMs (labels of random trees
                                          # over many roots are barely learnable)
    noise_std: tuple[float, float] = (1e-3, 0.5)      # log-uniform, relative to unit variance
    gain: tuple[float, float] = (0.5, 3.0)            # log-uniform pre-activation gain
    weight_density: tuple[float, float] = (0.2, 1.0)  # fraction of non-zero MLP weights
    activations_per_table: tuple[int, int] = (1, 4)
    tree_depth: tuple[int, int] = (2, 5)
    trees_per_unit: tuple[int, int] = (1, 4)
    label_is_effect: float = 0.5         # P(label read off the last layer)
    root_feature_rate: float = 0.3       # P(roots are also candidate feature nodes), MLP SCM
    tree_root_feature_rate: float = 0.7  # the same for tree SCMs (tree units are step functions)
    locality: tuple[float, float] = (0.0, 2.0)  # feature weight exp(-locality * layer distance)
    categorical_tables: float = 0.5      # P(table has categorical columns)
    categorical_fraction: tuple[float, float] = (0.05, 0.6)
    categories: tuple[int, int] = (2, 9)
    missing_tables: float = 0.4          # P(table has missing values)
    missing_rate: tuple[float, float] = (0.01, 0.35)  # per affected column
    missing_value_dependent: float = 0.5  # P(missingness depends on values, else MCAR)
    outlier_tables: float = 0.2
    outlier_rate: tuple[float, float] = (0.001, 0.02)
    squash_tables: float = 0.5           # P(4-sigma squashing of the features)
    transform_tables: float = 0.3        # P(some columns get exp/cube/integer transforms)
    minority_quantile: tuple[float, float] = (0.03, 0.5)  # label threshold quantile range
    band_label: float = 0.15             # P(label = value inside a random band)
    flip_tables: float = 0.3             # P(random label flips)
    flip_rate: tuple[float, float] = (0.0, 0.1)
    grouped_tables: float = 0.0          # P(rows come in groups, :func:`_group_rows`); 0
                                         # keeps the stream's bytes as before the option
    additive_targets: float = 0.0        # P(a readable numeric target, or a class, is
                                         # additive in many columns, :func:`_additive_node`);
                                         # 0 keeps the stream's bytes as before the option

    def __post_init__(self) -> None:
        if not 0.0 <= self.mlp_fraction <= 1.0:
            raise ValueError(
                f"mlp_fraction must be a probability in [0, 1], got {self.mlp_fraction}; "
                "use 1.0 for MLP SCMs only and 0.0 for tree SCMs only"
            )
        integer_ranges = ("layers", "tree_layers", "width", "roots", "tree_roots", "tree_depth",
                          "trees_per_unit", "categories")
        for name in integer_ranges:
            low, high = getattr(self, name)
            if low < 1 or high < low:
                raise ValueError(f"{name} must be a range (low, high) with 1 <= low <= high, "
                                 f"got {(low, high)}")


DEFAULT_PRIOR = SingleTablePrior()


@dataclass(frozen=True)
class TableRecipe:
    """The hyperparameters of one table's causal model (drawn by :func:`sample_recipe`)."""

    kind: str                      # "mlp" | "tree"
    n_roots: int
    root_distributions: tuple[str, ...]
    widths: tuple[int, ...]        # units per causal layer
    activations: tuple[str, ...]   # this table's activation subset
    noise_std: float
    gain: float
    weight_density: float
    tree_depth: int
    trees_per_unit: int
    label_is_effect: bool
    roots_are_features: bool
    locality: float
    categorical_fraction: float
    max_categories: int
    missing_rate: float
    missing_value_dependent: bool
    outlier_rate: float
    squash: bool
    transform: bool
    minority_quantile: float
    band_label: bool
    flip_rate: float


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def sample_recipe(
    rng: np.random.Generator, columns: int, prior: SingleTablePrior = DEFAULT_PRIOR
) -> TableRecipe:
    """Draw one table's causal-model hyperparameters from ``prior``.

    The layer widths are raised so that the model has at least ``columns + 1`` internal nodes
    (one per feature plus the label).
    """
    kind = "mlp" if rng.random() < prior.mlp_fraction else "tree"
    n_layers = _integer(rng, prior.layers if kind == "mlp" else prior.tree_layers)
    # Tree units are piecewise constant: keep trees shallow in layers, wide enough in nodes.
    needed_per_layer = -(-(columns + 1) // n_layers)
    widths = tuple(
        max(_integer(rng, prior.width), needed_per_layer) for _ in range(n_layers)
    )
    n_roots = _integer(rng, prior.roots if kind == "mlp" else prior.tree_roots)
    # Either one distribution for all roots or an independent mix.
    if rng.random() < 0.5:
        roots = (str(rng.choice(ROOT_DISTRIBUTIONS)),) * n_roots
    else:
        roots = tuple(str(d) for d in rng.choice(ROOT_DISTRIBUTIONS, size=n_roots))
    names = list(ACTIVATIONS)
    n_activations = min(_integer(rng, prior.activations_per_table), len(names))
    activations = tuple(str(a) for a in rng.choice(names, size=n_activations, replace=False))
    has_categorical = rng.random() < prior.categorical_tables
    has_missing = rng.random() < prior.missing_tables
    has_outliers = rng.random() < prior.outlier_tables
    flips = rng.random() < prior.flip_tables
    return TableRecipe(
        kind=kind,
        n_roots=n_roots,
        root_distributions=roots,
        widths=widths,
        activations=activations,
        noise_std=_log_uniform(rng, prior.noise_std),
        gain=_log_uniform(rng, prior.gain),
        weight_density=float(rng.uniform(*prior.weight_density)),
        tree_depth=_integer(rng, prior.tree_depth),
        trees_per_unit=_integer(rng, prior.trees_per_unit),
        label_is_effect=bool(rng.random() < prior.label_is_effect),
        roots_are_features=bool(
            rng.random()
            < (prior.root_feature_rate if kind == "mlp" else prior.tree_root_feature_rate)
        ),
        locality=float(rng.uniform(*prior.locality)),
        categorical_fraction=float(rng.uniform(*prior.categorical_fraction))
        if has_categorical else 0.0,
        max_categories=_integer(rng, prior.categories),
        missing_rate=float(rng.uniform(*prior.missing_rate)) if has_missing else 0.0,
        missing_value_dependent=bool(rng.random() < prior.missing_value_dependent),
        outlier_rate=float(rng.uniform(*prior.outlier_rate)) if has_outliers else 0.0,
        squash=bool(rng.random() < prior.squash_tables),
        transform=bool(rng.random() < prior.transform_tables),
        minority_quantile=float(rng.uniform(*prior.minority_quantile)),
        band_label=bool(rng.random() < prior.band_label),
        flip_rate=float(rng.uniform(*prior.flip_rate)) if flips else 0.0,
    )


# ----------------------------------------------------------------------------- root causes


def _sample_roots(
    rng: np.random.Generator, rows: int, distributions: tuple[str, ...]
) -> np.ndarray:
    """Root causes (rows, n_roots); column j follows ``distributions[j]``."""
    kinds = np.asarray(distributions)
    roots = np.empty((rows, len(kinds)), dtype=np.float32)
    for name in np.unique(kinds):
        cols = np.flatnonzero(kinds == name)
        k = len(cols)
        if name == "normal":
            block = rng.normal(size=(rows, k))
        elif name == "uniform":
            block = rng.uniform(-1.0, 1.0, size=(rows, k))
        elif name == "categorical":
            # codes in [0, m) with random non-uniform frequencies, mapped to random values
            m = rng.integers(2, 10, size=k)
            weights = rng.dirichlet(np.ones(10), size=k)[:, :m.max()]
            weights = np.where(np.arange(m.max()) < m[:, None], weights, 0.0)
            cdf = np.cumsum(weights / weights.sum(1, keepdims=True), axis=1)
            u = rng.random((rows, k))
            codes = np.minimum((u[:, :, None] > cdf[None]).sum(-1), m - 1)
            values = rng.normal(size=(k, int(m.max())))
            block = values[np.arange(k), codes]
        elif name == "student_t":
            block = rng.standard_t(rng.uniform(1.5, 5.0, size=k), size=(rows, k))
        elif name == "zipf":
            block = rng.zipf(rng.uniform(1.5, 3.0, size=k), size=(rows, k)).astype(float)
            block = np.minimum(block, 1e6)
        else:  # "mixture": two or three Gaussian modes per column
            n_modes = int(rng.integers(2, 4))
            centers = rng.normal(0.0, 2.0, size=(n_modes, k))
            scales = rng.uniform(0.2, 1.0, size=(n_modes, k))
            mode = rng.integers(0, n_modes, size=(rows, k))
            cols_k = np.arange(k)
            block = centers[mode, cols_k] + scales[mode, cols_k] * rng.normal(size=(rows, k))
        roots[:, cols] = block
    return roots


# ----------------------------------------------------------------------------- causal layers


def _std(z: np.ndarray) -> np.ndarray:
    """Per-column standard deviation over rows (faster than np.std for small arrays)."""
    centered = z - z.mean(axis=0)
    return np.sqrt(np.einsum("nk,nk->k", centered, centered) / len(z))


def _standardize(z: np.ndarray) -> np.ndarray:
    """Per-column z-score over rows. z: (n, k) -> (n, k), clipped to +-_PREACTIVATION_CLIP."""
    z = z - z.mean(axis=0)
    z /= np.sqrt(np.einsum("nk,nk->k", z, z) / len(z)) + _EPS
    return np.clip(z, -_PREACTIVATION_CLIP, _PREACTIVATION_CLIP, out=z)


def _activate(z: np.ndarray, recipe: TableRecipe, rng: np.random.Generator) -> np.ndarray:
    """Apply per-unit activations drawn from the table's subset. z: (n, k) -> (n, k)."""
    k = z.shape[1]
    choice = rng.integers(0, len(recipe.activations), size=k)
    out = np.empty_like(z)
    for index, name in enumerate(recipe.activations):
        cols = np.flatnonzero(choice == index)
        if len(cols):
            out[:, cols] = ACTIVATIONS[name](z[:, cols], rng)
    return out


def _mlp_layer(
    h: np.ndarray, width: int, recipe: TableRecipe, rng: np.random.Generator
) -> np.ndarray:
    """One random MLP layer. h: (n, k_in) -> (n, width)."""
    k_in = h.shape[1]
    weights = rng.standard_normal((k_in, width), dtype=np.float32)
    mask = rng.random((k_in, width), dtype=np.float32) < recipe.weight_density
    mask[rng.integers(0, k_in, size=width), np.arange(width)] = True  # every unit has a parent
    pre = _standardize(h) @ (weights * mask)
    bias = rng.normal(0.0, 0.5, size=width).astype(np.float32)
    pre = _standardize(pre) * np.float32(recipe.gain) + bias
    out = _activate(pre, recipe, rng)
    unit_noise = recipe.noise_std * np.exp(rng.normal(0.0, 0.5, size=width)) * (_std(out) + _EPS)
    return out + rng.standard_normal(out.shape, dtype=np.float32) * unit_noise.astype(np.float32)


def _tree_layer(
    h: np.ndarray, width: int, recipe: TableRecipe, rng: np.random.Generator
) -> np.ndarray:
    """One layer of random-tree units: unit j = sum of random trees over h. (n, k) -> (n, width).

    Trees are complete binary trees of ``recipe.tree_depth`` levels with random split features,
    thresholds at the value of a random row, and normal leaf values; all ``width *
    trees_per_unit`` trees are evaluated together, one gather per level.
    """
    n, k_in = h.shape
    depth = recipe.tree_depth
    n_trees = width * recipe.trees_per_unit
    n_internal = 2**depth - 1
    split_feature = rng.integers(0, k_in, size=(n_trees, n_internal))
    split_row = rng.integers(0, n, size=(n_trees, n_internal))
    threshold = h[split_row, split_feature]                                   # (T, internal)
    leaves = rng.standard_normal((n_trees, 2**depth), dtype=np.float32)
    # Flat gathers (np.take on raveled arrays) are several times faster than 2-d fancy indexing.
    split_feature_flat, threshold_flat = split_feature.ravel(), threshold.ravel()
    h_flat = h.ravel()
    tree_offset = np.arange(n_trees) * n_internal                           # (T,)
    row_offset = (np.arange(n) * k_in)[:, None]                             # (n, 1)
    node = np.zeros((n, n_trees), dtype=np.intp)
    for _ in range(depth):
        flat = node + tree_offset                                            # (n, T)
        feature = np.take(split_feature_flat, flat)
        go_right = np.take(h_flat, feature + row_offset) > np.take(threshold_flat, flat)
        node = 2 * node + 1 + go_right
    values = np.take(leaves.ravel(), node - n_internal + np.arange(n_trees) * 2**depth)
    # (n, width * trees_per_unit) -> (n, width, trees_per_unit) -> (n, width)
    out = values.reshape(n, width, recipe.trees_per_unit).sum(axis=2)
    out = _standardize(out)
    unit_noise = recipe.noise_std * np.exp(rng.normal(0.0, 0.5, size=width))
    return out + rng.standard_normal(out.shape, dtype=np.float32) * unit_noise.astype(np.float32)


# ----------------------------------------------------------------------------- post-processing


def _squash(x: np.ndarray, n_sigma: float = 4.0) -> np.ndarray:
    """Soft-clip each column beyond mean +- n_sigma std (log growth outside). (n, p) -> (n, p)."""
    mean = x.mean(axis=0)
    bound = n_sigma * x.std(axis=0) + _EPS
    centered = x - mean
    excess = np.maximum(np.abs(centered) - bound, 0.0)
    squashed = np.sign(centered) * (np.minimum(np.abs(centered), bound) + np.log1p(excess))
    return mean + squashed


def _add_outliers(x: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """In place: a ``rate`` fraction of cells become far values (5-50 std away)."""
    hit = rng.random(x.shape) < rate
    if hit.any():
        scale = x.std(axis=0) + _EPS
        far = rng.uniform(5.0, 50.0, size=x.shape) * rng.choice([-1.0, 1.0], size=x.shape)
        x[hit] = (x.mean(axis=0) + far * scale)[hit]


def _quantiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Lower empirical quantiles of a column (NaN-free) at levels ``q`` in [0, 1]; one sort,
    several times faster than ``np.quantile`` at these sizes. (n,), (m,) -> (m,)."""
    ordered = np.sort(values)
    return ordered[(np.asarray(q) * (len(ordered) - 1)).astype(np.intp)]


def _bucketize(column: np.ndarray, n_categories: int, rng: np.random.Generator) -> np.ndarray:
    """Quantile bucketing into ``n_categories`` ordinal codes, randomly permuted. (n,) -> (n,)."""
    cuts = np.sort(rng.uniform(0.0, 1.0, size=n_categories - 1))
    edges = _quantiles(column, cuts)
    codes = np.searchsorted(edges, column, side="right")
    return rng.permutation(n_categories)[codes].astype(float)


def _transform_columns(x: np.ndarray, rng: np.random.Generator) -> None:
    """In place: random monotone transforms and scales on a random subset of columns."""
    n_columns = x.shape[1]
    chosen = rng.random(n_columns) < rng.uniform(0.1, 0.6)
    for j in np.flatnonzero(chosen):
        col = x[:, j]
        z = (col - col.mean()) / (col.std() + _EPS)
        kind = rng.integers(0, 4)
        if kind == 0:    # log-normal-like, positive and skewed
            x[:, j] = np.exp(np.clip(z * rng.uniform(0.3, 1.5), -20.0, 20.0))
        elif kind == 1:  # counts / integers
            x[:, j] = np.round(z * rng.uniform(1.0, 10.0))
        elif kind == 2:  # heavy tails
            x[:, j] = z**3
        else:            # arbitrary unit and offset
            x[:, j] = z * _log_uniform(rng, (1e-2, 1e3)) + rng.normal(0.0, 100.0)


def _add_missing(
    x: np.ndarray, rate: float, value_dependent: bool, rng: np.random.Generator
) -> None:
    """In place: NaN in a random subset of columns at roughly ``rate`` (MCAR or MNAR/MAR)."""
    n, p = x.shape
    affected = rng.random(p) < rng.uniform(0.3, 1.0)
    if not affected.any():
        affected[rng.integers(0, p)] = True
    cols = np.flatnonzero(affected)
    if value_dependent:
        # missing more often where a (random, possibly other) column is high: logistic in its
        # z-score, shifted so that the mean probability is about ``rate``.
        driver = x[:, rng.integers(0, p, size=len(cols))]
        z = (driver - driver.mean(axis=0)) / (driver.std(axis=0) + _EPS)
        slope = rng.uniform(1.0, 4.0, size=len(cols)) * rng.choice([-1.0, 1.0], size=len(cols))
        logits = slope * z + np.log(rate / (1.0 - rate))
        probability = 1.0 / (1.0 + np.exp(-logits))
    else:
        probability = np.full((n, len(cols)), rate)
    block = x[:, cols]
    block[rng.random((n, len(cols))) < probability] = np.nan
    x[:, cols] = block


def _binarize_label(value: np.ndarray, recipe: TableRecipe, rng: np.random.Generator) -> np.ndarray:
    """Threshold the label node at a random quantile (imbalance), or a random band. -> {0,1}."""
    if recipe.band_label:
        q = recipe.minority_quantile
        width = rng.uniform(q, max(q, min(0.7, 1.0 - q)))
        low_q = rng.uniform(0.0, 1.0 - width)
        low, high = _quantiles(value, np.array([low_q, low_q + width]))
        y = (value >= low) & (value <= high)
    else:
        q = recipe.minority_quantile if rng.random() < 0.5 else 1.0 - recipe.minority_quantile
        y = value > _quantiles(value, np.array([q]))[0]
    if recipe.flip_rate > 0.0:
        y ^= rng.random(len(y)) < recipe.flip_rate
    return y.astype(np.int64)


TARGETS = ("binary", "continuous")
"""What :func:`sample_table` reads off the label node: a class (thresholded) or a number."""
READABLE_TARGET_SHARE = 0.5
"""Share of "continuous" tables whose target is computed from observed columns only."""
CENSORED_SHARE = 0.25
"""Share of "continuous" tables whose target has a point mass at its lowest value."""
CENSORED_ROWS = (0.3, 0.95)
"""Range of the share of rows in that point mass (uniform)."""


def _readable_node(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A node computed from 1-4 of the table's own (observed, post-processed) columns by a
    random one-hidden-layer MLP: a target whose causes are all among the features."""
    chosen = rng.choice(x.shape[1], size=int(rng.integers(1, min(4, x.shape[1]) + 1)),
                        replace=False)
    inputs = np.nan_to_num(_standardize(np.nan_to_num(x[:, chosen].astype(np.float64))))
    hidden = np.tanh(inputs @ rng.normal(0.0, 1.0, (len(chosen), 8)) + rng.normal(0, 0.5, 8))
    return hidden @ rng.normal(0.0, 1.0, 8) + inputs @ rng.normal(0.0, 1.0, len(chosen))


GROUP_SIZE = (2.0, 8.0)
"""Range of the mean rows per group of a grouped table (uniform)."""


def _group_rows(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows in groups, as repeated entities (a professor's courses, a patient's visits): each
    row joins one of ``rows / GROUP_SIZE`` groups, 30-90% of the columns take the value of
    the group's first row (the entity's attributes; the rest stay the row's own), and the
    target gets a hidden group effect (0.2-1 target sd, returned in units of the target's
    sd): rows of one group share part of their target that only matching them reveals.
    -> (x with the group columns shared, effect (n,))."""
    n_rows, n_columns = x.shape
    n_groups = max(2, int(n_rows / rng.uniform(*GROUP_SIZE)))
    group = rng.integers(n_groups, size=n_rows)
    _, first = np.unique(group, return_index=True)
    representative = np.empty(n_groups, dtype=np.int64)
    representative[group[first]] = first
    shared = rng.random(n_columns) < rng.uniform(0.3, 0.9)
    shared[int(rng.integers(n_columns))] = True
    x = x.copy()
    x[:, shared] = x[representative[group]][:, shared]
    effect = rng.normal(0.0, 1.0, n_groups)[group] * rng.uniform(0.2, 1.0)
    return x, effect


ADDITIVE_COLUMNS = 16
"""The most columns an additive target (:func:`_additive_node`) sums."""
ADDITIVE_CLASS_NOISE = (0.05, 1.0)
"""Range (log-uniform) of the noise, in standard deviations of the additive node, added
before a class is thresholded off it: from nearly separable to a coin flip near the line."""


def _additive_node(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A node additive in 2-16 of the table's observed columns: a weighted sum of the
    standardised columns, a third of the terms through a random shape (square, tanh, abs,
    log of a shifted column), plus in half the tables a small interaction term. Real numeric
    targets are often like this (calories from fat, carbs and protein; a weight from many body
    measurements); a target read off 1-4 columns through an MLP rarely is."""
    n_columns = x.shape[1]
    chosen = rng.choice(n_columns, size=int(rng.integers(min(2, n_columns),
                                                         min(ADDITIVE_COLUMNS, n_columns) + 1)),
                        replace=False)
    inputs = np.nan_to_num(_standardize(np.nan_to_num(x[:, chosen].astype(np.float64))))
    shaped = rng.random(len(chosen)) < 1 / 3
    shapes = (np.square, np.tanh, np.abs, lambda z: np.log(z - z.min() + 1.0))
    for j in np.flatnonzero(shaped):
        shape = shapes[int(rng.integers(len(shapes)))]
        inputs[:, j] = _standardize(shape(inputs[:, j])[:, None])[:, 0]
    weights = rng.normal(0.0, 1.0, len(chosen)) * np.exp(rng.normal(0.0, 0.75, len(chosen)))
    value = inputs @ weights
    if len(chosen) >= 2 and rng.random() < 0.5:
        a, b = rng.choice(len(chosen), size=2, replace=False)
        value = value + rng.normal(0.0, 0.5) * np.abs(weights).mean() * inputs[:, a] * inputs[:, b]
    return value


def _continuous_label(value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The label node as a number: standardised and clipped to +-4 (a heavy-tailed node
    would otherwise make one row the whole target), plus noise (0.01-0.5 sd, log-uniform),
    censored from below in :data:`CENSORED_SHARE` of the tables (every row under a random
    quantile in :data:`CENSORED_ROWS` takes that quantile's value: a point mass, like the
    zeros of a count whose entities mostly did nothing), through a random monotone shape
    (identity 55%; exp-skewed amounts 20%; counts 15%; integer scores 10%), then a random
    scale (1e-2..1e4) and shift. -> float64 (n,)."""
    y = np.clip(_standardize(value[:, None].astype(np.float64))[:, 0], -4.0, 4.0)
    y = y + rng.normal(0.0, _log_uniform(rng, (0.01, 0.5)), len(y))
    if rng.random() < CENSORED_SHARE:  # "none" for many rows: spend, visits, games next season
        y = np.maximum(y, np.quantile(y, rng.uniform(*CENSORED_ROWS)))
    shape = rng.random()
    if shape < 0.20:
        y = np.exp(y * rng.uniform(0.3, 1.0))
    elif shape < 0.35:
        y = np.floor(np.exp(y * rng.uniform(0.3, 1.0)) * rng.uniform(1.0, 5.0))
    elif shape < 0.45:
        y = np.round(y * rng.uniform(1.0, 4.0))
    scale = 10.0 ** rng.uniform(-2.0, 4.0)
    return y * scale + rng.normal(0.0, 3.0) * scale


# ----------------------------------------------------------------------------- public API


def sample_table(
    rng: np.random.Generator,
    rows: int,
    columns: int,
    *,
    prior: SingleTablePrior = DEFAULT_PRIOR,
    recipe: TableRecipe | None = None,
    target: str = "binary",
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic labelled table from a freshly sampled random SCM.

    Args:
        rng: the only source of randomness (same generator state -> same bytes).
        rows: number of rows n (>= 2).
        columns: number of feature columns p (>= 1).
        prior: the meta-distribution of causal models (:class:`SingleTablePrior`).
        recipe: a fixed causal-model recipe (skips meta-sampling; for tests and inspection).
        target: "binary" (the label node thresholded) or "continuous" (the label node as a
            number, :func:`_continuous_label`; for regression). The binary stream's bytes do
            not depend on this option's existence.

    Returns:
        ``(X, y)``: X float32 (rows, columns) with NaN for missing values, categorical columns
        as ordinal codes 0..k-1; y int64 (rows,) in {0, 1}, or float64 for "continuous".
        Constant columns and single-class labels can occur (rarely);
        :func:`priors.episode.finalize` filters them.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if rows < 2 or columns < 1:
        raise ValueError(
            f"sample_table needs rows >= 2 and columns >= 1, got rows={rows}, columns={columns}"
        )
    if recipe is None:
        recipe = sample_recipe(rng, columns, prior)
    roots = _sample_roots(rng, rows, recipe.root_distributions)
    layer = _mlp_layer if recipe.kind == "mlp" else _tree_layer
    hidden = [roots]
    for width in recipe.widths:
        hidden.append(layer(hidden[-1], width, recipe, rng))
    internal = np.concatenate(hidden[1:], axis=1)                          # (n, nodes)
    n_nodes = internal.shape[1]
    last_layer_start = n_nodes - recipe.widths[-1]
    if recipe.label_is_effect:
        label_node = int(rng.integers(last_layer_start, n_nodes))
    else:
        label_node = int(rng.integers(0, n_nodes))
    # layer of every internal node (1-based; the roots are layer 0)
    node_layer = np.repeat(np.arange(1, len(recipe.widths) + 1), recipe.widths)
    pool = internal
    if recipe.roots_are_features:
        pool = np.concatenate([internal, roots], axis=1)
        node_layer = np.concatenate([node_layer, np.zeros(roots.shape[1], dtype=node_layer.dtype)])
    # Features near the label in the graph (its causes, effects, siblings) are more likely.
    weight = np.exp(-recipe.locality * np.abs(node_layer - node_layer[label_node]))
    weight[label_node] = 0.0
    feature_nodes = rng.choice(len(weight), size=columns, replace=False, p=weight / weight.sum())
    x = pool[:, feature_nodes]
    node = internal[:, label_node]
    effect = None
    if prior.grouped_tables > 0.0 and rng.random() < prior.grouped_tables:
        x, effect = _group_rows(x, rng)
    if target == "binary":
        y = _binarize_label(node if effect is None else node + effect * _std(node[:, None])[0],
                            recipe, rng)

    if recipe.outlier_rate > 0.0:
        _add_outliers(x, recipe.outlier_rate, rng)
    if recipe.squash:
        x = _squash(x)
    if recipe.transform:
        _transform_columns(x, rng)
    if recipe.categorical_fraction > 0.0:
        categorical = np.flatnonzero(rng.random(columns) < recipe.categorical_fraction)
        for j in categorical:
            n_categories = int(rng.integers(2, recipe.max_categories + 1))
            x[:, j] = _bucketize(x[:, j], n_categories, rng)
    if recipe.missing_rate > 0.0:
        _add_missing(x, recipe.missing_rate, recipe.missing_value_dependent, rng)
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    x32[~np.isfinite(x32)] = np.nan
    if target == "continuous":
        # half the tables: a node whose causes are all observed (learnable from the features
        # alone); half: the SCM's own label node, whose causes are partly hidden
        readable = rng.random() < READABLE_TARGET_SHARE
        if readable and prior.additive_targets > 0.0 and rng.random() < prior.additive_targets:
            node = _additive_node(x32, rng)
        elif readable:
            node = _readable_node(x32, rng)
        if effect is not None:
            node = node + effect * _std(node[:, None].astype(np.float64))[0]
        y = _continuous_label(node, rng)
    elif prior.additive_targets > 0.0 and rng.random() < prior.additive_targets:
        # a class on the far side of a noisy weighted sum of observed columns (logistic
        # regression's world, which sparse causal graphs rarely draw)
        node = _additive_node(x32, rng)
        if effect is not None:
            node = node + effect * _std(node[:, None])[0]
        spread = _log_uniform(rng, ADDITIVE_CLASS_NOISE) * _std(node[:, None])[0]
        y = _binarize_label(node + rng.normal(0.0, spread, len(node)), recipe, rng)
    return x32, y
