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

    .venv/bin/python scripts/bench.py --step-sizes RUN_DIR --lrs 0.1 0.5 2.0 [--gae-lambda 0.9]
        [--tasks 20] [--episodes 20]

The gain of one inner step on a run's held-out tasks (``eval.seed``), for each step size: loads
RUN_DIR/checkpoints/last.pt (policy and observation statistics) and prints the return before
and after one step and the paired gain (after - before, mean ± s.e. over tasks). Every step
size sees the same pre-update episodes; ``--gae-lambda`` changes only the inner step's
advantages.

    .venv/bin/python scripts/bench.py --hvp RUN_DIR [--fd-eps 1.0] [--seed 0] [--fresh]
        [--compare-eps 1 1e-3 1e-5] [--float64] [--activation tanh]

TRPO's two Hessian-vector products (``algorithm.hvp``) on one meta-batch of a run (``--fresh``:
the policy it started from): CG solved once with the exact Gauss-Newton product and once with
finite differences of the KL gradient (step fd_eps / |theta|); for each, the direction's norm,
the finite-difference step e |d|, the curvature d^T H d by its own product and by the exact one,
and the surrogate gain and KL of the first line-search candidates; then the cosine between the
two directions. ``--compare-eps``: |FD v - H v| / |H v| for each fd_eps on three vectors (the
meta-gradient g, the exact CG direction, a random vector of g's norm). With ReLU the inner
gradient jumps wherever a unit's pre-activation changes sign, which a finite difference sees
and autodiff does not (docs/RESULTS.md). ``--float64`` runs it in double precision, to tell
this apart from rounding; ``--activation`` (with ``--fresh``) probes another nonlinearity.

    .venv/bin/python scripts/bench.py --metaworld reach-v3 [--rows 40] [--workers 1 2]
        [--rounds 3] [--seconds 10]

Meta-World's env steps per second (ML1, random actions): one env alone in Meta-World's own
interpreter (the raw rate), then ``--rows`` envs in ``MetaWorldPool`` over each number of
worker processes, and their ratio to the raw rate (target >= 1.6 with 2 workers on 2 cores),
in interleaved rounds; the median ratio over the rounds.

    .venv/bin/python scripts/bench.py --paper halfcheetah_dir [--iterations 2] [--warmup 1]

The learner's share at ``experiment=paper_<family>`` on one thread (``OMP_NUM_THREADS=1
env.threads=1``; learner = iteration - sampling): the preset's Fisher product and the exact
Fisher (Gauss-Newton on all tasks), each with ``keep_freed_memory`` true and false, and TRPO's
schema default (Gauss-Newton on a quarter of the tasks, ``quarter``); each row in a process of
its own, so that its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from maml_hydra import hydra_glue  # noqa: F401  (conf/config.yaml's resolvers)
from maml_hydra.checkpoint import CheckpointError
from maml_hydra.config import ConfigError, to_config
from maml_hydra.evaluator import paired_gain
from maml_hydra.experiment import Experiment
from maml_hydra.meta_optimizers import (
    conjugate_gradient,
    finite_difference_hvp,
    fisher_vector_product,
    mean_kl,
    meta_gradient,
    surrogate_loss,
    trust_region_step,
)
from maml_hydra.report import EvaluationError, evaluate_run, run_config
from maml_hydra.tasks.meta_world import INTERPRETER, MetaWorldPool

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


def probe_step_sizes(run_dir: Path, args) -> None:
    """``--step-sizes``: the gain of one inner step per step size (module docstring)."""
    try:
        cfg, state = run_config(run_dir)
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
            f"{run_dir}: iteration {state['iteration']}, {base.num_tasks} held-out tasks x "
            f"{base.episodes_per_task} episodes, gae_lambda {cfg.train.gae_lambda}"
        )
        print("| step size | before | after one step | gain (± s.e. over tasks) |")
        print("|---|---|---|---|")
        for lr in args.lrs:
            eval_cfg = replace(base, lrs=[lr])
            returns = torch.tensor(
                evaluate_run(cfg, state, run_dir, eval_cfg, args.device)["returns"]
            )
            print(
                f"| {lr} | {returns[0].mean():.1f} | {returns[1].mean():.1f} | "
                f"{paired_gain(returns)} |",
                flush=True,
            )
    except (EvaluationError, CheckpointError, ConfigError) as err:
        sys.exit(f"error: {err}")


CANDIDATES = 4  # line-search candidates shown: backtrack^0 .. backtrack^3


def probe(cfg, state, fd_eps: float, fresh: bool, compare_eps: list[float]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        exp = Experiment(cfg, scratch)
        if not fresh:
            exp.load_weights(state)
        batch = exp.sample_meta_batch()
        learner, theta, alg = exp.learner, exp.learner.parameters(), cfg.algorithm
    loss, gradient, outputs, vjp_fn = meta_gradient(learner, theta, batch)
    exact = fisher_vector_product(vjp_fn, outputs, batch.query.mask, alg.cg_damping)
    products = {
        "gauss_newton": exact,
        "finite_difference": finite_difference_hvp(learner, theta, batch, fd_eps, alg.cg_damping),
    }
    eps = fd_eps / (theta.norm().item() + 1e-8)
    print(
        f"|theta| {theta.norm():.3f}, e = fd_eps / |theta| = {eps:.4g}, |g| {gradient.norm():.4g}"
    )
    ratios = [alg.ls_backtrack**i for i in range(CANDIDATES)]
    print(
        "| product | \\|d\\| | e \\|d\\| | d^T H d, own | d^T H d, exact | "
        + " | ".join(f"x{r:.3g}: gain / KL" for r in ratios)
        + " |"
    )
    print("|" + "---|" * (5 + CANDIDATES))
    directions = {}
    for name, hvp in products.items():
        direction, _ = conjugate_gradient(hvp, gradient, alg.cg_iters)
        curvature = direction @ hvp(direction)
        step = trust_region_step(direction, curvature, alg.max_kl)
        cells = []
        for ratio in ratios:
            with torch.no_grad():
                mean, log_std = learner.query_dist(theta - ratio * step, batch)
                gain = loss - surrogate_loss(mean, log_std, batch.query)
                kl = mean_kl(mean, log_std, batch.query)
            cells.append(f"{gain.item():.5f} / {kl.item():.5f}")
        print(
            f"| {name} | {direction.norm():.4g} | {eps * direction.norm():.3g} | "
            f"{curvature.item():.4g} | {(direction @ exact(direction)).item():.4g} | "
            + " | ".join(cells)
            + " |"
        )
        directions[name] = direction
    a, b = directions.values()
    print(f"\ncosine between the two directions: {(a @ b / (a.norm() * b.norm())).item():.3f}")
    if compare_eps:
        undamped = fisher_vector_product(vjp_fn, outputs, batch.query.mask, 0.0)
        compare(learner, theta, batch, undamped, gradient, directions["gauss_newton"], compare_eps)


def compare(learner, theta, batch, exact, gradient, direction, eps_values: list[float]) -> None:
    """|FD v - H v| / |H v| per fd_eps on g, the exact CG direction and a random vector;
    ``exact`` is the undamped exact product."""
    noise = torch.randn(theta.shape, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
    vectors = {
        "g": gradient,
        "exact CG direction": direction,
        "random": noise * gradient.norm() / noise.norm(),
    }
    print(
        "\n| fd_eps | "
        + " | ".join(f"{name}: \\|FD v - H v\\| / \\|H v\\|" for name in vectors)
        + " |"
    )
    print("|" + "---|" * (1 + len(vectors)))
    products = {name: exact(v) for name, v in vectors.items()}
    for eps in eps_values:
        fd = finite_difference_hvp(learner, theta, batch, eps, 0.0)
        errors = [(fd(v) - products[n]).norm() / products[n].norm() for n, v in vectors.items()]
        print(f"| {eps:g} | " + " | ".join(f"{e.item():.3g}" for e in errors) + " |")


def probe_hvp(run_dir: Path, args) -> None:
    """``--hvp``: TRPO's two products on one meta-batch of a run (module docstring)."""
    try:
        if args.activation is not None and not args.fresh:
            raise ConfigError("--activation needs --fresh: a checkpoint holds its own policy")
        bad = [e for e in args.compare_eps if not e > 0]
        if bad:
            raise ConfigError(f"--compare-eps {bad[0]} is not allowed: must be > 0")
        cfg, state = run_config(run_dir)
        if args.activation is not None:
            cfg = replace(cfg, policy=replace(cfg.policy, activation=args.activation))
        algorithm = replace(cfg.algorithm, hvp="finite_difference", fd_eps=args.fd_eps)
        seed = cfg.seed if args.seed is None else args.seed
        cfg = replace(cfg, algorithm=algorithm, seed=seed, progress=False, resume=None)
        cfg.check()
        if cfg.algorithm.name != "trpo":
            raise ConfigError(f"{run_dir}: algorithm={cfg.algorithm.name}, not trpo")
        print(f"{run_dir}: iteration {0 if args.fresh else state['iteration']}, seed {seed}")
        if args.float64:
            torch.set_default_dtype(torch.float64)
        probe(cfg, state, args.fd_eps, args.fresh, args.compare_eps)
    except (EvaluationError, CheckpointError, ConfigError) as err:
        sys.exit(f"error: {err}")


RAW_METAWORLD = """
import sys, time, warnings
import numpy as np
import metaworld
warnings.simplefilter("ignore")
task, seconds = sys.argv[1], float(sys.argv[2])
bench = metaworld.ML1(task, seed=0)
env = bench.train_classes[task]()
env.set_task(bench.train_tasks[0])
env.reset(seed=0)
rng = np.random.default_rng(0)
steps, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    if steps and steps % env.max_path_length == 0:
        env.reset(seed=steps)
    env.step(rng.uniform(-1, 1, size=4))
    steps += 1
print(steps / (time.perf_counter() - start))
"""


def bench_metaworld(
    task: str, rows: int, workers: list[int], rounds: int, seconds: float = 10.0
) -> None:
    """``--metaworld``: env steps per second of one Meta-World env alone (its own interpreter, a
    process of its own), then of the pool with each number of workers, ``seconds`` each, in
    ``rounds`` interleaved rounds: each round's ratios are to that round's raw rate, and the
    median ratio over rounds is the figure (the machine's speed drifts between rounds)."""
    import subprocess

    print(f"Meta-World ML1 {task}, random actions, {rows} rows in the pool, {seconds:g} s each\n")
    print(
        "| round | one env alone, env steps/s | "
        + " | ".join(f"{n} worker(s): env steps/s (ratio)" for n in workers)
        + " |"
    )
    print("|---|---|" + "---|" * len(workers))
    rng = np.random.default_rng(0)
    ratios: dict[int, list[float]] = {n: [] for n in workers}
    for r in range(rounds):
        done = subprocess.run(
            [str(INTERPRETER), "-c", RAW_METAWORLD, task, str(seconds)],
            capture_output=True,
            text=True,
            check=True,
        )
        raw = float(done.stdout)
        cells = []
        for count in workers:
            with MetaWorldPool("ML1", task, 0, "train", rows, count) as pool:
                pool.set_tasks([i % pool.num_tasks for i in range(rows)])
                pool.reset(list(range(rows)))
                steps, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    if steps and steps % pool.max_path_length == 0:
                        pool.reset(list(range(rows)))
                    pool.step(rng.uniform(-1, 1, size=(rows, 4)))
                    steps += 1
                rate = steps * rows / (time.perf_counter() - start)
            ratios[count].append(rate / raw)
            cells.append(f"{rate:,.0f} ({rate / raw:.2f})")
        print(f"| {r + 1} | {raw:,.0f} | " + " | ".join(cells) + " |")
    print(
        "\nmedian ratio to one env alone over the rounds: "
        + ", ".join(f"{n} worker(s) {statistics.median(ratios[n]):.2f}" for n in workers)
    )


PAPER_ROWS = [  # (Fisher product, keep_freed_memory)
    ("preset", True),
    ("preset", False),
    ("exact", True),
    ("exact", False),
    ("quarter", True),
]


def paper_row(family: str, product: str, keep: bool, iterations: int, warmup: int) -> dict:
    """One row of ``--paper``, in this process: medians of the phases, peak RSS."""
    overrides = [f"experiment=paper_{family}", "env.threads=1", f"keep_freed_memory={keep}"]
    if product == "exact":
        overrides += ["algorithm.hvp=gauss_newton", "algorithm.fvp_task_fraction=1.0"]
    elif product == "quarter":
        overrides += ["algorithm.hvp=gauss_newton", "algorithm.fvp_task_fraction=0.25"]
    import resource

    t = measure(overrides, iterations, warmup, "cpu")
    t["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return t


def bench_paper(family: str, iterations: int, warmup: int) -> None:
    import json
    import os
    import subprocess

    print(
        f"experiment=paper_{family}, one thread, median of {iterations} meta-iteration(s) after "
        f"{warmup} warm-up, each row a process of its own; seconds:\n"
    )
    print(
        "| Fisher product | keep_freed_memory | sampling | "
        + " | ".join(LEARNER)
        + " | iteration | learner share | peak RSS GiB |"
    )
    print("|---|---|---|" + "---|" * len(LEARNER) + "---|---|---|")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for product, keep in PAPER_ROWS:
        args = [family, product, str(keep), str(iterations), str(warmup)]
        done = subprocess.run(
            [sys.executable, __file__, "--paper-row", *args],
            capture_output=True,
            text=True,
            env=env,
        )
        if done.returncode:
            sys.exit(
                f"error: the row {product}, keep_freed_memory={keep} failed: "
                f"{done.stderr.strip().splitlines()[-1]}"
            )
        t = json.loads(done.stdout.strip().splitlines()[-1])
        learner = t["iteration"] - t["sampling"]
        cells = " | ".join(f"{t[p]:.2f}" for p in LEARNER)
        print(
            f"| {product} | {keep} | {t['sampling']:.2f} | {cells} | {t['iteration']:.2f} "
            f"| {learner / t['iteration']:.0%} | {t['peak_rss_gib']:.2f} |"
        )


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
    parser.add_argument("--step-sizes", type=Path, default=None, metavar="RUN_DIR")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0])
    parser.add_argument("--gae-lambda", type=float, default=None, help="default: the run's")
    parser.add_argument("--tasks", type=int, default=None, help="default: the run's eval")
    parser.add_argument("--episodes", type=int, default=None, help="default: the run's eval")
    parser.add_argument("--hvp", type=Path, default=None, metavar="RUN_DIR")
    parser.add_argument("--fd-eps", type=float, default=1.0, help="--hvp: algorithm.fd_eps")
    parser.add_argument("--seed", type=int, default=None, help="--hvp: default the run's")
    parser.add_argument("--fresh", action="store_true", help="--hvp: the run's initial policy")
    parser.add_argument("--compare-eps", type=float, nargs="+", default=[], metavar="EPS")
    parser.add_argument("--float64", action="store_true", help="--hvp: double precision")
    parser.add_argument("--activation", default=None, help="--hvp: policy.activation (--fresh)")
    parser.add_argument("--metaworld", default=None, metavar="TASK", help="e.g. reach-v3")
    parser.add_argument("--paper", default=None, choices=LOCOMOTION, help="experiment=paper_*")
    parser.add_argument("--paper-row", nargs=5, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=40, help="--metaworld: envs in the pool")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="--metaworld")
    parser.add_argument("--rounds", type=int, default=3, help="--metaworld: interleaved rounds")
    parser.add_argument("--seconds", type=float, default=10.0, help="--metaworld: per rate")
    args = parser.parse_args()
    if args.paper_row is not None:
        import json

        family, product, keep, iterations, warmup = args.paper_row
        row = paper_row(family, product, keep == "True", int(iterations), int(warmup))
        print(json.dumps(row))
        return None
    if args.paper is not None:
        return bench_paper(args.paper, args.iterations, args.warmup)
    if args.metaworld is not None:
        return bench_metaworld(args.metaworld, args.rows, args.workers, args.rounds, args.seconds)
    if args.step_sizes is not None:
        return probe_step_sizes(args.step_sizes, args)
    if args.hvp is not None:
        return probe_hvp(args.hvp, args)
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
