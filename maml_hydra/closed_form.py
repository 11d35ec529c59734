"""MAML-TRPO's meta-gradient and exact Fisher-vector product in closed form, for the Gaussian MLP
policy adapted by one REINFORCE step of a fixed size (the MAML paper's setting), or by none
(the pretrained and oracle baselines, J_t = I).

The autograd path (``meta_optimizers.fisher_vector_product``) builds the reverse graph of the
vmapped adaptation and differentiates it twice per conjugate-gradient step; profiling showed
its time going to memory-bound elementwise work of that graph, not to FLOPs. Here the same
products are written out by hand, with every quantity that does not depend on the CG vector
(the support and query activations, the inner loss's first derivatives, the adapted
parameters) computed once per meta-iteration:

    F v = sum_t J_t^T G_t J_t v,   J_t = I - alpha H_t,

J_t the Jacobian of task t's adapted parameters theta'_t = theta - alpha grad L_t(theta), H_t
the Hessian of its inner loss L_t, and G_t the Gauss-Newton matrix of the mean KL at theta'_t
(the Gaussian's Fisher, 1/sigma^2 for the mean and 2 for the log_std, pulled back through the
MLP). H_t v is the directional derivative of the inner-loss gradient: a forward tangent through
the MLP, then the tangent of its backward pass (Pearlmutter's R-operator, written for a stack
of affine layers and one elementwise nonlinearity). The meta-gradient is J_t^T applied to the
surrogate's gradient at theta'_t.

``applies`` says when this path holds; tests/test_closed_form.py checks every product against
the autograd path and the vmapped adaptation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.func import jvp

from maml_hydra.config import Estimator
from maml_hydra.estimators import ESTIMATORS
from maml_hydra.learner import MAML, MetaBatch
from maml_hydra.sampling import Trajectories


def applies(learner: MAML) -> str | None:
    """None if the closed form computes this learner's products, else why not."""
    if learner.num_steps not in (0, 1):
        return "inner.num_steps is not 0 or 1"
    if learner.learn_lr:
        return "inner.learn_lr"
    if not isinstance(learner.policy.log_std, torch.nn.Parameter):
        return "policy.learn_std is false"
    if learner.num_steps == 0:  # the pretrained and oracle baselines: J = I
        return None
    if learner.first_order:
        return "inner.first_order"
    if learner.inner_objective is not ESTIMATORS[Estimator.reinforce]:
        return "inner.estimator is not reinforce"
    return None


# ---------------------------------------------------------------------------- the MLP, by hand
class Layers:
    """theta as the MLP's affine layers (weight [out, in], bias [out]; a leading task dimension
    when per task) and the log_std [A] (or [T, A])."""

    def __init__(self, weights: list[Tensor], biases: list[Tensor], log_std: Tensor) -> None:
        self.weights, self.biases, self.log_std = weights, biases, log_std

    @property
    def per_task(self) -> bool:
        return self.log_std.dim() == 2

    def named(self, names: list[str]) -> dict[str, Tensor]:
        """By the policy's parameter names: ``names`` lists the weights and biases, layer by
        layer, then the log_std."""
        tensors = [t for pair in zip(self.weights, self.biases, strict=True) for t in pair]
        return dict(zip(names, [*tensors, self.log_std], strict=True))

    def axpy(self, alpha: float, other: Layers) -> Layers:
        """self + alpha * other, broadcasting shared against per-task."""
        return Layers(
            [w + alpha * o for w, o in zip(self.weights, other.weights, strict=True)],
            [b + alpha * o for b, o in zip(self.biases, other.biases, strict=True)],
            self.log_std + alpha * other.log_std,
        )


def _rows(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])


def _affine(x: Tensor, w: Tensor, b: Tensor, into: Tensor | None = None) -> Tensor:
    """x [T, N, in] -> x w^T + b (written into ``into`` if given): one GEMM for a shared w
    [out, in], a batched one for per-task w [T, out, in]."""
    if w.dim() == 2:
        rows = torch.addmm(b, _rows(x), w.t(), out=None if into is None else _rows(into))
        return rows.view(*x.shape[:-1], -1)
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2), out=into)


def _matmul(x: Tensor, w: Tensor, out: Tensor | None = None, into: Tensor | None = None) -> Tensor:
    """x [T, N, out] -> x w, w [out, in] or [T, out, in]: added to ``out`` in place, or
    written into ``into``, or a new tensor."""
    if w.dim() == 2:
        if out is not None:
            _rows(out).addmm_(_rows(x), w)
            return out
        rows = torch.mm(_rows(x), w, out=None if into is None else _rows(into))
        return rows.view(*x.shape[:-1], -1)
    if out is not None:
        return out.baddbmm_(x, w)
    return torch.bmm(x, w, out=into)


def _outer(dz: Tensor, h: Tensor, per_task: bool, out: Tensor | None = None) -> Tensor:
    """The sum over steps of dz h^T (+ out, accumulated in place): [T, out, in] per task, or
    [out, in] summed over the tasks too. Where h is the narrower (the observations), the GEMM
    runs as (h^T dz)^T: MKL takes nearly as long for [64, N] x [N, 2] as for [64, N] x [N, 64],
    and 6x less for the same product the other way round (scripts/bench.py --outer)."""
    if h.shape[-1] < dz.shape[-1]:
        product = _outer(h, dz, per_task).transpose(-1, -2)
        return product if out is None else out.add_(product)
    if per_task:
        return (
            torch.bmm(dz.transpose(1, 2), h) if out is None else out.baddbmm_(dz.transpose(1, 2), h)
        )
    if out is None:
        return _rows(dz).t() @ _rows(h)
    return out.addmm_(_rows(dz).t(), _rows(h))


# Each takes the pre-activation z and, optionally, ``buffer``: name -> a scratch tensor shaped as
# z. With a buffer, tanh and ReLU write their derivatives into it and phi(z) over z itself (z is
# then a scratch tensor of the caller's); without, or for the others, z is left as it was.
def _tanh(z: Tensor, buffer=None) -> tuple[Tensor, Tensor, Tensor]:
    if buffer is None:
        h = torch.tanh(z)
        d1 = 1 - h * h
        return h, d1, -2 * h * d1
    h = z.tanh_()
    d1 = torch.mul(h, h, out=buffer("d1")).neg_().add_(1)  # 1 - h^2, the same rounding
    return h, d1, torch.mul(h, d1, out=buffer("d2")).mul_(-2)


def _relu(z: Tensor, buffer=None) -> tuple[Tensor, Tensor, Tensor | None]:
    if buffer is None:
        return torch.relu(z), (z > 0).to(z.dtype), None  # None: phi'' = 0
    d1 = torch.gt(z, 0, out=buffer("d1"))
    return z.clamp_min_(0), d1, None  # relu is clamp_min(z, 0)


def _elu(z: Tensor, buffer=None) -> tuple[Tensor, Tensor, Tensor]:
    h = torch.nn.functional.elu(z)
    below = torch.where(z > 0, 0.0, h + 1)  # exp(z) below 0
    return h, torch.where(z > 0, 1.0, below), below


def _gelu(z: Tensor, buffer=None) -> tuple[Tensor, Tensor, Tensor]:
    density = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return z * cdf, cdf + z * density, density * (2 - z * z)


# phi(z), phi'(z), phi''(z) in closed form for the policy's nonlinearities (config.Activation)
DERIVATIVES = {torch.nn.Tanh: _tanh, torch.nn.ReLU: _relu, torch.nn.ELU: _elu, torch.nn.GELU: _gelu}


def derivatives(module: torch.nn.Module):
    """(z, buffer=None) -> (phi(z), phi'(z), phi''(z)) for a nonlinearity module: closed form
    for the ones above at their default settings, forward-mode autodiff for any other."""
    known = DERIVATIVES.get(type(module))
    defaults = {torch.nn.ELU: ("alpha", 1.0), torch.nn.GELU: ("approximate", "none")}
    name, value = defaults.get(type(module), (None, None))
    if known is not None and (name is None or getattr(module, name) == value):
        return known

    def generic(z: Tensor, buffer=None) -> tuple[Tensor, Tensor, Tensor]:
        ones = torch.ones_like(z)
        h, d1 = jvp(module, (z,), (ones,))
        _, d2 = jvp(lambda u: jvp(module, (u,), (ones,))[1], (z,), (ones,))
        return h, d1, d2

    return generic


class Scratch:
    """Scratch tensors by name, kept from one use to the next. A fresh tensor over glibc's mmap
    threshold (at most 32 MiB: every [40 tasks x 4,000 steps x 100] activation is 64 MB) is
    fresh memory from the OS, a page fault and a zeroed page per 4 KiB, and it goes back to the
    OS when freed; a kept one costs nothing the next time. A ``ClosedForm`` keeps its own, and
    rllab's finite-difference product, which builds a ``ClosedForm`` per KL gradient (two per
    product), hands one ``Scratch`` to all of them. Only one user may hold a name at a time."""

    def __init__(self) -> None:
        self.tensors: dict[tuple, Tensor] = {}

    def __call__(self, key: tuple, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """The tensor kept under ``key``, or a new one if there is none of this shape and of
        ``like``'s dtype and device; its contents are whatever the last user left."""
        out = self.tensors.get(key)
        if out is None or (out.shape, out.dtype, out.device) != (shape, like.dtype, like.device):
            self.tensors.pop(key, None)  # the old one is freed before the new one is made
            out = self.tensors[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return out


class Forward:
    """One pass of the MLP mean on x [T, N, D] with every activation kept: the inputs of each
    affine layer and the nonlinearity's first and second derivatives at each pre-activation.
    Its hidden tensors live in ``scratch`` under ``role`` (one ``Forward`` per role at a time)."""

    def __init__(
        self, layers: Layers, x: Tensor, activation, scratch: Scratch | None = None, role: str = ""
    ) -> None:
        self.layers = layers
        self.scratch = Scratch() if scratch is None else scratch
        self.role = role
        self.inputs = [x]
        self.d1: list[Tensor] = []
        self.d2: list[Tensor] = []
        h = x
        for i, (w, b) in enumerate(zip(layers.weights[:-1], layers.biases[:-1], strict=True)):
            shape = (*h.shape[:-1], w.shape[-2])
            z = _affine(h, w, b, into=self.scratch((role, "h", i), shape, h))  # phi(z) over it
            h, d1, d2 = activation(z, lambda name, i=i, z=z: self.buffer((name, i), z))
            self.inputs.append(h)
            self.d1.append(d1)
            self.d2.append(d2)
        self.mean = _affine(h, layers.weights[-1], layers.biases[-1])

    def buffer(self, key: tuple, like: Tensor) -> Tensor:
        """A scratch tensor shaped as ``like`` (a hidden activation), kept for the next call:
        the products run many times on the same shapes (``Scratch``)."""
        return self.scratch((self.role, *key), like.shape, like)

    def tangent(self, dl: Layers) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """Forward-mode derivative in direction dl: (tangents of the hidden pre-activations, of
        every layer's input (None for the observations), of the mean). The hidden ones are
        scratch tensors, overwritten by the next call."""
        dzs: list[Tensor] = []
        dhs: list[Tensor | None] = [None]
        for i, (w, dw, db) in enumerate(
            zip(self.layers.weights, dl.weights, dl.biases, strict=True)
        ):
            hidden = i < len(self.d1)
            dz = _affine(
                self.inputs[i], dw, db, into=self.buffer(("dz", i), self.d1[i]) if hidden else None
            )
            if i:
                _matmul(dhs[i], w.transpose(-1, -2), out=dz)
            if not hidden:
                return dzs, dhs, dz
            dzs.append(dz)
            dhs.append(torch.mul(self.d1[i], dz, out=self.buffer(("dh", i), dz)))
        raise AssertionError("unreachable")

    def backward(self, g: Tensor, keep: bool = True):
        """Reverse pass of a cotangent g on the mean: (weight grads and bias grads per task, the
        cotangents on each hidden layer's output and on its pre-activation, bottom first).
        Without ``keep`` the hidden cotangents are scratch tensors (and not returned)."""
        n = len(self.layers.weights)
        dws: list[Tensor] = [None] * n  # type: ignore[list-item]
        dbs: list[Tensor] = [None] * n  # type: ignore[list-item]
        es: list[Tensor] = [None] * (n - 1)  # type: ignore[list-item]
        dzs: list[Tensor] = [None] * (n - 1)  # type: ignore[list-item]
        dz = g
        for i in reversed(range(n)):
            dws[i] = _outer(dz, self.inputs[i], per_task=True)
            dbs[i] = dz.sum(1)
            if not i:
                break
            if keep:
                d1 = self.d1[i - 1]
                es[i - 1] = _matmul(dz, self.layers.weights[i], into=self.buffer(("e", i), d1))
                dz = dzs[i - 1] = torch.mul(es[i - 1], d1, out=self.buffer(("e_d1", i), d1))
            else:
                into = self.buffer(("back", i - 1), self.d1[i - 1])
                dz = _matmul(dz, self.layers.weights[i], into=into).mul_(self.d1[i - 1])
        return dws, dbs, es, dzs


# ------------------------------------------------------------------------- the MAML products
class ClosedForm:
    """Everything of one meta-batch that CG's products share, computed once at theta: TRPO's
    exact curvature by hand (``meta_optimizers.Curvature``). Its activations live in
    ``scratch`` (its own unless given one that no other live ``ClosedForm`` uses)."""

    linear = True  # the product is a matrix: x^T H x from CG's residual

    def __init__(
        self, learner: MAML, theta: Tensor, batch: MetaBatch, scratch: Scratch | None = None
    ) -> None:
        reason = applies(learner)
        if reason is not None:
            raise ValueError(f"the closed-form products do not apply: {reason}")
        self.learner = learner
        self.alpha = learner.lr
        linear = [m for m in learner.policy.mean if isinstance(m, torch.nn.Linear)]
        names = {id(p): n for n, p in learner.policy.named_parameters()}
        self.names = [names[id(p)] for m in linear for p in (m.weight, m.bias)]
        self.names.append(names[id(learner.policy.log_std)])
        self.theta = self.layers(theta)
        nonlinear = [m for m in learner.policy.mean if not isinstance(m, torch.nn.Linear)]
        self.activation = derivatives(nonlinear[0]) if nonlinear else None
        self.scratch = Scratch() if scratch is None else scratch

        self.steps = learner.num_steps
        if self.steps:
            self._adapt(batch.supports[0])
        else:  # no inner step: the query policy is theta itself, the same for every task
            self.adapted = self.theta
        self._query(batch.query)

    def _adapt(self, support: Trajectories) -> None:
        """The inner step on the support batch, with what H_t v needs of it."""
        steps = self._steps(support)
        self.fwd = Forward(self.theta, steps["obs"], self.activation, self.scratch, "support")
        # inner loss L_t = -sum_n c_n log pi(a_n | s_n): c = A mask / (valid steps of task t)
        c = steps["advantages"] * steps["mask"]
        self.c = (c / steps["mask"].sum(1, keepdim=True)).unsqueeze(-1)  # [T, N, 1]
        inv_var = torch.exp(-2 * self.theta.log_std)  # [A]
        diff = steps["actions"] - self.fwd.mean
        self.c_inv_var = self.c * inv_var  # d^2 L / d mean^2, diagonal [T, N, A]
        self.g_mean = -self.c * diff * inv_var  # dL/dmean [T, N, A]
        self.c_z2 = (self.c * diff.pow(2) * inv_var).sum(1)  # sum_n c z^2 [T, A]
        g_log_std = -(self.c_z2 - self.c.sum(1))  # dL/dlog_std [T, A]
        dws, dbs, es, self.cotangents = self.fwd.backward(self.g_mean)
        # the backward pass's second-order term, e * phi''(z), for every H v
        self.e_d2 = [
            None if d2 is None else torch.mul(e, d2, out=self.fwd.buffer(("e_d2", i), d2))
            for i, (e, d2) in enumerate(zip(es, self.fwd.d2, strict=True))
        ]
        self.adapted = self.theta.axpy(-self.alpha, Layers(dws, dbs, g_log_std))

    def _query(self, query: Trajectories) -> None:
        """The adapted policies on the query batch, with what G_t u and the surrogate need."""
        q = self._steps(query)
        self.query = q
        self.qfwd = Forward(self.adapted, q["obs"], self.activation, self.scratch, "query")
        log_std = self.adapted.log_std.expand(q["obs"].shape[0], -1)  # [T, A]
        self.q_log_std = log_std.unsqueeze(1)  # [T, 1, A]
        self.q_inv_var = torch.exp(-2 * self.q_log_std)
        weights = q["mask"] / q["mask"].sum(1, keepdim=True) / q["mask"].shape[0]
        self.q_weights = weights.unsqueeze(-1)  # [T, M, 1]
        self.q_log_std_weight = 2 * weights.sum(1, keepdim=True)  # [T, 1]
        self.q_fisher = self.q_weights * self.q_inv_var  # the mean's Fisher, weighted [T, M, A]

    @staticmethod
    def _steps(traj: Trajectories) -> dict[str, Tensor]:
        """A batch's fields with episodes and steps in one axis: [T, E*H, ...]."""
        t = traj.obs.shape[0]
        return {
            "obs": traj.obs.reshape(t, -1, traj.obs.shape[-1]),
            "actions": traj.actions.reshape(t, -1, traj.actions.shape[-1]),
            "mask": traj.mask.reshape(t, -1),
            "advantages": traj.advantages.reshape(t, -1),
            "log_prob": traj.log_prob.reshape(t, -1),
            "mean": traj.mean.reshape(t, -1, traj.mean.shape[-1]),
            "log_std": traj.log_std.unsqueeze(1),  # [T, 1, A]
        }

    # ------------------------------------------------------------------------- pieces
    def layers(self, flat: Tensor) -> Layers:
        """A flat vector in the learner's layout ([P], or [T, P] per task) as Layers of views."""
        layout, lead = self.learner.layout, flat.shape[:-1]
        chunks = dict(zip(layout.names, flat.split(layout.sizes, -1), strict=True))
        shapes = dict(zip(layout.names, layout.shapes, strict=True))
        parts = [chunks[n].reshape(*lead, *shapes[n]) for n in self.names]
        return Layers(parts[:-1:2], parts[1:-1:2], parts[-1])

    def flat(self, layers: Layers) -> Tensor:
        """Layers ([P] or per task [T, P]) as a flat vector in the learner's layout."""
        named = layers.named(self.names)
        lead = layers.log_std.dim() - 1
        return torch.cat([named[n].flatten(lead) for n in self.learner.layout.names], dim=-1)

    def inner_hvp(self, dl: Layers, per_task_out: bool) -> Layers:
        """H_t dl for every task ([T, ...] Layers) or summed over tasks (shared Layers): the
        directional derivative of the inner loss's gradient at theta."""
        fwd = self.fwd
        dzs, dhs, dmean = fwd.tangent(dl)
        ds = dl.log_std if dl.per_task else dl.log_std.expand_as(self.c_z2)  # [T, A]
        dg = torch.addcmul(self.c_inv_var * dmean, self.g_mean, ds.unsqueeze(1), value=-2)
        d_log_std = -2 * (self.g_mean * dmean).sum(1) + 2 * self.c_z2 * ds
        if not per_task_out:
            d_log_std = d_log_std.sum(0)
        n = len(fwd.layers.weights)
        dws: list[Tensor] = [None] * n  # type: ignore[list-item]
        dbs: list[Tensor] = [None] * n  # type: ignore[list-item]
        g, tg = self.g_mean, dg  # the cotangent on layer i's output, and its tangent
        for i in reversed(range(n)):
            dws[i] = _outer(tg, fwd.inputs[i], per_task_out)
            dbs[i] = tg.sum(1) if per_task_out else tg.sum((0, 1))
            if not i:
                break
            _outer(g, dhs[i], per_task_out, out=dws[i])
            # in the memory of the support's backward pass's e (``Forward.backward``), dead
            # since ``_adapt`` took e * phi''(z) from it
            te = _matmul(tg, fwd.layers.weights[i], into=fwd.buffer(("e", i), fwd.d1[i - 1]))
            _matmul(g, dl.weights[i], out=te)
            g = self.cotangents[i - 1]
            tg = te.mul_(fwd.d1[i - 1])
            if self.e_d2[i - 1] is not None:
                tg.addcmul_(self.e_d2[i - 1], dzs[i - 1])
        return Layers(dws, dbs, d_log_std)

    def query_fisher(self, du: Layers) -> Layers:
        """G_t du_t at the adapted parameters, per task."""
        _, _, dmean = self.qfwd.tangent(du)
        cotangent = dmean * self.q_fisher
        dws, dbs, _, _ = self.qfwd.backward(cotangent, keep=False)
        return Layers(dws, dbs, du.log_std * self.q_log_std_weight)

    def pull_back(self, y: Layers) -> Tensor:
        """sum_t J_t^T y_t = sum_t (y_t - alpha H_t y_t), flat."""
        if not self.steps:
            return self.flat(y).sum(0)
        hy = self.inner_hvp(y, per_task_out=False)
        return self.flat(y).sum(0) - self.alpha * self.flat(hy)

    # ------------------------------------------------------------------------ products
    def fisher_product(self, damping: float):
        """v -> (F + damping I) v, F the Hessian of the adapted policies' mean KL at theta_old
        (``meta_optimizers.fisher_vector_product``'s product)."""

        def product(v: Tensor) -> Tensor:
            dl = self.layers(v)
            u = dl.axpy(-self.alpha, self.inner_hvp(dl, per_task_out=True)) if self.steps else dl
            return self.pull_back(self.query_fisher(u)) + damping * v

        return product

    def surrogate_gradient(self) -> tuple[Tensor, Tensor]:
        """The TRPO surrogate of the adapted policies on the query data and its gradient with
        respect to theta (``meta_optimizers.meta_gradient``'s)."""
        q = self.query
        mean = self.qfwd.mean
        log_std = self.q_log_std
        diff = q["actions"] - mean
        z2 = diff.pow(2) * self.q_inv_var
        log_prob = (-0.5 * z2 - log_std).sum(-1) - 0.5 * mean.shape[-1] * torch.log(
            torch.tensor(2 * torch.pi, dtype=mean.dtype)
        )
        ratio = torch.exp(log_prob - q["log_prob"])
        coef = (ratio * q["advantages"] * self.q_weights.squeeze(-1)).unsqueeze(-1)  # [T, M, 1]
        loss = -coef.sum()
        g_mean = -coef * diff * self.q_inv_var
        g_log_std = -(coef * (z2 - 1)).sum(1)
        dws, dbs, _, _ = self.qfwd.backward(g_mean, keep=False)
        return loss, self.pull_back(Layers(dws, dbs, g_log_std))

    def kl_gradient(self) -> Tensor:
        """The gradient with respect to theta of the adapted policies' mean KL(old || new) on
        the query data (``meta_optimizers.mean_kl``), through the adaptation: the vector that
        rllab's finite-difference product differences at theta +- e v. Zero at theta_old."""
        q = self.query
        diff = self.qfwd.mean - q["mean"]
        var_ratio = torch.exp(2 * (q["log_std"] - self.q_log_std))  # sigma_old^2 / sigma^2
        g_mean = self.q_weights * diff * self.q_inv_var
        g_log_std = (self.q_weights * (1 - var_ratio - diff.pow(2) * self.q_inv_var)).sum(1)
        dws, dbs, _, _ = self.qfwd.backward(g_mean, keep=False)
        return self.pull_back(Layers(dws, dbs, g_log_std))
