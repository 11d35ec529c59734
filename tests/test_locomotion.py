"""The batched MuJoCo locomotion families against gymnasium's v5 environments, and tiny real
training runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from maml_hydra.checkpoint import load_checkpoint
from maml_hydra.config import (
    AntDirectionConfig,
    AntVelocityConfig,
    HalfCheetahDirectionConfig,
    HalfCheetahVelocityConfig,
)
from maml_hydra.experiment import Experiment
from maml_hydra.tasks.base import RunningNormalizer
from maml_hydra.tasks.locomotion import (
    AntDirection,
    AntVelocity,
    HalfCheetahDirection,
    HalfCheetahVelocity,
)
from tests.helpers import ROOT, make_config

# family, its config, the gymnasium reference and its settings, the reward's ctrl/survive terms
REFERENCES = {
    "ant": (
        AntVelocity,
        AntVelocityConfig(),
        ("Ant-v5", {"include_cfrc_ext_in_observation": False}),
        (0.5e-2, 0.05),
    ),
    "halfcheetah_vel": (
        HalfCheetahVelocity,
        HalfCheetahVelocityConfig(),
        ("HalfCheetah-v5", {}),
        (0.5e-1, 0.0),
    ),
}


@pytest.mark.parametrize("name", REFERENCES)
def test_batched_family_matches_gymnasium_v5(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # gymnasium's own model load writes MUJOCO_LOG.TXT here
    family, cfg, (gym_id, gym_kwargs), (ctrl_cost, survive) = REFERENCES[name]
    tasks, episodes, n = 2, 2, 4
    env = family(cfg, tasks, episodes)
    obs_dim, act_dim = family.gymnasium_obs_dim, family.action_dim
    env.set_tasks(torch.tensor([[0.5], [2.0]]))
    gen = torch.Generator().manual_seed(0)
    obs = env.reset_batch(gen)
    qpos0, qvel0 = env._qpos().numpy().copy(), env._qvel().numpy().copy()
    # some actions beyond the control range [-1, 1]
    actions = torch.rand(30, tasks, episodes, act_dim, generator=gen) * 2.4 - 1.2

    refs = []
    for i in range(n):
        ref = gym.make(gym_id, **gym_kwargs)
        ref.reset(seed=i)
        ref.unwrapped.set_state(qpos0[i], qvel0[i])
        refs.append(ref)
    expected0 = np.stack([r.unwrapped._get_obs() for r in refs])
    assert obs.shape == (tasks, episodes, obs_dim)
    assert np.allclose(obs.reshape(n, obs_dim).double().numpy(), expected0, atol=1e-6)

    goals = env.tasks[:, 0].repeat_interleave(episodes).numpy()
    for a in actions:
        x_before = env._qpos()[:, 0].numpy().copy()
        obs, reward, done = env.step_batch(a)
        flat = a.reshape(n, act_dim).double().clamp(-1, 1).numpy()
        for i, ref in enumerate(refs):
            ref_obs, _, _, _, info = ref.step(flat[i])
            # same states (float32 observations, float64 physics)
            assert np.allclose(obs.reshape(n, obs_dim)[i].double().numpy(), ref_obs, atol=1e-5)
            assert np.allclose(env._qpos()[i], ref.unwrapped.data.qpos, atol=1e-6)
            assert np.allclose(env._qvel()[i], ref.unwrapped.data.qvel, atol=1e-6)
            # the stated reward, on the state's x displacement
            velocity = (env._qpos()[i, 0].item() - x_before[i]) / 0.05
            want = -abs(velocity - goals[i]) - ctrl_cost * (flat[i] ** 2).sum() + survive
            assert abs(reward.reshape(n)[i].item() - want) < 1e-5  # float32 reward
            if name == "ant":
                # gymnasium's Ant x_velocity reads xpos at the last RK4 stage, not the final
                # state: a coarse guard only (a wrong dt or axis would be off by far more)
                assert abs(info["x_velocity"] - velocity) < 0.05
            else:  # HalfCheetah-v5 measures qpos[0], as we do
                assert abs(info["x_velocity"] - velocity) < 1e-6
        assert not done.any()


@pytest.mark.parametrize(
    ("family", "cfg", "low", "high"),
    [
        (AntVelocity, AntVelocityConfig(), 0.0, 3.0),
        (HalfCheetahVelocity, HalfCheetahVelocityConfig(), 0.0, 2.0),
    ],
)
def test_goal_velocities_cover_the_papers_range(family, cfg, low, high):
    env = family(cfg, 1, 1)
    goals = env.sample_tasks(4000, torch.Generator().manual_seed(0))
    assert goals.min() >= low and goals.max() <= high
    assert goals.min() < low + 0.01 and goals.max() > high - 0.01
    assert abs(goals.mean().item() - (low + high) / 2) < 0.05


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


TINY_ANT = [
    "env=ant",
    "env.horizon=5",
    "train.meta_batch_size=2",
    "train.episodes_per_task=2",
    "eval.num_tasks=2",
    "eval.episodes_per_task=2",
    "eval.num_steps=1",
]


def test_running_normalizer_matches_the_statistics_of_everything_seen():
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 3, 4, generator=gen) * 3 + 1 for n in (2, 5, 1)]
    norm = RunningNormalizer(4)
    for b in batches:
        norm.update(b)
    seen = torch.cat([b.reshape(-1, 4) for b in batches]).double()
    assert torch.allclose(norm.mean, seen.mean(0)) and torch.allclose(
        norm.var, seen.var(0, unbiased=False)
    )
    assert norm.count == seen.shape[0]
    z = norm.normalize(seen.float())
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=1e-5) and torch.allclose(
        z.std(0, unbiased=False), torch.ones(4), atol=1e-4
    )


def test_observation_statistics_train_stay_fixed_in_evaluation_and_survive_a_checkpoint(tmp_path):
    exp = Experiment(make_config([*TINY_ANT, "train.iterations=2"]), tmp_path)
    exp.train()
    norm = exp.normalizer
    # 2 iterations x (support + query) x 2x2 episodes x (5 steps + reset)
    assert norm.count == 2 * 2 * 4 * 6
    before = norm.state_dict()
    exp.evaluate()
    assert all(
        torch.equal(before[k], norm.state_dict()[k]) for k in before
    )  # evaluation does not update

    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert all(torch.equal(state["obs_normalizer"][k], before[k]) for k in before)
    fresh = Experiment(make_config([*TINY_ANT, "train.iterations=2"]), tmp_path / "other")
    fresh.load_weights(state)  # what the evaluation report loads
    assert all(torch.equal(fresh.normalizer.state_dict()[k], before[k]) for k in before)
    assert (
        fresh.evaluator.env.normalizer is fresh.normalizer
        and not fresh.evaluator.env.update_normalizer
    )


def test_ant_resume_is_exact_with_observation_statistics(tmp_path):
    """Resumed on another number of physics threads (a resumable key: threads split the
    simulations, each computed alone), the run still ends where an uninterrupted one does, and
    its config says the threads it now runs on."""
    full = Experiment(make_config([*TINY_ANT, "train.iterations=3"]), tmp_path / "full")
    full.train()
    part = make_config([*TINY_ANT, "train.iterations=1", "env.threads=1"])
    Experiment(part, tmp_path / "part").train()
    resumed = Experiment(
        make_config([*TINY_ANT, "train.iterations=3", f"resume={tmp_path / 'part'}"])
    )
    assert resumed.cfg.env.threads == 2
    resumed.train()
    assert torch.equal(full.learner.parameters(), resumed.learner.parameters())
    assert torch.equal(full.normalizer.mean, resumed.normalizer.mean)
    written = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")["config"]
    assert "threads: 2" in written and "threads: 1" not in written


@pytest.mark.parametrize(
    ("family", "cfg", "ctrl_cost", "survive"),
    [
        (AntDirection, AntDirectionConfig(), 0.5e-2, 0.05),
        (HalfCheetahDirection, HalfCheetahDirectionConfig(), 0.5e-1, 0.0),
    ],
)
def test_direction_families_reward_d_times_forward_velocity(family, cfg, ctrl_cost, survive):
    env = family(cfg, 2, 2)
    tasks = env.sample_tasks(1000, torch.Generator().manual_seed(0))
    assert set(tasks.unique().tolist()) == {-1.0, 1.0} and abs(tasks.mean()) < 0.1
    env.set_tasks(torch.tensor([[1.0], [-1.0]]))
    env.reset_batch(torch.Generator().manual_seed(1))
    a = torch.rand(2, 2, family.action_dim, generator=torch.Generator().manual_seed(2)) * 2 - 1
    x_before = env._qpos()[:, 0].numpy().copy()
    _, reward, _ = env.step_batch(a)
    velocity = (env._qpos()[:, 0].numpy() - x_before) / 0.05
    d = np.array([1.0, 1.0, -1.0, -1.0])
    ctrl = ctrl_cost * (a.reshape(4, -1).double().numpy() ** 2).sum(1)
    want = d * velocity - ctrl + survive
    assert np.allclose(reward.reshape(4).double().numpy(), want, atol=1e-5)


@pytest.mark.parametrize(
    ("family", "cfg"),
    [
        (AntVelocity, AntVelocityConfig(oracle=True)),
        (AntDirection, AntDirectionConfig(oracle=True)),
        (HalfCheetahVelocity, HalfCheetahVelocityConfig(oracle=True)),
        (HalfCheetahDirection, HalfCheetahDirectionConfig(oracle=True)),
    ],
)
def test_oracle_observation_carries_the_task_parameter(family, cfg):
    env = family(cfg, 2, 3)
    env.set_tasks(torch.tensor([[-1.0], [1.0]]))
    obs = env.reset_batch(torch.Generator().manual_seed(0))
    assert obs.shape == (2, 3, family.gymnasium_obs_dim + 1)
    assert torch.equal(obs[..., -1], torch.tensor([[-1.0] * 3, [1.0] * 3]))


@pytest.mark.parametrize(
    ("env", "algorithm"),
    [
        ("ant", "ppo"),
        ("ant_dir", "trpo"),
        ("halfcheetah_vel", "trpo"),
        ("halfcheetah_dir", "ppo"),
    ],
)
def test_every_locomotion_family_meta_trains_from_its_yaml(tmp_path, env, algorithm):
    overrides = [*TINY_ANT[1:], f"env={env}", f"algorithm={algorithm}", "env.oracle=true"]
    cfg = make_config([*overrides, "train.iterations=1"])
    exp = Experiment(cfg, tmp_path)
    summary = exp.train()
    assert np.isfinite(summary["return_mean"]).all()
    assert exp.env.observation_dim == exp.env.state_obs_dim + 1


def test_mujoco_compiler_warnings_are_python_warnings_not_a_log_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="half_cheetah.xml: compiler attribute 'settotalmass'"):
        HalfCheetahDirection(HalfCheetahDirectionConfig(), 1, 1)
    assert list(tmp_path.iterdir()) == []


def run_script(name: str, args: list[str], **env: str) -> subprocess.CompletedProcess:
    """``bash scripts/<name> <args>`` with this interpreter as its PYTHON."""
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / name), *args],
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_short_ant_run_script_trains_and_summarizes(tmp_path):
    """scripts/ant_short.sh (docs/RESULTS.md), shrunk by later overrides to a few seconds."""
    run_dir = tmp_path / "ant"
    args = ["2", "train.meta_batch_size=2", "train.episodes_per_task=2", "env.horizon=5"]
    args += ["eval.num_tasks=2", "eval.episodes_per_task=2", "train.eval_every=1"]
    result = run_script("ant_short.sh", args, RUN_DIR=str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["iteration"] == 2
    assert f"{run_dir}: 2 iterations" in result.stdout
    assert "| 1-2 |" in result.stdout and "held-out paired gain" in result.stdout
    assert "eval/return_step_1: " in result.stdout  # evaluated after iteration 1 and at the end


def test_random_init_is_evaluated_with_its_own_observation_statistics(tmp_path):
    """baseline=random with normalised observations: the statistics of the initial policy's own
    rollouts on one meta-batch (not an identity normaliser), parameters untouched; and the
    report's random variant, made from a MAML run of the same seed, is the same policy with the
    same statistics, so both give the same held-out returns."""
    from maml_hydra.report import evaluate_run

    overrides = [*TINY_ANT[1:], "env=halfcheetah_dir", "train.iterations=1"]
    # a command-line train.iterations wins over the baseline's 0, as any override does
    random_cfg = make_config([*overrides, "baseline=random", "train.iterations=0"])
    exp = Experiment(random_cfg, tmp_path / "random")
    initial = exp.learner.parameters()
    summary = exp.train()
    state = load_checkpoint(tmp_path / "random" / "checkpoints" / "last.pt")
    steps = random_cfg.train.meta_batch_size * random_cfg.train.episodes_per_task
    steps *= (random_cfg.env.horizon + 1) * (random_cfg.inner.num_steps + 1)  # resets too
    assert state["iteration"] == 0 and int(state["obs_normalizer"]["count"]) == steps
    assert torch.equal(exp.learner.parameters(), initial)

    maml_cfg = make_config(overrides)
    report = evaluate_run(maml_cfg, None, tmp_path / "maml", random_cfg.eval, "cpu")
    assert report["returns"] == summary["return_per_task"]


def test_a_family_runs_end_to_end_into_result_files(tmp_path):
    """scripts/family_results.sh (experiment=halfcheetah_dir), shrunk to seconds: a sweep of
    MAML, pretrained and oracle, the report with random init, the result files, the table."""
    out = tmp_path / "results"
    args = ["halfcheetah_dir", "0", "train.iterations=1", "train.meta_batch_size=2"]
    args += ["train.episodes_per_task=2", "env.horizon=5", "train.eval_every=0", "inner.lr=0.3"]
    result = run_script(
        "family_results.sh",
        args,
        SWEEP_DIR=str(tmp_path / "sweep"),
        OUT=str(out),
        EVAL="eval.num_tasks=2 eval.episodes_per_task=2 eval.num_steps=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    variants = ("maml", "oracle", "pretrained", "random")
    assert names == ["adaptation.png", "curves.png", *(f"{v}_seed0.json" for v in variants)]
    assert "| maml | 1 |" in result.stdout and "| oracle | 1 |" in result.stdout
    # gymnasium dynamics: the paper's numbers are of another problem, not tabled beside them
    assert "MAML paper" not in result.stdout
    # evaluated at the step size the runs meta-trained with (EVAL sets none)
    assert json.loads((out / "maml_seed0.json").read_text())["eval"]["lrs"] == [0.3]
