"""Export a run's best weights as the shipped checkpoint: ``python -m training.export``.

Reads ``<run>/best.pt`` (the averaged schedule-free weights that scored best on validation,
saved by the loop) and ``<run>/state.pt`` (the whole run's counters), and writes
``checkpoints/<name>.pt`` with :func:`rdbpfn.checkpoint.save_checkpoint`. The sidecar meta says
what the weights are and how they were made: train config and curriculum, steps and
episodes per stage at the selected step, the budget the whole run spent (wall time,
sessions, machines), the git commits of the code that trained it, the validation scores
and the metric that picked them.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdbpfn.checkpoint import (
    DEFAULT_CHECKPOINT,
    REGRESSION_CHECKPOINT,
    load_checkpoint,
    save_checkpoint,
)
from training.loop import BEST_FILE, LAST_FILE
from training.state import STATE_FILE, Counters, load_train_state

WEIGHT_FILES = {"best": BEST_FILE, "last": LAST_FILE}


def export_meta(weights_meta: dict[str, Any], counters: Counters) -> dict[str, Any]:
    """The shipped sidecar meta from the weights' own meta and the run's counters."""
    sessions = counters.sessions
    commits = sorted({s["commit"] for s in sessions if s.get("commit")})
    devices = sorted({s["machine"]["device"] for s in sessions if "machine" in s})
    train_config = weights_meta["train_config"]
    return {
        "source": "python -m training",
        "run": weights_meta["run"],
        "train_config": train_config,
        "curriculum": weights_meta["curriculum"],
        "steps": weights_meta["step"],
        "stage": weights_meta["stage"],
        "episodes_per_stage": weights_meta["episodes_per_stage"],
        "episodes_per_phase": weights_meta["episodes_per_phase"],
        "wall_seconds": weights_meta["wall_seconds"],
        "validation": weights_meta["validation"],
        "selected_by": weights_meta["selected_by"],
        "selected_score": weights_meta["validation"].get(weights_meta["selected_by"]),
        "machine": weights_meta["machine"],
        "code": weights_meta["code"],
        "budget": {
            "wall_seconds_total": round(counters.wall_seconds, 1),
            "steps_total": counters.step,
            "episodes_per_stage_total": dict(counters.episodes_per_stage),
            "curriculum_finished": counters.finished,
            "devices": devices,
            "sessions": len(sessions),
            "code_commits": commits,
        },
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def export_run(
    run_dir: str | Path, destination: str | Path | None = None, which: str = "best",
    reselection: dict[str, Any] | None = None,
) -> Path:
    """Write the run's ``which`` ("best" or "last") weights to ``destination`` (+ sidecar).

    ``destination`` defaults to the shipped model of the weights' task:
    ``rdbpfn.checkpoint.DEFAULT_CHECKPOINT`` or ``REGRESSION_CHECKPOINT``.
    ``reselection`` (from ``python -m training.select``) goes into the meta as is: the
    larger validation that picked ``which`` among the run's saved weights.
    """
    run_dir = Path(run_dir)
    if which not in WEIGHT_FILES:
        raise ValueError(f"which must be one of {sorted(WEIGHT_FILES)}, got {which!r}")
    weights_path = run_dir / WEIGHT_FILES[which]
    if not weights_path.is_file():
        raise ValueError(
            f"no {weights_path}: the run has not validated yet (validation writes it); "
            "train longer or lower validation.every_steps"
        )
    loaded = load_checkpoint(weights_path)
    counters = Counters.from_dict(load_train_state(run_dir / STATE_FILE)["counters"])
    meta = export_meta(loaded.meta, counters)
    meta["exported_weights"] = which
    if reselection is not None:
        meta["reselection"] = reselection
    default = REGRESSION_CHECKPOINT if loaded.config.task == "regression" else DEFAULT_CHECKPOINT
    return save_checkpoint(destination or default, loaded.model, meta)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export",
        description="Export a training run's best weights into checkpoints/.",
    )
    parser.add_argument("--run", required=True, help="run folder written by python -m training")
    parser.add_argument("--dest", default=None,
                        help="checkpoint path (default: checkpoints/rdbpfn.pt, the shipped one)")
    parser.add_argument("--which", choices=sorted(WEIGHT_FILES), default="best",
                        help="best validated weights (default) or the last validated ones")
    args = parser.parse_args(argv)
    print(export_run(args.run, args.dest, args.which))
    return 0


if __name__ == "__main__":
    sys.exit(main())
