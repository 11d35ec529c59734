"""Batched rollouts: every episode of every task is stepped at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from maml_hydra.advantages import batch_advantages, episode_layout, last_steps
from maml_hydra.config import Sampling
from maml_hydra.policy import gaussian_log_prob
from maml_hydra.tasks.base import TaskFamily

# obs [T, E, D] -> (mean [T, E, A], log_std [T, A])
DistFn = Callable[[Tensor], tuple[Tensor, Tensor]]


class SamplingPlan(NamedTuple):
    """``train.sampling`` decided once, as numbers: a family of ``rows`` rows per task, and
    ``rollout``'s step ``budget`` per task (None: one episode per row) and ``pooled``."""

    rows: int
    budget: int | None = None
    pooled: bool = False

    @classmethod
    def of(cls, sampling: Sampling | str, episodes: int, horizon: int, training: bool):
        """episodes: ``episodes`` rows, one episode each. steps: ``episodes`` rows sharing a
        budget of ``episodes x horizon`` env steps per task. sequential: in training one row per
        task, the tasks together having their budgets (the paper's training sampler); in
        evaluation as ``steps`` (the paper's evaluation stepped 40 environments per goal)."""
        sampling = Sampling(sampling)
        if sampling is Sampling.episodes:
            return cls(episodes)
        if sampling is Sampling.sequential and training:
            return cls(1, episodes * horizon, pooled=True)
        return cls(episodes, episodes * horizon)

    def describe(self, episodes: int) -> str:
        """What one batch of a task is, for a report."""
        if self.budget is None:
            return f"{episodes} episodes"
        return f"a budget of {episodes} x horizon env steps"


class Trajectories(NamedTuple):
    """One batch of episodes for T tasks; every field has the task dimension first, so the
    whole tuple can be vmapped over tasks. A row holds one episode; with a step ``budget`` in
    ``rollout`` (episodes ending early) each task's episodes lie back to back in one row,
    ``[T, 1, N]``. Rewards are zero wherever ``mask`` is."""

    obs: Tensor  # [T, E, H, D]
    actions: Tensor  # [T, E, H, A] unclipped samples
    rewards: Tensor  # [T, E, H]
    mask: Tensor  # [T, E, H] 1.0 for the steps of the batch's (completed) episodes
    log_prob: Tensor  # [T, E, H] under the sampling policy
    mean: Tensor  # [T, E, H, A] sampling policy mean
    log_std: Tensor  # [T, A] sampling policy log_std
    advantages: Tensor  # [T, E, H] normalised GAE advantages
    ends: Tensor  # [T, E, H] 1.0 at the last step of every episode

    def task_returns(self) -> Tensor:
        """Average return (sum of rewards) per episode of each task, [T]."""
        return self.rewards.sum(dim=(1, 2)) / self.ends.sum(dim=(1, 2))

    @property
    def num_env_steps(self) -> int:
        return int(self.mask.sum().item())


@torch.no_grad()
def rollout(
    env: TaskFamily,
    dist_fn: DistFn,
    generator: torch.Generator,
    gamma: float,
    gae_lambda: float,
    budget: int | None = None,
    pooled: bool = False,
    mode: bool = False,
    pooled_baseline: bool = False,
) -> Trajectories:
    """Sample every (task, row) at once with stochastic actions a = mean + std * noise, then
    compute advantages. ``mode=True`` acts with the distribution's mode, a = mean, and draws no
    noise: only to score a policy (Meta-World's evaluation scores its agents' ``eval_action``,
    the mode); the batch's log-probabilities and advantages are then not a policy gradient's.

    ``budget=None``: each row is one episode of at most ``env.horizon`` steps.
    ``budget=B`` (rllab's samplers, which the MAML paper's code used): each task gets a budget
    of B env steps; an episode that ends restarts in its row, and the task keeps the episodes
    completed by the step at which its budget is reached (the unfinished ones are dropped).
    Tasks whose episodes end early thus get more of them. ``pooled=True``: the tasks share
    their budgets, ``T * B``, and all stop at the step at which they together reach it (the
    paper's training sampler, one environment per task: build the family with one row per
    task). A row never needs more than ``ceil(B / E) + horizon - 1`` steps; with ``B = E *
    horizon`` and no early ends every mode coincides with ``budget=None``.
    ``pooled_baseline``: advantages on one linear baseline fitted over all tasks
    (``advantages.batch_advantages``).
    """
    num_tasks, episodes = env.batch_size
    horizon, device = env.horizon, env.device
    steps = budget is not None
    length = -(-budget // episodes) + horizon - 1 if steps else horizon
    obs = env.reset_batch(generator)
    obs_buf = torch.empty(num_tasks, episodes, length, obs.shape[-1], device=device)
    act_buf = torch.empty(num_tasks, episodes, length, env.action_dim, device=device)
    mean_buf = torch.empty_like(act_buf)
    rew_buf = torch.empty(num_tasks, episodes, length, device=device)
    mask_buf = torch.empty(num_tasks, episodes, length, dtype=torch.bool, device=device)
    end_buf = torch.zeros(num_tasks, episodes, length, dtype=torch.bool, device=device)
    alive = torch.ones(num_tasks, episodes, dtype=torch.bool, device=device)
    log_std = torch.zeros(num_tasks, env.action_dim, device=device)
    episode_time = torch.zeros(num_tasks, episodes, dtype=torch.long, device=device)
    completed = torch.zeros(num_tasks, dtype=torch.long, device=device)  # steps mode
    stop = torch.full((num_tasks,), length - 1, dtype=torch.long, device=device)
    reached = torch.zeros(num_tasks, dtype=torch.bool, device=device)
    for t in range(length):
        mean, log_std = dist_fn(obs)
        if mode:
            action = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, device=device)
            action = mean + noise * log_std.exp()[:, None, :]
        obs_buf[:, :, t] = obs
        act_buf[:, :, t] = action
        mean_buf[:, :, t] = mean
        mask_buf[:, :, t] = alive
        obs, reward, done = env.step_batch(action)
        rew_buf[:, :, t] = reward
        if not steps:
            alive = ~done
            continue
        episode_time += 1
        end = done | (episode_time >= horizon)
        end_buf[:, :, t] = end
        completed += torch.where(end & ~reached[:, None], episode_time, 0).sum(dim=1)
        if pooled:
            newly = (completed.sum() >= num_tasks * budget).expand(num_tasks)
        else:
            newly = ~reached & (completed >= budget)
        stop = torch.where(newly, t, stop)
        reached |= newly
        if bool(reached.all()):
            length = t + 1
            break
        if bool(end.any()):
            obs = env.restart_batch(end, generator)
            episode_time = torch.where(end, 0, episode_time)
    if steps:
        buffers = (obs_buf, act_buf, mean_buf, rew_buf, end_buf)
        obs_buf, act_buf, mean_buf, rew_buf, end_buf = (b[:, :, :length] for b in buffers)
        # keep the steps of the episodes that ended by their task's stop step
        end_index, _ = episode_layout(end_buf)
        mask_buf = end_buf.gather(-1, end_index) & (end_index <= stop[:, None, None])
        ends = end_buf & mask_buf
    else:
        ends = last_steps(mask_buf)
    mask = mask_buf.float()
    rewards = rew_buf * mask
    log_prob = gaussian_log_prob(mean_buf, log_std[:, None, None, :], act_buf)
    advantages = batch_advantages(obs_buf, rewards, mask, gamma, gae_lambda, ends, pooled_baseline)
    traj = Trajectories(
        obs_buf, act_buf, rewards, mask, log_prob, mean_buf, log_std, advantages, ends.float()
    )
    return compact(traj) if steps and not bool(mask.all()) else traj


def compact(traj: Trajectories) -> Trajectories:
    """The kept steps of each task moved to the front of one row, ``[T, 1, N]`` with N the
    most kept steps of any task. Once advantages are computed nothing depends on where a step
    was, and with a step budget a third or more of ``[T, E, 2H-1]`` can be unkept padding
    that the learner and the meta-optimizer would otherwise compute on."""
    num_tasks = traj.mask.shape[0]
    flat_mask = traj.mask.reshape(num_tasks, -1)
    keep = int(flat_mask.sum(dim=1).max().item())
    order = torch.argsort(flat_mask, dim=1, descending=True, stable=True)[:, :keep]

    def take(x: Tensor) -> Tensor:
        flat = x.reshape(num_tasks, flat_mask.shape[1], *x.shape[3:])
        index = order.reshape(num_tasks, keep, *([1] * (x.dim() - 3)))
        return flat.gather(1, index.expand(num_tasks, keep, *x.shape[3:]))[:, None]

    return Trajectories(
        *(x if name == "log_std" else take(x) for name, x in zip(traj._fields, traj, strict=True))
    )
