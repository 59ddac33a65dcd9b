"""rdbpfn: a relational foundation model trained only on synthetic databases.

Public surface (imported lazily so that ``import rdbpfn`` stays cheap):

- :class:`RDBPFNClassifier` -- sklearn-style ``fit`` / ``predict_proba`` in-context classifier.
- :class:`Database`, :class:`Table` -- a typed relational database.
- :func:`linearize` -- Deep Feature Synthesis: one feature row per (entity, cutoff).
- :class:`ModelConfig`, :class:`RDBPFN` -- the bi-attention transformer.
"""

from __future__ import annotations

from rdbpfn._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
