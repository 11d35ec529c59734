"""Meta-World in worker processes of its own interpreter (maml_hydra/tasks/meta_world.py), against
the obvious computation: each env built, reset and stepped on its own, one at a time, in a plain
script of the same interpreter. Real Meta-World throughout (`make metaworld` installs it; `make
test` does so first)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import numpy as np
import pytest
import torch

from maml_hydra.tasks.meta_world import INTERPRETER, MetaWorldError, MetaWorldPool

ONE_BY_ONE = """
import json, sys
import numpy as np
import metaworld
spec = json.loads(sys.argv[1])
bench = metaworld.ML1(spec["task"], seed=spec["seed"])
out = []
for index, seed, actions in zip(spec["tasks"], spec["seeds"], spec["actions"]):
    task = bench.train_tasks[index]
    env = bench.train_classes[task.env_name]()
    env.set_task(task)
    obs, _ = env.reset(seed=seed)
    trace = {"obs": [obs.tolist()], "reward": [], "success": []}
    for action in actions:
        obs, reward, _, _, info = env.step(np.asarray(action))
        trace["obs"].append(obs.tolist())
        trace["reward"].append(float(reward))
        trace["success"].append(bool(info["success"]))
    out.append(trace)
print(json.dumps(out))
"""


def one_by_one(task: str, seed: int, tasks, seeds, actions) -> list[dict]:
    spec = {"task": task, "seed": seed, "tasks": tasks, "seeds": seeds, "actions": actions}
    done = subprocess.run(
        [str(INTERPRETER), "-c", ONE_BY_ONE, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout)


def test_the_pool_steps_every_row_as_its_env_alone_would():
    """Four rows over two workers, each a different train task of ML1 reach-v3: observations,
    rewards and success equal, to the bit, those of each env built and stepped alone."""
    rng = np.random.default_rng(0)
    tasks, seeds, steps = [0, 7, 7, 31], [11, 12, 13, 14], 25
    actions = rng.uniform(-1, 1, size=(steps, 4, 4))
    with MetaWorldPool("ML1", "reach-v3", 3, "train", rows=4, workers=2) as pool:
        assert pool.num_tasks == 50 and set(pool.task_names) == {"reach-v3"}
        # CPU-bound workers: a worker woken by its command never preempts the training process
        # before the next worker's command is written (meta_world_worker.batch_scheduling)
        if hasattr(os, "sched_getscheduler"):  # Linux
            assert [os.sched_getscheduler(p.pid) for p in pool.procs] == [os.SCHED_BATCH] * 2
        assert (pool.obs_dim, pool.action_dim, pool.max_path_length) == (39, 4, 500)
        pool.set_tasks(tasks)
        obs = [pool.reset(seeds)]
        rewards, successes = [], []
        for t in range(steps):
            o, r, s, truncated = pool.step(actions[t])
            obs.append(o)
            rewards.append(r)
            successes.append(s)
            assert not truncated.any()
    alone = one_by_one("reach-v3", 3, tasks, seeds, actions.transpose(1, 0, 2).tolist())
    for row, trace in enumerate(alone):
        np.testing.assert_array_equal(np.stack([o[row] for o in obs]), np.array(trace["obs"]))
        np.testing.assert_array_equal([r[row] for r in rewards], trace["reward"])
        assert [bool(s[row]) for s in successes] == trace["success"]
    assert len({tuple(o) for o in obs[1]}) == 4  # the rows are different episodes


def test_rows_that_are_not_live_stay_where_they_are():
    with MetaWorldPool("ML1", "reach-v3", 0, "train", rows=3, workers=2) as pool:
        pool.set_tasks([0, 1, 2])
        start = pool.reset([0, 1, 2])
        live = np.array([True, False, True])
        obs, reward, _, _ = pool.step(np.full((3, 4), 0.5), live)
        np.testing.assert_array_equal(obs[1], start[1])
        assert reward[1] == 0.0 and reward[0] != 0.0
        assert not np.array_equal(obs[0], start[0])


@pytest.mark.slow  # building ML10 twice takes 10-20 s; the ML1 tests cover the pool in make test
def test_the_test_split_holds_the_held_out_tasks():
    """ML10's test split is its 5 held-out classes, never a training one."""
    with MetaWorldPool("ML10", None, 0, "test", rows=1) as test:
        held_out = set(test.task_names)
    with MetaWorldPool("ML10", None, 0, "train", rows=1) as train:
        trained = set(train.task_names)
    assert len(held_out) == 5 and len(trained) == 10 and not held_out & trained


def test_meta_world_failures_are_one_line(tmp_path):
    with pytest.raises(MetaWorldError, match="run `make metaworld`") as missing:
        MetaWorldPool("ML1", "reach-v3", 0, "train", rows=1, python=tmp_path / "python")
    assert "\n" not in str(missing.value)
    with pytest.raises(MetaWorldError, match="worker 0: .*nope-v3") as unknown:
        MetaWorldPool("ML1", "nope-v3", 0, "train", rows=1)
    assert "\n" not in str(unknown.value)
    pool = MetaWorldPool("ML1", "reach-v3", 0, "train", rows=2, workers=2)
    try:
        pool.set_tasks([0, 1])
        pool.reset([0, 1])
        # worker 0 fails on a malformed step (and exits), worker 1 takes it: its answer is
        # read, the pool closes, and a later command is refused rather than answered with it
        good = {"actions": np.zeros((1, 4)), "live": np.ones(1, dtype=bool)}
        pool._send("step", [{**good, "actions": np.zeros((1, 3))}, good])
        with pytest.raises(MetaWorldError, match="worker 0: ") as failed:
            pool._gather()
        assert "\n" not in str(failed.value) and not pool.procs
        with pytest.raises(MetaWorldError, match=r"pool is closed \(Meta-World worker 0: "):
            pool.reset([0, 1])
    finally:
        pool.close()
    pool = MetaWorldPool("ML1", "reach-v3", 0, "train", rows=2, workers=2)
    try:
        pool.set_tasks([0, 1])
        pool.reset([0, 1])
        os.kill(pool.procs[1].pid, signal.SIGKILL)
        with pytest.raises(MetaWorldError, match=r"worker 1 \(pid \d+\) exited with status -9"):
            pool.step(np.zeros((2, 4)))
    finally:
        pool.close()


# ------------------------------------------------------------------ env=metaworld, the family
MW = ["env=metaworld", "env.workers=1", "train.iterations=2", "train.meta_batch_size=2"]
MW += ["train.episodes_per_task=2", "eval.num_tasks=2", "eval.episodes_per_task=2"]
MW += ["env.protocol_rounds=0"]  # Meta-World's own evaluation: its own test below


def test_training_samples_the_train_split_and_evaluation_the_test_split(tmp_path):
    from maml_hydra.experiment import Experiment
    from maml_hydra.results.tensorboard import scalars
    from tests.helpers import make_config

    exp = Experiment(make_config([*MW, "env.horizon=10"]), tmp_path / "run")
    try:
        exp.train()
        assert (exp.env.split, exp.evaluator.env.split) == ("train", "test")
        assert exp.env.pool.task_names == ["reach-v3"] * 50  # ML1: 50 goals of one env
        returns = json.loads((tmp_path / "run" / "eval_results.json").read_text())
        assert len(returns["return_per_task"][0]) == 2
        steps = len(returns["return_mean"])  # the success rate beside the return, every step
        assert len(returns["success_mean"]) == steps and len(returns["success_per_task"]) == steps
        logged = scalars(tmp_path / "run")
        assert len(logged["train/success_after_adaptation"]) == 2
        assert len(logged["eval/success_step_1"]) == 1
    finally:
        exp.close()
    # the report over runs tables the success rate beside the return
    from maml_hydra.config import EvalConfig, EvaluateConfig
    from maml_hydra.report import make_report

    held_out = EvalConfig(num_tasks=2, episodes_per_task=2, num_steps=1)
    report = make_report(EvaluateConfig(dir=str(tmp_path / "run"), eval=held_out, progress=False))
    entry = next(iter(report["runs"].values()))
    assert len(entry["success"]) == len(entry["returns"]) == 2
    assert "Success rate" in (tmp_path / "run" / "eval" / "summary.md").read_text()


def test_the_oracle_sees_the_goal_that_the_benchmark_hides():
    import torch

    from maml_hydra.config import MetaWorldConfig
    from maml_hydra.tasks.meta_world import MetaWorld

    seen = {}
    for oracle in (False, True):
        env = MetaWorld(MetaWorldConfig(oracle=oracle, workers=1, horizon=5), 2, 1)
        try:
            env.set_tasks(torch.tensor([[3.0], [4.0]]))
            obs = env.reset_batch(torch.Generator().manual_seed(0))
            assert obs.shape == (2, 1, 39) and env.observation_dim == 39
            seen[oracle] = obs[:, 0, -3:]
        finally:
            env.close()
    assert torch.all(seen[False] == 0) and torch.all(seen[True].abs().sum(-1) > 0)
    assert not torch.equal(seen[True][0], seen[True][1])  # two tasks, two goals


def test_a_seed_gives_the_same_run_and_another_seed_another(tmp_path):
    """Task draws and action noise come from the run's generators (an episode's start state
    depends on its task alone in Meta-World)."""
    from maml_hydra.experiment import Experiment
    from tests.helpers import make_config

    def first_return(seed: int, name: str) -> float:
        one = ["env.horizon=8", "eval.tasks=[[0.0],[1.0]]", f"seed={seed}"]
        cfg = make_config([*MW, *one])  # explicit held-out tasks: no test-split pool opens
        exp = Experiment(cfg, tmp_path / name)
        try:
            return float(exp.sample_meta_batch().query.rewards.sum())
        finally:
            exp.close()

    assert first_return(0, "a") == first_return(0, "b") != first_return(1, "c")


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("env.benchmark=ML10", "env.task='reach-v3' is not allowed: env.benchmark=ML10 brings"),
        ("env.task=null", "env.task=None is not allowed: env.benchmark=ML1 needs a task"),
        ("env.horizon=501", "env.horizon=501 is not allowed: must be <= 500"),
        ("env.task=reach", "env.task='reach' is not allowed: not a Meta-World v3 task"),
        ("env.python=/nope/python", "Meta-World's interpreter /nope/python is missing: run"),
        ("env.protocol_evaluation_episodes=201", "a class runs 20 env(s) x env.protocol_adap"),
        ("env.protocol_goals=30", "env.protocol_goals=30 is not allowed: must be a multiple of"),
        ("eval.tasks=[[0.0],[50.0]]", "eval.tasks=[50.0] is not allowed: an env=metaworld task"),
        ("eval.tasks=[[0.5],[1.0]]", "eval.tasks=[0.5] is not allowed: an env=metaworld task"),
    ],
)
def test_bad_meta_world_input_is_one_line_and_writes_nothing(tmp_path, override, says):
    from tests.helpers import cli

    result = cli([*MW, override, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and says in lines[0], lines
    assert not (tmp_path / "run").exists()


EXPERT = """
import json, sys, warnings
import numpy as np
import metaworld
from metaworld.policies import SawyerReachV3Policy
warnings.simplefilter("ignore")
index, seed, steps = (int(a) for a in sys.argv[1:])
bench = metaworld.ML1("reach-v3", seed=0)
env = bench.train_classes["reach-v3"]()
env.set_task(bench.train_tasks[index])
env._partially_observable = False
env.__dict__.pop("sawyer_observation_space", None)
obs, _ = env.reset(seed=seed)
policy, actions, success = SawyerReachV3Policy(), [], []
for _ in range(steps):
    action = np.clip(policy.get_action(obs), -1, 1)
    obs, _, _, _, info = env.step(action)
    actions.append(action.tolist())
    success.append(bool(info["success"]))
print(json.dumps({"actions": actions, "success": success}))
"""


def test_an_episode_succeeds_where_meta_world_says_it_does():
    """Meta-World's scripted reach policy, run alone on the oracle's observation, succeeds
    within 80 steps; its actions replayed through the family make that row's episode a success
    and leave a row of zero actions unsuccessful."""
    import torch

    from maml_hydra.config import MetaWorldConfig
    from maml_hydra.tasks.meta_world import MetaWorld

    steps, generator = 80, torch.Generator().manual_seed(5)
    seed = int(torch.randint(2**31 - 1, (2,), generator=torch.Generator().manual_seed(5))[0])
    done = subprocess.run(
        [str(INTERPRETER), "-c", EXPERT, "4", str(seed), str(steps)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    expert = json.loads(done.stdout)
    assert any(expert["success"])
    env = MetaWorld(MetaWorldConfig(oracle=True, workers=1, horizon=steps), 2, 1)
    try:
        env.set_tasks(torch.tensor([[4.0], [4.0]]))
        env.reset_batch(generator)
        for t in range(steps):
            action = torch.zeros(2, 1, 4)
            action[0, 0] = torch.tensor(expert["actions"][t])
            env.step_batch(action)
            assert bool(env.success[0, 0]) == any(expert["success"][: t + 1])
        assert env.episode_success().tolist() == [[1.0], [0.0]]
    finally:
        env.close()


def test_a_worker_that_dies_stops_the_run_and_keeps_its_last_checkpoint(tmp_path):
    """A Meta-World worker killed (SIGKILL) before the third meta-iteration: training stops with
    one line naming the worker, and the checkpoint of iteration 2 is there to resume from."""
    from maml_hydra.checkpoint import load_checkpoint
    from maml_hydra.experiment import Experiment
    from maml_hydra.tasks.meta_world import MetaWorldError
    from tests.helpers import make_config

    cfg = make_config(
        [*MW, "env.workers=2", "env.horizon=5", "train.iterations=4", "train.checkpoint_every=1"]
    )
    exp = Experiment(cfg, tmp_path / "run")
    step = exp.meta_iteration

    def meta_iteration():
        if exp.iteration == 2:
            os.kill(exp.env.pool.procs[1].pid, signal.SIGKILL)
        return step()

    exp.meta_iteration = meta_iteration
    try:
        with pytest.raises(MetaWorldError, match=r"^Meta-World worker 1 \(pid \d+\) exited") as err:
            exp.train()
        assert "\n" not in str(err.value)
    finally:
        exp.close()
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["iteration"] == 2


@pytest.mark.slow  # 10-20 s (six pools start); make test keeps the same-seed test above
def test_a_resumed_meta_world_run_continues_exactly(tmp_path):
    """Two iterations, then two more from the checkpoint, against four in one go: the same
    parameters (task draws and action noise come from the checkpointed generators; the workers'
    envs are reused across episodes)."""
    import torch

    from maml_hydra.experiment import Experiment
    from tests.helpers import make_config

    base = [*MW, "env.horizon=6", "eval.tasks=[[0.0],[1.0]]", "eval.num_steps=1"]
    runs = []
    for name, overrides in [
        ("full", ["train.iterations=4"]),
        ("part", ["train.iterations=2"]),
        ("part", ["train.iterations=4", f"resume={tmp_path / 'part'}"]),
    ]:
        exp = Experiment(make_config([*base, *overrides]), tmp_path / name)
        try:
            exp.train()
        finally:
            exp.close()
        runs.append(exp.learner.parameters())
    assert torch.equal(runs[0], runs[2]) and not torch.equal(runs[0], runs[1])


def test_the_scored_episodes_are_those_meta_worlds_evaluation_counts():
    """``first_finished`` against a transcription of the loop in metaworld/evaluation.py's
    ``evaluation``: the vector env steps every env; an env whose episode ends (at success, or
    the horizon) restarts at once; at each step the ended episodes are appended to their class
    in env order, and only the first k per class count."""
    from maml_hydra.tasks.meta_world import first_finished

    rng = np.random.default_rng(0)
    for _ in range(300):
        n, episodes, k = (int(x) for x in rng.integers(1, [10, 4, 5]))
        classes = [f"c{int(c)}" for c in rng.integers(0, 3, size=n)]
        ends = [[int(e) for e in rng.integers(0, 6, size=episodes)] for _ in range(n)]
        counted: dict[str, list[tuple[int, int]]] = {c: [] for c in dict.fromkeys(classes)}
        episode, step_in_episode = [0] * n, [0] * n
        while any(e < episodes for e in episode):
            for i in range(n):  # one step of the vector env, envs in order
                if episode[i] >= episodes:
                    continue
                if step_in_episode[i] == ends[i][episode[i]]:
                    if len(counted[classes[i]]) < k:
                        counted[classes[i]].append((i, episode[i]))
                    episode[i], step_in_episode[i] = episode[i] + 1, 0
                else:
                    step_in_episode[i] += 1
        assert first_finished(classes, ends, k) == counted


def test_meta_worlds_own_evaluation_runs_at_the_end_of_a_run(tmp_path):
    from maml_hydra.experiment import Experiment
    from tests.helpers import make_config

    protocol = [
        "env.protocol_rounds=3",  # past the dealt 2 goals per env: a reshuffled share
        "env.protocol_envs=3",
        "env.protocol_goals=6",
        "env.protocol_evaluation_episodes=2",
    ]
    cfg = make_config([*MW, "env.horizon=8", "train.iterations=1", *protocol])
    exp = Experiment(cfg, tmp_path / "run")
    try:
        exp.train()
    finally:
        exp.close()
    got = json.loads((tmp_path / "run" / "eval_results.json").read_text())["metaworld_protocol"]
    assert got["protocol"] == "metaworld.evaluation.metalearning_evaluation"
    assert (got["rounds"], got["envs"], got["evaluation_episodes"]) == (3, 3, 2)
    assert list(got["success_rate_per_class"]) == ["reach-v3"]
    assert 0 <= got["success_rate"] <= 1 and np.isfinite(got["mean_return"])
    # the compact result file keeps it, with the held-out success rates, and the table shows it
    from tests.helpers import results

    out = tmp_path / "exported"
    assert results("export", "--runs", tmp_path / "run", "--out", out).returncode == 0
    record = json.loads((out / "maml_seed0.json").read_text())
    assert record["metaworld_protocol"] == got
    assert np.shape(record["success"]) == np.shape(record["returns"])
    table = results("table", "--metaworld", out)
    assert table.returncode == 0, table.stderr
    assert f"| {got['success_rate']:.2f} (1 seed) |" in table.stdout


def test_protocol_goals_are_dealt_as_meta_worlds_evaluation_envs_take_them():
    """Against Meta-World's setup written out: _make_ml_envs_inner gives env i of a class the
    class's first 40 test tasks i, i + share, ...; PseudoRandomTaskSelectWrapper takes them
    one a round, in an order shuffled at the start of each pass. ML10 (5 classes, 4 envs each,
    tasks interleaved by class): 10 rounds run every dealt goal once, each env its own share,
    in one order shared by every env; ML1 (20 envs): passes of 2 rounds."""
    from maml_hydra.tasks.meta_world import dealt_goals

    classes = ["a", "b", "c", "d", "e"]
    by_class = {c: [5 * j + k for j in range(50)] for k, c in enumerate(classes)}
    rng = torch.Generator().manual_seed(0)
    rounds = list(dealt_goals(by_class, 4, 40, 10, rng))
    envs = [(c, by_class[c][:40][i::4]) for c in classes for i in range(4)]
    for names, _ in rounds:
        assert names == [c for c, _ in envs]
    for e, (_, share) in enumerate(envs):
        assert sorted(tasks[e] for _, tasks in rounds) == sorted(share)
    orders = [[tasks[e] for _, tasks in rounds] for e in range(len(envs))]
    assert any(order != share for order, (_, share) in zip(orders, envs, strict=True))  # shuffled
    # ... by one permutation for every env: each env's k-th goal is its share's same index
    index = [
        [share.index(t) for t in order] for order, (_, share) in zip(orders, envs, strict=True)
    ]
    assert all(i == index[0] for i in index)
    ml1 = [tasks for _, tasks in dealt_goals({"reach-v3": list(range(50))}, 20, 40, 7, rng)]
    for r in range(0, 6, 2):  # a pass of two rounds: every env takes the same permutation
        assert sorted([ml1[r], ml1[r + 1]]) == [list(range(20)), list(range(20, 40))]
    assert ml1[6] in (list(range(20)), list(range(20, 40)))  # a fourth pass begins
    assert len({tuple(ml1[r]) for r in (0, 2, 4)}) == 2  # and passes are shuffled


@pytest.mark.slow  # builds ML10 twice
def test_rows_that_change_class_reuse_envs_and_start_as_fresh_ones():
    """ML10: rows swap classes between two task sets, each taking the env another row gave
    up; the second reset equals that of a fresh pool given the second set directly."""
    with MetaWorldPool("ML10", None, 0, "train", rows=3) as pool:
        names = pool.task_names
        a, b, c = 0, names.index(names[-1]), len(names) // 2
        assert len({names[a], names[b], names[c]}) == 3
        pool.set_tasks([a, b, c])
        pool.reset([0, 0, 0])
        pool.step(np.zeros((3, 4)))
        pool.set_tasks([b, c, a])
        swapped = pool.reset([0, 0, 0])
    with MetaWorldPool("ML10", None, 0, "train", rows=3) as fresh:
        fresh.set_tasks([b, c, a])
        np.testing.assert_array_equal(swapped, fresh.reset([0, 0, 0]))


def test_the_throughput_benchmark_prints_each_rounds_rates_and_the_median_ratio():
    """scripts/bench.py --metaworld, briefly: the raw rate and the pool's, per round."""
    from tests.helpers import python_script

    args = ["--rows", "2", "--workers", "2", "--rounds", "1", "--seconds", "0.3"]
    done = python_script("bench.py", "--metaworld", "reach-v3", *args)
    assert done.returncode == 0, done.stderr
    rounds = [line for line in done.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(rounds) == 1 and rounds[0].count("(") == 1
    assert "median ratio to one env alone over the rounds: 2 worker(s) " in done.stdout
