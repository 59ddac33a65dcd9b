"""checkpoints: resolution order, atomic save + sidecar, verification, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import rdbpfn.checkpoint as checkpoints
from rdbpfn.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    save_random_checkpoint,
    sha256_of,
)
from rdbpfn.model import RDBPFN, ModelConfig

TINY = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2,
                   decoder_hidden=16)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return save_random_checkpoint(tmp_path / "tiny.pt", TINY, seed=0)


@pytest.fixture(autouse=True)
def _no_env_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(checkpoints.ENV_VAR, raising=False)


def _logits(model: RDBPFN) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 30, 4, generator=g)
    y = torch.randint(0, 2, (1, 20), generator=g)
    with torch.no_grad():
        return model(x, y)


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = RDBPFN(TINY).eval()
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, {"steps": 3, "note": "x"})
    loaded = load_checkpoint(path)
    assert loaded.config == TINY and loaded.meta == {"steps": 3, "note": "x"}
    assert loaded.path == path and not loaded.model.training
    torch.testing.assert_close(_logits(loaded.model), _logits(model), atol=0, rtol=0)
    sidecar = json.loads((tmp_path / "sub" / "m.json").read_text())
    assert sidecar["sha256"] == sha256_of(path)
    assert ModelConfig(**sidecar["config"]) == TINY and sidecar["meta"]["steps"] == 3
    leftovers = [p.name for p in (tmp_path / "sub").iterdir() if p.name not in {"m.pt", "m.json"}]
    assert leftovers == []


def test_random_checkpoint_is_deterministic_and_keeps_global_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = load_checkpoint(save_random_checkpoint(tmp_path / "a.pt", TINY, seed=5)).model
    b = load_checkpoint(save_random_checkpoint(tmp_path / "b.pt", TINY, seed=5)).model
    c = load_checkpoint(save_random_checkpoint(tmp_path / "c.pt", TINY, seed=6)).model
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.testing.assert_close(_logits(a), _logits(b), atol=0, rtol=0)
    assert not torch.equal(_logits(a), _logits(c))


def test_resolution_order(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = save_random_checkpoint(tmp_path / "default" / "rdbpfn.pt", TINY, seed=1)
    env = save_random_checkpoint(tmp_path / "env.pt", TINY, seed=2)
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", default)
    assert resolve_checkpoint() == default
    monkeypatch.setenv(checkpoints.ENV_VAR, str(env))
    assert resolve_checkpoint() == env
    assert resolve_checkpoint(tiny_checkpoint) == tiny_checkpoint
    assert resolve_checkpoint(str(tmp_path / "default")) == default  # a folder -> rdbpfn.pt


def test_missing_file_names_every_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", tmp_path / "shipped" / "rdbpfn.pt")
    monkeypatch.setenv(checkpoints.ENV_VAR, str(tmp_path / "env.pt"))
    with pytest.raises(CheckpointNotFoundError) as info:
        load_checkpoint(tmp_path / "explicit.pt")
    message = str(info.value)
    for name in ["explicit.pt", "env.pt", "shipped/rdbpfn.pt", "model_path="]:
        assert name in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)


def test_missing_default_says_no_checkpoint_is_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", tmp_path / "rdbpfn.pt")
    with pytest.raises(CheckpointNotFoundError, match="No trained RDB-PFN checkpoint"):
        load_checkpoint()


def test_truncated_file_fails_the_sidecar_check(tiny_checkpoint: Path) -> None:
    data = tiny_checkpoint.read_bytes()
    tiny_checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_checkpoint(tiny_checkpoint)


def test_truncated_file_without_sidecar_is_unreadable(tiny_checkpoint: Path) -> None:
    data = tiny_checkpoint.read_bytes()
    tiny_checkpoint.write_bytes(data[: len(data) // 2])
    tiny_checkpoint.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(tiny_checkpoint)


def test_foreign_files_are_rejected(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="foreign file.*weights"):
        load_checkpoint(foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(text)


def test_weights_that_do_not_fit_the_config_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    state = RDBPFN(TINY).state_dict()
    config = {**TINY.to_dict(), "d_ffn": 48}
    torch.save({"config": config, "state_dict": state, "meta": {}}, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_default_checkpoint_requires_a_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = save_random_checkpoint(tmp_path / "rdbpfn.pt", TINY)
    default.with_suffix(".json").unlink()
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", default)
    with pytest.raises(CheckpointError, match="no sidecar"):
        load_checkpoint()


def test_meta_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "m.pt", RDBPFN(TINY), {"loss": torch.tensor(1.0)})
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.skipif(not checkpoints.DEFAULT_CHECKPOINT.exists(), reason="no shipped checkpoint")
def test_shipped_checkpoint_loads_and_matches_its_sidecar() -> None:
    loaded = load_checkpoint()
    sidecar = json.loads(checkpoints.DEFAULT_CHECKPOINT.with_suffix(".json").read_text())
    assert ModelConfig(**sidecar["config"]) == loaded.config
    assert sidecar["sha256"] == sha256_of(checkpoints.DEFAULT_CHECKPOINT)
