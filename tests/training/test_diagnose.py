"""python -m training.diagnose: every method scored on the same rows of the same episodes."""

from __future__ import annotations

import json

import numpy as np

from rdbpfn.checkpoint import save_random_checkpoint
from rdbpfn.model import ModelConfig
from training.diagnose import main


def test_diagnose_scores_checkpoints_and_learners_on_the_same_episodes(tmp_path, capsys
                                                                       ) -> None:
    path = save_random_checkpoint(tmp_path / "tiny.pt", ModelConfig(
        d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2), seed=0)
    out = tmp_path / "scores.json"
    assert main(["--checkpoint", str(path), "--kinds", "single_table", "--episodes", "3",
                 "--rows", "64", "--columns", "4", "--context", "24", "--out",
                 str(out)]) == 0
    table = capsys.readouterr().out
    scores = json.loads(out.read_text())["scores"]["single_table"]
    assert list(scores) == [str(path), "logistic regression", "random forest",
                            "random forest, all 64-row context"]
    counts = {len(values) for values in scores.values()}
    assert len(counts) == 1 and 1 <= counts.pop() <= 3  # the same episodes for every method
    values = np.array([v for method in scores.values() for v in method], dtype=float)
    assert ((values >= 0) & (values <= 1)).all()
    assert table.count("| single_table |") == 4
