"""Foreign keys: selective SCM (modes A/B, feedback), block-model linker, time order."""

from __future__ import annotations

import numpy as np
import pytest

from priors.structure import (
    LinkerConfig,
    ParentState,
    SelectiveSCM,
    eligible_counts,
    gini,
    link_hsbm,
    link_scm,
)
from priors.temporal import sample_signature

D = 8


def _parents(rng, k, timed):
    times = np.sort(rng.random(k)) if timed else np.zeros(k)
    return ParentState(rng.standard_normal((k, D)), times)


def _link(seed, strength, n=2000, k=250, mode_b_fraction=1.0):
    rng = np.random.default_rng(seed)
    parent = _parents(rng, k, timed=False)
    weights = SelectiveSCM.sample(rng, D, 1)
    config = LinkerConfig(feedback_strength=strength, mode_b_fraction=mode_b_fraction,
                          n_candidates=16, batch_size=64, score_scale=1.0)
    z0 = rng.standard_normal((n, D))
    chosen, _ = link_scm(rng, z0, np.zeros(n), [parent], weights, config)
    return np.bincount(chosen[0], minlength=k)


def test_gini_exact_values():
    assert gini(np.array([3, 3, 3, 3])) == 0.0
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    assert gini(np.array([])) == 0.0


def test_feedback_strength_raises_degree_concentration_monotonically():
    strengths = (0.0, 0.4, 0.8, 1.2, 1.6)
    ginis = [np.mean([gini(_link(seed, s)) for seed in range(4)]) for s in strengths]
    assert all(a < b for a, b in zip(ginis, ginis[1:], strict=False)), ginis
    assert ginis[0] < 0.4  # mode A: near-uniform (Poisson-like) degrees
    assert ginis[-1] > 0.6  # strong feedback: heavy tail


def test_mode_a_share_lowers_concentration():
    mostly_a = np.mean([gini(_link(s, 1.2, mode_b_fraction=0.1)) for s in range(4)])
    all_b = np.mean([gini(_link(s, 1.2, mode_b_fraction=1.0)) for s in range(4)])
    assert mostly_a < all_b


@pytest.mark.parametrize("mode", ["scm_a", "scm_b", "hsbm"])
def test_links_are_valid_and_never_point_to_a_later_parent(mode):
    rng = np.random.default_rng(3)
    parents = [_parents(rng, 300, timed=True), _parents(rng, 120, timed=False)]
    n = 1500
    child_times = np.sort(rng.uniform(parents[0].available_from[0], 1.0, n))
    weights = SelectiveSCM.sample(rng, D, 2)
    z0 = rng.standard_normal((n, D))
    if mode == "hsbm":
        chosen, z = link_hsbm(rng, z0, child_times, parents, weights)
    else:
        strength = 0.0 if mode == "scm_a" else 1.0
        chosen, z = link_scm(rng, z0, child_times, parents, weights,
                             LinkerConfig(feedback_strength=strength))
    assert z.shape == (n, D) and np.isfinite(z).all()
    for parent, idx in zip(parents, chosen, strict=True):
        assert idx.dtype == np.int64 and idx.min() >= 0
        assert idx.max() < parent.embedding.shape[0]
        assert np.all(parent.available_from[idx] <= child_times)
    # early children can only reach early parents: the time constraint binds
    assert chosen[0][: n // 10].max() < 300


def test_feedback_updates_chosen_parents_only():
    rng = np.random.default_rng(4)
    parent = _parents(rng, 50, timed=False)
    before = parent.embedding.copy()
    chosen, _ = link_scm(rng, rng.standard_normal((40, D)), np.zeros(40), [parent],
                         SelectiveSCM.sample(rng, D, 1),
                         LinkerConfig(feedback_strength=1.0, batch_size=10))
    picked = np.zeros(50, bool)
    picked[chosen[0]] = True
    changed = np.any(parent.embedding != before, axis=1)
    assert np.array_equal(changed, picked)
    assert np.array_equal(parent.popularity > 0, picked)


def test_child_before_every_parent_is_an_error():
    parent = ParentState(np.zeros((3, D)), np.array([0.5, 0.6, 0.7]))
    with pytest.raises(ValueError, match="precedes every parent row"):
        eligible_counts(np.array([0.4, 0.8]), parent)
    with pytest.raises(ValueError, match="sorted"):
        ParentState(np.zeros((2, D)), np.array([0.5, 0.1]))


def test_temporal_signature_times_are_sorted_and_bursty():
    rng = np.random.default_rng(6)
    signature = sample_signature(rng)
    times = signature.sample_times(rng, 5000, 0.2, 0.9)
    assert np.all(np.diff(times) >= 0) and times.min() >= 0.2 and times.max() <= 0.9
    features = signature.features(times)
    assert features.shape == (5000, 5) and np.isfinite(features).all()
    # a spike concentrates events: the densest 5% of the window holds far more than 5%
    spiky = next(s for s in (sample_signature(np.random.default_rng(i)) for i in range(50))
                 if s.spikes.max() > 3 and s.weights[2] > 0.8)
    t = spiky.sample_times(rng, 5000)
    busiest = np.histogram(t, bins=20)[0].max() / t.size
    assert busiest > 0.1


def test_parents_take_no_children_after_their_activity_ends():
    rng = np.random.default_rng(5)
    k, n = 60, 3000
    until = rng.uniform(0.5, 1.5, k)  # at any time at least half the parents are active
    parent = ParentState(rng.standard_normal((k, D)), np.zeros(k), available_until=until)
    times = np.sort(rng.random(n))
    config = LinkerConfig(feedback_strength=0.8, mode_b_fraction=1.0, n_candidates=8,
                          batch_size=64, score_scale=1.0)
    chosen, _ = link_scm(rng, rng.standard_normal((n, D)), times, [parent],
                         SelectiveSCM.sample(rng, D, 1), config)
    assert (until[chosen[0]] >= times).all()
    # without ends the same parents take children late in time
    free = ParentState(parent.embedding.copy(), np.zeros(k))
    chosen, _ = link_scm(rng, rng.standard_normal((n, D)), times, [free],
                         SelectiveSCM.sample(rng, D, 1), config)
    assert (until[chosen[0]] < times).mean() > 0.1


def test_available_until_must_not_precede_available_from():
    with pytest.raises(ValueError, match="available_until"):
        ParentState(np.zeros((2, D)), np.array([0.1, 0.5]), available_until=np.array([0.2, 0.4]))
