"""All of the Hydra glue, in one place: the command line's shared part, the resolvers
``conf/config.yaml`` uses, and the callback that checks a config, its launcher and sweeper, and
the run directory it will write to, before Hydra writes anything.

Every configuration mistake, Hydra's own or ours, ends as one line on stderr (``error: ...``)
and exit status 1, never a traceback. Nothing here imports torch until a config has passed its
checks (a config error answers before torch is imported)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

from maml_hydra.config import Config, ConfigError, at_least, require, to_config
from maml_hydra.rundir import default_run_dir
from maml_hydra.runtime import check_runtime

# ------------------------------------------------------------------------------ resolvers
# ``hydra.run.dir``: ``${or_default:${resume},${run_dir:...}}``: a resumed run continues in its
# own directory, a new one gets the default (cached: one directory per composed config).
# ``eval.lrs``: ``${half:${inner.lr}}``, the paper's halved later steps.
RESOLVERS = {
    "or_default": (lambda value, default: value if value else default, False),
    "run_dir": (default_run_dir, True),
    "half": (lambda value: float(value) / 2, False),
}
for _name, (_resolver, _cache) in RESOLVERS.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver, use_cache=_cache)


# --------------------------------------------------------------------------- command line
# Lines of Hydra's and OmegaConf's messages that only repeat the key or point elsewhere.
_NOISE = ("full_key:", "reference_type=", "object_type=", "Set the environment variable")


def one_line(err: BaseException) -> str:
    """Hydra's message for a composition error, with its cause, on one line: the key, what is
    wrong with it, and Hydra's suggestion (a close key, the options of a group) when it has one.
    Schema nodes (``base_*``) are left out of option lists."""
    parts: list[str] = []
    options: list[str] = []
    for e in (err, err.__cause__):
        if e is None or (parts and str(e) in parts):
            continue
        text = str(e).split("Config search path:")[0]
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(_NOISE):
                continue
            if line.startswith("Available options"):
                parts.append(line.rstrip(":") + ":")
            elif parts and parts[-1].endswith(":") and " " not in line:
                if not line.startswith("base_"):
                    options.append(line)
            elif line not in parts:
                parts.append(line)
    if options:
        parts[-1] += " " + ", ".join(options)
    return " ".join(p if p.endswith((".", ":", "?")) else p + "." for p in parts).rstrip(".")


def run(hydra_main: Callable[[], None], argv: list[str] | None = None) -> None:
    """Run a ``@hydra.main`` function with Hydra raising its errors to us (HYDRA_FULL_ERROR),
    and turn configuration errors into one line. ``+experiment=NAME`` is taken as
    ``experiment=NAME``: the group is in the defaults list, so that a baseline's keys hold over
    an experiment's."""
    sys.argv = [
        sys.argv[0],
        *(a[1:] if a.startswith("+experiment=") else a for a in (argv or sys.argv[1:])),
    ]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as err:
        sys.exit(f"error: {one_line(err)}")


# ------------------------------------------------------------- launcher, sweeper, callback
LAUNCHER_POSITIVE = (
    "timeout_min",
    "nodes",
    "tasks_per_node",
    "cpus_per_task",
    "gpus_per_node",
    "mem_gb",
    "array_parallelism",
)


def validate_launcher(launcher: DictConfig) -> None:
    """Resource values of a submitit launcher (``hydra.launcher``), checked before submission.
    Unknown keys are already refused by the launcher's own schema."""
    for key in LAUNCHER_POSITIVE:
        value = launcher.get(key)
        if value is not None:
            at_least(f"hydra.launcher.{key}", value, 1)
    for key in ("signal_delay_s", "max_num_timeout"):
        value = launcher.get(key)
        if value is not None:
            at_least(f"hydra.launcher.{key}", value, 0)
    delay, minutes = launcher.get("signal_delay_s"), launcher.get("timeout_min")
    if delay is not None and minutes is not None:
        # USR2 comes signal_delay_s before the time limit: at or past the start, it would
        # arrive before the job has done anything to checkpoint
        rule = f"must be < hydra.launcher.timeout_min * 60 = {minutes * 60}"
        require(delay < minutes * 60, "hydra.launcher.signal_delay_s", delay, rule)


def settle_sweeper(config: DictConfig) -> None:
    """An Optuna search (``hydra/sweeper=optuna``) maximises each run's returned objective, a
    held-out return (``evaluator.objective_step``). The plugin's own default direction
    minimises, and a config of the same name cannot change it (Hydra matches it to the plugin's
    schema), so an Optuna sweep that does not name a direction on the command line is set to
    maximise here, before the sweeper is built from this config (and its multirun.yaml records
    it): a config file's ``minimize`` cannot be told from the plugin's default. One that names
    another direction on the command line is refused."""
    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("OptunaSweeper"):
        return
    direction = sweeper.get("direction")
    name = getattr(direction, "name", str(direction))
    named = any(o.startswith("hydra.sweeper.direction=") for o in config.hydra.overrides.hydra)
    if name == "minimize" and not named:
        with read_write(sweeper):
            sweeper.direction = "maximize"
        return
    rule = "must be maximize: the objective each run returns is its held-out return"
    require(name == "maximize", "hydra.sweeper.direction", name, rule)


class ValidateOnStart(Callback):
    """Hydra callback: check the config, and the run directory it will write to, before Hydra
    creates or writes anything there.

    ``on_run_start``/``on_multirun_start`` fire before ``run_job`` makes the output folder and
    writes ``.hydra/`` and the log, so a refused command leaves the run directory as it was (or
    absent). In a sweep each job's Experiment checks its own values and claims its directory.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        cfg = _exit_on_error(lambda: to_config(config))
        _exit_on_error(lambda: check_runtime(cfg))
        if isinstance(cfg, Config):
            from maml_hydra.checkpoint import CheckpointError, prepare_run_dir

            try:
                prepare_run_dir(cfg, Path(str(config.hydra.run.dir)))
            except CheckpointError as err:
                sys.exit(f"error: {err}")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        cfg = _exit_on_error(lambda: to_config(config))
        _exit_on_error(lambda: check_runtime(cfg))
        _exit_on_error(lambda: validate_launcher(config.hydra.launcher))
        _exit_on_error(lambda: settle_sweeper(config))


def _exit_on_error(check: Callable[[], Any]) -> Any:
    try:
        return check()
    except ConfigError as err:
        sys.exit(f"error: {err}")
