"""Resumable train state: written atomically, restored exactly.

The train state is one ``torch.save`` file (``<run>/state.pt``) holding the model
parameters *as they are during training* (for schedule-free AdamW these are the ``y``
iterates, with the optimizer in train mode), the optimizer state, every RNG state, the
prior stream position, counters and the run's config. Saving touches nothing live: no
``optimizer.eval()`` round trip, whose floating-point rounding would make a resumed run
differ from an uninterrupted one. The averaged weights used for evaluation and export are
produced by ``optimizer.eval()`` in :mod:`training.loop` and saved as model checkpoints.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdbpfn.atomic import atomic_write

STATE_FILE = "state.pt"
STATE_FORMAT_VERSION = 1


@dataclass
class Counters:
    """Progress counters that travel with the train state (all plain Python values)."""

    step: int = 0
    episodes_per_stage: dict[str, int] = field(default_factory=lambda: {"1": 0, "2": 0})
    episodes_per_phase: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    best_score: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0
    sessions: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "episodes_per_stage": dict(self.episodes_per_stage),
            "episodes_per_phase": dict(self.episodes_per_phase),
            "wall_seconds": self.wall_seconds,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "best_metrics": dict(self.best_metrics),
            "skipped_steps": self.skipped_steps,
            "sessions": [dict(session) for session in self.sessions],
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        return cls(**data)


def rng_states() -> dict[str, Any]:
    """Python, NumPy (global) and torch (CPU and, if present, CUDA) RNG states."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_train_state(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    counters: Counters,
    config: dict[str, Any],
    stream_position: dict[str, int],
    world_size: int,
    rngs: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the complete train state to ``path`` atomically.

    ``model`` is the bare module (not the DDP wrapper). ``stream_position`` maps
    ``"phase"`` (curriculum index) and ``"batch"`` (batches of that phase already consumed
    per rank) to ints. ``rngs`` holds :func:`rng_states` of every rank (default: this
    process only).
    """
    payload = {
        "format_version": STATE_FORMAT_VERSION,
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rngs if rngs is not None else [rng_states()],
        "counters": counters.to_dict(),
        "stream_position": dict(stream_position),
        "world_size": world_size,
    }
    return atomic_write(path, lambda stream: torch.save(payload, stream))


def load_train_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a train state written by :func:`save_train_state` (trusted: our own file)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no train state at {path}; start without --resume or check --out")
    # weights_only=False: the file holds Python RNG state tuples; it is our own run folder.
    payload = torch.load(path, map_location=map_location, weights_only=False)
    version = payload.get("format_version")
    if version != STATE_FORMAT_VERSION:
        raise ValueError(
            f"train state {path} has format_version {version!r}, this code reads "
            f"{STATE_FORMAT_VERSION}; resume it with the code that wrote it"
        )
    return payload
