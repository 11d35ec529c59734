"""The ``algorithm`` group: meta-optimizers' schemas."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from maml_hydra.config.choices import HVP
from maml_hydra.config.rules import Root, at_least, positive, require, within


@dataclass
class AlgorithmConfig:
    """Common keys of every meta-optimizer (``algorithm`` group)."""

    _target_: str = MISSING  # the meta-optimizer class (see maml_hydra.meta_optimizers)
    name: str = MISSING

    def check(self, cfg: Root) -> None:
        pass


@dataclass
class TRPOConfig(AlgorithmConfig):
    """TRPO (Schulman et al. 2015) on the MAML objective, as in the MAML paper (app. A.2)."""

    _target_: str = "maml_hydra.meta_optimizers.TRPO"
    name: str = "trpo"
    max_kl: float = 0.01  # trust region: mean KL(old || new) on query data
    cg_iters: int = 10  # conjugate-gradient iterations for the natural-gradient direction
    cg_damping: float = 1e-5  # added to the Fisher diagonal (rllab's reg_coeff)
    ls_steps: int = 15  # backtracking line-search candidates
    ls_backtrack: float = 0.8  # step shrink factor per candidate
    # Fraction of the meta-batch's tasks whose KL defines the Fisher-vector products of CG;
    # 1.0 = all (exact, the paper). Below 1, a fresh random subset every iteration, each task's
    # adaptation still exact (rllab's subsample_factor, by task); the gradient and the line
    # search keep every task, so the step is still bounded by the full KL. The default 0.25
    # cuts CG's cost 3.6x at the paper's navigation batch; the 13-seed Table 4 reproduction
    # at 0.25 against the exact Fisher: docs/RESULTS.md, 'Table 4 over 13 seeds'.
    fvp_task_fraction: float = 0.25
    # ... but never fewer tasks than this (all of them if the meta-batch has fewer): the Fisher
    # of one task out of three oversteps so far that the line search fails (3 tasks x 4 episodes
    # x 10 steps: at 1 task of 3 every candidate fails, at 2 the 8th is taken, exact the 5th).
    fvp_min_tasks: int = 4
    # Also bound the pre-update policy's mean KL(old || new) on the first support batch: the line
    # search accepts a step only if it is <= this. null = unbounded (the paper: only the adapted
    # policies' KL is bounded, and a change the inner step undoes can move the pre-update policy
    # far; train/kl_pre_update shows it). A guard in the line search; CG's Fisher is unchanged.
    max_kl_pre_update: float | None = None
    # How CG multiplies by the KL Hessian. gauss_newton: the exact product J^T F J at theta_old
    # (one reverse graph reused by every CG iteration). finite_difference: rllab's
    # FiniteDifferenceHvp, (g(theta + e v) - g(theta - e v)) / 2e with g the KL gradient through
    # the adaptation and e = fd_eps / |theta|, two adaptations and backward passes per product.
    # The MAML paper's code used it with base_eps = 1 (ConjugateGradientOptimizer passes
    # num_slices=1 as FiniteDifferenceHvp's first argument), so e is about 0.1 at 2x100.
    hvp: HVP = HVP.gauss_newton
    fd_eps: float = 1.0
    # The meta-gradient and CG's products written out by hand (maml_hydra/closed_form.py, the
    # same numbers in less time): gauss_newton's product, or each KL gradient that
    # finite_difference differences. It applies to a Gaussian MLP adapted by one REINFORCE step
    # of a fixed size, as in the paper, or by none (the pretrained and oracle baselines).
    # Elsewhere, or with false, autograd's reverse graph.
    closed_form: bool = True

    def check(self, cfg: Root) -> None:
        positive("algorithm.max_kl", self.max_kl)
        at_least("algorithm.cg_iters", self.cg_iters, 1)
        at_least("algorithm.cg_damping", self.cg_damping, 0)
        within("algorithm.fvp_task_fraction", self.fvp_task_fraction, 0, 1, low_open=True)
        at_least("algorithm.fvp_min_tasks", self.fvp_min_tasks, 1)
        positive("algorithm.max_kl_pre_update", self.max_kl_pre_update, optional=True)
        positive("algorithm.fd_eps", self.fd_eps)
        at_least("algorithm.ls_steps", self.ls_steps, 1)
        within("algorithm.ls_backtrack", self.ls_backtrack, 0, 1, low_open=True, high_open=True)


@dataclass
class PPOConfig(AlgorithmConfig):
    """MAML-PPO: the clipped surrogate (Schulman et al. 2017) on the post-adaptation policies,
    the adaptation recomputed from the support data at every epoch, Adam on the meta-parameters."""

    _target_: str = "maml_hydra.meta_optimizers.PPO"
    name: str = "ppo"
    lr: float = 1e-3  # Adam step size (docs/RESULTS.md: 3e-4 learned too slowly on navigation)
    clip_eps: float = 0.2  # ratio clipped to [1 - clip_eps, 1 + clip_eps]
    epochs: int = 5  # passes over the meta-batch per meta-iteration
    num_minibatches: int = 1  # minibatches of tasks per epoch, at most train.meta_batch_size
    entropy_coef: float = 0.0  # entropy bonus weight on the adapted policies
    max_grad_norm: float | None = 0.5  # clip the meta-gradient norm; null = no clipping
    target_kl: float | None = None  # stop the epochs once mean KL(old || new) exceeds it

    def check(self, cfg: Root) -> None:
        positive("algorithm.lr", self.lr)
        within("algorithm.clip_eps", self.clip_eps, 0, 1, low_open=True, high_open=True)
        at_least("algorithm.epochs", self.epochs, 1)
        batch = cfg.train.meta_batch_size
        require(
            1 <= self.num_minibatches <= batch,
            "algorithm.num_minibatches",
            self.num_minibatches,
            f"must be in [1, train.meta_batch_size={batch}]",
        )
        at_least("algorithm.entropy_coef", self.entropy_coef, 0)
        positive("algorithm.max_grad_norm", self.max_grad_norm, optional=True)
        positive("algorithm.target_kl", self.target_kl, optional=True)


@dataclass
class ProMPConfig(PPOConfig):
    """ProMP (Rothfuss et al. 2019): PPO's clipped objective on the adapted policies plus, for
    each inner step k, a KL penalty eta_k KL(pi_old,k || pi_k) between the policy that sampled
    support batch k and the one the current meta-parameters adapt to on it (k = 0: the
    pre-update policy). ``conf/algorithm/promp.yaml`` also sets ``inner.estimator: lvc``."""

    _target_: str = "maml_hydra.meta_optimizers.ProMP"
    name: str = "promp"
    clip_eps: float = 0.3  # the paper's
    kl_coef: float = 5e-4  # starting eta_k, every inner step (the paper's code)
    # Adapt eta_k after every meta-iteration: halve it when KL_k < kl_target / 1.5, double it
    # when KL_k > 1.5 kl_target (Schulman et al. 2017, sec. 4); false keeps kl_coef.
    kl_adaptive: bool = True
    kl_target: float = 0.01

    def check(self, cfg: Root) -> None:
        super().check(cfg)
        at_least("algorithm.kl_coef", self.kl_coef, 0)
        positive("algorithm.kl_target", self.kl_target)
