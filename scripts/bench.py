"""Seconds per MAML meta-iteration and their split, at the MAML paper's 2D-navigation settings
(20 tasks x 20 episodes x horizon 100, one inner step): TRPO with two policies, TRPO with the
paper's code's finite-difference Hessian-vector products, and PPO.

    .venv/bin/python scripts/bench.py [--iterations 5] [--warmup 1] [--device cpu]

Prints the median of each phase over the timed iterations and the ratio to the targets
(<= 2.0 s at 2x64 tanh with CG 10, <= 4.0 s at 2x100 ReLU) measured in this one run. For PPO
the meta-gradient column holds the whole update (all epochs), cg and line_search are 0.

    .venv/bin/python scripts/bench.py --env FAMILY [--fractions 1.0 0.2 0.1]

A MuJoCo family (ant, ant_dir, halfcheetah_vel, halfcheetah_dir) at the paper's batch (40 tasks
x 20 episodes x 200 steps): sampling throughput vs raw ``mujoco.rollout`` (target ratio >= 0.8),
then one meta-iteration per
``algorithm.fvp_task_fraction`` with the learner's share of it (target <= 20%).

    .venv/bin/python scripts/bench.py --at RUN_DIR

Meta-iterations from a trained run's checkpoint with ``train.sampling=episodes`` and ``steps``,
and the ratio of their medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maml_hydra.config import to_config  # noqa: E402
from maml_hydra.experiment import Experiment  # noqa: E402

SETTINGS = {
    "TRPO, 2x100 relu (paper)": (["policy.hidden_sizes=[100,100]", "policy.activation=relu"], 4.0),
    "TRPO, 2x64 tanh, CG 10": (
        ["policy.hidden_sizes=[64,64]", "policy.activation=tanh", "algorithm.cg_iters=10"],
        2.0,
    ),
    "TRPO, 2x100 relu, finite-difference HVP (reproduce_nav.sh)": (
        [
            "policy.hidden_sizes=[100,100]",
            "policy.activation=relu",
            "algorithm.hvp=finite_difference",
        ],
        4.0,  # the reproduction's product (scripts/reproduce_nav.sh): the same bar
    ),
    "PPO (5 epochs), 2x100 relu": (["algorithm=ppo", "policy.hidden_sizes=[100,100]"], None),
}
PHASES = ["sampling", "adaptation", "meta_gradient", "cg", "line_search", "iteration"]


def experiment(overrides: list[str]) -> Experiment:
    """An Experiment on conf/ with the overrides; meta_iteration writes nothing to its dir."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = to_config(compose("config", overrides=overrides))
    return Experiment(cfg, run_dir=ROOT / "outputs" / "bench")


def measure(overrides: list[str], iterations: int, warmup: int, device: str) -> dict[str, float]:
    exp = experiment([*overrides, f"device={device}", "progress=false"])
    for _ in range(warmup):
        exp.meta_iteration()
    runs = [exp.meta_iteration() for _ in range(iterations)]
    out = {p: statistics.median(r.get(f"time/{p}", 0.0) for r in runs) for p in PHASES}
    out["env_steps_per_second"] = statistics.median(r["time/env_steps_per_second"] for r in runs)
    return out


LEARNER = ["adaptation", "meta_gradient", "cg", "line_search"]
LOCOMOTION = ["ant", "ant_dir", "halfcheetah_vel", "halfcheetah_dir"]


def bench_locomotion(family: str, device: str, fractions: list[float]) -> None:
    """For a MuJoCo family (``env=<family>``): sampling throughput of the project (policy
    included) vs raw ``mujoco.rollout`` with 2 threads and zero actions on the same model, 40
    tasks x 20 episodes x 200 steps; then one whole meta-iteration per
    ``algorithm.fvp_task_fraction`` and the learner's share of it."""
    import mujoco
    import numpy as np
    from mujoco import rollout

    overrides = [
        f"env={family}",
        "train.meta_batch_size=40",
        "train.episodes_per_task=20",
        f"device={device}",
        "progress=false",
    ]
    exp = experiment(overrides)
    cfg, env, learner = exp.cfg, exp.env, exp.learner
    env.set_tasks(env.sample_tasks(40, exp.task_rng))
    params = learner.layout.unflatten(learner.parameters())
    steps = 40 * 20 * cfg.env.horizon
    start = time.perf_counter()
    learner.rollout(env, params, False, exp.action_rng, exp.plan)
    project = steps / (time.perf_counter() - start)

    model, n = env.model, env.num_envs
    runner = rollout.Rollout(nthread=2)
    scratch = [mujoco.MjData(model) for _ in range(2)]
    control = np.zeros((n, cfg.env.horizon * cfg.env.frame_skip, model.nu))
    start = time.perf_counter()
    runner.rollout(model, scratch, env.physics.state.copy(), control, nstep=control.shape[1])
    raw = steps / (time.perf_counter() - start)
    print(
        f"{family}, 40 tasks x 20 episodes x {cfg.env.horizon} steps, "
        f"frame_skip {cfg.env.frame_skip}:"
    )
    print(f"  project sampling (policy, 2 threads): {project:,.0f} env steps/s")
    print(f"  mujoco.rollout, 2 threads, zero actions: {raw:,.0f} env steps/s")
    print(f"  ratio: {project / raw:.2f} (target >= 0.8)\n")

    print("One MAML-TRPO meta-iteration (2x100 ReLU, CG 10), seconds:\n")
    header = "| fvp_task_fraction | sampling | " + " | ".join(LEARNER) + " | iteration |"
    print(header + " learner share (target <= 20%) |")
    print("|" + "---|" * (header.count("|")))
    for fraction in fractions:
        t = experiment([*overrides, f"algorithm.fvp_task_fraction={fraction}"]).meta_iteration()
        learner_s = sum(t.get(f"time/{p}", 0.0) for p in LEARNER)
        cells = " | ".join(f"{t.get(f'time/{p}', 0.0):.2f}" for p in LEARNER)
        print(
            f"| {fraction} | {t['time/sampling']:.2f} | {cells} | {t['time/iteration']:.2f} "
            f"| {learner_s / t['time/iteration']:.0%} |"
        )


def bench_at(run_dir: Path, iterations: int, warmup: int, device: str) -> None:
    """Meta-iterations from a run's checkpoint (its config and policy), once with
    ``train.sampling=episodes`` and once with ``steps``: a trained navigation policy reaches
    its goals, so ``steps`` samples more, shorter episodes."""
    from dataclasses import replace

    from maml_hydra.report import run_config

    cfg, state = run_config(run_dir)
    print(f"{run_dir}: iteration {state['iteration']}, device {device}")
    print(f"median over {iterations} meta-iterations after {warmup} warm-up\n")
    print("| train.sampling | " + " | ".join(PHASES) + " | env steps/s |")
    print("|" + "---|" * (len(PHASES) + 2))
    medians = {}
    for sampling in ("episodes", "steps"):
        train = replace(cfg.train, sampling=sampling)
        exp = Experiment(
            replace(cfg, train=train, device=device, progress=False, resume=None),
            run_dir=ROOT / "outputs" / "bench",
        )
        exp.load_weights(state)
        for _ in range(warmup):
            exp.meta_iteration()
        runs = [exp.meta_iteration() for _ in range(iterations)]
        t = {p: statistics.median(r.get(f"time/{p}", 0.0) for r in runs) for p in PHASES}
        rate = statistics.median(r["time/env_steps_per_second"] for r in runs)
        medians[sampling] = t["iteration"]
        print(f"| {sampling} | " + " | ".join(f"{t[p]:.3f}" for p in PHASES) + f" | {rate:,.0f} |")
    print(
        f"\nsteps / episodes, seconds per iteration: {medians['steps'] / medians['episodes']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--env", default="navigation", choices=["navigation", *LOCOMOTION])
    parser.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[1.0, 0.2, 0.1],
        help="--env <MuJoCo family>: algorithm.fvp_task_fraction values to time an iteration at",
    )
    parser.add_argument(
        "--at",
        type=Path,
        default=None,
        help="a run directory: time train.sampling=episodes vs steps from its checkpoint",
    )
    args = parser.parse_args()
    if args.at is not None:
        return bench_at(args.at, args.iterations, args.warmup, args.device)
    if args.env in LOCOMOTION:
        return bench_locomotion(args.env, args.device, args.fractions)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"median over {args.iterations} meta-iterations after {args.warmup} warm-up\n")
    header = "| policy | " + " | ".join(PHASES) + " | env steps/s | target s | time / target |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, (overrides, target) in SETTINGS.items():
        t = measure(overrides, args.iterations, args.warmup, args.device)
        cells = " | ".join(f"{t[p]:.3f}" for p in PHASES)
        rate = t["env_steps_per_second"]
        goal = f"{target:.1f} | {t['iteration'] / target:.2f}" if target else "- | -"
        print(f"| {name} | {cells} | {rate:,.0f} | {goal} |")
    print("\nPeers are timed side by side in one run: bash ../shared/peers/side_by_side.sh")


if __name__ == "__main__":
    main()
