"""MAML-PPO: the clipped loss by hand, clipping gradients, one update, early stopping."""

from __future__ import annotations

import math

import torch

from maml_hydra.config import PPOConfig
from maml_hydra.meta_optimizers import PPO, clipped_surrogate_loss
from maml_hydra.sampling import Trajectories
from tests.helpers import build


def one_task_batch(mean_old, actions, advantages, log_std=0.0):
    """T=1 task, E=1 episode, H steps, 1-d actions."""
    h = len(actions)
    mean_old = torch.tensor(mean_old).view(1, 1, h, 1)
    actions = torch.tensor(actions).view(1, 1, h, 1)
    log_std_t = torch.full((1, 1), log_std)
    log_prob = -0.5 * (actions - mean_old).pow(2).sum(-1) - log_std - 0.5 * math.log(2 * math.pi)
    return Trajectories(
        obs=torch.zeros(1, 1, h, 2),
        actions=actions,
        rewards=torch.zeros(1, 1, h),
        mask=torch.ones(1, 1, h),
        log_prob=log_prob,
        mean=mean_old,
        log_std=log_std_t,
        advantages=torch.tensor(advantages).view(1, 1, h),
        ends=torch.nn.functional.one_hot(torch.tensor(h - 1), h).float().view(1, 1, h),
    )


def test_clipped_loss_equals_a_hand_computation():
    q = one_task_batch([0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [2.0, -1.0, 0.5])
    new_mean = torch.tensor([0.5, 0.5, 0.1]).view(1, 1, 3, 1)
    loss, clip_fraction = clipped_surrogate_loss(new_mean, torch.zeros(1, 1), q, 0.2, 0.0)
    expected, clipped = 0.0, 0
    for m, a, adv in zip([0.5, 0.5, 0.1], [1.0, -1.0, 0.5], [2.0, -1.0, 0.5], strict=True):
        r = math.exp(-0.5 * (a - m) ** 2 + 0.5 * a**2)
        expected += min(r * adv, min(max(r, 0.8), 1.2) * adv) / 3
        clipped += abs(r - 1) > 0.2
    assert math.isclose(loss.item(), -expected, rel_tol=1e-6)
    assert math.isclose(clip_fraction.item(), clipped / 3, rel_tol=1e-6)
    # the entropy bonus: H = log_std + 0.5 log(2 pi e) per action dimension
    with_entropy, _ = clipped_surrogate_loss(new_mean, torch.zeros(1, 1), q, 0.2, 0.1)
    assert math.isclose(
        with_entropy.item(), -expected - 0.1 * 0.5 * math.log(2 * math.pi * math.e), rel_tol=1e-6
    )


def test_clipping_removes_the_gradient_where_it_should():
    # step 0: ratio > 1 + eps with A > 0 -> clipped, no gradient
    # step 1: ratio < 1 - eps with A < 0 -> clipped, no gradient
    # step 2: ratio inside the range -> gradient
    # step 3: ratio > 1 + eps with A < 0 -> the unclipped term is the min: gradient
    q = one_task_batch([0.0] * 4, [1.0, 1.0, 0.0, 1.0], [1.0, -1.0, 1.0, -1.0])
    # means off the actions, so that d log pi / d mean = (a - mean) is never 0 by itself
    new_mean = torch.tensor([0.8, -1.0, 0.05, 0.8]).view(1, 1, 4, 1).requires_grad_()
    loss, _ = clipped_surrogate_loss(new_mean, torch.zeros(1, 1), q, 0.2, 0.0)
    (g,) = torch.autograd.grad(loss, new_mean)
    g = g.view(4)
    assert g[0] == 0 and g[1] == 0
    assert g[2] != 0 and g[3] != 0


def test_one_update_lowers_the_loss():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    ppo = PPO(PPOConfig(lr=1e-3, epochs=1, max_grad_norm=None), learner)
    new_theta, metrics = ppo.step(theta, batch)
    with torch.no_grad():
        before, _ = clipped_surrogate_loss(*learner.query_dist(theta, batch), batch.query, 0.2, 0.0)
        after, _ = clipped_surrogate_loss(
            *learner.query_dist(new_theta, batch), batch.query, 0.2, 0.0
        )
    assert after < before
    assert metrics["epochs"] == 1 and math.isclose(metrics["ppo_loss"], before.item(), abs_tol=1e-6)


def test_target_kl_stops_the_epochs_early():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    full = PPO(PPOConfig(lr=1e-2, epochs=4, num_minibatches=2), learner)
    _, metrics = full.step(theta, batch)
    assert metrics["epochs"] == 4
    early = PPO(PPOConfig(lr=1e-2, epochs=4, num_minibatches=2, target_kl=1e-9), learner)
    _, metrics = early.step(theta, batch)
    assert metrics["epochs"] == 1 and metrics["kl"] > 1e-9


def test_max_grad_norm_bounds_the_step():
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    ppo = PPO(PPOConfig(lr=1.0, epochs=1, max_grad_norm=1e-6), learner)
    ppo.optimizer = torch.optim.SGD([ppo.param], lr=1.0)
    new_theta, _ = ppo.step(theta, batch)
    assert (new_theta - theta).norm() <= 1e-6 * (1 + 1e-4)
