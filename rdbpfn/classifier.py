"""Scikit-learn in-context classifier on top of a trained :class:`~rdbpfn.model.RDBPFN`.

``fit`` stores the encoded context and runs it through the transformer once per ensemble
member (the context cache); ``predict_proba`` runs only the query rows, in chunks, against
the cached keys/values, so repeated predicts cost time linear in the number of rows.

How the ensemble and the limits work (all deterministic given ``random_state``):

- **Members** (``n_estimators``): member 0 uses the columns in their given order, the
  labels unchanged and (if it fits) the whole context, so ``n_estimators=1`` is exactly
  one forward pass of the model. Member m > 0 uses a random column order and shifts the
  class ids cyclically by m (for two classes: odd members flip the labels), which removes
  the model's bias towards a class id. Probabilities are averaged over members.
- **More than ``max_context`` context rows**: every member uses its own stratified random
  subsample of ``max_context`` rows (every class keeps at least one row).
- **More columns than the model's width** (``max_features``, default the checkpoint's
  ``ModelConfig.max_features``): every member sees a random subset of that many columns,
  chosen so that the columns are used as evenly as possible across members; use
  ``n_estimators >= n_features / max_features`` to see every column.
- **More classes than the model's output** (``ModelConfig.n_classes``, 2 for the shipped
  model): one-vs-rest; one binary task per class (batched in one forward pass), the
  positive-class probabilities are renormalised to sum to 1. With enough model outputs
  the classes are predicted natively.
- **Queries**: any number of rows, in chunks of ``query_batch_size`` rows.
- **Context cache memory**: when the caches of all members together would exceed
  ``max_cache_mb``, only the encoded context is kept and each ``predict_proba`` call
  recomputes the context pass once (results are identical, only slower).

Inputs: see :mod:`rdbpfn.encoding` for how numeric, boolean, categorical, string,
datetime and missing values (NaN, ``pd.NA``, ``None``) are encoded; ``+-inf`` are kept
and become the extreme ends of their column. Labels must not be missing or infinite.

Pickling (also ``copy.deepcopy``): a fitted classifier is self-contained and small. It
stores the model as its checkpoint-format ``{"config", "state_dict"}`` on the CPU (~1.5 MB
for the shipped weights, so the checkpoint file is not needed where it is loaded), the
encoded context once (``context_``, float32, only the rows some member uses) and, per
member, column and row indices into it. The per-member context tensors and context caches
(hundreds of MB) are not stored: the first ``predict_proba`` after loading rebuilds them
with the same code as ``fit``, so on the same machine the probabilities are bit-identical
to the original object's. The model is loaded on ``device``; if this machine lacks it
(e.g. ``"cuda"`` without a GPU) it is loaded on the CPU with a warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from tqdm.auto import tqdm

from rdbpfn.checkpoint import check_device, load_checkpoint
from rdbpfn.encoding import TableEncoder, as_table
from rdbpfn.model import RDBPFN, ContextCache, ModelConfig

__all__ = ["RDBPFNClassifier"]

DEFAULT_MAX_CONTEXT = 1024
DEFAULT_QUERY_BATCH_SIZE = 1024
DEFAULT_MAX_CACHE_MB = 2048
PIECES_PER_WORKER = 4
MIN_ROWS_PER_PIECE = 64
_BYTES_PER_MB = 2**20
_FLOAT32_BYTES = 4


@dataclass
class _Member:
    """One ensemble member: the rows and columns of ``context_`` it sees, its class shift.

    ``x_context``, ``y_context`` and ``cache`` are derived from those on the model's device;
    they are not pickled (see :meth:`__getstate__`) and are rebuilt lazily by
    :meth:`RDBPFNClassifier._prepare`.
    """

    columns: np.ndarray  # (C,) indices into the encoded features
    rows: np.ndarray | None  # (N,) sorted indices into the rows of context_; None = all
    shift: int  # cyclic class-id shift (binary: 1 = labels flipped)
    x_context: torch.Tensor | None = None  # (B, N, C) float32, B = 1 or n_classes (OvR)
    y_context: torch.Tensor | None = None  # (B, N) int64
    cache: ContextCache | None = None

    def __getstate__(self) -> dict:
        """Only the indices and the shift; the tensors are rebuilt from ``context_``."""
        return dict(vars(self), x_context=None, y_context=None, cache=None)


class RDBPFNClassifier(ClassifierMixin, BaseEstimator):
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

    def __init__(
        self,
        *,
        model_path: str | os.PathLike | None = None,
        device: str = "cpu",
        n_estimators: int = 4,
        max_context: int = DEFAULT_MAX_CONTEXT,
        max_features: int | None = None,
        query_batch_size: int = DEFAULT_QUERY_BATCH_SIZE,
        max_cache_mb: float = DEFAULT_MAX_CACHE_MB,
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool = False,
    ) -> None:
        self.model_path = model_path
        self.device = device
        self.n_estimators = n_estimators
        self.max_context = max_context
        self.max_features = max_features
        self.query_batch_size = query_batch_size
        self.max_cache_mb = max_cache_mb
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):  # noqa: ANN204 (sklearn's Tags type)
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    # ---- validation ---------------------------------------------------------------------
    def _check_params(self) -> None:
        positive = {
            "n_estimators": self.n_estimators,
            "max_context": self.max_context,
            "query_batch_size": self.query_batch_size,
        }
        if self.max_features is not None:
            positive["max_features"] = self.max_features
        for name, value in positive.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}; pass a positive integer.")
        if not isinstance(self.max_cache_mb, (int, float)) or self.max_cache_mb < 0:
            raise ValueError(f"max_cache_mb={self.max_cache_mb!r}; pass a number >= 0.")

    def _check_X(self, X: object, reset: bool) -> pd.DataFrame | np.ndarray:
        """Shape checks with clear messages, then sklearn's feature-name bookkeeping."""
        X = as_table(X)
        n_columns = X.shape[1]
        if not reset and n_columns != self.n_features_in_:
            raise ValueError(
                f"X has {n_columns} features, but RDBPFNClassifier is expecting "
                f"{self.n_features_in_} features as input. Pass the same columns as in fit, "
                "in the same order."
            )
        validate_data(self, X, reset=reset, skip_check_array=True)
        return X

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
        loaded = load_checkpoint(self.model_path, map_location=self.device)
        self.model_: RDBPFN = loaded.model
        self.checkpoint_path_ = loaded.path
        self.multiclass_ = "native" if n_classes <= loaded.config.n_classes else "one_vs_rest"
        self.encoder_ = TableEncoder().fit(table)
        encoded = self.encoder_.transform(table)  # (n, p) float32
        rng = _generator(self.random_state)
        width = min(encoded.shape[1], self.max_features or loaded.config.max_features)
        column_sets = _column_subsets(encoded.shape[1], width, self.n_estimators, rng)
        row_sets = [
            _stratified_subsample(y_codes, self.max_context, rng)
            if len(y_codes) > self.max_context else None
            for _ in column_sets
        ]
        # Keep the encoded context once, and only the rows some member uses.
        if any(rows is None for rows in row_sets):
            self.context_, self.context_labels_ = encoded, y_codes.astype(np.int64)
        else:
            kept = np.unique(np.concatenate(row_sets))
            self.context_, self.context_labels_ = encoded[kept], y_codes[kept].astype(np.int64)
            row_sets = [np.searchsorted(kept, rows) for rows in row_sets]
        shifts = n_classes if self.multiclass_ == "native" else 2
        self.members_ = [
            _Member(columns=columns, rows=rows, shift=index % shifts)
            for index, (columns, rows) in enumerate(zip(column_sets, row_sets, strict=True))
        ]
        self.cached_ = self._cache_bytes() <= self.max_cache_mb * _BYTES_PER_MB
        self._prepare()
        return self

    # ---- pickling ----------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """The model as ``{"config", "state_dict"}`` on the CPU; members without tensors."""
        state = dict(super().__getstate__())  # a copy: object.__getstate__ is self.__dict__
        model = state.get("model_")
        if isinstance(model, RDBPFN):
            state["model_"] = {
                "config": model.config.to_dict(),
                "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            }
        if "checkpoint_path_" in state:  # a str: a pickled PosixPath may not load on Windows
            state["checkpoint_path_"] = str(state["checkpoint_path_"])
        return state

    def __setstate__(self, state: dict) -> None:
        """Rebuild the model from its weights; the caches follow on the next predict."""
        state = dict(state)
        if isinstance(state.get("model_"), dict):
            state["model_"] = _model_from_weights(state["model_"], state["device"])
        if "checkpoint_path_" in state:
            state["checkpoint_path_"] = Path(state["checkpoint_path_"])
        super().__setstate__(state)

    # ---- per-member tensors and caches (rebuilt lazily after unpickling) ---------------
    def _device(self) -> torch.device:
        """Where the model lives (``device``, or the CPU if unpickled where it is absent)."""
        return next(self.model_.parameters()).device

    def _prepare(self) -> None:
        """Build what pickling dropped: every member's context tensors, then its cache.

        The caches are computed by the same code whether in ``fit`` or after loading, so
        the probabilities are bit-identical to those of the object that was pickled.
        """
        device = self._device()
        for member in self.members_:
            if member.x_context is None:
                member.x_context, member.y_context = self._member_context(member, device)
        if not self.cached_ or all(member.cache is not None for member in self.members_):
            return
        members, encode = self.members_, self.model_.encode_context
        if len(members) == 1:  # one big context pass: intra-op threads do it well
            members[0].cache = encode(members[0].x_context, members[0].y_context)
            return
        with _query_workers(device) as n_workers:  # members in single-threaded workers
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                caches = pool.map(lambda m: encode(m.x_context, m.y_context), members)
                for member, cache in zip(members, caches, strict=True):
                    member.cache = cache

    def _member_context(
        self, member: _Member, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> x_context (B, N, C) float32, y_context (B, N) int64, with shifted class ids."""
        rows = slice(None) if member.rows is None else member.rows
        x = self.context_[rows][:, member.columns]  # fancy indexing: a writable copy
        y = self.context_labels_[rows]
        n_classes = len(self.classes_)
        if self.multiclass_ == "native":
            targets = ((y + member.shift) % n_classes)[None]  # (1, N)
        else:  # (K, N): one binary task per class
            targets = ((y[None] == np.arange(n_classes)[:, None]) + member.shift) % 2
        x_context = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        batch = targets.shape[0]
        return (
            x_context.unsqueeze(0).expand(batch, -1, -1),  # (N, C) -> (B, N, C), no copy
            torch.from_numpy(targets.astype(np.int64)).to(device),
        )

    def _cache_bytes(self) -> int:
        """Size of all members' context caches (keys and values of every layer)."""
        config = self.model_.config
        batch = 1 if self.multiclass_ == "native" else len(self.classes_)
        total = 0
        for member in self.members_:
            n_context = len(self.context_) if member.rows is None else len(member.rows)
            n_keys = n_context + config.n_thinking_rows
            keys = batch * (len(member.columns) + 1) * n_keys * config.d_model
            total += 2 * config.n_layers * keys * _FLOAT32_BYTES
        return total

    # ---- predict -----------------------------------------------------------------------
    def predict_proba(self, X: object) -> np.ndarray:
        """(n, p) table -> (n, n_classes) probabilities, columns ordered as ``classes_``.

        On CPU with ``torch.get_num_threads() == W > 1`` the query rows are split into
        chunks that W Python threads run concurrently, each with single-threaded torch ops
        (torch's thread count is set to 1 for the duration of the call and restored):
        query rows are independent, and coarse-grained parallelism measured ~1.4x faster
        than intra-op threads on 2 cores. A row's probabilities do not depend on the other
        rows mathematically, but the float32 kernels round differently with the size and
        composition of a chunk (e.g. AVX-512 tail handling), so predicting a row alone or in
        another order can change its probabilities by a few float32 ulps; the same rows in
        the same order give the same bits.
        """
        check_is_fitted(self)
        table = self._check_X(X, reset=False)
        encoded = self.encoder_.transform(table)  # (Q, p) float32
        self._prepare()
        device = self._device()
        n_rows, n_classes = encoded.shape[0], len(self.classes_)
        proba = np.zeros((n_rows, n_classes), dtype=np.float64)
        with _query_workers(device) as n_workers:
            # Several pieces per worker balance the load when a core is busy elsewhere;
            # throughput per row is flat from ~64 to 1,000 rows per piece (measured).
            per_piece = max(MIN_ROWS_PER_PIECE, -(-n_rows // (n_workers * PIECES_PER_WORKER)))
            size = min(self.query_batch_size, per_piece)
            pieces = [(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]
            progress = None
            if self.verbose:
                progress = tqdm(total=len(self.members_) * len(pieces), desc="RDBPFN predict")
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                for member in self.members_:
                    cache = member.cache
                    if cache is None:
                        cache = self.model_.encode_context(member.x_context, member.y_context)
                    queries = torch.from_numpy(np.ascontiguousarray(encoded[:, member.columns]))
                    queries = queries.to(device)

                    def run(piece: tuple[int, int], cache=cache, queries=queries,
                            shift=member.shift) -> np.ndarray:
                        chunk = queries[piece[0] : piece[1]]
                        chunk = chunk.unsqueeze(0).expand(cache.batch_size, -1, -1)  # (B, q, C)
                        logits = self.model_.forward_queries(cache, chunk)  # (B, q, classes)
                        return self._member_proba(logits, shift)

                    results = pool.map(run, pieces) if n_workers > 1 else map(run, pieces)
                    for (start, stop), member_proba in zip(pieces, results, strict=True):
                        proba[start:stop] += member_proba
                        if progress is not None:
                            progress.update(1)
            if progress is not None:
                progress.close()
        return proba / len(self.members_)

    def _member_proba(self, logits: torch.Tensor, shift: int) -> np.ndarray:
        """Logits of one member -> (q, n_classes) probabilities in ``classes_`` order."""
        n_classes = len(self.classes_)
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


def _model_from_weights(weights: dict, device: str | torch.device) -> RDBPFN:
    """``{"config", "state_dict"}`` -> the model in eval mode, on ``device`` if this machine
    has it, else on the CPU with a warning (a pickle made on a GPU machine stays usable)."""
    try:
        target = check_device(device)
    except ValueError as error:
        warnings.warn(
            f"{error} This RDBPFNClassifier was pickled with device={device!r}; its model is "
            "loaded on the CPU and predicts there. Call set_params(device='cpu') to match.",
            UserWarning,
            stacklevel=3,
        )
        target = torch.device("cpu")
    with torch.device("meta"):  # no random init: faster, and the global RNG is untouched
        model = RDBPFN(ModelConfig(**weights["config"]))
    model.load_state_dict(weights["state_dict"], strict=True, assign=True)
    return model.to(target).eval()


@contextmanager
def _query_workers(device: str | torch.device) -> Iterator[int]:
    """Number of query worker threads; torch ops run single-threaded while it is open."""
    n_threads = torch.get_num_threads()
    if torch.device(device).type != "cpu" or n_threads == 1:
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield n_threads
    finally:
        torch.set_num_threads(n_threads)


def _generator(random_state: int | np.random.RandomState | None) -> np.random.Generator:
    """sklearn-style random_state -> numpy Generator (an int gives the same bytes)."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    return np.random.default_rng(check_random_state(random_state).randint(0, 2**31 - 1))


def _column_subsets(
    n_features: int, width: int, n_members: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Column indices per member: member 0 keeps the given order when all columns fit;
    otherwise each member takes the ``width`` least-used columns (random tie-break) in a
    random order, so columns are used as evenly as possible."""
    subsets = []
    uses = np.zeros(n_features, dtype=np.int64)
    for index in range(n_members):
        if width == n_features:
            chosen = np.arange(n_features) if index == 0 else rng.permutation(n_features)
        else:
            order = rng.permutation(n_features)
            chosen = order[np.argsort(uses[order], kind="stable")[:width]]
            chosen = rng.permutation(chosen)
        uses[chosen] += 1
        subsets.append(chosen)
    return subsets


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
