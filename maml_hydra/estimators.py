"""Inner-loop objectives (``inner.estimator``): the loss whose gradient is one task's adaptation
step. Each is written for one task's support batch ([E, H] steps) and vmapped by the learner.

All three have the same gradient at the policy that sampled the data, the REINFORCE policy
gradient E[grad log pi(a_t|s_t) A_t]; they differ in the second derivative that the
meta-gradient takes through the inner step:

- ``reinforce``: -E[log pi A] (Finn et al. 2017). Its Hessian, E[hess log pi A], leaves out the
  terms from the data's dependence on the policy.
- ``dice``: DiCE (Foerster et al. 2018), the magic box of each step's causal past,
  exp(S_t - S_t^old) with S_t the log-probability of the episode's actions up to t, times a
  per-step weight d_t = A_t - A_{t+1} (A past the episode's end is 0), so each step's weights
  from t on sum to its advantage. Hessian: E[sum_t hess l_t A_t +
  sum_{a,b} grad l_a grad l_b^T A_max(a,b)], the full score-function estimate.
- ``lvc``: ProMP's low-variance curvature objective (Rothfuss et al. 2019), each step's own
  likelihood ratio pi / pi_old times A_t. Its Hessian keeps the terms a = b of DiCE's double sum
  and drops the rest, sum_{a != b} grad l_a grad l_b^T A_max(a,b).

The ratios are taken against the log-probabilities stored at sampling time, so they are 1 (and
the objectives the textbook magic boxes) at the sampling policy, and importance-weighted when a
meta-optimizer re-adapts with changed meta-parameters (ProMP's and PPO's epochs).
"""

from __future__ import annotations

import torch
from torch import Tensor

from maml_hydra.config import Estimator
from maml_hydra.sampling import Trajectories


def _mean_over_steps(terms: Tensor, mask: Tensor) -> Tensor:
    return (terms * mask).sum() / mask.sum()


def reinforce(log_prob: Tensor, traj: Trajectories) -> Tensor:
    """-E[log pi(a|s) A] over the valid steps."""
    return -_mean_over_steps(log_prob * traj.advantages, traj.mask)


def lvc(log_prob: Tensor, traj: Trajectories) -> Tensor:
    """-E[pi(a|s) / pi_old(a|s) A] over the valid steps."""
    return -_mean_over_steps(torch.exp(log_prob - traj.log_prob) * traj.advantages, traj.mask)


def episode_cumsum(values: Tensor, ends: Tensor) -> Tensor:
    """Cumulative sum along the last axis [.., H] that restarts after every episode end (a row
    may hold several episodes back to back)."""
    total = torch.cumsum(values, dim=-1)
    steps = torch.arange(1, values.shape[-1] + 1, device=values.device, dtype=values.dtype)
    # 1 + the index of the last end strictly before each step (0: none), as a gather index
    last_end = torch.cummax(steps * ends, dim=-1).values
    before = torch.nn.functional.pad(last_end, (1, 0))[..., :-1].long()
    return total - torch.nn.functional.pad(total, (1, 0)).gather(-1, before)


def dice_weights(advantages: Tensor, ends: Tensor) -> Tensor:
    """d_t = A_t - A_{t+1} within an episode, A_t at its end: d summed from t to the episode's
    end is A_t."""
    following = torch.nn.functional.pad(advantages[..., 1:], (0, 1))
    return advantages - following * (1 - ends)


def dice(log_prob: Tensor, traj: Trajectories) -> Tensor:
    """-E[exp(S_t - S_t^old) d_t] over the valid steps."""
    mask = traj.mask
    causal = episode_cumsum((log_prob - traj.log_prob) * mask, traj.ends)
    weights = dice_weights(traj.advantages * mask, traj.ends)
    return -_mean_over_steps(torch.exp(causal) * weights, mask)


ESTIMATORS = {Estimator.reinforce: reinforce, Estimator.dice: dice, Estimator.lvc: lvc}
