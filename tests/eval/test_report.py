"""eval.report: files written, table content, efficiency frontier numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from eval.harness import RESULT_COLUMNS, summarize
from eval.report import efficiency_points, markdown_table, merge_runs, write_report
from eval.report import main as report_main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_results() -> pd.DataFrame:
    """2 tasks x 2 methods x 2 k x 3 seeds with known ROC-AUC and timings; 1 skipped draw."""
    rows = []
    for task in ("a", "b"):
        for method, base, seconds in (("fast", 0.6, 0.01), ("slow", 0.8, 1.0)):
            for k in (64, 256):
                for seed in range(3):
                    status = "one_class" if (task, method, k, seed) == ("a", "fast", 64, 2) \
                        else "ok"
                    rows.append({
                        "database": "db", "task": task, "method": method, "k": k, "seed": seed,
                        "draw_seed": seed, "status": status,
                        "roc_auc": base + 0.01 * seed if status == "ok" else np.nan,
                        "accuracy": 0.5, "fit_s": seconds, "predict_s": seconds,
                        "n_context_positive": 3, "n_test": 100, "n_features": 5, "error": None})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def test_summary_and_markdown_report_means_stds_and_skips() -> None:
    summary = summarize(fake_results())
    cell = summary[(summary.task == "a") & (summary.method == "fast") & (summary.k == 64)].iloc[0]
    assert cell["n_ok"] == 2 and cell["n_one_class"] == 1
    assert np.isclose(cell["roc_auc_mean"], 0.605)
    assert np.isclose(cell["roc_auc_std"], np.std([0.60, 0.61], ddof=1))
    text = markdown_table(summary)
    assert "| db/a | 64 | 0.605 ± 0.007 | 0.810 ± 0.010 | 1 one-class |" in text
    assert "**mean over 2 tasks**" in text
    assert "| slow | 1.000 | 1.000 |" in text
    overall = markdown_table(summary, mean_per_key=False)
    assert "| **mean over 4 tasks** | all | 0.609 | 0.810 |" in overall


def test_efficiency_points_average_shared_cells() -> None:
    points = efficiency_points(summarize(fake_results())).set_index("method")
    assert np.isclose(points.loc["slow", "seconds"], 2.0)
    assert np.isclose(points.loc["fast", "seconds"], 0.02)
    # fast: cell (a, 64) has mean 0.605, the other three cells 0.61
    assert np.isclose(points.loc["fast", "roc_auc"], (0.605 + 3 * 0.61) / 4)
    assert np.isclose(points.loc["slow", "roc_auc"], 0.81)


def test_write_report_writes_every_artifact(tmp_path) -> None:
    results = fake_results()
    text = write_report(results, tmp_path, meta={"notes": ["RDBPFN skipped: test"]})
    for name in ("draws.csv", "summary.csv", "results.json", "results.md"):
        assert (tmp_path / name).stat().st_size > 0
    for name in ("roc_auc_vs_k.png", "efficiency.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert "RDBPFN skipped: test" in text
    assert (tmp_path / "results.md").read_text() == text
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["meta"]["notes"] == ["RDBPFN skipped: test"]
    assert len(payload["summary"]) == 2 * 2 * 2
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "draws.csv")[["roc_auc"]],
                                  results[["roc_auc"]])


def test_merge_runs_combines_methods_and_refuses_duplicate_draws(tmp_path) -> None:
    results = fake_results()
    write_report(results[results["method"] == "fast"], tmp_path / "a", meta={"notes": ["x"]})
    write_report(results[results["method"] == "slow"], tmp_path / "b", meta={"notes": ["x"]})
    assert report_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out",
                        str(tmp_path / "ab")]) == 0
    merged = pd.read_csv(tmp_path / "ab" / "draws.csv")
    assert len(merged) == len(results)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "ab" / "summary.csv"),
        summarize(pd.concat([pd.read_csv(tmp_path / d / "draws.csv") for d in "ab"],
                            ignore_index=True)))
    meta = json.loads((tmp_path / "ab" / "results.json").read_text())["meta"]
    assert [s["dir"] for s in meta["merged_from"]] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert meta["notes"] == ["x"]
    with pytest.raises(ValueError, match="more than one run"):
        merge_runs([tmp_path / "a", tmp_path / "ab"])
    with pytest.raises(ValueError, match="does not exist"):
        merge_runs([tmp_path / "missing"])
