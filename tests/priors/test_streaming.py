"""Episode streaming: determinism, fixed shapes, disjoint shards, exact resume, all tasks used.

Relational streams use a small fake generator with the contract of
``priors.tasks.sample_tasks`` (the real one is exercised by its own tests and by
``python -m eval.prior_speed``).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import priors
import rdbpfn
from priors.streaming import EpisodeDataset, stream


class FakeRelational:
    """``sample_tasks`` stand-in: 6 tasks per database, one of them unusable (too few rows);
    ``calls`` counts generated databases (in this process)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rng: np.random.Generator, rows: int, columns: int, **kw: Any):
        self.calls += 1
        tasks = []
        for task in range(6):
            n = rows + int(rng.integers(0, 50)) if task < 5 else rows // 3
            x = rng.normal(size=(n, columns + 10))
            y = (x[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
            tasks.append((x, y))
        return tasks


def _batches(dataset: EpisodeDataset, count: int) -> list[dict[str, Any]]:
    return list(itertools.islice(iter(dataset), count))


def _key(batch: dict[str, Any]) -> tuple[bytes, bytes, int]:
    return batch["X"].numpy().tobytes(), batch["y"].numpy().tobytes(), batch["n_context"]


def test_batches_have_fixed_shape_one_context_and_valid_splits() -> None:
    dataset = EpisodeDataset("single_table", rows=120, columns=7, batch_size=4, seed=0)
    for batch in _batches(dataset, 5):
        assert batch["X"].shape == (4, 120, 7) and batch["X"].dtype == torch.float32
        assert batch["y"].shape == (4, 120) and batch["y"].dtype == torch.int64
        n_context = batch["n_context"]
        assert isinstance(n_context, int) and 60 <= n_context <= 108
        for y in batch["y"]:
            assert set(y[:n_context].tolist()) == {0, 1}
            assert set(y[n_context:].tolist()) == {0, 1}


def test_same_seed_same_bytes_different_seed_different_batches() -> None:
    first = _batches(EpisodeDataset("single_table", 100, 6, 3, seed=1), 3)
    again = _batches(EpisodeDataset("single_table", 100, 6, 3, seed=1), 3)
    other = _batches(EpisodeDataset("single_table", 100, 6, 3, seed=2), 3)
    assert [_key(b) for b in first] == [_key(b) for b in again]
    assert not {_key(b) for b in first} & {_key(b) for b in other}


def test_ranks_are_disjoint_and_interleave_the_single_process_stream() -> None:
    single = _batches(EpisodeDataset("single_table", 80, 5, 2, seed=0), 6)
    rank0 = _batches(EpisodeDataset("single_table", 80, 5, 2, 0, rank=0, world_size=2), 3)
    rank1 = _batches(EpisodeDataset("single_table", 80, 5, 2, 0, rank=1, world_size=2), 3)
    assert not {_key(b) for b in rank0} & {_key(b) for b in rank1}
    # global batch g = i * world_size + rank: the ranks together read the one-process stream
    assert [_key(b) for b in single[0::2]] == [_key(b) for b in rank0]
    assert [_key(b) for b in single[1::2]] == [_key(b) for b in rank1]


def test_dataloader_workers_are_disjoint_and_keep_index_order() -> None:
    dataset = EpisodeDataset("single_table", 80, 5, 2, seed=0, num_batches=6)
    in_process = list(dataset)
    loaded = list(DataLoader(dataset, batch_size=None, num_workers=2))
    assert [b["index"] for b in loaded] == list(range(6))
    assert len({_key(b) for b in loaded}) == 6
    # single-table content depends on the batch index only, not on the worker count
    assert [_key(b) for b in loaded] == [_key(b) for b in in_process]


def test_resume_from_start_index_continues_exactly() -> None:
    full = _batches(EpisodeDataset("single_table", 80, 5, 2, seed=4), 7)
    resumed = _batches(EpisodeDataset("single_table", 80, 5, 2, seed=4, start_index=4), 3)
    assert [b["index"] for b in resumed] == [4, 5, 6]
    assert [_key(b) for b in resumed] == [_key(b) for b in full[4:]]


def test_relational_stream_uses_every_task_of_every_database() -> None:
    fake = FakeRelational()
    dataset = EpisodeDataset(
        "relational", 60, 8, batch_size=5, seed=0, relational_sampler=fake, num_batches=6
    )
    batches = list(dataset)
    # 30 episodes = 6 databases x 5 usable tasks + relabelled 6th slot
    assert fake.calls == 5
    assert dataset.stats["tasks_unusable"] == 5 and dataset.stats["tasks_relabelled"] == 5
    for batch in batches:
        assert batch["X"].shape == (5, 60, 8)
        for y in batch["y"]:
            assert set(y[: batch["n_context"]].tolist()) == {0, 1}


def test_relational_resume_with_workers_matches_the_uninterrupted_stream() -> None:
    fake = FakeRelational()

    def make(start: int) -> EpisodeDataset:
        return EpisodeDataset("relational", 50, 6, batch_size=4, seed=3, start_index=start,
                              num_batches=9, relational_sampler=fake)

    full = list(DataLoader(make(0), batch_size=None, num_workers=2))
    resumed = list(DataLoader(make(5), batch_size=None, num_workers=2))
    assert [b["index"] for b in full] == list(range(9))
    assert [b["index"] for b in resumed] == list(range(5, 9))
    assert [_key(b) for b in resumed] == [_key(b) for b in full[5:]]
    assert len({_key(b) for b in full}) == 9


def test_relational_ranks_and_workers_read_different_databases() -> None:
    def stream_of(rank: int) -> list[tuple[bytes, bytes, int]]:
        dataset = EpisodeDataset("relational", 50, 6, 3, seed=0, rank=rank, world_size=2,
                                 num_batches=4, relational_sampler=FakeRelational())
        return [_key(b) for b in DataLoader(dataset, batch_size=None, num_workers=2)]

    rank0, rank1 = stream_of(0), stream_of(1)
    assert len(set(rank0) | set(rank1)) == 8


def test_relational_sampler_is_asked_for_tasks_per_database_tasks() -> None:
    asked = []

    def sampler(rng: np.random.Generator, rows: int, columns: int, n_tasks: int = 6):
        asked.append(n_tasks)
        x = rng.normal(size=(rows, columns))
        return [(x, (x[:, j] > 0).astype(int)) for j in range(n_tasks)]

    dataset = EpisodeDataset("relational", 40, 4, batch_size=3, seed=0, tasks_per_database=3,
                             relational_sampler=sampler)
    _batches(dataset, 2)
    assert asked == [3, 3] and dataset.stats["tasks_relabelled"] == 0


def test_relabel_fraction_augments_that_share_of_relational_episodes() -> None:
    dataset = EpisodeDataset("relational", 50, 6, batch_size=10, seed=0, relabel_fraction=0.5,
                             relational_sampler=FakeRelational())
    _batches(dataset, 10)
    # 100 episodes, P(relabel) = 0.5: binomial std 5
    assert 35 <= dataset.stats["relational_augmented"] <= 65
    plain = EpisodeDataset("relational", 50, 6, batch_size=10, seed=0,
                           relational_sampler=FakeRelational())
    _batches(plain, 2)
    assert plain.stats["relational_augmented"] == 0


def test_mixed_stream_holds_the_requested_share_of_relational_episodes() -> None:
    dataset = EpisodeDataset("mixed", 40, 4, batch_size=3, seed=0, relational_fraction=0.25,
                             relational_sampler=FakeRelational())
    counts = [dataset.relational_count(i) for i in range(100)]
    assert sum(counts) == 75 and set(counts) <= {0, 1}
    batches = _batches(dataset, 8)
    assert all(b["X"].shape == (3, 40, 4) for b in batches)
    # 8 batches hold floor(8 * 3 / 4) = 6 relational episodes: one database
    assert dataset.stats["databases"] == 1


def test_min_rows_cuts_a_batch_to_its_shortest_relational_task() -> None:
    def short(rng: np.random.Generator, rows: int, columns: int) -> list[tuple[Any, Any]]:
        n = rows - 10
        x = rng.normal(size=(n, columns))
        return [(x, (x[:, 0] > 0).astype(int))] * 6

    strict = EpisodeDataset("relational", 60, 5, 2, seed=0, relational_sampler=short)
    with pytest.raises(RuntimeError, match="min_rows"):
        _batches(strict, 1)
    lenient = EpisodeDataset("relational", 60, 5, 2, 0, min_rows=40, relational_sampler=short)
    assert _batches(lenient, 1)[0]["X"].shape == (2, 50, 5)


def test_stream_yields_episodes_and_priors_stream_is_callable() -> None:
    episodes = list(itertools.islice(stream("single_table", rows=64, columns=5, seed=0), 4))
    assert all(e.X.shape == (64, 5) and e.y.shape == (64,) for e in episodes)
    assert len({e.n_context for e in episodes}) > 1  # each episode draws its own split
    again = next(priors.stream("single_table", rows=64, columns=5, seed=0))
    assert torch.equal(again.X.nan_to_num(-1), episodes[0].X.nan_to_num(-1))
    assert isinstance(episodes[0], rdbpfn.Episode) and priors.EpisodeDataset is EpisodeDataset


def test_bad_arguments_raise_with_the_value_seen() -> None:
    with pytest.raises(ValueError, match="'graph'"):
        EpisodeDataset("graph")
    with pytest.raises(ValueError, match="min_rows"):
        EpisodeDataset("relational", rows=100, min_rows=200)
    with pytest.raises(ValueError, match="rank"):
        EpisodeDataset(rank=2, world_size=2)
    with pytest.raises(TypeError, match="EpisodeDataset"):
        next(stream("single_table", batch_size=4))


def test_real_relational_prior_streams_valid_mixed_batches() -> None:
    """Integration with ``priors.tasks.sample_tasks`` (small databases, depth 1)."""
    dataset = EpisodeDataset("mixed", 64, 8, batch_size=4, seed=0, relational_fraction=0.5,
                             relational_kwargs={"max_depth": 1})
    batches = _batches(dataset, 3)
    assert dataset.stats["databases"] >= 1
    assert dataset.stats["relational_fallback"] == 0
    for batch in batches:
        assert batch["X"].shape == (4, 64, 8) and batch["y"].shape == (4, 64)
        n_context = batch["n_context"]
        for y in batch["y"]:
            assert set(y[:n_context].tolist()) == {0, 1}
            assert set(y[n_context:].tolist()) == {0, 1}
    again = _batches(EpisodeDataset("mixed", 64, 8, batch_size=4, seed=0,
                                    relational_fraction=0.5,
                                    relational_kwargs={"max_depth": 1}), 3)
    assert [_key(b) for b in again] == [_key(b) for b in batches]


def test_continuous_targets_stream_float_episodes_deterministically() -> None:
    def first_batch() -> dict:
        dataset = EpisodeDataset("single_table", rows=40, columns=5, batch_size=3, seed=4,
                                 num_batches=1, target="continuous")
        return next(iter(dataset))

    batch = first_batch()
    assert batch["y"].dtype == torch.float32 and batch["y"].shape == (3, 40)
    assert torch.isfinite(batch["y"]).all()
    n = batch["n_context"]
    assert all(float(row[:n].std()) > 0 for row in batch["y"])  # never constant in context
    again = first_batch()
    torch.testing.assert_close(again["X"], batch["X"], rtol=0, atol=0, equal_nan=True)
    assert torch.equal(again["y"], batch["y"])
    with pytest.raises(ValueError, match="relabel_fraction"):
        EpisodeDataset("relational", rows=40, columns=5, target="continuous",
                       relabel_fraction=0.5)
    with pytest.raises(ValueError, match="target must be one of"):
        EpisodeDataset("single_table", rows=40, columns=5, target="ordinal")


def test_relational_tasks_keep_their_numbers() -> None:
    """Relational episodes with target="continuous": numeric tasks (a column's value, a count
    or a sum in a future window), float32, never constant in the context."""
    dataset = EpisodeDataset("relational", rows=32, columns=6, batch_size=3, seed=2,
                             num_batches=2, target="continuous",
                             relational_kwargs={"max_tables": 3, "row_range": [40, 80]})
    batches = list(dataset)
    for batch in batches:
        assert batch["y"].dtype == torch.float32 and torch.isfinite(batch["y"]).all()
        n = batch["n_context"]
        assert all(float(row[:n].std()) > 0 for row in batch["y"])
    assert dataset.stats["databases"] >= 1
    assert any(len(torch.unique(row)) > 2 for batch in batches for row in batch["y"])


@pytest.mark.parametrize("kind", ["single_table", "mixed"])
def test_multiclass_targets_stream_up_to_max_classes_every_one_in_the_context(kind: str
                                                                              ) -> None:
    def batches() -> list[dict]:
        return list(EpisodeDataset(kind, rows=48, columns=5, batch_size=4, seed=6,
                                   num_batches=4, target="multiclass", max_classes=6,
                                   relational_kwargs={"max_tables": 3, "row_range": [60, 90]}))

    first = batches()
    classes = []
    for batch in first:
        assert batch["y"].dtype == torch.int64
        n = batch["n_context"]
        for row in batch["y"]:
            k = int(row.max()) + 1
            classes.append(k)
            assert 2 <= k <= 6 and set(row[:n].tolist()) == set(range(k))
    assert max(classes) > 2 and classes.count(2) > 0
    again = batches()
    for one, two in zip(first, again, strict=True):
        assert torch.equal(one["y"], two["y"])
    with pytest.raises(ValueError, match="relabel_fraction"):
        EpisodeDataset("relational", rows=40, columns=5, target="multiclass",
                       relabel_fraction=0.5)
    with pytest.raises(ValueError, match="max_classes"):
        EpisodeDataset("single_table", rows=40, columns=5, target="multiclass", max_classes=1)


def test_single_table_prior_overrides_come_as_a_mapping() -> None:
    """A training config's ``prior_kwargs`` are JSON: a mapping of SingleTablePrior fields
    gives the same stream as the dataclass; an unknown field is a clear error."""
    from priors.single_table import SingleTablePrior

    def first(prior: object) -> bytes:
        dataset = EpisodeDataset("single_table", rows=40, columns=5, batch_size=2, seed=3,
                                 num_batches=1, target="continuous", single_table_prior=prior)
        batch = next(iter(dataset))
        return batch["X"].numpy().tobytes() + batch["y"].numpy().tobytes()

    mapping = {"additive_targets": 1.0, "grouped_tables": 0.5}
    assert first(mapping) == first(SingleTablePrior(**mapping))
    with pytest.raises(ValueError, match="unknown fields \\['additive'\\]"):
        EpisodeDataset("single_table", rows=40, columns=5, batch_size=2, seed=3,
                       single_table_prior={"additive": 1.0})
