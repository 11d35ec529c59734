"""Experiment end to end: TensorBoard read back, checkpoints, exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from torch.utils.tensorboard import SummaryWriter

from maml_hydra.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from maml_hydra.config import ConfigError
from maml_hydra.experiment import Experiment
from maml_hydra.logger import peak_memory
from maml_hydra.results.tensorboard import scalars
from tests.helpers import TINY, cli, make_config, results, run_cli


def test_train_writes_tensorboard_checkpoint_and_evaluation(tmp_path, caplog):
    exp = Experiment(make_config(["train.log_every=0"]), tmp_path)
    with caplog.at_level("INFO", logger="maml_hydra"):
        summary = exp.train()
    assert "iteration " not in caplog.text  # log_every=0: no iteration lines, the summary stays
    assert f"run directory: {tmp_path}" in caplog.text
    tags = scalars(tmp_path)
    for tag in (
        "train/return_before_adaptation",
        "train/return_after_adaptation",
        "train/kl",
        "train/kl_pre_update",
        "train/surrogate_before",
        "train/surrogate_after",
        "train/line_search_step",
        "train/line_search_failed",
        "time/iteration",
        "time/sampling",
        "time/adaptation",
        "time/meta_gradient",
        "time/cg",
        "time/line_search",
        "time/env_steps_per_second",
        "memory/peak_rss_gib",
        "eval/return_step_0",
        "eval/return_step_2",
    ):
        assert tag in tags, tag
    assert [s for s, _ in tags["train/return_after_adaptation"]] == [1, 2, 3]
    peaks = [v for _, v in tags["memory/peak_rss_gib"]]  # a peak never falls; torch alone > 0.1
    assert 0.1 < peaks[0] and peaks == sorted(peaks)
    assert peaks[-1] <= peak_memory("cpu")["memory/peak_rss_gib"]
    # returns are sums over an episode (horizon 10): far below a per-step reward of > -1.5
    assert all(-10 * 1.5 < v < 0 for _, v in tags["train/return_before_adaptation"])
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert "config" in "".join(acc.Tags()["tensors"])  # the resolved config as text
    hparams = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "tensorboard"))
    hparams.Reload()
    content = hparams.PluginRunToTagToContent("hparams")["."]
    experiment = content["_hparams_/experiment"]  # the hparams tab: key options, final metrics
    assert b"baseline.name" in experiment and b"hparam/eval/return_step_1" in experiment
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["iteration"] == 3 and "inner:" in state["config"]
    written = json.loads((tmp_path / "eval_results.json").read_text())
    assert written["return_mean"] == summary["return_mean"] and len(summary["return_mean"]) == 3
    assert len(written["return_per_task"][0]) == 3


def test_pre_update_kl_is_the_kl_of_the_sampling_policy_to_the_new_one(tmp_path):
    exp = Experiment(make_config(), tmp_path)
    theta = exp.learner.parameters()
    support = exp.sample_meta_batch().supports[0]
    assert exp.pre_update_kl(theta, support) == 0.0
    moved = theta + 0.05 * torch.randn(theta.shape, generator=torch.Generator().manual_seed(0))
    exp.learner.load_parameters(moved)
    mean, log_std = exp.policy(support.obs)
    new = torch.distributions.Normal(mean, log_std.exp())
    old = torch.distributions.Normal(support.mean, support.log_std.exp()[:, None, None, :])
    kl = torch.distributions.kl_divergence(old, new).sum(-1)  # [T, E, H]
    per_task = (kl * support.mask).sum(dim=(1, 2)) / support.mask.sum(dim=(1, 2))
    got = exp.pre_update_kl(moved, support)
    assert got > 0 and abs(got - per_task.mean().item()) < 1e-5 * max(1.0, got)


@pytest.mark.parametrize("algorithm", ["trpo", "ppo", "promp"])
def test_a_fixed_std_is_neither_adapted_nor_meta_trained(tmp_path, algorithm):
    """policy.learn_std=false: the std stays exp(init_log_std) in every sampled and adapted
    policy, while the mean's parameters are adapted and meta-trained as with a learned std."""
    overrides = [f"algorithm={algorithm}", "policy.learn_std=false", "policy.init_log_std=-0.5"]
    exp = Experiment(make_config(overrides), tmp_path)
    assert "log_std" not in exp.learner.layout.names
    theta = exp.learner.parameters()
    batch = exp.sample_meta_batch()
    fixed = torch.full_like(batch.query.log_std, -0.5)
    assert torch.equal(batch.supports[0].log_std, fixed) and torch.equal(batch.query.log_std, fixed)
    exp.meta_iteration()
    assert not torch.equal(exp.learner.parameters(), theta)
    assert torch.equal(exp.policy.log_std, torch.full_like(exp.policy.log_std, -0.5))
    learned = Experiment(make_config([f"algorithm={algorithm}"]), tmp_path / "learned")
    assert "log_std" in learned.learner.layout.names
    assert learned.learner.parameters().numel() == theta.numel() + exp.policy.log_std.numel()


def test_same_seed_same_result_in_process(tmp_path):
    a = Experiment(make_config(), tmp_path / "a")
    b = Experiment(make_config(), tmp_path / "b")
    for _ in range(2):
        a.meta_iteration()
        b.meta_iteration()
    assert torch.equal(a.learner.parameters(), b.learner.parameters())


@pytest.mark.parametrize(
    "variant",
    [
        [],
        ["algorithm=ppo"],
        ["algorithm=promp", "inner.num_steps=2"],
        ["inner=meta_sgd"],
        ["train.sampling=steps", "env.goal_tolerance=0.1"],
        ["policy.learn_std=false", "algorithm=ppo"],
    ],
)
def test_resume_in_process_continues_exactly(tmp_path, variant):
    full = Experiment(make_config(["train.iterations=4", *variant]), tmp_path / "full")
    full.train()
    part = Experiment(make_config(["train.iterations=2", *variant]), tmp_path / "part")
    part.train()
    resumed = Experiment(
        make_config(["train.iterations=4", *variant, f"resume={tmp_path / 'part'}"])
    )
    assert resumed.iteration == 2 and resumed.run_dir == tmp_path / "part"
    resumed.train()
    assert torch.equal(full.learner.parameters(), resumed.learner.parameters())


# PPO's resume (Adam's moments) is also checked in process above; its SIGKILL run is slow only
@pytest.mark.parametrize("algorithm", ["trpo", pytest.param("ppo", marks=pytest.mark.slow)])
def test_sigkilled_run_resumes_to_the_same_parameters(tmp_path, algorithm):
    args = [*TINY, f"algorithm={algorithm}", "train.iterations=40", "train.checkpoint_every=5"]
    args += ["eval.num_steps=0"]
    reference = run_cli([*args, f"hydra.run.dir={tmp_path / 'ref'}"], cwd=tmp_path, timeout=300)
    assert reference.returncode == 0, reference.stderr

    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "maml_hydra.train", *args, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.2)  # let it run past the checkpoint
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(checkpoint)["iteration"]
    assert 5 <= killed_at < 40

    resumed = run_cli([*args, f"resume={run_dir}"], cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = load_checkpoint(checkpoint)
    expected = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")
    assert final["iteration"] == expected["iteration"] == 40
    for name, value in expected["learner"]["policy"].items():
        assert torch.equal(final["learner"]["policy"][name], value), name
    # TensorBoard has one value per step: events after the checkpoint were purged on resume
    steps = [s for s, _ in scalars(run_dir)["train/return_after_adaptation"]]
    assert sorted(set(steps)) == list(range(1, 41))


def test_checkpoint_problems_stop_with_one_clear_line(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="resume=.*: no such run directory"):
        make_config([f"resume={run}"])
    run.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        Experiment(make_config([f"resume={run}"]))
    run.rmdir()

    Experiment(make_config(["train.iterations=1"]), run).train()
    ckpt = run / "checkpoints" / "last.pt"
    good = ckpt.read_bytes()

    with pytest.raises(CheckpointError, match=r"train\.meta_batch_size \(checkpoint 3, now 4\)"):
        Experiment(make_config([f"resume={run}", "train.meta_batch_size=4"]))

    ckpt.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        Experiment(make_config([f"resume={run}"]))
    assert "\n" not in str(err.value)

    ckpt.write_bytes(good)
    assert Experiment(make_config([f"resume={run}", "train.iterations=2"])).iteration == 1


def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    result = cli([*TINY, f"resume={run}"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "truncated or corrupt" in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "checkpoints" / "c.pt"
    state = Experiment(make_config(), tmp_path / "run").state_dict()
    save_checkpoint(path, state)
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temp file left behind
    assert load_checkpoint(path)["config"] == state["config"]


def test_cli_runs_ppo_with_meta_sgd_first_order(tmp_path):
    args = [*TINY, "algorithm=ppo", "inner=meta_sgd", "inner.first_order=true"]
    args.append("train.log_every=2")
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    # progress=false: what the run tells a tailed log, on stdout and in train.log alike
    logged = (tmp_path / "run" / "train.log").read_text()
    lines = [line for line in logged.splitlines() if "] - iteration " in line]
    assert [line.split("] - ")[1].split(":")[0] for line in lines] == [
        "iteration 2/3",
        "iteration 3/3",
    ]
    assert "before adaptation" in lines[0] and "s/it" in lines[0] and "left" in lines[0]
    assert lines[0] in result.stdout
    assert "held-out return over 3 tasks" in logged
    # the final evaluation says when it starts and how long it took
    assert "evaluating on 3 held-out tasks, 4 episodes per step, 2 step(s)" in logged
    assert re.search(r"\] - evaluated in \d+\.\d s", logged)
    summary = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    before, after = summary["return_per_task"][:2]
    gains = [b - a for a, b in zip(before, after, strict=True)]
    mean = sum(gains) / 3
    sd = (sum((g - mean) ** 2 for g in gains) / 2) ** 0.5
    gain_line = next(line for line in logged.splitlines() if "gain of the first step" in line)
    assert (
        f"{mean:+.2f} ± {sd / 3**0.5:.2f} ({sum(g > 0 for g in gains)} of 3 tasks gain)"
        in gain_line
    )
    assert "  2 steps: " in logged and "  3 steps" not in logged  # eval.num_steps=2; Meta-SGD
    assert "step size" not in logged  # Meta-SGD's step sizes are its own, learned
    assert f"run directory: {tmp_path / 'run'}" in logged
    assert f"python -m maml_hydra.evaluate {tmp_path / 'run'}" in logged
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["learner"]["inner_lrs"] and "optimizer" in state["meta_optimizer"]
    summary = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert len(summary["return_mean"]) == 3


def test_run_summary_prints_the_curves_of_a_run(tmp_path):
    exp = Experiment(make_config(["train.iterations=4", "eval.num_steps=1"]), tmp_path / "run")
    summary = exp.train()
    tags = scalars(tmp_path / "run")
    result = results("summary", tmp_path / "run", "--window", "3")
    assert result.returncode == 0, result.stderr
    before = [v for _, v in tags["train/return_before_adaptation"]]
    after = [v for _, v in tags["train/return_after_adaptation"]]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 1-3 |")]
    assert rows == [
        f"| 1-3 | {sum(before[:3]) / 3:.1f} | {sum(after[:3]) / 3:.1f} | "
        f"{sum(a - b for a, b in zip(after[:3], before[:3], strict=True)) / 3:+.2f} | "
        f"{sum(a > b for a, b in zip(after[:3], before[:3], strict=True))} of 3 |"
    ]
    assert "| 4-4 |" in result.stdout  # the last, shorter window
    per_task = summary["return_per_task"]
    gain = sum(a - b for a, b in zip(per_task[1], per_task[0], strict=True)) / len(per_task[0])
    assert f"held-out paired gain of one step at the end: {gain:+.2f}" in result.stdout
    assert "peak memory (max RSS)" in result.stdout

    empty = results("summary", tmp_path)
    assert empty.returncode != 0
    assert empty.stderr.strip() == f"error: {tmp_path / 'tensorboard'}: no TensorBoard event file"

    untrained = tmp_path / "untrained"  # event file without training curves
    with SummaryWriter(log_dir=str(untrained / "tensorboard")) as writer:
        writer.add_scalar("eval/return_step_0", -40.0, 0)
    result = results("summary", untrained)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"error: {untrained / 'tensorboard'}: no training curves (train/return_before_adaptation)"
    )


def test_a_resumed_run_reads_its_checkpoint_once(tmp_path, monkeypatch):
    """The training command checks a resumed checkpoint before Hydra writes anything, then
    continues from that same load: one read per run, and the run continues where it stopped."""
    import maml_hydra.checkpoint as checkpoint

    run = tmp_path / "run"
    first = cli([*TINY, "train.iterations=2", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    reads = []
    real = checkpoint.load_checkpoint
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda p: reads.append(p) or real(p))
    again = cli([*TINY, "train.iterations=3", f"resume={run}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert reads == [run / "checkpoints" / "last.pt"]
    assert real(run / "checkpoints" / "last.pt")["iteration"] == 3
