"""Prior throughput: episodes per second of the on-the-fly priors, one process.

``python -m eval.prior_speed [--seconds S] [--threads 1 2]``

Measures, for each thread count (torch and BLAS threads limited together):

- **single-table** episodes/s at 600 x 18 (stage 1 shape; ``EpisodeDataset`` batches of 8,
  sampling *and* finalisation), side by side with a **reference** run in the same process: a
  plain torch MLP-SCM that builds ``nn.Module`` layers per table, as TabICL-style priors do
  (MLP only, no trees, no post-processing; the same finalisation). Bar: >= 50 episodes/s.
- **relational** episodes/s at 600 x 30, DFS depth 1 (when ``priors.relational`` exists), with
  seconds per generated database and the ratio against **35 s per database**: the figure
  measured for the published RDB-PFN generator on a 2-core machine like ours (see
  ``shared/reference/rdbpfn-official.md``, "Measured here": 32-37 s per database). That
  reference is a recorded figure, not re-run here (its code is not part of this repository).
  Bar: >= 5 episodes/s.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from priors.episode import finalize_arrays
from priors.single_table import SingleTablePrior
from priors.stream import EpisodeDataset

# Seconds per database of the published generator, measured on 2 cores (rdbpfn-official.md).
PUBLISHED_SECONDS_PER_DATABASE = 35.0
# Targets the published generator draws per database (paper appendix C.2.3).
PUBLISHED_TASKS_PER_DATABASE = 6
SINGLE_TABLE_BAR = 50.0
RELATIONAL_BAR = 5.0
# Alternating timing slices per stream (fairness on a shared machine).
ROUNDS = 4


def _reference_episodes(rows: int, columns: int, seed: int) -> Iterator[Any]:
    """Reference single-table prior: a torch MLP-SCM built as ``nn.Module`` per table."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    activations = [nn.Tanh, nn.ReLU, nn.Sigmoid, nn.ELU, nn.Identity]
    while True:
        n_layers = int(rng.integers(1, 6))
        width = max(int(rng.integers(4, 33)), -(-(columns + 1) // n_layers))
        n_roots = int(rng.integers(2, 17))
        layers, d_in = [], n_roots
        for _ in range(n_layers):
            linear = nn.Linear(d_in, width)
            nn.init.normal_(linear.weight, generator=generator)
            layers.append(nn.Sequential(linear, activations[int(rng.integers(len(activations)))]()))
            d_in = width
        with torch.no_grad():
            h = torch.randn(rows, n_roots, generator=generator)
            nodes = []
            for layer in layers:
                h = layer(h)
                h = h + 0.1 * torch.randn(h.shape, generator=generator)
                nodes.append(h)
            internal = torch.cat(nodes, dim=1).numpy().astype(np.float64)
        chosen = rng.choice(internal.shape[1], size=columns + 1, replace=False)
        label = internal[:, chosen[0]]
        y = (label > label[rng.integers(rows)]).astype(np.int64)
        yield finalize_arrays(internal[:, chosen[1:]], y, rows, columns, rng)


def _batches(dataset: EpisodeDataset) -> Iterator[int]:
    for batch in dataset:
        yield int(batch["X"].shape[0])


def _reference_batches(rows: int, columns: int, batch_size: int) -> Iterator[int]:
    episodes = _reference_episodes(rows, columns, seed=0)
    while True:
        produced = 0
        while produced < batch_size:
            produced += next(episodes) is not None
        yield batch_size


def _rate(
    batches: Iterator[int], seconds: float, on_start: Callable[[], None] | None = None
) -> tuple[float, float]:
    """(episodes per second, seconds timed) over at least ``seconds`` after one warm-up batch;
    ``on_start`` runs when the timing starts."""
    next(batches)
    if on_start is not None:
        on_start()
    episodes, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        episodes += next(batches)
    elapsed = time.perf_counter() - start
    return episodes / elapsed, elapsed


def _relational_kwargs(sample_tasks: Callable[..., Any]) -> dict[str, Any]:
    """Ask the relational sampler for DFS depth 1, whatever its keyword is called."""
    parameters = inspect.signature(sample_tasks).parameters
    for name in ("max_depth", "depth", "dfs_depth"):
        if name in parameters:
            return {name: 1}
    return {}


def _interleaved_rates(
    streams: dict[str, Iterator[int]], seconds: float, rounds: int = ROUNDS
) -> dict[str, float]:
    """Episodes per second of each stream, timed in alternating slices of ``seconds / rounds``
    so that all of them see the same load on a shared machine."""
    for batches in streams.values():
        next(batches)  # warm-up
    episodes = dict.fromkeys(streams, 0)
    elapsed = dict.fromkeys(streams, 0.0)
    for _ in range(rounds):
        for name, batches in streams.items():
            start = time.perf_counter()
            while time.perf_counter() - start < seconds / rounds:
                episodes[name] += next(batches)
            elapsed[name] += time.perf_counter() - start
    return {name: episodes[name] / elapsed[name] for name in streams}


def time_single_table(batch_size: int, seconds: float) -> dict[str, float]:
    """Our single-table stream and the torch reference, side by side at 600 x 18."""
    single = EpisodeDataset("single_table", 600, 18, batch_size, seed=0,
                            single_table_min_columns=18)
    mlp_only = EpisodeDataset("single_table", 600, 18, batch_size, seed=0,
                              single_table_min_columns=18,
                              single_table_prior=SingleTablePrior(mlp_fraction=1.0))
    rates = _interleaved_rates({
        "single_table_episodes_per_s": _batches(single),
        "single_table_mlp_only_episodes_per_s": _batches(mlp_only),
        "single_table_reference_episodes_per_s": _reference_batches(600, 18, batch_size),
    }, seconds)
    return rates


def time_relational(
    sample_tasks: Callable[..., Any], batch_size: int, seconds: float
) -> dict[str, Any]:
    """Relational stream at 600 x 30, DFS depth 1, against the published 35 s per database."""
    kwargs = _relational_kwargs(sample_tasks)
    relational = EpisodeDataset("relational", 600, 30, batch_size, seed=0,
                                relational_sampler=sample_tasks, relational_kwargs=kwargs)
    warm: dict[str, int] = {}
    rate, elapsed = _rate(_batches(relational), seconds, lambda: warm.update(relational.stats))
    databases = relational.stats["databases"] - warm["databases"]
    seconds_per_database = elapsed / max(databases, 1)
    published_rate = PUBLISHED_TASKS_PER_DATABASE / PUBLISHED_SECONDS_PER_DATABASE
    return {
        "relational_kwargs": kwargs,
        "relational_episodes_per_s": rate,
        "relational_databases_timed": databases,
        "relational_seconds_per_database": seconds_per_database,
        "relational_stats": dict(relational.stats),
        "speedup_vs_published_per_database": PUBLISHED_SECONDS_PER_DATABASE / seconds_per_database,
        "speedup_vs_published_per_episode": rate / published_rate,
    }


def _verdict(value: float, bar: float) -> str:
    return f"bar {bar:.0f}: {'PASS' if value >= bar else 'FAIL'}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="timing window per row")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    try:
        from priors.relational import sample_tasks
    except ImportError as error:
        sample_tasks = None
        print(f"relational prior unavailable ({error}); timing the single-table prior only")

    results: dict[str, Any] = {"published_seconds_per_database": PUBLISHED_SECONDS_PER_DATABASE}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            row: dict[str, Any] = time_single_table(args.batch_size, args.seconds)
            ours = row["single_table_episodes_per_s"]
            reference = row["single_table_reference_episodes_per_s"]
            ours_mlp = row["single_table_mlp_only_episodes_per_s"]
            print(f"threads={threads} single-table 600x18: {ours:7.1f} episodes/s "
                  f"({_verdict(ours, SINGLE_TABLE_BAR)}); MLP-SCM only {ours_mlp:7.1f} | "
                  f"reference torch MLP-SCM without post-processing {reference:7.1f} episodes/s"
                  f" | ratio ours/reference {ours / reference:.2f}x (MLP only "
                  f"{ours_mlp / reference:.2f}x)")
            if sample_tasks is not None:
                try:
                    row.update(time_relational(sample_tasks, args.batch_size, args.seconds))
                except ImportError as error:  # the relational prior is importable but not whole
                    print(f"relational prior failed to run ({error}); skipped")
                    sample_tasks = None
                    results[f"threads_{threads}"] = row
                    continue
                rate = row["relational_episodes_per_s"]
                per_db = row["relational_seconds_per_database"]
                print(f"threads={threads} relational 600x30 {row['relational_kwargs']}: "
                      f"{rate:7.2f} episodes/s ({_verdict(rate, RELATIONAL_BAR)}), "
                      f"{per_db:.3f} s/database over {row['relational_databases_timed']} "
                      f"databases vs {PUBLISHED_SECONDS_PER_DATABASE:.0f} s/database "
                      "(published generator, recorded figure from rdbpfn-official.md): "
                      f"{row['speedup_vs_published_per_database']:.0f}x per database, "
                      f"{row['speedup_vs_published_per_episode']:.0f}x per episode")
            results[f"threads_{threads}"] = row
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
