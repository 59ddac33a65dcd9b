"""Scikit-learn in-context classifier on top of a trained :class:`~rdbpfn.model.RDBPFN`.

``fit`` stores the context and caches it once per ensemble member; ``predict_proba`` is one
pass over the query rows (see :mod:`rdbpfn.in_context` for the ensemble, the limits on rows
and columns, memory and pickling, shared with :class:`~rdbpfn.regressor.RDBPFNRegressor`).

What is particular to classes:

- **Members**: member m > 0 shifts the class ids cyclically by m (for two classes: odd
  members flip the labels), which removes the model's bias towards a class id.
- **More than ``max_context`` context rows**: each member's subsample is stratified (every
  class keeps at least one row).
- **More classes than the model's output** (``ModelConfig.n_classes``, 2 for the shipped
  model): one-vs-rest; one binary task per class (batched in one forward pass), the
  positive-class probabilities are renormalised to sum to 1. With enough model outputs
  the classes are predicted natively.

Labels must not be missing or infinite.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from rdbpfn.in_context import InContextEstimator, Member

__all__ = ["RDBPFNClassifier"]


class RDBPFNClassifier(ClassifierMixin, InContextEstimator):
    """In-context classifier: ``fit`` stores the context, ``predict_proba`` is one pass.

    Parameters
    ----------
    model_path : path to a checkpoint (ours or the published RDB-PFN format). ``None``
        uses ``$RDBPFN_CHECKPOINT``, then the shipped ``checkpoints/rdbpfn.pt``.
    device : torch device for the model, e.g. ``"cpu"`` or ``"cuda"``.
    n_estimators : ensemble members (see the module docstring); 1 = a single forward pass.
    max_context : context rows per member; larger contexts are subsampled per member.
    max_features : columns per member; ``None`` = the checkpoint's ``max_features``.
    query_batch_size : query rows per forward pass (bounds memory).
    max_cache_mb : keep the per-member context caches only while they fit in this size.
    random_state : seed for column orders and subsamples (int, RandomState or None).
    verbose : show a progress bar while predicting.

    Attributes
    ----------
    classes_ : (K,) the labels, sorted; probability columns follow this order.
    model_ : the :class:`~rdbpfn.model.RDBPFN`, in eval mode.
    checkpoint_path_ : where ``fit`` loaded the weights from (informational after pickling).
    encoder_ : the :class:`~rdbpfn.encoding.TableEncoder` fitted on the context.
    context_ : (m, p) float32 encoded context rows: all n rows, or (when members subsample
        ``max_context`` rows) the m <= n rows that some member uses.
    context_labels_ : (m,) int64 class index (into ``classes_``) of every ``context_`` row.
    members_ : the ensemble members (column and row indices, class shift).
    multiclass_ : ``"native"`` or ``"one_vs_rest"``.
    cached_ : whether the per-member context caches are kept (see ``max_cache_mb``).
    """

    @staticmethod
    def _check_y(y: object, n_rows: int) -> np.ndarray:
        if y is None:
            raise ValueError(
                "RDBPFNClassifier requires y to be passed, but the target y is None; "
                "pass one label per row of X."
            )
        y = column_or_1d(np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y),
                         warn=True)
        if len(y) != n_rows:
            raise ValueError(
                f"X has {n_rows} rows but y has {len(y)} labels; pass one label per row."
            )
        if y.dtype.kind in "fc" and not np.isfinite(y).all():
            raise ValueError(
                "Input y contains NaN or infinity; drop the rows with missing labels "
                "(e.g. mask = ~np.isnan(y)) before fit."
            )
        if y.dtype == object and any(v is None or v is pd.NA or v != v for v in y):
            raise ValueError(
                "Input y contains missing labels (None/NaN/pd.NA); drop those rows before fit."
            )
        check_classification_targets(y)
        return y

    # ---- fit ---------------------------------------------------------------------------
    def fit(self, X: object, y: object) -> RDBPFNClassifier:
        """Store the context (X, y) and compute its cache once per ensemble member."""
        self._check_params()
        table = self._check_X(X, reset=True)
        labels = self._check_y(y, table.shape[0])
        try:
            self.classes_, y_codes = np.unique(labels, return_inverse=True)
        except TypeError as error:
            raise ValueError(
                f"y mixes label types that cannot be sorted ({error}); use labels of one type."
            ) from error
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"y contains only one class ({self.classes_[0]!r}); the classifier needs at "
                "least two classes in the context. Pass rows of every class."
            )
        if self.max_context < n_classes:
            raise ValueError(
                f"max_context={self.max_context} is smaller than the {n_classes} classes; "
                "raise max_context so that every class fits in the context."
            )
        loaded = self._load("classification")
        self.multiclass_ = "native" if n_classes <= loaded.config.n_classes else "one_vs_rest"
        y_codes = y_codes.astype(np.int64)
        self._fit_members(
            self._encode_context(table), y_codes, loaded.config,
            lambda rng: _stratified_subsample(y_codes, self.max_context, rng),
            shifts=n_classes if self.multiclass_ == "native" else 2,
        )
        return self

    def _member_targets(self, member: Member, targets: np.ndarray) -> np.ndarray:
        """Class ids shifted by the member's shift: (1, N), or (K, N) one-vs-rest tasks."""
        n_classes = len(self.classes_)
        if self.multiclass_ == "native":
            return ((targets + member.shift) % n_classes)[None].astype(np.int64)
        return (((targets[None] == np.arange(n_classes)[:, None]) + member.shift) % 2
                ).astype(np.int64)

    def _batch_size(self) -> int:
        return 1 if self.multiclass_ == "native" else len(self.classes_)

    # ---- predict -----------------------------------------------------------------------
    def predict_proba(self, X: object) -> np.ndarray:
        """(n, p) table -> (n, n_classes) probabilities, columns ordered as ``classes_``.

        Chunked and threaded as :meth:`rdbpfn.in_context.InContextEstimator._accumulate`
        says (the same rows in the same order give the same bits).
        """
        check_is_fitted(self)
        return self._accumulate(self._encode_queries(X), len(self.classes_),
                                self._member_proba)

    def _member_proba(self, logits: torch.Tensor, member: Member) -> np.ndarray:
        """Logits of one member -> (q, n_classes) probabilities in ``classes_`` order."""
        n_classes, shift = len(self.classes_), member.shift
        logits = logits.double().cpu()
        if self.multiclass_ == "native":
            shifted = logits[0, :, :n_classes].softmax(dim=-1).numpy()  # (q, K) shifted ids
            return shifted[:, (np.arange(n_classes) + shift) % n_classes]
        positive = logits[:, :, :2].softmax(dim=-1)[:, :, (1 + shift) % 2]  # (K, q)
        scores = positive.T.numpy()  # (q, K)
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, X: object) -> np.ndarray:
        """(n, p) table -> (n,) labels from ``classes_``."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _stratified_subsample(
    y_codes: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted row indices: ``size`` rows, class shares kept, every class >= 1 row."""
    classes, counts = np.unique(y_codes, return_counts=True)
    quota = np.maximum(1, np.floor(counts * size / counts.sum()).astype(np.int64))
    while quota.sum() > size:  # the minimum of 1 per class can overshoot
        quota[np.argmax(quota)] -= 1
    remainder = counts * size / counts.sum() - quota
    for k in np.argsort(-remainder, kind="stable")[: size - quota.sum()]:
        quota[k] += 1
    quota = np.minimum(quota, counts)
    picked = [
        rng.choice(np.flatnonzero(y_codes == c), size=q, replace=False)
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked))
