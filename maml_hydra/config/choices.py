"""Choice lists: Enums, so that Hydra refuses a value outside them while composing, naming the
key."""

from __future__ import annotations

from enum import Enum


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


class LinearBaseline(str, Enum):
    """Over which steps a training batch's linear feature baseline is fitted and its advantages
    standardised (``TrainConfig.linear_baseline``).

    per_task: each task's own steps (the MAML paper's code for MAML's batches, and the only
    choice for a variant that adapts: its inner step sees one task). batch: all the steps of the
    batch at once, one fit and one standardisation (rllab's ``process_samples`` on the whole
    batch, as the paper's code trained its pretrained and oracle policies)."""

    per_task = "per_task"
    batch = "batch"


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


class Benchmark(str, Enum):
    """Meta-World's meta-learning benchmarks (``env.benchmark``; maml_hydra/tasks/meta_world.py).

    ML1: one environment (``env.task``, e.g. reach-v3), 50 training and 50 test goals.
    ML10: 10 training environments (50 tasks each) and 5 held-out test environments."""

    ML1 = "ML1"
    ML10 = "ML10"
