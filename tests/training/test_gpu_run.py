"""``bash training/gpu_run.sh --smoke``: the GPU script's path on CPU leaves loadable weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rdbpfn.checkpoint import load_checkpoint
from tests.common import ROOT

SMOKE_SECONDS = 300


def test_smoke_run_leaves_a_loadable_checkpoint_and_its_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(ROOT / "training" / "gpu_run.sh"), "--smoke"], cwd=tmp_path,
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=SMOKE_SECONDS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert {"best.pt", "best.json", "state.pt", "log.jsonl"} <= set(files)
    assert len(files) <= 8  # what one device call brings back
    loaded = load_checkpoint(out / "best.pt")  # checks the sidecar's sha256
    assert loaded.meta["episodes_per_stage"]["2"] > 0 and "best.pt: step" in done.stdout
    again = subprocess.run(  # the same command resumes (here: the curriculum is done)
        ["bash", str(ROOT / "training" / "gpu_run.sh"), "--smoke"], cwd=tmp_path,
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=SMOKE_SECONDS,
    )
    assert again.returncode == 0, again.stderr[-3000:]
