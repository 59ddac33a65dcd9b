"""What the in-context estimators share: the ensemble, the context cache, chunked queries,
pickling.

:class:`InContextEstimator` is the base of :class:`~rdbpfn.classifier.RDBPFNClassifier` and
:class:`~rdbpfn.regressor.RDBPFNRegressor`. ``fit`` stores the encoded context once and runs
it through the transformer once per ensemble member (the context cache); predicting runs only
the query rows, in chunks, against the cached keys/values, so repeated predicts cost time
linear in the number of rows. A subclass says how its targets enter a member's context
(:meth:`InContextEstimator._member_targets`) and how a member's logits become its output
(the ``convert`` of :meth:`InContextEstimator._accumulate`).

- **Members** (``n_estimators``): member 0 uses the columns in their given order and (if it
  fits) the whole context, so ``n_estimators=1`` is exactly one forward pass of the model.
  Member m > 0 uses a random column order and its own augmentation of the targets (a class
  shift, a sign flip). Outputs are averaged over members.
- **More than ``max_context`` context rows**: every member uses its own random subsample of
  ``max_context`` rows (stratified by class for a classifier).
- **More columns than the model's width** (``max_features``, default the checkpoint's
  ``ModelConfig.max_features``): every member sees a random subset of that many columns,
  chosen so that the columns are used as evenly as possible across members; use
  ``n_estimators >= n_features / max_features`` to see every column.
- **Queries**: any number of rows, in chunks of ``query_batch_size`` rows.
- **Context cache memory**: when the caches of all members together would exceed
  ``max_cache_mb``, only the encoded context is kept and each predict call recomputes the
  context pass once (results are identical, only slower).

Inputs: see :mod:`rdbpfn.encoding` for how numeric, boolean, categorical, string, datetime
and missing values (NaN, ``pd.NA``, ``None``) are encoded; ``+-inf`` are kept and become the
extreme ends of their column.

Pickling (also ``copy.deepcopy``): a fitted estimator is self-contained and small. It stores
the model as its checkpoint-format ``{"config", "state_dict"}`` on the CPU (~1.5 MB for the
shipped weights, so the checkpoint file is not needed where it is loaded), the encoded
context once (``context_``, float32, only the rows some member uses) and, per member, column
and row indices into it. The per-member context tensors and context caches (hundreds of MB)
are not stored: the first predict after loading rebuilds them with the same code as ``fit``,
so on the same machine the outputs are bit-identical to the original object's. The model is
loaded on ``device``; if this machine lacks it (e.g. ``"cuda"`` without a GPU) it is loaded
on the CPU with a warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from rdbpfn.checkpoint import LoadedCheckpoint, check_device, load_checkpoint
from rdbpfn.encoding import TableEncoder, as_table
from rdbpfn.model import RDBPFN, ContextCache, ModelConfig

__all__ = ["DEFAULT_MAX_CONTEXT", "InContextEstimator", "Member"]

DEFAULT_MAX_CONTEXT = 1024
DEFAULT_QUERY_BATCH_SIZE = 1024
DEFAULT_MAX_CACHE_MB = 2048
PIECES_PER_WORKER = 4
MIN_ROWS_PER_PIECE = 64
_BYTES_PER_MB = 2**20
_FLOAT32_BYTES = 4


@dataclass
class Member:
    """One ensemble member: the rows and columns of ``context_`` it sees, its augmentation.

    ``x_context``, ``y_context`` and ``cache`` are derived from those on the model's device;
    they are not pickled (see :meth:`__getstate__`) and are rebuilt lazily by
    :meth:`InContextEstimator._prepare`.
    """

    columns: np.ndarray  # (C,) indices into the encoded features
    rows: np.ndarray | None  # (N,) sorted indices into the rows of context_; None = all
    shift: int  # the member's target augmentation (class-id shift; sign flip when odd)
    x_context: torch.Tensor | None = None  # (B, N, C) float32
    y_context: torch.Tensor | None = None  # (B, N) int64 labels or float32 targets
    cache: ContextCache | None = None

    def __getstate__(self) -> dict:
        """Only the indices and the shift; the tensors are rebuilt from ``context_``."""
        return dict(vars(self), x_context=None, y_context=None, cache=None)


class InContextEstimator(BaseEstimator):
    """The shared machinery (see the module docstring); subclasses add the targets.

    Subclasses set ``context_``, ``context_labels_`` (per-row targets, the form
    :meth:`_member_targets` reads) and call :meth:`_fit_members`; they implement
    :meth:`_member_targets` and :meth:`_batch_size`.
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
                f"X has {n_columns} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input. Pass the same columns as in fit, "
                "in the same order."
            )
        validate_data(self, X, reset=reset, skip_check_array=True)
        return X

    # ---- fit ---------------------------------------------------------------------------
    def _load(self, task: str) -> LoadedCheckpoint:
        """The checkpoint, which must be a ``task`` model ("classification"/"regression")."""
        loaded = load_checkpoint(self.model_path, map_location=self.device, task=task)
        if loaded.config.task != task:
            raise ValueError(
                f"{type(self).__name__} needs a {task} checkpoint, but {loaded.path} holds a "
                f"{loaded.config.task} model (ModelConfig.task); pass model_path= of a "
                f"{task} checkpoint."
            )
        self.model_: RDBPFN = loaded.model
        self.checkpoint_path_ = loaded.path
        return loaded

    def _encode_context(self, table: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fit ``encoder_`` on the context table and encode it: (n, p) float32."""
        self.encoder_ = TableEncoder().fit(table)
        return self.encoder_.transform(table)

    def _encode_queries(self, X: object) -> np.ndarray:
        """Check a query table against the fitted columns and encode it: (q, p) float32."""
        check_is_fitted(self)
        return self.encoder_.transform(self._check_X(X, reset=False))

    def _fit_members(
        self, encoded: np.ndarray, targets: np.ndarray, config: ModelConfig,
        subsample: Callable[[np.random.Generator], np.ndarray], shifts: int,
    ) -> None:
        """Draw every member's columns and rows of the encoded context (``subsample`` when
        it exceeds ``max_context``), keep the rows some member uses, build the caches.
        Member m gets augmentation ``m % shifts``."""
        rng = _generator(self.random_state)
        width = min(encoded.shape[1], self.max_features or config.max_features)
        column_sets = _column_subsets(encoded.shape[1], width, self.n_estimators, rng)
        row_sets = [subsample(rng) if len(targets) > self.max_context else None
                    for _ in column_sets]
        # Keep the encoded context once, and only the rows some member uses.
        if any(rows is None for rows in row_sets):
            self.context_, self.context_labels_ = encoded, targets
        else:
            kept = np.unique(np.concatenate(row_sets))
            self.context_, self.context_labels_ = encoded[kept], targets[kept]
            row_sets = [np.searchsorted(kept, rows) for rows in row_sets]
        self.members_ = [
            Member(columns=columns, rows=rows, shift=index % shifts)
            for index, (columns, rows) in enumerate(zip(column_sets, row_sets, strict=True))
        ]
        self.cached_ = self._cache_bytes() <= self.max_cache_mb * _BYTES_PER_MB
        self._prepare()

    def _member_targets(self, member: Member, targets: np.ndarray) -> np.ndarray:
        """(N,) targets of the member's context rows -> (B, N) int64 or float32."""
        raise NotImplementedError

    def _batch_size(self) -> int:
        """Episodes per member forward pass (one-vs-rest classifiers batch their tasks)."""
        raise NotImplementedError

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
            state["model_"] = _model_from_weights(state["model_"], state["device"],
                                                  type(self).__name__)
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
        the outputs are bit-identical to those of the object that was pickled.
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
        self, member: Member, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> x_context (B, N, C) float32, y_context (B, N) from :meth:`_member_targets`."""
        rows = slice(None) if member.rows is None else member.rows
        x = self.context_[rows][:, member.columns]  # fancy indexing: a writable copy
        targets = self._member_targets(member, self.context_labels_[rows])
        x_context = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        return (
            x_context.unsqueeze(0).expand(targets.shape[0], -1, -1),  # (N, C) -> (B, N, C)
            torch.from_numpy(np.ascontiguousarray(targets)).to(device),
        )

    def _cache_bytes(self) -> int:
        """Size of all members' context caches (keys and values of every layer)."""
        config = self.model_.config
        batch = self._batch_size()
        total = 0
        for member in self.members_:
            n_context = len(self.context_) if member.rows is None else len(member.rows)
            n_keys = n_context + config.n_thinking_rows
            keys = batch * (len(member.columns) + 1) * n_keys * config.d_model
            total += 2 * config.n_layers * keys * _FLOAT32_BYTES
        return total

    # ---- predict -----------------------------------------------------------------------
    def _accumulate(
        self, encoded: np.ndarray, n_outputs: int,
        convert: Callable[[torch.Tensor, Member], np.ndarray],
    ) -> np.ndarray:
        """The members' mean of ``convert(logits (B, q, outputs), member) -> (q, n_outputs)``
        over every row of ``encoded`` (from :meth:`_encode_queries`): (n, n_outputs) float64.

        On CPU with ``torch.get_num_threads() == W > 1`` the query rows are split into
        chunks that W Python threads run concurrently, each with single-threaded torch ops
        (torch's thread count is set to 1 for the duration of the call and restored):
        query rows are independent, and coarse-grained parallelism measured ~1.4x faster
        than intra-op threads on 2 cores. A row's output does not depend on the other rows
        mathematically, but the float32 kernels round differently with the size and
        composition of a chunk (e.g. AVX-512 tail handling), so predicting a row alone or in
        another order can change it by a few float32 ulps; the same rows in the same order
        give the same bits.
        """
        self._prepare()
        device = self._device()
        n_rows = encoded.shape[0]
        total = np.zeros((n_rows, n_outputs), dtype=np.float64)
        with _query_workers(device) as n_workers:
            # Several pieces per worker balance the load when a core is busy elsewhere;
            # throughput per row is flat from ~64 to 1,000 rows per piece (measured).
            per_piece = max(MIN_ROWS_PER_PIECE, -(-n_rows // (n_workers * PIECES_PER_WORKER)))
            size = min(self.query_batch_size, per_piece)
            pieces = [(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]
            progress = None
            if self.verbose:
                progress = tqdm(total=len(self.members_) * len(pieces),
                                desc=f"{type(self).__name__} predict")
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                for member in self.members_:
                    cache = member.cache
                    if cache is None:
                        cache = self.model_.encode_context(member.x_context, member.y_context)
                    queries = torch.from_numpy(np.ascontiguousarray(encoded[:, member.columns]))
                    queries = queries.to(device)

                    def run(piece: tuple[int, int], cache=cache, queries=queries,
                            member=member) -> np.ndarray:
                        chunk = queries[piece[0] : piece[1]]
                        chunk = chunk.unsqueeze(0).expand(cache.batch_size, -1, -1)  # (B, q, C)
                        return convert(self.model_.forward_queries(cache, chunk), member)

                    results = pool.map(run, pieces) if n_workers > 1 else map(run, pieces)
                    for (start, stop), output in zip(pieces, results, strict=True):
                        total[start:stop] += output
                        if progress is not None:
                            progress.update(1)
            if progress is not None:
                progress.close()
        return total / len(self.members_)


def _model_from_weights(weights: dict, device: str | torch.device, owner: str) -> RDBPFN:
    """``{"config", "state_dict"}`` -> the model in eval mode, on ``device`` if this machine
    has it, else on the CPU with a warning (a pickle made on a GPU machine stays usable)."""
    try:
        target = check_device(device)
    except ValueError as error:
        warnings.warn(
            f"{error} This {owner} was pickled with device={device!r}; its model is "
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
