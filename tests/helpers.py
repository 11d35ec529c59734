"""Helpers shared by the tests: compose real configs with Hydra, shrink them for fast tests,
run the command line and the scripts, build a small learner and meta-batch. (Fixtures are in
conftest.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# make test runs two pytest-xdist workers on the 2 cores: one torch thread each, here and in
# every CLI subprocess (they inherit it). Tiny tensors gain nothing from a second thread, and
# an oversubscribed OpenMP pool slows them many times over (measured: 0.15 s against 7 s per
# tiny meta-iteration while another process kept one core busy).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from maml_hydra import hydra_glue  # noqa: E402, F401  (conf/config.yaml's resolvers)
from maml_hydra.config import Config, Estimator, InnerConfig, NavigationConfig, to_config  # noqa: E402
from maml_hydra.learner import MAML  # noqa: E402
from maml_hydra.policy import GaussianMLPPolicy  # noqa: E402
from maml_hydra.sampling import SamplingPlan  # noqa: E402
from maml_hydra.tasks.navigation import Navigation2D  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SCRIPTS = ROOT / "scripts"

# A few seconds per run: 3 tasks x 4 episodes x 10 steps, a small policy.
TINY = [
    "train.iterations=3",
    "train.meta_batch_size=3",
    "train.episodes_per_task=4",
    "train.checkpoint_every=1",
    "env.horizon=10",
    "policy.hidden_sizes=[16,16]",
    "eval.num_tasks=3",
    "eval.episodes_per_task=4",
    "eval.num_steps=2",
    "progress=false",
]

# TINY less the keys a baseline sets: a command-line value wins over the baseline's, so sweeps
# over baselines pass none of them (train.iterations stays: random is not swept here).
TINY_BASELINES = [o for o in TINY if not o.startswith("eval.num_steps=")]


def compose_config(overrides: list[str] = (), tiny: bool = True, return_hydra_config: bool = False):
    """Compose conf/config.yaml exactly as the CLI does, with overrides (TINY first)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[*(TINY if tiny else []), *overrides],
            return_hydra_config=return_hydra_config,
        )


def make_config(overrides: list[str] = (), tiny: bool = True) -> Config:
    return to_config(compose_config(overrides, tiny))


def run_cli(
    args: list[str],
    cwd: Path,
    module: str = "maml_hydra.train",
    extra_env: dict[str, str] | None = None,
    **kwargs,
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` in ``cwd`` with this interpreter."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        **kwargs,
    )


def cli(args: list, cwd: Path, module: str = "maml_hydra.train") -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in ``cwd``, run in this process (as ``run_cli`` does in a
    new one): its exit status, stdout and stderr. Hydra's global state is cleared before and
    after, and the logging handlers it installs are removed."""
    import contextlib
    import importlib
    import io
    import logging

    from hydra.core.global_hydra import GlobalHydra

    entry = importlib.import_module(module)
    main = entry.main
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_argv = sys.argv
    saved_env = {k: os.environ.get(k) for k in ("HYDRA_FULL_ERROR", "HYDRA_MAIN_MODULE")}
    # Hydra finds ``config_path`` next to the entry point's file only when it runs as __main__
    os.environ["HYDRA_MAIN_MODULE"] = "__main__"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    GlobalHydra.instance().clear()
    try:
        captured = contextlib.redirect_stdout(out), contextlib.redirect_stderr(err)
        with contextlib.chdir(cwd), captured[0], captured[1]:
            sys.argv = [entry.__file__, *map(str, args)]  # as python -m sets it
            try:  # a @hydra.main function as python -m runs it; the others wrap it themselves
                hydra_glue.run(main) if hasattr(main, "__wrapped__") else main()
            except SystemExit as exit_:
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)
                    code = 1
                else:
                    code = exit_.code or 0
    finally:
        GlobalHydra.instance().clear()
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        root.handlers[:], root.level = handlers, level
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def as_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def results(command: str, *args) -> subprocess.CompletedProcess:
    """``python -m maml_hydra.results <command> <args>``, run in-process: its exit status, stdout
    and stderr as a subprocess would give them."""
    import contextlib
    import io

    from maml_hydra.results.__main__ import main

    argv = [command, *map(str, args)]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exit_:
            if isinstance(exit_.code, str):
                print(exit_.code, file=err)
                code = 1
            else:
                code = exit_.code or 0
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def python_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """``python scripts/<name> <args>`` with this interpreter."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True
    )


def build(
    num_steps=1,
    first_order=False,
    tasks=3,
    episodes=4,
    horizon=8,
    seed=0,
    learn_lr=False,
    estimator="reinforce",
):
    torch.manual_seed(seed)
    env = Navigation2D(NavigationConfig(horizon=horizon), tasks, episodes)
    gen = torch.Generator().manual_seed(seed)
    env.set_tasks(env.sample_tasks(tasks, gen))
    policy = GaussianMLPPolicy(2, 2, [16, 16], "tanh", init_log_std=-0.5)
    inner = InnerConfig(
        num_steps=num_steps,
        lr=0.1,
        first_order=first_order,
        learn_lr=learn_lr,
        estimator=Estimator(estimator),
    )
    learner = MAML(policy, inner, 0.99, 1.0)
    if learn_lr:  # distinct step sizes, so that using the wrong one shows
        learner.inner_lrs = {k: v * (1 + torch.rand_like(v)) for k, v in learner.inner_lrs.items()}
    theta = learner.parameters()
    return learner, theta, learner.sample(env, theta, gen, SamplingPlan(episodes))
