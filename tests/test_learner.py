"""The vmapped MAML learner against a slow, obvious per-task autograd loop."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from maml_hydra.config import Activation, InnerConfig, NavigationConfig
from maml_hydra.learner import LR_PREFIX, MAML, MetaBatch
from maml_hydra.meta_optimizers import meta_gradient, surrogate_loss
from maml_hydra.policy import GaussianMLPPolicy, gaussian_log_prob
from maml_hydra.sampling import SamplingPlan
from maml_hydra.tasks.navigation import Navigation2D
from tests.helpers import build


def task_slice(batch: MetaBatch, i: int) -> MetaBatch:
    return MetaBatch(
        tuple(type(s)(*(f[i : i + 1] for f in s)) for s in batch.supports),
        type(batch.query)(*(f[i : i + 1] for f in batch.query)),
    )


def loop_meta_gradient(learner: MAML, theta: torch.Tensor, batch: MetaBatch, first_order: bool):
    """Per task: explicit autograd inner steps (create_graph for second order), then the
    surrogate on that task's query data; the per-task losses are averaged over tasks."""
    leaf = theta.clone().requires_grad_()
    num_tasks = batch.query.obs.shape[0]
    total = 0.0
    for i in range(num_tasks):
        one = task_slice(batch, i)
        meta = learner.layout.unflatten(leaf)
        params = {k: v for k, v in meta.items() if not k.startswith(LR_PREFIX)}
        for support in one.supports:
            traj = type(support)(*(f[0] for f in support))
            loss = learner.task_inner_loss(params, traj)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
            params = {
                k: p - meta.get(LR_PREFIX + k, learner.lr) * g
                for (k, p), g in zip(params.items(), grads, strict=True)
            }
        mean, log_std = functional_call(learner.policy, params, (one.query.obs[0],))
        total = total + surrogate_loss(mean[None], log_std[None], one.query) / num_tasks
    (grad,) = torch.autograd.grad(total, leaf)
    return total.detach(), grad


@pytest.mark.parametrize(
    "num_steps,first_order,learn_lr,estimator",
    [
        (1, False, False, "reinforce"),
        (1, True, False, "reinforce"),
        (2, False, False, "reinforce"),
        (2, True, False, "reinforce"),
        (0, False, False, "reinforce"),
        (1, False, True, "reinforce"),
        (2, True, True, "reinforce"),
        (2, False, False, "dice"),
        (2, False, False, "lvc"),
    ],
)
def test_vmapped_meta_gradient_equals_per_task_loop(num_steps, first_order, learn_lr, estimator):
    learner, theta, batch = build(num_steps, first_order, learn_lr=learn_lr, estimator=estimator)
    loss, grad, _, _ = meta_gradient(learner, theta, batch)
    loss_ref, grad_ref = loop_meta_gradient(learner, theta, batch, first_order)
    assert torch.allclose(loss, loss_ref, atol=1e-6)
    assert grad.norm() > 1e-3
    assert torch.allclose(grad, grad_ref, atol=1e-5), (grad - grad_ref).abs().max()


def test_first_order_gradient_is_the_query_gradient_at_the_adapted_parameters():
    """FOMAML: grad = mean_i grad_{theta'} L_i(theta'_i), theta'_i treated as constants."""
    learner, theta, batch = build(num_steps=1, first_order=True)
    _, grad, _, _ = meta_gradient(learner, theta, batch)
    num_tasks = batch.query.obs.shape[0]
    expected = torch.zeros_like(theta)
    for i in range(num_tasks):
        one = task_slice(batch, i)
        support = type(one.supports[0])(*(f[0] for f in one.supports[0]))
        params = learner.layout.unflatten(theta.clone().requires_grad_())
        grads = torch.autograd.grad(learner.task_inner_loss(params, support), list(params.values()))
        adapted = torch.cat(
            [(p - 0.1 * g).reshape(-1) for p, g in zip(params.values(), grads, strict=True)]
        )
        adapted = adapted.detach().requires_grad_()
        mean, log_std = functional_call(
            learner.policy, learner.layout.unflatten(adapted), (one.query.obs[0],)
        )
        loss = surrogate_loss(mean[None], log_std[None], one.query) / num_tasks
        expected += torch.autograd.grad(loss, adapted)[0]
    assert torch.allclose(grad, expected, atol=1e-5)


def test_zero_inner_steps_is_the_plain_policy_gradient():
    learner, theta, batch = build(num_steps=0)
    assert batch.supports == ()
    _, grad, _, _ = meta_gradient(learner, theta, batch)
    leaf = theta.clone().requires_grad_()
    q = batch.query
    mean, log_std = functional_call(learner.policy, learner.layout.unflatten(leaf), (q.obs,))
    log_prob = gaussian_log_prob(mean, log_std, q.actions)
    weights = q.mask / q.mask.sum(dim=(1, 2), keepdim=True) / q.mask.shape[0]
    pg_loss = -(torch.exp(log_prob - q.log_prob) * q.advantages * weights).sum()
    assert torch.allclose(grad, torch.autograd.grad(pg_loss, leaf)[0], atol=1e-6)


def test_two_inner_steps_equal_two_explicit_steps_on_fresh_data():
    learner, theta, batch = build(num_steps=2)
    params = learner.layout.unflatten(theta)
    adapted = torch.func.vmap(learner.task_adapt, in_dims=(None, 0))(params, batch.supports)
    for i in range(batch.query.obs.shape[0]):
        p = learner.layout.unflatten(theta.clone().requires_grad_())
        for support in batch.supports:
            traj = type(support)(*(f[i] for f in support))
            grads = torch.autograd.grad(learner.task_inner_loss(p, traj), list(p.values()))
            p = {
                k: (v - 0.1 * g).detach().requires_grad_()
                for (k, v), g in zip(p.items(), grads, strict=True)
            }
        for k in p:
            assert torch.allclose(adapted[k][i], p[k], atol=1e-6)
    # the second support batch was sampled with the once-adapted, per-task policy
    assert not torch.equal(batch.supports[0].log_std, batch.supports[1].log_std)


def test_sampling_is_stochastic_not_the_mode():
    _, _, batch = build(num_steps=1, episodes=50, horizon=20)
    for traj in (batch.supports[0], batch.query):
        z = (traj.actions - traj.mean) / traj.log_std.exp()[:, None, None, :]
        assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_adapted_mode_scores_the_adapted_policies_with_their_mean():
    """adaptation(adapted_mode=True), Meta-World's scoring: the support is sampled as in
    training (the same noise), the batch after the step acts with the adapted policies' mean,
    which is the mean of the adapted policies that a sampled batch reports."""
    learner, theta, _ = build(num_steps=1)
    env = Navigation2D(NavigationConfig(horizon=8), 3, 4)
    env.set_tasks(env.sample_tasks(3, torch.Generator().manual_seed(0)))
    plan = SamplingPlan(4)

    def batches(mode):
        steps = learner.adaptation(
            env, theta, torch.Generator().manual_seed(1), plan, 1, lambda _: 0.1, None, mode
        )
        return list(steps)

    (support, scored), (support_sampled, sampled) = batches(True), batches(False)
    assert torch.equal(support.actions, support_sampled.actions)
    assert torch.equal(scored.actions, scored.mean)
    assert not torch.equal(sampled.actions, sampled.mean)
    params = learner.layout.unflatten(theta)
    adapted = torch.func.vmap(learner.task_adapt, in_dims=(None, 0))(params, (support,))
    mean, _ = torch.func.vmap(learner.task_dist)(adapted, scored.obs)
    assert torch.allclose(scored.mean, mean, atol=1e-6)


def test_meta_sgd_step_sizes_are_meta_parameters_that_learn():
    learner, theta, batch = build(num_steps=1, learn_lr=True)
    names = learner.layout.names
    assert any(n.startswith(LR_PREFIX) for n in names)
    assert learner.layout.numel == 2 * sum(p.numel() for p in learner.policy.parameters())
    _, grad, _, _ = meta_gradient(learner, theta, batch)
    lr_grad = learner.layout.unflatten(grad)
    assert all(lr_grad[n].abs().sum() > 0 for n in names if n.startswith(LR_PREFIX))
    # round trip through load_parameters / state_dict
    learner.load_parameters(theta + 0.01)
    state = learner.state_dict()
    assert torch.allclose(learner.parameters(), theta + 0.01)
    learner.load_parameters(theta)
    learner.load_state_dict(state)
    assert torch.allclose(learner.parameters(), theta + 0.01)


def test_meta_sgd_adapts_with_its_learned_step_sizes_not_the_given_one():
    learner, theta, batch = build(num_steps=1, learn_lr=True)
    params = learner.layout.unflatten(theta)
    support = batch.supports[0]
    adapted = learner.adapt_step(params, support, lr=123.0, batched=False)  # lr is ignored
    for i in range(support.obs.shape[0]):
        traj = type(support)(*(f[i] for f in support))
        policy = {k: v for k, v in params.items() if not k.startswith(LR_PREFIX)}
        grads = torch.func.grad(learner.task_inner_loss)(policy, traj)
        for k, g in grads.items():
            expected = params[k] - params[LR_PREFIX + k] * g
            assert torch.allclose(adapted[k][i], expected, atol=1e-6)


def test_xavier_init_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, [100, 100], "relu", init="xavier")
    default = GaussianMLPPolicy(2, 2, [100, 100], "relu")
    layers = [m for m in policy.mean if isinstance(m, torch.nn.Linear)]
    others = [m for m in default.mean if isinstance(m, torch.nn.Linear)]
    for layer, other in zip(layers, others, strict=True):
        fan_out, fan_in = layer.weight.shape
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
        assert other.bias.abs().max() > 0  # nn.Linear's own init gives biases too
    with pytest.raises(KeyError, match="glorot"):
        GaussianMLPPolicy(2, 2, [8], "relu", init="glorot")


@pytest.mark.parametrize("name", [a.name for a in Activation])
def test_every_activation_choice_builds_its_torch_module(name):
    policy = GaussianMLPPolicy(2, 2, [8], name)
    assert type(policy.mean[1]).__name__.lower() == name


def test_sampling_plans_decide_rows_and_budgets_once():
    assert SamplingPlan.of("episodes", 4, 10, training=True) == SamplingPlan(4)
    assert SamplingPlan.of("steps", 4, 10, training=True) == SamplingPlan(4, 40)
    assert SamplingPlan.of("sequential", 4, 10, training=True) == SamplingPlan(1, 40, True)
    assert SamplingPlan.of("sequential", 6, 10, training=False) == SamplingPlan(6, 60)


@pytest.mark.parametrize(
    "activation,learn_std,hidden,rows",
    [
        ("tanh", True, [16, 8], 7),
        ("relu", False, [16, 8], 7),
        ("elu", True, [16, 8], 7),
        ("tanh", True, [64, 64], 20),  # the sizes of the samplers' GEMMs: MKL's own kernels
        ("relu", False, [100, 100], 20),
    ],
)
def test_the_samplers_policy_is_functional_call_to_the_bit(activation, learn_std, hidden, rows):
    """``sampling_dist`` (``GaussianMLPPolicy.at``: one GEMM or batched GEMM per layer) against
    ``functional_call`` on the whole batch (vmapped over the tasks for per-task params), to the
    bit, so that rollouts are unchanged; and against the obvious computation, task by task, to
    rounding (a GEMM's blocking depends on its row count). Shared and per-task params, a learned
    and a fixed log_std."""
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, hidden, activation, learn_std=learn_std)
    learner = MAML(policy, InnerConfig(learn_lr=True), 0.99, 1.0)  # step sizes among the params
    shared = dict(learner.layout.unflatten(learner.parameters().detach()))
    assert any(k.startswith(LR_PREFIX) for k in shared)
    tasks = 5
    per_task = {k: v + 0.1 * torch.randn(tasks, *v.shape) for k, v in shared.items()}
    obs = torch.randn(tasks, rows, 3)
    with torch.no_grad():
        for params, batched in ((shared, False), (per_task, True)):
            mean, log_std = learner.sampling_dist(params, batched)(obs)
            assert mean.shape == (tasks, rows, 2) and log_std.shape == (tasks, 2)
            own = {k: v for k, v in params.items() if not k.startswith(LR_PREFIX)}
            if batched:
                whole = torch.func.vmap(lambda p, o: functional_call(policy, p, (o,)))(own, obs)
            else:
                whole = functional_call(policy, own, (obs,))
            assert torch.equal(mean, whole[0])
            assert torch.equal(log_std, whole[1].expand(tasks, -1))
            for t in range(tasks):
                one = {k: v[t] for k, v in own.items()} if batched else own
                want_mean, want_std = functional_call(policy, one, (obs[t],))
                torch.testing.assert_close(mean[t], want_mean, rtol=1e-6, atol=1e-6)
                assert torch.equal(log_std[t], want_std)
