"""eval.linear_probe: seeded linear tables and the probe's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eval import linear_probe
from rdbpfn.checkpoint import save_random_checkpoint
from rdbpfn.model import ModelConfig


def test_tables_are_seeded_and_their_signal_uses_the_columns_it_says() -> None:
    X, value = linear_probe.draw_table(8, "sparse", 0.0, 200, seed=1)
    again = linear_probe.draw_table(8, "sparse", 0.0, 200, seed=1)
    assert X.tobytes() == again[0].tobytes() and value.tobytes() == again[1].tobytes()
    coefficients = np.linalg.lstsq(X, value, rcond=None)[0]
    assert np.count_nonzero(np.abs(coefficients) > 1e-9) == 1  # one column, exactly
    _, dense = linear_probe.draw_table(8, "dense", 0.0, 200, seed=1)
    assert np.count_nonzero(np.abs(np.linalg.lstsq(X, dense, rcond=None)[0]) > 1e-9) == 8
    _, noisy = linear_probe.draw_table(8, "dense", 0.5, 200, seed=1)
    assert np.std(noisy - dense) > 0.4


def test_the_probe_runs_and_the_linear_models_find_the_line(tmp_path: Path) -> None:
    """Tiny random weights for ours; logistic regression and ridge solve a noiseless
    linear table almost exactly (the probe's ceiling)."""
    classifier = save_random_checkpoint(tmp_path / "c.pt", ModelConfig(
        d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2))
    regressor = save_random_checkpoint(tmp_path / "r.pt", ModelConfig(
        d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2, decoder_hidden=16,
        task="regression", label_embedding="continuous", n_bins=16))
    results = linear_probe.run(["classification", "regression"], str(classifier),
                               str(regressor), ks=[64], repeats=1)
    cells = len(linear_probe.CELLS) * len(linear_probe.NOISES)
    assert len(results) == cells * (2 + 3)
    table = linear_probe.summarize(results)
    noiseless = table.xs(0.0, level="noise")
    assert (noiseless.loc["classification", "logreg"] > 0.9).all()
    assert (noiseless.loc["regression", "ridge"] > 0.95).all()
    # the trend carries the line even for untrained weights; the model alone does not
    regression = noiseless.loc["regression"]
    assert (regression["rdbpfn"] > 0.9).all()
    assert (regression["rdbpfn-no-trend"] < regression["rdbpfn"]).all()
