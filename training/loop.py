"""The curriculum training loop: resumable, distributed, observable.

One call of :func:`train` runs (or continues) a run folder::

    <out>/state.pt      train state (model, optimizer, RNGs, stream position, counters)
    <out>/best.pt       best validated weights (+ best.json sidecar), checkpoints format
    <out>/last.pt       weights at the last validation (+ last.json)
    <out>/config.json   the run's TrainConfig
    <out>/log.jsonl     one record per log step and per validation
    <out>/curve.png     learning curve

Determinism: every number a step computes depends only on the config, the global step and
the state at that step. Batches come from ``priors.EpisodeDataset`` with a seed per
curriculum phase and a start index equal to the batches that phase already consumed, so a
run resumed from ``state.pt`` replays the same data; validation (the only place where the
schedule-free ``optimizer.eval()``/``train()`` round trip touches the weights) happens at
fixed steps; saving the train state touches nothing. A run killed at any point and resumed
therefore ends with the same weights as an uninterrupted run.

Distributed: under ``torchrun`` every rank trains on its own disjoint episodes (the dataset
gets the rank), DistributedDataParallel averages gradients, rank 0 validates and writes
files. A small all-reduce per step agrees on stopping and saving so that no rank waits.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import schedulefree
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from priors import EpisodeDataset
from rdbpfn.atomic import atomic_write_json, atomic_write_text
from rdbpfn.bar_distribution import target_scale
from rdbpfn.checkpoint import load_checkpoint, save_checkpoint
from rdbpfn.model import RDBPFN, ModelConfig
from training.config import TrainConfig, resume_compatible
from training.plot import plot_log
from training.state import (
    STATE_FILE,
    Counters,
    load_train_state,
    rng_states,
    save_train_state,
    set_rng_states,
)
from training.validation import Validator, is_better

LOG_FILE = "log.jsonl"
CONFIG_FILE = "config.json"
BEST_FILE = "best.pt"
LAST_FILE = "last.pt"
CURVE_FILE = "curve.png"
DIGEST_DIR = "rank_digests"
PLOT_EVERY_SECONDS = 120.0  # redraw the curve at most this often during a run
PREFETCH_BATCHES = 4  # per DataLoader worker


@dataclass(frozen=True)
class TrainResult:
    """What one call of :func:`train` did."""

    out_dir: Path
    step: int
    finished: bool
    stopped_by: str  # "finished" | "max_minutes" | "signal" | "max_steps"
    counters: dict[str, Any]


# ---------------------------------------------------------------- environment


@dataclass(frozen=True)
class DistributedContext:
    """Rank and world size; ``world_size == 1`` means no process group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_choice: str) -> DistributedContext:
    """Join the ``torchrun`` process group if its environment variables are set.

    gloo on CPU, nccl on CUDA. Without ``WORLD_SIZE`` > 1 this is a plain single process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if device_choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch.cuda.is_available() is False; use 'cpu'")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def git_commit() -> dict[str, Any]:
    """The commit of the code being run and whether the working tree differs from it."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "training", "rdbpfn", "priors"],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def machine_info(device: torch.device, world_size: int) -> dict[str, Any]:
    """Platform, cores, torch version and accelerator of this process."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "world_size": world_size,
    }
    if device.type == "cuda":
        info["accelerator"] = torch.cuda.get_device_name(device)
    return info


def phase_seed(seed: int, phase_index: int) -> int:
    """Seed of a curriculum phase's episode stream, independent across phases."""
    return int(np.random.SeedSequence([seed, phase_index]).generate_state(1)[0])


# ---------------------------------------------------------------- data


def make_batches(
    config: TrainConfig, phase_index: int, start_batch: int, context: DistributedContext
) -> Iterator[dict[str, Any]]:
    """Batches of one curriculum phase for this rank, from batch ``start_batch`` on.

    ``priors.EpisodeDataset`` is deterministic per (seed, rank, num_workers, batch index) and
    disjoint across ranks; ``num_workers`` DataLoader processes generate batches ahead of
    the step (the stream depends on ``num_workers``, so a resumed run must keep it).
    """
    phase = config.curriculum[phase_index]
    dataset = EpisodeDataset(
        kind=phase.kind,
        rows=phase.rows,
        columns=phase.columns,
        batch_size=phase.batch_size,
        seed=phase_seed(config.seed, phase_index),
        start_index=start_batch,
        rank=context.rank,
        world_size=context.world_size,
        **dict(phase.prior_kwargs),
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=config.num_workers,
        prefetch_factor=PREFETCH_BATCHES if config.num_workers > 0 else None,
        pin_memory=context.device.type == "cuda",
        worker_init_fn=_leave_stop_signals_to_the_trainer,
    )
    return iter(loader)


def _leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """Data workers ignore SIGTERM/SIGINT: a signal sent to the whole process group (``pkill``,
    Ctrl+C, a session ending) must reach the trainer, which saves at the next step boundary
    and then shuts the workers down; a worker dying first would crash the trainer instead."""
    del worker_id
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---------------------------------------------------------------- model pieces


def build_model(config: TrainConfig, init: bool = True) -> torch.nn.Module:
    """``RDBPFN(ModelConfig(**config.model))`` initialised from ``config.seed``, or with the
    weights of the checkpoint ``config.init`` (unless ``init`` is false: a resumed run,
    whose state holds the weights).

    Raises:
        ValueError: ``config.init`` holds a model of another configuration.
    """
    torch.manual_seed(config.seed)
    model = RDBPFN(ModelConfig(**config.model))
    if init and config.init is not None:
        start = load_checkpoint(config.init, task=model.config.task)
        if start.config != model.config:
            raise ValueError(
                f"init={config.init} holds a model configured {asdict(start.config)}, not the "
                f"run's {config.model}; fine-tune from a checkpoint of the same configuration.")
        model.load_state_dict(start.model.state_dict())
    return model


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Schedule-free AdamW with the config's hyperparameters (left in train mode)."""
    opt = config.optimizer
    optimizer = schedulefree.AdamWScheduleFree(
        model.parameters(),
        lr=opt.lr,
        betas=tuple(opt.betas),
        eps=opt.eps,
        weight_decay=opt.weight_decay,
        warmup_steps=opt.warmup_steps,
    )
    optimizer.train()
    return optimizer


def query_loss(
    model: torch.nn.Module, batch: dict[str, Any], device: torch.device, autocast: str
) -> torch.Tensor:
    """Mean cross-entropy over the query rows of a batch; for a regression model the mean
    negative log density of the query targets under its bar distribution, targets
    standardised with each episode's context (as the regressor does).

    ``batch["X"]`` (B, R, C) float32, ``batch["y"]`` (B, R) int64 (float32 targets for
    regression), first ``n_context`` rows are context; the model returns logits
    (B, R - n_context, n_classes or n_bins).
    """
    x = batch["X"].to(device, non_blocking=True)
    y = batch["y"].to(device, non_blocking=True)
    n_context = int(batch["n_context"])
    core = model.module if hasattr(model, "module") else model  # DDP wraps the model
    regression = core.config.task == "regression"
    if regression:
        mean, scale = target_scale(y[:, :n_context])
        y = (y - mean) / scale
    use_autocast = autocast == "bfloat16" and device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16) if use_autocast else nullcontext():
        logits = model(x, y[:, :n_context])  # (B, Q, n_classes or n_bins)
    if regression:
        return core.bar_distribution().loss(logits, y[:, n_context:])
    return F.cross_entropy(logits.float().flatten(0, 1), y[:, n_context:].flatten())


def tensor_digest(tensors: list[torch.Tensor]) -> str:
    """sha1 over the bytes of ``tensors`` (to compare weights or batches across ranks)."""
    digest = hashlib.sha1()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- files


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON record (one line) and flush it to disk."""
    with path.open("a") as handle:
        handle.write(json.dumps(record, allow_nan=True) + "\n")
        handle.flush()


def truncate_log(path: Path, step: int) -> None:
    """Drop log records newer than ``step`` (written after the state being resumed)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def save_weights(
    path: Path, model: torch.nn.Module, meta: dict[str, Any]
) -> None:
    """Save evaluation weights in the shipped checkpoint format (with sidecar)."""
    save_checkpoint(path, model, meta)


# ---------------------------------------------------------------- the loop


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop stops at the next step boundary and saves."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now, keep the last saved state
        self.signal_name = signal.Signals(signum).name


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    max_steps: int | None = None,
    threads: int | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Run or continue the curriculum of ``config`` in ``out_dir``.

    ``resume``: continue from ``out_dir/state.pt`` if it exists (start fresh otherwise).
    ``max_minutes``: stop, save and return after this much wall time in this call.
    ``max_steps``: stop after this global step (for smoke runs and tests).
    ``threads``: torch intra-op threads (default: ``config.threads``; 0 = all cores, shared
    evenly between the ranks of this machine).
    """
    out_dir = Path(out_dir)
    context = setup_distributed(config.device)
    thread_count = threads if threads is not None else config.threads
    if thread_count == 0:
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", context.world_size))
        thread_count = max(1, (os.cpu_count() or 1) // local_ranks)
    torch.set_num_threads(thread_count)

    state_path = out_dir / STATE_FILE
    if state_path.exists() and not resume:
        raise ValueError(
            f"{state_path} exists: pass --resume to continue that run or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)

    resuming = resume and state_path.exists()
    model = build_model(config, init=not resuming).to(context.device)
    optimizer = build_optimizer(config, model)
    counters = Counters()
    if resuming:
        # CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest.
        payload = load_train_state(state_path, map_location="cpu")
        saved_config = TrainConfig.from_dict(payload["config"])
        counters = Counters.from_dict(payload["counters"])
        problems = resume_compatible(saved_config, config, counters.step)
        if problems:
            raise ValueError(
                f"cannot resume {state_path} with this config: " + "; ".join(problems)
                + ". Use the saved config (config.json in the run folder) or a new --out."
            )
        if payload["world_size"] != context.world_size:
            raise ValueError(
                f"{state_path} was written with {payload['world_size']} ranks, this run has "
                f"{context.world_size}; resume with the same --nproc_per_node"
            )
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        set_rng_states(payload["rng"][context.rank])
        counters.finished = counters.step >= config.total_steps

    if context.is_main:
        atomic_write_json(out_dir / CONFIG_FILE, config.to_dict())
        truncate_log(out_dir / LOG_FILE, counters.step)
    code = git_commit()
    machine = machine_info(context.device, context.world_size)
    counters.sessions.append({
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "start_step": counters.step,
        "end_step": counters.step,
        **code,
        "machine": machine,
    })

    runner = _Runner(config, out_dir, context, model, optimizer, counters, verbose)
    stop = _StopFlag()
    stop.install()
    try:
        stopped_by = runner.run(stop, max_minutes, max_steps)
    finally:
        stop.restore()
        runner.progress.close()
    if context.world_size > 1:
        # Only after a clean finish: a rank that failed must exit so that torchrun notices.
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(out_dir, counters.step, counters.finished, stopped_by, counters.to_dict())


class _Runner:
    """The mutable pieces of one :func:`train` call and the step they repeat."""

    def __init__(
        self,
        config: TrainConfig,
        out_dir: Path,
        context: DistributedContext,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        counters: Counters,
        verbose: bool,
    ) -> None:
        self.config = config
        self.out_dir = out_dir
        self.context = context
        self.model = model
        self.optimizer = optimizer
        self.counters = counters
        self.wrapped: torch.nn.Module = model
        if context.world_size > 1:
            device_ids = [context.local_rank] if context.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(model, device_ids=device_ids)
        self.validator: Validator | None = None
        self.progress = tqdm(
            total=config.total_steps,
            initial=counters.step,
            disable=not (verbose and config.progress_bar and context.is_main),
            dynamic_ncols=True,
        )
        self.verbose = verbose
        self.clock = time.monotonic()
        self.last_save_time = self.clock
        self.last_validation_time = self.clock
        self.last_plot_time = self.clock
        self.window = {"loss": 0.0, "steps": 0, "episodes": 0, "start": self.clock}
        self.digest_path = out_dir / DIGEST_DIR / f"rank{context.rank}.jsonl"
        if config.rank_digests:
            self.digest_path.parent.mkdir(parents=True, exist_ok=True)
            if counters.step == 0:
                self.digest_path.unlink(missing_ok=True)

    # ------------------------------------------------------------ bookkeeping

    def _tick(self) -> None:
        now = time.monotonic()
        self.counters.wall_seconds += now - self.clock
        self.clock = now

    def _agree(self, *flags: bool) -> list[bool]:
        """Logical OR of each flag over all ranks (one tiny all-reduce)."""
        if self.context.world_size == 1:
            return list(flags)
        tensor = torch.tensor([float(flag) for flag in flags], device=self.context.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return [bool(value) for value in tensor.tolist()]

    def _stream_position(self) -> dict[str, int]:
        phase_index, in_phase = self.config.phase_at(self.counters.step)
        return {"phase": phase_index, "batch": in_phase}

    def save_state(self) -> None:
        """Write ``state.pt`` (rank 0; every rank contributes its RNG state)."""
        self._tick()
        rngs = [rng_states()]
        if self.context.world_size > 1:
            gathered: list[Any] = [None] * self.context.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        self.counters.sessions[-1]["end_step"] = self.counters.step
        if self.context.is_main:
            save_train_state(
                self.out_dir / STATE_FILE,
                model=self.model,
                optimizer=self.optimizer,
                counters=self.counters,
                config=self.config.to_dict(),
                stream_position=self._stream_position(),
                world_size=self.context.world_size,
                rngs=rngs,
            )
        self.last_save_time = time.monotonic()

    def weights_meta(self, metrics: dict[str, float]) -> dict[str, Any]:
        """Sidecar metadata for weights saved at the current step."""
        phase_index, _ = self.config.phase_at(self.counters.step)
        last_phase = self.config.curriculum[min(phase_index, len(self.config.curriculum) - 1)]
        return {
            "source": "training",
            "run": self.config.name,
            "train_config": self.config.to_dict(),
            "curriculum": [dict(phase) for phase in self.config.to_dict()["curriculum"]],
            "step": self.counters.step,
            "stage": last_phase.stage,
            "episodes_per_stage": dict(self.counters.episodes_per_stage),
            "episodes_per_phase": dict(self.counters.episodes_per_phase),
            "wall_seconds": round(self.counters.wall_seconds, 1),
            "validation": metrics,
            "selected_by": self.config.validation.select_metric,
            "machine": self.counters.sessions[-1]["machine"],
            "code": {key: self.counters.sessions[-1][key] for key in ("commit", "dirty")},
        }

    # ------------------------------------------------------------ validation

    def validate(self) -> dict[str, float]:
        """Score the averaged (eval-mode) weights; keep them if they are the best so far.

        Every rank switches the optimizer to eval and back, so that all ranks keep equal
        weights; rank 0 computes the metrics and writes the files.
        """
        self._tick()
        self.last_validation_time = time.monotonic()
        self.optimizer.eval()
        self.model.eval()
        metrics: dict[str, float] = {}
        if self.context.is_main:
            if self.validator is None:
                self.validator = Validator(self.config.validation)
            started = time.monotonic()
            metrics = self.validator.evaluate(self.model, self.context.device)
            metrics["seconds"] = round(time.monotonic() - started, 2)
            metric = self.config.validation.select_metric
            improved = is_better(metric, metrics[metric], self.counters.best_score)
            meta = self.weights_meta(metrics)
            save_weights(self.out_dir / LAST_FILE, self.model, meta)
            if improved:
                self.counters.best_score = metrics[metric]
                self.counters.best_step = self.counters.step
                self.counters.best_metrics = dict(metrics)
                save_weights(self.out_dir / BEST_FILE, self.model, meta)
            append_jsonl(self.out_dir / LOG_FILE, {
                "step": self.counters.step,
                "kind": "validation",
                "episodes": sum(self.counters.episodes_per_stage.values()),
                "wall_seconds": round(self.counters.wall_seconds, 1),
                "val": metrics,
                "best": improved,
            })
            self.progress.set_postfix_str(
                f"val {metric} {metrics[metric]:.4f} best {self.counters.best_score:.4f}"
            )
        if self.context.world_size > 1:
            shared = [self.counters.best_score, self.counters.best_step]
            dist.broadcast_object_list(shared, src=0)
            self.counters.best_score, self.counters.best_step = shared
        self.optimizer.train()
        self.model.train()
        self._tick()
        return metrics

    def plot(self, force: bool) -> None:
        """Redraw ``curve.png`` (rank 0) at most every PLOT_EVERY_SECONDS unless forced."""
        now = time.monotonic()
        if not self.context.is_main or (not force and now - self.last_plot_time
                                        < PLOT_EVERY_SECONDS):
            return
        if not (self.out_dir / LOG_FILE).exists():
            return  # stopped before the first log record
        plot_log(self.out_dir / LOG_FILE, self.out_dir / CURVE_FILE)
        self.last_plot_time = now

    # ------------------------------------------------------------ training

    def train_step(self, batch: dict[str, Any], phase_index: int) -> None:
        phase = self.config.curriculum[phase_index]
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.optimizer.lr * phase.lr_scale
        loss = query_loss(self.wrapped, batch, self.context.device, self.config.autocast)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.config.optimizer.grad_clip
        )
        # Gradients are all-reduced, so every rank takes the same decision here.
        if torch.isfinite(grad_norm):
            self.optimizer.step()
        else:
            self.counters.skipped_steps += 1
        self.optimizer.zero_grad(set_to_none=True)

        episodes = phase.batch_size * self.context.world_size
        self.counters.step += 1
        stage = str(phase.stage)
        self.counters.episodes_per_stage[stage] = (
            self.counters.episodes_per_stage.get(stage, 0) + episodes
        )
        self.counters.episodes_per_phase[phase.name] = (
            self.counters.episodes_per_phase.get(phase.name, 0) + episodes
        )
        self.window["loss"] += loss.item()
        self.window["steps"] += 1
        self.window["episodes"] += episodes
        self.window["grad_norm"] = float(grad_norm)
        if self.config.rank_digests:
            append_jsonl(self.digest_path, {
                "step": self.counters.step,
                "rank": self.context.rank,
                "batch": tensor_digest([batch["X"], batch["y"]]),
                "weights": tensor_digest(list(self.model.parameters())),
            })

    def reset_optimizer(self) -> None:
        """Continue from the averaged weights with a fresh schedule-free optimizer."""
        self.optimizer.eval()  # parameters := the averaged weights x
        self.optimizer = build_optimizer(self.config, self.model)

    def log(self, phase_index: int) -> None:
        """Append the training record of the last window (loss averaged over ranks)."""
        phase = self.config.curriculum[phase_index]
        loss_sum = torch.tensor(
            [self.window["loss"], float(self.window["steps"])], device=self.context.device
        )
        if self.context.world_size > 1:
            dist.all_reduce(loss_sum)
        loss = (loss_sum[0] / loss_sum[1]).item()
        now = time.monotonic()
        rate = self.window["episodes"] / max(now - self.window["start"], 1e-9)
        self._tick()
        if self.context.is_main:
            append_jsonl(self.out_dir / LOG_FILE, {
                "step": self.counters.step,
                "kind": "train",
                "phase": phase.name,
                "stage": phase.stage,
                "loss": loss,
                "grad_norm": self.window.get("grad_norm"),
                "lr": self.optimizer.param_groups[0]["scheduled_lr"],
                "episodes": sum(self.counters.episodes_per_stage.values()),
                "episodes_per_s": rate,
                "wall_seconds": round(self.counters.wall_seconds, 1),
            })
            self.progress.set_description(f"{phase.name} loss {loss:.4f} {rate:.1f} ep/s")
        self.window = {"loss": 0.0, "steps": 0, "episodes": 0, "start": now}

    def run(self, stop: _StopFlag, max_minutes: float | None, max_steps: int | None) -> str:
        """Train until the curriculum ends or a stop condition; always save before leaving."""
        config, counters = self.config, self.counters
        started = time.monotonic()
        deadline = started + 60.0 * max_minutes if max_minutes is not None else math.inf
        step_limit = config.total_steps if max_steps is None else min(max_steps,
                                                                      config.total_steps)
        self.model.train()
        stopped_by = "finished"
        while counters.step < step_limit:
            phase_index, in_phase = config.phase_at(counters.step)
            phase = config.curriculum[phase_index]
            phase_end = counters.step - in_phase + phase.steps
            if phase.reset_optimizer and in_phase == 0:
                self.reset_optimizer()
            batches = make_batches(config, phase_index, in_phase, self.context)
            stop_now = False
            while counters.step < min(phase_end, step_limit):
                self.train_step(next(batches), phase_index)
                self.progress.update(1)
                step = counters.step
                if step % config.log_every_steps == 0:
                    self.log(phase_index)
                now = time.monotonic()
                every_minutes = config.validation.every_minutes
                timed_validation = every_minutes is not None and (
                    now - self.last_validation_time > 60 * every_minutes)
                timed_save = now - self.last_save_time > 60 * config.ckpt_every_minutes
                out_of_time = now >= deadline
                signalled = stop.signal_name is not None
                timed_validation, save_now, out_of_time, signalled = self._agree(
                    timed_validation, timed_save, out_of_time, signalled)
                if (step % config.validation.every_steps == 0 or step == config.total_steps
                        or timed_validation):
                    self.validate()
                    self.plot(force=False)
                if step % config.ckpt_every_steps == 0 or save_now:
                    self.save_state()
                if out_of_time or signalled:
                    stopped_by = "max_minutes" if out_of_time else "signal"
                    stop_now = True
                    break
            del batches  # shuts DataLoader workers down before the next phase starts
            if stop_now:
                break
        if stopped_by == "finished" and counters.step < config.total_steps:
            stopped_by = "max_steps"
        counters.finished = counters.step >= config.total_steps
        self.save_state()
        self.plot(force=True)
        if self.verbose and self.context.is_main:
            self.progress.write(
                f"stopped ({stopped_by}) at step {counters.step}/{config.total_steps}, "
                f"{counters.wall_seconds / 60:.1f} min in total; state in {self.out_dir}"
            )
        return stopped_by


