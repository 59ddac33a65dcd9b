"""Methods compared by the benchmark, behind one small interface.

A :class:`Method` is a name plus ``make(seed) -> estimator``; the estimator has sklearn's
``fit(X, y)`` and ``predict_proba(X)``, takes (n, p) float matrices as
:func:`rdbpfn.encoding.encode_frame` gives them (NaN for missing values, +-inf possible) and
0/1 labels. The harness times ``fit`` and ``predict_proba`` separately. RDB-PFN takes the
matrices as they are (the model maps +-inf to the ends of a column); every other method
first maps +-inf to NaN (:func:`finite_or_nan`), since scikit-learn, XGBoost and LightGBM
reject infinities or treat them as ordinary huge numbers.

Shipped methods (``METHODS``): ``rdbpfn`` (our checkpoint), ``rdbpfn-peer`` (published RDB-PFN
weights from a user-given path), ``logreg``, ``random-forest`` (500 trees), ``xgboost``
(library defaults), ``xgboost-paper`` (the paper's configuration: 5,000 trees, lr 0.01, depth
12, subsample and colsample 0.8), ``lightgbm`` (library defaults).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from rdbpfn.checkpoint import resolve_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.encoding import finite_or_nan

SKLEARN_SEED_LIMIT = 2**31 - 1
RANDOM_FOREST_TREES = 500
"""The paper's random forest (Appendix B.1): 500 trees instead of scikit-learn's 100."""
XGBOOST_PAPER_PARAMS = {"n_estimators": 5000, "learning_rate": 0.01, "max_depth": 12,
                        "subsample": 0.8, "colsample_bytree": 0.8}
"""The paper's XGBoost (Appendix B.1)."""
LOGREG_MAX_ITER = 2000


@dataclass(frozen=True)
class Method:
    """A named way to get an unfitted estimator for one draw: ``make(seed)``."""

    name: str
    make: Callable[[int], Any]
    description: str = ""


DEFAULT_THREADS = 1
"""Threads per method unless told otherwise: OpenMP libraries (XGBoost, LightGBM, torch)
slow down many-fold when their threads compete for busy cores, so parallelism comes from
``evaluate(workers=...)`` (one process per core) instead."""
RDBPFN_ESTIMATORS = 1
"""Ensemble members of RDBPFNClassifier in the benchmark: 1 = one forward pass per draw,
the paper's single-estimator protocol (raise it with ``rdbpfn(n_estimators=...)``)."""


def _threads(threads: int | None) -> int:
    if threads is None:
        return DEFAULT_THREADS
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}.")
    return threads


def with_finite_inputs(estimator: BaseEstimator) -> Pipeline:
    """``estimator`` behind a :func:`finite_or_nan` step: the input of every baseline.

    The fitted pipeline exposes the estimator's ``classes_``; ``pipeline[-1]`` is the
    estimator itself.
    """
    return make_pipeline(FunctionTransformer(finite_or_nan), estimator)


def logistic_regression() -> Method:
    """Median imputation + standard scaling + L2 logistic regression (C=1)."""

    def make(seed: int) -> Any:
        return make_pipeline(
            FunctionTransformer(finite_or_nan), SimpleImputer(strategy="median"),
            StandardScaler(),
            LogisticRegression(max_iter=LOGREG_MAX_ITER, random_state=seed % SKLEARN_SEED_LIMIT),
        )

    return Method("logreg", make, "median imputation, standard scaling, L2 logistic regression")


def random_forest(threads: int | None = None) -> Method:
    """scikit-learn random forest with 500 trees (NaN handled natively)."""

    def make(seed: int) -> Any:
        return with_finite_inputs(RandomForestClassifier(
            n_estimators=RANDOM_FOREST_TREES, n_jobs=_threads(threads),
            random_state=seed % SKLEARN_SEED_LIMIT))

    return Method("random-forest", make, f"{RANDOM_FOREST_TREES} trees")


def xgboost(threads: int | None = None, paper: bool = False) -> Method:
    """XGBoost with library defaults, or the paper's configuration when ``paper``."""
    from xgboost import XGBClassifier  # optional (the eval extras): only when asked for

    params = dict(XGBOOST_PAPER_PARAMS) if paper else {}

    def make(seed: int) -> Any:
        return with_finite_inputs(XGBClassifier(
            **params, n_jobs=_threads(threads), random_state=seed % SKLEARN_SEED_LIMIT,
            tree_method="hist"))

    if paper:
        return Method("xgboost-paper", make, "5,000 trees, lr 0.01, depth 12, subsample 0.8")
    return Method("xgboost", make, "library defaults")


def lightgbm(threads: int | None = None) -> Method:
    """LightGBM with library defaults (quiet)."""
    from lightgbm import LGBMClassifier  # optional (the eval extras): only when asked for

    def make(seed: int) -> Any:
        return with_finite_inputs(LGBMClassifier(
            n_jobs=_threads(threads), random_state=seed % SKLEARN_SEED_LIMIT, verbose=-1))

    return Method("lightgbm", make, "library defaults")


def rdbpfn(model_path: str | os.PathLike[str] | None = None, name: str = "rdbpfn",
           n_estimators: int = RDBPFN_ESTIMATORS, threads: int | None = None) -> Method:
    """RDBPFNClassifier on a checkpoint: ours by default (``rdbpfn.checkpoint.resolve_checkpoint``).

    Raises FileNotFoundError when the checkpoint does not exist. One classifier is reused
    across draws; every draw calls ``fit`` afresh on its context. Sets torch's thread count.
    """
    path = resolve_rdbpfn_checkpoint(model_path)
    shared: dict[str, Any] = {}

    def make(seed: int) -> Any:
        if "model" not in shared:
            torch.set_num_threads(_threads(threads))
            shared["model"] = RDBPFNClassifier(model_path=str(path), n_estimators=n_estimators)
        model = shared["model"]
        if "random_state" in model.get_params():
            model.set_params(random_state=seed % SKLEARN_SEED_LIMIT)
        return model

    return Method(name, make, f"checkpoint {path}, {n_estimators} estimator(s)")


def resolve_rdbpfn_checkpoint(model_path: str | os.PathLike[str] | None = None) -> Path:
    """Path of the checkpoint to evaluate; FileNotFoundError with a hint if it is missing."""
    if model_path is not None:
        path = Path(model_path)
    else:
        path = Path(resolve_checkpoint(None))
    if not path.is_file():
        raise FileNotFoundError(
            f"no RDB-PFN checkpoint at {path}; train one (python -m training) or pass "
            "--checkpoint PATH."
        )
    return path


METHODS = ("rdbpfn", "rdbpfn-peer", "logreg", "random-forest", "xgboost", "xgboost-paper",
           "lightgbm")
"""All method names; ``rdbpfn-peer`` needs ``peer_checkpoint``."""
DEFAULT_METHODS = ("rdbpfn", "rdbpfn-peer", "logreg", "random-forest", "xgboost",
                   "xgboost-paper", "lightgbm")
"""What the full protocol of ``python -m eval`` runs unless ``--methods`` is given
(``rdbpfn-peer`` only with ``--peer-checkpoint``). Measured on 2 cores: 631 s for the
protocol without xgboost-paper, 558 s for xgboost-paper alone."""
FAST_METHODS = tuple(name for name in DEFAULT_METHODS if name != "xgboost-paper")
"""``--quick`` and the single-table suite: all but xgboost-paper, whose 5,000 depth-12 trees
cost 2-45 s per draw (k = 64 to 1,024), so that those runs finish in minutes."""


def estimators_arg(text: str) -> int:
    """argparse ``type`` of ``--estimators`` (both benchmark CLIs): an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_methods(
    names: Iterable[str] = METHODS,
    checkpoint: str | os.PathLike[str] | None = None,
    peer_checkpoint: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    estimators: int = RDBPFN_ESTIMATORS,
) -> tuple[list[Method], list[str]]:
    """Methods by name, plus notes on the ones skipped (missing checkpoint, no peer path).

    ``rdbpfn`` is skipped with a note when no checkpoint exists; ``rdbpfn-peer`` is skipped
    silently unless ``peer_checkpoint`` is given (then a missing file raises). Both RDB-PFN
    methods use ``estimators`` ensemble members; with more than one their names get a
    ``-e<estimators>`` suffix, so runs with different ensembles merge side by side.
    """
    if isinstance(estimators, bool) or not isinstance(estimators, int) or estimators < 1:
        raise ValueError(f"estimators must be an integer >= 1, got {estimators!r}.")
    suffix = "" if estimators == 1 else f"-e{estimators}"
    methods, notes = [], []
    for name in names:
        if name == "rdbpfn":
            try:
                methods.append(rdbpfn(checkpoint, name=name + suffix, n_estimators=estimators,
                                      threads=threads))
            except FileNotFoundError as error:
                notes.append(f"RDBPFN skipped: {error}")
        elif name == "rdbpfn-peer":
            if peer_checkpoint is not None:
                methods.append(rdbpfn(peer_checkpoint, name=name + suffix,
                                      n_estimators=estimators, threads=threads))
        elif name == "logreg":
            methods.append(logistic_regression())
        elif name == "random-forest":
            methods.append(random_forest(threads))
        elif name == "xgboost":
            methods.append(xgboost(threads))
        elif name == "xgboost-paper":
            methods.append(xgboost(threads, paper=True))
        elif name == "lightgbm":
            methods.append(lightgbm(threads))
        else:
            raise ValueError(f"Unknown method {name!r}; choose from {METHODS}.")
    return methods, notes
