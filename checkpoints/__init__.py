"""Shipped weights and the one place that finds and loads them.

Resolution order: an explicit ``model_path`` > the ``RDBPFN_CHECKPOINT`` environment
variable > :data:`DEFAULT_CHECKPOINT` (``checkpoints/rdbpfn.pt``).

Our format is ``{"config": ModelConfig dict, "state_dict": ..., "meta": dict}``, loaded
with ``torch.load(weights_only=True)``, next to a sidecar ``<stem>.json`` holding its
sha256, config and meta. The sidecar is checked when present and required for the shipped
default. The published RDB-PFN format is recognised too (see :mod:`checkpoints.published`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from checkpoints.published import convert_published, is_published_format
from rdbpfn.model import RDBPFN, ModelConfig

__all__ = [
    "DEFAULT_CHECKPOINT",
    "ENV_VAR",
    "CheckpointError",
    "CheckpointNotFoundError",
    "LoadedCheckpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_random_checkpoint",
    "sha256_of",
]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "rdbpfn.pt"
ENV_VAR = "RDBPFN_CHECKPOINT"
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


def _candidates(model_path: str | os.PathLike | None) -> list[tuple[str, Path | None]]:
    env = os.environ.get(ENV_VAR)
    return [
        ("model_path", Path(model_path).expanduser() if model_path is not None else None),
        (f"${ENV_VAR}", Path(env).expanduser() if env else None),
        ("default", DEFAULT_CHECKPOINT),
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


def resolve_checkpoint(model_path: str | os.PathLike | None = None) -> Path:
    """The checkpoint path to load: explicit > ``$RDBPFN_CHECKPOINT`` > default.

    A directory resolves to ``<dir>/rdbpfn.pt``. Raises :class:`CheckpointNotFoundError`
    naming every path considered when the chosen file does not exist.
    """
    candidates = _candidates(model_path)
    chosen = next(path for _, path in candidates if path is not None)
    if chosen.is_dir():
        chosen = chosen / DEFAULT_CHECKPOINT.name
    if not chosen.is_file():
        shipped = (
            "\nNo trained RDB-PFN checkpoint is shipped at the default location yet."
            if chosen == DEFAULT_CHECKPOINT
            else ""
        )
        raise CheckpointNotFoundError(
            f"no checkpoint file at {chosen}. Paths considered, in priority order:\n"
            f"{_describe(candidates, chosen)}{shipped}\n{_HOW_TO_FIX}"
        )
    return chosen


def _check_sidecar(path: Path) -> dict | None:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        if path == DEFAULT_CHECKPOINT:
            raise CheckpointError(
                f"the shipped checkpoint {path} has no sidecar {sidecar} with its sha256; "
                "re-export it with checkpoints.save_checkpoint (which writes both files)."
            )
        return None
    try:
        info = json.loads(sidecar.read_text())
        expected = info["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"sidecar {sidecar} is not valid JSON with a 'sha256' field ({error}); "
            "re-export the checkpoint with checkpoints.save_checkpoint."
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


def load_checkpoint(
    model_path: str | os.PathLike | None = None, map_location: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Resolve, verify and load a checkpoint into an :class:`RDBPFN` in eval mode."""
    path = resolve_checkpoint(model_path)
    _check_sidecar(path)
    payload = _read(path, map_location)
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
            "checkpoint with checkpoints.save_checkpoint."
        ) from error
    model.to(map_location).eval()
    return LoadedCheckpoint(model=model, config=config, meta=meta, path=path)


def _atomic_write(path: Path, write) -> None:
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


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
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    sidecar = {
        "file": path.name,
        "sha256": sha256_of(path),
        "format_version": FORMAT_VERSION,
        "n_parameters": model.n_parameters(),
        "config": model.config.to_dict(),
        "meta": meta_json,
    }
    text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
    _atomic_write(sidecar_path(path), lambda tmp: Path(tmp).write_text(text))
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
