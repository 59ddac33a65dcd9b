"""Prediction tasks on real databases: what is predicted, for whom, as of when.

A :class:`Task` is data: a database, a target table, one row per (entity, cutoff time) with
a binary label, and a train/val/test split. Features for a row may only use database rows
stamped at or before its cutoff; the label comes from events strictly after it.

This module holds the type, the registry (:func:`register_task`, :func:`get_task`,
:func:`get_tasks`, :func:`task_names`) and the helpers every task shares
(:func:`stable_seed`, :func:`database_fingerprint`). The shipped tasks live with their
database and are registered whenever the ``eval`` package is imported (its ``__init__``
imports both modules, so ``from eval.tasks import get_tasks`` sees them):

==========================  ========================================================
``lahman/player-allstar``   player who played in season t: All-Star in season t+1?
``lahman/player-active``    player who played in season t: plays in season t+1?
``lahman/player-hof``       BBWAA candidate: inducted within 15 ballot years?
``lahman/team-postseason``  franchise with a team in season t: postseason in t?
``pbc/event-2y``            PBC patient at a lab visit: death or transplant in 2 years?
==========================  ========================================================

(:mod:`eval.lahman_tasks`, :mod:`eval.pbc_tasks`). Adding a task takes one function that
returns a :class:`Task`::

    @register_task("mydb/churn")
    def my_churn() -> Task:
        users, orders = ...                              # pandas frames
        cutoffs = pd.to_datetime(...)                    # one per row
        return Task(database="mydb", name="churn", load_database=my_database,
                    target_table="users", entity_ids=ids, cutoff_times=cutoffs,
                    labels=labels, split=np.where(cutoffs < "2020", "train", "test"),
                    database_version="mydb-v1")

Any :class:`Task` works with :func:`eval.harness.evaluate`, registered or not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rdbpfn.database import Database

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class Task:
    """A binary prediction task on a relational database (one row per entity and cutoff).

    Arrays have one entry per task row, in the same order (n rows):

    - ``entity_ids`` (n,): primary keys of ``target_table``, repeated across cutoffs.
    - ``cutoff_times`` (n,) ``datetime64[ns]``: features see only rows stamped up to here.
    - ``labels`` (n,) int8 in {0, 1}: what happens strictly after the cutoff.
    - ``split`` (n,) str in ``SPLITS``: temporal (or entity-disjoint) train/val/test split.

    ``load_database`` is the database or a zero-argument function returning it (so that
    cached features never need the database). ``database_version`` names the database
    content for the feature cache; leave it None to hash the tables (slower).
    """

    database: str
    name: str
    load_database: Database | Callable[[], Database]
    target_table: str
    entity_ids: np.ndarray
    cutoff_times: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    description: str = ""
    database_version: str | None = None

    def __post_init__(self) -> None:
        n = len(self.entity_ids)
        cutoffs = np.asarray(self.cutoff_times).astype("datetime64[ns]")
        labels = np.asarray(self.labels)
        split = np.asarray(self.split).astype(str)
        for label, array in (("cutoff_times", cutoffs), ("labels", labels), ("split", split)):
            if len(array) != n:
                raise ValueError(
                    f"Task {self.full_name}: {label} has {len(array)} entries but entity_ids "
                    f"has {n}; give one entry per task row."
                )
        if not np.isin(labels, (0, 1)).all():
            bad = np.unique(labels[~np.isin(labels, (0, 1))])[:5]
            raise ValueError(
                f"Task {self.full_name}: labels must be 0/1, saw {bad.tolist()}; binarise "
                "the target first (e.g. one-vs-rest)."
            )
        if not np.isin(split, SPLITS).all():
            bad = np.unique(split[~np.isin(split, SPLITS)])[:5]
            raise ValueError(
                f"Task {self.full_name}: split values must be in {SPLITS}, saw {bad.tolist()}."
            )
        if np.isnat(cutoffs).any():
            raise ValueError(f"Task {self.full_name}: cutoff_times contain NaT; give every "
                             "row a cutoff time.")
        object.__setattr__(self, "entity_ids", np.asarray(self.entity_ids))
        object.__setattr__(self, "cutoff_times", cutoffs)
        object.__setattr__(self, "labels", labels.astype(np.int8))
        object.__setattr__(self, "split", split)

    @property
    def full_name(self) -> str:
        """``"<database>/<name>"``, e.g. ``"lahman/player-hof"``."""
        return f"{self.database}/{self.name}"

    def __len__(self) -> int:
        return len(self.entity_ids)

    def get_database(self) -> Database:
        """The rdbpfn.Database (calls the loader if the task holds one)."""
        if callable(self.load_database):
            return self.load_database()
        return self.load_database

    def rows(self, split: str) -> np.ndarray:
        """Indices (int64) of the task rows in ``split``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        return np.flatnonzero(self.split == split)

    def fingerprint(self) -> str:
        """sha256 over the task definition and the database version (cache key part)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            digest = hashlib.sha256()
            for part in (self.database, self.name, self.target_table):
                digest.update(part.encode() + b"\0")
            digest.update(pd.util.hash_array(self.entity_ids.astype(str).astype(object)).tobytes())
            digest.update(self.cutoff_times.astype(np.int64).tobytes())
            digest.update(self.labels.tobytes())
            digest.update("|".join(self.split.tolist()).encode())
            version = self.database_version or database_fingerprint(self.get_database())
            digest.update(version.encode())
            cached = self.__dict__["_fingerprint"] = digest.hexdigest()
        return cached

    def summary(self) -> dict[str, Any]:
        """Row counts and positive rates per split (what the report prints)."""
        out: dict[str, Any] = {"task": self.full_name, "rows": len(self),
                               "positive_rate": float(self.labels.mean())}
        for split in SPLITS:
            rows = self.rows(split)
            out[f"{split}_rows"] = int(len(rows))
            out[f"{split}_positive_rate"] = float(self.labels[rows].mean()) if len(rows) else None
        return out


def database_fingerprint(db: Database) -> str:
    """sha256 over every table's content (for tasks without a ``database_version``)."""
    digest = hashlib.sha256()
    tables = getattr(db, "tables", None)
    if not isinstance(tables, dict):
        raise TypeError(
            f"Cannot fingerprint a {type(db).__name__} without a dict .tables; give the Task "
            "a database_version string instead."
        )
    for name in sorted(tables):
        table = tables[name]
        frame = getattr(table, "df", table)
        digest.update(name.encode() + b"\0")
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from sha256 of the parts' text (stable across processes, unlike hash())."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


# ---------------------------------------------------------------------------------------------
# Registry

TASKS: dict[str, Callable[[], Task]] = {}
"""Registered task builders by full name; :func:`get_task` builds and caches them. The
shipped ones are added by :mod:`eval.lahman_tasks` and :mod:`eval.pbc_tasks`, which the
``eval`` package imports first."""
_BUILT: dict[str, Task] = {}


def register_task(full_name: str) -> Callable[[Callable[[], Task]], Callable[[], Task]]:
    """Decorator: register a zero-argument task builder under ``"<database>/<name>"``."""

    def decorate(builder: Callable[[], Task]) -> Callable[[], Task]:
        if full_name in TASKS:
            raise ValueError(f"Task {full_name!r} is already registered; pick another name.")
        TASKS[full_name] = builder
        return builder

    return decorate


def task_names() -> list[str]:
    """Names of all registered tasks, in registration order."""
    return list(TASKS)


def get_task(full_name: str) -> Task:
    """Build (once per process) the registered task ``full_name``."""
    if full_name not in TASKS:
        raise ValueError(f"Unknown task {full_name!r}; registered tasks: {task_names()}.")
    if full_name not in _BUILT:
        task = TASKS[full_name]()
        if task.full_name != full_name:
            raise ValueError(f"Builder for {full_name!r} returned task {task.full_name!r}.")
        _BUILT[full_name] = task
    return _BUILT[full_name]


def get_tasks(names: Iterable[str] | None = None) -> list[Task]:
    """Registered tasks by name (all of them when ``names`` is None)."""
    return [get_task(name) for name in (task_names() if names is None else names)]
