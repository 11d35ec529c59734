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

from maml_hydra.tasks.meta_world import INTERPRETER, MetaWorldError, MetaWorldPool

pytestmark = pytest.mark.skipif(
    not INTERPRETER.is_file() and not os.environ.get("CI"),
    reason="Meta-World's interpreter is missing: make metaworld",
)

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
        os.kill(pool.procs[1].pid, signal.SIGKILL)
        with pytest.raises(MetaWorldError, match=r"worker 1 \(pid \d+\) exited with status -9"):
            pool.step(np.zeros((2, 4)))
    finally:
        pool.close()
