"""Physics backends of the locomotion families (``env.physics``): N simulations of one MuJoCo
model, stepped together with a constant control over ``nstep`` physics steps.

- ``MujocoPhysics`` (``mujoco``, the default): MuJoCo C in float64 through one threaded
  ``mujoco.rollout`` call on the CPU.
- ``WarpPhysics`` (``warp``): MuJoCo Warp in float32, one world per simulation, on the torch
  device's counterpart (``cuda:0`` on a GPU, ``cpu`` for tests). Its state lives in Warp arrays
  that torch sees without a copy (``warp.to_torch``): actions go in and states come out as
  device tensors, with no host round trip per step and no Python loop over worlds.

Both expose the same four members, so everything above them (observations, rewards, resets) is
written once, in torch, in ``maml_hydra.tasks.locomotion``.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch
from mujoco import rollout
from torch import Tensor

_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


class MujocoPhysics:
    """MuJoCo C: the whole MjData state of every simulation as one float64 array, advanced by
    ``mujoco.rollout`` on ``threads`` threads.

    ``probe``, optional: the same model with sensors added (``sensors``). MuJoCo evaluates a
    step's sensors at the state it starts from, so ``mujoco.rollout`` cannot report quantities
    of the state a step reaches; ``sensors`` runs one step of the probe from the current states
    and returns its sensor data, i.e. those quantities after ``mj_forward`` at the current state
    and control (what rllab read after its ``mj_step``; ``mj_step``'s integration is discarded).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        num_envs: int,
        threads: int,
        probe: mujoco.MjModel | None = None,
    ) -> None:
        self.model = model
        self.probe = probe
        self.runner = rollout.Rollout(nthread=threads)
        self.scratch = [mujoco.MjData(model) for _ in range(threads)]
        self.probe_scratch = [mujoco.MjData(probe) for _ in range(threads)] if probe else []
        self.state = np.zeros((num_envs, mujoco.mj_stateSize(model, _FULL)))
        self.qpos_at = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME)
        self.qvel_at = self.qpos_at + model.nq

    def qpos(self) -> Tensor:
        """[N, nq] float64, a view of the state."""
        return torch.from_numpy(self.state[:, self.qpos_at : self.qpos_at + self.model.nq])

    def qvel(self) -> Tensor:
        return torch.from_numpy(self.state[:, self.qvel_at : self.qvel_at + self.model.nv])

    def reset(self, qpos: Tensor, qvel: Tensor) -> None:
        """Every simulation at rest in time and in the given state ([N, nq], [N, nv])."""
        self.state[:] = 0.0
        self.qpos()[:] = qpos.to("cpu", torch.float64)
        self.qvel()[:] = qvel.to("cpu", torch.float64)

    def step(self, ctrl: Tensor, nstep: int, rows: np.ndarray | None = None) -> None:
        """``nstep`` physics steps with the control ``ctrl`` [N, nu] held constant; with
        ``rows`` (indices) only those simulations, the others are not stepped."""
        a = ctrl.detach().to("cpu", torch.float64).numpy()
        control = np.repeat(a[:, None, :], nstep, axis=1)
        if rows is None:
            states, _ = self.runner.rollout(
                self.model, self.scratch, self.state, control, nstep=nstep
            )
            self.state = states[:, -1].copy()
        elif len(rows):
            states, _ = self.runner.rollout(
                self.model, self.scratch, self.state[rows], control[rows], nstep=nstep
            )
            self.state[rows] = states[:, -1]

    def sensors(self, ctrl: Tensor, rows: np.ndarray | None = None) -> Tensor:
        """The probe's sensor data at the current state of every simulation (or of ``rows``)
        under the control ``ctrl`` [N, nu]: [N or len(rows), nsensordata] float64."""
        state = self.state if rows is None else self.state[rows]
        a = ctrl.detach().to("cpu", torch.float64).numpy()
        a = a if rows is None else a[rows]
        if not len(state):
            return torch.zeros(0, self.probe.nsensordata, dtype=torch.float64)
        _, data = self.runner.rollout(self.probe, self.probe_scratch, state, a[:, None], nstep=1)
        return torch.from_numpy(data[:, 0])


def import_warp():
    """(warp, mujoco_warp), Warp set to log warnings only (not a line per kernel module it
    loads); ImportError where the optional extra ``.[gpu]`` is not installed."""
    import warp

    warp.config.log_level = warp.LOG_WARNING
    import mujoco_warp

    return warp, mujoco_warp


class WarpPhysics:
    """MuJoCo Warp: ``num_envs`` worlds of one model on the Warp device matching ``device``.

    Warp launches its kernels on torch's current CUDA stream, so torch reads the states after
    the step without a host synchronisation. The first step of a process compiles Warp's
    kernels (cached under ``~/.cache/warp``): about a minute on a CPU.
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int, device: torch.device) -> None:
        warp, mujoco_warp = import_warp()
        self.warp, self.mjw = warp, mujoco_warp
        self.torch_device = torch.device(device)
        cuda = self.torch_device.type == "cuda"
        self.device = warp.get_device(f"cuda:{self.torch_device.index or 0}" if cuda else "cpu")
        # contacts are pooled over worlds; the constraint rows are per world: every contact's
        # pyramid (2 (condim - 1) rows) plus the joint limits
        contacts = 2 * model.ngeom
        rows = contacts * 2 * (int(model.geom_condim.max()) - 1) + model.njnt
        with warp.ScopedDevice(self.device):
            self.wmodel = mujoco_warp.put_model(model)
            self.data = mujoco_warp.put_data(
                model, mujoco.MjData(model), nworld=num_envs, nconmax=contacts, njmax=rows
            )
        self.views = {
            name: warp.to_torch(getattr(self.data, name))
            for name in ("qpos", "qvel", "ctrl", "time", "qacc_warmstart", "act")
        }

    def qpos(self) -> Tensor:
        """[N, nq] float32 on the device, the simulation's own memory."""
        return self.views["qpos"]

    def qvel(self) -> Tensor:
        return self.views["qvel"]

    def reset(self, qpos: Tensor, qvel: Tensor) -> None:
        for name in ("time", "qacc_warmstart", "act", "ctrl"):
            self.views[name].zero_()
        self.views["qpos"].copy_(qpos)
        self.views["qvel"].copy_(qvel)

    def step(self, ctrl: Tensor, nstep: int) -> None:
        self.views["ctrl"].copy_(ctrl.detach())
        warp = self.warp
        stream = None
        if self.torch_device.type == "cuda":
            stream = warp.stream_from_torch(torch.cuda.current_stream(self.torch_device))
        with warp.ScopedDevice(self.device), warp.ScopedStream(stream):
            for _ in range(nstep):  # a loop over physics steps; every world in each launch
                self.mjw.step(self.wmodel, self.data)
