"""The evaluation report from the command line:
``python -m maml_hydra.evaluate <run or sweep dir> [overrides]``. Every run is adapted on the same
held-out tasks and ``<dir>/eval/`` gets the report (``maml_hydra.report``). The settings are
checked (``conf/evaluate.yaml``'s callback) before Hydra writes anything or torch is imported."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from maml_hydra import hydra_glue
from maml_hydra.config import ConfigError, EvaluateConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def _main(cfg: DictConfig) -> None:
    try:
        eval_cfg: EvaluateConfig = OmegaConf.to_object(cfg)  # checked by ValidateOnStart
        from maml_hydra.checkpoint import CheckpointError  # torch: only for a valid config
        from maml_hydra.report import EvaluationError, make_report
        from maml_hydra.tasks.meta_world import MetaWorldError

        try:
            results = make_report(eval_cfg)
        except (EvaluationError, CheckpointError, MetaWorldError) as err:
            sys.exit(f"error: {err}")
    except ConfigError as err:
        sys.exit(f"error: {err}")
    out = Path(eval_cfg.dir) / "eval"
    print((out / "summary.md").read_text())
    print(
        f"plot: {out / 'adaptation.png'}\n"
        f"results: {out / 'results.json'} ({len(results['runs'])} runs)"
    )


def main() -> None:
    """Accept the directory as a plain first argument as well as ``dir=...``."""
    args = [a if "=" in a or a.startswith("-") else f"dir={a}" for a in sys.argv[1:]]
    hydra_glue.run(_main, args)


if __name__ == "__main__":
    main()
