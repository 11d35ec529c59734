"""Compact, committed result files from an evaluation report, one JSON per evaluated run:

    python -m maml_hydra.results export SWEEP_DIR --out docs/results/<family> [--commit SHA]

Run it after ``python -m maml_hydra.evaluate SWEEP_DIR``; or with ``--runs RUN_DIR...``, from each
run's own final evaluation (its ``eval_results.json``: its own held-out tasks and step sizes, as
the paper presets evaluate every variant at its own), optionally with ``--suffix`` for a second
evaluation of the same variant and seed; or on a finished Optuna search
(``-m hydra/sweeper=optuna``; its sweep directory holds ``optimization_results.yaml``): then one
``trial<n>.json`` per trial, from the trial's own held-out evaluation (its ``eval_results.json``,
at the step sizes that ran), with the searched parameters and the objective, and the search's
``optimization_results.yaml``. Each file, ``<variant>_seed<seed>.json``,
holds the held-out returns per gradient step and task, the tasks, the evaluation settings, the
config that ran (the checkpoint's), the commit, the meta-iterations, the env steps and the
training wall time (the sum of TensorBoard's ``time/iteration``) and the learning curve
(training return before and after adaptation against env steps). ``python -m
maml_hydra.results table`` makes the tables and the plot of docs/RESULTS.md from these files alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

from maml_hydra.checkpoint import CheckpointError, load_checkpoint
from maml_hydra.results.records import check as check_record
from maml_hydra.results.tensorboard import training_log
from maml_hydra.rundir import checkpoint_path

ROOT = Path(__file__).resolve().parents[2]


def head_commit() -> str:
    """The checkout's commit, for checkpoints that record none."""
    git = ["git", "rev-parse", "HEAD"]
    return subprocess.run(git, cwd=ROOT, capture_output=True, text=True).stdout.strip()


def export(sweep: Path, out: Path, commit: str) -> list[Path]:
    results_path = sweep / "eval" / "results.json"
    if not results_path.is_file():
        raise SystemExit(
            f"error: {results_path}: no report; run python -m maml_hydra.evaluate first"
        )
    results = json.loads(results_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in results["runs"].values():
        run = Path(entry["run"])
        try:
            state = load_checkpoint(checkpoint_path(run))
        except CheckpointError as err:
            raise SystemExit(f"error: {err}") from None
        config = OmegaConf.create(state["config"])
        untrained = entry["iteration"] == 0
        seconds, curve = (0.0, {}) if untrained else training_log(run)
        if untrained and config.baseline.name != "random":
            # the report's random variant: this MAML run's config as baseline=random sets it
            config.baseline.name, config.train.iterations = "random", 0
        record = {
            "family": entry["env"],
            "variant": entry["variant"],
            "seed": entry["seed"],
            # the commit the checkpoint records (runs since 5ccd76a), else --commit
            "commit": state.get("commit") or commit,
            "config": OmegaConf.to_yaml(config),
            "iterations": entry["iteration"],
            "env_steps": 0 if untrained else int(state["env_steps"]),
            "train_wall_s": seconds,
            "eval": results["settings"],
            "tasks": entry["tasks"],
            "returns": entry["returns"],  # [gradient steps + 1][tasks]
            "curve": curve,  # per meta-iteration: env steps, training return before/after
            **({"success": entry["success"]} if "success" in entry else {}),
        }
        path = out / f"{entry['variant']}_seed{entry['seed']}.json"
        path.write_text(json.dumps(check_record(record, path), indent=1) + "\n")
        written.append(path)
    return written


def run_record(run: Path, commit: str, variant: str | None = None) -> dict:
    """One run's record from its own final evaluation (``eval_results.json``, written at the
    end of training at the run's own eval settings and step sizes)."""
    summary_path = run / "eval_results.json"
    if not summary_path.is_file():
        raise SystemExit(f"error: {summary_path}: missing; the run did not finish")
    try:
        state = load_checkpoint(checkpoint_path(run))
    except CheckpointError as err:
        raise SystemExit(f"error: {err}") from None
    summary = json.loads(summary_path.read_text())
    config = OmegaConf.create(state["config"])
    seconds, curve = training_log(run)
    evaluation = OmegaConf.to_container(config.eval, resolve=True)
    lrs = summary.get("eval_lrs") or evaluation["lrs"]
    return {
        "family": config.env.name,
        "variant": variant or config.baseline.name,
        "seed": config.seed,
        "commit": state.get("commit") or commit,
        "commits": state.get("commits") or [state.get("commit") or commit],
        "config": OmegaConf.to_yaml(config),
        "iterations": summary["iteration"],
        "env_steps": summary["env_steps"],
        "train_wall_s": seconds,
        "eval": {**evaluation, "lrs": lrs},
        "tasks": evaluation["tasks"],
        "returns": summary["return_per_task"],  # [gradient steps + 1][tasks]
        "curve": curve,
        **optional(summary),
    }


def export_runs(
    runs: list[Path], out: Path, commit: str, suffix: str = "", variant: str | None = None
) -> list[Path]:
    """One record per run (``run_record``), written only once every run could be read."""
    records = [run_record(run, commit, variant) for run in runs]
    # one variant and seed at several step sizes (random init at 1.0 and 0.5): told apart by
    # the first step size in the file name; any other clash is refused before anything is written
    keys = [(r["variant"], r["seed"]) for r in records]
    paths = []
    for record, key in zip(records, keys, strict=True):
        lr = f"_lr{record['eval']['lrs'][0]:g}" if keys.count(key) > 1 else ""
        paths.append(out / f"{record['variant']}_seed{record['seed']}{lr}{suffix}.json")
    clash = next((p for p in paths if paths.count(p) > 1), None)
    if clash is not None:
        raise SystemExit(f"error: {clash}: two of the runs would be written to it")
    out.mkdir(parents=True, exist_ok=True)
    for record, path in zip(records, paths, strict=True):  # every run could be read
        path.write_text(json.dumps(check_record(record, path), indent=1) + "\n")
    return paths


def optional(summary: dict) -> dict:
    """The optional fields (``records.OPTIONAL_FIELDS``) a run's eval_results.json holds: the
    held-out success rate per step and task, Meta-World's own evaluation."""
    fields = {}
    if "success_per_task" in summary:
        fields["success"] = summary["success_per_task"]
    if "metaworld_protocol" in summary:
        fields["metaworld_protocol"] = summary["metaworld_protocol"]
    return fields


def searched_value(config, key: str):
    """A searched key's value in the config that ran; a config group's (algorithm=ppo) name."""
    chosen = OmegaConf.select(config, key)
    return chosen.name if OmegaConf.is_config(chosen) else chosen


def export_search(sweep: Path, out: Path, commit: str) -> list[Path]:
    """One record per trial of a finished Optuna search, and its optimization_results.yaml."""
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    searched = list(best.best_params)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for run in sorted(sweep.glob("*_job*"), key=lambda r: int(r.name.rsplit("_job", 1)[1])):
        summary_path = run / "eval_results.json"
        if not summary_path.is_file():
            raise SystemExit(f"error: {summary_path}: missing; the trial did not finish")
        summary = json.loads(summary_path.read_text())
        try:
            state = load_checkpoint(checkpoint_path(run))
        except CheckpointError as err:
            raise SystemExit(f"error: {err}") from None
        config = OmegaConf.create(state["config"])
        seconds, curve = training_log(run)
        evaluation = OmegaConf.to_container(config.eval, resolve=True)
        trial = int(run.name.rsplit("_job", 1)[1])
        record = {
            "family": config.env.name,
            "variant": f"trial{trial}",
            "seed": config.seed,
            "commit": state.get("commit") or commit,
            "config": OmegaConf.to_yaml(config),
            "overrides": OmegaConf.to_container(OmegaConf.load(run / ".hydra" / "overrides.yaml")),
            "params": {key: searched_value(config, key) for key in searched},
            "objective": summary["objective"],
            "objective_step": summary["objective_step"],
            "iterations": summary["iteration"],
            "env_steps": summary["env_steps"],
            "train_wall_s": seconds,
            "eval": {**evaluation, "lrs": summary.get("eval_lrs", evaluation["lrs"])},
            "returns": summary["return_per_task"],  # [gradient steps + 1][tasks]
            "curve": curve,
        }
        path = out / f"trial{trial}.json"
        path.write_text(json.dumps(check_record(record, path), indent=1) + "\n")
        written.append(path)
    shutil.copyfile(sweep / "optimization_results.yaml", out / "optimization_results.yaml")
    return [*written, out / "optimization_results.yaml"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m maml_hydra.results export", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "sweep",
        type=Path,
        nargs="?",
        help="a run or sweep directory with eval/results.json, or a finished Optuna search",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        default=None,
        help="run directories exported from their own eval_results.json (then no SWEEP)",
    )
    parser.add_argument("--suffix", default="", help="with --runs: appended to each file's name")
    parser.add_argument(
        "--variant",
        default=None,
        help="with --runs: the records' variant (default: each run's baseline name), e.g. "
        "pretrained_equal_steps for a pretrained run trained as long as MAML",
    )
    parser.add_argument(
        "--commit",
        default=None,
        help="for checkpoints that record no commit (default: git rev-parse HEAD)",
    )
    args = parser.parse_args(argv)
    commit = args.commit or head_commit()
    if args.runs is not None:
        if args.sweep is not None:
            parser.error("give either SWEEP or --runs")
        for path in export_runs(args.runs, args.out, commit, args.suffix, args.variant):
            print(path)
        return
    if args.sweep is None:
        parser.error("give SWEEP or --runs")
    search = (args.sweep / "optimization_results.yaml").is_file()
    for path in (export_search if search else export)(args.sweep, args.out, commit):
        print(path)


if __name__ == "__main__":
    main()
