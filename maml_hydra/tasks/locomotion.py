"""The MAML paper's MuJoCo locomotion families (sec. 5.3) on gymnasium's models, stepped as one
batch: every (task, episode) simulation advances in one call of the physics backend
(``env.physics``, maml_hydra/tasks/physics.py: MuJoCo C through a threaded ``mujoco.rollout``,
or MuJoCo Warp on the device), with no Python call per environment.

Each family is a robot (``MujocoLocomotion`` subclass: model file, observation layout) combined
with a task kind (``TargetVelocity`` or ``Direction``: how tasks are sampled and what the forward
reward is), on one of two problems (``env.dynamics``):

- gymnasium (v5 environments, as pytorch-maml-rl and ProMP use): frame skip 5, reward
  forward(v_x, task) - ctrl_cost |a|^2 + survive_bonus with v_x the x displacement of the root
  body (qpos[0]) over the step divided by dt, ``a`` the action clipped to the control range;
  observation qpos[skipped:] and qvel; never terminated early.
- rllab (the MAML paper's code, cbfinn/maml_rl, on rllab's MuJoCo environments): frame skip 1,
  the policy's actions clipped to [-1, 1] and scaled to the control range (rllab's
  ``normalize``), v_x the torso subtree's centre-of-mass velocity and the observation read
  after ``mj_forward`` at the reached state (through sensors: ``MujocoPhysics.sensors``), the
  reset of ``MujocoEnv.reset_mujoco``; for the Ant also rllab's model (timestep 0.02, softer
  contacts, motors of gear 1 and range +-150), its contact cost and its termination.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

import gymnasium
import mujoco
import numpy as np
import torch
from torch import Tensor

from maml_hydra.config import Dynamics, LocomotionConfig, Physics
from maml_hydra.tasks.base import TaskFamily
from maml_hydra.tasks.physics import MujocoPhysics, WarpPhysics

ASSETS = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets")


@contextmanager
def warnings_not_log_file(name: str):
    """MuJoCo's compiler warnings (half_cheetah.xml uses the deprecated ``settotalmass``) as
    Python warnings instead of a MUJOCO_LOG.TXT written into the working directory."""
    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in messages:
        warnings.warn(f"MuJoCo, {name}: {message}", stacklevel=3)


def load_model(xml_file: str) -> mujoco.MjModel:
    """A gymnasium asset, compiled."""
    with warnings_not_log_file(xml_file):
        return mujoco.MjModel.from_xml_path(os.path.join(ASSETS, xml_file))


def load_spec(xml_file: str) -> mujoco.MjSpec:
    """A gymnasium asset as an editable MjSpec (the file itself is never copied)."""
    return mujoco.MjSpec.from_file(os.path.join(ASSETS, xml_file))


def compile_spec(spec: mujoco.MjSpec, name: str) -> mujoco.MjModel:
    with warnings_not_log_file(name):
        return spec.compile()


def add_sensor(spec: mujoco.MjSpec, kind, objtype, objname: str, **fields) -> None:
    sensor = spec.add_sensor()
    sensor.type, sensor.objtype, sensor.objname = kind, objtype, objname
    for key, value in fields.items():
        setattr(sensor, key, value)


# rllab's observation after a step, read from the probe's sensors (MujocoPhysics.sensors):
# the torso subtree's centre of mass and its linear velocity, then per robot geom in contact
# with the floor CONTACT_SLOTS contacts of CONTACT_FIELDS (found 1, force 3, pos 3, normal 3,
# tangent 3), from which cfrc_ext is rebuilt (see MujocoLocomotion._contact_forces).
CONTACT_SLOTS = 2  # a capsule or a sphere touches a plane in at most 2 points
CONTACT_DATA = 1 | 2 | 16 | 32 | 64  # mjtConDataField bits: found, force, pos, normal, tangent
CONTACT_FIELDS = 13


class MujocoLocomotion(TaskFamily):
    """A gymnasium MuJoCo robot, batched. Subclasses set ``xml_file`` (a gymnasium asset, never
    copied), ``skipped_qpos`` (leading qpos entries left out of the gymnasium observation, as
    gymnasium's ``exclude_current_positions_from_observation``), the dimensions of both
    observations, and mix in a task kind.

    gymnasium dynamics: observation qpos[skipped_qpos:] and qvel, as gymnasium's v5
    environments; initial states qpos0 + U(-reset_noise, reset_noise), N(0, reset_noise^2)
    velocities. rllab dynamics: see ``rllab_edits``, ``_rllab_obs`` and the module docstring.
    """

    task_dim = 1
    ends_early = True  # the rllab Ant terminates; every family restarts rows (_restart)
    xml_file: str
    skipped_qpos: int
    gymnasium_obs_dim: int
    rllab_obs_dim: int
    contact_cost = 0.0  # rllab dynamics: weight of |clip(cfrc_ext, -1, 1)|^2 (the Ant's)
    velocity_bonus = 0.0  # rllab dynamics, target velocity: added to -|v - v_goal| (the Ant's)
    height_range: tuple[float, float] | None = None  # rllab dynamics: alive while z is inside

    def __init__(self, cfg: LocomotionConfig, num_tasks: int, episodes_per_task: int, device="cpu"):
        self.rllab = Dynamics(cfg.dynamics) is Dynamics.rllab
        super().__init__(cfg, num_tasks, episodes_per_task, device)
        self.num_envs = num_tasks * episodes_per_task
        probe = None
        if self.rllab:
            spec = load_spec(self.xml_file)
            self.rllab_edits(spec)
            self.model = compile_spec(spec, self.xml_file)
            probe = compile_spec(self.probe_spec(spec), self.xml_file)
            self.init_qpos = self._init_qpos()
        else:
            self.model = load_model(self.xml_file)
        nq, nv = self.model.nq, self.model.nv
        sizes = (nq - self.skipped_qpos + nv, self.model.nu)
        if sizes != (self.gymnasium_obs_dim, self.action_dim):
            raise RuntimeError(f"{self.xml_file}: the model's sizes differ from the class's")
        self.dt = self.model.opt.timestep * cfg.frame_skip
        if Physics(cfg.physics) is Physics.warp:
            self.physics = WarpPhysics(self.model, self.num_envs, self.device)
        else:
            self.physics = MujocoPhysics(self.model, self.num_envs, cfg.threads, probe)
        # the physics' own device and precision: rewards are computed there, as one formula
        like = self.physics.qpos()
        low, high = torch.as_tensor(self.model.actuator_ctrlrange.T, dtype=torch.float64)
        self.ctrl_low, self.ctrl_high = low.to(like), high.to(like)
        self.finished = torch.zeros(self.num_envs, dtype=torch.bool)
        self.raw_obs = torch.zeros(self.num_envs, self.state_obs_dim, dtype=torch.float64)

    @property
    def state_obs_dim(self) -> int:
        return self.rllab_obs_dim if self.rllab else self.gymnasium_obs_dim

    # -------------------------------------------------------------------- rllab's model
    def rllab_edits(self, spec: mujoco.MjSpec) -> None:
        """gymnasium's model turned into rllab's (section 9 of the field notes: the
        differences, element by element). Frame skip 1 comes from ``env.frame_skip``."""

    def probe_spec(self, spec: mujoco.MjSpec) -> mujoco.MjSpec:
        """A copy of ``spec`` with the sensors rllab's observation and reward read, integrated
        by one cheap Euler step (only the sensors of its starting state are kept)."""
        probe = spec.copy()
        probe.option.integrator = mujoco.mjtIntegrator.mjINT_EULER
        body = mujoco.mjtObj.mjOBJ_BODY
        add_sensor(probe, mujoco.mjtSensor.mjSENS_SUBTREECOM, body, "torso")
        add_sensor(probe, mujoco.mjtSensor.mjSENS_SUBTREELINVEL, body, "torso")
        return probe

    def _init_qpos(self) -> Tensor:
        """rllab's reset pose: the model's custom numeric ``init_qpos`` if it has one (the
        Ant's), else qpos0."""
        model = self.model
        for i in range(model.nnumeric):
            if model.numeric(i).name == "init_qpos":
                start, size = model.numeric_adr[i], model.numeric_size[i]
                return torch.from_numpy(model.numeric_data[start : start + size].copy())
        return torch.from_numpy(model.qpos0.copy())

    def _rllab_obs(self, data: Tensor, rows: np.ndarray | None) -> Tensor:
        """rllab's observation from the probe's sensor data at the reached state, [n, D]."""
        qpos, qvel = self._qpos(), self._qvel()
        if rows is not None:
            qpos, qvel = qpos[rows], qvel[rows]
        return torch.cat([qpos[:, 1:], qvel, data[:, :3]], dim=1)

    # ----------------------------------------------------------------------- stepping
    def _forward_reward(self, velocity: Tensor, task: Tensor) -> Tensor:
        raise NotImplementedError  # from the task kind

    def _qpos(self) -> Tensor:
        return self.physics.qpos()

    def _qvel(self) -> Tensor:
        return self.physics.qvel()

    def _obs(self) -> Tensor:
        if self.rllab:
            obs = self.raw_obs
        else:
            obs = torch.cat([self._qpos()[:, self.skipped_qpos :], self._qvel()], dim=1)
        return obs.to(self.device, torch.float32).view(*self.batch_size, -1)

    def set_state(self, qpos: Tensor, qvel: Tensor) -> None:
        """Put every simulation in the given state ([N, nq], [N, nv]), at rest in time."""
        self.physics.reset(torch.as_tensor(qpos), torch.as_tensor(qvel))
        self.finished[:] = False
        if self.rllab:  # rllab's reset ends with mj_forward at zero control
            zero = torch.zeros(self.num_envs, self.model.nu, dtype=torch.float64)
            self.raw_obs = self._rllab_obs(self.physics.sensors(zero), None)

    def _initial_state(self, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Fresh initial states for every simulation, [N, nq] and [N, nv]."""
        n, nq, nv = self.num_envs, self.model.nq, self.model.nv
        if self.rllab:  # MujocoEnv.reset_mujoco
            z = torch.randn(n, nq + nv, generator=generator, dtype=torch.float64)
            return self.init_qpos[None] + 0.01 * z[:, :nq], 0.1 * z[:, nq:]
        noise = self.cfg.reset_noise
        u = torch.rand(n, nq, generator=generator, dtype=torch.float64)
        z = torch.randn(n, nv, generator=generator, dtype=torch.float64)
        return torch.from_numpy(self.model.qpos0)[None] + noise * (2 * u - 1), noise * z

    def _initial_obs(self, generator: torch.Generator | None = None) -> Tensor:
        self.set_state(*self._initial_state(generator))
        return self._obs()

    def _restart(self, rows: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """New initial states in ``rows`` [T, E] (drawn for every row, so the stream does not
        depend on which rows restart), the other simulations untouched."""
        qpos, qvel = self._initial_state(generator)
        picked = rows.reshape(-1).cpu()
        self.physics.qpos()[picked.to(self.physics.qpos().device)] = qpos[picked].to(
            self.physics.qpos()
        )
        self.physics.qvel()[picked.to(self.physics.qvel().device)] = qvel[picked].to(
            self.physics.qvel()
        )
        self.finished[picked] = False
        if self.rllab:
            index = picked.nonzero().reshape(-1).numpy()
            zero = torch.zeros(self.num_envs, self.model.nu, dtype=torch.float64)
            self.raw_obs[index] = self._rllab_obs(self.physics.sensors(zero, index), index)
        return self._obs()

    def _advance(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.rllab:
            return self._advance_rllab(action)
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

    def _advance_rllab(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of the simulations whose episode is not over (the others stay as they are
        with reward 0): rllab's ``normalize`` maps the clipped action to the control range,
        ``mj_step`` x frame_skip, then everything is read after ``mj_forward`` (the probe)."""
        a = action.detach().reshape(self.num_envs, -1).to(torch.float64).cpu().clamp(-1, 1)
        ctrl = self.ctrl_low + (a + 1) * 0.5 * (self.ctrl_high - self.ctrl_low)
        alive = ~self.finished
        rows = alive.nonzero().reshape(-1).numpy()
        self.physics.step(ctrl, self.cfg.frame_skip, rows)
        data = self.physics.sensors(ctrl, rows)
        obs = self._rllab_obs(data, rows)
        self.raw_obs[rows] = obs
        velocity = data[:, 3]  # the torso subtree's centre-of-mass x velocity
        task = self.tasks[:, 0, None].expand(self.batch_size).reshape(-1).to(velocity)[rows]
        reward = (
            self._forward_reward(velocity, task)
            - self.cfg.ctrl_cost * (a[rows] ** 2).sum(1)
            + self.cfg.survive_bonus
        )
        if self.contact_cost:
            reward = reward - self.contact_cost * (self._contact_obs(obs) ** 2).sum(1)
        if self.height_range is not None:
            state = torch.cat([self._qpos()[rows], self._qvel()[rows]], dim=1)
            low, high = self.height_range
            z = state[:, 2]
            self.finished[rows] = ~(torch.isfinite(state).all(1) & (z >= low) & (z <= high))
        full = torch.zeros(self.num_envs, dtype=torch.float64)
        full[rows] = reward
        reward_t = full.to(self.device, torch.float32).view(self.batch_size)
        done = self.finished.to(self.device).view(self.batch_size).clone()
        return self._obs(), reward_t, done

    def _contact_obs(self, obs: Tensor) -> Tensor:
        raise NotImplementedError  # families with a contact cost


# ------------------------------------------------------------------------------ task kinds
class TargetVelocity:
    """Task: a goal velocity v_goal ~ U[env.goal_low, env.goal_high]; forward = -|v_x - v_goal|."""

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        low, high = self.cfg.goal_low, self.cfg.goal_high
        return low + (high - low) * torch.rand(num_tasks, 1, generator=generator)

    def _forward_reward(self, velocity: Tensor, task: Tensor) -> Tensor:
        bonus = self.velocity_bonus if self.rllab else 0.0
        return -torch.abs(velocity - task) + bonus


class Direction:
    """Task: a direction d in {-1, +1} with equal probability; forward = d * v_x."""

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, 2, (num_tasks, 1), generator=generator).float() * 2 - 1

    def _forward_reward(self, velocity: Tensor, task: Tensor) -> Tensor:
        return task * velocity


# -------------------------------------------------------------------------------- families
class Ant(MujocoLocomotion):
    """gymnasium's Ant-v5 model; action: the 8 joint torques, the policy's in [-1, 1].

    gymnasium dynamics: Ant-v5's observation without contact forces, qpos[2:] and qvel (27).
    Gymnasium measures ``x_velocity`` on ``xpos``, which after an RK4 ``mj_step`` holds the last
    Runge-Kutta stage's kinematics, not the final state's: it differs from ours by a median
    of 2e-3 m/s (docs/RESULTS.md, "Locomotion environments"). No contact cost, as
    pytorch-maml-rl and ProMP.

    rllab dynamics (rllab's ``AntEnv`` and the paper's ``ant_env_rand*.py``): rllab's model (see
    ``rllab_edits``); observation (125) qpos (15), qvel (14), clip(cfrc_ext, -1, 1) (14 bodies x
    6), the torso's rotation matrix (9) and its subtree's centre of mass (3); reward adds
    -0.5e-3 |clip(cfrc_ext, -1, 1)|^2 and, for target velocity, +1.0; the episode ends when the
    state is not finite or the torso's height leaves [0.2, 1.0]. Since MuJoCo 2.0 ``cfrc_ext``
    is only filled by ``mj_rnePostConstraint``; here it is rebuilt from contact sensors, exactly
    (tests/test_paper_dynamics.py compares it with ``mj_rnePostConstraint``'s).
    """

    xml_file = "ant.xml"
    skipped_qpos = 2
    gymnasium_obs_dim = 27
    rllab_obs_dim = 125
    action_dim = 8
    contact_cost = 0.5e-3
    velocity_bonus = 1.0  # "make it happy, not suicidal" (ant_env_rand.py)
    height_range = (0.2, 1.0)

    def rllab_edits(self, spec: mujoco.MjSpec) -> None:
        """rllab's ant.xml differs from gymnasium's in three places: timestep 0.02 (RK4 in
        both); every geom's contact softness solref (0.02, 1), solimp (0.8, 0.8, 0.01); motors of
        gear 1 and control range +-150 (the same torques as gymnasium's gear 150 on +-1)."""
        spec.option.timestep = 0.02
        for geom in spec.geoms:
            geom.solref[:] = [0.02, 1.0]
            geom.solimp[:3] = [0.8, 0.8, 0.01]
        for actuator in spec.actuators:
            actuator.gear[0] = 1.0
            actuator.ctrlrange[:] = [-150.0, 150.0]

    def probe_spec(self, spec: mujoco.MjSpec) -> mujoco.MjSpec:
        probe = super().probe_spec(spec)
        sensor, xbody = mujoco.mjtSensor, mujoco.mjtObj.mjOBJ_XBODY
        for axis in (sensor.mjSENS_FRAMEXAXIS, sensor.mjSENS_FRAMEYAXIS, sensor.mjSENS_FRAMEZAXIS):
            add_sensor(probe, axis, xbody, "torso")
        self.contact_geoms = [g.name for g in probe.geoms if g.name != "floor"]
        for name in self.contact_geoms:
            add_sensor(
                probe,
                sensor.mjSENS_CONTACT,
                mujoco.mjtObj.mjOBJ_GEOM,
                name,
                reftype=mujoco.mjtObj.mjOBJ_GEOM,
                refname="floor",
                intprm=[CONTACT_DATA, 0, CONTACT_SLOTS],
            )
        return probe

    def _contact_forces(self, data: Tensor) -> Tensor:
        """cfrc_ext [n, nbody, 6] as ``mj_rnePostConstraint`` computes it: every contact's force
        on the robot's body, as a spatial force (torque, force) about the torso subtree's
        centre of mass, in the world frame. A contact sensor on geom g against the floor reports
        the force in a frame whose normal points from g to the floor, i.e. the force g exerts."""
        n = data.shape[0]
        com = data[:, 0:3]
        slots = data[:, 15:].reshape(n, len(self.contact_geoms), CONTACT_SLOTS, CONTACT_FIELDS)
        force, pos, normal, tangent = (slots[..., i : i + 3] for i in (1, 4, 7, 10))
        bitangent = torch.linalg.cross(normal, tangent)
        on_body = -(
            force[..., :1] * normal + force[..., 1:2] * tangent + force[..., 2:3] * bitangent
        )
        torque = torch.linalg.cross(pos - com[:, None, None, :], on_body)
        wrench = torch.cat([torque, on_body], dim=-1).sum(2)  # [n, geoms, 6]
        bodies = torch.as_tensor([self.model.geom(g).bodyid.item() for g in self.contact_geoms])
        cfrc = torch.zeros(n, self.model.nbody, 6, dtype=torch.float64)
        return cfrc.index_add_(1, bodies, wrench)

    def _rllab_obs(self, data: Tensor, rows: np.ndarray | None) -> Tensor:
        qpos, qvel = self._qpos(), self._qvel()
        if rows is not None:
            qpos, qvel = qpos[rows], qvel[rows]
        n = data.shape[0]
        axes = data[:, 6:15].reshape(n, 3, 3)  # rows: the torso's x, y and z axes
        xmat = axes.transpose(1, 2).reshape(n, 9)  # row-major rotation matrix, as data.xmat
        cfrc = self._contact_forces(data).clamp(-1, 1).reshape(n, -1)
        return torch.cat([qpos, qvel, cfrc, xmat, data[:, 0:3]], dim=1)

    def _contact_obs(self, obs: Tensor) -> Tensor:
        return obs[:, 29:113]


class HalfCheetah(MujocoLocomotion):
    """gymnasium's HalfCheetah-v5 model (rllab's half_cheetah.xml is the same model); action:
    the 6 joint torques in [-1, 1].

    gymnasium dynamics: observation qpos[1:] and qvel (17); v_x measured as gymnasium's
    HalfCheetah-v5 measures it. rllab dynamics (``half_cheetah_env_rand*.py``): observation
    (20) qpos[1:], qvel and the torso subtree's centre of mass (x included); Euler, 0.01 s."""

    xml_file = "half_cheetah.xml"
    skipped_qpos = 1
    gymnasium_obs_dim = 17
    rllab_obs_dim = 20
    action_dim = 6

    def probe_spec(self, spec: mujoco.MjSpec) -> mujoco.MjSpec:
        probe = super().probe_spec(spec)
        # only positions and velocities are read: skip collisions and the constraint solver
        disable = mujoco.mjtDisableBit
        probe.option.disableflags |= disable.mjDSBL_CONTACT | disable.mjDSBL_CONSTRAINT
        return probe


class AntVelocity(TargetVelocity, Ant):
    """Ant target velocity (``env=ant``)."""


class AntDirection(Direction, Ant):
    """Ant forward/backward (``env=ant_dir``)."""


class HalfCheetahVelocity(TargetVelocity, HalfCheetah):
    """HalfCheetah target velocity (``env=halfcheetah_vel``)."""


class HalfCheetahDirection(Direction, HalfCheetah):
    """HalfCheetah forward/backward (``env=halfcheetah_dir``)."""
