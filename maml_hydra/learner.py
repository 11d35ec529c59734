"""The MAML learner (Finn et al. 2017, Algorithm 3): per-task adaptation written for one task
with ``torch.func`` and ``vmap``ped over tasks, differentiable for the meta-gradient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from maml_hydra.config import Estimator, InnerConfig
from maml_hydra.estimators import ESTIMATORS
from maml_hydra.logger import Stopwatch
from maml_hydra.policy import GaussianMLPPolicy, gaussian_log_prob
from maml_hydra.sampling import SamplingPlan, Trajectories, rollout
from maml_hydra.tasks.base import TaskFamily

Params = dict[str, Tensor]


class MetaBatch(NamedTuple):
    """What one meta-iteration sampled: K support batches (support k collected with the policy
    after k inner steps) and the query batch collected with the fully adapted policy."""

    supports: tuple[Trajectories, ...]
    query: Trajectories

    def select(self, tasks: Tensor) -> MetaBatch:
        """The same batch restricted to the given task indices."""

        def take(traj: Trajectories) -> Trajectories:
            return type(traj)(*(field[tasks] for field in traj))

        return MetaBatch(tuple(take(s) for s in self.supports), take(self.query))


LR_PREFIX = "inner_lr:"  # Meta-SGD step sizes live beside the policy parameters they scale


class ParamLayout:
    """Maps named tensors to one flat vector and back (views, no copies)."""

    def __init__(self, named: Params) -> None:
        self.names = list(named)
        self.shapes = [p.shape for p in named.values()]
        self.sizes = [p.numel() for p in named.values()]
        self.numel = sum(self.sizes)

    def flatten(self, params: Params) -> Tensor:
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def unflatten(self, flat: Tensor) -> Params:
        chunks = flat.split(self.sizes)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}


class MAML:
    """Adaptation by VPG (REINFORCE) steps, Finn et al. 2017 eq. (1):
    theta'_i = theta - alpha * grad_theta L_{T_i}(f_theta), repeated ``num_steps`` times on fresh
    support data. Methods prefixed ``task_`` act on one task; the others are vmapped.

    With ``inner.learn_lr`` (Meta-SGD, Li et al. 2017) alpha is a tensor per policy parameter,
    initialised to ``inner.lr`` and part of the meta-parameters: theta' = theta - alpha * grad.
    """

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        inner: InnerConfig,
        gamma: float,
        gae_lambda: float,
        pooled_baseline: bool = False,
    ):
        self.policy = policy
        self.num_steps = inner.num_steps
        self.lr = inner.lr
        self.first_order = inner.first_order
        self.learn_lr = inner.learn_lr
        self.inner_objective = ESTIMATORS[Estimator(inner.estimator)]
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        # meta-training's batches on one baseline over all tasks (train.linear_baseline=batch)
        self.pooled_baseline = pooled_baseline
        self.inner_lrs: Params = {}
        if self.learn_lr:
            self.inner_lrs = {
                n: torch.full_like(p.detach(), inner.lr) for n, p in policy.named_parameters()
            }
        self.layout = ParamLayout(self.named_meta_parameters())

    # ----------------------------------------------------------------- parameters
    def named_meta_parameters(self) -> Params:
        """Policy parameters, then the Meta-SGD step sizes (if learned)."""
        named = dict(self.policy.named_parameters())
        named.update({LR_PREFIX + n: lr for n, lr in self.inner_lrs.items()})
        return named

    def parameters(self) -> Tensor:
        """The meta-parameters as one detached flat vector."""
        return self.layout.flatten(self.named_meta_parameters()).detach().clone()

    def load_parameters(self, theta: Tensor) -> None:
        with torch.no_grad():
            for name, value in self.layout.unflatten(theta).items():
                if name.startswith(LR_PREFIX):
                    self.inner_lrs[name.removeprefix(LR_PREFIX)].copy_(value)
                else:
                    self.policy.get_parameter(name).copy_(value)

    def state_dict(self) -> dict[str, Params]:
        return {
            "policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
            "inner_lrs": {k: v.detach().cpu().clone() for k, v in self.inner_lrs.items()},
        }

    def load_state_dict(self, state: dict[str, Params]) -> None:
        device = next(self.policy.parameters()).device
        self.policy.load_state_dict({k: v.to(device) for k, v in state["policy"].items()})
        if set(state["inner_lrs"]) != set(self.inner_lrs):
            raise RuntimeError("learned inner step sizes do not match inner.learn_lr")
        for name, value in state["inner_lrs"].items():
            self.inner_lrs[name].copy_(value)

    # ------------------------------------------------------------------- one task
    def task_dist(self, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
        policy_params = {k: v for k, v in params.items() if not k.startswith(LR_PREFIX)}
        return functional_call(self.policy, policy_params, (obs,))

    def task_inner_loss(self, params: Params, traj: Trajectories) -> Tensor:
        """The inner objective (``inner.estimator``, maml_hydra/estimators.py) on one task's
        support batch; by default the VPG surrogate -E[log pi(a|s) A] over its valid steps."""
        mean, log_std = self.task_dist(params, traj.obs)
        log_prob = gaussian_log_prob(mean, log_std, traj.actions)
        return self.inner_objective(log_prob, traj)

    def task_adapt_step(self, params: Params, traj: Trajectories, lr: float) -> Params:
        """One inner step; ``lr`` is ignored when the step sizes are learned (Meta-SGD)."""
        policy_params = {k: v for k, v in params.items() if not k.startswith(LR_PREFIX)}
        grads = grad(self.task_inner_loss)(policy_params, traj)
        if self.first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        adapted = dict(params)  # learned step sizes carry over unchanged
        for k, g in grads.items():
            adapted[k] = params[k] - (params[LR_PREFIX + k] if self.learn_lr else lr) * g
        return adapted

    def task_adapt(self, params: Params, supports: tuple[Trajectories, ...]) -> Params:
        for traj in supports:
            params = self.task_adapt_step(params, traj, self.lr)
        return params

    def task_query_dist(self, params: Params, supports: tuple[Trajectories, ...], obs: Tensor):
        return self.task_dist(self.task_adapt(params, supports), obs)

    def task_trace(self, params: Params, supports: tuple[Trajectories, ...], obs: Tensor):
        """The policy before each inner step k on support batch k, (mean, log_std) per k, and
        the adapted policy on the query observations ``obs``."""
        before = []
        for traj in supports:
            before.append(self.task_dist(params, traj.obs))
            params = self.task_adapt_step(params, traj, self.lr)
        return tuple(before), self.task_dist(params, obs)

    # ---------------------------------------------------------- batched over tasks
    def query_dist(self, theta: Tensor, batch: MetaBatch) -> tuple[Tensor, Tensor]:
        """The adapted policies' (mean [T,E,H,A], log_std [T,A]) on the query observations,
        as a differentiable function of the flat meta-parameters."""
        params = self.layout.unflatten(theta)
        return vmap(self.task_query_dist, in_dims=(None, 0, 0))(
            params, batch.supports, batch.query.obs
        )

    def trace(self, theta: Tensor, batch: MetaBatch):
        """``task_trace`` for every task: ((mean, log_std) on each support batch before its
        step, ...), (mean, log_std) on the query batch; differentiable in theta."""
        params = self.layout.unflatten(theta)
        return vmap(self.task_trace, in_dims=(None, 0, 0))(params, batch.supports, batch.query.obs)

    def adapt_step(self, params: Params, traj: Trajectories, lr: float, batched: bool) -> Params:
        """One inner step for every task; ``batched`` says whether params are already per task."""
        in_dims = (0 if batched else None, 0, None)
        return vmap(self.task_adapt_step, in_dims=in_dims)(params, traj, lr)

    def sampling_dist(self, params: Params, batched: bool):
        """obs [T,E,D] -> (mean [T,E,A], log_std [T,A]) for shared or per-task params."""
        if batched:  # policy.at reads the policy's parameters by name, not learned step sizes
            return lambda obs: self.policy.at(params, obs, per_task=True)

        def dist(obs: Tensor) -> tuple[Tensor, Tensor]:
            mean, log_std = self.policy.at(params, obs, per_task=False)
            return mean, log_std.expand(obs.shape[0], -1)

        return dist

    def rollout(
        self,
        env: TaskFamily,
        params: Params,
        batched: bool,
        generator: torch.Generator,
        plan: SamplingPlan,
        mode: bool = False,
        pooled_baseline: bool = False,
    ) -> Trajectories:
        """One batch of every task of ``env`` with shared (or, ``batched``, per-task) params;
        ``plan`` is the sampling plan that ``env`` was built for; ``mode``: act with the
        policies' mean; ``pooled_baseline``: one baseline over all tasks (``sampling.rollout``)."""
        dist = self.sampling_dist(params, batched)
        return rollout(
            env,
            dist,
            generator,
            self.gamma,
            self.gae_lambda,
            plan.budget,
            plan.pooled,
            mode,
            pooled_baseline,
        )

    def inner_step(self, k: int) -> float:
        """The size of meta-training's inner step k: ``inner.lr`` for every step (with Meta-SGD,
        the learned step sizes are used instead)."""
        return self.lr

    def adaptation(
        self,
        env: TaskFamily,
        theta: Tensor,
        generator: torch.Generator,
        plan: SamplingPlan,
        steps: int,
        step_size: Callable[[int], float],
        watch: Stopwatch | None = None,
        adapted_mode: bool = False,
        pooled_baseline: bool = False,
    ) -> Iterator[Trajectories]:
        """Sample every task of ``env`` with theta, take an inner step on that batch (step k of
        size ``step_size(k)``), sample with the adapted policies, and so on: the ``steps + 1``
        batches, yielded as they are sampled. Meta-training's support and query batches
        (``sample``) and the evaluation's held-out batches (``Evaluator.evaluate``) alike."""
        watch = watch or Stopwatch()
        params = {k: v.detach() for k, v in self.layout.unflatten(theta).items()}
        batched = False
        for k in range(steps + 1):
            with watch("sampling"):
                mode = adapted_mode and k == steps
                traj = self.rollout(env, params, batched, generator, plan, mode, pooled_baseline)
            yield traj
            if k < steps:
                with watch("adaptation"), torch.no_grad():
                    params = self.adapt_step(params, traj, step_size(k), batched)
                batched = True

    def sample(
        self,
        env: TaskFamily,
        theta: Tensor,
        generator: torch.Generator,
        plan: SamplingPlan,
        watch: Stopwatch | None = None,
        on_batch: Callable[[Trajectories], None] | None = None,
    ) -> MetaBatch:
        """Support batches with theta, theta_1, ..., then the query batch with theta_K;
        ``on_batch`` sees each batch as soon as it is sampled (the env still holds its episodes'
        outcome, e.g. ``episode_success``)."""
        steps = self.adaptation(
            env,
            theta,
            generator,
            plan,
            self.num_steps,
            self.inner_step,
            watch,
            pooled_baseline=self.pooled_baseline,
        )
        batches = []
        for traj in steps:
            batches.append(traj)
            if on_batch is not None:
                on_batch(traj)
        return MetaBatch(tuple(batches[:-1]), batches[-1])
