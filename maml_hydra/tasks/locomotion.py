"""The MAML paper's MuJoCo locomotion families (sec. 5.3) on gymnasium's models, stepped as one
batch: every (task, episode) simulation advances in one threaded ``mujoco.rollout`` call, with
no Python call per environment.

Each family is a robot (``MujocoLocomotion`` subclass: model file, observation layout) combined
with a task kind (``TargetVelocity`` or ``Direction``: how tasks are sampled and what the forward
reward is). Reward, for every family:

    r = forward(v_x, task) - ctrl_cost |a|^2 + survive_bonus,

v_x the x displacement of the root body over the step (qpos[0]) divided by dt, ``a`` the action
clipped to the model's control range. Episodes are never terminated early.
"""

from __future__ import annotations

import os
import warnings

import gymnasium
import mujoco
import numpy as np
import torch
from mujoco import rollout
from torch import Tensor

from maml_hydra.config import LocomotionConfig
from maml_hydra.tasks.base import TaskFamily

ASSETS = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets")
_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


def load_model(xml_file: str) -> mujoco.MjModel:
    """A gymnasium asset, compiled. MuJoCo's compiler warnings (half_cheetah.xml uses the
    deprecated ``settotalmass``) become Python warnings instead of a MUJOCO_LOG.TXT written
    into the working directory."""
    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        model = mujoco.MjModel.from_xml_path(os.path.join(ASSETS, xml_file))
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in messages:
        warnings.warn(f"MuJoCo, {xml_file}: {message}", stacklevel=2)
    return model


class MujocoLocomotion(TaskFamily):
    """A gymnasium MuJoCo robot, batched. Subclasses set ``xml_file`` (a gymnasium asset, never
    copied), ``skipped_qpos`` (leading qpos entries left out of the observation, as gymnasium's
    ``exclude_current_positions_from_observation``), the dimensions, and mix in a task kind.

    Observation: qpos[skipped_qpos:] and qvel, as gymnasium's v5 environments. Initial states:
    gymnasium's, qpos0 + U(-reset_noise, reset_noise) and N(0, reset_noise^2) velocities.
    """

    task_dim = 1
    ends_early = False
    xml_file: str
    skipped_qpos: int

    def __init__(self, cfg: LocomotionConfig, num_tasks: int, episodes_per_task: int, device="cpu"):
        super().__init__(cfg, num_tasks, episodes_per_task, device)
        self.model = load_model(self.xml_file)
        nq, nv = self.model.nq, self.model.nv
        if (nq - self.skipped_qpos + nv, self.model.nu) != (self.state_obs_dim, self.action_dim):
            raise RuntimeError(f"{self.xml_file}: the model's sizes differ from the class's")
        self.dt = self.model.opt.timestep * cfg.frame_skip
        self.ctrl_low, self.ctrl_high = self.model.actuator_ctrlrange.T.copy()
        self.runner = rollout.Rollout(nthread=cfg.threads)
        self.scratch = [mujoco.MjData(self.model) for _ in range(cfg.threads)]
        self.num_envs = num_tasks * episodes_per_task
        self.state = np.zeros((self.num_envs, mujoco.mj_stateSize(self.model, _FULL)))
        self.qpos_at = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_TIME)
        self.qvel_at = self.qpos_at + nq

    def _forward_reward(self, velocity: np.ndarray, task: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # from the task kind

    def _qpos(self) -> np.ndarray:
        return self.state[:, self.qpos_at : self.qpos_at + self.model.nq]

    def _qvel(self) -> np.ndarray:
        return self.state[:, self.qvel_at : self.qvel_at + self.model.nv]

    def _obs(self) -> Tensor:
        obs = np.concatenate([self._qpos()[:, self.skipped_qpos :], self._qvel()], axis=1)
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
        a = action.detach().reshape(self.num_envs, -1).to("cpu", torch.float64).numpy()
        a = np.clip(a, self.ctrl_low, self.ctrl_high)
        x_before = self._qpos()[:, 0].copy()
        control = np.repeat(a[:, None, :], self.cfg.frame_skip, axis=1)
        states, _ = self.runner.rollout(
            self.model, self.scratch, self.state, control, nstep=self.cfg.frame_skip
        )
        self.state = states[:, -1].copy()
        velocity = (self._qpos()[:, 0] - x_before) / self.dt
        task = self.tasks[:, 0, None].expand(self.batch_size).reshape(-1).cpu().double().numpy()
        reward = (
            self._forward_reward(velocity, task)
            - self.cfg.ctrl_cost * (a**2).sum(1)
            + self.cfg.survive_bonus
        )
        reward_t = torch.as_tensor(reward, dtype=torch.float32, device=self.device).view(
            self.batch_size
        )
        done = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        return self._obs(), reward_t, done


# ------------------------------------------------------------------------------ task kinds
class TargetVelocity:
    """Task: a goal velocity v_goal ~ U[env.goal_low, env.goal_high]; forward = -|v_x - v_goal|."""

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        low, high = self.cfg.goal_low, self.cfg.goal_high
        return low + (high - low) * torch.rand(num_tasks, 1, generator=generator)

    def _forward_reward(self, velocity: np.ndarray, task: np.ndarray) -> np.ndarray:
        return -np.abs(velocity - task)


class Direction:
    """Task: a direction d in {-1, +1} with equal probability; forward = d * v_x."""

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, 2, (num_tasks, 1), generator=generator).float() * 2 - 1

    def _forward_reward(self, velocity: np.ndarray, task: np.ndarray) -> np.ndarray:
        return task * velocity


# -------------------------------------------------------------------------------- families
class Ant(MujocoLocomotion):
    """gymnasium's Ant-v5 model. Observation: Ant-v5's without contact forces, qpos[2:] and
    qvel (27); action: the 8 joint torques in [-1, 1]. Gymnasium measures ``x_velocity`` on
    ``xpos``, which after an RK4 ``mj_step`` holds the last Runge-Kutta stage's kinematics, not
    the final state's: it differs from ours by about 1e-4 m/s (tests/test_locomotion.py).
    Contact cost is left out, as in the original MAML code."""

    xml_file = "ant.xml"
    skipped_qpos = 2
    state_obs_dim = 27
    action_dim = 8


class HalfCheetah(MujocoLocomotion):
    """gymnasium's HalfCheetah-v5 model. Observation: qpos[1:] and qvel (17); action: the 6
    joint torques in [-1, 1]. v_x is measured as gymnasium's HalfCheetah-v5 measures it."""

    xml_file = "half_cheetah.xml"
    skipped_qpos = 1
    state_obs_dim = 17
    action_dim = 6


class AntVelocity(TargetVelocity, Ant):
    """Ant target velocity (``env=ant``)."""


class AntDirection(Direction, Ant):
    """Ant forward/backward (``env=ant_dir``)."""


class HalfCheetahVelocity(TargetVelocity, HalfCheetah):
    """HalfCheetah target velocity (``env=halfcheetah_vel``)."""


class HalfCheetahDirection(Direction, HalfCheetah):
    """HalfCheetah forward/backward (``env=halfcheetah_dir``)."""
