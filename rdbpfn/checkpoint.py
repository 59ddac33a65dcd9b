"""The checkpoint format: the one place that finds, checks, loads and saves weights.

Resolution order: an explicit ``model_path`` > the ``RDBPFN_CHECKPOINT`` environment
variable > :data:`DEFAULT_CHECKPOINT`, the shipped weights. In a checkout those live in the
repository's ``checkpoints/`` folder (data only); an installed wheel carries the same files
inside the package, as ``rdbpfn/checkpoints/``. The folder is found from this file's own
location, never from the working directory.

Our format is ``{"config": ModelConfig dict, "state_dict": ..., "meta": dict}``, loaded
with ``torch.load(weights_only=True)``, next to a sidecar ``<stem>.json`` holding its
sha256, config and meta. The sidecar is checked when present and required for the shipped
default. The published RDB-PFN format is recognised too (see :mod:`rdbpfn.published`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rdbpfn.atomic import atomic_write, atomic_write_json
from rdbpfn.model import RDBPFN, ModelConfig
from rdbpfn.published import convert_published, is_published_format

__all__ = [
    "DEFAULT_CHECKPOINT",
    "ENV_VAR",
    "CheckpointError",
    "CheckpointNotFoundError",
    "LoadedCheckpoint",
    "SHIPPED_DIR",
    "check_device",
    "load_checkpoint",
    "resolve_checkpoint",
    "REGRESSION_CHECKPOINT",
    "REGRESSION_ENV_VAR",
    "save_checkpoint",
    "save_random_checkpoint",
    "sha256_of",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
# A wheel carries the weights inside the package; a checkout keeps them in checkpoints/.
SHIPPED_DIR = next(
    (d for d in (_PACKAGE_DIR / "checkpoints", _PACKAGE_DIR.parent / "checkpoints")
     if (d / "rdbpfn.pt").is_file()),
    _PACKAGE_DIR / "checkpoints",
)
DEFAULT_CHECKPOINT = SHIPPED_DIR / "rdbpfn.pt"
ENV_VAR = "RDBPFN_CHECKPOINT"
REGRESSION_CHECKPOINT = SHIPPED_DIR / "rdbpfn-regression.pt"
"""The shipped regression model (:class:`~rdbpfn.regressor.RDBPFNRegressor`'s default)."""
REGRESSION_ENV_VAR = "RDBPFN_REGRESSION_CHECKPOINT"
FORMAT_VERSION = 1
_HASH_CHUNK_BYTES = 1 << 20
_HOW_TO_FIX = (
    "Pass model_path=<file.pt> (e.g. RDBPFNClassifier(model_path=...)), set the environment "
    f"variable {ENV_VAR}=<file.pt>, or train and export one with "
    "`python -m training --config cpu`."
)


class CheckpointError(ValueError):
    """A checkpoint file exists but is truncated, modified, foreign or inconsistent."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the resolved path."""


@dataclass
class LoadedCheckpoint:
    """A model ready for inference (eval mode) and where it came from."""

    model: RDBPFN
    config: ModelConfig
    meta: dict
    path: Path


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(path: Path) -> Path:
    """``dir/name.pt`` -> ``dir/name.json``."""
    return path.with_suffix(".json")


def _defaults(task: str) -> tuple[str, Path]:
    """(environment variable, shipped file) of a task's default checkpoint."""
    if task == "regression":
        return REGRESSION_ENV_VAR, REGRESSION_CHECKPOINT
    if task != "classification":
        raise ValueError(f"task={task!r}; use 'classification' or 'regression'.")
    return ENV_VAR, DEFAULT_CHECKPOINT


def _candidates(model_path: str | os.PathLike | None,
                task: str) -> list[tuple[str, Path | None]]:
    variable, default = _defaults(task)
    env = os.environ.get(variable)
    return [
        ("model_path", Path(model_path).expanduser() if model_path is not None else None),
        (f"${variable}", Path(env).expanduser() if env else None),
        ("default", default),
    ]


def _describe(candidates: list[tuple[str, Path | None]], chosen: Path) -> str:
    """One line per candidate: not given / tried (the chosen one) / lower priority."""
    lines, tried = [], False
    for source, path in candidates:
        if path is None:
            lines.append(f"  {source}: not given")
        elif not tried:
            tried = True
            lines.append(f"  {source}: {chosen} (tried: no such file)")
        else:
            lines.append(f"  {source}: {path} (not tried: lower priority)")
    return "\n".join(lines)


def resolve_checkpoint(model_path: str | os.PathLike | None = None,
                       task: str = "classification") -> Path:
    """The checkpoint path to load: explicit > ``$RDBPFN_CHECKPOINT`` > default
    (regression: ``$RDBPFN_REGRESSION_CHECKPOINT``, then :data:`REGRESSION_CHECKPOINT`).

    A directory resolves to ``<dir>/rdbpfn.pt`` (regression: ``rdbpfn-regression.pt``).
    Raises :class:`CheckpointNotFoundError` naming every path considered when the chosen
    file does not exist.
    """
    candidates = _candidates(model_path, task)
    default = candidates[-1][1]
    assert default is not None
    chosen = next(path for _, path in candidates if path is not None)
    if chosen.is_dir():
        chosen = chosen / default.name
    if not chosen.is_file():
        name = "regression checkpoint" if task == "regression" else "checkpoint"
        shipped = (f"\nNo trained RDB-PFN {name} is shipped at the default location yet."
                   if chosen == default else "")
        fix = _HOW_TO_FIX if task == "classification" else (
            "Pass model_path=<file.pt> (RDBPFNRegressor(model_path=...)), set the environment "
            f"variable {REGRESSION_ENV_VAR}=<file.pt>, or train one with `python -m training "
            "--config regression_cpu`.")
        raise CheckpointNotFoundError(
            f"no checkpoint file at {chosen}. Paths considered, in priority order:\n"
            f"{_describe(candidates, chosen)}{shipped}\n{fix}"
        )
    return chosen


def _check_sidecar(path: Path) -> dict | None:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        if path == DEFAULT_CHECKPOINT:
            raise CheckpointError(
                f"the shipped checkpoint {path} has no sidecar {sidecar} with its sha256; "
                "re-export it with rdbpfn.checkpoint.save_checkpoint (which writes both files)."
            )
        return None
    try:
        info = json.loads(sidecar.read_text())
        expected = info["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"sidecar {sidecar} is not valid JSON with a 'sha256' field ({error}); "
            "re-export the checkpoint with rdbpfn.checkpoint.save_checkpoint."
        ) from error
    actual = sha256_of(path)
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {path} has sha256 {actual} but its sidecar {sidecar} says {expected}: "
            "the file is truncated or was modified. Re-download or re-export it."
        )
    return info


def _read(path: Path, map_location: str | torch.device) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch.load raises many types on bad bytes (KeyError too)
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint (truncated, or not saved by "
            f"torch.save with plain tensors): {type(error).__name__}: {error}. {_HOW_TO_FIX}"
        ) from error


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists on this machine, or a clear error."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a torch device ({error}); pass e.g. 'cpu', 'cuda' or "
            "'cuda:1'."
        ) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} asks for CUDA, but this torch ({torch.__version__}, CUDA "
                f"build: {torch.version.cuda or 'none'}) sees no CUDA GPU on this machine. "
                "Pass device='cpu', or run on a machine with an NVIDIA GPU and a CUDA build "
                "of torch."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), numbered from 0; pass one of them."
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} asks for Apple's MPS, which this machine does not offer; "
            "pass device='cpu'."
        )
    return resolved


def load_checkpoint(
    model_path: str | os.PathLike | None = None, map_location: str | torch.device = "cpu",
    task: str = "classification",
) -> LoadedCheckpoint:
    """Resolve, verify and load a checkpoint into an :class:`RDBPFN` in eval mode.

    ``map_location`` is the device the model is placed on; one this machine lacks (e.g.
    ``"cuda"`` without a GPU) is a :class:`ValueError` that says so, before any file is read.
    ``task`` picks the default checkpoint (see :func:`resolve_checkpoint`).
    """
    device = check_device(map_location)
    path = resolve_checkpoint(model_path, task)
    _check_sidecar(path)
    payload = _read(path, "cpu")
    if isinstance(payload, dict) and {"config", "state_dict"} <= set(payload):
        try:
            config = ModelConfig(**payload["config"])
        except (TypeError, ValueError) as error:
            raise CheckpointError(
                f"{path}: stored config is not a valid ModelConfig ({error}); the file was "
                "written by an incompatible version. Re-export it with save_checkpoint."
            ) from error
        state, meta = payload["state_dict"], dict(payload.get("meta") or {})
    elif is_published_format(payload):
        config, state, meta = convert_published(payload)
    else:
        seen = sorted(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is a foreign file: expected keys 'config', 'state_dict', 'meta' (ours) "
            f"or 'model_state_dict' (published RDB-PFN), saw {seen}. {_HOW_TO_FIX}"
        )
    with torch.device("meta"):  # no random init: faster, and the global RNG is untouched
        model = RDBPFN(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit the stored config: {error}. Re-export the "
            "checkpoint with rdbpfn.checkpoint.save_checkpoint."
        ) from error
    model.to(device).eval()
    return LoadedCheckpoint(model=model, config=config, meta=meta, path=path)


def save_checkpoint(path: str | os.PathLike, model: RDBPFN, meta: dict) -> Path:
    """Write ``{"config", "state_dict", "meta"}`` atomically, then the sidecar JSON.

    ``meta`` must be JSON-serialisable (it is copied into the sidecar). Returns the path.
    """
    path = Path(path)
    try:
        meta_json = json.loads(json.dumps(meta))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"meta must be JSON-serialisable (str/int/float/bool/None/list/dict): {error}. "
            "Convert tensors and numpy values with .item() / .tolist()."
        ) from error
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta_json,
    }
    atomic_write(path, lambda stream: torch.save(payload, stream))
    sidecar = {
        "file": path.name,
        "sha256": sha256_of(path),
        "format_version": FORMAT_VERSION,
        "n_parameters": model.n_parameters(),
        "config": model.config.to_dict(),
        "meta": meta_json,
    }
    atomic_write_json(sidecar_path(path), sidecar)
    return path


def save_random_checkpoint(path: str | os.PathLike, config: ModelConfig, seed: int = 0) -> Path:
    """Save a randomly initialised model; same seed -> same weights.

    For tests and benchmarks that need a file in our format but no trained weights. The
    global torch RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RDBPFN(config)
    return save_checkpoint(path, model, {"random_init_seed": seed, "trained": False})
