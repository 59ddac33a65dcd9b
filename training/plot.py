"""Learning curve from a run's JSONL log: ``python -m training.plot runs/cpu``.

Top panel: training loss (per log window) against episodes seen, with curriculum phase
boundaries. Bottom panel: validation AUCs (synthetic, real single-table, relational, and
the selection score) against episodes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdbpfn.atomic import atomic_write

VALIDATION_SERIES = ("score", "synthetic_auc", "real_auc", "relational_auc")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl`` file, in order."""
    with Path(path).open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def plot_log(log_path: str | Path, png_path: str | Path) -> Path:
    """Draw the learning curve of ``log_path`` into ``png_path`` (PNG, overwritten)."""
    import matplotlib  # heavy, and only needed for pictures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    train_records = [r for r in records if r.get("kind") == "train"]
    val_records = [r for r in records if r.get("kind") == "validation"]
    figure, (loss_axis, val_axis) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    if train_records:
        loss_axis.plot([r["episodes"] for r in train_records],
                       [r["loss"] for r in train_records], lw=0.8, color="tab:blue")
        previous = None
        for record in train_records:
            if previous is not None and record["phase"] != previous:
                loss_axis.axvline(record["episodes"], color="grey", ls=":", lw=0.8)
                loss_axis.text(record["episodes"], loss_axis.get_ylim()[1], record["phase"],
                               fontsize=7, rotation=90, va="top")
            previous = record["phase"]
    loss_axis.set_ylabel("train loss (query CE)")
    loss_axis.grid(alpha=0.3)
    for name in VALIDATION_SERIES:
        points = [(r["episodes"], r["val"][name]) for r in val_records if name in r["val"]]
        if points:
            xs, ys = zip(*points, strict=True)
            val_axis.plot(xs, ys, marker="o", ms=3, label=name)
    val_axis.axhline(0.5, color="grey", lw=0.6)
    val_axis.set_xlabel("episodes seen")
    val_axis.set_ylabel("validation ROC-AUC")
    val_axis.grid(alpha=0.3)
    if val_records:
        val_axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    png_path = atomic_write(png_path, lambda stream: figure.savefig(stream, format="png", dpi=110))
    plt.close(figure)
    return png_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.plot",
                                     description="Plot a run's learning curve.")
    parser.add_argument("run", help="run folder (holding log.jsonl) or a log.jsonl file")
    parser.add_argument("-o", "--output", default=None, help="PNG path (default: <run>/curve.png)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    log_path = run / "log.jsonl" if run.is_dir() else run
    if not log_path.is_file():
        raise ValueError(f"no log at {log_path}; pass a run folder made by python -m training")
    output = Path(args.output) if args.output else log_path.with_name("curve.png")
    print(plot_log(log_path, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
