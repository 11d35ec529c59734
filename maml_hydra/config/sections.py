"""The plain sections of the root config: policy, train and eval, and the device."""

from __future__ import annotations

from dataclasses import dataclass, field

from maml_hydra.config.choices import Activation, Init, LinearBaseline, Sampling
from maml_hydra.config.rules import Root, at_least, finite, is_finite, require, short, within


@dataclass
class PolicyConfig:
    """Gaussian MLP policy with a state-independent log standard deviation."""

    hidden_sizes: list[int] = field(default_factory=lambda: [100, 100])  # the paper: 2x100
    activation: Activation = Activation.relu
    init_log_std: float = 0.0  # rllab's init_std=1
    init: Init = Init.torch
    # false: the std stays at exp(init_log_std), neither adapted nor meta-trained (a buffer)
    learn_std: bool = True

    def check(self, cfg: Root) -> None:
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
    # per_task or batch: the training batches' baseline fit and advantage standardisation (see
    # LinearBaseline; batch only for a variant that does not adapt in training, inner.num_steps
    # 0). Held-out evaluation always fits per task: each goal is its own problem.
    linear_baseline: LinearBaseline = LinearBaseline.per_task
    eval_every: int = 0  # evaluate on held-out tasks every N iterations; 0 = only at the end
    # a log line (stdout and the run's train.log) every N iterations and at the last: returns
    # before and after adaptation, KL, s/iteration, time left; 0 = none. Beside the progress
    # bar or without it (progress=false), for a log that is tailed (SLURM, nohup).
    log_every: int = 10
    sampling: Sampling = Sampling.episodes  # see Sampling

    def check(self, cfg: Root) -> None:
        at_least("train.iterations", self.iterations, 0)
        at_least("train.meta_batch_size", self.meta_batch_size, 1)
        # a per-task fit needs two episodes of a task; one baseline over the whole batch takes
        # one episode per task, as the paper's pretrained and oracle drew a goal at every reset
        pooled = self.linear_baseline == LinearBaseline.batch
        require(
            is_finite(self.episodes_per_task) and self.episodes_per_task >= (1 if pooled else 2),
            "train.episodes_per_task",
            self.episodes_per_task,
            "must be >= 1 with train.linear_baseline=batch, else >= 2 (one baseline per task)",
        )
        at_least("train.checkpoint_every", self.checkpoint_every, 1)
        within("train.gamma", self.gamma, 0, 1, low_open=True)
        within("train.gae_lambda", self.gae_lambda, 0, 1)
        require(
            self.linear_baseline != LinearBaseline.batch or cfg.inner.num_steps == 0,
            "train.linear_baseline",
            "batch",
            f"must be per_task where inner.num_steps > 0 (here {cfg.inner.num_steps}): a variant "
            "that adapts in training fits each task's baseline on that task's own steps",
        )
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

    def check(self, cfg: Root | None = None) -> None:
        at_least("eval.num_tasks", self.num_tasks, 1)
        at_least("eval.episodes_per_task", self.episodes_per_task, 2)
        at_least("eval.num_steps", self.num_steps, 0)
        lrs = list(self.lrs)
        ok = len(lrs) >= 1 and all(is_finite(lr) and lr > 0 for lr in lrs)
        require(ok, "eval.lrs", lrs, "must be a non-empty list of positive step sizes")
        if self.tasks is not None:
            ok = all(is_finite(x) for task in self.tasks for x in task)
            require(ok, "eval.tasks", short(self.tasks), "must hold finite numbers")

    def check_tasks(self, family: type) -> None:
        """Explicit held-out tasks must fit the family's task parameters."""
        if self.tasks is None:
            return
        rows, dim = self.num_tasks, family.task_dim
        ok = len(self.tasks) == rows and all(len(task) == dim for task in self.tasks)
        require(
            ok,
            "eval.tasks",
            short(self.tasks),
            f"must be eval.num_tasks={rows} rows of {dim} numbers",
        )


DEVICES = ("cpu", "cuda")


def check_device(device: str) -> None:
    """One of DEVICES (whether a GPU is visible is ``maml_hydra.runtime``'s rule: torch)."""
    require(device in DEVICES, "device", device, f"must be one of {', '.join(DEVICES)}")
