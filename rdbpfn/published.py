"""Convert the published RDB-PFN checkpoint format into our :class:`~rdbpfn.model.RDBPFN`.

The published file is ``{"model_state_dict", "step", "train_time", "eval_time", "scores"}``
with nanoTabPFN-style parameter names (``transformer_blocks.{i}.self_attention_between_*``
as packed ``nn.MultiheadAttention`` weights, ``norm1..3``, ``decoder.linear1/2``). Our
:class:`~rdbpfn.model.Attention` keeps the same packed QKV layout, so conversion is a pure
renaming; the architecture sizes are read off the weight shapes. The number of heads is
not stored in the file: the published model uses 4 (``PUBLISHED_N_HEADS``).

These weights are only ever loaded from a path the user passes, for comparison; they are
never shipped nor used to initialise our models.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from rdbpfn.model import ModelConfig, published_config

__all__ = [
    "PUBLISHED_N_HEADS",
    "convert_published",
    "is_published_format",
    "to_published_state_dict",
]

PUBLISHED_N_HEADS = 4
_STATE_KEY = "model_state_dict"
_MARKER = "transformer_blocks.0.self_attention_between_features.in_proj_weight"
_RENAMES = (
    ("transformer_blocks.", "blocks."),
    ("self_attention_between_features.", "attention_between_features."),
    ("self_attention_between_datapoints.", "attention_between_rows."),
    ("in_proj_weight", "qkv.weight"),
    ("in_proj_bias", "qkv.bias"),
    ("out_proj.", "out."),
    ("norm1.", "norm_features."),
    ("norm2.", "norm_rows."),
    ("norm3.", "norm_ffn."),
    ("target_encoder.", "label_encoder."),
)


def is_published_format(payload: Any) -> bool:
    """True when ``payload`` (a loaded file) looks like the published RDB-PFN checkpoint."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get(_STATE_KEY), dict)
        and _MARKER in payload[_STATE_KEY]
    )


def _rename(key: str) -> str:
    for old, new in _RENAMES:
        key = key.replace(old, new)
    return key


def convert_published(payload: dict) -> tuple[ModelConfig, dict[str, Tensor], dict]:
    """Published payload -> (config, our state dict, meta).

    Raises ValueError when the payload is not in the published format.
    """
    if not is_published_format(payload):
        keys = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"not a published RDB-PFN checkpoint (expected {_STATE_KEY!r} holding "
            f"{_MARKER!r}); saw {keys}. Pass a file saved by the RDB-PFN authors' code."
        )
    state = payload[_STATE_KEY]
    block_pattern = re.compile(r"transformer_blocks\.(\d+)\.")
    block_ids = {int(m.group(1)) for k in state if (m := block_pattern.match(k))}
    d_model = state["feature_encoder.linear_layer.weight"].shape[0]
    config = ModelConfig(
        **{
            **published_config().to_dict(),
            "d_model": d_model,
            "n_heads": PUBLISHED_N_HEADS,
            "d_ffn": state["transformer_blocks.0.linear1.weight"].shape[0],
            "n_layers": len(block_ids),
            "decoder_hidden": state["decoder.linear1.weight"].shape[0],
            "n_classes": state["decoder.linear2.weight"].shape[0],
        }
    )
    converted = {_rename(k): v for k, v in state.items()}
    meta = {
        "source": "published RDB-PFN checkpoint (peer weights, for comparison only)",
        "step": payload.get("step"),
        "train_time": payload.get("train_time"),
        "scores": payload.get("scores"),
    }
    return config, converted, meta


def to_published_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict (published architecture) -> the published parameter names.

    The inverse of the renaming in :func:`convert_published`; used by the speed benchmark's
    reference implementation and by tests that build a published-format file.
    """
    out = {}
    for key, value in state.items():
        for old, new in reversed(_RENAMES):
            key = key.replace(new, old)
        out[key] = value
    return out
