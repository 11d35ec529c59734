"""One Meta-World worker: a process of Meta-World's own interpreter (``.venv-metaworld``: metaworld
3.1.1 pins mujoco 3.3.0, this project runs mujoco 4), stepping the envs of a slice of the batch's
rows. It runs as a file (``python -P meta_world_worker.py``), never as part of the package, so it
imports only the standard library, numpy and metaworld, and never torch.

The training process (``maml_hydra.tasks.meta_world.MetaWorldPool``) sends it commands on stdin and
reads the answers on stdout, each a pickled ``(name, payload)`` frame with an 8-byte length:

- ``("init", {"benchmark", "task", "seed", "split", "rows"})``: builds the benchmark
  (``metaworld.ML1(task, seed=seed)`` or ``metaworld.ML10(seed=seed)``) and answers the split's
  task names, the observation and action sizes and the episode length;
- ``("set", {"tasks": [index per row], "unhide_goal": bool})``: row i gets the split's task
  ``index``; ``unhide_goal`` puts the goal into the observation, which the ML benchmarks hide;
- ``("reset", {"seeds": [seed per row]})``: a new episode in every row, ``obs [rows, 39]``
  (Meta-World's reset ignores the seed: ``set_task`` fixes the start state, so an episode's
  start depends on its task alone);
- ``("step", {"actions": [rows, 4], "live": [rows] bool})``: steps the live rows, answers
  ``obs``, ``reward``, ``success`` (``info["success"]``) and ``truncated`` per row (a row that is
  not live keeps its observation and gets reward 0);
- ``("close", None)``.

An error answers ``("error", one line)``; the worker then exits.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback

import numpy as np

FRAME = struct.Struct("<Q")


def read_frame(stream):
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    return pickle.loads(stream.read(size))


def write_frame(stream, message) -> None:
    data = pickle.dumps(message, protocol=4)
    stream.write(FRAME.pack(len(data)) + data)
    stream.flush()


class Rows:
    """The envs of this worker's rows, one per row. A row that changes class hands its env to
    the next row that needs one of that class, so a worker holds, per class, as many envs as
    the most rows that class has had at once, not one per (row, class)."""

    def __init__(self, benchmark: str, task: str | None, seed: int, split: str, rows: int):
        import metaworld

        if benchmark == "ML1":
            self.bench = metaworld.ML1(task, seed=seed)
        elif benchmark == "ML10":
            self.bench = metaworld.ML10(seed=seed)
        else:
            raise ValueError(f"unknown benchmark {benchmark!r}")
        train = split == "train"
        self.classes = self.bench.train_classes if train else self.bench.test_classes
        self.tasks = self.bench.train_tasks if train else self.bench.test_tasks
        self.rows = rows
        self.envs: list = [None] * rows
        self.names: list[str | None] = [None] * rows  # each row's env class
        self.free: dict[str, list] = {}  # envs a row gave up, by class, for the next row
        self.obs = np.zeros((rows, 39), dtype=np.float64)
        self.steps = np.zeros(rows, dtype=np.int64)

    def describe(self) -> dict:
        name = self.tasks[0].env_name
        env = self.classes[name]()
        return {
            "names": [t.env_name for t in self.tasks],
            "obs_dim": int(env.observation_space.shape[0]),
            "action_dim": int(env.action_space.shape[0]),
            "max_path_length": int(env.max_path_length),
        }

    def set(self, tasks: list[int], unhide_goal: bool = False) -> None:
        for row, index in enumerate(tasks):
            task = self.tasks[index]
            if self.names[row] != task.env_name:  # at most one env per row stays alive
                if self.envs[row] is not None:
                    self.free.setdefault(self.names[row], []).append(self.envs[row])
                spare = self.free.get(task.env_name)
                self.envs[row] = spare.pop() if spare else self.classes[task.env_name]()
                self.names[row] = task.env_name
            env = self.envs[row]
            if unhide_goal:  # the oracle sees the goal: the same task, made fully observable
                data = pickle.loads(task.data)
                data["partially_observable"] = False
                task = type(task)(env_name=task.env_name, data=pickle.dumps(data))
            env.set_task(task)
            self.envs[row] = env

    def reset(self, seeds: list[int]) -> np.ndarray:
        for row, seed in enumerate(seeds):
            obs, _ = self.envs[row].reset(seed=int(seed))
            self.obs[row] = obs
        self.steps[:] = 0
        return self.obs.copy()

    def step(self, actions: np.ndarray, live: np.ndarray):
        reward = np.zeros(self.rows)
        success = np.zeros(self.rows, dtype=bool)
        truncated = np.zeros(self.rows, dtype=bool)
        for row in np.flatnonzero(live):
            obs, r, _, trunc, info = self.envs[row].step(actions[row])
            self.obs[row] = obs
            reward[row] = r
            success[row] = bool(info.get("success", 0.0))
            truncated[row] = bool(trunc)
        return self.obs.copy(), reward, success, truncated


def batch_scheduling() -> None:
    """Mark this process CPU-bound (Linux's SCHED_BATCH: the same fair share, but a wake-up never
    preempts a running process). The training process writes each step's command to every worker
    in turn; without it, the first worker woken took the training process's core before the
    command reached the second, which started about 0.6 ms late on a 7 ms step of 2 x 20 reach
    rows (``scripts/bench.py --metaworld``)."""
    if hasattr(os, "SCHED_BATCH"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError:  # not allowed here: the default policy, only slower
            pass


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    batch_scheduling()
    rows = None
    while True:
        message = read_frame(stdin)
        if message is None or message[0] == "close":
            return
        name, payload = message
        try:
            if name == "init":
                rows = Rows(**payload)
                write_frame(stdout, ("ok", rows.describe()))
            elif name == "set":
                rows.set(payload["tasks"], payload.get("unhide_goal", False))
                write_frame(stdout, ("ok", None))
            elif name == "reset":
                write_frame(stdout, ("ok", rows.reset(payload["seeds"])))
            elif name == "step":
                write_frame(stdout, ("ok", rows.step(payload["actions"], payload["live"])))
            else:
                raise ValueError(f"unknown command {name!r}")
        except Exception as err:  # one line back to the training process, then exit
            last = traceback.extract_tb(err.__traceback__)[-1]
            where = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
            write_frame(stdout, ("error", f"{type(err).__name__}: {err} ({where})"))
            return


if __name__ == "__main__":
    main()
