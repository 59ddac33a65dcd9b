"""Foreign keys: which parent rows each child row references (seed 003, section 5.1.2 and
algorithm 1), plus PluRel's hierarchical stochastic block model linker (seed 002).

Selective SCM, for one dependent table with parent tables 1..p:

1. every child row gets a latent state ``z0 = MLP_init(eps ⊕ temporal features)``;
2. it draws M candidate parent tuples (one row per parent table, each among the parent rows
   that already exist at the child's time: a child never references a later parent);
3. each tuple is embedded ``h = MLP_comb(e_u1 ⊕ ... ⊕ e_up)`` from the parents' dynamic
   embeddings and scored ``<z0 W_Q, h W_K>``; one tuple is sampled by softmax;
4. the child's state becomes ``z = MLP_child(z0 ⊕ h*)``;
5. feedback: chosen parents' embeddings move by ``MLP_fb(e_u ⊕ z)`` and their popularity
   grows, which raises their chance to be proposed again.

Mode A processes all children in parallel against a frozen snapshot (near-uniform
degrees); mode B processes them in time order in mini-batches with feedback after each
batch (preferential attachment). ``mode_b_fraction`` mixes the two (the share of batches
followed by feedback) and ``feedback_strength`` is the attachment exponent: candidates are
proposed with probability proportional to ``(1 + popularity) ** feedback_strength``, so 0 is
uniform, 1 is linear (scale-free) and above 1 concentrates degrees on a few hubs.

Everything is vectorised: MLP_comb's first layer is linear, so each parent row's
contribution ``e_u W1_t`` is computed once per row and candidate tuples only gather and add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

LINKER_MODES = ("scm", "hsbm")
DEFAULT_CANDIDATES = 32
DEFAULT_BATCH_SIZE = 64
# Mode B runs at most this many sequential mini-batches per table (larger tables get larger
# batches), which bounds the Python loop cost of one table.
MAX_BATCHES = 48
# Share of a feedback step that moves a chosen parent's embedding towards MLP_fb's output,
# at feedback_strength -> infinity (it is scaled by strength / (1 + strength)).
FEEDBACK_EMBEDDING_RATE = 0.5
# Times a child whose candidate parents have all ended proposes again (link_scm).
ENDED_REDRAWS = 4
HSBM_MAX_LEVELS = 3
HSBM_MAX_CLUSTERS = 3

Activation = Callable[[np.ndarray], np.ndarray]


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0.0, x, 0.1 * x)


def _softsign(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.abs(x))


def _square_tanh(x: np.ndarray) -> np.ndarray:
    t = np.tanh(x)
    return t * np.abs(t) + 0.3 * x


ACTIVATIONS: dict[str, Activation] = {
    "tanh": np.tanh,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "sin": np.sin,
    "softsign": _softsign,
    "square_tanh": _square_tanh,
}


def sample_activation(rng: np.random.Generator) -> Activation:
    """One activation from ``ACTIVATIONS``, uniformly."""
    names = sorted(ACTIVATIONS)
    return ACTIVATIONS[names[rng.integers(len(names))]]


def random_matrix(rng: np.random.Generator, d_in: int, d_out: int) -> np.ndarray:
    """(d_in, d_out) Gaussian weights with variance 1 / d_in (keeps activations O(1))."""
    return rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)


@dataclass(frozen=True)
class RandomMLP:
    """One-hidden-layer MLP with random weights: x (..., d_in) -> (..., d_out)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    activation: Activation

    @classmethod
    def sample(cls, rng: np.random.Generator, d_in: int, d_hidden: int, d_out: int) -> RandomMLP:
        return cls(
            random_matrix(rng, d_in, d_hidden),
            rng.normal(0.0, 0.5, d_hidden),
            random_matrix(rng, d_hidden, d_out),
            rng.normal(0.0, 0.2, d_out),
            sample_activation(rng),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.activation(x @ self.w1 + self.b1) @ self.w2 + self.b2


def standardise_columns(x: np.ndarray) -> np.ndarray:
    """Column-wise z-score of a (n, d) array (constant columns become 0)."""
    centred = x - x.mean(axis=0)
    spread = centred.std(axis=0)
    return centred / np.where(spread > 1e-9, spread, 1.0)


def initial_latents(
    rng: np.random.Generator, mlp_init: RandomMLP, temporal_features: np.ndarray, d_noise: int
) -> np.ndarray:
    """z0 = MLP_init(eps ⊕ temporal features): (n, n_temporal) -> (n, d), standardised.

    ``mlp_init`` must take ``d_noise + n_temporal`` inputs.
    """
    n = temporal_features.shape[0]
    eps = rng.standard_normal((n, d_noise))
    return standardise_columns(mlp_init(np.concatenate([eps, temporal_features], axis=1)))


@dataclass
class ParentState:
    """Dynamic state of a table's rows while its children are linked.

    ``embedding`` (k, d) e_u, updated by feedback; ``popularity`` (k,) accumulated feedback
    mass; ``available_from`` (k,) non-decreasing time from which each row exists (all zeros
    for tables without time); ``available_until`` (k,) time after which a row takes no new
    children (an entity's end of activity: a customer who churns), None for never.
    """

    embedding: np.ndarray
    available_from: np.ndarray
    popularity: np.ndarray = field(default=None)  # type: ignore[assignment]
    available_until: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.popularity is None:
            self.popularity = np.zeros(self.embedding.shape[0])
        if np.any(np.diff(self.available_from) < 0):
            raise ValueError("ParentState.available_from must be sorted (rows in time order)")
        if self.available_until is not None and (
                self.available_until.shape != self.available_from.shape
                or np.any(self.available_until < self.available_from)):
            raise ValueError("ParentState.available_until must give every row a time no "
                             "earlier than its available_from")


@dataclass(frozen=True)
class LinkerConfig:
    """How one dependent table is linked to its parents.

    ``mode``: "scm" (selective SCM) or "hsbm" (PluRel's block model);
    ``feedback_strength``: attachment exponent (0: none); ``mode_b_fraction``: share of
    mini-batches followed by feedback (0: pure mode A); ``score_scale``: sharpness of the
    softmax over candidates (small: near-random choice among the M candidates).
    """

    mode: str = "scm"
    feedback_strength: float = 1.0
    mode_b_fraction: float = 1.0
    n_candidates: int = DEFAULT_CANDIDATES
    batch_size: int = DEFAULT_BATCH_SIZE
    score_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in LINKER_MODES:
            raise ValueError(f"unknown linker mode {self.mode!r}; choose one of {LINKER_MODES}")
        if self.feedback_strength < 0 or not 0 <= self.mode_b_fraction <= 1:
            raise ValueError(
                f"feedback_strength={self.feedback_strength} must be >= 0 and "
                f"mode_b_fraction={self.mode_b_fraction} in [0, 1]"
            )
        if self.n_candidates < 1 or self.batch_size < 1:
            raise ValueError(
                f"n_candidates={self.n_candidates} and batch_size={self.batch_size} must be >= 1"
            )


def sample_linker_config(rng: np.random.Generator, hsbm_probability: float = 0.2) -> LinkerConfig:
    """Random linker settings: degree distributions from near-uniform to heavy-tailed."""
    if rng.random() < hsbm_probability:
        return LinkerConfig(mode="hsbm")
    mode_a_only = rng.random() < 0.3
    return LinkerConfig(
        mode="scm",
        feedback_strength=0.0 if mode_a_only else float(rng.uniform(0.2, 1.1)),
        mode_b_fraction=0.0 if mode_a_only else float(rng.uniform(0.5, 1.0)),
        n_candidates=int(rng.choice((8, 16, 32))),
        batch_size=int(rng.choice((32, 64, 128))),
        score_scale=float(np.exp(rng.uniform(np.log(0.3), np.log(4.0)))),
    )


@dataclass(frozen=True)
class SelectiveSCM:
    """Random weights of algorithm 1 for one dependent table with ``p`` parent tables.

    MLP_comb is ``act(Σ_t e_t W1[t] + b1) W2 + b2`` (its first layer split per parent).
    """

    comb_first: tuple[np.ndarray, ...]  # p x (d, H)
    comb_bias: np.ndarray  # (H,)
    comb_activation: Activation
    comb_second: np.ndarray  # (H, d)
    comb_out_bias: np.ndarray  # (d,)
    w_query: np.ndarray  # (d, d)
    w_key: np.ndarray  # (d, d)
    mlp_child: RandomMLP  # (2d) -> d
    mlp_feedback: RandomMLP  # (2d) -> d, embedding update
    feedback_gain: np.ndarray  # (2d,), popularity gain = softplus(x @ gain + 1)

    @classmethod
    def sample(cls, rng: np.random.Generator, d: int, n_parents: int) -> SelectiveSCM:
        hidden = 2 * d
        return cls(
            # blocks of one (d * p, H) matrix: variance 1 / (d * p) like the unsplit layer
            tuple(
                rng.standard_normal((d, hidden)) / np.sqrt(d * n_parents)
                for _ in range(n_parents)
            ),
            rng.normal(0.0, 0.5, hidden),
            sample_activation(rng),
            random_matrix(rng, hidden, d),
            rng.normal(0.0, 0.2, d),
            random_matrix(rng, d, d),
            random_matrix(rng, d, d),
            RandomMLP.sample(rng, 2 * d, hidden, d),
            RandomMLP.sample(rng, 2 * d, hidden, d),
            random_matrix(rng, 2 * d, 1)[:, 0],
        )

    def tuple_embedding(self, pre: np.ndarray) -> np.ndarray:
        """h = MLP_comb second half: pre-activations (..., H) -> (..., d)."""
        return self.comb_activation(pre) @ self.comb_second + self.comb_out_bias


def eligible_counts(child_times: np.ndarray, parent: ParentState) -> np.ndarray:
    """(n,) number of parent rows that exist at each child's time (a prefix of the table)."""
    counts = np.searchsorted(parent.available_from, child_times, side="right")
    if counts.min() < 1:
        first = int(np.argmin(counts))
        raise ValueError(
            f"child row {first} at time {child_times[first]:.4f} precedes every parent row "
            f"(first parent time {parent.available_from[0]:.4f}); start child times later"
        )
    return counts


def _propose(
    rng: np.random.Generator, counts: np.ndarray, parent: ParentState, exponent: float, m: int
) -> np.ndarray:
    """(n, m) candidate parent rows, each in the child's eligible prefix, proposed with
    probability proportional to ``(1 + popularity) ** exponent``."""
    u = rng.random((counts.size, m))
    if exponent == 0.0 or not parent.popularity.any():
        return np.minimum((u * counts[:, None]).astype(np.int64), counts[:, None] - 1)
    cumulative = np.cumsum((1.0 + parent.popularity) ** exponent)
    targets = u * cumulative[counts - 1][:, None]
    idx = np.searchsorted(cumulative, targets, side="right")
    return np.minimum(idx, counts[:, None] - 1)


def _ended(candidates: list[np.ndarray], parents: list[ParentState], times: np.ndarray
           ) -> np.ndarray | None:
    """(b, M) bool: candidate tuples with a parent row whose activity ended before the
    child's time; None when no parent has ends."""
    ended = None
    for idx, parent in zip(candidates, parents, strict=True):
        if parent.available_until is not None:
            gone = parent.available_until[idx] < times[:, None]
            ended = gone if ended is None else ended | gone
    return ended


def _propose_active(
    rng: np.random.Generator, counts: list[np.ndarray], parents: list[ParentState],
    times: np.ndarray, exponent: float, m: int,
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Candidate tuples for a batch of children, (b, M) per parent table, and the mask of
    those whose activity has ended (None when no parent table has ends). Rows whose M
    candidates have all ended propose again, up to ``ENDED_REDRAWS`` times; rows still
    without an active candidate then draw every parent among the rows active at their time
    (:func:`_propose_among_active`)."""
    candidates = [_propose(rng, c, p, exponent, m) for c, p in zip(counts, parents, strict=True)]
    ended = _ended(candidates, parents, times)
    if ended is None:
        return candidates, None
    for attempt in range(ENDED_REDRAWS + 1):
        redo = np.flatnonzero(ended.all(axis=1))
        if redo.size == 0:
            break
        if attempt < ENDED_REDRAWS:
            fresh = [_propose(rng, c[redo], p, exponent, m)
                     for c, p in zip(counts, parents, strict=True)]
        else:
            fresh = [_propose_among_active(rng, c[redo], p, times[redo], exponent, m)
                     for c, p in zip(counts, parents, strict=True)]
        for idx, new in zip(candidates, fresh, strict=True):
            idx[redo] = new
        ended[redo] = _ended(fresh, parents, times[redo])
    return candidates, ended


def _propose_among_active(
    rng: np.random.Generator, counts: np.ndarray, parent: ParentState, times: np.ndarray,
    exponent: float, m: int,
) -> np.ndarray:
    """(b, m) candidates among the parent rows that exist and are active at each child's
    time, proposed with probability proportional to ``(1 + popularity) ** exponent``; a
    child with no active parent gets the eligible row whose activity ended last."""
    until = parent.available_until
    if until is None:
        return _propose(rng, counts, parent, exponent, m)
    eligible = np.arange(len(until))[None, :] < counts[:, None]  # (b, k)
    active = eligible & (until[None, :] >= times[:, None])
    weight = active * ((1.0 + parent.popularity) ** exponent)[None, :]
    cumulative = np.cumsum(weight, axis=1)
    targets = rng.random((counts.size, m)) * cumulative[:, -1:]
    # each row's cumulative weights are non-decreasing: one search per row, (b, k) memory
    idx = np.minimum(np.stack([np.searchsorted(row, target, side="right")
                               for row, target in zip(cumulative, targets, strict=True)]),
                     len(until) - 1)
    last = np.argmax(np.where(eligible, until[None, :], -np.inf), axis=1)
    return np.where(active.any(axis=1)[:, None], idx, last[:, None])


def link_scm(
    rng: np.random.Generator,
    z0: np.ndarray,
    child_times: np.ndarray,
    parents: list[ParentState],
    weights: SelectiveSCM,
    config: LinkerConfig,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Algorithm 1 for one dependent table.

    z0: (n, d) initial child states, rows in time order; child_times: (n,) non-decreasing
    when any parent has time. Returns one (n,) int64 array of parent row indices per parent
    table, and the children's final states z (n, d). Updates the parents' embeddings and
    popularity in place (feedback). Parent rows with ``available_until`` take no children
    after it (their candidate tuples are never picked while another candidate is active).
    """
    n, d = z0.shape
    counts = [eligible_counts(child_times, parent) for parent in parents]
    # per-parent-row contribution to MLP_comb's first layer: (k_t, H)
    # float32: the (b, M, H) candidate arrays dominate the cost of this function
    contributions = [
        (p.embedding @ w).astype(np.float32)
        for p, w in zip(parents, weights.comb_first, strict=True)
    ]
    # score_ij = <z0_i W_Q, h_ij W_K> = act(pre_ij) . r_i + const_i with r = z0 W_Q (W2 W_K)^T
    readout = (z0 @ weights.w_query) @ (weights.comb_second @ weights.w_key).T / np.sqrt(d)
    feedback = config.feedback_strength > 0 and config.mode_b_fraction > 0
    batch = max(config.batch_size, -(-n // MAX_BATCHES)) if feedback else n
    chosen = [np.empty(n, dtype=np.int64) for _ in parents]
    z = np.empty_like(z0)
    rate = FEEDBACK_EMBEDDING_RATE * config.feedback_strength / (1 + config.feedback_strength)
    for start in range(0, n, batch):
        rows = slice(start, min(start + batch, n))
        candidates, ended = _propose_active(
            rng, [c[rows] for c in counts], parents, child_times[rows],
            config.feedback_strength, config.n_candidates)
        pre = weights.comb_bias.astype(np.float32) + sum(
            contrib[idx] for contrib, idx in zip(contributions, candidates, strict=True)
        )  # (b, M, H)
        scores = np.einsum(
            "bmh,bh->bm", weights.comb_activation(pre), readout[rows].astype(np.float32)
        ).astype(np.float64)
        scores = config.score_scale * scores / (scores.std() + 1e-9)
        if ended is not None:  # ended candidates lose unless a row has no active one
            scores = np.where(ended & ~ended.all(axis=1, keepdims=True), -np.inf, scores)
        pick = np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)  # softmax sample
        take = np.arange(pick.size)
        picked_pre = pre[take, pick].astype(np.float64)  # (b, H)
        z[rows] = weights.mlp_child(
            np.concatenate([z0[rows], weights.tuple_embedding(picked_pre)], axis=1)
        )
        for t, idx in enumerate(candidates):
            chosen[t][rows] = idx[take, pick]
        if feedback and rng.random() < config.mode_b_fraction:
            for parent, contrib, w1, sel in zip(
                parents, contributions, weights.comb_first, chosen, strict=True
            ):
                _feedback(parent, contrib, w1, sel[rows], z[rows], weights, rate)
    return chosen, standardise_columns(z)


def _feedback(
    parent: ParentState,
    contributions: np.ndarray,
    w1: np.ndarray,
    selected: np.ndarray,
    z_children: np.ndarray,
    weights: SelectiveSCM,
    rate: float,
) -> None:
    """e_u <- e_u + rate (tanh MLP_fb(e_u ⊕ mean z of its new children) - e_u), popularity
    += children x softplus gain; refreshes the rows' MLP_comb contributions in place."""
    rows, inverse, n_children = np.unique(selected, return_inverse=True, return_counts=True)
    mean_child = np.zeros((rows.size, z_children.shape[1]))
    np.add.at(mean_child, inverse, z_children)
    mean_child /= n_children[:, None]
    x = np.concatenate([parent.embedding[rows], mean_child], axis=1)
    parent.embedding[rows] += rate * (np.tanh(weights.mlp_feedback(x)) - parent.embedding[rows])
    parent.popularity[rows] += n_children * np.logaddexp(0.0, x @ weights.feedback_gain + 1.0)
    contributions[rows] = parent.embedding[rows] @ w1


def link_hsbm(
    rng: np.random.Generator,
    z0: np.ndarray,
    child_times: np.ndarray,
    parents: list[ParentState],
    weights: SelectiveSCM,
) -> tuple[list[np.ndarray], np.ndarray]:
    """PluRel's hierarchical stochastic block model, one independent HSBM per foreign key,
    restricted to parent rows that exist at the child's time (PluRel ignores time).

    Rows are cut into contiguous hierarchical clusters (in time order: clusters are
    cohorts); a child picks a parent cluster with probability proportional to the product
    over levels of the block probabilities times the cluster's eligible size, then a row
    uniformly in it. The child state is ``MLP_child(z0 ⊕ MLP_comb(chosen parents))``.
    Shapes as in :func:`link_scm`.
    """
    n = z0.shape[0]
    chosen = []
    for parent in parents:
        counts = eligible_counts(child_times, parent)
        k = parent.embedding.shape[0]
        levels = int(rng.integers(1, HSBM_MAX_LEVELS + 1))
        per_level = rng.integers(1, HSBM_MAX_CLUSTERS + 1, size=levels)
        n_clusters = int(np.prod(per_level))
        block = np.ones((n_clusters, n_clusters))
        digits = np.array(np.unravel_index(np.arange(n_clusters), per_level)).T  # (K, levels)
        for level, size in enumerate(per_level):
            probs = np.full((size, size), np.exp(rng.uniform(np.log(1e-3), np.log(0.05))))
            np.fill_diagonal(probs, rng.uniform(0.6, 0.95))
            block *= probs[digits[:, level][:, None], digits[:, level][None, :]]
        bounds = (np.arange(n_clusters + 1) * k) // n_clusters  # parent cluster c: [b_c, b_c+1)
        child_cluster = (np.arange(n) * n_clusters) // n
        sizes = np.clip(counts[:, None] - bounds[None, :-1], 0, np.diff(bounds)[None, :])
        mass = block[:, child_cluster].T * sizes  # (n, K)
        cumulative = np.cumsum(mass, axis=1)
        u = rng.random(n) * cumulative[:, -1]
        cluster = np.minimum((cumulative < u[:, None]).sum(axis=1), n_clusters - 1)
        offset = (rng.random(n) * sizes[np.arange(n), cluster]).astype(np.int64)
        chosen.append(bounds[cluster] + offset)
    pre = weights.comb_bias + sum(
        p.embedding[idx] @ w for p, idx, w in zip(parents, chosen, weights.comb_first, strict=True)
    )
    z = weights.mlp_child(np.concatenate([z0, weights.tuple_embedding(pre)], axis=1))
    return chosen, standardise_columns(z)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal, -> 1: one holds everything)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, x.size + 1)
    return float((2 * ranks - x.size - 1) @ x / (x.size * x.sum()))
