"""The closed-form meta-gradient and Fisher-vector product against autograd's (the slow, obvious
path through the vmapped adaptation), and TRPO's choice between them."""

from __future__ import annotations

import logging

import pytest
import torch
from torch.func import grad, jvp, vmap

from maml_hydra.closed_form import ClosedForm, Scratch, applies, derivatives
from maml_hydra.config import TRPOConfig
from maml_hydra.learner import ParamLayout
from maml_hydra.meta_optimizers import (
    TRPO,
    Autograd,
    FiniteDifference,
    finite_difference_hvp,
    fisher_vector_product,
    mean_kl,
    meta_gradient,
)
from maml_hydra.policy import GaussianMLPPolicy
from tests.helpers import build


def with_policy(hidden, activation, seed=0, **kwargs):
    """A learner and meta-batch of tests.helpers.build with another policy, theta moved off
    its initial values, and a third of the steps masked out (episodes of unequal length)."""
    learner, _, batch = build(**kwargs)
    torch.manual_seed(seed)
    learner.policy = GaussianMLPPolicy(2, 2, hidden, activation, init_log_std=-0.3)
    learner.layout = ParamLayout(learner.named_meta_parameters())
    theta = learner.parameters() + 0.2 * torch.randn(learner.layout.numel)
    gen = torch.Generator().manual_seed(seed)

    def ragged(traj):
        keep = (torch.rand(traj.mask.shape, generator=gen) > 0.33).to(traj.mask.dtype)
        return traj._replace(mask=traj.mask * keep)

    return (
        learner,
        theta,
        batch._replace(
            supports=tuple(ragged(s) for s in batch.supports), query=ragged(batch.query)
        ),
    )


@pytest.mark.parametrize(
    "hidden,activation,num_steps",
    [
        ([16, 16], "tanh", 1),
        ([16, 16], "relu", 1),
        ([12], "elu", 1),
        ([8, 8, 8], "gelu", 1),
        ([], "tanh", 1),
        ([16, 16], "tanh", 0),  # the pretrained and oracle baselines
    ],
)
def test_closed_form_products_equal_autograds(float64, hidden, activation, num_steps):
    learner, theta, batch = with_policy(
        hidden, activation, num_steps=num_steps, tasks=3, episodes=4, horizon=8
    )
    products = ClosedForm(learner, theta, batch)

    # the adapted parameters: the vmapped inner step
    if num_steps:
        adapted = vmap(learner.task_adapt, in_dims=(None, 0))(
            learner.layout.unflatten(theta), batch.supports
        )
        per_task = torch.cat([adapted[n].flatten(1) for n in learner.layout.names], dim=1)
        assert torch.allclose(products.flat(products.adapted), per_task)

    loss, gradient, outputs, vjp_fn = meta_gradient(learner, theta, batch)
    loss_cf, gradient_cf = products.surrogate_gradient()
    assert torch.allclose(loss_cf, loss, rtol=1e-12)
    assert gradient.norm() > 1e-3
    assert torch.allclose(gradient_cf, gradient, rtol=1e-9, atol=1e-12)

    fvp = fisher_vector_product(vjp_fn, outputs, batch.query.mask, 0.1)
    fvp_cf = products.fisher_product(0.1)
    for seed in range(3):
        v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(fvp_cf(v), fvp(v), rtol=1e-9, atol=1e-12)


def test_the_inner_hessian_vector_product_equals_forward_over_reverse(float64):
    learner, theta, batch = with_policy([16, 16], "tanh", tasks=3, episodes=4, horizon=8)
    products = ClosedForm(learner, theta, batch)
    support = batch.supports[0]

    def inner_gradient(th, traj):
        return grad(lambda t: learner.task_inner_loss(learner.layout.unflatten(t), traj))(th)

    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(3))
    exact = vmap(lambda traj: jvp(lambda th: inner_gradient(th, traj), (theta,), (v,))[1])(support)
    shared = products.inner_hvp(products.layers(v), per_task_out=True)
    assert torch.allclose(products.flat(shared), exact, rtol=1e-9, atol=1e-12)
    # a different direction per task, summed over tasks (J^T's half)
    per_task = torch.randn(3, theta.numel(), generator=torch.Generator().manual_seed(4))
    exact = vmap(lambda traj, u: jvp(lambda th: inner_gradient(th, traj), (theta,), (u,))[1])(
        support, per_task
    ).sum(0)
    summed = products.inner_hvp(products.layers(per_task), per_task_out=False)
    assert torch.allclose(products.flat(summed), exact, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "module",
    [torch.nn.Tanh(), torch.nn.ReLU(), torch.nn.ELU(), torch.nn.GELU(), torch.nn.ELU(alpha=0.5)],
)
def test_nonlinearity_derivatives_equal_forward_mode_autodiff(float64, module):
    z = torch.linspace(-3, 3, 101) + 0.013  # no exact 0, where ReLU's derivative is a choice
    h, d1, d2 = derivatives(module)(z)
    ones = torch.ones_like(z)
    h_ref, d1_ref = jvp(module, (z,), (ones,))
    _, d2_ref = jvp(lambda u: jvp(module, (u,), (ones,))[1], (z,), (ones,))
    assert torch.allclose(h, h_ref) and torch.allclose(d1, d1_ref)
    assert torch.allclose(torch.zeros_like(z) if d2 is None else d2, d2_ref, atol=1e-12)
    # into scratch tensors (phi(z) over z itself where the closed form does that): the same bits
    buffers: dict[str, torch.Tensor] = {}
    scratch = z.clone()
    got = derivatives(module)(scratch, lambda name: buffers.setdefault(name, torch.empty_like(z)))
    for a, b in zip(got, (h, d1, d2), strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"num_steps": 2}, "inner.num_steps is not 0 or 1"),
        ({"num_steps": 1, "first_order": True}, "inner.first_order"),
        ({"num_steps": 1, "learn_lr": True}, "inner.learn_lr"),
        ({"num_steps": 1, "estimator": "dice"}, "inner.estimator is not reinforce"),
        ({"num_steps": 1}, None),
        ({"num_steps": 0, "estimator": "dice"}, None),  # no inner step: nothing to estimate
    ],
)
def test_trpo_uses_the_closed_form_only_where_it_applies(caplog, kwargs, reason):
    learner, theta, batch = build(tasks=2, episodes=2, horizon=4, **kwargs)
    assert applies(learner) == reason
    with caplog.at_level(logging.INFO, logger="maml_hydra.meta_optimizers"):
        trpo = TRPO(TRPOConfig(), learner)
    assert trpo.closed_form == (reason is None)
    assert (reason is not None) == (f"no closed form: {reason}" in caplog.text)
    assert not TRPO(TRPOConfig(closed_form=False), learner).closed_form
    assert TRPO(TRPOConfig(hvp="finite_difference"), learner).closed_form == (reason is None)
    # one curvature per step, by TRPOConfig.hvp and the closed form's reach
    exact = ClosedForm if reason is None else Autograd
    for hvp, closed, kind in [
        ("gauss_newton", True, exact),
        ("gauss_newton", False, Autograd),
        ("finite_difference", True, FiniteDifference),
    ]:
        products = TRPO(TRPOConfig(hvp=hvp, closed_form=closed), learner).curvature(theta, batch)
        assert type(products) is kind and products.linear == (hvp == "gauss_newton")
    if reason is not None:
        with pytest.raises(ValueError, match=reason):
            ClosedForm(learner, theta, batch)


@pytest.mark.parametrize(
    "fraction,hvp", [(1.0, "gauss_newton"), (0.5, "gauss_newton"), (1.0, "finite_difference")]
)
def test_trpo_steps_the_same_with_and_without_the_closed_form(float64, fraction, hvp):
    learner, theta, batch = build(num_steps=1, tasks=4, episodes=8, horizon=10)
    mean, log_std = learner.query_dist(theta, batch)  # sampled by the adapted policies
    batch = batch._replace(query=batch.query._replace(mean=mean.detach(), log_std=log_std.detach()))
    steps = {}
    for closed in (True, False):
        cfg = TRPOConfig(
            max_kl=0.01,
            cg_damping=0.1,
            fvp_task_fraction=fraction,
            fvp_min_tasks=1,
            hvp=hvp,
            closed_form=closed,
        )
        trpo = TRPO(cfg, learner, seed=7)
        assert trpo.closed_form == closed
        steps[closed], metrics = trpo.step(theta, batch)
        assert metrics["line_search_failed"] == 0
    assert not torch.equal(steps[True], theta)
    scale = (steps[False] - theta).abs().max()
    assert (steps[True] - steps[False]).abs().max() <= 1e-8 * scale, (
        steps[True] - steps[False]
    ).abs().max() / scale


@pytest.mark.parametrize("num_steps,activation", [(1, "relu"), (0, "relu"), (1, "tanh")])
def test_closed_form_kl_gradient_and_finite_difference_product_equal_autograds(
    float64, num_steps, activation
):
    """rllab's finite-difference product (the paper's) differences KL gradients away from
    theta_old, where the KL's gradient is not zero and the ReLU's kinks matter. Its products
    follow one another on one ``Scratch``, each KL gradient's activations over the last's."""
    learner, theta, batch = with_policy(
        [16, 16], activation, num_steps=num_steps, tasks=3, episodes=4, horizon=8
    )
    th = theta.detach().requires_grad_()
    (expected,) = torch.autograd.grad(mean_kl(*learner.query_dist(th, batch), batch.query), th)
    got = ClosedForm(learner, theta, batch).kl_gradient()
    assert expected.norm() > 1e-3
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)

    slow = finite_difference_hvp(learner, theta, batch, 1.0, 0.1, closed=False)
    fast = finite_difference_hvp(learner, theta, batch, 1.0, 0.1, closed=True)
    for seed in range(3):
        v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(fast(v), slow(v), rtol=1e-8, atol=1e-10)
    # a ClosedForm on a used Scratch computes what a fresh one does, to the bit
    used = Scratch()
    ClosedForm(learner, theta + 0.1, batch, used).kl_gradient()
    assert used.tensors
    assert torch.equal(ClosedForm(learner, theta, batch, used).kl_gradient(), got)
