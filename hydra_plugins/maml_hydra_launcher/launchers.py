"""Hydra launchers that make preemption safe: submitit's launchers, plus a checkpoint of the
running experiment when SLURM signals the job (USR2 before the time limit or on preemption).

submitit's signal handler calls the launcher's ``checkpoint`` and then requeues the job; the
requeued job runs the same Hydra job in the same run directory, finds ``checkpoints/last.pt``
there and continues (``maml_hydra.train``), ending with the parameters of an uninterrupted run.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher

log = logging.getLogger(__name__)


class _CheckpointOnSignal:
    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        # Imported here: Hydra imports every plugin module at start-up, and this one must not
        # bring torch into a command that only composes a config.
        from maml_hydra.experiment import save_running_experiment

        path = save_running_experiment()
        log.info("preempted: wrote %s before requeue", path)
        return super().checkpoint(*args, **kwargs)


class SlurmLauncher(_CheckpointOnSignal, submitit_launcher.SlurmLauncher):
    """``hydra/launcher=slurm``"""


class LocalLauncher(_CheckpointOnSignal, submitit_launcher.LocalLauncher):
    """``hydra/launcher=local``"""
