"""The root config (``Config``, and ``EvaluateConfig`` for the report), the ConfigStore and the
conversions between a composed DictConfig, a Config, flat keys and YAML."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict, read_write

from maml_hydra.config.algorithm import AlgorithmConfig
from maml_hydra.config.baseline import BaselineConfig
from maml_hydra.config.choices import Sampling
from maml_hydra.config.env import EnvConfig
from maml_hydra.config.inner import InnerConfig
from maml_hydra.config.rules import require
from maml_hydra.config.sections import EvalConfig, PolicyConfig, TrainConfig, check_device


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
    # Keep freed memory in the process for reuse (glibc's mallopt; maml_hydra/memory.py): the
    # learner's large temporaries then cost no page faults. Same numbers, less time (at the
    # paper's HalfCheetah preset 29.6 against 37.5 s per iteration) for the same peak resident
    # memory there (docs/RESULTS.md, 'The finite-difference product's activations kept ...').
    keep_freed_memory: bool = True

    def check(self) -> None:
        """Every section's own rules. Those that need the task family's class are
        ``check_family``'s (``maml_hydra.tasks.check_config`` runs both)."""
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

    def needs_family(self) -> bool:
        """Whether a rule needs the task family's class (and torch) imported: explicit held-out
        tasks, a sampling plan that restarts episodes, or a family defined outside the package
        (always imported, to check that it is one)."""
        builtin = any(
            getattr(c, "_target_", None) == self.env._target_ for c in _subclasses(EnvConfig)
        )
        return not builtin or self.eval.tasks is not None or self._restarts()

    def check_family(self, family: type) -> None:
        """The rules that need the task family's class ``family``."""
        self.eval.check_tasks(family)
        if self._restarts():
            require(
                family.can_restart(),
                "train.sampling",
                Sampling(self.train.sampling).value,
                f"needs {self.env._target_} to restart episodes that end early (it has no "
                "_restart)",
            )

    def _restarts(self) -> bool:
        return Sampling(self.train.sampling) is not Sampling.episodes


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
