"""The batched MuJoCo Ant family against gymnasium's Ant-v5, and a tiny real training run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from maml_hydra.config import AntVelocityConfig
from maml_hydra.experiment import Experiment
from maml_hydra.tasks.ant import AntVelocity
from tests.conftest import make_config


def test_batched_ant_matches_gymnasium_ant_v5():
    tasks, episodes = 2, 2
    env = AntVelocity(AntVelocityConfig(), tasks, episodes)
    env.set_tasks(torch.tensor([[0.5], [2.0]]))
    gen = torch.Generator().manual_seed(0)
    obs = env.reset_batch(gen)
    qpos0, qvel0 = env._qpos().copy(), env._qvel().copy()
    actions = torch.rand(30, tasks, episodes, 8, generator=gen) * 2.4 - 1.2  # some beyond [-1, 1]

    refs = []
    for i in range(tasks * episodes):
        ref = gym.make("Ant-v5", include_cfrc_ext_in_observation=False)
        ref.reset(seed=i)
        ref.unwrapped.set_state(qpos0[i], qvel0[i])
        refs.append(ref)
    expected0 = np.stack([r.unwrapped._get_obs() for r in refs])
    assert np.allclose(obs.reshape(4, 27).double().numpy(), expected0, atol=1e-6)

    goals = env.tasks[:, 0].repeat_interleave(episodes).numpy()
    for a in actions:
        x_before = env._qpos()[:, 0].copy()
        obs, reward, done = env.step_batch(a)
        flat = a.reshape(4, 8).double().clamp(-1, 1).numpy()
        for i, ref in enumerate(refs):
            ref_obs, _, _, _, info = ref.step(flat[i])
            # same states (float32 observations, float64 physics)
            assert np.allclose(obs.reshape(4, 27)[i].double().numpy(), ref_obs, atol=1e-5)
            assert np.allclose(env._qpos()[i], ref.unwrapped.data.qpos, atol=1e-6)
            assert np.allclose(env._qvel()[i], ref.unwrapped.data.qvel, atol=1e-6)
            # the stated reward, on the state's x displacement
            velocity = (env._qpos()[i, 0] - x_before[i]) / 0.05
            want = -abs(velocity - goals[i]) - 0.5e-2 * (flat[i] ** 2).sum() + 0.05
            assert abs(reward.reshape(4)[i].item() - want) < 1e-5  # float32 reward
            # gymnasium's x_velocity reads xpos at the last RK4 stage, not the final state: a
            # coarse guard only (a wrong dt or axis would be off by far more)
            assert abs(info["x_velocity"] - velocity) < 0.05
        assert not done.any()


def test_oracle_observation_carries_the_goal_velocity():
    env = AntVelocity(AntVelocityConfig(oracle=True), 2, 3)
    env.set_tasks(torch.tensor([[0.25], [2.5]]))
    obs = env.reset_batch(torch.Generator().manual_seed(0))
    assert obs.shape == (2, 3, 28)
    assert torch.equal(obs[..., 27], torch.tensor([[0.25] * 3, [2.5] * 3]))


def test_ant_meta_trains_on_real_mujoco_with_tasks_resampled(tmp_path):
    cfg = make_config(
        [
            "env=ant",
            "env.horizon=5",
            "train.meta_batch_size=2",
            "train.episodes_per_task=2",
            "train.iterations=2",
            "eval.num_tasks=2",
            "eval.episodes_per_task=2",
            "eval.num_steps=1",
        ]
    )
    exp = Experiment(cfg, tmp_path)
    summary = exp.train()
    first, second = exp.seen_tasks
    assert not torch.equal(first, second) and first.min() >= 0 and first.max() <= 3
    assert len(summary["return_mean"]) == 2 and all(np.isfinite(summary["return_mean"]))
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
