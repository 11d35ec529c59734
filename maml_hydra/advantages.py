"""Returns and advantages: pure functions, each written for one task and vmapped over tasks.

Shapes for one task: ``[E, H]`` (rows, time) for rewards and masks, ``[E, H, D]`` for
observations. ``mask`` is 1 for the steps that count and 0 elsewhere. A row holds one episode
from time 0 (``train.sampling=episodes``) or several back to back (``train.sampling=steps``,
where an episode that ends early restarts in its row); ``ends`` marks the last step of each
episode and ``episode_layout`` turns it into what the functions below need.
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


def last_steps(mask: Tensor) -> Tensor:
    """``ends`` for rows that each hold one episode: the last step with mask 1."""
    after = torch.cat([mask[..., 1:], torch.zeros_like(mask[..., :1])], dim=-1)
    return (mask > 0) & (after == 0)


def episode_layout(ends: Tensor) -> tuple[Tensor, Tensor]:
    """From ``ends`` (bool, the last step of every episode, any leading shape, time last):
    ``end_index``, the time of the last step of the episode that step t belongs to (the row's
    last index where no episode ends after t), and ``episode_time``, the steps since that
    episode started. Not vmappable (cummin/cummax); computed once per batch."""
    length = ends.shape[-1]
    t = torch.arange(length, device=ends.device).expand_as(ends)
    end_index = torch.where(ends, t, length - 1).flip(-1).cummin(-1).values.flip(-1)
    previous_end = torch.where(ends, t, -1).cummax(-1).values
    previous_end = torch.cat(
        [torch.full_like(previous_end[..., :1], -1), previous_end[..., :-1]], -1
    )
    return end_index, (t - previous_end - 1).to(torch.float32)


def discounted_sums(x: Tensor, discount: float, end_index: Tensor | None = None) -> Tensor:
    """S_t = sum_{k>=0} discount^k x_{t+k} up to the end of t's episode. One matmul over the
    whole row, minus the part that belongs to later episodes: S_t = G_t - discount^(n - t) G_n
    with n = end_index_t + 1 (G_n = 0 past the row)."""
    length = x.shape[-1]
    g = x @ discount_matrix(length, discount, x.device, x.dtype).T
    if end_index is None:
        return g
    nxt = end_index + 1
    g_next = torch.cat([g, torch.zeros_like(g[..., :1])], dim=-1).gather(-1, nxt)
    t = torch.arange(length, device=x.device)
    return g - discount ** (nxt - t).to(x.dtype) * g_next


def discounted_returns(
    rewards: Tensor, mask: Tensor, gamma: float, end_index: Tensor | None = None
) -> Tensor:
    """Reward-to-go R_t = sum_{k>=0} gamma^k r_{t+k} within each episode."""
    return discounted_sums(rewards * mask, gamma, end_index) * mask


def linear_baseline_features(
    obs: Tensor, mask: Tensor, episode_time: Tensor | None = None
) -> Tensor:
    """rllab's LinearFeatureBaseline features [o, o^2, t, t^2, t^3, 1] with t = step/100,
    the step counted from the start of the episode."""
    o = obs.clamp(-10, 10)
    if episode_time is None:
        horizon = obs.shape[-2]
        t = (torch.arange(horizon, device=obs.device, dtype=obs.dtype) / 100.0)[:, None]
        t = t.expand(*obs.shape[:-1], 1)
    else:
        t = (episode_time.to(obs.dtype) / 100.0)[..., None]
    feats = torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)
    return feats * mask[..., None]


def fit_linear_baseline(
    obs: Tensor,
    returns: Tensor,
    mask: Tensor,
    episode_time: Tensor | None = None,
    reg: float = 1e-5,
) -> Tensor:
    """Per-task linear feature baseline (MAML paper, app. A.2): ridge regression of the returns
    on the features, solved in float64, then evaluated on the same steps. Returns V [E, H]."""
    feats = linear_baseline_features(obs, mask, episode_time)
    x = feats.reshape(-1, feats.shape[-1]).double()
    y = returns.reshape(-1).double()
    gram = x.T @ x
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    coeffs = torch.linalg.solve(gram + reg * eye, x.T @ y)
    return (feats.double() @ coeffs).to(returns.dtype) * mask


def gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    gamma: float,
    lam: float,
    end_index: Tensor | None = None,
) -> Tensor:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) with V = 0 after the end
    of each episode: A_t = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t.
    ``end_index`` (from ``episode_layout``) is needed only when a row holds several episodes."""
    values = values * mask
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    if end_index is not None:  # V_{t+1} belongs to the next episode where t ends one
        ends = end_index == torch.arange(values.shape[-1], device=values.device)
        next_values = torch.where(ends, 0.0, next_values)
    deltas = (rewards + gamma * next_values - values) * mask
    return discounted_sums(deltas, gamma * lam, end_index) * mask


def normalize(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the valid steps of one task."""
    count = mask.sum()
    mean = (x * mask).sum() / count
    var = ((x - mean) ** 2 * mask).sum() / count
    return (x - mean) / (var.sqrt() + eps) * mask


def task_advantages(
    obs: Tensor,
    rewards: Tensor,
    mask: Tensor,
    gamma: float,
    lam: float,
    end_index: Tensor | None = None,
    episode_time: Tensor | None = None,
) -> Tensor:
    """Normalised GAE advantages on a per-task linear baseline, for one task. Without
    ``end_index``/``episode_time`` (``episode_layout``) each row is one episode from time 0."""
    returns = discounted_returns(rewards, mask, gamma, end_index)
    values = fit_linear_baseline(obs, returns, mask, episode_time)
    return normalize(gae(rewards, values, mask, gamma, lam, end_index), mask)


def batch_advantages(
    obs: Tensor,
    rewards: Tensor,
    mask: Tensor,
    gamma: float,
    lam: float,
    ends: Tensor | None = None,
    pooled: bool = False,
) -> Tensor:
    """``task_advantages`` vmapped over the leading task dimension; ``ends`` [T, E, H] marks
    the last step of every episode (default: each row is one episode, ending at its last
    valid step). ``pooled``: one baseline fitted on every task's steps and one standardisation
    over them all (``LinearBaseline.batch``); returns and GAE stay within each episode."""
    if ends is None:
        ends = last_steps(mask)
    end_index, episode_time = episode_layout(ends)
    if not pooled:
        return vmap(task_advantages, in_dims=(0, 0, 0, None, None, 0, 0))(
            obs, rewards, mask, gamma, lam, end_index, episode_time
        )
    returns = vmap(discounted_returns, in_dims=(0, 0, None, 0))(rewards, mask, gamma, end_index)
    values = fit_linear_baseline(obs, returns, mask, episode_time)
    per_task = vmap(gae, in_dims=(0, 0, 0, None, None, 0))
    return normalize(per_task(rewards, values, mask, gamma, lam, end_index), mask)
