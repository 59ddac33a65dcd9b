"""Re-validate a run's saved weights with more draws, then export the winner:
``python -m training.select --run runs/cpu [--export]``.

The loop validates every few hundred steps on a small, fixed validation set (one context
draw per real relational task), so its "best" can win by noise when the curve is flat.
This command scores each saved weight file of a run (``best.pt``, ``last.pt``) on a larger
validation set built the same way -- held-back synthetic episodes, sklearn sets, and the
real tasks' *validation* split with contexts from their *train* split (never test) -- and
picks the highest ``score``. ``--export`` writes the winner as the shipped checkpoint; its
sidecar records every candidate's scores under ``reselection``. ``--against FILE ...``
scores other checkpoints (the shipped one) on the same draws, for comparison only;
``--validation-of RUN`` draws the validation set of another run's config (the binary
``runs/cpu``'s, to set a multiclass run beside the binary shipped weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rdbpfn.checkpoint import load_checkpoint
from training.config import ValidationConfig, load_config
from training.export import WEIGHT_FILES, export_run
from training.validation import Validator

RESELECT_SEED = 555_000_111  # differs from the loop's validation seed: fresh draws
RESELECT_RELATIONAL_DRAWS = 8
RESELECT_QUERY_ROWS = 500
RESELECT_SYNTHETIC_EPISODES = 64
RESELECT_CONTEXT_ROWS = (64, 256, 1024)  # the benchmark's range of k


def reselect_config(base: ValidationConfig, relational_draws: int = RESELECT_RELATIONAL_DRAWS,
                    query_rows: int = RESELECT_QUERY_ROWS,
                    synthetic_episodes: int = RESELECT_SYNTHETIC_EPISODES) -> ValidationConfig:
    """The run's validation config with more draws, more query rows, the benchmark's range
    of context sizes and fresh seeds."""
    if relational_draws < 1 or query_rows < 2 or synthetic_episodes < 1:
        raise ValueError(
            f"relational_draws={relational_draws}, query_rows={query_rows} and "
            f"synthetic_episodes={synthetic_episodes} must be >= 1, 2 and 1"
        )
    return dataclasses.replace(
        base, seed=RESELECT_SEED, relational_draws=relational_draws,
        relational_query_rows=query_rows, relational_context_rows=RESELECT_CONTEXT_ROWS,
        real_query_rows=max(base.real_query_rows, 128),
        real_draws=max(base.real_draws, relational_draws),
        synthetic_episodes=synthetic_episodes,
    )


def score_candidates(run_dir: str | Path, validator: Validator,
                     which: Sequence[str] = ("best", "last")) -> dict[str, dict[str, Any]]:
    """{name: {"step", "metrics"}} for each saved weight file of the run (missing ones skipped).

    Raises ``ValueError`` when the run has no saved weights at all.
    """
    run_dir = Path(run_dir)
    for name in which:
        if name not in WEIGHT_FILES:
            raise ValueError(f"unknown weight file {name!r}; choose from {sorted(WEIGHT_FILES)}")
    paths = {name: run_dir / WEIGHT_FILES[name] for name in which
             if (run_dir / WEIGHT_FILES[name]).is_file()}
    if not paths:
        raise ValueError(f"{run_dir} holds none of {[WEIGHT_FILES[n] for n in which]}; "
                         "train until the first validation writes them")
    return score_files(paths, validator)


def score_files(paths: Mapping[str, str | Path], validator: Validator
                ) -> dict[str, dict[str, Any]]:
    """{name: {"step", "metrics"}} for checkpoint files by name, on one validation set
    (the run's candidates, or others to compare with them on the same draws)."""
    scores = {}
    for name, path in paths.items():
        loaded = load_checkpoint(path)
        loaded.model.eval()
        scores[name] = {"step": loaded.meta.get("step"),
                        "metrics": validator.evaluate(loaded.model, torch.device("cpu"))}
    return scores


def pick(scores: dict[str, dict[str, Any]]) -> str:
    """The candidate with the highest ``score``; ties go to the earlier name in ``scores``
    (``max`` keeps the first of equal keys)."""
    return max(scores, key=lambda name: scores[name]["metrics"]["score"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.select", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder written by python -m training")
    parser.add_argument("--relational-draws", type=int, default=RESELECT_RELATIONAL_DRAWS)
    parser.add_argument("--query-rows", type=int, default=RESELECT_QUERY_ROWS)
    parser.add_argument("--synthetic-episodes", type=int, default=RESELECT_SYNTHETIC_EPISODES)
    parser.add_argument("--export", action="store_true",
                        help="write the winner as the shipped checkpoint")
    parser.add_argument("--dest", default=None, help="checkpoint path for --export")
    parser.add_argument("--against", nargs="+", default=[],
                        help="other checkpoint files scored on the same draws (compared only)")
    parser.add_argument("--validation-of", default=None,
                        help="run folder whose config's validation set to draw (default: --run)")
    args = parser.parse_args(argv)
    source = Path(args.validation_of or args.run) / "config.json"
    config = reselect_config(load_config(str(source)).validation, args.relational_draws,
                             args.query_rows, args.synthetic_episodes)
    validator = Validator(config)  # built once: the candidates and --against share its draws
    scores = score_candidates(args.run, validator)
    against = score_files({path: path for path in args.against}, validator)
    groups = sorted({key for s in scores.values() for key in s["metrics"]
                     if key.endswith("_auc") or key in ("score", "synthetic_loss")})
    print("candidate  step   " + "  ".join(f"{g:>16}" for g in groups))
    for name, entry in {**scores, **against}.items():
        print(f"{name:<9}  {entry['step'] if entry['step'] is not None else '-':>5}  "
              + "  ".join(f"{entry['metrics'].get(g, float('nan')):>16.4f}" for g in groups))
    winner = pick(scores)
    print(f"picked: {winner} (step {scores[winner]['step']})")
    if args.export:
        reselection = {"config": dataclasses.asdict(config), "picked": winner,
                       "candidates": scores, "against": against}
        print(export_run(args.run, args.dest, winner, reselection=reselection))
    return 0


if __name__ == "__main__":
    sys.exit(main())
