"""Batched rollouts: every episode of every task is stepped at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from maml_hydra.advantages import batch_advantages
from maml_hydra.policy import gaussian_log_prob
from maml_hydra.tasks.base import TaskFamily

# obs [T, E, D] -> (mean [T, E, A], log_std [T, A])
DistFn = Callable[[Tensor], tuple[Tensor, Tensor]]


class Trajectories(NamedTuple):
    """One batch of episodes for T tasks; every field has the task dimension first, so the
    whole tuple can be vmapped over tasks. Rewards are already zero after an episode ends."""

    obs: Tensor  # [T, E, H, D]
    actions: Tensor  # [T, E, H, A] unclipped samples
    rewards: Tensor  # [T, E, H]
    mask: Tensor  # [T, E, H] 1.0 for steps taken before the episode ended
    log_prob: Tensor  # [T, E, H] under the sampling policy
    mean: Tensor  # [T, E, H, A] sampling policy mean
    log_std: Tensor  # [T, A] sampling policy log_std
    advantages: Tensor  # [T, E, H] normalised GAE advantages

    def episode_returns(self) -> Tensor:
        """Sum of rewards per episode, [T, E]."""
        return self.rewards.sum(-1)

    @property
    def num_env_steps(self) -> int:
        return int(self.mask.sum().item())


@torch.no_grad()
def rollout(
    env: TaskFamily, dist_fn: DistFn, generator: torch.Generator, gamma: float, gae_lambda: float
) -> Trajectories:
    """Sample ``env.horizon`` steps of every (task, episode) with stochastic actions
    a = mean + std * noise (never the distribution's mode), then compute advantages."""
    num_tasks, episodes = env.batch_size
    horizon, device = env.horizon, env.device
    obs = env.reset_batch(generator)
    obs_buf = torch.empty(num_tasks, episodes, horizon, obs.shape[-1], device=device)
    act_buf = torch.empty(num_tasks, episodes, horizon, env.action_dim, device=device)
    mean_buf = torch.empty_like(act_buf)
    rew_buf = torch.empty(num_tasks, episodes, horizon, device=device)
    mask_buf = torch.empty(num_tasks, episodes, horizon, dtype=torch.bool, device=device)
    alive = torch.ones(num_tasks, episodes, dtype=torch.bool, device=device)
    log_std = torch.zeros(num_tasks, env.action_dim, device=device)
    for t in range(horizon):
        mean, log_std = dist_fn(obs)
        noise = torch.randn(mean.shape, generator=generator, device=device)
        action = mean + noise * log_std.exp()[:, None, :]
        obs_buf[:, :, t] = obs
        act_buf[:, :, t] = action
        mean_buf[:, :, t] = mean
        mask_buf[:, :, t] = alive
        obs, reward, done = env.step_batch(action)
        rew_buf[:, :, t] = reward
        alive = ~done
    mask = mask_buf.float()
    rewards = rew_buf * mask
    log_prob = gaussian_log_prob(mean_buf, log_std[:, None, None, :], act_buf)
    advantages = batch_advantages(obs_buf, rewards, mask, gamma, gae_lambda)
    return Trajectories(obs_buf, act_buf, rewards, mask, log_prob, mean_buf, log_std, advantages)
