"""Meta-optimizers: they step the meta-parameters on the MAML objective of a sampled MetaBatch.

The math is pure functions (surrogate, KL, Fisher-vector product, conjugate gradient, line
search); the classes hold configuration and (for stateful optimizers) state.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor
from torch.func import vjp

from maml_hydra import closed_form
from maml_hydra.closed_form import ClosedForm, Scratch
from maml_hydra.config import HVP, PPOConfig, ProMPConfig, TRPOConfig
from maml_hydra.learner import MAML, MetaBatch
from maml_hydra.policy import gaussian_entropy, gaussian_kl, gaussian_log_prob
from maml_hydra.sampling import Trajectories
from maml_hydra.seeding import generator

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- objectives
def task_weights(mask: Tensor) -> Tensor:
    """Weights [T,E,H] that turn a sum into the mean over each task's valid steps, then over
    tasks (every task counts the same, whatever its episodes' lengths)."""
    return mask / mask.sum(dim=(1, 2), keepdim=True) / mask.shape[0]


def surrogate_loss(mean: Tensor, log_std: Tensor, query: Trajectories) -> Tensor:
    """TRPO surrogate (Schulman et al. 2015, eq. 14), negated for minimisation:
    -E[pi_new(a|s) / pi_old(a|s) * A] over the query data of the adapted policies."""
    log_prob = gaussian_log_prob(mean, log_std[:, None, None, :], query.actions)
    ratio = torch.exp(log_prob - query.log_prob)
    return -(ratio * query.advantages * task_weights(query.mask)).sum()


def clipped_surrogate_loss(
    mean: Tensor, log_std: Tensor, query: Trajectories, clip_eps: float, entropy_coef: float
) -> tuple[Tensor, Tensor]:
    """PPO's clipped objective (Schulman et al. 2017, eq. 7), negated, minus an entropy bonus:
    -E[min(r A, clip(r, 1 - eps, 1 + eps) A)] - c_H E[H(pi)], r = pi_new / pi_old.

    Returns (loss, fraction of valid steps whose ratio was clipped).
    """
    log_prob = gaussian_log_prob(mean, log_std[:, None, None, :], query.actions)
    ratio = torch.exp(log_prob - query.log_prob)
    adv = query.advantages
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    weights = task_weights(query.mask)
    entropy = gaussian_entropy(log_std).mean()
    clipped = ((ratio - 1).abs() > clip_eps).float()
    return -(surrogate * weights).sum() - entropy_coef * entropy, (clipped * weights).sum()


def mean_kl(mean: Tensor, log_std: Tensor, query: Trajectories) -> Tensor:
    """Mean KL(pi_old || pi_new) over the query steps, the TRPO constraint (eq. 12)."""
    kl = gaussian_kl(query.mean, query.log_std[:, None, None, :], mean, log_std[:, None, None, :])
    return (kl * task_weights(query.mask)).sum()


def pre_update_kl(learner: MAML, theta: Tensor, support: Trajectories) -> Tensor:
    """Mean KL(old || new) of the pre-update policy theta over a support batch, old being the
    policy that sampled it."""
    mean, log_std = learner.task_dist(learner.layout.unflatten(theta), support.obs)
    return mean_kl(mean, log_std.expand(support.obs.shape[0], -1), support)


def adapted_outputs(learner: MAML, theta: Tensor, batch: MetaBatch):
    """The adapted policies' (mean, log_std) on the query data and the reusable map ``vjp_fn``
    from a cotangent on them to theta, through the (vmapped, second-order unless first_order)
    adaptation."""
    return vjp(lambda th: learner.query_dist(th, batch), theta)


def meta_gradient(learner: MAML, theta: Tensor, batch: MetaBatch):
    """Surrogate loss and its gradient with respect to the meta-parameters, through the
    adaptation. Returns (loss, gradient, outputs, vjp_fn) as ``adapted_outputs``."""
    outputs, vjp_fn = adapted_outputs(learner, theta, batch)
    return (*_surrogate_gradient(outputs, vjp_fn, batch), outputs, vjp_fn)


def _surrogate_gradient(outputs, vjp_fn, batch: MetaBatch) -> tuple[Tensor, Tensor]:
    """The surrogate at the adapted policies' outputs and its gradient, pulled back to theta
    through ``vjp_fn``."""
    leaves = tuple(o.detach().requires_grad_() for o in outputs)
    loss = surrogate_loss(*leaves, batch.query)
    (gradient,) = vjp_fn(torch.autograd.grad(loss, leaves))
    return loss.detach(), gradient


# ------------------------------------------------------------------------ linear algebra
def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int, residual_tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """Solve A x = b for symmetric positive-definite A given only x -> A x (Hestenes-Stiefel).

    Returns x and the residual r = b - A x kept by the recurrence, so that x^T A x = x^T (b - r)
    costs no further product with A.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= residual_tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, r


def fisher_vector_product(
    vjp_fn: Callable, outputs: tuple[Tensor, Tensor], mask: Tensor, damping: float
) -> Callable[[Tensor], Tensor]:
    """v -> (H + damping I) v, H the Hessian of ``mean_kl`` at theta = theta_old.

    At theta_old the KL and its gradient with respect to the policy outputs (mean, log_std) are
    zero, so its Hessian is exactly the Gauss-Newton product J^T F J, J = d(mean, log_std)/d theta
    through the adaptation and F the Gaussian's Fisher matrix: 1/sigma^2 for the mean, 2 for the
    log_std. ``vjp_fn`` (u -> J^T u) is the reverse graph kept from the meta-gradient; since it is
    linear in u, its own vjp maps v -> J v. Both graphs are built once per meta-iteration and
    reused by every CG iteration; no third-order derivative is formed.
    """
    mean, log_std = outputs
    weights = task_weights(mask)[..., None]  # [T,E,H,1]
    inv_var = torch.exp(-2 * log_std.detach())[:, None, None, :]  # [T,1,1,A]
    log_std_weight = 2 * weights.sum(dim=(1, 2))  # [T,1]
    _, jacobian_vector = vjp(vjp_fn, (torch.zeros_like(mean), torch.zeros_like(log_std)))

    def product(v: Tensor) -> Tensor:
        ((d_mean, d_log_std),) = jacobian_vector((v,))
        (hv,) = vjp_fn((d_mean * weights * inv_var, d_log_std * log_std_weight))
        return hv + damping * v

    return product


def finite_difference_hvp(
    learner: MAML,
    theta: Tensor,
    batch: MetaBatch,
    base_eps: float,
    damping: float,
    closed: bool = False,
    scratch: Scratch | None = None,
) -> Callable[[Tensor], Tensor]:
    """v -> (g(theta + e v) - g(theta - e v)) / (2 e) + damping v: rllab's FiniteDifferenceHvp,
    g the gradient of ``mean_kl`` through the adaptation and e = base_eps / |theta|.

    Each product runs the adaptation and its reverse pass twice. With a small base_eps it is the
    Hessian-vector product up to O(e^2); with the MAML code's base_eps = 1, e |v| is not small and
    the product also carries the KL's curvature away from theta (see ``TRPOConfig.hvp``).
    With ``closed`` each gradient is ``ClosedForm.kl_gradient`` (the same numbers by hand),
    else autograd's reverse pass through the vmapped adaptation; the gradients, one after the
    other, keep their activations in one ``Scratch`` (``scratch``, or one of this product's).
    """
    eps = base_eps / (theta.norm().item() + 1e-8)
    scratch = Scratch() if scratch is None else scratch

    def kl_gradient(th: Tensor) -> Tensor:
        if closed:
            return ClosedForm(learner, th, batch, scratch).kl_gradient()
        th = th.detach().requires_grad_()
        with torch.enable_grad():
            kl = mean_kl(*learner.query_dist(th, batch), batch.query)
            (g,) = torch.autograd.grad(kl, th)
        return g

    def product(v: Tensor) -> Tensor:
        plus, minus = kl_gradient(theta + eps * v), kl_gradient(theta - eps * v)
        return (plus - minus) / (2 * eps) + damping * v

    return product


def trust_region_step(direction: Tensor, curvature: Tensor, max_kl: float) -> Tensor:
    """The multiple of ``direction`` d whose quadratic KL model 1/2 s^T H s is max_kl, given
    curvature = d^T H d. A finite-difference H can give a curvature that is not positive; the
    step is then d itself, as rllab's ConjugateGradientOptimizer falls back to step size 1 (the
    line search still bounds the true KL)."""
    if not bool(torch.isfinite(curvature)) or curvature.item() <= 0:
        return direction
    return math.sqrt(2 * max_kl) * direction / curvature.clamp(min=1e-12).sqrt()


def line_search(
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor]],
    theta: Tensor,
    full_step: Tensor,
    loss_before: Tensor,
    max_kl: float,
    steps: int,
    backtrack: float,
    also: Callable[[Tensor], bool] | None = None,
) -> tuple[Tensor, int, Tensor, Tensor]:
    """Backtracking line search: try theta - backtrack^i * full_step for i = 0..steps-1 and
    accept the first candidate whose loss is finite and lower than before with KL <= max_kl
    (and for which ``also``, a further constraint, holds).

    Returns (theta_new, accepted index or -1, loss, kl) of the step taken: on failure theta
    unchanged, with the loss before and KL 0 (a rejected candidate's, perhaps not finite, is
    not the run's).
    """
    for i in range(steps):
        candidate = theta - backtrack**i * full_step
        loss, kl = evaluate(candidate)
        if torch.isfinite(loss) and torch.isfinite(kl) and loss < loss_before and kl <= max_kl:
            if also is None or also(candidate):
                return candidate, i, loss, kl
    return theta, -1, loss_before, torch.zeros(())


# ------------------------------------------------------------------------ TRPO's curvature
# What TRPO needs of one meta-batch at theta_old, behind one interface: the surrogate and its
# gradient through the adaptation (``surrogate_gradient``), and CG's products with the KL's
# Hessian (``fisher_product``). ``linear`` says whether the product is a matrix, so that
# x^T H x comes from CG's residual; a finite difference takes one more product. Three kinds:
# ``closed_form.ClosedForm`` (the exact product by hand), ``Autograd`` (the exact product
# through the reverse graph) and ``FiniteDifference`` (rllab's product, the paper's).


class Curvature(Protocol):
    linear: bool

    def surrogate_gradient(self) -> tuple[Tensor, Tensor]: ...

    def fisher_product(self, damping: float) -> Callable[[Tensor], Tensor]: ...


class Autograd:
    """The exact product J^T F J through one reverse graph of the adaptation, built here and
    reused by the meta-gradient and every CG product (``fisher_vector_product``)."""

    linear = True

    def __init__(self, learner: MAML, theta: Tensor, batch: MetaBatch) -> None:
        self.batch = batch
        self.outputs, self.vjp_fn = adapted_outputs(learner, theta, batch)

    def surrogate_gradient(self) -> tuple[Tensor, Tensor]:
        return _surrogate_gradient(self.outputs, self.vjp_fn, self.batch)

    def fisher_product(self, damping: float) -> Callable[[Tensor], Tensor]:
        return fisher_vector_product(self.vjp_fn, self.outputs, self.batch.query.mask, damping)


class FiniteDifference:
    """rllab's product (``finite_difference_hvp``), each KL gradient by hand (``closed``) or
    through autograd; the surrogate's gradient the same way. Nothing is built until asked."""

    linear = False

    def __init__(
        self, learner: MAML, theta: Tensor, batch: MetaBatch, base_eps: float, closed: bool
    ) -> None:
        self.learner, self.theta, self.batch = learner, theta, batch
        self.base_eps, self.closed = base_eps, closed
        self.scratch = Scratch()  # for each ClosedForm in turn: one lives at a time

    def surrogate_gradient(self) -> tuple[Tensor, Tensor]:
        if self.closed:
            closed = ClosedForm(self.learner, self.theta, self.batch, self.scratch)
            return closed.surrogate_gradient()
        loss, gradient, _, _ = meta_gradient(self.learner, self.theta, self.batch)
        return loss, gradient

    def fisher_product(self, damping: float) -> Callable[[Tensor], Tensor]:
        return finite_difference_hvp(
            self.learner, self.theta, self.batch, self.base_eps, damping, self.closed, self.scratch
        )


# ----------------------------------------------------------------------------- optimizers
class TRPO:
    """MAML-TRPO: the natural-gradient step of TRPO on the post-adaptation surrogate.

    With ``fvp_task_fraction`` < 1 the Fisher-vector products use the mean KL of a random subset
    of the tasks, at least ``fvp_min_tasks`` (drawn from this optimizer's own checkpointed
    stream), the gradient and the line search all of them.
    """

    def __init__(self, cfg: TRPOConfig, learner: MAML, seed: int = 0) -> None:
        self.cfg = cfg
        self.learner = learner
        self.rng = generator("trpo-fvp-tasks", seed)
        # where the closed form applies (closed_form.applies), it replaces autograd's graph
        wanted = cfg.closed_form
        reason = closed_form.applies(learner) if wanted else None
        self.closed_form = wanted and reason is None
        if reason is not None:
            log.info("TRPO: Fisher products through autograd (no closed form: %s)", reason)

    def fisher_tasks(self, num_tasks: int) -> Tensor | None:
        """Indices of the tasks whose KL defines the Fisher products; None = all."""
        count = max(self.cfg.fvp_min_tasks, round(self.cfg.fvp_task_fraction * num_tasks))
        if count >= num_tasks:
            return None
        return torch.randperm(num_tasks, generator=self.rng)[:count].sort().values

    def curvature(self, theta: Tensor, batch: MetaBatch) -> Curvature:
        """The configured curvature of ``batch`` at theta (``TRPOConfig.hvp``, ``closed_form``)."""
        if self.cfg.hvp == HVP.finite_difference:
            return FiniteDifference(self.learner, theta, batch, self.cfg.fd_eps, self.closed_form)
        if self.closed_form:
            return ClosedForm(self.learner, theta, batch)
        return Autograd(self.learner, theta, batch)

    def step(self, theta: Tensor, batch: MetaBatch) -> tuple[Tensor, dict[str, float]]:
        cfg, query = self.cfg, batch.query
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def evaluate(th: Tensor) -> tuple[Tensor, Tensor]:
            with torch.no_grad():
                mean, log_std = self.learner.query_dist(th, batch)
                return surrogate_loss(mean, log_std, query), mean_kl(mean, log_std, query)

        products = self.curvature(theta, batch)
        loss_before, gradient = products.surrogate_gradient()
        timings["meta_gradient"] = time.perf_counter() - clock

        clock = time.perf_counter()
        tasks = self.fisher_tasks(query.obs.shape[0])
        if tasks is not None:  # the full batch's products are not needed any more
            products = None
            products = self.curvature(theta, batch.select(tasks.to(theta.device)))
        hvp = products.fisher_product(cfg.cg_damping)
        direction, residual = conjugate_gradient(hvp, gradient, cfg.cg_iters)
        if products.linear:
            curvature = direction @ (gradient - residual)  # = direction^T (H + damping) direction
        else:  # not linear in v: one more product, as rllab
            curvature = direction @ hvp(direction)
        full_step = trust_region_step(direction, curvature, cfg.max_kl)
        products = hvp = None  # CG's activations: the line search needs none of them
        timings["cg"] = time.perf_counter() - clock

        also = None
        if cfg.max_kl_pre_update is not None and batch.supports:

            def also(th: Tensor) -> bool:
                with torch.no_grad():
                    kl_pre = pre_update_kl(self.learner, th, batch.supports[0])
                return bool(torch.isfinite(kl_pre)) and kl_pre.item() <= cfg.max_kl_pre_update

        clock = time.perf_counter()
        theta_new, accepted, loss_after, kl = line_search(
            evaluate,
            theta,
            full_step,
            loss_before,
            cfg.max_kl,
            cfg.ls_steps,
            cfg.ls_backtrack,
            also,
        )
        timings["line_search"] = time.perf_counter() - clock
        metrics = {
            "surrogate_before": loss_before.item(),
            "surrogate_after": loss_after.item(),
            "kl": kl.item(),
            "line_search_step": float(accepted),
            "line_search_failed": float(accepted < 0),
            "grad_norm": gradient.norm().item(),
        }
        metrics.update({f"time/{k}": v for k, v in timings.items()})
        return theta_new.detach(), metrics

    def state_dict(self) -> dict:
        return {"rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:  # checkpoints written before fvp_task_fraction have no stream
            self.rng.set_state(state["rng"])


class PPO:
    """MAML-PPO: Adam on the clipped surrogate of the adapted policies. Each epoch recomputes
    the adaptation from the support data with the current meta-parameters (second order unless
    ``inner.first_order``), so the meta-gradient always flows through the inner step."""

    def __init__(self, cfg: PPOConfig, learner: MAML, seed: int = 0) -> None:
        self.cfg = cfg
        self.learner = learner
        self.param = torch.nn.Parameter(learner.parameters())
        self.optimizer = torch.optim.Adam([self.param], lr=cfg.lr)
        self.rng = generator("ppo-minibatches", seed)

    def step(self, theta: Tensor, batch: MetaBatch) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg
        clock = time.perf_counter()
        with torch.no_grad():
            self.param.copy_(theta)
        num_tasks = batch.query.obs.shape[0]
        losses, clip_fractions, kls, grad_norms = [], [], [], []
        epochs = 0
        for _ in range(cfg.epochs):
            epochs += 1
            order = torch.randperm(num_tasks, generator=self.rng).to(theta.device)
            epoch_kls = []
            for tasks in order.chunk(cfg.num_minibatches):
                sub = batch.select(tasks)
                loss, clip_fraction, (mean, log_std) = self.objective(sub)
                self.optimizer.zero_grad()
                loss.backward()
                if cfg.max_grad_norm is not None:
                    norm = torch.nn.utils.clip_grad_norm_([self.param], cfg.max_grad_norm)
                else:
                    norm = self.param.grad.norm()
                self.optimizer.step()
                losses.append(loss.item())
                clip_fractions.append(clip_fraction.item())
                grad_norms.append(norm.item())
                epoch_kls.append(mean_kl(mean.detach(), log_std.detach(), sub.query).item())
            kls.append(sum(epoch_kls) / len(epoch_kls))
            # KL measured during the epoch, before each minibatch's step (as in cleanrl)
            if cfg.target_kl is not None and kls[-1] > cfg.target_kl:
                break
        metrics = {
            **self.after_step(batch),
            "ppo_loss": losses[-1],
            "ppo_loss_first": losses[0],
            "clip_fraction": clip_fractions[-1],
            "kl": kls[-1],
            "epochs": float(epochs),
            "grad_norm": grad_norms[-1],
            "time/meta_gradient": time.perf_counter() - clock,
        }
        return self.param.detach().clone(), metrics

    def objective(self, sub: MetaBatch) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """The loss of a minibatch of tasks at the current meta-parameters, the fraction of
        clipped ratios, and the adapted policies' (mean, log_std) on its query data."""
        cfg = self.cfg
        mean, log_std = self.learner.query_dist(self.param, sub)
        loss, clip_fraction = clipped_surrogate_loss(
            mean, log_std, sub.query, cfg.clip_eps, cfg.entropy_coef
        )
        return loss, clip_fraction, (mean, log_std)

    def after_step(self, batch: MetaBatch) -> dict[str, float]:
        """Bookkeeping once the epochs are done; metrics to log."""
        return {}

    def state_dict(self) -> dict:
        # a copy: Adam updates its moment tensors in place
        return {
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "rng": self.rng.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])


def inner_kls(before, supports: tuple[Trajectories, ...]) -> Tensor:
    """[K] mean KL(pi_old,k || pi_k) on each support batch k: the policy that sampled it
    against the one before inner step k at the current meta-parameters (``MAML.trace``)."""
    pairs = zip(before, supports, strict=True)
    kls = [mean_kl(mean, log_std, traj) for (mean, log_std), traj in pairs]
    return torch.stack(kls) if kls else torch.zeros(0)


class ProMP(PPO):
    """ProMP (Rothfuss et al. 2019, eq. 11): MAML-PPO's clipped objective plus
    sum_k eta_k KL(pi_old,k || pi_k) over the inner steps, the coefficients eta_k adapted after
    each meta-iteration towards ``kl_target``. The inner objective is ``inner.estimator`` (LVC
    in conf/algorithm/promp.yaml)."""

    def __init__(self, cfg: ProMPConfig, learner: MAML, seed: int = 0) -> None:
        super().__init__(cfg, learner, seed)
        self.kl_coefs = torch.full((learner.num_steps,), cfg.kl_coef)

    def objective(self, sub: MetaBatch) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        cfg = self.cfg
        before, (mean, log_std) = self.learner.trace(self.param, sub)
        loss, clip_fraction = clipped_surrogate_loss(
            mean, log_std, sub.query, cfg.clip_eps, cfg.entropy_coef
        )
        penalty = (self.kl_coefs.to(loss) * inner_kls(before, sub.supports).to(loss)).sum()
        return loss + penalty, clip_fraction, (mean, log_std)

    def after_step(self, batch: MetaBatch) -> dict[str, float]:
        with torch.no_grad():
            before, _ = self.learner.trace(self.param.detach(), batch)
            kls = inner_kls(before, batch.supports).cpu()
        metrics = {}
        for k, kl in enumerate(kls.tolist()):
            if self.cfg.kl_adaptive:
                if kl < self.cfg.kl_target / 1.5:
                    self.kl_coefs[k] /= 2
                elif kl > self.cfg.kl_target * 1.5:
                    self.kl_coefs[k] *= 2
            metrics[f"inner_kl_{k}"] = kl
            metrics[f"kl_coef_{k}"] = self.kl_coefs[k].item()
        return metrics

    def state_dict(self) -> dict:
        return {**super().state_dict(), "kl_coefs": self.kl_coefs.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.kl_coefs.copy_(state["kl_coefs"])
