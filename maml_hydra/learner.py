"""The MAML learner (Finn et al. 2017, Algorithm 3): per-task adaptation written for one task
with ``torch.func`` and ``vmap``ped over tasks, differentiable for the meta-gradient."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from maml_hydra.config import InnerConfig
from maml_hydra.logger import Stopwatch
from maml_hydra.policy import GaussianMLPPolicy, gaussian_log_prob
from maml_hydra.sampling import Trajectories, rollout
from maml_hydra.tasks.base import TaskFamily

Params = dict[str, Tensor]


class MetaBatch(NamedTuple):
    """What one meta-iteration sampled: K support batches (support k collected with the policy
    after k inner steps) and the query batch collected with the fully adapted policy."""

    supports: tuple[Trajectories, ...]
    query: Trajectories


class ParamLayout:
    """Maps a module's named parameters to one flat vector and back (views, no copies)."""

    def __init__(self, module: nn.Module) -> None:
        named = dict(module.named_parameters())
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
    support data. Methods prefixed ``task_`` act on one task; the others are vmapped."""

    def __init__(
        self, policy: GaussianMLPPolicy, inner: InnerConfig, gamma: float, gae_lambda: float
    ):
        self.policy = policy
        self.layout = ParamLayout(policy)
        self.num_steps = inner.num_steps
        self.lr = inner.lr
        self.first_order = inner.first_order
        self.gamma = gamma
        self.gae_lambda = gae_lambda

    # ----------------------------------------------------------------- parameters
    def parameters(self) -> Tensor:
        """The meta-parameters theta as one detached flat vector."""
        return self.layout.flatten(dict(self.policy.named_parameters())).detach().clone()

    def load_parameters(self, theta: Tensor) -> None:
        with torch.no_grad():
            for name, value in self.layout.unflatten(theta).items():
                self.policy.get_parameter(name).copy_(value)

    # ------------------------------------------------------------------- one task
    def task_dist(self, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
        return functional_call(self.policy, params, (obs,))

    def task_inner_loss(self, params: Params, traj: Trajectories) -> Tensor:
        """VPG surrogate -E[log pi(a|s) A] over the valid steps of one task's support batch."""
        mean, log_std = self.task_dist(params, traj.obs)
        log_prob = gaussian_log_prob(mean, log_std, traj.actions)
        return -(log_prob * traj.advantages * traj.mask).sum() / traj.mask.sum()

    def task_adapt_step(self, params: Params, traj: Trajectories, lr: float) -> Params:
        grads = grad(self.task_inner_loss)(params, traj)
        if self.first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        return {k: params[k] - lr * grads[k] for k in params}

    def task_adapt(self, params: Params, supports: tuple[Trajectories, ...]) -> Params:
        for traj in supports:
            params = self.task_adapt_step(params, traj, self.lr)
        return params

    def task_query_dist(self, params: Params, supports: tuple[Trajectories, ...], obs: Tensor):
        return self.task_dist(self.task_adapt(params, supports), obs)

    # ---------------------------------------------------------- batched over tasks
    def query_dist(self, theta: Tensor, batch: MetaBatch) -> tuple[Tensor, Tensor]:
        """The adapted policies' (mean [T,E,H,A], log_std [T,A]) on the query observations,
        as a differentiable function of the flat meta-parameters."""
        params = self.layout.unflatten(theta)
        return vmap(self.task_query_dist, in_dims=(None, 0, 0))(
            params, batch.supports, batch.query.obs
        )

    def adapt_step(self, params: Params, traj: Trajectories, lr: float, batched: bool) -> Params:
        """One inner step for every task; ``batched`` says whether params are already per task."""
        in_dims = (0 if batched else None, 0, None)
        return vmap(self.task_adapt_step, in_dims=in_dims)(params, traj, lr)

    def sampling_dist(self, params: Params, batched: bool):
        """obs [T,E,D] -> (mean [T,E,A], log_std [T,A]) for shared or per-task params."""
        if batched:
            return lambda obs: vmap(self.task_dist)(params, obs)

        def dist(obs: Tensor) -> tuple[Tensor, Tensor]:
            mean, log_std = self.task_dist(params, obs)
            return mean, log_std.expand(obs.shape[0], -1)

        return dist

    def rollout(self, env: TaskFamily, params: Params, batched: bool, generator: torch.Generator):
        return rollout(
            env, self.sampling_dist(params, batched), generator, self.gamma, self.gae_lambda
        )

    def sample(
        self,
        env: TaskFamily,
        theta: Tensor,
        generator: torch.Generator,
        watch: Stopwatch | None = None,
    ) -> MetaBatch:
        """Support batches with theta, theta_1, ..., then the query batch with theta_K."""
        watch = watch or Stopwatch()
        params = {k: v.detach() for k, v in self.layout.unflatten(theta).items()}
        batched = False
        supports = []
        for _ in range(self.num_steps):
            with watch("sampling"):
                traj = self.rollout(env, params, batched, generator)
            supports.append(traj)
            with watch("adaptation"), torch.no_grad():
                params = self.adapt_step(params, traj, self.lr, batched)
            batched = True
        with watch("sampling"):
            query = self.rollout(env, params, batched, generator)
        return MetaBatch(tuple(supports), query)
