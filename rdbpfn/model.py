"""The bi-attention transformer of RDB-PFN: every cell of a table is one token.

Shapes used throughout (B = batch of episodes, R = rows, N = context rows, Q = query rows,
C = feature columns, T = C + 1 tokens per row (the label token is the last one),
E = d_model, H = heads, D = E / H, K = thinking rows):

- ``x``: (B, R, C) float32 raw features, NaN allowed; the first N rows are the context.
- ``y_context``: (B, N) int64 labels in ``[0, n_classes)``; for a regression model
  (``task="regression"``) float32 targets standardised per episode
  (:func:`rdbpfn.bar_distribution.target_scale`).
- logits: (B, R - N, n_classes); for a regression model (B, R - N, n_bins), the logits of a
  bar distribution over the standardised target (:meth:`RDBPFN.bar_distribution`).

One block = (1) attention across the T tokens of a row, (2) attention across rows per
column, where every row (context or query) attends to the context rows only (and the K
learnable thinking rows, which act as extra context rows), (3) an MLP. Rows never see
other query rows, so a query's prediction does not depend on which other queries are in
the batch, and the context activations can be computed once and cached
(:meth:`RDBPFN.encode_context` / :meth:`RDBPFN.forward_queries`).

Input normalisation lives inside the model so that training and inference agree: every
column is z-scored with the mean and (population, ddof=0) standard deviation of its finite
context values (this reproduces the published checkpoint's probabilities to ~5e-6),
missing cells (NaN) become 0 after scaling, +-inf become +-``clip_value``, everything is
clipped to +-``clip_value``, and columns that are constant over the context (including
the all-zero padding columns added by the priors, and all-NaN columns) are 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdbpfn.bar_distribution import BarDistribution, default_borders

__all__ = ["ContextCache", "ModelConfig", "RDBPFN", "published_config"]

LABEL_EMBEDDINGS = ("linear_mean", "learned", "continuous")
TASKS = ("classification", "regression")
NORMS = ("layer", "rms")
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}
DECODER_INPUTS = ("label", "label_and_features")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild an :class:`RDBPFN`; stored as a dict in every checkpoint.

    The defaults are our model for a 2-core CPU training budget (0.36M parameters):

    - ``d_model=96, n_heads=4, d_ffn=192, n_layers=3``: the measured CPU run in
      ``pfn-recipes.md`` (E96/FFN192/3 layers) beat logistic regression after 25 minutes
      on 2 cores, while E128/6 layers costs ~4x more per step; at 600 rows the row
      attention (cost ~ R * N * E per column) dominates, so width buys less than depth
      and both are kept at the smallest size known to learn well. The last block only
      computes the label token (exact), so 3 blocks cost about 2.1 blocks of compute.
    - ``norm_first=True`` + RMSNorm: pre-norm trains stably at the high learning rates
      (1e-3 .. 3e-3) that cut the speedrun's time by 42%; RMSNorm is cheaper than LayerNorm.
    - ``label_embedding="learned"``: class embeddings plus a learned "unknown" token for
      query rows; no false ordering of class ids and no dependence on the label mean.
    - ``n_thinking_rows=16``: learnable rows that join the row attention as extra context
      (speedrun: 6.06 -> 4.22 min); they also give every column an attention sink when the
      context is tiny. Cost: +16 key rows, ~3% at 600 rows.
    - ``feature_group_offsets=(0, 1, 3)``: each token embeds columns j, j+1, j+3 (mod C)
      (speedrun: 3.48 -> 2.15 min), so every token sees some interactions from step one.
    - ``nan_indicator=True``: a missing cell is told apart from a cell equal to the mean;
      DFS features over empty child sets are missing by construction.
    - ``task="regression"`` (with ``label_embedding="continuous"``: a linear map of the
      standardised target plus a learned "unknown" token for queries): the decoder returns
      ``n_bins`` logits of a bar distribution over the standardised target, bins on the
      standard normal's quantiles within ``+-target_clip``.

    :func:`published_config` gives the published RDB-PFN architecture (post-LN, numeric
    label with context-mean placeholder, no thinking rows, no grouping).
    """

    d_model: int = 96
    n_heads: int = 4
    d_ffn: int = 192
    n_layers: int = 3
    norm_first: bool = True
    label_embedding: str = "learned"
    n_classes: int = 2
    activation: str = "gelu"
    norm: str = "rms"
    n_thinking_rows: int = 16
    feature_group_offsets: tuple[int, ...] = (0, 1, 3)
    nan_indicator: bool = True
    decoder_hidden: int = 192
    decoder_input: str = "label"
    clip_value: float = 100.0
    max_features: int = 100
    """Widest input one forward pass receives from the classifier (the trained width or a
    little more); wider tables are handled by the classifier with feature subsets."""
    task: str = "classification"
    n_bins: int = 64
    target_clip: float = 6.0

    def __post_init__(self) -> None:
        # JSON round-trips turn tuples into lists: normalise so that equality holds.
        object.__setattr__(self, "feature_group_offsets", tuple(self.feature_group_offsets))
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "choose n_heads that divides d_model."
            )
        if self.label_embedding not in LABEL_EMBEDDINGS:
            raise ValueError(
                f"label_embedding={self.label_embedding!r}; use one of {LABEL_EMBEDDINGS}."
            )
        if self.norm not in NORMS:
            raise ValueError(f"norm={self.norm!r}; use one of {NORMS}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}; use one of {list(ACTIVATIONS)}.")
        if self.decoder_input not in DECODER_INPUTS:
            raise ValueError(f"decoder_input={self.decoder_input!r}; use one of {DECODER_INPUTS}.")
        if self.n_classes < 2:
            raise ValueError(f"n_classes={self.n_classes}; a classifier needs n_classes >= 2.")
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}; use one of {TASKS}.")
        if (self.task == "regression") != (self.label_embedding == "continuous"):
            raise ValueError(
                f"task={self.task!r} with label_embedding={self.label_embedding!r}: a "
                "regression model embeds its targets with label_embedding='continuous', a "
                "classifier with 'learned' or 'linear_mean'."
            )
        if self.task == "regression":
            default_borders(self.n_bins, self.target_clip)  # raises on bad sizes
        if not self.feature_group_offsets or self.feature_group_offsets[0] != 0:
            raise ValueError(
                f"feature_group_offsets={self.feature_group_offsets}; the first offset must be "
                "0 (the token's own column), e.g. (0,) or (0, 1, 3)."
            )
        if min(self.n_layers, self.n_thinking_rows + 1, self.max_features, self.d_ffn) < 1:
            raise ValueError(f"non-positive size in {self}; sizes must be >= 1.")

    @property
    def n_outputs(self) -> int:
        """Logits per query row: classes, or bins of the bar distribution."""
        return self.n_bins if self.task == "regression" else self.n_classes

    def to_dict(self) -> dict:
        """A JSON-friendly dict such that ``ModelConfig(**config.to_dict()) == config``."""
        out = asdict(self)
        out["feature_group_offsets"] = list(self.feature_group_offsets)
        return out


def published_config() -> ModelConfig:
    """The architecture of the published RDB-PFN checkpoint (692,738 parameters)."""
    return ModelConfig(
        d_model=96, n_heads=4, d_ffn=192, n_layers=6, norm_first=False,
        label_embedding="linear_mean", n_classes=2, activation="gelu", norm="layer",
        n_thinking_rows=0, feature_group_offsets=(0,), nan_indicator=False,
        decoder_hidden=192, decoder_input="label", clip_value=100.0, max_features=100,
    )


@dataclass
class ContextCache:
    """What query rows need from the context; computed once per fit.

    ``keys`` / ``values``: one (B*T, H, K+N, D) tensor per layer (row attention); the
    last layer keeps only the label column, (B, H, K+N, D), when only it is decoded.
    """

    mean: Tensor  # (B, 1, C) context mean of finite values
    inv_std: Tensor  # (B, 1, C) 1 / std; 0 for constant columns
    label_mean: Tensor  # (B, 1) mean context label (used by "linear_mean")
    keys: list[Tensor]
    values: list[Tensor]
    n_context: int

    @property
    def n_features(self) -> int:
        return self.mean.shape[-1]

    @property
    def batch_size(self) -> int:
        return self.mean.shape[0]


def context_statistics(x_context: Tensor) -> tuple[Tensor, Tensor]:
    """Per-column mean and inverse std over finite context values.

    x_context: (B, N, C) -> mean (B, 1, C), inv_std (B, 1, C) (0 where constant/empty).
    The std is the population std (ddof=0), as in the published model; a column is
    constant when its finite context values have max == min (or fewer than two).
    """
    finite = torch.isfinite(x_context)
    count = finite.sum(dim=1, keepdim=True)
    zeroed = torch.where(finite, x_context, torch.zeros((), dtype=x_context.dtype))
    mean = zeroed.sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = torch.where(finite, x_context - mean, torch.zeros((), dtype=x_context.dtype))
    var = centred.square().sum(dim=1, keepdim=True) / count.clamp(min=1)
    high = torch.where(finite, x_context, torch.full((), -math.inf)).amax(dim=1, keepdim=True)
    low = torch.where(finite, x_context, torch.full((), math.inf)).amin(dim=1, keepdim=True)
    varying = (count >= 2) & (high > low)
    inv_std = torch.where(varying, var.clamp(min=1e-30).rsqrt(), torch.zeros(()))
    return mean, inv_std


def standardize(x: Tensor, mean: Tensor, inv_std: Tensor, clip_value: float) -> Tensor:
    """(B, R, C) raw -> (B, R, C) scaled: NaN -> 0, +-inf -> +-clip, constant columns -> 0."""
    scaled = ((x - mean) * inv_std).nan_to_num(nan=0.0, posinf=clip_value, neginf=-clip_value)
    scaled = torch.where(inv_std > 0, scaled, torch.zeros((), dtype=scaled.dtype))
    return scaled.clamp(-clip_value, clip_value)


class FeatureEncoder(nn.Module):
    """Scaled cells -> tokens: (B, R, C) -> (B, R, C, E).

    Token j embeds the cells of columns (j + offset) mod C for every offset, plus one
    missing-cell flag per embedded cell when ``nan_indicator``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.offsets = config.feature_group_offsets
        self.nan_indicator = config.nan_indicator
        n_inputs = len(self.offsets) * (2 if self.nan_indicator else 1)
        self.linear_layer = nn.Linear(n_inputs, config.d_model)

    def forward(self, scaled: Tensor, missing: Tensor) -> Tensor:
        parts = [scaled.roll(-offset, dims=-1) for offset in self.offsets]
        if self.nan_indicator:
            flags = missing.to(scaled.dtype)
            parts += [flags.roll(-offset, dims=-1) for offset in self.offsets]
        return self.linear_layer(torch.stack(parts, dim=-1))  # (B, R, C, n_inputs) -> E


class LabelEncoder(nn.Module):
    """Labels -> label tokens (B, R, E); query rows get a placeholder.

    "linear_mean": Linear(1, E) of the label value; the placeholder is the context mean.
    "learned": one embedding per class plus a learned "unknown" embedding for queries.
    "continuous": Linear(1, E) of the standardised target (clipped to +-target_clip) plus a
    learned "unknown" embedding for queries (regression).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.kind = config.label_embedding
        self.n_classes = config.n_classes
        self.clip = config.target_clip
        if self.kind in ("linear_mean", "continuous"):
            self.linear_layer = nn.Linear(1, config.d_model)
        else:
            self.embedding = nn.Embedding(config.n_classes + 1, config.d_model)
        if self.kind == "continuous":
            self.unknown = nn.Parameter(torch.randn(config.d_model) * 0.02)

    def encode_context(self, y_context: Tensor) -> Tensor:
        """(B, N) int64 (float32 for "continuous") -> (B, N, E)."""
        if self.kind == "continuous":
            clipped = y_context.to(torch.float32).clamp(-self.clip, self.clip)
            return self.linear_layer(clipped.unsqueeze(-1))
        if self.kind == "linear_mean":
            return self.linear_layer(y_context.to(torch.float32).unsqueeze(-1))
        return self.embedding(y_context)

    def encode_queries(self, label_mean: Tensor, n_queries: int) -> Tensor:
        """label_mean (B, 1) -> (B, Q, E) placeholder tokens."""
        batch = label_mean.shape[0]
        if self.kind == "continuous":
            token = self.unknown.view(1, 1, -1).expand(batch, 1, -1)
        elif self.kind == "linear_mean":
            token = self.linear_layer(label_mean.unsqueeze(-1))  # (B, 1, E)
        else:
            token = self.embedding.weight[self.n_classes].expand(batch, 1, -1)
        return token.expand(batch, n_queries, -1)


def _make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "layer":
        return nn.LayerNorm(config.d_model)
    return nn.RMSNorm(config.d_model)


class Attention(nn.Module):
    """Multi-head attention with packed QKV (same layout as ``nn.MultiheadAttention``)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def project(self, x: Tensor, part: slice) -> Tensor:
        """x (..., E) -> slice of (..., 3E) where part selects q (0:1), k,v (1:3) or all."""
        e = x.shape[-1]
        rows = slice(part.start * e, part.stop * e)
        return F.linear(x, self.qkv.weight[rows], self.qkv.bias[rows])

    def split_heads(self, t: Tensor) -> Tensor:
        """(S, L, E) -> (S, H, L, D)."""
        s, length, e = t.shape
        return t.view(s, length, self.n_heads, e // self.n_heads).transpose(1, 2)

    def merge_heads(self, t: Tensor) -> Tensor:
        """(S, H, L, D) -> (S, L, E)."""
        s, h, length, d = t.shape
        return t.transpose(1, 2).reshape(s, length, h * d)


class Block(nn.Module):
    """Row attention, column (row-to-context) attention, MLP; pre- or post-norm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.activation = ACTIVATIONS[config.activation]
        self.fused_activation = config.activation if config.activation in ("gelu", "relu") else None
        self.attention_between_features = Attention(config.d_model, config.n_heads)
        self.attention_between_rows = Attention(config.d_model, config.n_heads)
        self.linear1 = nn.Linear(config.d_model, config.d_ffn)
        self.linear2 = nn.Linear(config.d_ffn, config.d_model)
        self.norm_features = _make_norm(config)
        self.norm_rows = _make_norm(config)
        self.norm_ffn = _make_norm(config)

    def _residual(self, h: Tensor, norm: nn.Module, sublayer, label_only: bool = False) -> Tensor:
        """Residual around sublayer; with label_only the output keeps the label token only."""
        base = h[:, :, -1:] if label_only else h
        if self.norm_first:
            return base + sublayer(norm(h))
        return norm(base + sublayer(h))

    def _features(self, x: Tensor, label_only: bool = False) -> Tensor:
        """Attention across the T tokens of each row: (B, R, T, E) -> (B, R, T, E).

        label_only: only the label token queries (keys/values are all T tokens)
        -> (B, R, 1, E); used by the last block, whose other outputs are never read.
        """
        b, r, t, e = x.shape
        att = self.attention_between_features
        rows = x.reshape(b * r, t, e)  # (B, R, T, E) -> (B*R, T, E)
        if label_only:
            q = att.split_heads(att.project(rows[:, -1:], slice(0, 1)))  # (B*R, H, 1, D)
            k, v = (att.split_heads(p) for p in att.project(rows, slice(1, 3)).chunk(2, -1))
        else:
            qkv = att.project(rows, slice(0, 3))  # (B*R, T, 3E)
            q, k, v = (att.split_heads(part) for part in qkv.chunk(3, dim=-1))
        out = att.merge_heads(F.scaled_dot_product_attention(q, k, v))
        return att.out(out).view(b, r, -1, e)

    def _mlp(self, x: Tensor) -> Tensor:
        """(..., E) -> (..., E). Without autograd, linear1 + GELU/ReLU run as one fused
        ``torch._addmm_activation`` (bitwise equal, measured ~1.5x faster on CPU)."""
        if self.fused_activation is not None and not torch.is_grad_enabled():
            flat = x.reshape(-1, x.shape[-1])  # (..., E) -> (M, E)
            hidden = torch._addmm_activation(
                self.linear1.bias, flat, self.linear1.weight.t(),
                use_gelu=self.fused_activation == "gelu",
            )
            return self.linear2(hidden).view(*x.shape[:-1], -1)
        return self.linear2(self.activation(self.linear1(x)))

    def _to_columns(self, x: Tensor) -> Tensor:
        """(B, R, T, E) -> (B*T, R, E)."""
        b, r, t, e = x.shape
        return x.transpose(1, 2).reshape(b * t, r, e)

    def _from_columns(self, x: Tensor, b: int) -> Tensor:
        """(B*T, R, E) -> (B, R, T, E), contiguous: a strided result would make every later
        elementwise op and linear layer copy (measured: ~15% of query time)."""
        bt, r, e = x.shape
        return x.view(b, bt // b, r, e).transpose(1, 2).contiguous()

    def context_keys_values(self, context_normed: Tensor) -> tuple[Tensor, Tensor]:
        """(B, K+N, T, E) (already normed if pre-norm) -> keys, values (B*T, H, K+N, D)."""
        att = self.attention_between_rows
        kv = att.project(self._to_columns(context_normed), slice(1, 3))  # (B*T, K+N, 2E)
        k, v = kv.chunk(2, dim=-1)
        return att.split_heads(k), att.split_heads(v)

    def _rows(self, x: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        """Every row of x attends to the cached context: (B, R, T, E) -> (B, R, T, E)."""
        att = self.attention_between_rows
        q = att.split_heads(att.project(self._to_columns(x), slice(0, 1)))  # (B*T, H, R, D)
        out = att.merge_heads(F.scaled_dot_product_attention(q, keys, values))
        return self._from_columns(att.out(out), x.shape[0])

    def forward(self, h: Tensor, n_context: int, label_only: bool = False) -> Tensor:
        """h: (B, R, T, E); the first n_context rows (thinking + context) are keys/values.

        Returns (B, R, T, E), or (B, R, 1, E) (the label tokens) when label_only.
        """
        return self._step(h, n_context, label_only=label_only)[0]

    def _step(
        self, h: Tensor, n_context: int, cached: tuple[Tensor, Tensor] | None = None,
        label_only: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One block; also returns the context keys/values of the row attention."""
        h = self._residual(
            h, self.norm_features, lambda x: self._features(x, label_only), label_only
        )
        kv: tuple[Tensor, Tensor] = cached  # type: ignore[assignment]

        def rows(x: Tensor) -> Tensor:
            nonlocal kv
            if kv is None:
                kv = self.context_keys_values(x[:, :n_context])
            return self._rows(x, *kv)

        h = self._residual(h, self.norm_rows, rows)
        h = self._residual(h, self.norm_ffn, self._mlp)
        return h, kv


class Decoder(nn.Module):
    """Query label tokens (B, Q, E_in) -> logits (B, Q, n_classes)."""

    def __init__(self, d_in: int, hidden: int, n_classes: int, activation: str) -> None:
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.linear1 = nn.Linear(d_in, hidden)
        self.linear2 = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.activation(self.linear1(x)))


class RDBPFN(nn.Module):
    """Bi-attention in-context classifier; see the module docstring for shapes."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_encoder = FeatureEncoder(config)
        self.label_encoder = LabelEncoder(config)
        self.thinking_rows = (
            nn.Parameter(torch.randn(config.n_thinking_rows, config.d_model) * 0.02)
            if config.n_thinking_rows
            else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = _make_norm(config) if config.norm_first else nn.Identity()
        d_in = config.d_model * (2 if config.decoder_input == "label_and_features" else 1)
        self.decoder = Decoder(d_in, config.decoder_hidden, config.n_outputs, config.activation)
        # The decoder reads only the label token, so the last block computes only that
        # token (exact; saves ~1/n_layers of the compute). Not with decoder_input that
        # also averages the feature tokens.
        self._last_label_only = config.decoder_input == "label"

    def _label_only(self, index: int) -> bool:
        return self._last_label_only and index == len(self.blocks) - 1

    def bar_distribution(self) -> BarDistribution:
        """The predictive distribution of a regression model's logits.

        Raises:
            ValueError: the model is a classifier.
        """
        if self.config.task != "regression":
            raise ValueError("this model is a classifier; its logits are class scores, not "
                             "a bar distribution.")
        return BarDistribution(default_borders(self.config.n_bins, self.config.target_clip))

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ---- input embedding ---------------------------------------------------------------
    def _check_inputs(self, x: Tensor, n_context: int | None = None) -> None:
        if x.dim() != 3 or not x.is_floating_point():
            raise ValueError(
                f"x must be a float tensor of shape (B, R, C); got {tuple(x.shape)} "
                f"{x.dtype}. Add a batch dimension with x.unsqueeze(0)."
            )
        if x.shape[-1] < 1:
            raise ValueError("x has no feature columns; pass at least one column.")
        if n_context is not None and n_context < 1:
            raise ValueError(f"y_context has {n_context} rows; the context needs >= 1 row.")

    def _embed_rows(self, x: Tensor, mean: Tensor, inv_std: Tensor, labels: Tensor) -> Tensor:
        """x (B, R, C), label tokens (B, R, E) -> tokens (B, R, C+1, E)."""
        scaled = standardize(x, mean, inv_std, self.config.clip_value)
        features = self.feature_encoder(scaled, torch.isnan(x))  # (B, R, C, E)
        return torch.cat([features, labels.unsqueeze(2)], dim=2)

    def _thinking(self, batch: int, tokens: int) -> Tensor:
        """(B, K, T, E) learned rows, identical across the T tokens of a row."""
        k, e = self.thinking_rows.shape
        return self.thinking_rows.view(1, k, 1, e).expand(batch, k, tokens, e)

    def _decode(self, h_queries: Tensor) -> Tensor:
        """(B, Q, T, E) or label tokens only (B, Q, 1, E) -> logits (B, Q, n_classes)."""
        h_queries = self.final_norm(h_queries)
        label_token = h_queries[:, :, -1]
        if self.config.decoder_input == "label_and_features":
            label_token = torch.cat([label_token, h_queries[:, :, :-1].mean(dim=2)], dim=-1)
        return self.decoder(label_token)

    # ---- full forward (training) -------------------------------------------------------
    def forward(self, x: Tensor, y_context: Tensor) -> Tensor:
        """x: (B, R, C) float, y_context: (B, N) int64 -> logits (B, R - N, n_classes)."""
        n_context = y_context.shape[1]
        self._check_inputs(x, n_context)
        x_context = x[:, :n_context]
        mean, inv_std = context_statistics(x_context)
        label_mean = y_context.to(torch.float32).mean(dim=1, keepdim=True)  # (B, 1)
        labels = torch.cat(
            [
                self.label_encoder.encode_context(y_context),
                self.label_encoder.encode_queries(label_mean, x.shape[1] - n_context),
            ],
            dim=1,
        )  # (B, R, E)
        h = self._embed_rows(x, mean, inv_std, labels)  # (B, R, T, E)
        n_keys = n_context
        if self.thinking_rows is not None:
            h = torch.cat([self._thinking(h.shape[0], h.shape[2]), h], dim=1)
            n_keys += self.thinking_rows.shape[0]
        for index, block in enumerate(self.blocks):
            h = block(h, n_keys, label_only=self._label_only(index))
        return self._decode(h[:, n_keys:])

    # ---- cached inference --------------------------------------------------------------
    @torch.no_grad()
    def encode_context(self, x_context: Tensor, y_context: Tensor) -> ContextCache:
        """Run the context rows once: x_context (B, N, C), y_context (B, N) -> cache."""
        self._check_inputs(x_context, y_context.shape[1])
        if x_context.shape[1] != y_context.shape[1]:
            raise ValueError(
                f"x_context has {x_context.shape[1]} rows but y_context has "
                f"{y_context.shape[1]}; pass one label per context row."
            )
        mean, inv_std = context_statistics(x_context)
        label_mean = y_context.to(torch.float32).mean(dim=1, keepdim=True)
        h = self._embed_rows(x_context, mean, inv_std, self.label_encoder.encode_context(y_context))
        if self.thinking_rows is not None:
            h = torch.cat([self._thinking(h.shape[0], h.shape[2]), h], dim=1)
        keys, values = [], []
        for index, block in enumerate(self.blocks):
            h, (k, v) = block._step(h, h.shape[1], label_only=self._label_only(index))
            keys.append(k)
            values.append(v)
        return ContextCache(mean, inv_std, label_mean, keys, values, y_context.shape[1])

    @torch.no_grad()
    def forward_queries(self, cache: ContextCache, x_query: Tensor) -> Tensor:
        """x_query (B, Q, C) against a cached context -> logits (B, Q, n_classes)."""
        self._check_inputs(x_query)
        if x_query.shape[0] != cache.batch_size or x_query.shape[2] != cache.n_features:
            raise ValueError(
                f"x_query has shape {tuple(x_query.shape)} but the context cache was built "
                f"for batch {cache.batch_size} and {cache.n_features} columns; pass queries "
                "with the same batch size and columns as the context."
            )
        labels = self.label_encoder.encode_queries(cache.label_mean, x_query.shape[1])
        h = self._embed_rows(x_query, cache.mean, cache.inv_std, labels)
        for index, (block, k, v) in enumerate(
            zip(self.blocks, cache.keys, cache.values, strict=True)
        ):
            h = block._step(h, 0, (k, v), label_only=self._label_only(index))[0]
        return self._decode(h)
