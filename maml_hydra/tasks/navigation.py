"""2D navigation (MAML paper sec. 5.3; rllab's PointEnvRandGoal in the original code)."""

from __future__ import annotations

import torch
from torch import Tensor

from maml_hydra.config import NavigationConfig
from maml_hydra.tasks.base import TaskFamily


class Navigation2D(TaskFamily):
    """A point starts at the origin and moves by the clipped action; the task is a goal.

    Observation: position (2), plus the goal with ``oracle=true``. Action: displacement,
    clipped to ``[-action_bound, action_bound]^2``; with ``normalized_actions`` (the original
    code's rllab ``normalize`` wrapper) the action is first multiplied by ``action_bound``, so
    the policy acts in ``[-1, 1]^2``. Reward: minus the Euclidean distance to the
    goal after the move. As in the original code, an episode ends once ``|dx|`` and ``|dy|`` are
    both below ``goal_tolerance``.
    """

    task_dim = 2
    state_obs_dim = 2
    action_dim = 2

    def __init__(self, cfg: NavigationConfig, num_tasks: int, episodes_per_task: int, device="cpu"):
        super().__init__(cfg, num_tasks, episodes_per_task, device)
        self.position = torch.zeros(*self.batch_size, 2, device=self.device)
        self.finished = torch.zeros(*self.batch_size, dtype=torch.bool, device=self.device)

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        low, high = self.cfg.goal_low, self.cfg.goal_high
        return low + (high - low) * torch.rand(num_tasks, 2, generator=generator)

    def _initial_obs(self, generator: torch.Generator | None = None) -> Tensor:
        self.position = torch.zeros(*self.batch_size, 2, device=self.device)
        self.finished = torch.zeros(*self.batch_size, dtype=torch.bool, device=self.device)
        return self.position

    def _restart(self, rows: Tensor, generator: torch.Generator | None = None) -> Tensor:
        self.position = torch.where(rows[..., None], 0.0, self.position)
        self.finished = self.finished & ~rows
        return self.position

    def _advance(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        bound = self.cfg.action_bound
        if self.cfg.normalized_actions:
            action = action * bound
        moving = ~self.finished
        step = action.clamp(-bound, bound) * moving[..., None]
        self.position = self.position + step
        offset = self.position - self.tasks[:, None, :]
        reward = -offset.norm(dim=-1) * moving
        reached = (offset.abs() < self.cfg.goal_tolerance).all(dim=-1)
        self.finished = self.finished | reached
        return self.position, reward, self.finished
