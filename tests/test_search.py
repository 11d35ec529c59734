"""Hyperparameter search: `-m hydra/sweeper=optuna` maximises each run's held-out objective."""

from __future__ import annotations

import json

import pytest
import yaml

from maml_hydra.evaluator import objective_step
from maml_hydra.hydra_glue import settle_sweeper
from tests.helpers import TINY, cli, compose_config, make_config, results

TINY_SEARCH = [o for o in TINY if not o.startswith("train.iterations=")] + ["train.iterations=1"]
OPTUNA = [  # no direction named: the project's Optuna searches maximise
    "-m",
    "hydra/sweeper=optuna",
    "hydra.sweeper.n_trials=3",
    "hydra.sweeper.n_jobs=1",
    "hydra.sweeper.sampler.seed=0",
    "inner.lr=interval(0.05,0.5)",
    "eval.lrs=[${inner.lr}]",  # held-out adaptation with each trial's own step size
]


def test_the_objective_is_the_return_after_the_runs_own_adaptation():
    assert objective_step(inner_steps=1, eval_steps=3) == 1  # MAML
    assert objective_step(inner_steps=2, eval_steps=3) == 2
    assert objective_step(inner_steps=0, eval_steps=3) == 1  # pretrained, after fine-tuning
    assert objective_step(inner_steps=0, eval_steps=0) == 0  # oracle, as is


def test_optuna_maximises_the_held_out_return_the_runs_return(tmp_path):
    sweep = tmp_path / "search"
    result = cli([*OPTUNA, *TINY_SEARCH, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert result.returncode == 0, result.stderr
    trials = {}
    for run in sorted(sweep.glob("navigation_maml_trpo_seed0_job*")):
        summary = json.loads((run / "eval_results.json").read_text())
        assert summary["objective_step"] == 1
        assert summary["objective"] == summary["return_mean"][1]
        lr = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["inner"]["lr"]
        assert summary["eval_lrs"] == [lr, lr]  # TINY: eval.num_steps=2
        trials[lr] = summary["objective"]
    assert len(trials) == 3  # one run directory per trial, each with its own step size
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(trials.values())
    assert trials[best["best_params"]["inner.lr"]] == best["best_value"]

    # committed compact results: one file per trial, and the table of trials, best first
    out = tmp_path / "results"
    export = results("export", sweep, "--out", out)
    assert export.returncode == 0, export.stderr
    records = [json.loads((out / f"trial{n}.json").read_text()) for n in range(3)]
    assert {r["params"]["inner.lr"]: r["objective"] for r in records} == trials
    for r in records:
        assert r["eval"]["lrs"] == [r["params"]["inner.lr"]] * 2 and r["env_steps"] > 0
        assert r["returns"][1] and sum(r["returns"][1]) / len(r["returns"][1]) == (
            pytest.approx(r["objective"])
        )
    assert yaml.safe_load((out / "optimization_results.yaml").read_text()) == best
    table = results("table", "--search", out)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("| trial")][1:]
    ranked = sorted(records, key=lambda r: -r["objective"])
    assert [row.split(" | ")[0] for row in rows] == [f"| {r['variant']}" for r in ranked]


def test_a_search_that_would_minimise_the_return_is_refused(tmp_path):
    sweep = tmp_path / "search"
    args = [*OPTUNA, "hydra.sweeper.direction=minimize"]
    result = cli([*args, *TINY_SEARCH, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: hydra.sweeper.direction='minimize' is not allowed: must be maximize")
    )
    assert not sweep.exists()


def test_an_optuna_sweep_without_a_direction_is_set_to_maximise():
    config = compose_config(["hydra/sweeper=optuna"], return_hydra_config=True)
    assert config.hydra.sweeper.direction.name == "minimize"  # the plugin's own default
    settle_sweeper(config)
    assert config.hydra.sweeper.direction == "maximize"  # as the plugin reads a named one
    settle_sweeper(compose_config(return_hydra_config=True))  # the basic sweeper: untouched


def test_the_committed_search_space_maximises_over_mamls_main_settings():
    config = compose_config(["hparams_search=maml_optuna", "seed=3"], return_hydra_config=True)
    sweeper = config.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert set(sweeper.params) == {"inner.lr", "train.gae_lambda", "algorithm"}
    assert sweeper.sampler.seed == 3
    cfg = make_config(["hparams_search=maml_optuna", "inner.lr=0.3"])
    assert cfg.eval.lrs == [0.3]  # each trial adapts at its own step size


def test_a_plain_sweep_over_another_key_keeps_each_job_apart(tmp_path):
    """Jobs that differ only in a key outside the run name (here inner.lr) get a directory of
    their own instead of continuing one another's checkpoint."""
    sweep = tmp_path / "sweep"
    args = ["-m", "inner.lr=0.1,0.2", *TINY_SEARCH, f"hydra.sweep.dir={sweep}"]
    result = cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["navigation_maml_trpo_seed0_job0", "navigation_maml_trpo_seed0_job1"]
    lrs = [
        yaml.safe_load((sweep / r / ".hydra" / "config.yaml").read_text())["inner"]["lr"]
        for r in runs
    ]
    assert lrs == [0.1, 0.2]
