"""TRPO's two Hessian-vector products (``algorithm.hvp``) compared on one meta-batch of a run.

    .venv/bin/python scripts/hvp_probe.py RUN_DIR [--fd-eps 1.0] [--seed 0] [--fresh]
        [--compare-eps 1 1e-3 1e-5] [--float64] [--activation tanh]

Loads RUN_DIR/checkpoints/last.pt (``--fresh``: the policy the run started from), samples one
meta-batch of training tasks as a meta-iteration does, and solves CG for the natural-gradient
direction once with the exact Gauss-Newton product and once with finite differences of the KL
gradient (step fd_eps / |theta|). For each it prints the direction's norm, the finite-difference
step e |d|, the curvature d^T H d by its own product and by the exact one, and the surrogate gain
and KL of the first line-search candidates; then the cosine between the two directions.

``--compare-eps``: how far the finite-difference product is from the exact one, |FD v - H v| /
|H v|, for each fd_eps, on three vectors: the meta-gradient g, the exact CG direction and a
random vector of g's norm. The exact product treats the policy as smooth; with ReLU the inner
gradient jumps wherever a unit's pre-activation changes sign, and so does the adapted policy,
which a finite difference sees and autodiff does not (docs/RESULTS.md). ``--float64`` runs it
all in double precision, to tell this apart from rounding; ``--activation`` (with ``--fresh``)
probes another policy nonlinearity.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from maml_hydra.checkpoint import CheckpointError
from maml_hydra.config import ConfigError
from maml_hydra.meta_optimizers import (
    conjugate_gradient,
    finite_difference_hvp,
    fisher_vector_product,
    mean_kl,
    meta_gradient,
    surrogate_loss,
    trust_region_step,
)
from maml_hydra.report import EvaluationError, run_config

CANDIDATES = 4  # line-search candidates shown: backtrack^0 .. backtrack^3


def probe(cfg, state, fd_eps: float, fresh: bool, compare_eps: list[float]) -> None:
    from maml_hydra.experiment import Experiment  # heavy import, only once the input is checked

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--fd-eps", type=float, default=1.0, help="algorithm.fd_eps")
    parser.add_argument("--seed", type=int, default=None, help="default: the run's")
    parser.add_argument("--fresh", action="store_true", help="the run's initial policy")
    parser.add_argument("--compare-eps", type=float, nargs="+", default=[], metavar="EPS")
    parser.add_argument("--float64", action="store_true", help="double precision throughout")
    parser.add_argument("--activation", default=None, help="policy.activation (with --fresh)")
    args = parser.parse_args()
    try:
        if args.activation is not None and not args.fresh:
            raise ConfigError("--activation needs --fresh: a checkpoint holds its own policy")
        bad = [e for e in args.compare_eps if not e > 0]
        if bad:
            raise ConfigError(f"--compare-eps {bad[0]} is not allowed: must be > 0")
        cfg, state = run_config(args.run_dir)
        if args.activation is not None:
            cfg = replace(cfg, policy=replace(cfg.policy, activation=args.activation))
        algorithm = replace(cfg.algorithm, hvp="finite_difference", fd_eps=args.fd_eps)
        seed = cfg.seed if args.seed is None else args.seed
        cfg = replace(cfg, algorithm=algorithm, seed=seed, progress=False, resume=None)
        cfg.check()
        if cfg.algorithm.name != "trpo":
            raise ConfigError(f"{args.run_dir}: algorithm={cfg.algorithm.name}, not trpo")
        print(f"{args.run_dir}: iteration {0 if args.fresh else state['iteration']}, seed {seed}")
        if args.float64:
            torch.set_default_dtype(torch.float64)
        probe(cfg, state, args.fd_eps, args.fresh, args.compare_eps)
    except (EvaluationError, CheckpointError, ConfigError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
