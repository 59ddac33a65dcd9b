"""Curriculum training of RDB-PFN on synthetic episodes (``python -m training``).

Public surface: :class:`TrainConfig` and :func:`load_config` (configs), :func:`train` (the
resumable, distributed loop). Export of a finished run into ``checkpoints/`` is
``python -m training.export``; the learning curve is ``python -m training.plot``.
"""

from __future__ import annotations

from training.config import TrainConfig, load_config
from training.loop import train

__all__ = ["TrainConfig", "load_config", "train"]
