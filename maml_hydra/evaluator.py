"""The Evaluator: adapt on held-out tasks and measure the return after 0..K gradient steps, for
one run (the report over many runs is ``maml_hydra.evaluate``)."""

from __future__ import annotations

import torch
from torch import Tensor

from maml_hydra.config import EnvConfig, EvalConfig, Sampling
from maml_hydra.learner import MAML
from maml_hydra.sampling import SamplingPlan
from maml_hydra.seeding import generator
from maml_hydra.tasks.base import TaskFamily


class Evaluator:
    """Held-out tasks come from the ``eval-tasks`` stream of ``eval.seed`` (or are given in
    ``eval.tasks``): fixed for a run and the same for every run, disjoint from the training
    stream. Each ``evaluate`` call restarts its own action-noise stream, so it neither depends
    on nor disturbs training randomness."""

    def __init__(
        self,
        family: type[TaskFamily],
        env_cfg: EnvConfig,
        cfg: EvalConfig,
        learner: MAML,
        device,
        sampling: Sampling | str = Sampling.episodes,
    ):
        self.cfg = cfg
        self.learner = learner
        self.device = torch.device(device)
        self.plan = SamplingPlan.of(sampling, cfg.episodes_per_task, env_cfg.horizon, False)
        self.env = family(env_cfg, cfg.num_tasks, self.plan.rows, self.device)
        self.env.hold_out()
        if cfg.tasks is not None:
            self.tasks = torch.tensor(cfg.tasks, dtype=torch.float32)
        else:
            self.tasks = self.env.sample_tasks(cfg.num_tasks, generator("eval-tasks", cfg.seed))
        self.env.set_tasks(self.tasks)
        self.success: Tensor | None = None  # the last evaluate's success rates, if any

    def step_size(self, k: int) -> float:
        """Step size of gradient step k (0-based): the paper uses 0.1, then 0.05. A learner
        with learned (Meta-SGD) step sizes uses those instead."""
        return self.cfg.lrs[min(k, len(self.cfg.lrs) - 1)]

    def evaluate(self, theta: Tensor) -> Tensor:
        """Mean episode return (sum of rewards) per task after k steps, shape [K+1, tasks].
        For a family with a notion of success, ``self.success`` then holds each task's share
        of successful episodes after k steps, [K+1, tasks] (else None)."""
        rng = generator("eval-actions", self.cfg.seed, self.device)
        batches = self.learner.adaptation(
            self.env, theta, rng, self.plan, self.cfg.num_steps, self.step_size
        )
        returns, success = [], []
        for traj in batches:
            returns.append(traj.task_returns())
            success.append(self.env.episode_success())
        self.success = None if success[0] is None else torch.stack([s.mean(1) for s in success])
        return torch.stack(returns)


def summarize_returns(returns: Tensor, success: Tensor | None = None) -> dict:
    """One run's returns [K+1, tasks]: mean and standard error over tasks for each number of
    gradient steps, and every task's return; with ``success`` [K+1, tasks] (each task's share
    of successful episodes), the same for it."""
    out = _over_tasks("return", returns)
    if success is not None:
        out |= _over_tasks("success", success)
    return out


def _over_tasks(name: str, values: Tensor) -> dict:
    """``<name>_mean``, ``<name>_stderr`` (over tasks) and ``<name>_per_task`` of [K+1, tasks]."""
    num_tasks = values.shape[1]
    stderr = values.std(dim=1) / num_tasks**0.5 if num_tasks > 1 else torch.zeros(values.shape[0])
    return {
        f"{name}_mean": values.mean(dim=1).tolist(),
        f"{name}_stderr": stderr.tolist(),
        f"{name}_per_task": values.tolist(),
    }


def objective_step(inner_steps: int, eval_steps: int) -> int:
    """Which held-out return a hyperparameter search maximises (``hydra/sweeper=optuna``): the
    one after the gradient steps the run meta-trains for (``inner.num_steps``; at least one, so
    that pretrained counts after fine-tuning, as in the paper's comparison), and at most the
    ``eval.num_steps`` the evaluation takes (0 for the oracle)."""
    return min(max(inner_steps, 1), eval_steps)


def paired_gain(returns) -> str:
    """The gain of the first step per task, returns[1] - returns[0], as
    "mean ± standard error (k of n tasks gain)"; ``returns`` is [K+1, tasks] (or nested lists)."""
    returns = torch.as_tensor(returns)
    gain = returns[1] - returns[0]
    stderr = gain.std() / gain.numel() ** 0.5 if gain.numel() > 1 else torch.zeros(())
    return (
        f"{gain.mean():+.2f} ± {stderr:.2f} ({int((gain > 0).sum())} of {gain.numel()} tasks gain)"
    )
