"""MuJoCo Ant target velocity (MAML paper sec. 5.3) on gymnasium's Ant-v5 model, stepped as
one batch: every (task, episode) simulation advances in one threaded ``mujoco.rollout`` call."""

from __future__ import annotations

import os

import gymnasium
import mujoco
import numpy as np
import torch
from mujoco import rollout
from torch import Tensor

from maml_hydra.config import AntVelocityConfig
from maml_hydra.tasks.base import TaskFamily

ANT_XML = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", "ant.xml")
_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


class AntVelocity(TaskFamily):
    """Ant that should run forward at a goal velocity v_goal ~ U[goal_low, goal_high].

    Observation: gymnasium Ant-v5's without contact forces, qpos[2:] and qvel (27). Action: the
    8 joint torques, clipped to the model's control range [-1, 1]. Reward:
    -|v_x - v_goal| - ctrl_cost |a|^2 + survive_bonus, v_x the torso's x displacement over the
    step (qpos) divided by dt. Gymnasium measures it on ``xpos``, which after an RK4 ``mj_step``
    holds the last Runge-Kutta stage's kinematics, not the final state's: its ``x_velocity``
    differs from ours by about 1e-4 m/s (tests/test_ant.py). Contact cost is left out, as in the
    original code. Episodes are never terminated early.
    Initial states: gymnasium's, qpos0 + U(-noise, noise) and N(0, noise^2) velocities.
    """

    task_dim = 1
    state_obs_dim = 27
    action_dim = 8

    def __init__(
        self, cfg: AntVelocityConfig, num_tasks: int, episodes_per_task: int, device="cpu"
    ):
        super().__init__(cfg, num_tasks, episodes_per_task, device)
        self.model = mujoco.MjModel.from_xml_path(ANT_XML)
        self.dt = self.model.opt.timestep * cfg.frame_skip
        self.runner = rollout.Rollout(nthread=cfg.threads)
        self.scratch = [mujoco.MjData(self.model) for _ in range(cfg.threads)]
        self.num_envs = num_tasks * episodes_per_task
        self.state = np.zeros((self.num_envs, mujoco.mj_stateSize(self.model, _FULL)))
        self.qpos_at = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_TIME)
        self.qvel_at = self.qpos_at + self.model.nq

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        low, high = self.cfg.goal_low, self.cfg.goal_high
        return low + (high - low) * torch.rand(num_tasks, 1, generator=generator)

    def _forward_reward(self, velocity: np.ndarray, task: np.ndarray) -> np.ndarray:
        """-|v_x - v_goal|."""
        return -np.abs(velocity - task)

    def _qpos(self) -> np.ndarray:
        return self.state[:, self.qpos_at : self.qpos_at + self.model.nq]

    def _qvel(self) -> np.ndarray:
        return self.state[:, self.qvel_at : self.qvel_at + self.model.nv]

    def _obs(self) -> Tensor:
        obs = np.concatenate([self._qpos()[:, 2:], self._qvel()], axis=1)
        return torch.as_tensor(obs, dtype=torch.float32, device=self.device).view(
            *self.batch_size, -1
        )

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Put every simulation in the given state ([N, nq], [N, nv])."""
        self.state[:] = 0.0
        self._qpos()[:] = qpos
        self._qvel()[:] = qvel

    def _initial_obs(self, generator: torch.Generator | None = None) -> Tensor:
        n, nq, nv, noise = self.num_envs, self.model.nq, self.model.nv, self.cfg.reset_noise
        u = torch.rand(n, nq, generator=generator, dtype=torch.float64)
        z = torch.randn(n, nv, generator=generator, dtype=torch.float64)
        qpos = self.model.qpos0[None] + noise * (2 * u.numpy() - 1)
        self.set_state(qpos, noise * z.numpy())
        return self._obs()

    def _advance(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a = action.detach().reshape(self.num_envs, -1).clamp(-1, 1).to("cpu", torch.float64).numpy()
        x_before = self._qpos()[:, 0].copy()
        control = np.repeat(a[:, None, :], self.cfg.frame_skip, axis=1)
        states, _ = self.runner.rollout(
            self.model, self.scratch, self.state, control, nstep=self.cfg.frame_skip
        )
        self.state = states[:, -1].copy()
        velocity = (self._qpos()[:, 0] - x_before) / self.dt
        goal = self.tasks[:, 0, None].expand(self.batch_size).reshape(-1).cpu().double().numpy()
        reward = (
            self._forward_reward(velocity, goal)
            - self.cfg.ctrl_cost * (a**2).sum(1)
            + self.cfg.survive_bonus
        )
        reward_t = torch.as_tensor(reward, dtype=torch.float32, device=self.device).view(
            self.batch_size
        )
        done = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        return self._obs(), reward_t, done


class AntDirection(AntVelocity):
    """Ant forward/backward (MAML paper sec. 5.3): the task is a direction d in {-1, +1} with
    equal probability and the forward reward is d * v_x; everything else as AntVelocity."""

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, 2, (num_tasks, 1), generator=generator).float() * 2 - 1

    def _forward_reward(self, velocity: np.ndarray, task: np.ndarray) -> np.ndarray:
        """d * v_x."""
        return task * velocity
