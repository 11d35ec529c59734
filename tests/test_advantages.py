"""Returns, GAE and the linear feature baseline against slow obvious loops."""

from __future__ import annotations

import pytest
import torch

from maml_hydra.advantages import (
    batch_advantages,
    discounted_returns,
    episode_layout,
    fit_linear_baseline,
    gae,
    linear_baseline_features,
    normalize,
    task_advantages,
)

g = torch.Generator().manual_seed(0)


def loop_returns(rewards, gamma):
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[:-1])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out


def test_discounted_returns_match_a_loop():
    rewards = torch.randn(4, 7, generator=g)
    mask = torch.ones(4, 7)
    mask[0, 5:] = 0
    got = discounted_returns(rewards, mask, 0.9)
    want = loop_returns(rewards * mask, 0.9) * mask
    assert torch.allclose(got, want, atol=1e-6)


def test_gae_matches_a_loop_and_lambda_one_is_returns_minus_values():
    rewards, values = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    mask = torch.ones(3, 6)
    mask[1, 4:] = 0
    gamma, lam = 0.95, 0.8
    want = torch.zeros(3, 6)
    adv = torch.zeros(3)
    for t in reversed(range(6)):
        v_next = values[:, t + 1] * mask[:, t + 1] if t + 1 < 6 else torch.zeros(3)
        delta = rewards[:, t] * mask[:, t] + gamma * v_next - values[:, t] * mask[:, t]
        adv = delta + gamma * lam * adv * (mask[:, t + 1] if t + 1 < 6 else 0)
        want[:, t] = adv * mask[:, t]
    assert torch.allclose(gae(rewards * mask, values, mask, gamma, lam), want, atol=1e-5)
    full = gae(rewards * mask, values, mask, gamma, 1.0)
    assert torch.allclose(full, discounted_returns(rewards, mask, gamma) - values * mask, atol=1e-5)


def test_linear_baseline_recovers_a_linear_target():
    obs = torch.randn(5, 8, 2, generator=g)
    mask = torch.ones(5, 8)
    feats = linear_baseline_features(obs, mask)
    coeffs = torch.randn(feats.shape[-1], generator=g)
    target = feats @ coeffs
    fitted = fit_linear_baseline(obs, target, mask)
    assert torch.allclose(fitted, target, atol=1e-3)


def test_normalize_uses_only_valid_steps():
    x, mask = torch.randn(4, 5, generator=g), torch.ones(4, 5)
    mask[2:] = 0
    z = normalize(x, mask)
    valid = z[mask.bool()]
    assert abs(valid.mean()) < 1e-5 and abs(valid.std(unbiased=False) - 1) < 1e-4
    assert torch.all(z[~mask.bool()] == 0)


def test_batched_advantages_equal_per_task_loop():
    obs = torch.randn(3, 4, 6, 2, generator=g)
    rewards = torch.randn(3, 4, 6, generator=g)
    mask = torch.ones(3, 4, 6)
    mask[1, 2, 3:] = 0
    batched = batch_advantages(obs, rewards * mask, mask, 0.99, 0.95)
    for i in range(3):
        one = task_advantages(obs[i], rewards[i] * mask[i], mask[i], 0.99, 0.95)
        assert torch.allclose(batched[i], one, atol=1e-5)


def test_rows_holding_several_episodes_equal_the_same_episodes_one_per_row():
    """train.sampling=steps packs episodes back to back in a row: returns, the baseline's
    episode time and GAE must restart at every episode, as if each episode had its own row."""
    lengths = [[3, 5, 2], [6, 4]]  # two rows of 10 steps; row 1 ends with 0 unkept steps
    horizon, dim = 10, 2
    obs = torch.randn(2, horizon, dim, generator=g)
    rewards = torch.randn(2, horizon, generator=g)
    mask, ends = torch.zeros(2, horizon), torch.zeros(2, horizon, dtype=torch.bool)
    sep_obs, sep_rewards, sep_mask, where = [], [], [], []
    for row, row_lengths in enumerate(lengths):
        start = 0
        for n in row_lengths:
            mask[row, start : start + n] = 1
            ends[row, start + n - 1] = True
            o, r, m = torch.zeros(horizon, dim), torch.zeros(horizon), torch.zeros(horizon)
            o[:n], r[:n], m[:n] = obs[row, start : start + n], rewards[row, start : start + n], 1
            sep_obs.append(o), sep_rewards.append(r), sep_mask.append(m)
            where.append((row, start, n))
            start += n
    packed = batch_advantages(obs[None], (rewards * mask)[None], mask[None], 0.99, 0.9, ends[None])[
        0
    ]
    separate = task_advantages(
        torch.stack(sep_obs), torch.stack(sep_rewards), torch.stack(sep_mask), 0.99, 0.9
    )
    for k, (row, start, n) in enumerate(where):
        assert torch.allclose(packed[row, start : start + n], separate[k, :n], atol=1e-5)
    assert torch.all(packed[mask == 0] == 0)
    # the reward-to-go restarts at each episode (a loop over each episode's own rewards)
    end_index, episode_time = episode_layout(ends)
    got = discounted_returns(rewards, mask, 0.9, end_index)
    for row, start, n in where:
        want = loop_returns(rewards[row, start : start + n], 0.9)
        assert torch.allclose(got[row, start : start + n], want, atol=1e-5)
        assert torch.equal(episode_time[row, start : start + n], torch.arange(n).float())


def test_pooled_advantages_fit_one_baseline_over_every_task():
    """train.linear_baseline=batch against numpy: one ridge fit on the valid steps of every
    task and episode, GAE within each episode, one standardisation over all valid steps."""
    import numpy as np

    tasks, episodes, horizon, dim, gamma, lam = 3, 2, 7, 2, 0.99, 0.9
    obs = torch.randn(tasks, episodes, horizon, dim, generator=g, dtype=torch.float64)
    rewards = torch.randn(tasks, episodes, horizon, generator=g, dtype=torch.float64)
    mask = torch.ones(tasks, episodes, horizon, dtype=torch.float64)
    mask[1, 0, 4:] = 0  # an episode that ended early
    mask[2, 1, 2:] = 0
    pooled = batch_advantages(obs, rewards * mask, mask, gamma, lam, pooled=True)

    o, r, m = obs.numpy(), (rewards * mask).numpy(), mask.numpy().astype(bool)
    rows, targets = [], []
    returns = np.zeros_like(r)
    for i in range(tasks):
        for e in range(episodes):
            running = 0.0
            for t in reversed(range(horizon)):
                running = r[i, e, t] + gamma * running if m[i, e, t] else 0.0
                returns[i, e, t] = running
    feats = np.zeros((tasks, episodes, horizon, 2 * dim + 4))
    for i in range(tasks):
        for e in range(episodes):
            for t in range(horizon):
                c, s = np.clip(o[i, e, t], -10, 10), t / 100
                feats[i, e, t] = np.concatenate([c, c * c, [s, s * s, s**3, 1.0]])
                if m[i, e, t]:
                    rows.append(feats[i, e, t])
                    targets.append(returns[i, e, t])
    x, y = np.array(rows), np.array(targets)
    coeffs = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
    values = feats @ coeffs * m
    adv = np.zeros_like(r)
    for i in range(tasks):
        for e in range(episodes):
            running = 0.0
            for t in reversed(range(horizon)):
                if not m[i, e, t]:
                    continue
                v_next = values[i, e, t + 1] if t + 1 < horizon and m[i, e, t + 1] else 0.0
                running = r[i, e, t] + gamma * v_next - values[i, e, t] + gamma * lam * running
                adv[i, e, t] = running
    valid = adv[m]
    want = (adv - valid.mean()) / (valid.std() + 1e-8) * m
    assert np.allclose(pooled.numpy(), want, atol=1e-8)
    # per task (the default) is another fit: the two differ
    per_task = batch_advantages(obs, rewards * mask, mask, gamma, lam)
    assert not torch.allclose(per_task, pooled, atol=1e-3)


def test_train_linear_baseline_batch_pools_the_training_batch_only():
    """baseline=pretrained with train.linear_baseline=batch: the training batch's advantages
    are the pooled ones of its own steps; the default's are per task."""
    from maml_hydra.experiment import Experiment
    from tests.helpers import make_config

    for choice, pooled in (("batch", True), ("per_task", False)):
        cfg = make_config(["baseline=pretrained", f"train.linear_baseline={choice}"])
        exp = Experiment(cfg, "unused")
        assert exp.learner.pooled_baseline is pooled
        batch = exp.sample_meta_batch().query
        ends = batch.ends.bool()
        args = (batch.obs, batch.rewards, batch.mask, cfg.train.gamma, cfg.train.gae_lambda, ends)
        assert torch.allclose(batch.advantages, batch_advantages(*args, pooled), atol=1e-5)
        assert not torch.allclose(batch.advantages, batch_advantages(*args, not pooled), atol=1e-3)


def test_pooled_rows_holding_several_episodes_equal_the_same_episodes_one_per_row():
    """The pooled fit sees each episode from its own start (train.sampling=steps and
    sequential pack episodes back to back): packed rows give the advantages of the same
    episodes laid out one per row."""
    lengths = [[[3, 5, 2], [6, 4]], [[4, 6], [2, 7, 1]]]  # 2 tasks x 2 rows of 10 steps
    horizon, dim = 10, 2
    obs = torch.randn(2, 2, horizon, dim, generator=g, dtype=torch.float64)
    rewards = torch.randn(2, 2, horizon, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 2, horizon, dtype=torch.float64)
    ends = torch.zeros(2, 2, horizon, dtype=torch.bool)
    separate = torch.zeros(
        sum(len(r) for t in lengths for r in t), horizon, dim + 2, dtype=obs.dtype
    )
    where, k = [], 0
    for task, rows in enumerate(lengths):
        for row, row_lengths in enumerate(rows):
            start = 0
            for n in row_lengths:
                mask[task, row, start : start + n] = 1
                ends[task, row, start + n - 1] = True
                separate[k, :n, :dim] = obs[task, row, start : start + n]
                separate[k, :n, dim] = rewards[task, row, start : start + n]
                separate[k, :n, dim + 1] = 1
                where.append((task, row, start, n))
                start, k = start + n, k + 1
    packed = batch_advantages(obs, rewards * mask, mask, 0.99, 0.9, ends, pooled=True)
    one_per_row = batch_advantages(
        separate[None, :, :, :dim],
        separate[None, :, :, dim],
        separate[None, :, :, dim + 1],
        0.99,
        0.9,
        pooled=True,
    )[0]
    for k, (task, row, start, n) in enumerate(where):
        assert torch.allclose(packed[task, row, start : start + n], one_per_row[k, :n], atol=1e-8)
    assert torch.all(packed[mask == 0] == 0)


def test_a_stored_config_without_the_key_fits_per_task():
    """A committed result file's config, written before train.linear_baseline existed, loads as
    per_task: what its run did."""
    import json

    from maml_hydra.checkpoint import config_from_yaml
    from maml_hydra.config.choices import LinearBaseline
    from tests.helpers import ROOT

    stored = ROOT / "docs" / "results" / "paper" / "ant_per_task_baseline" / "oracle_seed0.json"
    config = json.loads(stored.read_text())["config"]
    assert "linear_baseline" not in config
    assert config_from_yaml(config).train.linear_baseline == LinearBaseline.per_task


def test_one_episode_per_task_is_allowed_only_with_the_batch_fit():
    """train.episodes_per_task=1 (a goal per episode, as the paper's pretrained and oracle):
    accepted with one baseline over the batch, whose advantages do not depend on how the
    episodes are grouped into tasks; refused with one line under the per-task fit."""
    from maml_hydra.config import ConfigError
    from maml_hydra.experiment import Experiment
    from maml_hydra.runtime import check_config
    from tests.helpers import make_config

    pooled = ["baseline=pretrained", "train.linear_baseline=batch"]
    cfg = make_config([*pooled, "train.episodes_per_task=1"])
    check_config(cfg)
    batch = Experiment(cfg, "unused").sample_meta_batch().query
    assert batch.obs.shape[1] == 1
    args = (cfg.train.gamma, cfg.train.gae_lambda)
    regrouped = batch_advantages(
        batch.obs.transpose(0, 1),
        batch.rewards.transpose(0, 1),
        batch.mask.transpose(0, 1),
        *args,
        batch.ends.bool().transpose(0, 1),
        pooled=True,
    )
    assert torch.allclose(batch.advantages, regrouped.transpose(0, 1), atol=1e-5)
    for overrides, rule in (
        (["baseline=pretrained", "train.episodes_per_task=1"], "=1 is not allowed: .*>= 2"),
        ([*pooled, "train.episodes_per_task=0"], "=0 is not allowed: must be >= 1"),
    ):
        with pytest.raises(ConfigError, match=rf"^train.episodes_per_task{rule}"):
            check_config(make_config(overrides))
