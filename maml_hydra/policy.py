"""The Gaussian MLP policy and the closed-form Gaussian quantities the losses use."""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import Tensor, nn

from maml_hydra.config import Activation, Init


class GaussianMLPPolicy(nn.Module):
    """pi(a|s) = N(mlp(s), diag(exp(log_std))^2) with a state-independent log_std, learnable
    unless ``learn_std`` is false (then a buffer: no inner step or meta-optimizer changes it).

    The MAML paper's policy (sec. 5.3): an MLP with two hidden layers of 100 ReLU units.
    ``forward`` returns ``(mean, log_std)``; call it through ``torch.func.functional_call`` to
    evaluate it at other (adapted, per-task) parameters.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: list[int],
        activation: Activation | str = Activation.relu,
        init_log_std: float = 0.0,
        init: Init | str = Init.torch,
        learn_std: bool = True,
    ) -> None:
        super().__init__()
        nonlinearity = _module(Activation[_name(activation)])
        layers: list[nn.Module] = []
        last = obs_dim
        for size in hidden_sizes:
            layers += [nn.Linear(last, size), nonlinearity()]
            last = size
        layers.append(nn.Linear(last, act_dim))
        if Init[_name(init)] is Init.xavier:  # the paper's code: Glorot-uniform, zero biases
            for layer in layers:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)
        self.mean = nn.Sequential(*layers)
        log_std = torch.full((act_dim,), float(init_log_std))
        if learn_std:
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(obs), self.log_std

    def at(self, params: dict[str, Tensor], obs: Tensor, per_task: bool) -> tuple[Tensor, Tensor]:
        """(mean, log_std) at ``params`` (the names of ``named_parameters``), without autograd's
        bookkeeping of a module call: one GEMM per layer on obs [..., D] for shared params, one
        batched GEMM for per-task params (a leading task dimension T on each; obs [T, N, D]).
        The same numbers as ``functional_call`` (vmapped over the tasks when per task), to the
        bit (tests/test_policy.py), at a quarter of the time per sampling step with per-task
        params: the samplers call it once per env step."""
        h = obs
        for name, layer in self.mean.named_children():
            if not isinstance(layer, nn.Linear):
                h = layer(h)
                continue
            w, b = params[f"mean.{name}.weight"], params[f"mean.{name}.bias"]
            if per_task:
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = torch.addmm(b, h.reshape(-1, h.shape[-1]), w.t()).view(*h.shape[:-1], -1)
        log_std = params.get("log_std", self.log_std)
        if per_task and log_std.dim() == 1:  # a buffer (learn_std false): one for every task
            log_std = log_std.expand(obs.shape[0], -1)
        return h, log_std


def _name(choice: Enum | str) -> str:
    """An Enum member's name, or the name itself (a config built without OmegaConf)."""
    return choice.name if isinstance(choice, Enum) else choice


def _module(activation: Activation) -> type[nn.Module]:
    """The ``torch.nn`` module an Activation is named after."""
    return next(getattr(nn, n) for n in dir(nn) if n.lower() == activation.value)


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """log N(actions; mean, exp(log_std)^2), summed over the last (action) dimension."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """KL(p || q) between diagonal Gaussians, summed over the last dimension."""
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    mahalanobis = ((mean_p - mean_q) * torch.exp(-log_std_q)).pow(2)
    return 0.5 * (var_ratio + mahalanobis - 1).sum(-1) + (log_std_q - log_std_p).sum(-1)


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of a diagonal Gaussian, summed over the last dimension."""
    return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
