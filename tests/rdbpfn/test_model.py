"""rdbpfn.model: exactness properties of the bi-attention transformer."""

from __future__ import annotations

import json

import pytest
import torch

from rdbpfn.model import RDBPFN, ModelConfig, context_statistics, published_config
from tests.common import BATCHING_ATOL

SMALL_CONFIGS = {
    "default_small": ModelConfig(d_model=32, n_heads=4, d_ffn=64, n_layers=2, n_thinking_rows=4,
                                 decoder_hidden=32),
    "published_small": ModelConfig(
        d_model=32, n_heads=4, d_ffn=64, n_layers=2, norm_first=False,
        label_embedding="linear_mean", norm="layer", n_thinking_rows=0,
        feature_group_offsets=(0,), nan_indicator=False, decoder_hidden=32,
    ),
    "three_classes_mean_decoder": ModelConfig(
        d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_classes=3, decoder_hidden=16,
        decoder_input="label_and_features", n_thinking_rows=2,
    ),
}


def _model(name: str, seed: int = 0) -> RDBPFN:
    torch.manual_seed(seed)
    return RDBPFN(SMALL_CONFIGS[name]).eval()


def _episode(
    batch: int = 2, rows: int = 40, columns: int = 5, n_context: int = 25, n_classes: int = 2,
    seed: int = 0, nan_fraction: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, rows, columns, generator=g) * 3 + 1
    x[torch.rand(x.shape, generator=g) < nan_fraction] = float("nan")
    y = torch.randint(0, n_classes, (batch, n_context), generator=g)
    return x, y


@pytest.mark.parametrize("name", list(SMALL_CONFIGS))
def test_query_rows_are_independent(name: str) -> None:
    model = _model(name)
    x, y = _episode(n_classes=model.config.n_classes)
    n = y.shape[1]
    with torch.no_grad():
        full = model(x, y)  # 15 queries
        fewer = model(x[:, : n + 3], y)  # first 3 queries only
        alone = model(torch.cat([x[:, :n], x[:, n + 7 : n + 8]], dim=1), y)  # query 7 alone
    assert full.shape == (2, 15, model.config.n_classes)
    torch.testing.assert_close(fewer, full[:, :3], atol=BATCHING_ATOL, rtol=0)
    torch.testing.assert_close(alone[:, 0], full[:, 7], atol=BATCHING_ATOL, rtol=0)


@pytest.mark.parametrize("name", list(SMALL_CONFIGS))
def test_cache_equals_uncached_forward(name: str) -> None:
    model = _model(name)
    x, y = _episode(n_classes=model.config.n_classes, seed=1)
    n = y.shape[1]
    with torch.no_grad():
        full = model(x, y)
    cache = model.encode_context(x[:, :n], y)
    first = model.forward_queries(cache, x[:, n : n + 4])
    rest = model.forward_queries(cache, x[:, n + 4 :])
    cached = torch.cat([first, rest], dim=1)
    torch.testing.assert_close(cached, full, atol=BATCHING_ATOL, rtol=0)


@pytest.mark.parametrize("name", list(SMALL_CONFIGS))
def test_context_row_permutation_invariance(name: str) -> None:
    model = _model(name)
    x, y = _episode(n_classes=model.config.n_classes, seed=2)
    n = y.shape[1]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    x_perm = torch.cat([x[:, :n][:, perm], x[:, n:]], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x_perm, y[:, perm]), model(x, y), atol=BATCHING_ATOL, rtol=0
        )


def test_episodes_in_a_batch_are_independent() -> None:
    model = _model("default_small")
    x, y = _episode(batch=3, seed=4)
    with torch.no_grad():
        together = model(x, y)
        second = model(x[1:2], y[1:2])
    torch.testing.assert_close(second[0], together[1], atol=BATCHING_ATOL, rtol=0)


@pytest.mark.parametrize("name", list(SMALL_CONFIGS))
def test_config_round_trip_rebuilds_the_same_model(name: str) -> None:
    model = _model(name, seed=5)
    config_dict = json.loads(json.dumps(model.config.to_dict()))
    config = ModelConfig(**config_dict)
    assert config == model.config
    rebuilt = RDBPFN(config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x, y = _episode(n_classes=config.n_classes, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, y), model(x, y), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["default_small", "published_small"])
def test_last_block_label_only_is_exact(name: str) -> None:
    """The last block computes only the label token; the full block gives the same logits."""
    model = _model(name)
    x, y = _episode(seed=13)
    with torch.no_grad():
        pruned = model(x, y)
        model._last_label_only = False
        full = model(x, y)
    torch.testing.assert_close(pruned, full, atol=BATCHING_ATOL, rtol=0)


def test_config_is_hashable() -> None:
    assert len({ModelConfig(), ModelConfig(), published_config()}) == 2


def test_published_config_has_the_published_parameter_count() -> None:
    assert RDBPFN(published_config()).n_parameters() == 692_738


def test_default_config_is_small() -> None:
    n = RDBPFN(ModelConfig()).n_parameters()
    assert 100_000 < n < 500_000, n


def test_nan_and_inf_give_finite_logits_and_nan_is_the_context_mean() -> None:
    model = _model("published_small")  # no NaN indicator: a NaN cell == a cell at the mean
    x, y = _episode(nan_fraction=0.3, seed=7)
    x[0, 30, 1] = float("inf")
    x[1, 5, 2] = float("-inf")
    x[:, :, 3] = float("nan")  # all-NaN column
    with torch.no_grad():
        logits = model(x, y)
    assert torch.isfinite(logits).all()
    a, b = _missing_and_at_mean_logits(model, x, y)
    torch.testing.assert_close(a, b, atol=BATCHING_ATOL, rtol=0)


def _missing_and_at_mean_logits(
    model: RDBPFN, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of one query row whose first cell is missing, and of the same row with that
    cell set to the context mean (context = the first 25 rows)."""
    mean, _ = context_statistics(x[:, :25])
    query = x[:, 26:27].clone()
    query[:, 0, 0] = float("nan")
    at_mean = query.clone()
    at_mean[:, 0, 0] = mean[:, 0, 0]
    with torch.no_grad():
        missing = model(torch.cat([x[:, :25], query], dim=1), y)
        filled = model(torch.cat([x[:, :25], at_mean], dim=1), y)
    return missing, filled


def test_nan_indicator_tells_missing_from_mean() -> None:
    model = _model("default_small")
    x, y = _episode(nan_fraction=0.0, seed=8)
    a, b = _missing_and_at_mean_logits(model, x, y)
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize("name", ["default_small", "published_small"])
def test_constant_columns_are_ignored(name: str) -> None:
    """A column constant over the context is 0 everywhere, whatever its query values."""
    model = _model(name)
    x, y = _episode(nan_fraction=0.0, seed=9)
    zero = x.clone()
    zero[:, :, 2] = 0.0
    constant = x.clone()
    constant[:, :25, 2] = 7.5
    constant[:, 25:, 2] = torch.linspace(-50, 50, 15)
    with torch.no_grad():
        torch.testing.assert_close(model(constant, y), model(zero, y), atol=BATCHING_ATOL, rtol=0)


def test_standardization_is_shift_and_scale_invariant() -> None:
    model = _model("default_small")
    x, y = _episode(seed=10)
    with torch.no_grad():
        torch.testing.assert_close(model(x * 250.0 - 3.0, y), model(x, y), atol=1e-4, rtol=0)


def test_gradients_reach_every_parameter() -> None:
    model = _model("default_small").train()
    x, y = _episode(seed=11)
    targets = torch.randint(0, 2, (2, 15), generator=torch.Generator().manual_seed(0))
    loss = torch.nn.functional.cross_entropy(model(x, y).flatten(0, 1), targets.flatten())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"label_embedding": "onehot"}, "label_embedding"),
        ({"feature_group_offsets": (1, 2)}, "first offset"),
        ({"n_classes": 1}, "n_classes"),
    ],
)
def test_bad_config_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_query_cache_rejects_wrong_width() -> None:
    model = _model("default_small")
    x, y = _episode(seed=12)
    cache = model.encode_context(x[:, :25], y)
    with pytest.raises(ValueError, match="columns"):
        model.forward_queries(cache, x[:, 25:, :4])
