"""The MAML paper's MuJoCo locomotion families (sec. 5.3) on gymnasium's models, stepped as one
batch: every (task, episode) simulation advances in one call of the physics backend
(``env.physics``, maml_hydra/tasks/physics.py: MuJoCo C through a threaded ``mujoco.rollout``,
or MuJoCo Warp on the device), with no Python call per environment.

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
import torch
from torch import Tensor

from maml_hydra.config import LocomotionConfig, Physics
from maml_hydra.tasks.base import TaskFamily
from maml_hydra.tasks.physics import MujocoPhysics, WarpPhysics

ASSETS = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets")


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
        self.num_envs = num_tasks * episodes_per_task
        if Physics(cfg.physics) is Physics.warp:
            self.physics = WarpPhysics(self.model, self.num_envs, self.device)
        else:
            self.physics = MujocoPhysics(self.model, self.num_envs, cfg.threads)
        # the physics' own device and precision: rewards are computed there, as one formula
        like = self.physics.qpos()
        low, high = torch.as_tensor(self.model.actuator_ctrlrange.T, dtype=torch.float64)
        self.ctrl_low, self.ctrl_high = low.to(like), high.to(like)

    def _forward_reward(self, velocity: Tensor, task: Tensor) -> Tensor:
        raise NotImplementedError  # from the task kind

    def _qpos(self) -> Tensor:
        return self.physics.qpos()

    def _qvel(self) -> Tensor:
        return self.physics.qvel()

    def _obs(self) -> Tensor:
        obs = torch.cat([self._qpos()[:, self.skipped_qpos :], self._qvel()], dim=1)
        return obs.to(self.device, torch.float32).view(*self.batch_size, -1)

    def set_state(self, qpos: Tensor, qvel: Tensor) -> None:
        """Put every simulation in the given state ([N, nq], [N, nv]), at rest in time."""
        self.physics.reset(torch.as_tensor(qpos), torch.as_tensor(qvel))

    def _initial_obs(self, generator: torch.Generator | None = None) -> Tensor:
        n, nq, nv, noise = self.num_envs, self.model.nq, self.model.nv, self.cfg.reset_noise
        u = torch.rand(n, nq, generator=generator, dtype=torch.float64)
        z = torch.randn(n, nv, generator=generator, dtype=torch.float64)
        qpos = torch.from_numpy(self.model.qpos0)[None] + noise * (2 * u - 1)
        self.set_state(qpos, noise * z)
        return self._obs()

    def _advance(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        like = self.ctrl_low
        a = action.detach().reshape(self.num_envs, -1).to(like)
        a = torch.clamp(a, self.ctrl_low, self.ctrl_high)
        x_before = self._qpos()[:, 0].clone()
        self.physics.step(a, self.cfg.frame_skip)
        velocity = (self._qpos()[:, 0] - x_before) / self.dt
        task = self.tasks[:, 0, None].expand(self.batch_size).reshape(-1).to(like)
        reward = (
            self._forward_reward(velocity, task)
            - self.cfg.ctrl_cost * (a**2).sum(1)
            + self.cfg.survive_bonus
        )
        reward_t = reward.to(self.device, torch.float32).view(self.batch_size)
        done = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        return self._obs(), reward_t, done


# ------------------------------------------------------------------------------ task kinds
class TargetVelocity:
    """Task: a goal velocity v_goal ~ U[env.goal_low, env.goal_high]; forward = -|v_x - v_goal|."""

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        low, high = self.cfg.goal_low, self.cfg.goal_high
        return low + (high - low) * torch.rand(num_tasks, 1, generator=generator)

    def _forward_reward(self, velocity: Tensor, task: Tensor) -> Tensor:
        return -torch.abs(velocity - task)


class Direction:
    """Task: a direction d in {-1, +1} with equal probability; forward = d * v_x."""

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, 2, (num_tasks, 1), generator=generator).float() * 2 - 1

    def _forward_reward(self, velocity: Tensor, task: Tensor) -> Tensor:
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
