"""Typed configuration: one dataclass schema per Hydra config group, each checking its own keys.

YAML files under ``conf/`` only choose values that differ from these schemas: every key, its
default and its rule live here, once. Each YAML option binds to its schema explicitly with
``defaults: [base_<name>, _self_]``; ``register_configs`` stores every schema subclass under
that name, so a new family or meta-optimizer needs its schema, its module and its YAML.

One module per config group (``env``, ``algorithm``, ``inner``, ``baseline``), the plain
sections (``sections``), the root config (``root``), the choice lists (``choices``, Enums:
Hydra refuses a value outside them while composing, naming the key) and the rules they check
with (``rules``). The package imports neither torch nor any task family: a bad value on the
command line is refused at once. The rules that need a family's class take it as an argument
(``Config.check_family``; ``maml_hydra.tasks.check_config`` imports it).
"""

from maml_hydra.config.algorithm import AlgorithmConfig, PPOConfig, ProMPConfig, TRPOConfig
from maml_hydra.config.baseline import BaselineConfig
from maml_hydra.config.choices import (
    HVP,
    Activation,
    Benchmark,
    Dynamics,
    Estimator,
    Init,
    Physics,
    Sampling,
)
from maml_hydra.config.env import (
    AntDirectionConfig,
    AntVelocityConfig,
    EnvConfig,
    HalfCheetahDirectionConfig,
    HalfCheetahVelocityConfig,
    LocomotionConfig,
    MetaWorldConfig,
    NavigationConfig,
    VelocityTasks,
)
from maml_hydra.config.inner import InnerConfig
from maml_hydra.config.root import (
    Config,
    EvaluateConfig,
    _subclasses,
    config_to_yaml,
    flatten_config,
    register_configs,
    to_config,
)
from maml_hydra.config.rules import (
    ConfigError,
    at_least,
    finite,
    is_finite,
    positive,
    require,
    short,
    within,
)
from maml_hydra.config.sections import (
    DEVICES,
    EvalConfig,
    PolicyConfig,
    TrainConfig,
    check_device,
)

__all__ = [
    "DEVICES",
    "HVP",
    "Activation",
    "Benchmark",
    "AlgorithmConfig",
    "AntDirectionConfig",
    "AntVelocityConfig",
    "BaselineConfig",
    "Config",
    "ConfigError",
    "Dynamics",
    "EnvConfig",
    "Estimator",
    "EvalConfig",
    "EvaluateConfig",
    "HalfCheetahDirectionConfig",
    "HalfCheetahVelocityConfig",
    "Init",
    "InnerConfig",
    "LocomotionConfig",
    "MetaWorldConfig",
    "NavigationConfig",
    "PPOConfig",
    "Physics",
    "PolicyConfig",
    "ProMPConfig",
    "Sampling",
    "TRPOConfig",
    "TrainConfig",
    "VelocityTasks",
    "_subclasses",
    "at_least",
    "check_device",
    "config_to_yaml",
    "finite",
    "flatten_config",
    "is_finite",
    "positive",
    "register_configs",
    "require",
    "short",
    "to_config",
    "within",
]
