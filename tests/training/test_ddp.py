"""DDP: ``torchrun --nproc_per_node=2 -m training`` on CPU (gloo) with the tiny config.

Every rank records a digest of the batch it trained on and of its weights after every
step (``rank_digests``): gradients are synchronised when the weights agree after every
step although the batches differ, and the ranks' episodes are disjoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.common import ROOT
from training.state import load_train_state

REPO = ROOT
RANKS = 2
TIMEOUT_SECONDS = 300


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_cpu_ranks_keep_equal_weights_and_draw_different_episodes(tmp_path: Path) -> None:
    config = {"base": "tiny", "name": "tiny-ddp", "rank_digests": True, "threads": 1}
    config_path = tmp_path / "ddp.json"
    config_path.write_text(json.dumps(config))
    out = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={RANKS}", "-m", "training", "--config", str(config_path),
         "--out", str(out), "--quiet"],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    digests = [read_jsonl(out / "rank_digests" / f"rank{rank}.jsonl") for rank in range(RANKS)]
    steps = [[record["step"] for record in records] for records in digests]
    assert steps[0] == steps[1] == list(range(1, 13))
    for first, second in zip(*digests, strict=True):
        assert first["weights"] == second["weights"], f"weights differ at step {first['step']}"
    batches = [{record["batch"] for record in records} for records in digests]
    assert not batches[0] & batches[1], "two ranks trained on the same batch"
    state = load_train_state(out / "state.pt")
    assert state["world_size"] == RANKS and len(state["rng"]) == RANKS
    # both ranks' episodes are counted: 2 ranks x 4 episodes x 6 steps per stage
    assert state["counters"]["episodes_per_stage"] == {"1": 48, "2": 48}
    assert state["counters"]["finished"]
