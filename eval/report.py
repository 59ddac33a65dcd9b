"""Benchmark reports: CSV + JSON results, a markdown table and PNG plots.

:func:`write_report` writes into one directory:

- ``draws.csv`` -- one row per (task, method, k, seed) from :func:`eval.harness.evaluate`;
- ``summary.csv`` and ``results.json`` -- ROC-AUC mean/std per (task, method, k) with skip
  counts and timings (the JSON also holds run metadata and notes);
- ``results.md`` -- the markdown table printed by ``python -m eval``;
- ``roc_auc_vs_k.png`` -- ROC-AUC against k, one panel per task, one line per method;
- ``efficiency.png`` -- mean ROC-AUC against mean time per draw (fit + predict), log scale:
  the accuracy / inference-time frontier.

Every file is written with :func:`rdbpfn.atomic.atomic_write` (complete or absent).

``python -m eval.report DIR [DIR ...] --out OUT`` merges the ``draws.csv`` of earlier runs
(e.g. the default methods and a later ``--methods rdbpfn-peer`` run on the same protocol)
into one report; a (task, method, k, seed) present in two runs is an error, not a silent pick.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval.harness import summarize
from rdbpfn.atomic import atomic_write, atomic_write_text

FIGURE_PANEL_INCHES = 4.0
PANELS_PER_ROW = 3


def _cell(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.3f} ± {std:.3f}" if np.isfinite(std) else f"{mean:.3f}"


def _markdown(frame: pd.DataFrame) -> str:
    """DataFrame -> GitHub markdown table (no tabulate dependency)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])


def _label(summary: pd.DataFrame) -> pd.Series:
    if "database" in summary.columns:
        return summary["database"].astype(str) + "/" + summary["task"].astype(str)
    return summary["task"].astype(str)


def markdown_table(summary: pd.DataFrame, key: str = "k", mean_per_key: bool = True) -> str:
    """Markdown: one row per (task, ``key``), one column per method, "mean ± std" ROC-AUC,
    a "mean over tasks" row per ``key`` value (``mean_per_key``; else one row over all cells)
    counting the tasks where every method has a result, a skipped-draws column and a table
    of mean seconds per draw."""
    summary = summary.assign(label=_label(summary))
    methods = list(dict.fromkeys(summary["method"]))
    rows = []
    for (label, value), group in summary.groupby(["label", key], sort=False):
        by_method = group.set_index("method")
        row: dict[str, Any] = {"task": label, key: value}
        for method in methods:
            if method in by_method.index:
                entry = by_method.loc[method]
                row[method] = _cell(entry["roc_auc_mean"], entry["roc_auc_std"])
            else:
                row[method] = "-"
        first = group.iloc[0]
        skipped = [f"{int(first[column])} {name}" for column, name in
                   (("n_one_class", "one-class"), ("n_k_exceeds_train", "k>train"))
                   if column in group.columns and first[column]]
        row["skipped draws"] = ", ".join(skipped) or "0"
        rows.append(row)
    table = pd.DataFrame(rows)
    if summary["label"].nunique() > 1:
        means = []
        groups = (summary.groupby(key, sort=True) if mean_per_key
                  else [("all", summary)])
        for value, group in groups:
            wide = group.pivot_table(index=["label", key], columns="method",
                                     values="roc_auc_mean")
            wide = wide.dropna()
            if wide.empty:
                continue
            row = {"task": f"**mean over {len(wide)} tasks**", key: value}
            row.update({m: f"{wide[m].mean():.3f}" if m in wide else "-" for m in methods})
            row["skipped draws"] = ""
            means.append(row)
        table = pd.concat([table, pd.DataFrame(means)], ignore_index=True)
    timing = summary.groupby("method", sort=False)[["fit_s", "predict_s"]].mean()
    timing = timing.reindex(methods).reset_index()
    timing["fit_s"] = timing["fit_s"].map(lambda v: f"{v:.3f}")
    timing["predict_s"] = timing["predict_s"].map(lambda v: f"{v:.3f}")
    return (f"ROC-AUC, mean ± std over seeds\n\n{_markdown(table)}\n\n"
            f"Mean seconds per draw\n\n{_markdown(timing)}\n")


def plot_roc_auc_vs_k(summary: pd.DataFrame, path: str | os.PathLike[str],
                      key: str = "k") -> Path:
    """PNG: one panel per task, ROC-AUC mean (line) +- std (band) against ``key``."""
    import matplotlib  # heavy: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    summary = summary.assign(label=_label(summary))
    labels = list(dict.fromkeys(summary["label"]))
    columns = min(PANELS_PER_ROW, len(labels))
    rows = math.ceil(len(labels) / columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False,
                                figsize=(FIGURE_PANEL_INCHES * columns,
                                         FIGURE_PANEL_INCHES * 0.8 * rows))
    for axis, label in zip(axes.flat, labels, strict=False):
        group = summary[summary["label"] == label]
        for method, lines in group.groupby("method", sort=False):
            lines = lines.sort_values(key)
            axis.plot(lines[key], lines["roc_auc_mean"], marker="o", label=method)
            low = lines["roc_auc_mean"] - lines["roc_auc_std"].fillna(0)
            high = lines["roc_auc_mean"] + lines["roc_auc_std"].fillna(0)
            axis.fill_between(lines[key], low, high, alpha=0.15)
        axis.set_xscale("log", base=2)
        ticks = sorted(group[key].unique())
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(label, fontsize=10)
        axis.set_xlabel("context size k")
        axis.set_ylabel("ROC-AUC")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(labels):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda stream: figure.savefig(stream, format="png", dpi=120))
    plt.close(figure)
    return Path(path)


def efficiency_points(summary: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean ROC-AUC and mean seconds per draw over the cells all methods share."""
    cells = summary.dropna(subset=["roc_auc_mean"]).assign(label=_label(summary))
    index = [c for c in ("label", "k") if c in cells.columns]
    wide = cells.pivot_table(index=index, columns="method", values="roc_auc_mean").dropna()
    shared = cells.set_index(index).index.isin(wide.index)
    cells = cells[shared]
    points = cells.groupby("method", sort=False).agg(
        roc_auc=("roc_auc_mean", "mean"), fit_s=("fit_s", "mean"), predict_s=("predict_s", "mean"))
    points["seconds"] = points["fit_s"] + points["predict_s"]
    return points.reset_index()


def plot_efficiency(summary: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """PNG: mean ROC-AUC against mean fit + predict seconds per draw (log x), per method."""
    import matplotlib  # heavy: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = efficiency_points(summary)
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for point in points.itertuples():
        axis.scatter(point.seconds, point.roc_auc, s=40)
        axis.annotate(point.method, (point.seconds, point.roc_auc), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("seconds per draw (fit + predict)")
    axis.set_ylabel("mean ROC-AUC")
    axis.set_title("accuracy vs inference time")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda stream: figure.savefig(stream, format="png", dpi=120))
    plt.close(figure)
    return Path(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(results: pd.DataFrame, out_dir: str | os.PathLike[str],
                 meta: dict[str, Any] | None = None, plot_k: bool = True) -> str:
    """Write CSV/JSON/markdown/PNG files into ``out_dir``; returns the markdown text.

    ``results`` is :func:`eval.harness.evaluate`'s output (or any frame with the same
    columns); ``meta`` goes into ``results.json``; ``plot_k=False`` skips the ROC-AUC vs k
    plot (single-table runs have one k per dataset).
    """
    out = Path(out_dir)
    summary = summarize(results)
    atomic_write(out / "draws.csv", lambda stream: results.to_csv(stream, index=False))
    atomic_write(out / "summary.csv", lambda stream: summary.to_csv(stream, index=False))
    text = markdown_table(summary, mean_per_key=plot_k)
    notes = list((meta or {}).get("notes", []))
    if notes:
        text += "\nNotes\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    atomic_write_text(out / "results.md", text)
    records = [{k: _jsonable(v) for k, v in row.items()} for row in summary.to_dict("records")]
    payload = {"meta": meta or {}, "summary": records}
    atomic_write_text(out / "results.json", json.dumps(payload, indent=1, default=str))
    if plot_k:
        plot_roc_auc_vs_k(summary, out / "roc_auc_vs_k.png")
    plot_efficiency(summary, out / "efficiency.png")
    return text


DRAW_KEY = ["database", "task", "method", "k", "seed"]


def merge_runs(run_dirs: Sequence[str | os.PathLike[str]]) -> tuple[pd.DataFrame, dict]:
    """Concatenate the ``draws.csv`` of several report directories; meta lists the sources.

    Raises ``ValueError`` when a directory has no ``draws.csv`` or when two runs hold the
    same draw (task, method, k, seed).
    """
    frames, sources = [], []
    for run_dir in run_dirs:
        path = Path(run_dir) / "draws.csv"
        if not path.is_file():
            raise ValueError(f"{path} does not exist; pass directories written by python -m eval")
        frames.append(pd.read_csv(path))
        meta_path = Path(run_dir) / "results.json"
        meta = json.loads(meta_path.read_text()).get("meta", {}) if meta_path.is_file() else {}
        sources.append({"dir": str(run_dir), "command": meta.get("command"),
                        "seconds": meta.get("seconds"), "notes": meta.get("notes", [])})
    results = pd.concat(frames, ignore_index=True)
    key = [c for c in DRAW_KEY if c in results.columns]
    duplicated = results.duplicated(key, keep=False)
    if duplicated.any():
        first = results.loc[duplicated, key].iloc[0].to_dict()
        raise ValueError(f"draw {first} appears in more than one run; merge runs that cover "
                         "different methods, tasks, k or seeds")
    notes = [note for source in sources for note in source["notes"]]
    return results, {"merged_from": sources, "notes": list(dict.fromkeys(notes))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.report",
                                     description="Merge benchmark runs into one report.")
    parser.add_argument("runs", nargs="+", help="directories written by python -m eval")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    results, meta = merge_runs(args.runs)
    print(write_report(results, args.out, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
