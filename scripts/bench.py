"""Seconds per MAML meta-iteration and their split, at the MAML paper's 2D-navigation settings
(20 tasks x 20 episodes x horizon 100, one inner step): TRPO with two policies, TRPO with the
paper's code's finite-difference Hessian-vector products, and PPO.

    .venv/bin/python scripts/bench.py [--iterations 5] [--warmup 1] [--device cpu]

Prints the median of each phase over the timed iterations and the ratio to the targets
(<= 2.0 s at 2x64 tanh with CG 10, <= 4.0 s at 2x100 ReLU) measured in this one run. For PPO
the meta-gradient column holds the whole update (all epochs), cg and line_search are 0.

    .venv/bin/python scripts/bench.py --env FAMILY [--fractions 1.0 0.2 0.1]
        [--physics mujoco|warp] [--device cpu|cuda]

A MuJoCo family (ant, ant_dir, halfcheetah_vel, halfcheetah_dir) at the paper's batch (40 tasks
x 20 episodes x 200 steps): sampling throughput (with mujoco: vs raw ``mujoco.rollout``, target
ratio >= 0.8; with warp: also at 4,096 worlds), then one meta-iteration per
``algorithm.fvp_task_fraction`` with the learner's share of it (target <= 20%) and peak memory.

    .venv/bin/python scripts/bench.py --at RUN_DIR

Meta-iterations from a trained run's checkpoint with ``train.sampling=episodes`` and ``steps``,
and the ratio of their medians.

    .venv/bin/python scripts/bench.py --outer

The weight gradient's GEMM in its two orientations (``closed_form._outer``), and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from maml_hydra import hydra_glue  # noqa: F401  (conf/config.yaml's resolvers)
from maml_hydra.config import to_config
from maml_hydra.experiment import Experiment

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {
    "TRPO, 2x100 relu (paper)": (["policy.hidden_sizes=[100,100]", "policy.activation=relu"], 4.0),
    "TRPO, 2x64 tanh, CG 10": (
        ["policy.hidden_sizes=[64,64]", "policy.activation=tanh", "algorithm.cg_iters=10"],
        2.0,
    ),
    "TRPO, 2x64 tanh, CG 10, exact Fisher (algorithm.fvp_task_fraction=1.0)": (
        [
            "policy.hidden_sizes=[64,64]",
            "policy.activation=tanh",
            "algorithm.cg_iters=10",
            "algorithm.fvp_task_fraction=1.0",
        ],
        2.0,
    ),
    "TRPO, 2x64 tanh, CG 10, autograd's products (algorithm.closed_form=false)": (
        [
            "policy.hidden_sizes=[64,64]",
            "policy.activation=tanh",
            "algorithm.cg_iters=10",
            "algorithm.closed_form=false",
        ],
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


def sampling_rate(exp: Experiment, tasks: int) -> float:
    """Env steps per second of one batch rollout of ``exp``'s env (policy included), after a
    warm-up rollout (Warp compiles its kernels on its first step)."""
    env, learner = exp.env, exp.learner
    env.set_tasks(env.sample_tasks(tasks, exp.task_rng))
    params = learner.layout.unflatten(learner.parameters())
    learner.rollout(env, params, False, exp.action_rng, exp.plan)
    sync(exp.device)
    start = time.perf_counter()
    learner.rollout(env, params, False, exp.action_rng, exp.plan)
    sync(exp.device)
    return env.num_envs * exp.cfg.env.horizon / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_locomotion(
    family: str,
    device: str,
    fractions: list[float],
    physics: str,
    batch: tuple[int, int] = (40, 20),
    wide: tuple[int, int] = (64, 64),
    closed_forms: tuple[bool, ...] = (True,),
) -> None:
    """For a MuJoCo family (``env=<family>``) at the paper's batch (40 tasks x 20 episodes x
    200 steps) on ``env.physics``: sampling throughput, policy included; with ``mujoco``
    against raw ``mujoco.rollout`` (2 threads, zero actions, same model), with ``warp`` also
    at 64 x 64 = 4,096 worlds. Then one whole meta-iteration per
    ``algorithm.fvp_task_fraction`` (and ``algorithm.closed_form``), its split, the learner's
    share and peak memory."""
    overrides = [
        f"env={family}",
        f"env.physics={physics}",
        f"train.meta_batch_size={batch[0]}",
        f"train.episodes_per_task={batch[1]}",
        f"device={device}",
        "progress=false",
    ]
    exp = experiment(overrides)
    worlds = batch[0] * batch[1]
    cfg, env = exp.cfg, exp.env
    print(
        f"{family}, env.physics={physics}, device {device}, {batch[0]} tasks x {batch[1]} "
        f"episodes x {cfg.env.horizon} steps, frame_skip {cfg.env.frame_skip}:"
    )
    start = time.perf_counter()
    project = sampling_rate(exp, batch[0])
    print(f"  first two rollouts (compile included): {time.perf_counter() - start:.1f} s")
    print(f"  project sampling (policy included), {worlds:,} worlds: {project:,.0f} env steps/s")
    if physics == "warp":
        sizes = [f"train.meta_batch_size={wide[0]}", f"train.episodes_per_task={wide[1]}"]
        wide_exp = experiment([*overrides[:2], *sizes, *overrides[4:]])
        rate = sampling_rate(wide_exp, wide[0])
        print(f"  project sampling, {wide[0] * wide[1]:,} worlds: {rate:,.0f} env steps/s\n")
        del wide_exp
    else:
        import mujoco
        import numpy as np
        from mujoco import rollout

        steps = worlds * cfg.env.horizon
        model, n = env.model, env.num_envs
        runner = rollout.Rollout(nthread=2)
        scratch = [mujoco.MjData(model) for _ in range(2)]
        control = np.zeros((n, cfg.env.horizon * cfg.env.frame_skip, model.nu))
        start = time.perf_counter()
        runner.rollout(model, scratch, env.physics.state.copy(), control, nstep=control.shape[1])
        raw = steps / (time.perf_counter() - start)
        print(f"  mujoco.rollout, 2 threads, zero actions: {raw:,.0f} env steps/s")
        print(f"  ratio: {project / raw:.2f} (target >= 0.8)\n")

    print("One MAML-TRPO meta-iteration (2x100 ReLU, CG 10), seconds (peak RSS: of the process")
    print("so far, so a row shows the most of itself and the rows above it):\n")
    header = (
        "| fvp_task_fraction | closed_form | sampling | " + " | ".join(LEARNER) + " | iteration |"
    )
    memory = " peak RSS GiB | peak torch CUDA GiB | device memory in use GiB |"
    print(header + " learner share (target <= 20%) |" + memory)
    print("|" + "---|" * (header.count("|") + 3))
    rows = [(f, c) for f in fractions for c in closed_forms]
    for fraction, closed in rows:
        run = experiment(
            [
                *overrides,
                f"algorithm.fvp_task_fraction={fraction}",
                f"algorithm.closed_form={closed}",
            ]
        )
        run.meta_iteration()  # warm-up: Warp's kernels, torch's first CUDA calls
        t = run.meta_iteration()
        learner_s = sum(t.get(f"time/{p}", 0.0) for p in LEARNER)
        cells = " | ".join(f"{t.get(f'time/{p}', 0.0):.2f}" for p in LEARNER)
        cuda = t.get("memory/peak_cuda_gib")
        in_use = "-"
        if run.device.type == "cuda":  # torch's and Warp's allocations together
            free, total = torch.cuda.mem_get_info(run.device)
            in_use = f"{(total - free) / 2**30:.2f}"
        print(
            f"| {fraction} | {closed} | {t['time/sampling']:.2f} | {cells} "
            f"| {t['time/iteration']:.2f} "
            f"| {learner_s / t['time/iteration']:.0%} | {t['memory/peak_rss_gib']:.2f} "
            f"| {'-' if cuda is None else f'{cuda:.2f}'} | {in_use} |"
        )
        del run


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


def bench_outer(rounds: int = 5) -> None:
    """The weight gradient's GEMM, sum over steps of dz h^T per task, in both orientations at
    the shapes of the navigation and locomotion policies' first layers (closed_form._outer
    takes the one with the narrower operand first)."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {rounds}\n")
    print("| tasks x steps | dz width | h width | bmm(dz^T, h) ms | bmm(h^T, dz)^T ms | ratio |")
    print("|---|---|---|---|---|---|")
    for tasks, steps, out, inp in [(20, 2000, 64, 2), (40, 4000, 100, 20), (40, 4000, 100, 27)]:
        dz, h = torch.randn(tasks, steps, out), torch.randn(tasks, steps, inp)
        times = []
        for first, second, flip in ((dz, h, False), (h, dz, True)):
            torch.bmm(first.transpose(1, 2), second)
            best = float("inf")
            for _ in range(rounds):
                start = time.perf_counter()
                product = torch.bmm(first.transpose(1, 2), second)
                if flip:
                    product = product.transpose(1, 2)
                best = min(best, time.perf_counter() - start)
            times.append(best * 1e3)
        cells = f"{times[0]:.2f} | {times[1]:.2f} | {times[0] / times[1]:.1f}"
        print(f"| {tasks} x {steps} | {out} | {inp} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--env", default="navigation", choices=["navigation", *LOCOMOTION])
    parser.add_argument(
        "--physics",
        default="mujoco",
        choices=["mujoco", "warp"],
        help="--env <MuJoCo family>: env.physics (warp: MuJoCo Warp, pip install -e .[gpu])",
    )
    parser.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[1.0, 0.2, 0.1],
        help="--env <MuJoCo family>: algorithm.fvp_task_fraction values to time an iteration at",
    )
    parser.add_argument(
        "--batch",
        type=int,
        nargs=2,
        default=(40, 20),
        metavar=("TASKS", "EPISODES"),
        help="--env <MuJoCo family>: the batch (default: the paper's, 40 x 20 = 800 worlds)",
    )
    parser.add_argument(
        "--wide",
        type=int,
        nargs=2,
        default=(64, 64),
        metavar=("TASKS", "EPISODES"),
        help="--physics warp: a second, wider batch to time sampling at (default 4,096 worlds)",
    )
    parser.add_argument(
        "--closed-form",
        choices=["true", "false", "both"],
        default="both",
        help="--env <MuJoCo family>: algorithm.closed_form of the timed iterations",
    )
    parser.add_argument(
        "--at",
        type=Path,
        default=None,
        help="a run directory: time train.sampling=episodes vs steps from its checkpoint",
    )
    parser.add_argument(
        "--outer",
        action="store_true",
        help="time the weight-gradient GEMM's two orientations (closed_form._outer)",
    )
    args = parser.parse_args()
    if args.outer:
        return bench_outer()
    if args.at is not None:
        return bench_at(args.at, args.iterations, args.warmup, args.device)
    if args.env in LOCOMOTION:
        closed = {"true": (True,), "false": (False,), "both": (True, False)}[args.closed_form]
        return bench_locomotion(
            args.env, args.device, args.fractions, args.physics, args.batch, args.wide, closed
        )
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
