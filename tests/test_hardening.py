"""Bad input, as a new user gives it, in one table: every case exits non-zero with exactly one
line on stderr that names the key or file, no traceback, and leaves the run directory it
points at byte-identical (or absent where it was absent). Then the failure kinds that need a
run: divergence, a run directory owned by one run, a killed checkpoint write."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from maml_hydra.checkpoint import load_checkpoint, save_checkpoint
from maml_hydra.experiment import DivergenceError, Experiment
from tests.helpers import TINY, cli, make_config, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny trained run (CLI, so that it has .hydra/ and train.log) for every case to copy."""
    root = tmp_path_factory.mktemp("trained")
    result = cli([*TINY, "train.iterations=1", f"hydra.run.dir={root / 'run'}"], root)
    assert result.returncode == 0, result.stderr
    return root / "run"


def snapshot(path: Path) -> dict[str, bytes] | None:
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


CKPT = "checkpoints/last.pt"


def edit_checkpoint(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        state = torch.load(run / CKPT, weights_only=True)
        change(state)
        save_checkpoint(run / CKPT, state)

    return edit


def truncate(run: Path) -> None:
    data = (run / CKPT).read_bytes()
    (run / CKPT).write_bytes(data[: len(data) // 2])


def nan_parameters(state: dict) -> None:
    state["learner"]["policy"]["mean.0.weight"][0, 0] = float("nan")


def config_key(key: str, value) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        cfg = OmegaConf.create(state["config"])
        OmegaConf.update(cfg, key, value, force_add=True)
        state["config"] = OmegaConf.to_yaml(cfg)

    return change


def corrupt_results(run: Path) -> None:
    (run / "eval").mkdir()
    (run / "eval" / "results.json").write_text('{"settings": ')


# (name, command, args ({run} is the case's copy of a trained run), setup of the copy, what the
# one stderr line contains, the path that must be unchanged)
TRAIN, EVALUATE = "maml_hydra.train", "maml_hydra.evaluate"
BAD = [
    # non-finite and out-of-range values, refused before anything is written
    ("lr inf", TRAIN, ["inner.lr=inf"], None, "inner.lr=inf"),
    ("lr nan", TRAIN, ["inner.lr=nan"], None, "inner.lr=nan"),
    ("max_kl inf", TRAIN, ["algorithm.max_kl=inf"], None, "algorithm.max_kl=inf"),
    ("eval lrs inf", TRAIN, ["eval.lrs=[inf]"], None, "eval.lrs=[inf]"),
    ("eval lrs empty", TRAIN, ["eval.lrs=[]"], None, "eval.lrs=[]"),
    ("gamma nan", TRAIN, ["train.gamma=nan"], None, "train.gamma=nan"),
    ("lambda > 1", TRAIN, ["train.gae_lambda=1.5"], None, "train.gae_lambda=1.5"),
    ("horizon 0", TRAIN, ["env.horizon=0"], None, "env.horizon=0"),
    ("steps < 0", TRAIN, ["inner.num_steps=-1"], None, "inner.num_steps=-1"),
    ("batch 0", TRAIN, ["train.meta_batch_size=0"], None, "train.meta_batch_size=0"),
    ("no layers", TRAIN, ["policy.hidden_sizes=[]"], None, "policy.hidden_sizes=[]"),
    ("checkpoint 0", TRAIN, ["train.checkpoint_every=0"], None, "train.checkpoint_every=0"),
    ("eval tasks 0", TRAIN, ["eval.num_tasks=0"], None, "eval.num_tasks=0"),
    ("fvp 0", TRAIN, ["algorithm.fvp_task_fraction=0"], None, "algorithm.fvp_task_fraction=0"),
    ("ppo clip", TRAIN, ["algorithm=ppo", "algorithm.clip_eps=1.5"], None, "algorithm.clip_eps"),
    (
        "ppo minibatches",
        TRAIN,
        ["algorithm=ppo", "algorithm.num_minibatches=99"],
        None,
        "algorithm.num_minibatches=99",
    ),
    (
        "promp kl coef",
        TRAIN,
        ["algorithm=promp", "algorithm.kl_coef=-1"],
        None,
        "algorithm.kl_coef=-1",
    ),
    (
        "promp kl target",
        TRAIN,
        ["algorithm=promp", "algorithm.kl_target=0"],
        None,
        "algorithm.kl_target=0",
    ),
    (
        "promp clip",
        TRAIN,
        ["algorithm=promp", "algorithm.clip_eps=nan"],
        None,
        "algorithm.clip_eps=nan",
    ),
    ("estimator", TRAIN, ["inner.estimator=magic"], None, "inner.estimator"),
    ("physics", TRAIN, ["env=halfcheetah_dir", "env.physics=bullet"], None, "env.physics"),
    ("warp on cuda", TRAIN, ["env=ant", "env.physics=warp", "device=cuda"], None, "device="),
    ("goal nan", TRAIN, ["env=ant", "env.goal_low=nan"], None, "env.goal_low=nan"),
    ("device", TRAIN, ["device=tpu"], None, "device='tpu'"),
    ("eval tasks shape", TRAIN, ["eval.tasks=[[0.1]]"], None, "eval.tasks="),
    ("target not a family", TRAIN, ["env._target_=os.path.join"], None, "env._target_"),
    ("target missing", TRAIN, ["env._target_=nowhere.Family"], None, "env._target_"),
    # Hydra's own: choices, typos, types, options
    ("activation", TRAIN, ["policy.activation=sigm"], None, "policy.activation=sigm"),
    ("init", TRAIN, ["policy.init=glorot"], None, "policy.init=glorot"),
    ("sampling", TRAIN, ["train.sampling=trajectories"], None, "train.sampling"),
    ("hvp", TRAIN, ["algorithm.hvp=perlmutter"], None, "algorithm.hvp"),
    ("closed form", TRAIN, ["algorithm.closed_form=maybe"], None, "algorithm.closed_form"),
    ("typo", TRAIN, ["inner.lrr=0.1"], None, "'inner.lrr'"),
    ("type", TRAIN, ["train.iterations=abc"], None, "train.iterations=abc"),
    ("group option", TRAIN, ["env=foo"], None, "'env/foo'"),
    ("experiment", TRAIN, ["+experiment=nope"], None, "'experiment/nope'"),
    # the SLURM launcher, before anything is submitted
    (
        "USR2 before the start",
        TRAIN,
        ["-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=2"],
        None,
        "hydra.launcher.signal_delay_s=120",
    ),
    (
        "slurm time",
        TRAIN,
        ["-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=0"],
        None,
        "timeout_min=0",
    ),
    # resume and the run directory: refused before Hydra writes .hydra/ or the log there
    ("resume missing", TRAIN, ["resume={run}/nope"], None, "no such run directory"),
    ("resume a file", TRAIN, ["resume={run}/" + CKPT], None, "is a file"),
    (
        "resume other config",
        TRAIN,
        ["resume={run}", "train.meta_batch_size=5"],
        None,
        "train.meta_batch_size",
    ),
    ("resume truncated", TRAIN, ["resume={run}"], truncate, "truncated or corrupt"),
    (
        "resume no config",
        TRAIN,
        ["resume={run}"],
        edit_checkpoint(lambda s: s.pop("config")),
        "no config",
    ),
    ("resume nan", TRAIN, ["resume={run}"], edit_checkpoint(nan_parameters), "not finite"),
    (
        "resume unknown key",
        TRAIN,
        ["resume={run}"],
        edit_checkpoint(config_key("train.nope", 1)),
        "does not fit",
    ),
    (
        "resume checkpoint gone",
        TRAIN,
        ["resume={run}"],
        lambda r: (r / CKPT).unlink(),
        "no checkpoint found",
    ),
    (
        "continue other config",
        TRAIN,
        ["hydra.run.dir={run}", "seed=5"],
        None,
        "seed (checkpoint 0, now 5)",
    ),
    ("run dir a file", TRAIN, ["hydra.run.dir={run}/" + CKPT], None, "is a file"),
    # the evaluation report
    ("report missing dir", EVALUATE, ["{run}/nope"], None, "no such directory"),
    ("report lrs", EVALUATE, ["{run}", "eval.lrs=[inf]"], None, "eval.lrs=[inf]"),
    ("report typo", EVALUATE, ["{run}", "eval.num_taskz=1"], None, "'eval.num_taskz'"),
    ("report corrupt results", EVALUATE, ["{run}"], corrupt_results, "results.json: not a report"),
    (
        "report foreign target",
        EVALUATE,
        ["{run}"],
        edit_checkpoint(config_key("env._target_", "os.system")),
        "modules=[os]",
    ),
    (
        "report unknown key",
        EVALUATE,
        ["{run}"],
        edit_checkpoint(config_key("env.nope", 1)),
        "does not fit this version",
    ),
    ("report nan", EVALUATE, ["{run}"], edit_checkpoint(nan_parameters), "not finite"),
]


@pytest.mark.parametrize(
    ("name", "module", "args", "setup", "expected"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_input_is_one_line_and_changes_nothing(
    trained, tmp_path, name, module, args, setup, expected
):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    if setup is not None:
        setup(run)
    args = [a.replace("{run}", str(run)) for a in args]
    if module == TRAIN:
        flags = [a for a in args if a == "-m"]
        args = [*flags, *TINY, *(a for a in args if a != "-m")]
        if not any(a.startswith(("hydra.run.dir=", "resume=")) for a in args):
            where = "hydra.sweep.dir" if flags else "hydra.run.dir"
            args.append(f"{where}={run}/new")  # a fresh directory: it must stay absent
    before = {p: snapshot(p) for p in (run, run / "nope", run / "new")}
    result = cli(args, cwd=tmp_path, module=module)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    for path, content in before.items():
        assert snapshot(path) == content, path
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_the_table_holds_at_least_forty_cases():
    assert len(BAD) >= 40


# ------------------------------------------------------------------------------- divergence
def test_a_diverging_run_stops_keeps_its_last_finite_checkpoint_and_reports_nothing(
    tmp_path, monkeypatch
):
    run = tmp_path / "run"
    Experiment(make_config(["train.iterations=2", "train.checkpoint_every=1"]), run).train()
    good = (run / CKPT).read_bytes()
    results = (run / "eval_results.json").read_bytes()

    exp = Experiment(make_config([f"resume={run}", "train.iterations=4"]))
    real_step = exp.meta_optimizer.step

    def step_to_nan(theta, batch):  # iteration 3 is fine, iteration 4 diverges
        new, metrics = real_step(theta, batch)
        if exp.iteration == 3:
            new = new * float("nan")
        return new, metrics

    monkeypatch.setattr(exp.meta_optimizer, "step", step_to_nan)
    with pytest.raises(DivergenceError) as err:
        exp.train()
    message = str(err.value)
    assert "diverged at iteration 4: a meta-parameter is not finite" in message
    assert "holds iteration 3" in message and "\n" not in message
    state = load_checkpoint(run / CKPT)  # finite, else this would raise
    assert state["iteration"] == 3 and (run / CKPT).read_bytes() != good
    assert (run / "eval_results.json").read_bytes() == results  # the good report is kept


def test_a_non_finite_evaluation_writes_no_report(tmp_path):
    run = tmp_path / "run"
    exp = Experiment(make_config(["train.iterations=1"]), run)
    exp.evaluator.evaluate = lambda theta: torch.full((3, 3), float("nan"))
    with pytest.raises(DivergenceError, match="held-out return after 0 steps of adaptation"):
        exp.train()
    assert not (run / "eval_results.json").exists()


# ------------------------------------------------------------------ one run per directory
HOLD = """
import sys, time
from maml_hydra.checkpoint import claim_run_dir
claim_run_dir(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_run_into_a_directory_in_use_is_refused_and_a_killed_owner_frees_it(
    trained, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    owner = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout.readline().strip() == "held"
        before = snapshot(run)
        result = run_cli([*TINY, "train.iterations=2", f"hydra.run.dir={run}"], cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"error: {run}: another run is writing to this directory; wait for it to end or "
            "choose another hydra.run.dir"
        )
        assert snapshot(run) == before
    finally:
        owner.kill()  # SIGKILL: the kernel drops the lock, no cleanup needed
        owner.wait()
    # a killed checkpoint write's temporary file is removed by the next run that owns the dir
    (run / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    result = run_cli([*TINY, "train.iterations=2", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(run / CKPT)["iteration"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]
    assert json.loads((run / "eval_results.json").read_text())["iteration"] == 2
