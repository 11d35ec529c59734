"""The Experiment: turns a Config into task family, policy, learner, meta-optimizer, evaluator
and logger, and runs (or resumes) meta-training."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
from hydra.utils import get_class

from maml_hydra import memory
from maml_hydra.checkpoint import (
    CheckpointError,
    check_resumable,
    claim_run_dir,
    load_resumed,
    remove_stale_writes,
    save_checkpoint,
    source_commit,
    write_atomic,
)
from maml_hydra.config import Config, config_to_yaml
from maml_hydra.config.choices import LinearBaseline
from maml_hydra.evaluator import Evaluator, objective_step, paired_gain, summarize_returns
from maml_hydra.learner import MAML, MetaBatch
from maml_hydra.logger import RunLogger, Stopwatch, closing_summary, peak_memory
from maml_hydra.meta_optimizers import pre_update_kl
from maml_hydra.policy import GaussianMLPPolicy
from maml_hydra.results.stats import steps_text
from maml_hydra.rundir import checkpoint_path, default_run_dir
from maml_hydra.runtime import check_config
from maml_hydra.sampling import SamplingPlan
from maml_hydra.seeding import generator
from maml_hydra.tasks.base import RunningNormalizer

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """Training or evaluation produced a value that is not finite; the message names the
    iteration and the quantity."""


# The experiment whose train() is running in this process, for save_running_experiment().
_RUNNING: Experiment | None = None


def save_running_experiment() -> Path | None:
    """Write the running experiment's state as of its last completed iteration, e.g. from a
    signal handler before a preempted job is requeued (hydra_plugins.maml_hydra_launcher).
    Returns the checkpoint path, or None when no experiment is training in this process."""
    if _RUNNING is None or _RUNNING._snapshot is None:
        return None
    save_checkpoint(_RUNNING.checkpoint_path, _RUNNING._snapshot)
    return _RUNNING.checkpoint_path


class Experiment:
    """Build everything from ``cfg``; ``train()`` runs meta-training into ``run_dir``.

    Works without Hydra: ``Experiment(OmegaConf.to_object(composed_cfg), run_dir).train()``.
    With ``cfg.resume`` set, continues from ``<resume>/checkpoints/last.pt`` in that directory.
    """

    def __init__(self, cfg: Config, run_dir: str | Path | None = None, check: bool = True) -> None:
        if check:  # false only where the config was checked already (the training command)
            check_config(cfg)
        self.cfg = cfg
        self._config_yaml = config_to_yaml(cfg)  # saved in checkpoints
        if run_dir is None:
            run_dir = cfg.resume or default_run_dir(
                cfg.env.name, cfg.baseline.name, cfg.algorithm.name, cfg.seed
            )
        self.run_dir = Path(run_dir)
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        if cfg.keep_freed_memory and not memory.keep_freed_memory():
            log.info("keep_freed_memory=true has no effect here: glibc's mallopt is not there")
        if not cfg.keep_freed_memory and memory.kept():  # e.g. a later job of an in-process -m
            log.warning("keep_freed_memory=false: this process already keeps freed memory")

        family = get_class(cfg.env._target_)
        t = cfg.train
        self.plan = SamplingPlan.of(t.sampling, t.episodes_per_task, cfg.env.horizon, True)
        self.env = family(cfg.env, t.meta_batch_size, self.plan.rows, self.device)
        self.policy = GaussianMLPPolicy(
            self.env.observation_dim,
            self.env.action_dim,
            list(cfg.policy.hidden_sizes),
            cfg.policy.activation,
            cfg.policy.init_log_std,
            cfg.policy.init,
            cfg.policy.learn_std,
        ).to(self.device)
        pooled = t.linear_baseline == LinearBaseline.batch
        self.learner = MAML(self.policy, cfg.inner, t.gamma, t.gae_lambda, pooled)
        self.meta_optimizer = get_class(cfg.algorithm._target_)(
            cfg.algorithm, self.learner, cfg.seed
        )
        self.evaluator = Evaluator(family, cfg.env, cfg.eval, self.learner, self.device, t.sampling)
        self.normalizer = None
        if cfg.env.normalize_obs:
            self.normalizer = RunningNormalizer(self.env.observation_dim, self.device)
            self.env.normalizer, self.env.update_normalizer = self.normalizer, True
            self.evaluator.env.normalizer = self.normalizer  # applied, never updated
        self.task_rng = generator("train-tasks", cfg.seed)
        self.action_rng = generator("train-actions", cfg.seed, self.device)
        self.iteration = 0
        self.env_steps = 0
        self.seen_tasks: list[torch.Tensor] = []  # kept for tests of the task streams
        self._success: list[torch.Tensor | None] = []  # the last meta-batch's, per batch
        self.commits: list[str | None] = []  # the code of earlier sessions of a resumed run
        self._snapshot: dict | None = None  # state after the last completed iteration
        if cfg.resume:
            state, checked = load_resumed(self.checkpoint_path)  # read once per run
            self.load_state_dict(state, check=not checked)

    # ------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path(self.run_dir)

    def state_dict(self) -> dict:
        return {
            "format": 1,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "learner": self.learner.state_dict(),
            "obs_normalizer": self.normalizer.state_dict() if self.normalizer else None,
            "meta_optimizer": self.meta_optimizer.state_dict(),
            "rng": {"tasks": self.task_rng.get_state(), "actions": self.action_rng.get_state()},
            "config": self._config_yaml,
            "commit": source_commit(),  # the code that wrote it (the last one, if resumed)
            # every commit the run has trained on, oldest first (one per resumed session)
            "commits": self._commits(),
        }

    def _commits(self) -> list[str | None]:
        current = source_commit()
        return self.commits if self.commits[-1:] == [current] else [*self.commits, current]

    def load_state_dict(self, state: dict, check: bool = True) -> None:
        if check:  # false only for the checkpoint the start-up check has just checked
            check_resumable(state, self.cfg, self.checkpoint_path)
        try:
            self.load_weights(state)
        except (RuntimeError, KeyError) as err:
            raise CheckpointError(
                f"{self.checkpoint_path}: policy does not fit: {str(err).splitlines()[0]}"
            ) from None
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        self.task_rng.set_state(state["rng"]["tasks"])
        self.action_rng.set_state(state["rng"]["actions"])
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.commits = list(state.get("commits") or [state.get("commit")])

    def load_weights(self, state: dict) -> None:
        """What acting needs from a checkpoint: the learner and the observation statistics."""
        self.learner.load_state_dict(state["learner"])
        if self.normalizer is not None:
            self.normalizer.load_state_dict(state["obs_normalizer"])

    def save(self) -> Path:
        save_checkpoint(self.checkpoint_path, self._snapshot or self.state_dict())
        return self.checkpoint_path

    # ------------------------------------------------------------------------ training
    def sample_meta_batch(self, watch: Stopwatch | None = None) -> MetaBatch:
        """The first half of a meta-iteration: the next training tasks from the task stream,
        then their support and query data with the current meta-parameters."""
        tasks = self.env.sample_tasks(self.cfg.train.meta_batch_size, self.task_rng)
        self.seen_tasks.append(tasks)
        self.env.set_tasks(tasks)
        theta = self.learner.parameters()
        self._success = []  # per batch, for a family with a notion of success

        def outcome(_) -> None:
            self._success.append(self.env.episode_success())

        return self.learner.sample(self.env, theta, self.action_rng, self.plan, watch, outcome)

    def fit_initial_statistics(self) -> None:
        """Observation statistics for a policy that is not trained (random init) with
        ``env.normalize_obs``: those of the initial policy's own rollouts on one meta-batch of
        training tasks, as a trained run has them after its first sampling, so that it is
        compared on the same footing and not with raw observations. Parameters are unchanged."""
        if self.normalizer is not None:
            self.sample_meta_batch()

    def meta_iteration(self) -> dict[str, float]:
        """Sample tasks, sample support and query data, take one meta-optimizer step."""
        start = time.perf_counter()
        watch = Stopwatch()
        batch = self.sample_meta_batch(watch)
        theta = self.learner.parameters()
        theta, opt_metrics = self.meta_optimizer.step(theta, batch)
        self.learner.load_parameters(theta)
        steps = sum(t.num_env_steps for t in batch.supports) + batch.query.num_env_steps
        self.env_steps += steps
        first = batch.supports[0] if batch.supports else batch.query
        metrics = {
            "train/return_before_adaptation": first.task_returns().mean().item(),
            "train/return_after_adaptation": batch.query.task_returns().mean().item(),
            "train/env_steps": float(self.env_steps),
            "train/policy_std": self.policy.log_std.exp().mean().item(),
        }
        if self._success and self._success[0] is not None:  # Meta-World: info["success"]
            metrics["train/success_before_adaptation"] = self._success[0].mean().item()
            metrics["train/success_after_adaptation"] = self._success[-1].mean().item()
        if batch.supports:
            metrics["train/kl_pre_update"] = self.pre_update_kl(theta, batch.supports[0])
        if self.learner.inner_lrs:
            lrs = torch.cat([lr.reshape(-1) for lr in self.learner.inner_lrs.values()])
            metrics["train/inner_lr_mean"] = lrs.mean().item()
        for key, value in opt_metrics.items():
            metrics[key if "/" in key else f"train/{key}"] = value
        for phase, seconds in watch.seconds.items():
            metrics[f"time/{phase}"] = seconds
        metrics["time/env_steps_per_second"] = steps / max(watch.seconds["sampling"], 1e-9)
        metrics["time/iteration"] = time.perf_counter() - start
        metrics.update(peak_memory(self.device))
        return metrics

    @torch.no_grad()
    def pre_update_kl(self, theta: torch.Tensor, support) -> float:
        """Mean KL(old || new) of the pre-update policy over the first support batch. TRPO
        bounds only the adapted policies' KL (``train/kl``) unless
        ``algorithm.max_kl_pre_update`` is set, so this is where a pre-update policy that runs
        away shows first."""
        return pre_update_kl(self.learner, theta, support).item()

    def evaluate(self) -> dict:
        """Returns after 0..eval.num_steps gradient steps on the held-out tasks; a return that
        is not finite stops the run before anything reports it. Logs a line before and after
        (a locomotion evaluation takes minutes)."""
        e = self.cfg.eval
        log.info(
            "evaluating on %d held-out tasks, %d episodes per step, %d step(s)",
            e.num_tasks,
            e.episodes_per_task,
            e.num_steps,
        )
        start = time.perf_counter()
        returns = self.evaluator.evaluate(self.learner.parameters())
        log.info("evaluated in %.1f s", time.perf_counter() - start)
        for k, row in enumerate(returns):
            if not bool(torch.isfinite(row).all()):
                raise DivergenceError(
                    f"{self.run_dir}: iteration {self.iteration}: the held-out return after "
                    f"{steps_text(k)} of adaptation is not finite; no evaluation was written"
                )
        return summarize_returns(returns, self.evaluator.success)

    def _stop_if_diverged(self, metrics: dict[str, float]) -> None:
        """After meta-iteration ``self.iteration + 1``: a non-finite parameter or metric (loss,
        gradient norm, KL, return) stops the run. The state after the last finite iteration is
        written as the checkpoint (it is never overwritten by a non-finite one)."""
        theta = self.learner.parameters()
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if not bool(torch.isfinite(theta).all()):
            bad.insert(0, "a meta-parameter")
        if bad:
            self.save()  # the snapshot: the state after the last finite iteration
            raise DivergenceError(
                f"{self.run_dir}: diverged at iteration {self.iteration + 1}: {bad[0]} is not "
                f"finite; {self.checkpoint_path} holds iteration {self.iteration}, the last "
                "finite one"
            )

    def train(self) -> dict:
        """Meta-train until ``train.iterations``; write TensorBoard, checkpoints and
        ``eval_results.json`` under ``run_dir``; return the final evaluation summary."""
        cfg = self.cfg.train
        total = cfg.iterations
        logger = RunLogger(
            self.run_dir, self.cfg, self.iteration, total, self.cfg.progress, cfg.log_every
        )
        claim_run_dir(self.run_dir)  # a second run into this directory stops here
        what = (self.cfg.env.name, self.cfg.baseline.name, self.cfg.algorithm.name)
        if total == 0:
            log.info(
                "%s, baseline %s, %s: no training, its initialisation evaluated into %s",
                *what,
                self.run_dir,
            )
        else:
            log.info(
                "meta-training %s, baseline %s, %s: iterations %d to %d into %s",
                *what,
                self.iteration + 1,
                total,
                self.run_dir,
            )
        remove_stale_writes(self.checkpoint_path)
        global _RUNNING
        _RUNNING, self._snapshot = self, self.state_dict()
        try:
            if total == 0:  # random init: the untrained policy is what gets evaluated
                self.fit_initial_statistics()
                self._snapshot = self.state_dict()
                self.save()
            while self.iteration < total:
                metrics = self.meta_iteration()
                self._stop_if_diverged(metrics)
                self.iteration += 1
                self._snapshot = self.state_dict()
                logger.scalars(self.iteration, metrics)
                logger.progress(
                    {
                        "before": metrics["train/return_before_adaptation"],
                        "after": metrics["train/return_after_adaptation"],
                        "s/it": metrics["time/iteration"],
                    }
                )
                logger.line(self.iteration, metrics)
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == total:
                    self.save()
                if (
                    cfg.eval_every
                    and self.iteration % cfg.eval_every == 0
                    and self.iteration < total
                ):
                    self._log_eval(logger, self.evaluate())
            summary = self.evaluate()
            self._log_eval(logger, summary)
            k = objective_step(self.cfg.inner.num_steps, self.cfg.eval.num_steps)
            summary = {
                "iteration": self.iteration,
                "env_steps": self.env_steps,
                "objective_step": k,
                "objective": summary["return_mean"][k],
                # the step size of each held-out gradient step as run (None: Meta-SGD's own)
                "eval_lrs": None
                if self.learner.learn_lr
                else [self.evaluator.step_size(j) for j in range(self.cfg.eval.num_steps)],
                **summary,
            }
            own = self._own_evaluation()
            if own is not None:
                name, result, scalars = own
                summary[name] = result
                logger.scalars(self.iteration, scalars)
            write_atomic(self.run_dir / "eval_results.json", json.dumps(summary, indent=1))
            logger.hparams(
                {f"eval/return_step_{k}": v for k, v in enumerate(summary["return_mean"])}
            )
        finally:
            _RUNNING, self._snapshot = None, None
            logger.close()
        per_task = summary["return_per_task"]
        gain = paired_gain(per_task) if len(per_task) > 1 else None  # the oracle takes no step
        log.info(closing_summary(self.run_dir, summary, summary["eval_lrs"], gain))
        return summary

    def close(self) -> None:
        """Release the envs' resources (Meta-World's worker processes); the run directory and
        everything written stay."""
        for env in (self.env, self.evaluator.env):
            if not getattr(env, "is_closed", False):
                env.close()

    def _own_evaluation(self) -> tuple[str, dict, dict[str, float]] | None:
        """The task family's own benchmark protocol for the final policy
        (``TaskFamily.own_evaluation``), for a variant that adapts; None otherwise."""
        if self.cfg.eval.num_steps == 0:
            return None
        theta = self.learner.parameters()
        return type(self.env).own_evaluation(
            self.learner,
            self.cfg.env,
            theta,
            self.evaluator.step_size(0),
            self.cfg.eval.seed,
            self.device,
            self.normalizer,
        )

    def _log_eval(self, logger: RunLogger, summary: dict) -> None:
        values = {f"eval/return_step_{k}": v for k, v in enumerate(summary["return_mean"])}
        for k, v in enumerate(summary.get("success_mean", [])):
            values[f"eval/success_step_{k}"] = v
        logger.scalars(self.iteration, values)
