"""Few-shot benchmark on real relational databases (``python -m eval``).

Public surface (imported lazily so that ``import eval`` stays cheap):

- :class:`Task`, :func:`get_task`, :func:`register_task`, :func:`validation_episodes`
  (``eval.tasks``) -- prediction tasks as data, the registry, real-data validation sets.
- :func:`evaluate`, :func:`summarize` (``eval.harness``) -- the protocol, for any Task.
- :class:`Method`, :func:`build_methods` (``eval.baselines``) -- methods side by side.
- :func:`task_features`, :class:`FeatureSpec` (``eval.features``) -- cached DFS features.
- :func:`write_report` (``eval.report``) -- CSV, JSON, markdown and plots.
- :func:`lahman`, :func:`pbc` (``eval.databases``) -- offline real databases.
"""

from __future__ import annotations

from rdbpfn._lazy import lazy_exports

_EXPORTS = {
    "Task": "eval.tasks",
    "get_task": "eval.tasks",
    "get_tasks": "eval.tasks",
    "register_task": "eval.tasks",
    "task_names": "eval.tasks",
    "validation_episodes": "eval.tasks",
    "evaluate": "eval.harness",
    "summarize": "eval.harness",
    "Method": "eval.baselines",
    "build_methods": "eval.baselines",
    "task_features": "eval.features",
    "FeatureSpec": "eval.features",
    "write_report": "eval.report",
    "lahman": "eval.databases",
    "pbc": "eval.databases",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
