"""The task-family protocol: a torchrl ``EnvBase`` whose batch is [tasks, episodes].

A family samples task parameters, holds one task per row of its batch, and steps every episode
of every task at once. Subclasses implement four things:

- ``task_dim``, ``state_obs_dim``, ``action_dim``: class attributes (``state_obs_dim`` may be a
  property where it depends on the config, as the MuJoCo families' on ``env.dynamics``);
- ``sample_tasks(n, generator)``: ``[n, task_dim]`` task parameters;
- ``_initial_obs(generator)``: reset every episode (random initial states draw from
  ``generator``), return the raw observation ``[T, E, state_obs_dim]``;
- ``_advance(action)``: one step for the whole batch, ``(raw_obs, reward, done)``.

A family whose episodes can end before the horizon also implements ``_restart(rows,
generator)`` (a new episode in the given rows, the others untouched), which
``train.sampling=steps`` needs; one whose episodes never end early sets ``ends_early = False``.

The base class adds the oracle observation (task parameters appended), the torchrl specs and
``_reset``/``_step``. The learner's sampler calls the tensor-level ``reset_batch``/``step_batch``
directly, so no TensorDict is built per step on the hot path; torchrl users get the same
dynamics through ``reset``/``step``/``rollout``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from maml_hydra.config import ConfigError, require


class RunningNormalizer:
    """Running mean and variance of observations (parallel Welford update, float64);
    ``normalize`` maps x to (x - mean) / sqrt(var + eps), clipped to [-clip, clip]."""

    def __init__(
        self, dim: int, device: str | torch.device = "cpu", clip: float = 10.0, eps: float = 1e-8
    ):
        self.clip, self.eps = clip, eps
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.var = torch.ones(dim, dtype=torch.float64, device=device)

    def update(self, x: Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).double()
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.mean = self.mean + delta * n / total
        self.count = total

    def normalize(self, x: Tensor) -> Tensor:
        z = (x.double() - self.mean) / torch.sqrt(self.var + self.eps)
        return z.clamp(-self.clip, self.clip).to(x.dtype)

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "count": self.count.cpu().clone(),
            "mean": self.mean.cpu().clone(),
            "var": self.var.cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        device = self.mean.device
        self.count, self.mean, self.var = (state[k].to(device) for k in ("count", "mean", "var"))


class TaskFamily(EnvBase):
    task_dim: ClassVar[int]
    state_obs_dim: ClassVar[int]
    action_dim: ClassVar[int]
    ends_early: ClassVar[bool] = True  # whether _advance can return done before the horizon

    def __init__(
        self, cfg: Any, num_tasks: int, episodes_per_task: int, device: str | torch.device = "cpu"
    ):
        super().__init__(device=device, batch_size=torch.Size([num_tasks, episodes_per_task]))
        self.cfg = cfg
        self.horizon = int(cfg.horizon)
        self.oracle = bool(cfg.oracle)
        self.tasks = torch.zeros(num_tasks, self.task_dim, device=self.device)
        # Observation normalisation (env.normalize_obs): a normalizer shared between the training
        # env, which updates it at every step, and the evaluation env, which only applies it.
        self.normalizer: RunningNormalizer | None = None
        self.update_normalizer = False
        self._ended: Tensor | None = None  # [T, E] the episodes over at the last step
        shape = self.batch_size
        self.observation_spec = Composite(
            observation=Unbounded(shape=(*shape, self.observation_dim), device=self.device),
            shape=shape,
        )
        self.action_spec = Unbounded(shape=(*shape, self.action_dim), device=self.device)
        self.reward_spec = Unbounded(shape=(*shape, 1), device=self.device)
        self.done_spec = Composite(
            done=Categorical(2, shape=(*shape, 1), dtype=torch.bool, device=self.device),
            terminated=Categorical(2, shape=(*shape, 1), dtype=torch.bool, device=self.device),
            shape=shape,
        )

    # -------------------------------------------------------------------- the protocol
    @property
    def observation_dim(self) -> int:
        return self.state_obs_dim + (self.task_dim if self.oracle else 0)

    @property
    def num_tasks(self) -> int:
        return self.batch_size[0]

    @property
    def episodes_per_task(self) -> int:
        return self.batch_size[1]

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def episode_success(self) -> Tensor | None:
        """For a family with a notion of success (Meta-World's ``info["success"]``): ``[T, E]``,
        1.0 where the row's episode has succeeded at some step of the last rollout. None for
        the others."""
        return None

    def hold_out(self) -> None:
        """Make this env the held-out one (the Evaluator calls it before sampling tasks). A
        family whose held-out tasks are drawn like its training tasks does nothing; Meta-World
        switches to its benchmark's test tasks."""

    @classmethod
    def own_evaluation(
        cls, learner, env_cfg, theta: Tensor, lr: float, seed: int, device, normalizer
    ) -> tuple[str, dict, dict[str, float]] | None:
        """The family's own benchmark protocol for a final policy ``theta`` that adapts with
        step ``lr``, beside the held-out report: (name, result for eval_results.json, scalars
        for TensorBoard), or None where the family has none (Meta-World runs
        ``metalearning_evaluation``)."""
        return None

    def set_tasks(self, tasks: Tensor) -> None:
        """Give row i of the batch task ``tasks[i]``; takes effect at the next reset."""
        if tasks.shape != self.tasks.shape:
            raise ValueError(
                f"set_tasks: expected shape {tuple(self.tasks.shape)}, got {tuple(tasks.shape)}"
            )
        self.tasks = tasks.to(self.device, torch.float32)

    def _initial_obs(self, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _advance(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def _restart(self, rows: Tensor, generator: torch.Generator | None) -> Tensor:
        """Start a new episode of the same task in every row where ``rows`` [T, E] is true;
        return the raw observation of the whole batch."""
        raise NotImplementedError(
            f"{type(self).__name__} has no _restart, which train.sampling=steps needs when an "
            "episode ends before the horizon"
        )

    @classmethod
    def can_restart(cls) -> bool:
        """Whether ``train.sampling=steps`` works: episodes never end early, or restart."""
        return not cls.ends_early or cls._restart is not TaskFamily._restart

    # ------------------------------------------------------------- tensor-level fast path
    def _observe(self, raw_obs: Tensor, rows: Tensor | None = None) -> Tensor:
        """Oracle task parameters and normalisation; the running statistics are updated with
        every row's observation, or only those of ``rows`` [T, E] when given."""
        obs = raw_obs
        if self.oracle:
            task = self.tasks[:, None, :].expand(*self.batch_size, self.task_dim)
            obs = torch.cat([raw_obs, task], dim=-1)
        if self.normalizer is not None:
            if self.update_normalizer:
                self.normalizer.update(obs if rows is None else obs[rows])
            obs = self.normalizer.normalize(obs)
        return obs

    def reset_batch(self, generator: torch.Generator | None = None) -> Tensor:
        """Reset every episode; returns observations ``[T, E, observation_dim]``. Random
        initial states come from ``generator`` (the sampler's, so that they are checkpointed)."""
        self._ended = None
        return self._observe(self._initial_obs(generator))

    def step_batch(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Step every episode; returns ``(obs [T,E,D], reward [T,E], done [T,E])``.
        Episodes that are already done stay where they are and get reward 0; their unchanged
        observations do not enter the running observation statistics."""
        ended = self._ended
        raw_obs, reward, done = self._advance(action)
        self._ended = done
        live = None if ended is None or not bool(ended.any()) else ~ended
        return self._observe(raw_obs, live), reward, done

    def restart_batch(self, rows: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A new episode in every row where ``rows`` [T, E] is true, the others carry on;
        returns observations ``[T, E, observation_dim]`` (``train.sampling=steps``)."""
        ended = self._ended
        self._ended = None if ended is None else ended & ~rows
        return self._observe(self._restart(rows, generator), rows)

    # ------------------------------------------------------------------ torchrl EnvBase
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        obs = self.reset_batch()
        zeros = torch.zeros(*self.batch_size, 1, dtype=torch.bool, device=self.device)
        return TensorDict(
            {"observation": obs, "done": zeros, "terminated": zeros.clone()},
            batch_size=self.batch_size,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs, reward, done = self.step_batch(tensordict["action"])
        return TensorDict(
            {
                "observation": obs,
                "reward": reward[..., None],
                "done": done[..., None],
                "terminated": done[..., None].clone(),
            },
            batch_size=self.batch_size,
        )

    def _set_seed(self, seed: int | None) -> int | None:
        # Dynamics are deterministic given the tasks; tasks come from the caller's generator.
        return seed


def family_class(target: str) -> type[TaskFamily]:
    """The task-family class ``env._target_`` names, or a ConfigError naming the key."""
    from hydra.utils import get_class

    try:
        family = get_class(target)
    except Exception:
        raise ConfigError(
            f"env._target_={target!r} is not allowed: it does not import "
            "(is its module on PYTHONPATH?)"
        ) from None
    require(
        isinstance(family, type) and issubclass(family, TaskFamily),
        "env._target_",
        target,
        "must name a maml_hydra.tasks.TaskFamily subclass",
    )
    return family
