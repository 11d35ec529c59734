"""SLURM through hydra-submitit-launcher with a real submitit executor and shell shims for
sbatch/srun/sacct/squeue/scontrol/scancel (tests/slurm_shims) first on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from maml_hydra.checkpoint import load_checkpoint
from maml_hydra.experiment import Experiment
from tests.helpers import TINY, make_config, run_cli

SHIMS = Path(__file__).parent / "slurm_shims"


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    state = tmp_path / "slurm_state"
    state.mkdir()
    monkeypatch.setenv("SLURM_SHIM_DIR", str(state))
    monkeypatch.setenv("PATH", f"{SHIMS}{os.pathsep}{os.environ['PATH']}")
    return state


def sweep_args(sweep_dir: Path, *overrides: str) -> list[str]:
    """Arguments of a `-m` sweep; TINY first: a later override of the same key wins."""
    return ["-m", *TINY, *overrides, f"hydra.sweep.dir={sweep_dir}"]


def final_states(slurm: Path, timeout: float = 60.0) -> dict[str, str]:
    """Each task's state once none is pending or running. submitit returns as soon as a job's
    result file exists, a moment before the (shim) scheduler records the job as COMPLETED."""
    deadline = time.time() + timeout
    while True:
        states = {p.name: p.read_text() for p in (slurm / "tasks").iterdir() if p.suffix != ".tmp"}
        active = {"PENDING", "RUNNING", "REQUEUED"}
        if not active.intersection(states.values()) or time.time() > deadline:
            return states
        time.sleep(0.1)


def run_sweep(sweep_dir: Path, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_cli(sweep_args(sweep_dir, *overrides), cwd=cwd, timeout=300)


def test_a_sweep_of_three_jobs_runs_through_slurm(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_sweep(
        sweep,
        tmp_path,
        "hydra/launcher=slurm",
        "algorithm=trpo,ppo,promp",  # every meta-optimizer goes through SLURM
        "seed=0",
        "hydra.launcher.partition=debug",
        "hydra.launcher.timeout_min=7",
        "hydra.launcher.array_parallelism=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.name.startswith("navigation_"))
    algorithms = ("trpo", "ppo", "promp")
    assert runs == sorted(f"navigation_maml_{a}_seed0_job{n}" for n, a in enumerate(algorithms))
    for name in runs:
        assert load_checkpoint(sweep / name / "checkpoints" / "last.pt")["iteration"] == 3
        assert list((sweep / name / "tensorboard").glob("events.out.tfevents.*"))
    script = next((slurm / "jobs").glob("*/script.sh")).read_text()
    assert "#SBATCH --partition=debug" in script
    assert "#SBATCH --time=7" in script
    assert "#SBATCH --array=0-2%2" in script
    assert "#SBATCH --signal=USR2@120" in script
    logs = list((sweep / ".submitit").glob("*_*/*_log.out"))  # job logs stay in the sweep
    assert len(logs) == 3
    assert set(final_states(slurm).values()) == {"COMPLETED"}


def test_a_preempted_job_checkpoints_requeues_and_ends_where_an_uninterrupted_run_ends(
    slurm, tmp_path
):
    sweep = tmp_path / "sweep"
    # ~300 tiny iterations: long enough that the signal lands mid-training on any machine
    overrides = ["train.iterations=300", "train.checkpoint_every=1000", "eval.num_steps=0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maml_hydra.train",
            *sweep_args(sweep, "hydra/launcher=slurm", "seed=0", *overrides),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        run_dir = sweep / "navigation_maml_trpo_seed0_job0"
        events = run_dir / "tensorboard"
        deadline = time.time() + 180
        # checkpoint_every=1000: the only checkpoint before the end is the one the signal writes
        while time.time() < deadline and not list(events.glob("events.out.tfevents.*")):
            time.sleep(0.2)
        time.sleep(1.0)  # some iterations into training
        assert not (run_dir / "checkpoints" / "last.pt").exists()
        subprocess.run(
            ["scancel", "--signal=USR2", "1001"], check=True
        )  # as SLURM does before preempting
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]
    finally:
        if proc.poll() is None:  # never leave a sweep behind
            proc.kill()
            proc.communicate()

    # a one-job sweep is a plain (non-array) SLURM job; submitit logs to <sweep>/.submitit/
    log = (sweep / ".submitit" / "1001" / "1001_0_log.out").read_text()
    assert "Caught signal SIGUSR2" in log
    assert "preempted: wrote" in log and "Requeued job 1001" in log
    assert final_states(slurm) == {"1001": "COMPLETED"}
    assert f"continuing {run_dir}" in (run_dir / "train.log").read_text()

    reference = Experiment(make_config(["seed=0", *overrides]), tmp_path / "reference")
    reference.train()
    final = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert final["iteration"] == 300
    expected = reference.learner.state_dict()["policy"]
    for name, value in expected.items():
        assert torch.equal(final["learner"]["policy"][name], value), name


# submitit's own local launcher is what ours extends: the fast suite runs ours
@pytest.mark.parametrize(
    "launcher", [pytest.param("submitit_local", marks=pytest.mark.slow), "local"]
)
def test_a_two_job_sweep_runs_with_the_local_submitit_launcher(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    result = run_sweep(sweep, tmp_path, f"hydra/launcher={launcher}", "seed=0,1")
    assert result.returncode == 0, result.stderr[-3000:]
    for seed in (0, 1):
        assert load_checkpoint(
            sweep / f"navigation_maml_trpo_seed{seed}_job{seed}" / "checkpoints" / "last.pt"
        )
    assert list((sweep / ".submitit").iterdir())


@pytest.mark.parametrize(
    "override,message",
    [
        ("hydra.launcher.gpus=1", "Key 'gpus' not in 'SlurmQueueConf'"),
        (
            "hydra.launcher.timeout_min=-5",
            "error: hydra.launcher.timeout_min=-5 is not allowed: must be >= 1",
        ),
        ("hydra.launcher.array_parallelism=0", "hydra.launcher.array_parallelism=0 is not allowed"),
    ],
)
def test_bad_launcher_settings_fail_before_anything_is_submitted(
    slurm, tmp_path, override, message
):
    sweep = tmp_path / "sweep"
    result = run_sweep(sweep, tmp_path, "hydra/launcher=slurm", "seed=0,1", override)
    assert result.returncode != 0
    assert message in result.stderr
    assert not sweep.exists() and not (slurm / "jobs").exists()
