"""Inner estimators (reinforce, dice, lvc) and ProMP against slow, obvious computations."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.func import grad, hessian, jacrev, vmap

from maml_hydra.checkpoint import config_from_yaml, load_checkpoint
from maml_hydra.config import Estimator, InnerConfig, ProMPConfig
from maml_hydra.estimators import episode_cumsum
from maml_hydra.learner import MAML
from maml_hydra.meta_optimizers import ProMP, clipped_surrogate_loss, inner_kls, pre_update_kl
from maml_hydra.policy import GaussianMLPPolicy, gaussian_log_prob
from maml_hydra.sampling import Trajectories
from tests.helpers import TINY_BASELINES, build, cli

ESTIMATORS = [e.value for e in Estimator]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_inner_gradient_is_the_reinforce_policy_gradient(estimator):
    """vmapped over tasks, against a per-task loop of the textbook policy gradient
    E[grad log pi(a|s) A] taken by autograd on the policy module."""
    learner, theta, batch = build(num_steps=1, tasks=4, estimator=estimator)
    support = batch.supports[0]
    params = {k: v.detach() for k, v in learner.layout.unflatten(theta).items()}
    fast = vmap(grad(learner.task_inner_loss), in_dims=(None, 0))(params, support)
    policy = learner.policy
    for i in range(support.obs.shape[0]):
        mean, log_std = policy(support.obs[i])
        log_prob = gaussian_log_prob(mean, log_std, support.actions[i])
        mask = support.mask[i]
        loss = -(log_prob * support.advantages[i] * mask).sum() / mask.sum()
        slow = torch.autograd.grad(loss, list(policy.parameters()))
        for (name, g_fast), g_slow in zip(fast.items(), slow, strict=True):
            assert torch.allclose(g_fast[i], g_slow, atol=1e-6), (estimator, name)


def test_episode_cumsum_restarts_after_every_end():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    ends = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0, 0.0]])
    expected = torch.tensor([[1.0, 3.0, 3.0, 7.0, 12.0], [1.0, 1.0, 1.0, 2.0, 1.0]])
    assert torch.equal(episode_cumsum(values, ends), expected)


def one_task(policy: GaussianMLPPolicy, seed: int = 0) -> Trajectories:
    """Two rows of 5 steps: row 0 holds two episodes (steps 0-1, 2-4), row 1 one episode of 4
    steps and a step outside the batch. Sampled by ``policy`` itself (float64)."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(2, 5, 2, generator=gen, dtype=torch.float64)
    actions = torch.randn(2, 5, 2, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.float64)
    ends = torch.tensor([[0, 1, 0, 0, 1], [0, 0, 0, 1, 0]], dtype=torch.float64)
    advantages = torch.randn(2, 5, generator=gen, dtype=torch.float64) * mask
    with torch.no_grad():
        mean, log_std = policy(obs)
        log_prob = gaussian_log_prob(mean, log_std, actions)
    return Trajectories(
        obs, actions, torch.zeros_like(mask), mask, log_prob, mean, log_std, advantages, ends
    )


def episodes_of(ends: torch.Tensor) -> list[list[int]]:
    """Episode number of every step, row by row, counted by hand."""
    ids = []
    for row in ends.tolist():
        k, out = 0, []
        for end in row:
            out.append(k)
            k += int(end)
        ids.append(out)
    return ids


def hand_hessians(learner: MAML, theta: torch.Tensor, traj: Trajectories):
    """The score-function pieces, step by step: W = sum_t A_t hess l_t, and the outer products
    sum_{a,b} grad l_a grad l_b^T A_max(a,b) over pairs of steps of one episode, split into the
    pairs a = b (diagonal) and a != b (cross)."""

    def log_probs(th):
        mean, log_std = learner.task_dist(learner.layout.unflatten(th), traj.obs)
        return gaussian_log_prob(mean, log_std, traj.actions)

    weighted = hessian(lambda th: (log_probs(th) * traj.advantages * traj.mask).sum())(theta)
    g = jacrev(log_probs)(theta)  # [E, H, P]
    diagonal = torch.zeros_like(weighted)
    cross = torch.zeros_like(weighted)
    episode = episodes_of(traj.ends)
    rows, steps = traj.mask.shape
    for e in range(rows):
        for a in range(steps):
            for b in range(steps):
                if not (traj.mask[e, a] and traj.mask[e, b] and episode[e][a] == episode[e][b]):
                    continue
                term = torch.outer(g[e, a], g[e, b]) * traj.advantages[e, max(a, b)]
                if a == b:
                    diagonal += term
                else:
                    cross += term
    return weighted, diagonal, cross


def tiny_learner(estimator: str) -> MAML:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, [3], "tanh", init_log_std=-0.3).double()
    return MAML(policy, InnerConfig(estimator=Estimator(estimator)), 0.99, 1.0)


def inner_hessian(estimator: str, traj: Trajectories | None = None):
    learner = tiny_learner(estimator)
    theta = learner.parameters()
    traj = traj if traj is not None else one_task(learner.policy)
    loss = lambda th: learner.task_inner_loss(learner.layout.unflatten(th), traj)  # noqa: E731
    return hessian(loss)(theta), learner, theta, traj


def test_the_second_derivative_through_dice_is_the_score_function_hessian():
    got, learner, theta, traj = inner_hessian("dice")
    weighted, diagonal, cross = hand_hessians(learner, theta, traj)
    n = traj.mask.sum()
    expected = -(weighted + diagonal + cross) / n
    assert cross.abs().max() > 1e-2  # the case has cross terms to get right
    assert torch.allclose(got, expected, atol=1e-10), (got - expected).abs().max()


def test_lvc_drops_exactly_the_cross_terms_of_dice():
    dice, learner, theta, traj = inner_hessian("dice")
    lvc, _, _, _ = inner_hessian("lvc", traj)
    reinforce, _, _, _ = inner_hessian("reinforce", traj)
    weighted, diagonal, cross = hand_hessians(learner, theta, traj)
    n = traj.mask.sum()
    assert torch.allclose(lvc, -(weighted + diagonal) / n, atol=1e-10)
    assert torch.allclose(dice - lvc, -cross / n, atol=1e-10)
    assert torch.allclose(reinforce, -weighted / n, atol=1e-10)


def promp(kl_coef: float = 0.1, **overrides) -> tuple[ProMP, MAML, torch.Tensor, object]:
    learner, theta, batch = build(num_steps=2, estimator="lvc")
    cfg = ProMPConfig(kl_coef=kl_coef, **overrides)
    return ProMP(cfg, learner), learner, theta, batch


def test_promp_objective_is_the_clipped_loss_plus_the_inner_kl_penalties():
    optimizer, learner, theta, batch = promp(kl_coef=0.3)
    moved = theta + 0.05 * torch.randn(theta.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        optimizer.param.copy_(moved)
    loss, _, (mean, log_std) = optimizer.objective(batch)
    clipped, _ = clipped_surrogate_loss(mean, log_std, batch.query, 0.3, 0.0)
    before, _ = learner.trace(moved, batch)
    kls = inner_kls(before, batch.supports)
    # step 0's KL is the pre-update policy's, computed without the trace
    assert torch.allclose(kls[0], pre_update_kl(learner, moved, batch.supports[0]), atol=1e-7)
    assert kls.shape == (2,) and (kls > 0).all()
    assert torch.allclose(loss, clipped + 0.3 * kls.sum(), atol=1e-7)


def test_promp_adapts_its_kl_coefficients_towards_the_target():
    optimizer, _, theta, batch = promp(kl_coef=0.1, kl_target=1e-9)  # every KL above target
    optimizer.step(theta, batch)
    assert torch.equal(optimizer.kl_coefs, torch.tensor([0.2, 0.2]))
    optimizer, _, theta, batch = promp(kl_coef=0.1, kl_target=1e3)  # every KL below target
    _, metrics = optimizer.step(theta, batch)
    assert torch.equal(optimizer.kl_coefs, torch.tensor([0.05, 0.05]))
    assert metrics["kl_coef_1"] == pytest.approx(0.05) and metrics["inner_kl_0"] > 0
    optimizer, _, theta, batch = promp(kl_coef=0.1, kl_target=1e-9, kl_adaptive=False)
    optimizer.step(theta, batch)
    assert torch.equal(optimizer.kl_coefs, torch.tensor([0.1, 0.1]))


def test_promp_sweeps_over_baselines_and_logs_what_ran(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "algorithm=promp", "baseline=maml,pretrained", *TINY_BASELINES]
    result = cli([*args, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert result.returncode == 0, result.stderr
    for name, steps in (("maml", 1), ("pretrained", 0)):
        run = sweep / f"navigation_{name}_promp_seed0_job{int(name == 'pretrained')}"
        cfg = config_from_yaml(load_checkpoint(run / "checkpoints" / "last.pt")["config"])
        assert cfg.algorithm.name == "promp" and cfg.inner.estimator is Estimator.lvc
        assert cfg.inner.num_steps == steps
        tb = EventAccumulator(str(run / "tensorboard"))
        tb.Reload()
        tags = set(tb.Tags()["scalars"])
        assert ("train/kl_coef_0" in tags) == (steps == 1), name
        assert "train/ppo_loss" in tags
