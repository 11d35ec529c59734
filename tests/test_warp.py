"""env.physics=warp: MuJoCo Warp (float32, one world per (task, episode)) against MuJoCo C
(float64, mujoco.rollout), on this machine's CPU; and a meta-iteration end to end.

The first Warp step of a process compiles its kernels (about 45 s on these 2 cores, cached
under ~/.cache/warp), so the fast suite holds one module of Warp tests and the longer
comparisons are ``slow``.
"""

from __future__ import annotations

import json
from dataclasses import replace

import mujoco
import pytest
import torch

from maml_hydra.config import HalfCheetahDirectionConfig, Physics
from maml_hydra.tasks.locomotion import AntVelocity, HalfCheetahDirection, load_model
from maml_hydra.tasks.physics import MujocoPhysics, WarpPhysics
from tests.helpers import TINY, run_cli

pytest.importorskip("mujoco_warp", reason="the optional extra .[gpu]; make test installs it")

CPU = torch.device("cpu")


def test_halfcheetah_on_warp_matches_mujoco_c_over_300_physics_steps():
    """The same family, initial states (one generator) and actions on both backends: states,
    observations and every reward agree to float32 precision over 60 env steps (300 physics
    steps). Actions are in [-0.3, 0.3]: with full-range random actions the gait is chaotic and
    MuJoCo C itself, its initial state perturbed by 1e-7, drifts by O(1) after 30-40 env steps
    (measured), so no tolerance would hold there."""
    cfg = HalfCheetahDirectionConfig()
    envs = [HalfCheetahDirection(replace(cfg, physics=p), 2, 3) for p in Physics]
    tasks = torch.tensor([[1.0], [-1.0]])
    obs = []
    for env in envs:
        env.set_tasks(tasks)
        obs.append(env.reset_batch(torch.Generator().manual_seed(0)))
    assert torch.equal(obs[0], obs[1])
    c, w = envs
    assert w.physics.qpos().dtype == torch.float32 and c.physics.qpos().dtype == torch.float64
    gen = torch.Generator().manual_seed(1)
    for _ in range(60):
        action = 0.6 * torch.rand(2, 3, HalfCheetahDirection.action_dim, generator=gen) - 0.3
        (obs_c, reward_c, _), (obs_w, reward_w, _) = (env.step_batch(action) for env in envs)
        assert (c._qpos() - w._qpos().double()).abs().max() < 1e-5
        assert (c._qvel() - w._qvel().double()).abs().max() < 2e-4
        assert (obs_c - obs_w).abs().max() < 2e-4
        assert (reward_c - reward_w).abs().max() < 1e-4
    assert w.physics.data.time.numpy()[0] == pytest.approx(60 * 5 * c.model.opt.timestep, abs=1e-4)


def test_a_meta_iteration_runs_end_to_end_on_warp_physics(tmp_path):
    """python -m maml_hydra.train env=halfcheetah_dir env.physics=warp: training, a
    checkpoint and the held-out evaluation, all on Warp's CPU backend."""
    run = tmp_path / "run"
    overrides = [*TINY, "train.iterations=1", "env.horizon=5", "eval.num_steps=1"]
    args = ["env=halfcheetah_dir", "env.physics=warp", *overrides, f"hydra.run.dir={run}"]
    result = run_cli(args, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "checkpoints" / "last.pt").exists()
    evaluation = json.loads((run / "eval_results.json").read_text())
    assert torch.isfinite(torch.tensor(evaluation["return_mean"])).all()
    logged = (run / ".hydra" / "config.yaml").read_text()
    assert "physics: warp" in logged  # what is logged is what ran


@pytest.mark.slow
def test_ant_on_warp_matches_mujoco_c_with_an_elliptic_friction_cone():
    """Ant: gymnasium's model has a pyramidal friction cone, and MuJoCo Warp orients a
    contact's tangent frame differently from MuJoCo C (C: from the capsule's axis; Warp: fixed
    axes; the contact's position, depth and normal agree to 1e-7). A pyramid's edges turn with
    the frame, so the contact forces differ (measured at the first contact: C 66.9 on one edge,
    Warp 47.1 and 25.7 on two) and the states part at once. With an elliptic cone, which has
    no orientation, the two agree to float32 precision until the gait turns chaotic."""
    model = load_model(AntVelocity.xml_file)
    model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    n = 8
    gen = torch.Generator().manual_seed(0)
    noise = 2 * torch.rand(n, model.nq, generator=gen, dtype=torch.float64) - 1
    qpos = torch.from_numpy(model.qpos0)[None] + 0.1 * noise
    qvel = 0.1 * torch.randn(n, model.nv, generator=gen, dtype=torch.float64)
    c, w = MujocoPhysics(model, n, threads=1), WarpPhysics(model, n, CPU)
    contacts = 0
    for physics in (c, w):
        physics.reset(qpos, qvel)
    for _ in range(20):  # 100 physics steps, the torso lands and the legs touch down
        ctrl = 2 * torch.rand(n, model.nu, generator=gen, dtype=torch.float64) - 1
        c.step(ctrl, 5)
        w.step(ctrl, 5)
        contacts += int(w.data.nacon.numpy()[0])
        assert (c.qpos() - w.qpos().double()).abs().max() < 1e-3
        assert (c.qvel() - w.qvel().double()).abs().max() < 1e-2
    assert contacts > 0


def test_warp_physics_without_the_extra_is_one_line(tmp_path):
    """A mujoco_warp that cannot be imported (shadowed here) stops the run at the config check
    with one line saying how to install it, and the run directory is never made."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "mujoco_warp.py").write_text("raise ImportError('No module named mujoco_warp')\n")
    run = tmp_path / "run"
    args = ["env=halfcheetah_dir", "env.physics=warp", *TINY, f"hydra.run.dir={run}"]
    result = run_cli(args, cwd=tmp_path, extra_env={"PYTHONPATH": str(shadow)}, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0] == (
        "error: env.physics='warp' is not allowed: MuJoCo Warp is not installed: "
        'pip install -e ".[gpu]"'
    )
    assert not run.exists()
