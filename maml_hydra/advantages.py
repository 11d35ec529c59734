"""Returns and advantages: pure functions, each written for one task and vmapped over tasks.

Shapes for one task: ``[E, H]`` (episodes, time) for rewards and masks, ``[E, H, D]`` for
observations. ``mask`` is 1 for steps taken before the episode ended and 0 after.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import vmap


def discount_matrix(horizon: int, discount: float, device=None, dtype=torch.float32) -> Tensor:
    """M with M[i, j] = discount^(j - i) for j >= i, else 0, so that ``x @ M.T`` is the
    discounted reward-to-go sum_{j>=i} discount^(j-i) x_j (one matmul instead of a time loop)."""
    idx = torch.arange(horizon, device=device)
    power = (idx[None, :] - idx[:, None]).to(dtype)
    return torch.where(
        power >= 0, discount ** power.clamp(min=0), torch.zeros((), dtype=dtype, device=device)
    )


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go R_t = sum_{k>=0} gamma^k r_{t+k} within each episode."""
    m = discount_matrix(rewards.shape[-1], gamma, rewards.device, rewards.dtype)
    return ((rewards * mask) @ m.T) * mask


def linear_baseline_features(obs: Tensor, mask: Tensor) -> Tensor:
    """rllab's LinearFeatureBaseline features [o, o^2, t, t^2, t^3, 1] with t = step/100."""
    horizon = obs.shape[-2]
    o = obs.clamp(-10, 10)
    t = (torch.arange(horizon, device=obs.device, dtype=obs.dtype) / 100.0)[:, None]
    t = t.expand(*obs.shape[:-1], 1)
    feats = torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)
    return feats * mask[..., None]


def fit_linear_baseline(obs: Tensor, returns: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """Per-task linear feature baseline (MAML paper, app. A.2): ridge regression of the returns
    on the features, solved in float64, then evaluated on the same steps. Returns V [E, H]."""
    feats = linear_baseline_features(obs, mask)
    x = feats.reshape(-1, feats.shape[-1]).double()
    y = returns.reshape(-1).double()
    gram = x.T @ x
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    coeffs = torch.linalg.solve(gram + reg * eye, x.T @ y)
    return (feats.double() @ coeffs).to(returns.dtype) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) with V = 0 after the end:
    A_t = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t."""
    values = values * mask
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = (rewards + gamma * next_values - values) * mask
    m = discount_matrix(rewards.shape[-1], gamma * lam, rewards.device, rewards.dtype)
    return (deltas @ m.T) * mask


def normalize(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the valid steps of one task."""
    count = mask.sum()
    mean = (x * mask).sum() / count
    var = ((x - mean) ** 2 * mask).sum() / count
    return (x - mean) / (var.sqrt() + eps) * mask


def task_advantages(obs: Tensor, rewards: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Normalised GAE advantages on a per-task linear baseline, for one task."""
    returns = discounted_returns(rewards, mask, gamma)
    values = fit_linear_baseline(obs, returns, mask)
    return normalize(gae(rewards, values, mask, gamma, lam), mask)


def batch_advantages(
    obs: Tensor, rewards: Tensor, mask: Tensor, gamma: float, lam: float
) -> Tensor:
    """``task_advantages`` vmapped over the leading task dimension."""
    return vmap(task_advantages, in_dims=(0, 0, 0, None, None))(obs, rewards, mask, gamma, lam)
