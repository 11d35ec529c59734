"""The batched 2D navigation family: dynamics, torchrl compatibility, task streams."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import torch
from omegaconf import OmegaConf
from torchrl.envs.utils import check_env_specs

from maml_hydra.advantages import batch_advantages
from maml_hydra.config import NavigationConfig
from maml_hydra.experiment import Experiment
from maml_hydra.sampling import rollout
from maml_hydra.tasks.locomotion import Ant
from maml_hydra.tasks.navigation import Navigation2D
from tests.helpers import ROOT, make_config, results


def make_env(tasks=2, episodes=3, **kw) -> Navigation2D:
    env = Navigation2D(NavigationConfig(**kw), tasks, episodes)
    env.set_tasks(torch.tensor([[0.3, -0.2], [-0.45, 0.1], [0.05, 0.25]])[:tasks])
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


def homing_policy(env, gain=0.5, std=0.3):
    """Moves a fraction of the way to the goal, with noise: episodes end at different times."""
    log_std = torch.full((env.num_tasks, 2), math.log(std))
    return lambda obs: ((env.tasks[:, None, :] - obs) / 0.1 * gain, log_std)


def reference_step_budget(env, dist_fn, rng, gamma=0.99, lam=0.9, budget=None, pooled=False):
    """rllab's sampler with one Python list per row: step every row until each task has
    ``budget`` (E * H by default) env steps in completed episodes, or with ``pooled`` until the
    tasks together have T * budget; a row whose episode ends starts a new one."""
    num_tasks, rows = env.batch_size
    horizon = env.horizon
    budget = budget or rows * horizon
    obs = env.reset_batch(rng)
    running = [[[] for _ in range(rows)] for _ in range(num_tasks)]
    kept = [[] for _ in range(num_tasks)]
    done_steps = [0] * num_tasks

    def more():
        return sum(done_steps) < num_tasks * budget if pooled else min(done_steps) < budget

    while more():
        mean, log_std = dist_fn(obs)
        action = mean + torch.randn(mean.shape, generator=rng) * log_std.exp()[:, None, :]
        next_obs, reward, done = env.step_batch(action)
        restart = torch.zeros(num_tasks, rows, dtype=torch.bool)
        budget_reached = [n >= budget and not pooled for n in done_steps]
        for t in range(num_tasks):
            for e in range(rows):
                running[t][e].append((obs[t, e], action[t, e], float(reward[t, e])))
                if done[t, e] or len(running[t][e]) == horizon:
                    if not budget_reached[t]:
                        kept[t].append(running[t][e])
                        done_steps[t] += len(running[t][e])
                    running[t][e], restart[t, e] = [], True
        obs = env.restart_batch(restart, rng) if restart.any() else next_obs
    # each kept episode in its own row, for the one-episode-per-row advantages
    most = max(len(k) for k in kept)
    o, a = torch.zeros(num_tasks, most, horizon, 2), torch.zeros(num_tasks, most, horizon, 2)
    r, m = torch.zeros(num_tasks, most, horizon), torch.zeros(num_tasks, most, horizon)
    for t, episodes in enumerate(kept):
        for k, episode in enumerate(episodes):
            for s, (ob, ac, re) in enumerate(episode):
                o[t, k, s], a[t, k, s], r[t, k, s], m[t, k, s] = ob, ac, re, 1.0
    advantages = batch_advantages(o, r, m, gamma, lam)
    returns = torch.tensor([sum(sum(x[2] for x in ep) for ep in eps) / len(eps) for eps in kept])
    return kept, returns, o, a, advantages, m


def test_step_budget_sampling_equals_rllabs_sampler_written_as_a_loop():
    env = make_env(tasks=2, episodes=3, horizon=8, goal_tolerance=0.03)
    fast = rollout(env, homing_policy(env), torch.Generator().manual_seed(3), 0.99, 0.9, 3 * 8)
    kept, returns, obs, actions, advantages, mask = reference_step_budget(
        env, homing_policy(env), torch.Generator().manual_seed(3)
    )
    assert_same_kept_episodes(fast, kept, returns, obs, actions, advantages, mask)


def test_pooled_budget_sampling_equals_rllabs_training_sampler_written_as_a_loop():
    """train.sampling=sequential: one row per task, the tasks share T x E x H env steps."""
    env = make_env(tasks=3, episodes=1, horizon=8, goal_tolerance=0.03)
    homing = homing_policy(env, gain=0.3)
    fast = rollout(env, homing, torch.Generator().manual_seed(4), 0.99, 0.9, 4 * 8, pooled=True)
    kept, returns, obs, actions, advantages, mask = reference_step_budget(
        env, homing, torch.Generator().manual_seed(4), budget=4 * 8, pooled=True
    )
    assert_same_kept_episodes(fast, kept, returns, obs, actions, advantages, mask)
    # tasks stop together: some get more than their share of the pooled budget, some less
    per_task = fast.mask.sum(dim=(1, 2))
    assert per_task.sum() >= 3 * 4 * 8 and per_task.min() < 4 * 8 < per_task.max()


def assert_same_kept_episodes(fast, kept, returns, obs, actions, advantages, mask):
    lengths = [len(ep) for eps in kept for ep in eps]
    assert min(lengths) < 8 and max(lengths) == 8  # both ways of ending occur
    # the kept steps are compacted into one row per task
    assert fast.mask.shape[1] == 1 and fast.mask.sum(dim=(1, 2)).max() == fast.mask.shape[2]
    assert [len(eps) for eps in kept] == fast.ends.sum(dim=(1, 2)).long().tolist()
    assert torch.allclose(fast.task_returns(), returns, atol=1e-5)
    assert fast.mask.sum(dim=(1, 2)).tolist() == mask.sum(dim=(1, 2)).tolist()
    for t in range(len(kept)):  # the same steps with the same advantages, in any order
        got = kept_steps(fast.obs[t], fast.actions[t], fast.advantages[t], fast.mask[t])
        want = kept_steps(obs[t], actions[t], advantages[t], mask[t])
        assert [k for k, _ in got] == [k for k, _ in want]
        assert torch.allclose(
            torch.tensor([v for _, v in got]), torch.tensor([v for _, v in want]), atol=1e-4
        )


def kept_steps(obs, actions, advantages, mask):
    """(rounded observation and action, advantage) of every kept step, sorted."""
    valid = mask.bool()
    keys = torch.cat([obs[valid], actions[valid]], dim=-1).mul(1e4).round().tolist()
    return sorted(zip(keys, advantages[valid].tolist(), strict=True))


def test_step_budget_sampling_without_early_ends_is_episode_sampling():
    env = make_env(tasks=2, episodes=3, horizon=8, goal_tolerance=0.0)
    a = rollout(env, homing_policy(env), torch.Generator().manual_seed(0), 0.99, 1.0)
    b = rollout(env, homing_policy(env), torch.Generator().manual_seed(0), 0.99, 1.0, 3 * 8)
    for name, x, y in zip(a._fields, a, b, strict=True):
        assert torch.equal(x, y), name


def test_step_budget_training_gives_tasks_that_end_early_more_episodes(tmp_path):
    cfg = make_config(["train.sampling=steps", "env.goal_tolerance=0.1"])
    exp = Experiment(cfg, tmp_path)
    metrics = exp.meta_iteration()
    assert all(math.isfinite(v) for v in metrics.values())
    batch = exp.sample_meta_batch()
    for traj in (*batch.supports, batch.query):
        episodes = traj.ends.sum(dim=(1, 2))
        assert (episodes > cfg.train.episodes_per_task).any()
        # every task gets at least its budget of env steps in completed episodes
        budget = cfg.train.episodes_per_task * cfg.env.horizon
        assert (traj.mask.sum(dim=(1, 2)) >= budget).all()
    assert Navigation2D.can_restart() and Ant.can_restart()


def test_the_reproduction_script_trains_and_prints_both_tables(tmp_path):
    """scripts/reproduce_nav.sh (docs/RESULTS.md), shrunk by later overrides to seconds. It runs
    from a copy that its first Python call overwrites in place, as an edit during a run would:
    the run still completes as the script was when it started."""
    run_dir = tmp_path / "nav"
    script = tmp_path / "copy" / "scripts" / "reproduce_nav.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "reproduce_nav.sh", script)
    python = tmp_path / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        f"if [ ! -e {tmp_path}/edited ]; then touch {tmp_path}/edited\n"
        f"  yes 'echo EDITED; exit 3' | head -n 400 > {script}; fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    result = subprocess.run(
        [
            "bash",
            str(script),
            "2",
            "train.meta_batch_size=2",
            "train.episodes_per_task=2",
            "env.horizon=10",
            "policy.hidden_sizes=[8]",
            "train.eval_every=1",
            "eval.lrs=[0.2,0.1]",
        ],
        env={**os.environ, "PYTHON": str(python), "RUN_DIR": str(run_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "EDITED" not in result.stdout and script.read_text().startswith("echo EDITED")
    assert "2D navigation reproduction: " in result.stdout and str(run_dir) in result.stdout
    # the run's row and the paper's, as `results seeds` prints them (compared below)
    assert "| MAML paper, Table 4 | | -40.41 / -11.68 / -3.33 / -3.23 | |" in result.stdout
    report = json.loads((run_dir / "eval" / "results.json").read_text())
    assert report["settings"]["lrs"] == [0.2, 0.1]  # the run's step sizes on the original goals too
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.policy.init == "xavier" and cfg.train.sampling == "steps"
    assert cfg.algorithm.hvp == "finite_difference"
    np_goals = torch.tensor(next(iter(report["runs"].values()))["tasks"])
    assert np_goals.shape == (40, 2) and abs(float(np_goals[0, 0]) - (-0.082978)) < 1e-5
    # `python -m maml_hydra.results seeds` reads the run back: the three columns, then their
    # mean over seeds
    table = results(*["seeds", str(run_dir), "--at", "1"])
    assert table.returncode == 0, table.stderr[-3000:]
    assert results("seeds", str(run_dir)).stdout in result.stdout  # the script's own table
    own_summary = json.loads((run_dir / "eval_results.json").read_text())
    own, own_per_task = own_summary["return_mean"], own_summary["return_per_task"]
    original = [s["mean"] for s in report["summary"]["maml"]["steps"]]
    cells = [" / ".join(f"{v:.2f}" for v in values) for values in (own, original)]
    assert f"| nav | {cells[0]} | {cells[1]} | " in table.stdout
    assert "| mean ± s.e. of all 1 | " in table.stdout
    # --export: a compact file that stands in for the run, and --against pairs by run name
    exported = results(
        *["seeds", str(run_dir), "--at", "1"] + ["--export", str(tmp_path / "exported")]
    )
    assert exported.returncode == 0 and exported.stdout == table.stdout, exported.stderr
    record = json.loads((tmp_path / "exported" / "nav.json").read_text())
    assert record["original"]["returns"] == next(iter(report["runs"].values()))["returns"]
    assert record["returns"] == own_per_task and record["at"]["iteration"] == 1
    assert record["env_steps"] > 0 and record["commit"] and "finite_difference" in record["config"]
    nav_json = str(tmp_path / "exported" / "nav.json")
    again = results(*["seeds", nav_json] + ["--at", "1", "--against", str(run_dir), str(run_dir)])
    assert again.returncode != 0 and "same name" in again.stderr  # two runs named nav
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for k in (0, 1):  # two seeds, and the same two 1.0 lower on the original goals
        (tmp_path / "a" / f"seed{k}.json").write_text(json.dumps(record))
        rows = [[v - 1.0 for v in row] for row in record["original"]["returns"]]
        lower = {**record, "original": {**record["original"], "returns": rows}}
        (tmp_path / "b" / f"seed{k}.json").write_text(json.dumps(lower))
    against = results(
        *["seeds", "--at", "1"]
        + [str(tmp_path / "a" / f"seed{k}.json") for k in (0, 1)]
        + ["--against"]
        + [str(tmp_path / "b" / f"seed{k}.json") for k in (0, 1)]
    )
    assert against.returncode == 0, against.stderr
    last = against.stdout.splitlines()[-1].split(" | ")
    assert last[0] == "| this minus --against, paired by run (2 pairs)"
    steps = len(record["returns"])
    assert last[1] == " / ".join(["+0.00 ± 0.00 (0 of 2)"] * steps)
    assert last[2] == " / ".join(["+1.00 ± 0.00 (2 of 2)"] * steps)
    missing = results(*["seeds", str(tmp_path)])
    assert missing.returncode != 0 and missing.stdout == ""
    expected = f"error: {tmp_path / 'eval_results.json'}: missing (run scripts/reproduce_nav.sh"
    assert missing.stderr.strip().splitlines() == [f"{expected} to completion)"]


def test_bench_times_both_samplings_from_a_checkpoint(tmp_path):
    Experiment(make_config(["train.iterations=1", "env.goal_tolerance=0.1"]), tmp_path).train()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--at", str(tmp_path)]
        + ["--iterations", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| episodes | " in result.stdout and "| steps | " in result.stdout
    assert "steps / episodes, seconds per iteration: " in result.stdout


def test_sequential_training_runs_one_row_per_task_and_evaluates_like_steps(tmp_path):
    cfg = make_config(["train.sampling=sequential", "env.goal_tolerance=0.1"])
    exp = Experiment(cfg, tmp_path)
    tasks, episodes, horizon = (
        cfg.train.meta_batch_size,
        cfg.train.episodes_per_task,
        cfg.env.horizon,
    )
    assert tuple(exp.env.batch_size) == (tasks, 1)
    metrics = exp.meta_iteration()
    assert all(math.isfinite(v) for v in metrics.values())
    batch = exp.sample_meta_batch()
    for traj in (*batch.supports, batch.query):
        assert traj.mask.sum() >= tasks * episodes * horizon
        assert (traj.ends.sum(dim=(1, 2)) > episodes).any()
    eval_env = exp.evaluator.env
    assert exp.evaluator.plan == (
        eval_env.episodes_per_task,
        eval_env.episodes_per_task * horizon,
        False,
    )
    assert exp.plan == (1, episodes * horizon, True)


def test_mode_sampling_acts_with_the_mean_and_draws_no_noise():
    """rollout(mode=True), the scoring of Meta-World's evaluation: every action is the
    policy's mean (a step of the mean policy written as a loop), and the noise stream is left
    where it was."""
    env = make_env(tasks=2, episodes=3, horizon=8, goal_tolerance=0.0)
    policy = homing_policy(env, gain=0.3)
    rng = torch.Generator().manual_seed(5)
    got = rollout(env, policy, rng, 0.99, 1.0, mode=True)
    assert torch.equal(got.actions, got.mean)
    assert torch.equal(rng.get_state(), torch.Generator().manual_seed(5).get_state())
    obs = env.reset_batch(torch.Generator().manual_seed(0))
    for t in range(env.horizon):
        assert torch.allclose(got.obs[:, :, t], obs)
        obs, _, _ = env.step_batch(policy(obs)[0])
    noisy = rollout(env, policy, torch.Generator().manual_seed(5), 0.99, 1.0)
    assert not torch.equal(noisy.actions, noisy.mean)
