"""rdbpfn: a relational foundation model trained only on synthetic databases.

Public surface (imported lazily so that ``import rdbpfn`` stays cheap):

- :class:`RDBPFNClassifier` -- sklearn-style ``fit`` / ``predict_proba`` in-context classifier.
- :class:`Database`, :class:`Table` -- a typed relational database.
- :func:`linearize` -- Deep Feature Synthesis: one feature row per (entity, cutoff).
- :class:`ModelConfig`, :class:`RDBPFN` -- the bi-attention transformer.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "RDBPFNClassifier": "rdbpfn.classifier",
    "Database": "rdbpfn.database",
    "Table": "rdbpfn.database",
    "linearize": "rdbpfn.dfs",
    "ModelConfig": "rdbpfn.model",
    "RDBPFN": "rdbpfn.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rdbpfn' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
