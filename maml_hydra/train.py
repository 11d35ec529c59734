"""Meta-train from the command line: ``python -m maml_hydra.train [overrides]``."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from maml_hydra.checkpoint import CheckpointError
from maml_hydra.config import ConfigError, to_config
from maml_hydra.experiment import Experiment


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        Experiment(to_config(cfg), HydraConfig.get().runtime.output_dir).train()
    except (ConfigError, CheckpointError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
