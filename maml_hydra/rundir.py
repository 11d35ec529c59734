"""A run directory's rules, in one place and without torch (a config error still answers before
torch is imported): where its checkpoint lives, when a run continues it, and the default
directory of a new run (``conf/config.yaml``'s ``hydra.run.dir``, through
``hydra_glue``'s resolver, and ``Experiment`` alike)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

CHECKPOINT = Path("checkpoints") / "last.pt"


def checkpoint_path(run_dir: str | Path) -> Path:
    """The checkpoint a run writes and resumes from: ``<run_dir>/checkpoints/last.pt``."""
    return Path(run_dir) / CHECKPOINT


def continues(resume: str | None, run_dir: str | Path) -> bool:
    """Whether a run into ``run_dir`` continues a checkpoint rather than starting: ``resume``
    names it, or the directory already holds one (a requeued SLURM job, or the same
    ``hydra.run.dir`` again). A run directory with a checkpoint is never started over."""
    return resume is not None or checkpoint_path(run_dir).is_file()


def default_run_dir(env: str, baseline: str, algorithm: str, seed: int) -> str:
    """``outputs/<date>/<time>_<env>_<baseline>_<algorithm>_seed<seed>`` at the current time."""
    now = datetime.now()
    return f"outputs/{now:%Y-%m-%d}/{now:%H-%M-%S}_{env}_{baseline}_{algorithm}_seed{seed}"
