"""A run directory's rules, in one place and without torch (a config error still answers before
torch is imported): where its checkpoint lives, when a run continues it, and the default
directory of a new run (``conf/config.yaml``'s ``hydra.run.dir`` and ``Experiment`` alike)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

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


# conf/config.yaml: ``${or_default:${resume},${run_dir:...}}``: a resumed run continues in its
# own directory, a new one gets the default (cached: one directory per composed config).
if not OmegaConf.has_resolver("or_default"):
    OmegaConf.register_new_resolver(
        "or_default", lambda value, default: value if value else default
    )
if not OmegaConf.has_resolver("run_dir"):
    OmegaConf.register_new_resolver("run_dir", default_run_dir, use_cache=True)
