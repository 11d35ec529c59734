"""Typed configuration: one dataclass schema per Hydra config group, and their validation.

YAML files under ``conf/`` only choose values; every key is declared (and documented) here.
Each YAML option binds to its schema explicitly with ``defaults: [base_<group>, _self_]``.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from hydra.utils import get_class
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict, read_write


class ConfigError(ValueError):
    """A configuration value that is well-typed but not allowed; the message names the key."""


# --------------------------------------------------------------------------------------- env
@dataclass
class EnvConfig:
    """Common keys of every task family (``env`` group)."""

    _target_: str = MISSING  # the task-family class, an EnvBase subclass (see maml_hydra.tasks)
    name: str = MISSING  # short name used in run directories
    horizon: int = 100  # steps per episode
    oracle: bool = False  # append the task parameters to the observation
    normalize_obs: bool = False  # running mean/variance normalisation, saved in checkpoints
    params: dict[str, Any] = field(default_factory=dict)  # settings of a user-defined family


@dataclass
class NavigationConfig(EnvConfig):
    """2D point navigation, MAML paper sec. 5.3 (original rllab ``PointEnvRandGoal``)."""

    _target_: str = "maml_hydra.tasks.navigation.Navigation2D"
    name: str = "navigation"
    horizon: int = 100
    goal_low: float = -0.5  # goals are uniform in [goal_low, goal_high]^2
    goal_high: float = 0.5
    action_bound: float = 0.1  # moves are clipped to [-action_bound, action_bound]^2
    # The policy acts in [-1, 1]^2, scaled by action_bound before clipping (rllab's ``normalize``
    # wrapper in the original code); false: the action is the move itself.
    normalized_actions: bool = True
    goal_tolerance: float = 0.01  # episode ends when |dx| and |dy| are both below this


@dataclass
class LocomotionConfig(EnvConfig):
    """Common keys of the batched MuJoCo locomotion families (maml_hydra.tasks.locomotion):
    reward = forward(v_x, task) - ctrl_cost |a|^2 + survive_bonus, never terminated early."""

    horizon: int = 200
    normalize_obs: bool = True
    ctrl_cost: float = 0.5e-2
    survive_bonus: float = 0.05
    frame_skip: int = 5  # physics steps per env step (dt = 0.05 s on both models)
    reset_noise: float = 0.1  # gymnasium's reset_noise_scale
    threads: int = 2  # mujoco.rollout worker threads


@dataclass
class AntVelocityConfig(LocomotionConfig):
    """MuJoCo Ant target velocity (MAML paper sec. 5.3), on gymnasium's Ant-v5 model."""

    _target_: str = "maml_hydra.tasks.locomotion.AntVelocity"
    name: str = "ant"
    goal_low: float = 0.0  # goal velocities uniform in [goal_low, goal_high]
    goal_high: float = 3.0


@dataclass
class AntDirectionConfig(LocomotionConfig):
    """MuJoCo Ant forward/backward: direction d in {-1, +1}, forward reward d v_x."""

    _target_: str = "maml_hydra.tasks.locomotion.AntDirection"
    name: str = "ant_dir"


@dataclass
class HalfCheetahVelocityConfig(LocomotionConfig):
    """MuJoCo HalfCheetah target velocity (MAML paper sec. 5.3), gymnasium's HalfCheetah-v5
    model; control cost 0.5e-1 |a|^2 and no survive bonus, as in the original code."""

    _target_: str = "maml_hydra.tasks.locomotion.HalfCheetahVelocity"
    name: str = "halfcheetah_vel"
    ctrl_cost: float = 0.5e-1
    survive_bonus: float = 0.0
    goal_low: float = 0.0
    goal_high: float = 2.0


@dataclass
class HalfCheetahDirectionConfig(LocomotionConfig):
    """MuJoCo HalfCheetah forward/backward (MAML paper Table 5): forward reward d v_x."""

    _target_: str = "maml_hydra.tasks.locomotion.HalfCheetahDirection"
    name: str = "halfcheetah_dir"
    ctrl_cost: float = 0.5e-1
    survive_bonus: float = 0.0


# --------------------------------------------------------------------------------- algorithm
@dataclass
class AlgorithmConfig:
    """Common keys of every meta-optimizer (``algorithm`` group)."""

    _target_: str = MISSING  # the meta-optimizer class (see maml_hydra.meta_optimizers)
    name: str = MISSING


@dataclass
class TRPOConfig(AlgorithmConfig):
    """TRPO (Schulman et al. 2015) on the MAML objective, as in the MAML paper."""

    _target_: str = "maml_hydra.meta_optimizers.TRPO"
    name: str = "trpo"
    max_kl: float = 0.01  # trust region: mean KL(old || new) on query data
    cg_iters: int = 10  # conjugate-gradient iterations for the natural-gradient direction
    cg_damping: float = 1e-5  # added to the Fisher diagonal (rllab's reg_coeff)
    ls_steps: int = 15  # backtracking line-search candidates
    ls_backtrack: float = 0.8  # step shrink factor per candidate
    # Fraction of the meta-batch's tasks whose KL defines the Fisher-vector products of CG;
    # 1.0 = all (exact, the paper). Below 1, a fresh random subset every iteration, each task's
    # adaptation still exact (rllab's subsample_factor, by task); the line search keeps checking
    # the KL on every task.
    fvp_task_fraction: float = 1.0
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
    hvp: str = "gauss_newton"  # one of HVPS
    fd_eps: float = 1.0


@dataclass
class PPOConfig(AlgorithmConfig):
    """MAML-PPO: the clipped surrogate (Schulman et al. 2017) on the post-adaptation policies,
    the adaptation recomputed from the support data at every epoch, Adam on the meta-parameters."""

    _target_: str = "maml_hydra.meta_optimizers.PPO"
    name: str = "ppo"
    lr: float = 1e-3  # Adam step size (docs/RESULTS.md: 3e-4 learned too slowly on navigation)
    clip_eps: float = 0.2  # ratio clipped to [1 - clip_eps, 1 + clip_eps]
    epochs: int = 5  # passes over the meta-batch per meta-iteration
    num_minibatches: int = 1  # minibatches of tasks per epoch
    entropy_coef: float = 0.0  # entropy bonus weight
    max_grad_norm: float | None = 0.5  # clip the meta-gradient norm; null = no clipping
    target_kl: float | None = None  # stop the epochs once mean KL(old || new) exceeds it


# ------------------------------------------------------------------------------------- inner
@dataclass
class InnerConfig:
    """The inner (adaptation) update (``inner`` group)."""

    name: str = "vpg"
    num_steps: int = 1  # gradient steps per task, each on fresh support data; 0 = no adaptation
    lr: float = 0.1  # inner step size
    first_order: bool = False  # stop gradients through the inner gradient (FOMAML)
    learn_lr: bool = False  # Meta-SGD: a learned step size per policy parameter, initialised to lr


# ---------------------------------------------------------------------------------- baseline
@dataclass
class BaselineConfig:
    """Which method of the MAML paper's comparison is trained (``baseline`` group). Each option
    sets what it needs here; the Experiment applies it, so no other override is required."""

    name: str = "maml"
    meta_train: bool = True  # adapt inside training (MAML); false: train one policy on all tasks
    oracle: bool = False  # the task parameters are appended to the observation
    train: bool = True  # false: no training at all, evaluate the initial policy (random init)
    adapt_at_eval: bool = True  # false: evaluated without gradient steps (the oracle)


# ---------------------------------------------------------------------------- plain sections
@dataclass
class PolicyConfig:
    """Gaussian MLP policy with a state-independent log standard deviation."""

    hidden_sizes: list[int] = field(default_factory=lambda: [100, 100])
    activation: str = "relu"  # one of ACTIVATIONS
    init_log_std: float = 0.0  # rllab's init_std=1
    # Weight initialisation, one of INITS. torch: nn.Linear's default (uniform with bound
    # 1/sqrt(fan_in), biases too). xavier: Glorot-uniform weights, zero biases (the MAML
    # paper's code).
    init: str = "torch"


@dataclass
class TrainConfig:
    """The meta-training loop."""

    iterations: int = 100  # meta-iterations (one meta-optimizer step each)
    meta_batch_size: int = 20  # tasks per meta-iteration, resampled every iteration
    episodes_per_task: int = 20  # episodes per task for each support and query batch
    checkpoint_every: int = 10  # iterations between checkpoints (one is always written at the end)
    gamma: float = 0.99  # discount for every advantage, inner and outer
    gae_lambda: float = 1.0  # GAE lambda on the linear feature baseline; 1.0 = Monte Carlo
    eval_every: int = 0  # evaluate on held-out tasks every N iterations; 0 = only at the end
    # How a batch is sampled, one of SAMPLINGS. episodes: episodes_per_task episodes per task
    # (training and evaluation). steps: a budget of episodes_per_task * horizon env steps per
    # task, its episodes_per_task rows stepped at once, an episode that ends early restarting at
    # once, returns averaged over the completed episodes (rllab's samplers, as in the MAML
    # paper's code); evaluation the same with eval.episodes_per_task. sequential: the paper's
    # training sampler exactly, one row per task running its episodes back to back until the
    # tasks together have meta_batch_size * episodes_per_task * horizon steps; evaluation as
    # with steps (the paper's evaluation stepped 40 environments per goal).
    sampling: str = "episodes"


@dataclass
class EvalConfig:
    """Adaptation on held-out tasks (MAML paper: 40 tasks, 40 episodes, 0.1 then 0.05)."""

    num_tasks: int = 40
    episodes_per_task: int = 40
    num_steps: int = 3  # returns are reported after 0..num_steps gradient steps
    lrs: list[float] = field(default_factory=lambda: [0.1, 0.05])  # step k uses lrs[min(k, -1)]
    seed: int = 1234  # held-out tasks come from their own stream, the same for every run
    # or explicit held-out tasks, num_tasks rows of the family's task parameters (a goal [x, y]
    # for navigation); the actions' noise still comes from seed
    tasks: list[list[float]] | None = None


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
    seed: int = 0
    device: str = "cpu"  # cpu or cuda
    resume: str | None = None  # a run directory to continue from its last checkpoint
    progress: bool = True  # show a progress bar


@dataclass
class EvaluateConfig:
    """``python -m maml_hydra.evaluate <run or sweep dir>``: adapt every trained run on the same
    held-out tasks and write ``<dir>/eval/``."""

    dir: str = MISSING  # a run directory or a sweep directory holding runs
    eval: EvalConfig = field(default_factory=EvalConfig)  # held-out tasks and adaptation steps
    include_random: bool = True  # add a random-init variant from the MAML runs' seeds if absent
    device: str = "cpu"
    progress: bool = True


ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "silu")
INITS = ("torch", "xavier")
SAMPLINGS = ("episodes", "steps", "sequential")
HVPS = ("gauss_newton", "finite_difference")


def register_configs() -> None:
    """Register every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(name="base_evaluate", node=EvaluateConfig)
    cs.store(group="env", name="base_env", node=EnvConfig)  # for families defined outside
    cs.store(group="env", name="base_navigation", node=NavigationConfig)
    cs.store(group="env", name="base_ant", node=AntVelocityConfig)
    cs.store(group="env", name="base_ant_dir", node=AntDirectionConfig)
    cs.store(group="env", name="base_halfcheetah_vel", node=HalfCheetahVelocityConfig)
    cs.store(group="env", name="base_halfcheetah_dir", node=HalfCheetahDirectionConfig)
    cs.store(group="algorithm", name="base_trpo", node=TRPOConfig)
    cs.store(group="algorithm", name="base_ppo", node=PPOConfig)
    cs.store(group="inner", name="base_inner", node=InnerConfig)
    cs.store(group="baseline", name="base_baseline", node=BaselineConfig)


register_configs()

# ``${or_default:${resume},outputs/...}``: a resumed run continues in its own directory.
if not OmegaConf.has_resolver("or_default"):
    OmegaConf.register_new_resolver(
        "or_default", lambda value, default: value if value else default
    )


# ------------------------------------------------------------------------------- validation
def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _short(value: list) -> str:
    """A list as one short line for an error message."""
    text = str([list(v) for v in value])
    return text if len(text) <= 60 else f"{text[:57]}..."


def _check_family(target: str) -> None:
    from maml_hydra.tasks.base import TaskFamily

    try:
        family = get_class(target)
    except Exception:
        raise ConfigError(
            f"env._target_={target!r} is not allowed: it does not import "
            "(is its module on PYTHONPATH?)"
        ) from None
    _require(
        isinstance(family, type) and issubclass(family, TaskFamily),
        "env._target_",
        target,
        "must name a maml_hydra.tasks.TaskFamily subclass",
    )


def validate(cfg: Config) -> None:
    """Check cross-field and range constraints; raise ConfigError naming the key on the first."""
    r = _require
    r(cfg.device in ("cpu", "cuda"), "device", cfg.device, "must be cpu or cuda")
    if cfg.device == "cuda":
        r(torch.cuda.is_available(), "device", cfg.device, "no CUDA GPU is visible")
    r(cfg.env.horizon >= 1, "env.horizon", cfg.env.horizon, "must be >= 1")
    _check_family(cfg.env._target_)
    r(cfg.inner.num_steps >= 0, "inner.num_steps", cfg.inner.num_steps, "must be >= 0")
    r(cfg.inner.lr > 0, "inner.lr", cfg.inner.lr, "must be > 0")
    t = cfg.train
    r(t.iterations >= 1, "train.iterations", t.iterations, "must be >= 1")
    r(t.meta_batch_size >= 1, "train.meta_batch_size", t.meta_batch_size, "must be >= 1")
    r(t.episodes_per_task >= 2, "train.episodes_per_task", t.episodes_per_task, "must be >= 2")
    r(t.checkpoint_every >= 1, "train.checkpoint_every", t.checkpoint_every, "must be >= 1")
    r(0 < t.gamma <= 1, "train.gamma", t.gamma, "must be in (0, 1]")
    r(0 <= t.gae_lambda <= 1, "train.gae_lambda", t.gae_lambda, "must be in [0, 1]")
    r(t.eval_every >= 0, "train.eval_every", t.eval_every, "must be >= 0")
    r(
        t.sampling in SAMPLINGS,
        "train.sampling",
        t.sampling,
        f"must be one of {', '.join(SAMPLINGS)}",
    )
    if t.sampling != "episodes":
        r(
            get_class(cfg.env._target_).can_restart(),
            "train.sampling",
            t.sampling,
            f"needs {cfg.env._target_} to restart episodes that end early (it has no _restart)",
        )
    p = cfg.policy
    r(len(p.hidden_sizes) >= 1, "policy.hidden_sizes", list(p.hidden_sizes), "must be non-empty")
    r(
        all(h >= 1 for h in p.hidden_sizes),
        "policy.hidden_sizes",
        list(p.hidden_sizes),
        "every size must be >= 1",
    )
    r(
        p.activation in ACTIVATIONS,
        "policy.activation",
        p.activation,
        f"must be one of {', '.join(ACTIVATIONS)}",
    )
    r(p.init in INITS, "policy.init", p.init, f"must be one of {', '.join(INITS)}")
    e = cfg.eval
    r(e.num_tasks >= 1, "eval.num_tasks", e.num_tasks, "must be >= 1")
    r(e.episodes_per_task >= 2, "eval.episodes_per_task", e.episodes_per_task, "must be >= 2")
    r(e.num_steps >= 0, "eval.num_steps", e.num_steps, "must be >= 0")
    if e.tasks is not None:
        task_dim = get_class(cfg.env._target_).task_dim
        r(
            len(e.tasks) == e.num_tasks and all(len(task) == task_dim for task in e.tasks),
            "eval.tasks",
            _short(e.tasks),
            f"must be eval.num_tasks={e.num_tasks} rows of {task_dim} numbers",
        )
    r(
        len(e.lrs) >= 1 and all(lr > 0 for lr in e.lrs),
        "eval.lrs",
        list(e.lrs),
        "must be a non-empty list of positive step sizes",
    )
    a = cfg.algorithm
    if isinstance(a, TRPOConfig):
        r(a.max_kl > 0, "algorithm.max_kl", a.max_kl, "must be > 0")
        r(a.cg_iters >= 1, "algorithm.cg_iters", a.cg_iters, "must be >= 1")
        r(a.cg_damping >= 0, "algorithm.cg_damping", a.cg_damping, "must be >= 0")
        r(
            0 < a.fvp_task_fraction <= 1,
            "algorithm.fvp_task_fraction",
            a.fvp_task_fraction,
            "must be in (0, 1]",
        )
        r(
            a.max_kl_pre_update is None or a.max_kl_pre_update > 0,
            "algorithm.max_kl_pre_update",
            a.max_kl_pre_update,
            "must be null or > 0",
        )
        r(a.hvp in HVPS, "algorithm.hvp", a.hvp, f"must be one of {', '.join(HVPS)}")
        r(a.fd_eps > 0, "algorithm.fd_eps", a.fd_eps, "must be > 0")
        r(a.ls_steps >= 1, "algorithm.ls_steps", a.ls_steps, "must be >= 1")
        r(0 < a.ls_backtrack < 1, "algorithm.ls_backtrack", a.ls_backtrack, "must be in (0, 1)")
    if isinstance(a, PPOConfig):
        r(a.lr > 0, "algorithm.lr", a.lr, "must be > 0")
        r(0 < a.clip_eps < 1, "algorithm.clip_eps", a.clip_eps, "must be in (0, 1)")
        r(a.epochs >= 1, "algorithm.epochs", a.epochs, "must be >= 1")
        r(
            1 <= a.num_minibatches <= t.meta_batch_size,
            "algorithm.num_minibatches",
            a.num_minibatches,
            f"must be in [1, train.meta_batch_size={t.meta_batch_size}]",
        )
        r(a.entropy_coef >= 0, "algorithm.entropy_coef", a.entropy_coef, "must be >= 0")
        r(
            a.max_grad_norm is None or a.max_grad_norm > 0,
            "algorithm.max_grad_norm",
            a.max_grad_norm,
            "must be > 0 or null",
        )
        r(
            a.target_kl is None or a.target_kl > 0,
            "algorithm.target_kl",
            a.target_kl,
            "must be > 0 or null",
        )
    if isinstance(cfg.env, AntVelocityConfig | HalfCheetahVelocityConfig):
        r(
            cfg.env.goal_low <= cfg.env.goal_high,
            "env.goal_high",
            cfg.env.goal_high,
            f"must be >= env.goal_low={cfg.env.goal_low}",
        )
    if isinstance(cfg.env, LocomotionConfig):
        n = cfg.env
        r(n.frame_skip >= 1, "env.frame_skip", n.frame_skip, "must be >= 1")
        r(n.threads >= 1, "env.threads", n.threads, "must be >= 1")
        r(n.ctrl_cost >= 0, "env.ctrl_cost", n.ctrl_cost, "must be >= 0")
        r(n.reset_noise >= 0, "env.reset_noise", n.reset_noise, "must be >= 0")
    if isinstance(cfg.env, NavigationConfig):
        n = cfg.env
        r(
            n.goal_low < n.goal_high,
            "env.goal_high",
            n.goal_high,
            f"must be > env.goal_low={n.goal_low}",
        )
        r(n.action_bound > 0, "env.action_bound", n.action_bound, "must be > 0")
        r(n.goal_tolerance >= 0, "env.goal_tolerance", n.goal_tolerance, "must be >= 0")


def to_config(cfg: DictConfig | Config) -> Config:
    """Turn a composed DictConfig (with or without its ``hydra`` node) into a validated Config."""
    if isinstance(cfg, DictConfig):
        if "hydra" in cfg:
            cfg = copy.deepcopy(cfg)
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
        cfg = OmegaConf.to_object(cfg)
    validate(cfg)
    return cfg


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def config_from_yaml(text: str) -> Config:
    """A typed Config from YAML written by ``OmegaConf.to_yaml`` (as in a checkpoint). The
    ``env`` and ``algorithm`` schemas are the subclasses whose ``_target_`` the YAML names; an
    env family defined outside the package uses the base EnvConfig (its settings in params)."""
    raw = OmegaConf.create(text)
    typed = OmegaConf.structured(Config)
    for key, base in (("env", EnvConfig), ("algorithm", AlgorithmConfig)):
        target = raw[key]["_target_"]
        schema = next(
            (c for c in _subclasses(base) if getattr(c, "_target_", None) == target), None
        )
        if schema is None and base is EnvConfig:
            schema = EnvConfig
        if schema is None:
            raise ConfigError(
                f"{key}._target_={target!r} is not allowed: no {base.__name__} schema has it"
            )
        typed[key] = OmegaConf.structured(schema)
    return OmegaConf.to_object(OmegaConf.merge(typed, raw))


def validate_launcher(launcher: DictConfig) -> None:
    """Resource values of a submitit launcher (``hydra.launcher``), checked before submission.
    Unknown keys are already refused by the launcher's own schema."""
    positive = (
        "timeout_min",
        "nodes",
        "tasks_per_node",
        "cpus_per_task",
        "gpus_per_node",
        "mem_gb",
        "array_parallelism",
    )
    for key in positive:
        value = launcher.get(key)
        if value is not None:
            _require(value >= 1, f"hydra.launcher.{key}", value, "must be >= 1")
    for key in ("signal_delay_s", "max_num_timeout"):
        value = launcher.get(key)
        if value is not None:
            _require(value >= 0, f"hydra.launcher.{key}", value, "must be >= 0")


class ValidateOnStart(Callback):
    """Hydra callback: validate before Hydra creates any run directory.

    ``on_run_start``/``on_multirun_start`` fire before ``run_job`` makes the output folder, so a
    bad value leaves nothing behind. Swept values are validated again by each job.
    """

    def _check(self, config: DictConfig) -> None:
        try:
            to_config(config)
        except ConfigError as err:
            sys.exit(f"error: {err}")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)
        try:
            validate_launcher(config.hydra.launcher)
        except ConfigError as err:
            sys.exit(f"error: {err}")
