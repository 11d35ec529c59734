"""A task family defined outside the package, chosen by `_target_` from the user's own config
directory on Hydra's search path, meta-trains end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from maml_hydra.checkpoint import config_from_yaml, load_checkpoint
from tests.helpers import TINY, run_cli

FAMILY = '''
import torch
from maml_hydra.tasks import TaskFamily


class Line1D(TaskFamily):
    """A point on a line moves towards a goal in [-1, 1]."""

    task_dim, state_obs_dim, action_dim = 1, 1, 1

    def __init__(self, cfg, num_tasks, episodes_per_task, device="cpu"):
        super().__init__(cfg, num_tasks, episodes_per_task, device)
        self.position = torch.zeros(*self.batch_size, 1)

    def sample_tasks(self, num_tasks, generator):
        return torch.rand(num_tasks, 1, generator=generator) * 2 - 1

    def _initial_obs(self, generator=None):
        self.position = torch.zeros(*self.batch_size, 1, device=self.device)
        return self.position

    def _advance(self, action):
        self.position = self.position + self.cfg.params["speed"] * action.clamp(-1, 1)
        reward = -(self.position - self.tasks[:, None, :]).abs().squeeze(-1)
        return self.position, reward, torch.zeros(self.batch_size, dtype=torch.bool)
'''

YAML = """
defaults:
  - base_env
  - _self_

_target_: line_family.Line1D
name: line
horizon: 10
params:
  speed: 0.2
"""


@pytest.fixture
def user_project(tmp_path) -> tuple[Path, dict]:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "line_family.py").write_text(FAMILY)
    (tmp_path / "my_conf" / "env").mkdir(parents=True)
    (tmp_path / "my_conf" / "env" / "line.yaml").write_text(YAML)
    return tmp_path, {"PYTHONPATH": str(tmp_path / "src")}


def cli(module: str, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return run_cli(args, cwd, module=module, extra_env=env, timeout=300)


def test_a_family_outside_the_package_meta_trains_and_evaluates(user_project):
    root, env = user_project
    search = f"hydra.searchpath=[file://{root / 'my_conf'}]"
    run = root / "run"
    result = cli(
        "maml_hydra.train",
        [*TINY, search, "env=line", "train.iterations=2", f"hydra.run.dir={run}"],
        root,
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    cfg = config_from_yaml(state["config"])
    assert state["iteration"] == 2 and cfg.env.params == {"speed": 0.2}
    assert len(json.loads((run / "eval_results.json").read_text())["return_mean"]) == 3
    args = [str(run), "eval.num_tasks=3", "eval.episodes_per_task=4", "progress=false"]
    # the report imports a family from a checkpoint only from the package or named modules
    refused = cli("maml_hydra.evaluate", args, root, env)
    assert refused.returncode == 1 and "modules=[line_family]" in refused.stderr
    report = cli("maml_hydra.evaluate", [*args, "modules=[line_family]"], root, env)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "| maml | 1 |" in (run / "eval" / "summary.md").read_text()


def test_a_family_that_does_not_import_is_one_clear_line(user_project):
    root, env = user_project
    search = f"hydra.searchpath=[file://{root / 'my_conf'}]"
    result = cli(
        "maml_hydra.train", [*TINY, search, "env=line", "env._target_=line_family.Nope"], root, env
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "error: env._target_='line_family.Nope' is not allowed: it does not import" in result.stderr
    )
    assert not (root / "outputs").exists()


def test_step_budget_sampling_needs_a_family_that_can_restart_episodes(user_project):
    root, env = user_project
    search = f"hydra.searchpath=[file://{root / 'my_conf'}]"
    result = cli("maml_hydra.train", [*TINY, search, "env=line", "train.sampling=steps"], root, env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "error: train.sampling='steps' is not allowed: needs line_family.Line1D to restart "
        "episodes that end early (it has no _restart)" in result.stderr
    )
    assert not (root / "outputs").exists()
