"""Gain of one inner gradient step on a run's held-out tasks, for several step sizes.

    .venv/bin/python scripts/step_size_probe.py RUN_DIR --lrs 0.1 0.5 2.0 [--gae-lambda 0.9]
        [--tasks 20] [--episodes 20]

Loads RUN_DIR/checkpoints/last.pt (policy and observation statistics), adapts on the run's
held-out tasks (``eval.seed``) with one step of each size, and prints the return before and
after and the paired gain (after - before, mean ± standard error over tasks). Every step size
sees the same pre-update episodes. ``--gae-lambda`` changes only the inner step's advantages.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from maml_hydra.checkpoint import CheckpointError
from maml_hydra.config import ConfigError
from maml_hydra.evaluator import paired_gain
from maml_hydra.report import EvaluationError, evaluate_run, run_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0])
    parser.add_argument("--gae-lambda", type=float, default=None, help="default: the run's")
    parser.add_argument("--tasks", type=int, default=None, help="default: the run's eval")
    parser.add_argument("--episodes", type=int, default=None, help="default: the run's eval")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:
        cfg, state = run_config(args.run_dir)
        train = cfg.train
        if args.gae_lambda is not None:
            train = replace(train, gae_lambda=args.gae_lambda)
        base = replace(cfg.eval, num_steps=1)
        if args.tasks is not None:
            base = replace(base, num_tasks=args.tasks)
        if args.episodes is not None:
            base = replace(base, episodes_per_task=args.episodes)
        cfg = replace(cfg, train=train, device=args.device)
        for lr in args.lrs:  # every setting is checked before anything is printed
            replace(cfg, eval=replace(base, lrs=[lr])).check()
        print(
            f"{args.run_dir}: iteration {state['iteration']}, {base.num_tasks} held-out tasks x "
            f"{base.episodes_per_task} episodes, gae_lambda {cfg.train.gae_lambda}"
        )
        print("| step size | before | after one step | gain (± s.e. over tasks) |")
        print("|---|---|---|---|")
        for lr in args.lrs:
            eval_cfg = replace(base, lrs=[lr])
            returns = torch.tensor(
                evaluate_run(cfg, state, args.run_dir, eval_cfg, args.device)["returns"]
            )
            print(
                f"| {lr} | {returns[0].mean():.1f} | {returns[1].mean():.1f} | "
                f"{paired_gain(returns)} |",
                flush=True,
            )
    except (EvaluationError, CheckpointError, ConfigError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
