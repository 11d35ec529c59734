"""Meta-World, stepped in worker processes of its own interpreter.

metaworld 3.1.1, the only release, pins ``mujoco==3.3.0`` (MuJoCo 3.5 changed collisions and
broke its tasks' scripted policies), while this project runs mujoco 4 (MuJoCo Warp needs at least
3.5). So the two cannot share one environment. ``make metaworld`` creates ``.venv-metaworld``, a
small interpreter with metaworld, mujoco 3.3.0 and numpy and without torch. ``MetaWorldPool``
starts ``workers`` processes of it (``meta_world_worker.py``), gives each a contiguous slice of
the batch's rows (one env per row), and steps all of them at once: each command goes to every
worker before any answer is read. Rows arrive and leave as numpy arrays. ``MetaWorld``, the task
family of ``env=metaworld``, steps its batch through a pool.

Errors are one line each: the interpreter missing (naming the command that installs it), an
unknown task or benchmark, and a worker that dies (its exit status and the last line it wrote
to stderr).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from maml_hydra.tasks import meta_world_worker as wire
from maml_hydra.tasks.base import TaskFamily

ROOT = Path(__file__).resolve().parents[2]
INTERPRETER = ROOT / ".venv-metaworld" / "bin" / "python"
INSTALL = "make metaworld"
WORKER = Path(wire.__file__)


class MetaWorldError(RuntimeError):
    """Meta-World could not start or a worker failed; the message is one line."""


def interpreter(path: str | os.PathLike | None = None) -> Path:
    """Meta-World's interpreter, checked to exist."""
    python = Path(path) if path else INTERPRETER
    if not python.is_file():
        raise MetaWorldError(
            f"Meta-World's interpreter {python} is missing: run `{INSTALL}` (a venv with "
            "metaworld 3.1.1 and mujoco 3.3.0, beside this project's mujoco 4)"
        )
    return python


def known_tasks(python: str | os.PathLike | None = None) -> list[str]:
    """Meta-World's v3 environment names, asked of its interpreter (a config check)."""
    code = "import metaworld; print(' '.join(sorted(metaworld.ALL_V3_ENVIRONMENTS)))"
    done = subprocess.run(
        [str(interpreter(python)), "-c", code], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise MetaWorldError(f"Meta-World's interpreter failed to import metaworld: {lines[-1]}")
    return done.stdout.split()


class MetaWorldPool:
    """``rows`` Meta-World envs of one benchmark split, over ``workers`` processes."""

    def __init__(
        self,
        benchmark: str,
        task: str | None,
        seed: int,
        split: str,
        rows: int,
        workers: int = 1,
        python: str | os.PathLike | None = None,
    ):
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, not {split!r}")
        python = interpreter(python)
        workers = max(1, min(workers, rows))
        bounds = np.linspace(0, rows, workers + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.rows = rows
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []
        self.closed_by = ""  # why the pool closed itself: a worker's error
        try:
            for part in self.slices:
                log = tempfile.TemporaryFile()
                proc = subprocess.Popen(
                    [str(python), "-P", str(WORKER)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
                )
                self.procs.append(proc)
                self.logs.append(log)
                spec = {"benchmark": benchmark, "task": task, "seed": seed, "split": split}
                wire.write_frame(proc.stdin, ("init", {**spec, "rows": part.stop - part.start}))
            info = self._gather()[0]
        except BaseException:
            self.close()
            raise
        self.task_names: list[str] = info["names"]
        self.obs_dim: int = info["obs_dim"]
        self.action_dim: int = info["action_dim"]
        self.max_path_length: int = info["max_path_length"]

    @property
    def num_tasks(self) -> int:
        """How many tasks the split holds (``set_tasks`` takes indices into it)."""
        return len(self.task_names)

    # ---------------------------------------------------------------------- commands
    def _send(self, name: str, payloads: list) -> None:
        if not self.procs:
            raise MetaWorldError(f"the Meta-World pool is closed{self.closed_by}")
        for k, (proc, payload) in enumerate(zip(self.procs, payloads, strict=True)):
            try:
                wire.write_frame(proc.stdin, (name, payload))
            except (BrokenPipeError, OSError):
                died = self._died(k)
                self.close()
                self.closed_by = f" ({died})"
                raise MetaWorldError(died) from None

    def _gather(self) -> list:
        """Every worker's answer to the last command. A worker that fails answers its error and
        exits: the others' answers are read, the pool is closed, and the error raised; a
        later command is refused, never answered with what was left in a pipe."""
        answers, errors = [], []
        for k, proc in enumerate(self.procs):
            try:
                message = wire.read_frame(proc.stdout)
            except Exception:
                message = None
            if message is None:
                died = self._died(k)
                self.close()
                self.closed_by = f" ({died})"
                raise MetaWorldError(died)
            status, payload = message
            if status == "error":
                errors.append(f"Meta-World worker {k}: {payload}")
            answers.append(payload)
        if errors:
            self.close()
            self.closed_by = f" ({errors[0]})"
            raise MetaWorldError(errors[0])
        return answers

    def _died(self, k: int) -> str:
        proc, log = self.procs[k], self.logs[k]
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        log.seek(0)
        lines = [line for line in log.read().decode(errors="replace").splitlines() if line]
        last = f": {lines[-1].strip()}" if lines else ""
        return f"Meta-World worker {k} (pid {proc.pid}) exited with status {code}{last}"

    def set_tasks(self, tasks, unhide_goal: bool = False) -> None:
        """Row i gets the split's task ``tasks[i]`` (an index), from its next reset;
        ``unhide_goal``: the goal in the observation (for the oracle)."""
        tasks = [int(t) for t in tasks]
        if len(tasks) != self.rows:
            raise ValueError(f"set_tasks: {len(tasks)} tasks for {self.rows} rows")
        bad = [t for t in tasks if not 0 <= t < self.num_tasks]
        if bad:
            raise ValueError(f"set_tasks: task {bad[0]} is not in 0..{self.num_tasks - 1}")
        self._send("set", [{"tasks": tasks[s], "unhide_goal": unhide_goal} for s in self.slices])
        self._gather()

    def reset(self, seeds) -> np.ndarray:
        """A new episode in every row; ``obs [rows, obs_dim]``. The seeds reach each env's
        ``reset``, which Meta-World's envs ignore (``set_task`` fixes the start state)."""
        seeds = [int(s) for s in seeds]
        self._send("reset", [{"seeds": seeds[s]} for s in self.slices])
        return np.concatenate(self._gather())

    def step(self, actions: np.ndarray, live: np.ndarray | None = None):
        """Step the live rows (all by default): ``obs [rows, obs_dim]``, ``reward [rows]``,
        ``success [rows]`` (``info["success"]``), ``truncated [rows]``."""
        actions = np.asarray(actions, dtype=np.float64)
        live = np.ones(self.rows, dtype=bool) if live is None else np.asarray(live, dtype=bool)
        self._send("step", [{"actions": actions[s], "live": live[s]} for s in self.slices])
        parts = self._gather()
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    wire.write_frame(proc.stdin, ("close", None))
                    proc.stdin.close()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()
        self.procs, self.logs = [], []

    def __enter__(self) -> MetaWorldPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "procs", None):
            self.close()


# -------------------------------------------------------------------------- the task family


class MetaWorld(TaskFamily):
    """A Meta-World benchmark (``env=metaworld``; MetaWorldConfig) as a task family: a task is an
    index into the benchmark's training tasks, or its test tasks once ``hold_out`` has been
    called (the Evaluator's env). Each row of the batch is one Meta-World env in a worker
    process. An episode's start state depends on its task alone (``set_task`` fixes it and
    Meta-World's reset takes no seed), so the randomness of a run is its task draws and its
    action noise, both from the run's checkpointed generators. Episodes last ``env.horizon``
    steps (Meta-World truncates at 500 and never terminates a task early). The oracle observes
    the goal in Meta-World's own goal coordinates (the last 3 of 39), which the ML benchmarks
    zero."""

    task_dim = 1
    state_obs_dim = 39
    action_dim = 4
    ends_early = False

    def __init__(self, cfg, num_tasks: int, episodes_per_task: int, device="cpu"):
        super().__init__(cfg, num_tasks, episodes_per_task, device)
        self.unhide_goal, self.oracle = self.oracle, False  # no task index appended
        self.split = "train"
        self.pool: MetaWorldPool | None = None
        self._pool_tasks: list[int] | None = None
        self.success = torch.zeros(*self.batch_size, dtype=torch.bool, device=self.device)
        # the step (from 0) at which each row's episode first succeeded, horizon where it did not
        self.first_success = torch.full(self.batch_size, self.horizon, device=self.device)
        self._t = 0

    @property
    def observation_dim(self) -> int:
        return self.state_obs_dim

    def _open(self) -> MetaWorldPool:
        if self.pool is None:
            cfg = self.cfg
            self.pool = MetaWorldPool(
                str(getattr(cfg.benchmark, "value", cfg.benchmark)),
                cfg.task,
                cfg.benchmark_seed,
                self.split,
                self.num_tasks * self.episodes_per_task,
                cfg.workers,
                cfg.python,
            )
        return self.pool

    def episode_success(self) -> Tensor:
        return self.success.float()

    def hold_out(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self.split = "test"

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        """Distinct tasks of the split where it holds enough, else drawn with replacement."""
        count = self._open().num_tasks
        if num_tasks <= count:
            index = torch.randperm(count, generator=generator)[:num_tasks]
        else:
            index = torch.randint(count, (num_tasks,), generator=generator)
        return index[:, None].float()

    def _initial_obs(self, generator: torch.Generator | None) -> Tensor:
        pool = self._open()
        rows = self.tasks[:, 0].long().repeat_interleave(self.episodes_per_task).tolist()
        if rows != self._pool_tasks:
            pool.set_tasks(rows, self.unhide_goal)
            self._pool_tasks = rows
        self.success.zero_()
        self.first_success.fill_(self.horizon)
        self._t = 0
        return self._to_batch(pool.reset([0] * len(rows)))  # Meta-World ignores the seed

    def _advance(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        flat = action.detach().reshape(-1, self.action_dim).cpu().double().numpy()
        obs, reward, success, _ = self._open().step(flat)
        now = torch.as_tensor(success, device=self.device).reshape(*self.batch_size)
        self.first_success = torch.where(now & ~self.success, self._t, self.first_success)
        self.success |= now
        self._t += 1
        done = torch.zeros(*self.batch_size, dtype=torch.bool, device=self.device)
        return self._to_batch(obs), self._to_batch(reward), done

    def _to_batch(self, values) -> Tensor:
        tensor = torch.as_tensor(values, dtype=torch.float32, device=self.device)
        return tensor.reshape(*self.batch_size, *tensor.shape[1:])

    @classmethod
    def own_evaluation(cls, learner, env_cfg, theta, lr, seed, device, normalizer):
        """Meta-World's ``metalearning_evaluation`` (below), unless ``env.protocol_rounds=0``."""
        if not env_cfg.protocol_round_count():
            return None
        result = metalearning_evaluation(learner, env_cfg, theta, lr, seed, device, normalizer)
        return "metaworld_protocol", result, {"eval/metaworld_success": result["success_rate"]}

    def close(self, *args, **kwargs):
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        return super().close(*args, **kwargs)


# ------------------------------------------------------ Meta-World's own evaluation protocol
def first_finished(
    classes: list[str], end_steps: list[list[int]], k: int
) -> dict[str, list[tuple[int, int]]]:
    """Per class, the episodes Meta-World's ``evaluation`` counts, as ``(env, episode)``: env i
    runs its episodes back to back (``end_steps[i][j]``: the step within episode j at which it
    ends, at success or the horizon), and the first ``k`` episodes of the class to finish count,
    ties in env order, as its loop over the vector env's ``dones`` appends them."""
    finished = []
    for i, ends in enumerate(end_steps):
        clock = -1
        for j, end in enumerate(ends):
            clock += end + 1  # the vector env's step at which episode j of env i ends
            finished.append((clock, i, j))
    chosen: dict[str, list[tuple[int, int]]] = {c: [] for c in dict.fromkeys(classes)}
    for _, i, j in sorted(finished):
        if len(chosen[classes[i]]) < k:
            chosen[classes[i]].append((i, j))
    return chosen


def dealt_goals(
    by_class: dict[str, list[int]], per_class: int, goals: int, rounds: int, rng: torch.Generator
) -> Iterator[tuple[list[str], list[int]]]:
    """Each round's (class, test task) per env, as Meta-World's evaluation envs take them:
    ``per_class`` envs per class (classes in the order given), env i of a class holding its
    first ``goals`` tasks i, i + per_class, ... (``_make_ml_envs_inner``) and taking the next of
    them every round, in an order shuffled (by ``rng``) at the start of each pass through them
    (``PseudoRandomTaskSelectWrapper``: its index starts at -1 and it shuffles whenever the
    index comes to 0). Every env takes the same permutation: ``_init_each_env`` seeds every
    env alike, and the shuffle draws from the env's own generator, which nothing else uses."""
    shares = [
        (name, indices[:goals][i::per_class])
        for name, indices in by_class.items()
        for i in range(per_class)
    ]
    for r in range(rounds):
        position = r % len(shares[0][1])
        if not position:  # the wrapper shuffles as its index wraps to 0, on its first call too
            order = torch.randperm(len(shares[0][1]), generator=rng).tolist()
            shares = [(name, [share[i] for i in order]) for name, share in shares]
        yield [name for name, _ in shares], [share[position] for _, share in shares]


def metalearning_evaluation(
    learner, env_cfg, theta: Tensor, lr: float, seed: int, device="cpu", normalizer=None
) -> dict:
    """Meta-World's ``metalearning_evaluation`` (metaworld/evaluation.py) for a MAML learner,
    on envs set up as Meta-World's evaluation envs (``make_ml_envs`` with its test split):
    ``env.protocol_envs`` envs split evenly over the test classes; a class's first
    ``env.protocol_goals`` test tasks dealt out over its envs (env i takes goals i, i + share,
    ...); every round each env takes its next goal, in an order shuffled at the start of each
    pass through its share (Meta-World's pseudo-random task selection); one adaptation step of
    size ``lr`` on ``env.protocol_adaptation_episodes`` sampled episodes per env; then, acting
    with the adapted policy's mean and ending an episode at success, the first
    ``env.protocol_evaluation_episodes`` finished episodes of each class are scored.
    ``env.protocol_round_count()`` rounds. Returns the success rate (mean over classes, then
    rounds), the mean return of the scored episodes (up to their end) and each class's success
    rate. An env's scored episodes are those of the adapted policies' batch, taken as run back
    to back, as Meta-World's envs run them. ``normalizer``: the run's observation statistics,
    applied and never updated."""
    from maml_hydra.sampling import SamplingPlan
    from maml_hydra.seeding import generator

    envs, episodes = env_cfg.protocol_envs, env_cfg.protocol_adaptation_episodes
    k, rounds = env_cfg.protocol_evaluation_episodes, env_cfg.protocol_round_count()
    env = MetaWorld(env_cfg, envs, episodes, device)
    env.normalizer = normalizer
    env.hold_out()
    task_rng = generator("metaworld-eval-tasks", seed)
    try:
        names = env._open().task_names
        by_class: dict[str, list[int]] = {}
        for index, name in enumerate(names):
            by_class.setdefault(name, []).append(index)
        per_class = envs // len(by_class)
        deals = dealt_goals(by_class, per_class, env_cfg.protocol_goals, rounds, task_rng)
        plan = SamplingPlan.of("episodes", episodes, env.horizon, False)
        action_rng = generator("metaworld-eval-actions", seed, device)
        rates: dict[str, list[float]] = {c: [] for c in by_class}
        round_success, round_return = [], []
        for classes, tasks in deals:
            env.set_tasks(torch.tensor(tasks, dtype=torch.float32)[:, None])
            # scored with the adapted policies' mean: Meta-World's evaluation steps its agents'
            # eval_action, which its reference MAML agent (metaworld-algorithms) takes as the
            # policy's mode
            batches = learner.adaptation(
                env, theta, action_rng, plan, 1, lambda _: lr, adapted_mode=True
            )
            next(batches)  # the adaptation episodes
            adapted = next(batches)  # the adapted policies, acting with their mean
            end = env.first_success.clamp(max=env.horizon - 1)  # [envs, episodes]
            success = env.success
            steps = torch.arange(adapted.rewards.shape[-1], device=adapted.rewards.device)
            returns = (adapted.rewards * (steps <= end[..., None])).sum(-1)
            chosen = first_finished(classes, end.tolist(), k)
            successes, scored = [], []
            for name, pairs in chosen.items():
                rate = sum(float(success[i, j]) for i, j in pairs) / k
                rates[name].append(rate)
                successes.append(rate)
                scored.append([float(returns[i, j]) for i, j in pairs])
            round_success.append(sum(successes) / len(successes))
            round_return.append(float(torch.tensor(scored).mean()))
    finally:
        env.close()
    return {
        "protocol": "metaworld.evaluation.metalearning_evaluation",
        "rounds": rounds,
        "goals_per_class": env_cfg.protocol_goals,
        "envs": envs,
        "adaptation_episodes": episodes,
        "evaluation_episodes": k,
        "step_size": lr,
        "success_rate": sum(round_success) / len(round_success),
        "mean_return": sum(round_return) / len(round_return),
        "success_rate_per_class": {c: sum(v) / len(v) for c, v in rates.items()},
    }
