"""Typed configuration: one dataclass schema per Hydra config group, each checking its own keys.

YAML files under ``conf/`` only choose values that differ from these schemas: every key, its
default and its rule live here, once. Each YAML option binds to its schema explicitly with
``defaults: [base_<name>, _self_]``; ``register_configs`` stores every schema subclass under
that name, so a new family or meta-optimizer needs its schema, its module and its YAML.

Choice lists are Enums: Hydra refuses a value outside them while composing, naming the key.
This module imports neither torch nor any task family until a check needs one, so that a bad
value on the command line is refused at once.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict, read_write


class ConfigError(ValueError):
    """A configuration value that is well-typed but not allowed; the message names the key."""


# ------------------------------------------------------------------------------- the rules
def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ConfigError ``<key>=<value> is not allowed: <rule>`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {rule}")


def _short(rows: list) -> str:
    """Nested lists as one short string for an error message."""
    text = str([list(row) for row in rows])
    return text if len(text) <= 60 else f"{text[:57]}..."


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def finite(key: str, value: float) -> None:
    """A finite number (not inf, not nan)."""
    require(_finite(value), key, value, "must be a finite number")


def positive(key: str, value: float | None, optional: bool = False) -> None:
    """A finite number > 0 (or null where ``optional``)."""
    if optional and value is None:
        return
    require(_finite(value) and value > 0, key, value, "must be > 0" + (" or null" * optional))


def at_least(key: str, value: float, low: float) -> None:
    """A finite number >= low."""
    require(_finite(value) and value >= low, key, value, f"must be >= {low}")


def within(key: str, value: float, low: float, high: float, low_open=False, high_open=False):
    """A finite number in [low, high], with either end open."""
    ok = _finite(value) and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    brackets = ("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]")
    require(ok, key, value, f"must be in {brackets}")


def _family(target: str) -> type:
    """The task-family class ``env._target_`` names (imported here, after the cheap checks)."""
    from hydra.utils import get_class

    from maml_hydra.tasks.base import TaskFamily

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


# --------------------------------------------------------------------------- choice lists
class Activation(str, Enum):
    """Hidden-layer nonlinearities, each named after its ``torch.nn`` module (case aside)."""

    relu = "relu"
    tanh = "tanh"
    elu = "elu"
    gelu = "gelu"
    silu = "silu"


class Init(str, Enum):
    """Weight initialisation. torch: nn.Linear's default (uniform with bound 1/sqrt(fan_in),
    biases too). xavier: Glorot-uniform weights, zero biases (the MAML paper's code)."""

    torch = "torch"
    xavier = "xavier"


class Sampling(str, Enum):
    """How a batch is sampled (``maml_hydra.sampling.SamplingPlan`` turns it into numbers).

    episodes: ``episodes_per_task`` episodes per task. steps: a budget of ``episodes_per_task x
    horizon`` env steps per task, its rows stepped at once, an episode that ends early restarting
    at once, returns over the completed episodes (rllab's samplers, as in the MAML paper's code).
    sequential: the paper's training sampler exactly, one row per task running its episodes back
    to back until the tasks together have their budget; evaluated as ``steps``."""

    episodes = "episodes"
    steps = "steps"
    sequential = "sequential"


class HVP(str, Enum):
    """How TRPO's conjugate gradient multiplies by the KL Hessian (``TRPOConfig.hvp``)."""

    gauss_newton = "gauss_newton"
    finite_difference = "finite_difference"


class Physics(str, Enum):
    """The locomotion families' simulator (``env.physics``; maml_hydra/tasks/physics.py)."""

    mujoco = "mujoco"  # MuJoCo C in float64 on CPU threads (mujoco.rollout)
    warp = "warp"  # MuJoCo Warp in float32, one world per (task, episode), on ``device``


class Dynamics(str, Enum):
    """Whose locomotion problem the MuJoCo families pose (``env.dynamics``;
    maml_hydra/tasks/locomotion.py), both built from gymnasium's model files.

    gymnasium: gymnasium's v5 environments (as pytorch-maml-rl and ProMP use): frame skip 5
    (0.05 s env steps), v_x from the root's displacement, no early termination.
    rllab: the MAML paper's own problem (its code ran rllab on MuJoCo 1.31): frame skip 1 (0.01 s
    HalfCheetah and 0.02 s Ant steps), v_x the torso's centre-of-mass velocity, rllab's
    observations, and for the Ant its model, contact cost, +1.0 velocity bonus and termination."""

    gymnasium = "gymnasium"
    rllab = "rllab"


class Estimator(str, Enum):
    """The inner-loop objective (``inner.estimator``; maml_hydra/estimators.py): the same
    gradient, a different second derivative through the inner step."""

    reinforce = "reinforce"  # -E[log pi A] (Finn et al. 2017)
    dice = "dice"  # DiCE (Foerster et al. 2018): the full score-function Hessian
    lvc = "lvc"  # ProMP's low-variance curvature objective (Rothfuss et al. 2019)


# ------------------------------------------------------------------------------------ env
@dataclass
class EnvConfig:
    """Common keys of every task family (``env`` group). A family defined outside the package
    uses this schema directly, with its own settings in ``params``."""

    _target_: str = MISSING  # the task-family class, a maml_hydra.tasks.TaskFamily subclass
    name: str = MISSING  # short name used in run directories
    horizon: int = 100  # steps per episode
    # Append the task parameters to the observation (what baseline=oracle sets).
    oracle: bool = False
    normalize_obs: bool = False  # running mean/variance normalisation, saved in checkpoints
    params: dict[str, Any] = field(default_factory=dict)  # settings of a user-defined family

    def check(self, cfg: Config) -> None:
        at_least("env.horizon", self.horizon, 1)


@dataclass
class NavigationConfig(EnvConfig):
    """2D point navigation, MAML paper sec. 5.3 (original rllab ``PointEnvRandGoal``): reach a
    goal from the origin, reward = -Euclidean distance to the goal."""

    _target_: str = "maml_hydra.tasks.navigation.Navigation2D"
    name: str = "navigation"
    goal_low: float = -0.5  # goals are uniform in [goal_low, goal_high]^2
    goal_high: float = 0.5
    action_bound: float = 0.1  # moves are clipped to [-action_bound, action_bound]^2
    # The policy acts in [-1, 1]^2, scaled by action_bound before clipping (rllab's ``normalize``
    # wrapper in the original code); false: the action is the move itself.
    normalized_actions: bool = True
    goal_tolerance: float = 0.01  # episode ends when |dx| and |dy| are both below this

    def check(self, cfg: Config) -> None:
        super().check(cfg)
        finite("env.goal_low", self.goal_low)
        require(
            _finite(self.goal_high) and self.goal_low < self.goal_high,
            "env.goal_high",
            self.goal_high,
            f"must be > env.goal_low={self.goal_low}",
        )
        positive("env.action_bound", self.action_bound)
        at_least("env.goal_tolerance", self.goal_tolerance, 0)


@dataclass
class LocomotionConfig(EnvConfig):
    """Common keys of the batched MuJoCo locomotion families (maml_hydra.tasks.locomotion):
    reward = forward(v_x, task) - ctrl_cost |a|^2 + survive_bonus (plus the Ant's contact cost
    and velocity bonus under ``dynamics=rllab``), ``a`` the action clipped to [-1, 1]."""

    horizon: int = 200  # 10 s on gymnasium dynamics, 2 s (HalfCheetah) or 4 s (Ant) on rllab's
    # Whose problem: gymnasium (v5 environments) or rllab (the MAML paper's code); see Dynamics.
    # A stored config without this key is a gymnasium-dynamics run.
    dynamics: Dynamics = Dynamics.gymnasium
    normalize_obs: bool = True  # updated in training, checkpointed, frozen in evaluation
    ctrl_cost: float = 0.5e-2  # the MAML paper's code: 0.5e-2 |a|^2 (Ant), on either dynamics
    survive_bonus: float = 0.05
    # Physics steps per env step; null = the dynamics' own: gymnasium 5 (0.05 s on both
    # models), rllab 1 (the paper's 0.01 s HalfCheetah and 0.02 s Ant steps).
    frame_skip: int | None = None
    # gymnasium's reset_noise_scale: qpos0 + U(-x, x), velocities N(0, x^2); null = the
    # dynamics' own: gymnasium 0.1; rllab's reset (qpos N(0, 0.01^2) around the model's
    # init_qpos, qvel N(0, 0.1^2)) is fixed and takes no number.
    reset_noise: float | None = None
    threads: int = 2  # mujoco.rollout worker threads (physics=mujoco)
    physics: Physics = Physics.mujoco  # see Physics; warp needs the optional extra ".[gpu]"

    def __post_init__(self) -> None:
        # null means the dynamics' own value; resolved here so that the config a run logs and
        # checkpoints holds the number that ran. An instance keeps its numbers when its
        # dynamics is changed afterwards (dataclasses.replace, a merge): set them null again.
        rllab = Dynamics(self.dynamics) is Dynamics.rllab
        if self.frame_skip is None:
            self.frame_skip = 1 if rllab else 5
        if self.reset_noise is None and not rllab:
            self.reset_noise = 0.1

    def check(self, cfg: Config) -> None:
        super().check(cfg)
        rllab = Dynamics(self.dynamics) is Dynamics.rllab
        if Physics(self.physics) is Physics.warp:
            require(
                not rllab,
                "env.physics",
                Physics.warp.value,
                "env.dynamics=rllab reads contact forces and centre-of-mass velocities through "
                "MuJoCo C's sensors; MuJoCo Warp runs gymnasium dynamics only",
            )
            from maml_hydra.tasks.physics import import_warp

            try:
                import_warp()
            except ImportError:
                require(
                    False,
                    "env.physics",
                    Physics.warp.value,
                    'MuJoCo Warp is not installed: pip install -e ".[gpu]"',
                )
        at_least("env.frame_skip", self.frame_skip, 1)
        at_least("env.threads", self.threads, 1)
        at_least("env.ctrl_cost", self.ctrl_cost, 0)
        if rllab:
            require(
                self.reset_noise is None,
                "env.reset_noise",
                self.reset_noise,
                "env.dynamics=rllab resets as the paper's code (qpos N(0, 0.01^2), qvel "
                "N(0, 0.1^2)); leave it null",
            )
        else:
            at_least("env.reset_noise", self.reset_noise, 0)
        finite("env.survive_bonus", self.survive_bonus)


@dataclass
class VelocityTasks:
    """Target-velocity task keys: goal velocities uniform in [goal_low, goal_high]."""

    goal_low: float = 0.0
    goal_high: float = 3.0

    def check_goals(self) -> None:
        finite("env.goal_low", self.goal_low)
        require(
            _finite(self.goal_high) and self.goal_low <= self.goal_high,
            "env.goal_high",
            self.goal_high,
            f"must be >= env.goal_low={self.goal_low}",
        )


@dataclass
class AntVelocityConfig(LocomotionConfig, VelocityTasks):
    """MuJoCo Ant target velocity (MAML paper sec. 5.3), v_goal ~ U[0, 3]. gymnasium dynamics:
    reward = -|v_x - v_goal| - 0.5e-2 |a|^2 + 0.05 on Ant-v5's model, no contact cost and no
    termination (as pytorch-maml-rl and ProMP). rllab dynamics (the paper's code): reward =
    -|v_x - v_goal| + 1.0 - 0.5e-2 |a|^2 - 0.5e-3 |clip(cfrc_ext, -1, 1)|^2 + 0.05, episodes
    end when the torso's height leaves [0.2, 1.0]."""

    _target_: str = "maml_hydra.tasks.locomotion.AntVelocity"
    name: str = "ant"

    def check(self, cfg: Config) -> None:
        super().check(cfg)
        self.check_goals()


@dataclass
class AntDirectionConfig(LocomotionConfig):
    """MuJoCo Ant forward/backward: direction d in {-1, +1}, forward reward d v_x; with
    ``dynamics=rllab`` also the paper's contact cost and termination (no +1.0 bonus)."""

    _target_: str = "maml_hydra.tasks.locomotion.AntDirection"
    name: str = "ant_dir"


@dataclass
class HalfCheetahVelocityConfig(LocomotionConfig, VelocityTasks):
    """MuJoCo HalfCheetah target velocity (MAML paper sec. 5.3), gymnasium's HalfCheetah-v5
    model; control cost 0.5e-1 |a|^2 and no survive bonus, as in the original code (on either
    dynamics)."""

    _target_: str = "maml_hydra.tasks.locomotion.HalfCheetahVelocity"
    name: str = "halfcheetah_vel"
    ctrl_cost: float = 0.5e-1
    survive_bonus: float = 0.0
    goal_high: float = 2.0

    def check(self, cfg: Config) -> None:
        super().check(cfg)
        self.check_goals()


@dataclass
class HalfCheetahDirectionConfig(LocomotionConfig):
    """MuJoCo HalfCheetah forward/backward (MAML paper Table 5): forward reward d v_x."""

    _target_: str = "maml_hydra.tasks.locomotion.HalfCheetahDirection"
    name: str = "halfcheetah_dir"
    ctrl_cost: float = 0.5e-1
    survive_bonus: float = 0.0


# ------------------------------------------------------------------------------ algorithm
@dataclass
class AlgorithmConfig:
    """Common keys of every meta-optimizer (``algorithm`` group)."""

    _target_: str = MISSING  # the meta-optimizer class (see maml_hydra.meta_optimizers)
    name: str = MISSING

    def check(self, cfg: Config) -> None:
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
    # at 0.25 against the exact Fisher: docs/RESULTS.md, session 15.
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

    def check(self, cfg: Config) -> None:
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

    def check(self, cfg: Config) -> None:
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

    def check(self, cfg: Config) -> None:
        super().check(cfg)
        at_least("algorithm.kl_coef", self.kl_coef, 0)
        positive("algorithm.kl_target", self.kl_target)


# ---------------------------------------------------------------------------------- inner
@dataclass
class InnerConfig:
    """The inner (adaptation) update (``inner`` group): REINFORCE (VPG) steps, Finn et al.
    2017 eq. (1), each on fresh support data."""

    name: str = "vpg"
    # Gradient steps per task in meta-training; 0 = no adaptation (baseline=pretrained and
    # baseline=oracle set it).
    num_steps: int = 1
    lr: float = 0.1  # inner step size (paper: 0.1); with learn_lr, every step size's start
    first_order: bool = False  # stop gradients through the inner gradient (FOMAML)
    # The inner objective: reinforce, dice or lvc (algorithm=promp sets lvc)
    estimator: Estimator = Estimator.reinforce
    # Meta-SGD (Li et al. 2017): a learned step size per policy parameter, initialised to lr;
    # the evaluator then adapts with the learned step sizes, not eval.lrs.
    learn_lr: bool = False

    def check(self, cfg: Config) -> None:
        at_least("inner.num_steps", self.num_steps, 0)
        positive("inner.lr", self.lr)


# ------------------------------------------------------------------------------- baseline
@dataclass
class BaselineConfig:
    """Which method of the MAML paper's comparison is trained (``baseline`` group). Each option
    under ``conf/baseline/`` is a ``# @package _global_`` file that sets, while the config is
    composed, exactly the keys of the other groups it changes; so the config that is logged,
    checkpointed and shown in TensorBoard is the one that ran. Only the name lives here."""

    name: str = "maml"  # maml, pretrained, oracle, random, or a user's own option

    def check(self, cfg: Config) -> None:
        require(bool(self.name), "baseline.name", self.name, "must be non-empty")


# ------------------------------------------------------------------------- plain sections
@dataclass
class PolicyConfig:
    """Gaussian MLP policy with a state-independent log standard deviation."""

    hidden_sizes: list[int] = field(default_factory=lambda: [100, 100])  # the paper: 2x100
    activation: Activation = Activation.relu
    init_log_std: float = 0.0  # rllab's init_std=1
    init: Init = Init.torch
    # false: the std stays at exp(init_log_std), neither adapted nor meta-trained (a buffer)
    learn_std: bool = True

    def check(self, cfg: Config) -> None:
        sizes = list(self.hidden_sizes)
        require(len(sizes) >= 1, "policy.hidden_sizes", sizes, "must be non-empty")
        require(all(h >= 1 for h in sizes), "policy.hidden_sizes", sizes, "every size must be >= 1")
        finite("policy.init_log_std", self.init_log_std)


@dataclass
class TrainConfig:
    """The meta-training loop."""

    # Meta-iterations (one meta-optimizer step each); 0 = no training, the initial policy is
    # checkpointed and evaluated (baseline=random sets it).
    iterations: int = 100
    meta_batch_size: int = 20  # tasks per meta-iteration, resampled every iteration
    episodes_per_task: int = 20  # episodes per task for each support and query batch
    checkpoint_every: int = 10  # iterations between checkpoints (one is always written at the end)
    gamma: float = 0.99  # discount for every advantage, inner and outer
    gae_lambda: float = 1.0  # GAE lambda on the linear feature baseline; 1.0 = Monte Carlo
    eval_every: int = 0  # evaluate on held-out tasks every N iterations; 0 = only at the end
    # a log line (stdout and the run's train.log) every N iterations and at the last: returns
    # before and after adaptation, KL, s/iteration, time left; 0 = none. Beside the progress
    # bar or without it (progress=false), for a log that is tailed (SLURM, nohup).
    log_every: int = 10
    sampling: Sampling = Sampling.episodes  # see Sampling

    def check(self, cfg: Config) -> None:
        at_least("train.iterations", self.iterations, 0)
        at_least("train.meta_batch_size", self.meta_batch_size, 1)
        at_least("train.episodes_per_task", self.episodes_per_task, 2)
        at_least("train.checkpoint_every", self.checkpoint_every, 1)
        within("train.gamma", self.gamma, 0, 1, low_open=True)
        within("train.gae_lambda", self.gae_lambda, 0, 1)
        at_least("train.eval_every", self.eval_every, 0)
        at_least("train.log_every", self.log_every, 0)


@dataclass
class EvalConfig:
    """Adaptation on held-out tasks (MAML paper: 40 tasks, 40 episodes, 0.1 then 0.05)."""

    num_tasks: int = 40
    episodes_per_task: int = 40  # per gradient step (paper: 40 navigation, 20 locomotion)
    # Returns are reported after 0..num_steps gradient steps; 0 = evaluated as is
    # (baseline=oracle sets it, and the report then evaluates the run as is too).
    num_steps: int = 3
    lrs: list[float] = field(default_factory=lambda: [0.1, 0.05])  # step k uses lrs[min(k, -1)]
    seed: int = 1234  # held-out tasks come from their own stream, the same for every run
    # or explicit held-out tasks, num_tasks rows of the family's task parameters (a goal [x, y]
    # for navigation); the actions' noise still comes from seed
    tasks: list[list[float]] | None = None

    def check(self, cfg: Config | None = None) -> None:
        at_least("eval.num_tasks", self.num_tasks, 1)
        at_least("eval.episodes_per_task", self.episodes_per_task, 2)
        at_least("eval.num_steps", self.num_steps, 0)
        lrs = list(self.lrs)
        ok = len(lrs) >= 1 and all(_finite(lr) and lr > 0 for lr in lrs)
        require(ok, "eval.lrs", lrs, "must be a non-empty list of positive step sizes")
        if self.tasks is not None:
            ok = all(_finite(x) for task in self.tasks for x in task)
            require(ok, "eval.tasks", _short(self.tasks), "must hold finite numbers")

    def check_tasks(self, family: type) -> None:
        """Explicit held-out tasks must fit the family's task parameters."""
        if self.tasks is None:
            return
        rows, dim = self.num_tasks, family.task_dim
        ok = len(self.tasks) == rows and all(len(task) == dim for task in self.tasks)
        require(
            ok,
            "eval.tasks",
            _short(self.tasks),
            f"must be eval.num_tasks={rows} rows of {dim} numbers",
        )


DEVICES = ("cpu", "cuda")


def check_device(device: str) -> None:
    require(device in DEVICES, "device", device, f"must be one of {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        require(torch.cuda.is_available(), "device", device, "no CUDA GPU is visible")


@dataclass
class Config:
    """The whole experiment; ``conf/config.yaml`` chooses the group defaults."""

    env: EnvConfig = MISSING
    algorithm: AlgorithmConfig = MISSING
    inner: InnerConfig = MISSING
    baseline: BaselineConfig = MISSING
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0  # policy init, training tasks and action noise all derive from it
    device: str = "cpu"  # cpu or cuda
    resume: str | None = None  # a run directory to continue from its last checkpoint
    progress: bool = True  # show a progress bar

    def check(self) -> None:
        """Every section's own rules, then those that need the task family's class (a family
        defined outside the package is always imported, to check that it is one)."""
        for section in (self.env, self.algorithm, self.inner, self.baseline):
            section.check(self)
        self.policy.check(self)
        self.train.check(self)
        self.eval.check(self)
        check_device(self.device)
        if self.resume is not None:
            resume = Path(self.resume)
            require(
                not resume.is_file(), "resume", self.resume, "is a file; give its run directory"
            )
            require(resume.is_dir(), "resume", self.resume, "no such run directory")
        steps = Sampling(self.train.sampling) is not Sampling.episodes
        builtin = any(
            getattr(c, "_target_", None) == self.env._target_ for c in _subclasses(EnvConfig)
        )
        if builtin and self.eval.tasks is None and not steps:
            return  # nothing left that needs the family's class (and torch) imported
        family = _family(self.env._target_)
        self.eval.check_tasks(family)
        if steps:
            require(
                family.can_restart(),
                "train.sampling",
                Sampling(self.train.sampling).value,
                f"needs {self.env._target_} to restart episodes that end early (it has no "
                "_restart)",
            )


@dataclass
class EvaluateConfig:
    """``python -m maml_hydra.evaluate <run or sweep dir>``: adapt every trained run on the same
    held-out tasks and write ``<dir>/eval/``."""

    dir: str = MISSING  # a run directory or a sweep directory holding runs
    eval: EvalConfig = field(default_factory=EvalConfig)  # held-out tasks and adaptation steps
    include_random: bool = True  # add a random-init variant from the MAML runs' seeds if absent
    # Evaluate each run at its own checkpointed eval settings (held-out tasks, episodes, steps,
    # step sizes) instead of ``eval``: the paper presets evaluate each variant at its own step
    # sizes. Then no random variant is made from MAML runs (random runs bring their own step
    # sizes), and a variant run at several step sizes for one seed is told apart by its first.
    own_settings: bool = False
    # Modules whose task families a run's checkpoint may name (``env._target_``), besides the
    # package's own: a checkpoint from elsewhere makes the report import nothing else.
    modules: list[str] = field(default_factory=list)
    device: str = "cpu"
    progress: bool = True

    def check(self) -> None:
        require(Path(self.dir).is_dir(), "dir", self.dir, "no such directory")
        self.eval.check()
        check_device(self.device)


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent): the root schemas, and each group
    schema and its subclasses as ``base_<name>`` (``base_env`` and ``base_algorithm`` for the
    bases, used by families defined outside the package)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(name="base_evaluate", node=EvaluateConfig)
    for group, root in (("env", EnvConfig), ("algorithm", AlgorithmConfig)):
        cs.store(group=group, name=f"base_{group}", node=root)
        for schema in _subclasses(root):
            if schema.name != MISSING:
                cs.store(group=group, name=f"base_{schema.name}", node=schema)
    cs.store(group="inner", name="base_inner", node=InnerConfig)
    cs.store(group="baseline", name="base_baseline", node=BaselineConfig)


register_configs()


# --------------------------------------------------------------------------- conversions
def to_config(cfg: DictConfig | Config, check: bool = True) -> Config:
    """Turn a composed DictConfig (with or without its ``hydra`` node) into a Config (or the
    EvaluateConfig of ``conf/evaluate.yaml``), checked unless ``check`` is false (the Experiment
    checks what it is given)."""
    if isinstance(cfg, DictConfig):
        if "hydra" in cfg:
            cfg = copy.deepcopy(cfg)
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
        cfg = OmegaConf.to_object(cfg)
    if check:
        cfg.check()
    return cfg


def flatten_config(cfg) -> dict[str, object]:
    """Dotted keys -> values of a (structured) config, lists kept as strings."""
    container = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
    flat: dict[str, object] = {}

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            else:
                flat[name] = str(value) if isinstance(value, list) or value is None else value

    walk(container, "")
    return flat


def config_to_yaml(cfg: Config) -> str:
    """The YAML a checkpoint stores (``config_from_yaml`` reads it back)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
