"""Meta-train from the command line: ``python -m maml_hydra.train [overrides]``."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from maml_hydra import hydra_glue
from maml_hydra.config import ConfigError, to_config
from maml_hydra.rundir import continues

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Meta-train one run; return its objective, the held-out return after the run's own
    adaptation (``evaluator.objective_step``), which ``hydra/sweeper=optuna`` maximises."""
    from maml_hydra.checkpoint import CheckpointError  # torch: only once the config composed
    from maml_hydra.experiment import DivergenceError, Experiment
    from maml_hydra.tasks.meta_world import MetaWorldError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = to_config(cfg, check=False)  # checked once, below
        if config.resume is None and continues(None, run_dir):
            # A run directory that already holds a checkpoint is continued, never overwritten:
            # this is how a requeued SLURM job picks up where it was preempted.
            log.info("continuing %s from its checkpoint", run_dir)
            config = replace(config, resume=str(run_dir))
        # checked once: by the callback before Hydra wrote anything, or, in a sweep, here (the
        # callback saw the sweep's base config, not each job's values)
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        experiment = Experiment(config, run_dir, check=multirun)
        try:
            return experiment.train()["objective"]
        finally:
            experiment.close()  # Meta-World's worker processes end with the run
    except (ConfigError, CheckpointError, DivergenceError, MetaWorldError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    hydra_glue.run(main)
