"""Few-shot benchmark on real relational databases (``python -m eval``).

Public surface:

- :class:`Task`, :func:`get_task`, :func:`get_tasks`, :func:`register_task`,
  :func:`task_names` (``eval.tasks``) -- prediction tasks as data and their registry; the
  shipped tasks are in ``eval.lahman_tasks`` and ``eval.pbc_tasks``, registered here.
- :func:`validation_episodes` (``eval.validation``) -- the tasks' train/val splits as
  ``rdbpfn.episode.Episode`` objects, for training's validation.
- :func:`evaluate`, :func:`summarize` (``eval.harness``) -- the protocol, for any Task.
- :class:`Method`, :func:`build_methods` (``eval.baselines``) -- methods side by side.
- :func:`task_features`, :class:`FeatureSpec` (``eval.features``) -- cached DFS features.
- :func:`lahman`, :func:`pbc` (``eval.databases``) -- offline real databases.

Command-line modules, imported only when run (``python -m eval.<name>``; importing them
here would run them twice): ``eval.__main__`` (the benchmark), ``eval.report``
(``write_report``: CSV, JSON, markdown and plots; merging runs), ``eval.single_table``,
``eval.speed``, ``eval.dfs_speed``, ``eval.prior_speed``.
"""

from __future__ import annotations

# Registers the shipped tasks (in this order) with eval.tasks: every import of any eval
# module runs this file first, so the registry is never seen without them.
from eval import lahman_tasks, pbc_tasks  # noqa: F401
from eval.baselines import Method, build_methods
from eval.databases import lahman, pbc
from eval.features import FeatureSpec, task_features
from eval.harness import evaluate, summarize
from eval.tasks import Task, get_task, get_tasks, register_task, task_names
from eval.validation import validation_episodes

__all__ = [
    "FeatureSpec",
    "Method",
    "Task",
    "build_methods",
    "evaluate",
    "get_task",
    "get_tasks",
    "lahman",
    "pbc",
    "register_task",
    "summarize",
    "task_features",
    "task_names",
    "validation_episodes",
]
