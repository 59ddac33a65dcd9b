"""The published RDB-PFN format: conversion, and exact agreement on the peer weights.

The peer weights are never shipped. Tests that need them look at $RDBPFN_PEER_CHECKPOINT
or ``../shared/peers/rdbpfn-official.pt`` (next to the repository) and skip when absent;
the reference probabilities are read from ``official-reference.npz`` beside that file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import check_classifiers_train

import rdbpfn.checkpoint as checkpoints
from rdbpfn.checkpoint import load_checkpoint, save_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.model import RDBPFN, ModelConfig, published_config
from rdbpfn.published import (
    convert_published,
    is_published_format,
    to_published_state_dict,
)
from tests.common import ROOT

PEER = Path(
    os.environ.get("RDBPFN_PEER_CHECKPOINT", ROOT.parent / "shared/peers/rdbpfn-official.pt")
)
REFERENCE = PEER.with_name("official-reference.npz")
AGREEMENT = 1e-4
needs_peer = pytest.mark.skipif(
    not (PEER.is_file() and REFERENCE.is_file()),
    reason=f"peer weights not found at {PEER} (set RDBPFN_PEER_CHECKPOINT)",
)


def test_synthetic_published_payload_converts_exactly(tmp_path: Path) -> None:
    config = ModelConfig(**{**published_config().to_dict(), "d_model": 16, "d_ffn": 24,
                            "n_layers": 2, "decoder_hidden": 20})
    torch.manual_seed(0)
    model = RDBPFN(config).eval()
    payload = {"model_state_dict": to_published_state_dict(model.state_dict()), "step": 7,
               "train_time": 1.0, "eval_time": 0.5, "scores": {"roc_auc": 0.5}}
    assert is_published_format(payload)
    assert "transformer_blocks.1.self_attention_between_datapoints.in_proj_weight" in (
        payload["model_state_dict"]
    )
    converted_config, _, meta = convert_published(payload)
    assert converted_config == config and meta["step"] == 7
    path = tmp_path / "published.pt"
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 30, 5, generator=g), torch.randint(0, 2, (2, 20), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, y), model(x, y), atol=0, rtol=0)


def test_our_format_is_not_mistaken_for_the_published_one(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ours.pt", RDBPFN(published_config()), {})
    assert not is_published_format(torch.load(path, weights_only=True))
    with pytest.raises(ValueError, match="not a published"):
        convert_published({"state_dict": {}})


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@needs_peer
def test_peer_checkpoint_loads_with_the_published_size() -> None:
    loaded = load_checkpoint(PEER)
    assert loaded.config == published_config()
    assert loaded.model.n_parameters() == 692_738
    assert loaded.meta["step"] == 105_600


@needs_peer
@pytest.mark.parametrize("kind", ["clean", "nan"])
def test_forward_reproduces_published_probabilities(
    reference: dict[str, np.ndarray], kind: str
) -> None:
    model = load_checkpoint(PEER).model
    n = int(reference["split"])
    x = torch.from_numpy(reference[f"{kind}_X"]).float()[None]
    y = torch.from_numpy(reference["y"][:n]).long()[None]
    with torch.no_grad():
        proba = model(x, y)[0].softmax(-1).numpy()
    np.testing.assert_allclose(proba, reference[f"{kind}_proba"], atol=AGREEMENT, rtol=0)
    cache = model.encode_context(x[:, :n], y)
    cached = model.forward_queries(cache, x[:, n:])[0].softmax(-1).numpy()
    np.testing.assert_allclose(cached, proba, atol=1e-5, rtol=0)


@needs_peer
def test_classifier_reproduces_published_probabilities(reference: dict[str, np.ndarray]) -> None:
    n = int(reference["split"])
    X, y = reference["clean_X"], reference["y"]
    clf = RDBPFNClassifier(model_path=PEER, n_estimators=1).fit(X[:n], y[:n])
    np.testing.assert_allclose(
        clf.predict_proba(X[n:]), reference["clean_proba"], atol=AGREEMENT, rtol=0
    )


@needs_peer
def test_sklearn_accuracy_check_with_real_weights() -> None:
    """The one sklearn check that the random-weights run marks as expected to fail."""
    check_classifiers_train("RDBPFNClassifier", RDBPFNClassifier(model_path=PEER, n_estimators=2))


@pytest.mark.skipif(not checkpoints.DEFAULT_CHECKPOINT.exists(), reason="no shipped checkpoint")
def test_sklearn_accuracy_check_with_shipped_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(checkpoints.ENV_VAR, raising=False)
    check_classifiers_train("RDBPFNClassifier", RDBPFNClassifier(n_estimators=2))
