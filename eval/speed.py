"""Inference speed: our cached classifier vs the published implementation's operations.

``python -m eval.speed [--peer-checkpoint PATH] [--repeats 3]``

Both run in this process, on 2 threads, on the same weights: the published RDB-PFN
checkpoint when found (``--peer-checkpoint``, default ``../shared/peers/rdbpfn-official.pt``
next to the repository), else random weights of the same size. The task is 1,024 context
rows + 1,000 query rows x 30 features (a seeded synthetic binary task).

- ours: ``RDBPFNClassifier(n_estimators=1)``; ``fit`` runs the context once (timed
  separately), ``predict_proba`` runs only the query rows against the cached keys/values.
- reference: a re-implementation of the published forward pass from its documented
  operations: ``nn.MultiheadAttention`` (returning attention weights, its default) for
  both attentions, one call for the context rows and a separate one for the query rows,
  post-LayerNorm, the whole episode (context + queries) in one forward, as the published
  inference does for every query chunk.

Timing: ``--rounds`` interleaved rounds (ours three times, then the reference once) so
that both see the same machine load; the medians of all runs are compared. Prints the
times side by side, the ratio, the max abs probability difference, the cached predict
time for 10,000 query rows, and the process's peak resident memory.

It also counts the floating-point operations of both forwards (``FlopCounterMode``, plus
a formula for the CPU flash-attention kernel it does not count) and times a float32 GEMM
on the same threads. Our FLOP rate as a share of the GEMM rate shows how much time a
faster kernel could still save. The FLOP ratio bounds the speed-up of any exact
implementation that runs both forwards equally well.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry, register_flop_formula

from rdbpfn.checkpoint import load_checkpoint, save_random_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.model import ModelConfig, published_config
from rdbpfn.published import to_published_state_dict

N_THREADS = 2
N_CONTEXT, N_QUERY, N_FEATURES, N_QUERY_LARGE = 1024, 1000, 30, 10_000
SPEEDUP_BAR = 10.0
OURS_PER_ROUND = 3
DEFAULT_PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "rdbpfn-official.pt"
_CLIP = 100.0
_STD_EPS = 1e-20
GEMM_SIZE = 2048
_CPU_FLASH = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def _cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None,
                     **kwargs) -> int:
    """q k^T and p v of the CPU flash-attention kernel: 2 * B * H * Lq * Lk * (D + Dv)."""
    batch, heads, n_query, dim = query_shape
    return 2 * batch * heads * n_query * key_shape[-2] * (dim + value_shape[-1])


if _CPU_FLASH.default not in flop_registry:  # FlopCounterMode has no formula for it
    register_flop_formula(_CPU_FLASH)(_cpu_flash_flops)


class ReferenceBlock(nn.Module):
    """One published block, with the published module names (loads its state dict)."""

    def __init__(self, d_model: int, n_heads: int, d_ffn: int) -> None:
        super().__init__()
        self.self_attention_between_features = nn.MultiheadAttention(
            d_model, n_heads, batch_first=True
        )
        self.self_attention_between_datapoints = nn.MultiheadAttention(
            d_model, n_heads, batch_first=True
        )
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, n_context: int) -> Tensor:
        """src: (B, R, T, E) -> (B, R, T, E)."""
        b, r, t, e = src.shape
        rows = src.reshape(b * r, t, e)  # (B, R, T, E) -> (B*R, T, E)
        rows = self.self_attention_between_features(rows, rows, rows)[0] + rows
        src = self.norm1(rows.reshape(b, r, t, e))
        cols = src.transpose(1, 2).reshape(b * t, r, e)  # (B, R, T, E) -> (B*T, R, E)
        # Three separate slices, as in the published code: query, key and value are then
        # distinct tensor objects, which decides nn.MultiheadAttention's code path.
        left = self.self_attention_between_datapoints(
            cols[:, :n_context], cols[:, :n_context], cols[:, :n_context]
        )[0]
        right = self.self_attention_between_datapoints(
            cols[:, n_context:], cols[:, :n_context], cols[:, :n_context]
        )[0]
        cols = torch.cat([left, right], dim=1) + cols
        src = self.norm2(cols.reshape(b, t, r, e).transpose(1, 2))  # -> (B, R, T, E)
        src = self.linear2(F.gelu(self.linear1(src))) + src
        return self.norm3(src)


class _Encoder(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(1, d_model)


class _Decoder(nn.Module):
    def __init__(self, d_model: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, hidden)
        self.linear2 = nn.Linear(hidden, n_classes)


class ReferenceModel(nn.Module):
    """The published forward pass (see the module docstring); loads published state dicts."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.feature_encoder = _Encoder(config.d_model)
        self.target_encoder = _Encoder(config.d_model)
        self.transformer_blocks = nn.ModuleList(
            ReferenceBlock(config.d_model, config.n_heads, config.d_ffn)
            for _ in range(config.n_layers)
        )
        self.decoder = _Decoder(config.d_model, config.decoder_hidden, config.n_classes)

    @torch.no_grad()
    def forward(self, x: Tensor, y_context: Tensor) -> Tensor:
        """x (B, R, C) raw, y_context (B, N) -> probabilities (B, R-N, n_classes)."""
        n = y_context.shape[1]
        context = x[:, :n]
        mean = torch.nanmean(context, dim=1, keepdim=True)
        std = torch.sqrt(torch.nanmean((context - mean) ** 2, dim=1, keepdim=True))
        scaled = ((x - mean) / (std + _STD_EPS)).nan_to_num(0.0).clamp(-_CLIP, _CLIP)
        features = self.feature_encoder.linear_layer(scaled.unsqueeze(-1))  # (B, R, C, E)
        labels = y_context.float()
        padding = labels.mean(dim=1, keepdim=True).expand(-1, x.shape[1] - n)
        targets = self.target_encoder.linear_layer(torch.cat([labels, padding], 1).unsqueeze(-1))
        src = torch.cat([features, targets.unsqueeze(2)], dim=2)  # (B, R, C+1, E)
        for block in self.transformer_blocks:
            src = block(src, n)
        label_tokens = src[:, n:, -1]
        logits = self.decoder.linear2(F.gelu(self.decoder.linear1(label_tokens)))
        return logits.softmax(dim=-1)


def synthetic_task(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N_CONTEXT + N_QUERY_LARGE, N_FEATURES) float32 features, binary labels, some NaN."""
    rng = np.random.default_rng(seed)
    n = N_CONTEXT + N_QUERY_LARGE
    X = rng.normal(size=(n, N_FEATURES)) * rng.uniform(0.5, 20, N_FEATURES)
    weights = rng.normal(size=N_FEATURES) / np.sqrt(N_FEATURES)
    y = ((X / X.std(axis=0)) @ weights + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    X[rng.random(X.shape) < 0.02] = np.nan
    return X.astype(np.float32), y


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of ``fn`` on this thread (matmuls and attention)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _gemm_rate() -> float:
    """FLOP/s of a float32 GEMM of size GEMM_SIZE on the current threads (median of 5)."""
    a = torch.randn(GEMM_SIZE, GEMM_SIZE)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE)
    torch.mm(a, b)
    seconds, _ = _timed(lambda: torch.mm(a, b), 5)
    return 2 * GEMM_SIZE**3 / seconds


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--peer-checkpoint", type=Path, default=DEFAULT_PEER,
                        help="published RDB-PFN weights (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved (ours, reference) timing rounds; medians reported")
    args = parser.parse_args(argv)
    torch.set_num_threads(N_THREADS)

    with tempfile.TemporaryDirectory() as tmp:
        if args.peer_checkpoint.is_file():
            path, source = args.peer_checkpoint, f"published weights {args.peer_checkpoint}"
        else:
            path = save_random_checkpoint(Path(tmp) / "random.pt", published_config(), seed=0)
            source = "random weights of the published size (peer checkpoint not found)"
        loaded = load_checkpoint(path)
        X, y = synthetic_task()
        x_context, y_context = X[:N_CONTEXT], y[:N_CONTEXT]
        queries, queries_large = X[N_CONTEXT : N_CONTEXT + N_QUERY], X[N_CONTEXT:]
        print(f"weights: {source}; {loaded.model.n_parameters():,} parameters")
        print(f"task: {N_CONTEXT} context + {N_QUERY} query rows x {N_FEATURES} features, "
              f"torch threads {torch.get_num_threads()}")

        rss_start = _peak_rss_mb()
        clf = RDBPFNClassifier(model_path=path, n_estimators=1)
        fit_time, _ = _timed(lambda: clf.fit(x_context, y_context), 1)
        clf.predict_proba(queries[:8])  # warm-up: first-call allocations and thread start
        large_time, _ = _timed(lambda: clf.predict_proba(queries_large), 1)
        rss_ours = _peak_rss_mb()

        reference = ReferenceModel(loaded.config).eval()
        reference.load_state_dict(to_published_state_dict(loaded.model.state_dict()))
        x = torch.from_numpy(X[: N_CONTEXT + N_QUERY])[None]
        yc = torch.from_numpy(y_context)[None]
        # Interleaved rounds: the machine is shared, so both sides see the same load.
        ours_times, reference_times = [], []
        for _ in range(args.rounds):
            for _ in range(OURS_PER_ROUND):  # ours is short: sample it more often
                elapsed, ours = _timed(lambda: clf.predict_proba(queries), 1)
                ours_times.append(elapsed)
            elapsed, theirs = _timed(lambda: reference(x, yc), 1)
            reference_times.append(elapsed)
        rss_reference = _peak_rss_mb()
        predict_time = statistics.median(ours_times)
        reference_time = statistics.median(reference_times)
        member = clf.members_[0]
        query_shape = (member.x_context.shape[0], N_QUERY, member.x_context.shape[2])
        ours_flops = _flops(lambda: clf.model_.forward_queries(member.cache,
                                                               torch.zeros(query_shape)))
        reference_flops = _flops(lambda: reference(x, yc))
        gemm_rate = _gemm_rate()

    difference = float(np.abs(ours - theirs[0].double().numpy()).max())
    ratio = reference_time / predict_time
    print("ours (s): " + ", ".join(f"{t:.2f}" for t in ours_times))
    print("reference (s): " + ", ".join(f"{t:.2f}" for t in reference_times))
    print(f"{'':34s}{'ours':>10s}{'reference':>12s}")
    print(f"{'predict 1,000 queries (s)':34s}{predict_time:10.3f}{reference_time:12.3f}"
          f"   ratio {ratio:.1f}x (bar {SPEEDUP_BAR:.0f}x: "
          f"{'pass' if ratio >= SPEEDUP_BAR else 'FAIL'})")
    print(f"{'fit + predict 1,000 queries (s)':34s}{fit_time + predict_time:10.3f}"
          f"{reference_time:12.3f}   ratio {reference_time / (fit_time + predict_time):.1f}x")
    print(f"{'fit (context cache, once) (s)':34s}{fit_time:10.3f}")
    print(f"{'predict 10,000 queries, cached (s)':34s}{large_time:10.3f}"
          f"   ({large_time / predict_time:.1f}x the 1,000-row time)")
    ours_rate, reference_rate = ours_flops / predict_time, reference_flops / reference_time
    print(f"GFLOP: ours {ours_flops / 1e9:.1f}, reference {reference_flops / 1e9:.1f} "
          f"({reference_flops / ours_flops:.1f}x ours); GFLOP/s: ours {ours_rate / 1e9:.0f}, "
          f"reference {reference_rate / 1e9:.0f}, float32 GEMM {gemm_rate / 1e9:.0f} "
          f"(ours at {ours_rate / gemm_rate:.0%} of it)")
    print(f"max abs probability difference: {difference:.2e}")
    print(f"peak RSS (MB): start {rss_start:.0f}, after ours {rss_ours:.0f}, "
          f"after reference {rss_reference:.0f}")
    return 0 if ratio >= SPEEDUP_BAR and difference <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
