"""The bar distribution of the regression head, and a regression model's forward pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import stats

from rdbpfn.bar_distribution import BarDistribution, default_borders, target_scale
from rdbpfn.model import RDBPFN, ModelConfig


def test_borders_follow_the_normal_and_end_at_the_clip() -> None:
    borders = default_borders(8, 6.0)
    assert len(borders) == 9 and borders[0] == -6.0 and borders[-1] == 6.0
    np.testing.assert_allclose(borders[1:-1].numpy(), stats.norm.ppf(np.arange(1, 8) / 8),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2 bins"):
        default_borders(1, 6.0)
    with pytest.raises(ValueError, match="inside the inner borders"):
        default_borders(64, 2.0)


def test_density_integrates_to_one_and_statistics_match_a_uniform_bin() -> None:
    bars = BarDistribution(torch.tensor([-1.0, 0.0, 2.0]))
    logits = torch.tensor([[0.0, 0.0]])  # half the mass on [-1, 0], half on [0, 2]
    assert torch.allclose(bars.log_density(logits, torch.tensor([-0.5])).exp(),
                          torch.tensor([0.5]))
    assert torch.allclose(bars.log_density(logits, torch.tensor([1.0])).exp(),
                          torch.tensor([0.25]))
    # beyond the outer borders: counted in the outer bins
    assert torch.allclose(bars.log_density(logits, torch.tensor([9.0])).exp(),
                          torch.tensor([0.25]))
    assert torch.allclose(bars.mean(logits), torch.tensor([0.5 * -0.5 + 0.5 * 1.0]))
    second = 0.5 * (0.25 + 1 / 12) + 0.5 * (1.0 + 4 / 12)
    assert torch.allclose(bars.std(logits), torch.tensor([(second - 0.25**2) ** 0.5]))
    assert torch.allclose(bars.quantile(logits, 0.5), torch.tensor([0.0]))
    assert torch.allclose(bars.quantile(logits, 0.75), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="0 < q < 1"):
        bars.quantile(logits, 1.0)


def test_target_scale_is_per_episode_and_never_zero() -> None:
    y = torch.tensor([[1.0, 3.0], [5.0, 5.0]])
    mean, std = target_scale(y)
    assert mean.squeeze().tolist() == [2.0, 5.0]
    assert std[0, 0] == 1.0 and 0 < std[1, 0] < 1e-9


def train_toy_regression(steps: int, target: Callable[[torch.Tensor, int], torch.Tensor],
                         seed: int = 0) -> tuple[RDBPFN, list[float]]:
    """A small regression model trained for ``steps`` Adam steps on 8 episodes of 48 rows x
    3 columns (32 context rows) whose targets are ``target(x, step)``; (model, losses)."""
    torch.manual_seed(seed)
    config = ModelConfig(d_model=32, n_heads=2, d_ffn=64, n_layers=2, n_thinking_rows=4,
                         decoder_hidden=64, task="regression", label_embedding="continuous",
                         n_bins=16)
    model = RDBPFN(config)
    bars = model.bar_distribution()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        x = torch.randn(8, 48, 3)
        mean, std = target_scale(target(x, step)[:, :32])
        y = (target(x, step) - mean) / std
        logits = model(x, y[:, :32])
        assert logits.shape == (8, 16, 16)
        loss = bars.loss(logits, y[:, 32:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def test_a_regression_model_returns_bar_logits_and_learns_to_read_a_target() -> None:
    """Target = one of the columns (which one varies by episode): a few steps of training
    bring the loss well below the start."""
    _, losses = train_toy_regression(120, lambda x, step: x[:, :, step % 3] * 2.0 + 1.0)
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.3
    with pytest.raises(ValueError, match="label_embedding='continuous'"):
        ModelConfig(task="regression")
    with pytest.raises(ValueError, match="classifier"):
        RDBPFN(ModelConfig()).bar_distribution()
