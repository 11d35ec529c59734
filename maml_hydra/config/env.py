"""The ``env`` group: task families' schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from maml_hydra.config.choices import Benchmark, Dynamics, Physics
from maml_hydra.config.rules import Root, at_least, finite, is_finite, positive, require


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

    def check(self, cfg: Root) -> None:
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

    def check(self, cfg: Root) -> None:
        super().check(cfg)
        finite("env.goal_low", self.goal_low)
        require(
            is_finite(self.goal_high) and self.goal_low < self.goal_high,
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

    def check(self, cfg: Root) -> None:
        super().check(cfg)
        rllab = Dynamics(self.dynamics) is Dynamics.rllab
        if Physics(self.physics) is Physics.warp:
            require(
                not rllab,
                "env.physics",
                Physics.warp.value,
                "env.dynamics=rllab reads contact forces and centre-of-mass velocities through "
                "MuJoCo C's sensors; MuJoCo Warp runs gymnasium dynamics only",
            )  # whether Warp is installed: maml_hydra.runtime
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
            is_finite(self.goal_high) and self.goal_low <= self.goal_high,
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

    def check(self, cfg: Root) -> None:
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

    def check(self, cfg: Root) -> None:
        super().check(cfg)
        self.check_goals()


@dataclass
class HalfCheetahDirectionConfig(LocomotionConfig):
    """MuJoCo HalfCheetah forward/backward (MAML paper Table 5): forward reward d v_x."""

    _target_: str = "maml_hydra.tasks.locomotion.HalfCheetahDirection"
    name: str = "halfcheetah_dir"
    ctrl_cost: float = 0.5e-1
    survive_bonus: float = 0.0


@dataclass
class MetaWorldConfig(EnvConfig):
    """Meta-World v3 (metaworld 3.1.1), stepped through its own package in ``workers`` processes
    of its own interpreter (``make metaworld``; maml_hydra/tasks/meta_world.py). Training
    samples the benchmark's training tasks, every meta-iteration; the held-out evaluation uses
    its test tasks only (for ML10, the 5 held-out environments). The oracle sees the goal, which
    the ML benchmarks hide."""

    _target_: str = "maml_hydra.tasks.meta_world.MetaWorld"
    name: str = "metaworld"
    horizon: int = 500  # Meta-World's max_path_length; an env refuses a step past it
    benchmark: Benchmark = Benchmark.ML1
    task: str | None = "reach-v3"  # ML1's environment; null for ML10
    benchmark_seed: int = 0  # the seed of the benchmark's goals (metaworld.ML1(..., seed=))
    workers: int = 2  # worker processes stepping the batch's rows
    python: str | None = None  # Meta-World's interpreter; null = .venv-metaworld/bin/python
    # Meta-World's own evaluation (metaworld.evaluation.metalearning_evaluation) of the final
    # policy, beside the held-out report; how it runs: maml_hydra.tasks.meta_world's
    # metalearning_evaluation. protocol_goals test tasks per class (40) dealt over
    # protocol_envs envs (20), and protocol_rounds null = every dealt goal once (classes x
    # protocol_goals / protocol_envs rounds) are metaworld-algorithms' evaluation settings; the
    # 10 adaptation and 3 scored episodes are Meta-World's defaults; protocol_rounds=0 skips it.
    protocol_rounds: int | None = None
    protocol_goals: int = 40
    protocol_envs: int = 20
    protocol_adaptation_episodes: int = 10
    protocol_evaluation_episodes: int = 3

    @property
    def test_classes(self) -> int:
        """How many environments the benchmark holds out: 1 for ML1, 5 for ML10."""
        return 1 if Benchmark(self.benchmark) is Benchmark.ML1 else 5

    def protocol_round_count(self) -> int:
        """The rounds of Meta-World's evaluation that run: ``protocol_rounds``, or with null
        every dealt goal once."""
        if self.protocol_rounds is not None:
            return self.protocol_rounds
        return self.test_classes * self.protocol_goals // self.protocol_envs

    def check(self, cfg: Root) -> None:
        super().check(cfg)
        at_least("env.workers", self.workers, 1)
        require(self.horizon <= 500, "env.horizon", self.horizon, "must be <= 500 (Meta-World's)")
        if self.protocol_rounds is not None:
            at_least("env.protocol_rounds", self.protocol_rounds, 0)
        at_least("env.protocol_adaptation_episodes", self.protocol_adaptation_episodes, 2)
        at_least("env.protocol_evaluation_episodes", self.protocol_evaluation_episodes, 1)
        classes = self.test_classes
        per_class = self.protocol_envs // classes
        rule = f"must be a positive multiple of the {classes} test class(es)"
        fits = self.protocol_envs % classes == 0 and per_class >= 1
        require(fits, "env.protocol_envs", self.protocol_envs, rule)
        rule = f"must be a multiple of a class's {per_class} env(s), at most its 50 test tasks"
        dealt = self.protocol_goals % max(per_class, 1) == 0 and 0 < self.protocol_goals <= 50
        require(dealt, "env.protocol_goals", self.protocol_goals, rule)
        scored = self.protocol_evaluation_episodes
        rule = (
            f"a class runs {per_class} env(s) x env.protocol_adaptation_episodes="
            f"{self.protocol_adaptation_episodes} scored episodes, fewer than this"
        )
        enough = per_class * self.protocol_adaptation_episodes >= scored
        require(enough, "env.protocol_evaluation_episodes", scored, rule)
        if cfg.eval.tasks is not None:  # indices into the test split: 50 (ML1) or 5 x 50 (ML10)
            count = 50 * self.test_classes
            for task in cfg.eval.tasks:
                value = task[0] if len(task) == 1 else None
                fits = value is not None and float(value).is_integer() and 0 <= value < count
                rule = f"an env=metaworld task is one index into the {count} test tasks"
                require(fits, "eval.tasks", task, rule)
        sampling = getattr(cfg.train.sampling, "value", cfg.train.sampling)
        rule = "env=metaworld samples whole episodes, one per row: train.sampling=episodes"
        require(sampling == "episodes", "train.sampling", sampling, rule)
        if Benchmark(self.benchmark) is Benchmark.ML1:
            require(
                bool(self.task),
                "env.task",
                self.task,
                "env.benchmark=ML1 needs a task, e.g. reach-v3",
            )
        else:
            rule = f"env.benchmark={Benchmark(self.benchmark).value} brings its tasks: set it null"
            require(self.task is None, "env.task", self.task, rule)
