"""``env.dynamics=rllab``, the MAML paper's own locomotion problem, against slow and obvious
computations: every simulation replayed one step at a time in its own MjData, and the
observation, every reward term and the termination recomputed in numpy from MuJoCo's data
fields (``cfrc_ext`` from ``mj_rnePostConstraint``, the centre-of-mass velocity as rllab's
mujoco_py computed it: every body's ``mj_objectVelocity`` times its mass, summed over the
subtree, over the subtree's mass)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from maml_hydra.config import (
    AntDirectionConfig,
    AntVelocityConfig,
    ConfigError,
    HalfCheetahDirectionConfig,
    HalfCheetahVelocityConfig,
)
from maml_hydra.sampling import rollout
from maml_hydra.tasks.locomotion import (
    AntDirection,
    AntVelocity,
    HalfCheetahDirection,
    HalfCheetahVelocity,
)
from tests.helpers import make_config, results

FAMILIES = {
    "halfcheetah_dir": (HalfCheetahDirection, HalfCheetahDirectionConfig, [[1.0], [-1.0]]),
    "halfcheetah_vel": (HalfCheetahVelocity, HalfCheetahVelocityConfig, [[0.4], [1.7]]),
    "ant": (AntVelocity, AntVelocityConfig, [[0.5], [2.5]]),
    "ant_dir": (AntDirection, AntDirectionConfig, [[1.0], [-1.0]]),
}


def rllab_env(name: str, tasks: int = 2, episodes: int = 2):
    family, schema, goals = FAMILIES[name]
    env = family(schema(dynamics="rllab"), tasks, episodes)
    env.set_tasks(torch.tensor([goals[i % len(goals)] for i in range(tasks)]))
    return env


def comvel_as_rllab(model: mujoco.MjModel, data: mujoco.MjData, body: int) -> float:
    """rllab's ``body_comvels``: linear momenta of the bodies summed up the tree, divided by
    the subtree masses (mujoco_py's ``_compute_subtree``)."""
    velocity = np.zeros((model.nbody, 6))
    for i in range(model.nbody):
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, i, velocity[i], 0)
    mass = model.body_mass.copy()
    momentum = velocity[:, 3:] * mass[:, None]
    for i in range(model.nbody - 1, 0, -1):
        parent = model.body_parentid[i]
        mass[parent] += mass[i]
        momentum[parent] += momentum[i]
    return (momentum[body] / mass[body])[0]


def reference_obs(env, data: mujoco.MjData) -> np.ndarray:
    """rllab's observation after ``mj_forward`` (and ``cfrc_ext``, which MuJoCo 1.31 always
    computed) at the data's state and control."""
    model = env.model
    mujoco.mj_forward(model, data)
    mujoco.mj_rnePostConstraint(model, data)
    torso = model.body("torso").id
    com = data.subtree_com[torso]
    if env.rllab_obs_dim == 125:
        cfrc = np.clip(data.cfrc_ext, -1, 1)
        return np.concatenate([data.qpos, data.qvel, cfrc.ravel(), data.xmat[torso], com])
    return np.concatenate([data.qpos[1:], data.qvel, com])


def reference_step(env, data: mujoco.MjData, action: np.ndarray, task: float):
    """One step as rllab took it, in one MjData: normalize's scaling, mj_step, mj_forward,
    then the observation and every reward term from MuJoCo's fields."""
    model = env.model
    a = np.clip(action, -1, 1)
    low, high = model.actuator_ctrlrange.T
    data.ctrl[:] = low + (a + 1) * 0.5 * (high - low)
    mujoco.mj_step(model, data)
    obs = reference_obs(env, data)
    torso = model.body("torso").id
    velocity = comvel_as_rllab(model, data, torso)
    ant = env.rllab_obs_dim == 125
    if ant:
        cfrc = np.clip(data.cfrc_ext, -1, 1)
        direction = isinstance(env, AntDirection)
        forward = task * velocity if direction else -abs(velocity - task) + 1.0
        ctrl_cost = 0.5e-2 * np.sum(np.square(data.ctrl / 150.0))
        contact_cost = 0.5e-3 * np.sum(np.square(cfrc))
        reward = forward - ctrl_cost - contact_cost + 0.05
        state = np.concatenate([data.qpos, data.qvel])
        done = not (np.isfinite(state).all() and 0.2 <= state[2] <= 1.0)
    else:
        direction = isinstance(env, HalfCheetahDirection)
        forward = task * velocity if direction else -abs(velocity - task)
        reward = forward - 0.1 * 0.5 * np.sum(np.square(a))
        done = False
    return obs, reward, done, data.cfrc_ext.copy()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_reward_term_and_the_observation_match_numpy_over_300_steps(name):
    env = rllab_env(name)
    n = env.num_envs
    gen = torch.Generator().manual_seed(1)
    env.reset_batch(gen)
    refs = [mujoco.MjData(env.model) for _ in range(n)]
    goals = env.tasks[:, 0].repeat_interleave(2).double().numpy()
    reset_obs = env._obs().reshape(n, -1).double().numpy()
    for i, data in enumerate(refs):  # rllab's reset: mj_forward at zero control
        data.qpos[:], data.qvel[:] = env._qpos()[i].numpy(), env._qvel()[i].numpy()
        want = reference_obs(env, data)
        assert np.allclose(reset_obs[i], want, atol=1e-5)
    contact_seen, ended = 0.0, 0
    for t in range(300):
        if t == 100 and env.rllab_obs_dim == 125:  # lift one torso out of range: it must end
            env._qpos()[0, 2] = 1.2
        qpos, qvel = env._qpos().numpy().copy(), env._qvel().numpy().copy()
        alive = ~env.finished.numpy().copy()
        action = torch.randn(2, 2, env.action_dim, generator=gen) * 0.8
        obs, reward, done = env.step_batch(action)
        obs, reward, done = obs.reshape(n, -1), reward.reshape(n), done.reshape(n)
        flat = action.reshape(n, -1).double().numpy()
        for i, data in enumerate(refs):
            if not alive[i]:  # finished: not stepped, reward 0, still done
                assert reward[i] == 0 and done[i]
                assert np.array_equal(env._qpos()[i].numpy(), qpos[i])
                continue
            # replay the step from the batch's own state (so that states never drift apart)
            data.qpos[:], data.qvel[:], data.time = qpos[i], qvel[i], 0.0
            want_obs, want_reward, want_done, cfrc = reference_step(env, data, flat[i], goals[i])
            assert np.allclose(env._qpos()[i].numpy(), data.qpos, atol=1e-9)
            assert np.allclose(obs[i].double().numpy(), want_obs, atol=1e-5), (t, i)
            assert abs(reward[i].item() - want_reward) < 1e-4, (t, i)
            assert bool(done[i]) == want_done
            contact_seen = max(contact_seen, np.abs(cfrc).max())
            ended += want_done
    if env.rllab_obs_dim == 125:
        assert contact_seen > 1.0  # the contact forces are real, not the all-zero array
        assert ended >= 1 and bool(env.finished.any())  # the frozen rows above were checked


@pytest.mark.parametrize("name", ["ant", "ant_dir"])
@pytest.mark.parametrize("height", [0.15, 1.05])
def test_the_ant_ends_its_episode_when_the_torso_leaves_the_height_range(name, height):
    env = rllab_env(name, tasks=1, episodes=2)
    env.reset_batch(torch.Generator().manual_seed(0))
    qpos, qvel = env._qpos().clone(), env._qvel().clone()
    qpos[0, 2] = height  # row 0 out of range (the step barely moves it), row 1 as reset
    env.set_state(qpos, qvel)
    _, reward, done = env.step_batch(torch.zeros(1, 2, 8))
    assert done.tolist() == [[True, False]] and reward[0, 0] != 0
    frozen = env._qpos()[0].clone()
    _, reward, done = env.step_batch(torch.ones(1, 2, 8))
    assert done.tolist() == [[True, False]] and reward[0, 0] == 0
    assert torch.equal(env._qpos()[0], frozen)  # nothing stepped after the end


def test_the_compiled_models_are_the_papers():
    cheetah, ant = rllab_env("halfcheetah_vel").model, rllab_env("ant").model
    euler, rk4 = mujoco.mjtIntegrator.mjINT_EULER, mujoco.mjtIntegrator.mjINT_RK4
    assert (cheetah.opt.timestep, cheetah.opt.integrator) == (0.01, euler)
    assert (ant.opt.timestep, ant.opt.integrator) == (0.02, rk4)
    assert np.allclose(ant.actuator_gear[:, 0], 1)
    assert np.allclose(ant.actuator_ctrlrange, [-150, 150])
    assert np.allclose(ant.geom_solref, [0.02, 1])
    assert np.allclose(ant.geom_solimp[:, :3], [0.8, 0.8, 0.01])
    for name in FAMILIES:
        env = rllab_env(name)
        assert env.cfg.frame_skip == 1 and env.dt == env.model.opt.timestep
        assert env.observation_dim == env.rllab_obs_dim
        probe = env.physics.probe  # the sensors' copy is the same body
        assert np.array_equal(probe.body_mass, env.model.body_mass)


@pytest.mark.parametrize("name", ["ant", "halfcheetah_dir"])
def test_reset_is_normal_noise_around_the_papers_pose(name):
    env = rllab_env(name, tasks=4, episodes=250)
    env.reset_batch(torch.Generator().manual_seed(0))
    pose = [0, 0, 0.55, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1] if name == "ant" else [0.0] * 9
    qpos, qvel = env._qpos().numpy(), env._qvel().numpy()
    assert np.allclose(qpos.mean(0), pose, atol=0.003)
    assert np.allclose(qpos.std(0), 0.01, rtol=0.1) and np.allclose(qvel.std(0), 0.1, rtol=0.1)
    assert np.abs(qpos - pose).max() > 0.03  # normal, not uniform on [-0.01, 0.01]


@pytest.mark.parametrize("sampling", ["episodes", "steps"])
def test_early_ends_in_the_batched_sampler_average_over_completed_episodes(sampling):
    env = rllab_env("ant", tasks=2, episodes=4)
    env.horizon = 60
    gen = torch.Generator().manual_seed(3)

    def wild(obs):  # std e^1: random flailing makes some episodes end early
        return torch.zeros(*obs.shape[:2], 8), torch.ones(2, 8)

    budget = 4 * 60 if sampling == "steps" else None
    traj = rollout(env, wild, gen, 0.99, 1.0, budget=budget)
    mask, ends = traj.mask, traj.ends
    if budget is None:
        # each row one episode: live steps a prefix, ended at its last live step
        lengths = mask.sum(-1).long()
        assert bool((mask[..., 1:] <= mask[..., :-1]).all())
        last = ends.argmax(-1)
        assert torch.equal(last, lengths - 1) and bool((ends.sum(-1) == 1).all())
        # some ended early, by the height rule: exactly the rows the env marks finished
        early = lengths < 60
        assert early.any() and (~early).any()
        assert torch.equal(early, env.finished.view(2, 4))
    else:
        # back-to-back whole episodes in a row: none longer than the horizon, some shorter,
        # and the tasks with early ends got more than 4 episodes from their budget
        starts = torch.cumsum(ends.flatten(1), 1) - ends.flatten(1)
        kept = mask.flatten(1).bool()
        for t in range(2):
            counts = torch.bincount(starts[t][kept[t]].long())
            assert counts.max() <= 60 and counts.sum() >= 4 * 60 - 59
        assert (ends.sum((1, 2)) > 4).any()


def test_the_number_of_physics_threads_changes_no_number():
    """The rllab Ant sampled with restarts (the budget sampler, the probe's sensors, rows
    stepped alone) on 1 and on 3 threads: the same batch, bit for bit. A run may therefore
    resume on another ``env.threads``."""
    batches = []
    for threads in (1, 3):
        env = AntVelocity(AntVelocityConfig(dynamics="rllab", threads=threads), 2, 4)
        env.set_tasks(torch.tensor([[0.5], [2.5]]))
        env.horizon = 40

        def wild(obs):
            return torch.zeros(*obs.shape[:2], 8), torch.ones(2, 8)

        batches.append(rollout(env, wild, torch.Generator().manual_seed(3), 0.99, 1.0, 160))
    one, three = batches
    assert (one.ends.sum((1, 2)) > 4).any()  # some episodes ended early and restarted
    assert all(torch.equal(a, b) for a, b in zip(one, three, strict=True))


def test_a_stored_config_without_the_key_is_gymnasium_dynamics():
    from pathlib import Path

    from maml_hydra.checkpoint import (
        config_from_yaml,
        load_checkpoint,  # noqa: F401  (the same reader)
    )

    root = Path(__file__).resolve().parents[1] / "docs" / "results"
    stored = next(p for p in sorted(root.glob("halfcheetah_dir/*.json")))
    import json

    config = json.loads(stored.read_text())["config"]
    assert "dynamics" not in config
    cfg = config_from_yaml(config)
    assert cfg.env.dynamics == "gymnasium" and cfg.env.frame_skip == 5
    assert cfg.env.reset_noise == 0.1


def test_null_frame_skip_and_reset_noise_are_the_dynamics_own_in_what_is_stored():
    from maml_hydra.checkpoint import config_from_yaml
    from maml_hydra.config import config_to_yaml

    for dynamics, skip, noise in (("rllab", 1, None), ("gymnasium", 5, 0.1)):
        cfg = make_config(["env=ant", f"env.dynamics={dynamics}"])
        assert (cfg.env.frame_skip, cfg.env.reset_noise) == (skip, noise)
        text = config_to_yaml(cfg)
        assert f"frame_skip: {skip}" in text  # the checkpoint stores the number that ran
        again = config_from_yaml(text.replace(f"frame_skip: {skip}", "frame_skip: null"))
        assert again.env.frame_skip == skip


def test_rllab_dynamics_refuse_a_gymnasium_reset_scale_and_warp_in_one_line():
    with pytest.raises(ConfigError, match=r"env.reset_noise=0.1 is not allowed"):
        make_config(["env=ant", "env.dynamics=rllab", "env.reset_noise=0.1"])
    with pytest.raises(ConfigError, match=r"env.physics='warp' is not allowed: env.dynamics=rllab"):
        make_config(["env=halfcheetah_dir", "env.dynamics=rllab", "env.physics=warp"])


PRESETS = {  # family: (goal range, direction, iterations of maml / pretrained / oracle)
    "halfcheetah_dir": (2.0, True, (100, 1000, 1000)),
    "halfcheetah_vel": (2.0, False, (475, 475, 975)),
    "ant": (3.0, False, (375, 575, 550)),
    "ant_dir": (3.0, True, (575, 1000, 1975)),
}


@pytest.mark.parametrize("family", list(PRESETS))
def test_paper_presets_hold_the_papers_settings_and_goals(family):
    high, direction, iterations = PRESETS[family]
    np.random.seed(1)  # the paper's evaluation scripts
    goals = np.random.uniform(0.0, high, size=(40,))
    want = np.where(goals < high / 2, -1.0, 1.0) if direction else goals
    for baseline, its in zip(("maml", "pretrained", "oracle"), iterations, strict=True):
        cfg = make_config([f"experiment=paper_{family}", f"baseline={baseline}"], tiny=False)
        assert cfg.env.dynamics == "rllab" and cfg.env.frame_skip == 1
        assert not cfg.env.normalize_obs and cfg.policy.init == "xavier"
        assert cfg.policy.init_log_std == 0 and cfg.train.gae_lambda == 1.0
        assert cfg.train.iterations == its
        # the paper's CG products: rllab's finite difference with base_eps 1, on every task
        algo = (cfg.algorithm.hvp, cfg.algorithm.fd_eps, cfg.algorithm.fvp_task_fraction)
        assert algo == ("finite_difference", 1.0, 1.0)
        assert np.allclose(np.asarray(cfg.eval.tasks)[:, 0], want, rtol=0, atol=1e-12)
        steps = 0 if baseline == "oracle" else 3  # the oracle is not adapted
        settings = (cfg.eval.num_tasks, cfg.eval.episodes_per_task, cfg.eval.num_steps)
        assert settings == (40, 20, steps)
        if baseline == "maml":
            kl = 0.02 if family == "halfcheetah_dir" else 0.01
            assert (cfg.train.meta_batch_size, cfg.algorithm.max_kl, cfg.inner.lr) == (40, kl, 0.1)
            assert cfg.eval.lrs == [0.1, 0.05]
        else:  # plain TRPO on 100 episodes per iteration
            assert cfg.train.meta_batch_size * cfg.train.episodes_per_task == 100
            assert cfg.algorithm.max_kl == 0.01 and cfg.inner.num_steps == 0
        if baseline == "pretrained":
            assert cfg.eval.lrs == [0.2, 0.1]
        if baseline == "oracle":  # a goal per episode, one baseline per batch, as rllab's
            shape = (cfg.train.meta_batch_size, cfg.train.episodes_per_task)
            assert shape == (100, 1) and cfg.train.linear_baseline == "batch"


def test_a_paper_preset_trains_and_evaluates_on_the_ant_with_its_terminations(tmp_path):
    from maml_hydra.experiment import Experiment

    shrink = ["env.horizon=20", "train.meta_batch_size=2", "train.episodes_per_task=2"]
    shrink += ["train.iterations=1", "eval.num_tasks=40", "eval.episodes_per_task=2"]
    cfg = make_config(["experiment=paper_ant", *shrink, "eval.num_steps=1"])
    exp = Experiment(cfg, tmp_path)
    summary = exp.train()
    assert exp.env.observation_dim == 125 and exp.plan.pooled  # the paper's sequential sampler
    assert np.isfinite(summary["return_mean"]).all() and len(summary["return_mean"]) == 2


def test_paper_results_export_from_each_runs_own_evaluation_and_table_on_the_papers_scale(
    tmp_path,
):
    """Tiny real runs of a preset, each variant evaluated at its own step sizes, exported from
    their own eval_results.json and tabled on the paper's scale; a gymnasium-dynamics result
    in the same folder is left out of the comparison."""
    import json

    from maml_hydra.experiment import Experiment
    from tests.helpers import ROOT

    shrink = ["env.horizon=10", "train.meta_batch_size=2", "train.episodes_per_task=2"]
    shrink += ["eval.episodes_per_task=2", "policy.hidden_sizes=[16,16]"]
    runs = []
    for seed in (0, 1):
        for baseline in ("maml", "pretrained", "oracle", "random"):
            extra = ["eval.lrs=[1.0,0.5]"] if baseline == "random" else []
            over = [f"baseline={baseline}", f"seed={seed}", *extra, "train.iterations=1"]
            if baseline == "random":
                over.remove("train.iterations=1")
            if baseline in ("pretrained", "oracle"):  # 100 episodes per iteration: shrink too
                over += ["train.meta_batch_size=2", "train.episodes_per_task=2"]
            cfg = make_config(["experiment=paper_halfcheetah_dir", *shrink, *over], tiny=False)
            run = tmp_path / "runs" / f"{baseline}_{seed}"
            Experiment(cfg, run).train()
            runs.append(run)
    out = tmp_path / "paper"
    done = results("export", "--runs", *runs, "--out", out)
    assert done.returncode == 0
    record = json.loads((out / "pretrained_seed1.json").read_text())
    assert record["eval"]["lrs"] == [0.2, 0.1, 0.1] and len(record["returns"]) == 4  # as run
    assert record["commits"] and record["env_steps"] > 0
    assert json.loads((out / "random_seed0.json").read_text())["eval"]["lrs"] == [1.0, 0.5, 0.5]
    assert len(json.loads((out / "oracle_seed0.json").read_text())["returns"]) == 1
    gym = json.loads((ROOT / "docs/results/halfcheetah_dir/maml_seed0.json").read_text())
    (out / "maml_seed7.json").write_text(json.dumps(gym))  # gymnasium dynamics: left out

    table = results(*["table", "--paper", str(out)])
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "1 result file(s) of gymnasium dynamics left out" in text
    assert "| maml | 2 | 0.1 then 0.05 |" in text and "| oracle | 2 | not adapted |" in text
    assert "| pretrained | 2 | 0.2 then 0.1 |" in text and "-50.69 / 293.19" in text
    assert "against the paper's 293.19 (s.e. 8.7, over its 40 goals, one seed)" in text
    assert "paired per seed (seeds [0, 1])" in text and "95% interval" in text

    # the report at each run's own settings re-evaluates exactly what each run reported, and
    # tells one seed's random init at two step sizes apart
    from maml_hydra.config import EvaluateConfig
    from maml_hydra.report import make_report

    cfg = make_config(["experiment=paper_halfcheetah_dir", *shrink, "baseline=random"], tiny=False)
    cfg.eval.lrs = [0.5, 0.25]
    Experiment(cfg, tmp_path / "runs" / "random_0_half").train()
    report = make_report(
        EvaluateConfig(dir=str(tmp_path / "runs"), own_settings=True, progress=False)
    )
    for run in runs:
        mine = json.loads((run / "eval_results.json").read_text())["return_per_task"]
        assert report["runs"][run.name]["returns"] == mine, run.name
    variants = {name: entry["variant"] for name, entry in report["runs"].items()}
    assert variants["random_0"] == "random_lr1" and variants["random_0_half"] == "random_lr0.5"
    assert variants["random_1"] == "random" and variants["oracle_1"] == "oracle"
    two = [str(tmp_path / "runs" / n) for n in ("random_0", "random_0_half")]
    out2 = tmp_path / "two"
    done = results("export", "--runs", *two, "--out", out2)
    assert done.returncode == 0
    assert sorted(p.name for p in out2.iterdir()) == [
        "random_seed0_lr0.5.json",
        "random_seed0_lr1.json",
    ]


def test_a_zoo_checkpoint_reevaluates_to_its_own_committed_evaluation(tmp_path):
    """The committed oracle of the HalfCheetah-direction preset, re-evaluated by the report at
    its own settings: the same 40 returns as the run's own final evaluation, exactly."""
    import json
    import shutil

    from maml_hydra.config import EvaluateConfig
    from maml_hydra.report import make_report
    from tests.helpers import ROOT

    zoo = ROOT / "zoo" / "paper" / "halfcheetah_dir" / "oracle_seed0"
    run = tmp_path / "oracle_seed0"
    shutil.copytree(zoo, run)
    report = make_report(EvaluateConfig(dir=str(run), own_settings=True, progress=False))
    mine = json.loads((zoo / "eval_results.json").read_text())["return_per_task"]
    assert report["runs"]["oracle_seed0"]["returns"] == mine
