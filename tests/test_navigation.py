"""The batched 2D navigation family: dynamics, torchrl compatibility, task streams."""

from __future__ import annotations

import torch
from torchrl.envs.utils import check_env_specs

from maml_hydra.config import NavigationConfig
from maml_hydra.experiment import Experiment
from maml_hydra.tasks.navigation import Navigation2D
from tests.conftest import make_config


def make_env(tasks=2, episodes=3, **kw) -> Navigation2D:
    env = Navigation2D(NavigationConfig(**kw), tasks, episodes)
    env.set_tasks(torch.tensor([[0.3, -0.2], [-0.45, 0.1]])[:tasks])
    return env


def test_normalized_actions_are_scaled_by_the_bound_then_clipped():
    env = make_env()
    env.reset_batch()
    obs, _, _ = env.step_batch(torch.tensor([0.5, -3.0]).expand(2, 3, 2))
    assert torch.allclose(obs, torch.tensor([0.05, -0.1]).expand(2, 3, 2))


def test_starts_at_origin_clips_actions_and_rewards_minus_distance():
    env = make_env(normalized_actions=False)
    obs = env.reset_batch()
    assert obs.shape == (2, 3, 2) and torch.all(obs == 0)
    action = torch.tensor([5.0, -0.05]).expand(2, 3, 2)
    obs, reward, done = env.step_batch(action)
    assert torch.allclose(obs, torch.tensor([0.1, -0.05]).expand(2, 3, 2))
    goals = env.tasks[:, None, :]
    assert torch.allclose(reward, -(obs - goals).norm(dim=-1))
    assert not done.any()


def test_episode_ends_at_the_goal_and_stays_there_with_zero_reward():
    env = make_env(tasks=1, episodes=2, normalized_actions=False)
    env.reset_batch()
    goal = env.tasks[0]
    # episode 0 heads straight to the goal in steps of at most 0.1; episode 1 stays put
    for _ in range(5):
        pos = env.position[0, 0]
        step = torch.stack([(goal - pos), torch.zeros(2)])[None]
        obs, reward, done = env.step_batch(step)
    assert done[0, 0] and not done[0, 1]
    frozen = obs[0, 0].clone()
    obs, reward, done = env.step_batch(torch.ones(1, 2, 2))
    assert torch.equal(obs[0, 0], frozen) and reward[0, 0] == 0 and done[0, 0]


def test_oracle_appends_the_goal():
    env = make_env(oracle=True)
    obs = env.reset_batch()
    assert env.observation_dim == 4 and obs.shape == (2, 3, 4)
    assert torch.equal(obs[..., 2:], env.tasks[:, None, :].expand(2, 3, 2))


def test_is_a_torchrl_env_with_the_same_dynamics():
    env = make_env()
    check_env_specs(env)
    actions = torch.randn(10, 2, 3, 2, generator=torch.Generator().manual_seed(0)) * 0.1
    td = env.reset()
    torchrl_obs = []
    for a in actions:
        td["action"] = a
        td = env.step(td)["next"]
        torchrl_obs.append(td["observation"])
    env.reset_batch()
    fast_obs = [env.step_batch(a)[0] for a in actions]
    assert torch.equal(torch.stack(torchrl_obs), torch.stack(fast_obs))


def test_goals_are_uniform_in_the_box():
    env = make_env()
    goals = env.sample_tasks(2000, torch.Generator().manual_seed(0))
    assert goals.min() >= -0.5 and goals.max() <= 0.5
    assert goals.min() < -0.49 and goals.max() > 0.49


def test_training_tasks_are_resampled_and_never_the_evaluation_tasks():
    exp = Experiment(make_config(), run_dir="unused")
    for _ in range(3):
        exp.meta_iteration()
    train = exp.seen_tasks
    assert not torch.equal(train[0], train[1]) and not torch.equal(train[1], train[2])
    seen = torch.cat(train)
    held_out = exp.evaluator.tasks
    assert torch.cdist(held_out, seen).min() > 0
    # Held-out tasks do not depend on the training seed: every run is evaluated on the same ones.
    other = Experiment(make_config(["seed=5"]), run_dir="unused")
    assert torch.equal(other.evaluator.tasks, held_out)
    assert not torch.equal(other.env.sample_tasks(3, other.task_rng), train[0])
