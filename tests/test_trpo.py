"""TRPO math: Fisher-vector product vs finite differences, CG, line search, one full step."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from itertools import pairwise

import pytest
import torch
from torch.func import grad, jvp, vmap

from maml_hydra.config import TRPOConfig
from maml_hydra.experiment import Experiment
from maml_hydra.meta_optimizers import (
    TRPO,
    conjugate_gradient,
    finite_difference_hvp,
    fisher_vector_product,
    line_search,
    mean_kl,
    meta_gradient,
    pre_update_kl,
    trust_region_step,
)
from tests.helpers import ROOT, build, make_config


@pytest.mark.parametrize("num_steps,first_order", [(1, False), (0, False), (2, False), (2, True)])
def test_fisher_vector_product_matches_finite_differences_of_the_kl_gradient(
    float64, num_steps, first_order
):
    learner, theta, batch = build(num_steps, first_order)
    # Old distribution = the adapted policy at theta itself, so KL(theta) = 0 at theta.
    mean, log_std = learner.query_dist(theta, batch)
    query = batch.query._replace(mean=mean.detach(), log_std=log_std.detach())
    batch = batch._replace(query=query)

    if first_order:
        # FOMAML treats d theta'/d theta as the identity: theta'_i = theta + c_i, c_i fixed.
        adapted = vmap(learner.task_adapt, in_dims=(None, 0))(
            learner.layout.unflatten(theta), batch.supports
        )
        offsets = {k: (adapted[k] - p).detach() for k, p in learner.layout.unflatten(theta).items()}

        def kl(th):
            params = learner.layout.unflatten(th)
            shifted = {k: params[k] + offsets[k] for k in params}
            return mean_kl(*vmap(learner.task_dist)(shifted, query.obs), query)
    else:

        def kl(th):
            return mean_kl(*learner.query_dist(th, batch), query)

    _, _, outputs, vjp_fn = meta_gradient(learner, theta, batch)
    damping = 0.0
    hvp = fisher_vector_product(vjp_fn, outputs, query.mask, damping)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1))
    hv = hvp(v)

    eps = 1e-5
    kl_grad = grad(kl)
    fd = (kl_grad(theta + eps * v) - kl_grad(theta - eps * v)) / (2 * eps)
    assert hv.norm() > 1e-6
    assert torch.allclose(hv, fd, rtol=1e-4, atol=1e-7), (hv - fd).abs().max()
    # and against the exact Hessian-vector product of the KL (forward over reverse)
    _, exact = jvp(kl_grad, (theta,), (v,))
    assert torch.allclose(hv, exact, rtol=1e-6, atol=1e-10)
    # damping adds damping * v
    assert torch.allclose(fisher_vector_product(vjp_fn, outputs, query.mask, 0.5)(v), hv + 0.5 * v)


def test_conjugate_gradient_solves_a_known_spd_system(float64):
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(12, 12, generator=gen)
    a = m @ m.T + 12 * torch.eye(12)
    b = torch.randn(12, generator=gen)
    x, r = conjugate_gradient(lambda v: a @ v, b, iters=12)
    assert torch.allclose(x, torch.linalg.solve(a, b), atol=1e-6)
    assert (a @ x - b).norm() ** 2 <= 1e-9  # stopped at rllab's residual tolerance or better
    # fewer iterations: an approximation that still reduces the residual, which is tracked exactly
    x3, r3 = conjugate_gradient(lambda v: a @ v, b, iters=3)
    assert (a @ x3 - b).norm() < b.norm()
    assert torch.allclose(r3, b - a @ x3, atol=1e-9)
    assert torch.allclose(x3 @ (b - r3), x3 @ a @ x3)


def quadratic(center):
    def evaluate(th):
        return ((th - center) ** 2).sum(), (th**2).sum() / 100

    return evaluate


def test_line_search_accepts_the_first_improving_step_within_the_trust_region():
    theta = torch.tensor([1.0, 1.0])
    evaluate = quadratic(torch.zeros(2))
    new, index, loss, kl = line_search(
        evaluate, theta, torch.tensor([1.5, 1.5]), evaluate(theta)[0], 0.01, 5, 0.5
    )
    # step 0 overshoots to -0.5 (loss 0.5 < 2 but kl 0.005 ok) -> accepted at index 0
    assert index == 0 and torch.allclose(new, torch.tensor([-0.5, -0.5])) and loss < 2


def test_line_search_rejects_a_step_that_raises_the_loss():
    theta = torch.tensor([1.0, 1.0])
    evaluate = quadratic(torch.tensor([1.0, 1.0]))  # theta is already optimal
    new, index, _, _ = line_search(
        evaluate, theta, torch.tensor([0.3, 0.3]), torch.tensor(0.0), 1.0, 4, 0.5
    )
    assert index == -1 and torch.equal(new, theta)


def test_line_search_rejects_nan_and_kl_violations():
    theta = torch.tensor([1.0])

    def nan_then_fine(th):
        if th.item() < 0:
            return torch.tensor(float("nan")), torch.tensor(0.0)
        return (th**2).sum(), torch.tensor(0.0)

    new, index, _, _ = line_search(
        nan_then_fine, theta, torch.tensor([4.0]), torch.tensor(1.0), 1.0, 3, 0.5
    )
    assert index == 2 and torch.equal(
        new, torch.tensor([0.0])
    )  # 1 - 4 = -3 (nan), 1 - 2 = -1 (nan), 0
    always_far = lambda th: ((th**2).sum() * 0, torch.tensor(1.0))  # noqa: E731
    new, index, _, _ = line_search(
        always_far, theta, torch.tensor([1.0]), torch.tensor(1.0), 0.01, 5, 0.5
    )
    assert index == -1 and torch.equal(new, theta)


def test_trpo_step_improves_the_surrogate_inside_the_trust_region():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    opt = TRPO(TRPOConfig(max_kl=0.01, fvp_task_fraction=1.0), learner)
    new_theta, metrics = opt.step(theta, batch)
    assert metrics["line_search_failed"] == 0
    assert metrics["kl"] <= 0.01 + 1e-7
    assert metrics["surrogate_after"] < metrics["surrogate_before"]
    assert not torch.equal(new_theta, theta)
    assert all(math.isfinite(v) for v in metrics.values())


def test_trpo_failed_line_search_leaves_parameters_unchanged():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    opt = TRPO(TRPOConfig(max_kl=1e-3, ls_steps=3, ls_backtrack=0.5), learner)
    # Zero advantages: the surrogate is 0 for every candidate, so none lowers it.
    q = batch.query
    bad = batch._replace(query=q._replace(advantages=torch.zeros_like(q.advantages)))
    new_theta, metrics = opt.step(theta, bad)
    assert metrics["line_search_failed"] == 1
    assert torch.equal(new_theta, theta)
    # the metrics are those of the step taken: none
    assert metrics["surrogate_after"] == metrics["surrogate_before"] and metrics["kl"] == 0


def test_fisher_task_subset_is_a_fresh_checkpointed_draw_each_iteration():
    learner, _, _ = build(num_steps=1, tasks=4, episodes=2, horizon=3)
    assert len(TRPO(TRPOConfig(), learner).fisher_tasks(40)) == 10  # a quarter by default
    assert TRPO(TRPOConfig(fvp_task_fraction=1.0), learner).fisher_tasks(40) is None  # exact
    opt = TRPO(TRPOConfig(fvp_task_fraction=0.2), learner, seed=3)
    state = opt.state_dict()
    draws = [opt.fisher_tasks(40) for _ in range(5)]
    assert all(len(d) == 8 and len(d.unique()) == 8 and d.max() < 40 for d in draws)
    assert len({tuple(d.tolist()) for d in draws}) == 5
    again = TRPO(TRPOConfig(fvp_task_fraction=0.2), learner, seed=0)
    again.load_state_dict(state)  # a resumed run draws the same subsets
    assert all(torch.equal(again.fisher_tasks(40), d) for d in draws)
    # never fewer than fvp_min_tasks (4 by default), and no subset where that is every task
    assert len(TRPO(TRPOConfig(fvp_task_fraction=0.01), learner).fisher_tasks(40)) == 4
    one = TRPOConfig(fvp_task_fraction=0.01, fvp_min_tasks=1)
    assert len(TRPO(one, learner).fisher_tasks(40)) == 1
    assert TRPO(TRPOConfig(), learner).fisher_tasks(4) is None
    assert TRPO(TRPOConfig(fvp_task_fraction=0.9, fvp_min_tasks=1), learner).fisher_tasks(4) is None


def test_trpo_step_through_a_task_subset_equals_the_exact_step_when_it_holds_every_task():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    exact, _ = TRPO(TRPOConfig(fvp_task_fraction=1.0), learner).step(theta, batch)
    # a subset that holds every task: the subset path (select, new graph) must change nothing
    subset = TRPO(TRPOConfig(fvp_task_fraction=0.5, fvp_min_tasks=1), learner)
    subset.fisher_tasks = lambda num_tasks: torch.arange(num_tasks)
    through_subset, _ = subset.step(theta, batch)
    assert torch.allclose(through_subset, exact, atol=1e-6)


def test_trpo_step_with_half_the_tasks_in_the_fisher_keeps_the_full_kl_in_the_region():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    half = TRPOConfig(max_kl=0.01, fvp_task_fraction=0.5, fvp_min_tasks=1)
    new_theta, metrics = TRPO(half, learner).step(theta, batch)
    with torch.no_grad():
        mean, log_std = learner.query_dist(new_theta, batch)
        kl = mean_kl(mean, log_std, batch.query)
    assert metrics["line_search_failed"] == 0 and kl <= 0.01 + 1e-7
    assert abs(kl.item() - metrics["kl"]) < 1e-6  # the reported KL is the full batch's
    assert metrics["surrogate_after"] < metrics["surrogate_before"]


def test_line_search_checks_the_further_constraint_too():
    theta = torch.tensor([1.0])
    evaluate = quadratic(torch.zeros(1))
    near = lambda th: bool(th.item() > 0.2)  # noqa: E731  # only short steps satisfy it
    new, index, _, _ = line_search(
        evaluate, theta, torch.tensor([1.0]), evaluate(theta)[0], 1.0, 5, 0.5, near
    )
    assert index == 1 and torch.equal(new, torch.tensor([0.5]))  # 0.0 would have been taken


def test_trpo_bounds_the_pre_update_kl_when_asked():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    support = batch.supports[0]
    exact = TRPOConfig(max_kl=0.05, fvp_task_fraction=1.0)
    free, free_metrics = TRPO(exact, learner).step(theta, batch)
    with torch.no_grad():
        free_kl = pre_update_kl(learner, free, support).item()
    bound = free_kl / 4  # the unbounded step breaks this bound
    cfg = TRPOConfig(max_kl=0.05, max_kl_pre_update=bound, fvp_task_fraction=1.0)
    bounded, metrics = TRPO(cfg, learner).step(theta, batch)
    with torch.no_grad():
        kl = pre_update_kl(learner, bounded, support).item()
    assert metrics["line_search_step"] > free_metrics["line_search_step"] >= 0
    assert metrics["line_search_failed"] == 0 and 0 < kl <= bound
    assert metrics["surrogate_after"] < metrics["surrogate_before"]
    # pre_update_kl is the KL of the policy that sampled the support data: zero at theta
    assert pre_update_kl(learner, theta, support).abs().item() < 1e-6


def test_finite_difference_hvp_is_the_fisher_product_for_a_small_eps_and_not_for_rllabs(float64):
    learner, theta, batch = build(num_steps=1)
    mean, log_std = learner.query_dist(theta, batch)  # old = the policy at theta: KL(theta) = 0
    batch = batch._replace(query=batch.query._replace(mean=mean.detach(), log_std=log_std.detach()))
    _, _, outputs, vjp_fn = meta_gradient(learner, theta, batch)
    exact = fisher_vector_product(vjp_fn, outputs, batch.query.mask, 0.1)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(2))
    small = finite_difference_hvp(learner, theta, batch, 1e-4, 0.1)
    assert torch.allclose(small(v), exact(v), rtol=1e-5, atol=1e-8)
    # base_eps = 1 (the MAML code's): e |v| is not small, and the product moves away from H v
    v = v / v.norm()
    rllab = finite_difference_hvp(learner, theta, batch, 1.0, 0.1)(v)
    assert not torch.allclose(rllab, exact(v), rtol=1e-3)


def test_trpo_step_with_finite_difference_products(float64):
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    mean, log_std = learner.query_dist(
        theta, batch
    )  # sampled by the adapted policies, as in training
    batch = batch._replace(query=batch.query._replace(mean=mean.detach(), log_std=log_std.detach()))
    # a well-conditioned system, so that CG does not amplify the O(e^2) difference
    exact, _ = TRPO(TRPOConfig(max_kl=0.01, cg_damping=0.1), learner).step(theta, batch)
    cfg = TRPOConfig(max_kl=0.01, cg_damping=0.1, hvp="finite_difference", fd_eps=1e-3)
    near, _ = TRPO(cfg, learner).step(theta, batch)
    assert torch.allclose(near, exact, atol=1e-3 * (exact - theta).abs().max().item())
    cfg = TRPOConfig(max_kl=0.01, hvp="finite_difference", cg_iters=4)
    new_theta, metrics = TRPO(cfg, learner).step(theta, batch)
    assert metrics["line_search_failed"] == 0 and metrics["kl"] <= 0.01 + 1e-7
    assert metrics["surrogate_after"] < metrics["surrogate_before"]
    assert not torch.allclose(new_theta, exact, atol=1e-3 * (exact - theta).abs().max().item())


def test_trust_region_step_meets_the_quadratic_model_and_falls_back_as_rllab():
    d = torch.tensor([3.0, 4.0])
    h = torch.diag(torch.tensor([2.0, 0.5]))
    step = trust_region_step(d, d @ h @ d, 0.01)
    assert torch.allclose(0.5 * step @ h @ step, torch.tensor(0.01))
    assert torch.allclose(step / step.norm(), d / d.norm())
    # a finite-difference curvature that is not positive (or not finite): the direction itself
    for curvature in (-1.0, 0.0, float("nan")):
        assert torch.equal(trust_region_step(d, torch.tensor(curvature), 0.01), d)


def test_hvp_probe_solves_cg_with_both_products_on_a_runs_meta_batch(tmp_path):
    run = tmp_path / "run"
    Experiment(make_config(), run).train()
    script = ROOT / "scripts" / "bench.py"

    def probe(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(script), "--hvp", *args]
        return subprocess.run(command, capture_output=True, text=True)

    result = probe(str(run), "--float64", "--compare-eps", "1", "1e-5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    eps = float(re.search(r"e = fd_eps / \|theta\| = (\S+),", lines[1]).group(1))
    rows = {
        cells[0]: cells[1:]
        for cells in (
            line.strip("| ").split(" | ")
            for line in lines
            if line.startswith(("| gauss_newton |", "| finite_difference |"))
        )
    }
    assert list(rows) == ["gauss_newton", "finite_difference"]
    for name, cells in rows.items():
        norm, step, own, exact = (float(c) for c in cells[:4])
        assert step == pytest.approx(eps * norm, rel=1e-2)
        gains_kls = [tuple(float(x) for x in c.split(" / ")) for c in cells[4:]]
        assert len(gains_kls) == 4
        # shrinking the step shrinks the KL
        assert all(a[1] > b[1] for a, b in pairwise(gains_kls))
        if name == "gauss_newton":
            assert own == exact  # its own product is the exact one
    cosine = float(re.search(r"cosine between the two directions: (\S+)", result.stdout).group(1))
    assert -1 <= cosine <= 1

    # in double precision a small step's finite difference is the exact product (no ReLU kink
    # is crossed at this size); the paper's step is not
    table = result.stdout.split("cosine between the two directions")[1].splitlines()
    errors = {
        row.split(" | ")[0]: [float(c) for c in row.strip("| ").split(" | ")[1:]]
        for row in table
        if row.startswith("| 1")
    }
    assert list(errors) == ["| 1", "| 1e-05"] and len(errors["| 1e-05"]) == 3
    assert max(errors["| 1e-05"]) < 1e-5
    assert max(errors["| 1"]) > 1e-3

    for bad, message in [
        ([str(run), "--fd-eps", "0"], "error: algorithm.fd_eps=0.0 is not allowed: must be > 0"),
        ([str(run), "--compare-eps", "0"], "error: --compare-eps 0.0 is not allowed: must be > 0"),
        (
            [str(run), "--activation", "tanh"],
            "error: --activation needs --fresh: a checkpoint holds its own policy",
        ),
        (
            [str(tmp_path / "nothing")],
            f"error: {tmp_path / 'nothing'}/checkpoints/last.pt: no checkpoint found",
        ),
    ]:
        refused = probe(*bad)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.strip() == message


KEPT = """
import resource, sys, torch
from maml_hydra.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def rounds(n):  # the learner's pattern: large temporaries made and dropped, again and again
    for _ in range(n):
        a, b = torch.ones(4 * 2**20), torch.ones(8 * 2**20)  # 16 and 32 MiB
        del a, b
rounds(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(10)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_kept_freed_memory_is_reused_with_fewer_page_faults():
    """keep_freed_memory: blocks made again after they were freed come mostly from the
    process's own heap; with glibc's defaults they are fresh memory, a fault per 4 KiB page
    (measured: 82,000-86,000 faults over these 10 rounds by default, 16,000-33,000 kept)."""
    import subprocess
    import sys

    def faults(mode):
        done = subprocess.run(
            [sys.executable, "-c", KEPT, mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    default, kept = faults("default"), faults("keep")
    assert default > 60_000 and kept < default / 2, (default, kept)


def test_keeping_freed_memory_changes_no_number(tmp_path):
    """The same run with and without keep_freed_memory, each in a process of its own: the same
    parameters, to the bit."""
    from tests.helpers import run_cli

    runs = {}
    for keep in ("true", "false"):
        out = tmp_path / keep
        args = ["train.iterations=2", f"keep_freed_memory={keep}", f"hydra.run.dir={out}"]
        done = run_cli(args, tmp_path)
        assert done.returncode == 0, done.stderr
        runs[keep] = torch.load(out / "checkpoints" / "last.pt", weights_only=False)["learner"]
    assert runs["true"].keys() == runs["false"].keys()
    for group in runs["true"]:
        for name, value in runs["true"][group].items():
            assert torch.equal(value, runs["false"][group][name]), (group, name)
