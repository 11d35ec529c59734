"""The evaluation report over runs (``python -m maml_hydra.evaluate <run or sweep dir>``).

Every run is adapted on the same held-out tasks; ``<dir>/eval/`` gets ``results.json`` (every
number, per task), ``summary.md`` (mean ± standard error over seeds), ``adaptation.png``
and TensorBoard scalars ``eval/return_step_k``. Returns are sums of rewards per episode.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from maml_hydra.checkpoint import (
    CheckpointError,
    checkpoint_config,
    load_checkpoint,
    write_atomic,
)
from maml_hydra.config import Config, EvaluateConfig
from maml_hydra.results.records import ordered
from maml_hydra.results.stats import mean_se, steps_text
from maml_hydra.rundir import CHECKPOINT, checkpoint_path
from maml_hydra.sampling import SamplingPlan

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class EvaluationError(RuntimeError):
    """Input the report cannot be made from; the message names the directory or file."""


def find_runs(root: Path) -> list[Path]:
    """``root`` itself if it is a run, else every run below it (a folder with .hydra/config.yaml
    or a checkpoint), skipping the report's own ``eval`` folders."""
    if not root.is_dir():
        raise EvaluationError(f"{root}: no such directory")

    def is_run(p: Path) -> bool:
        return (p / ".hydra" / "config.yaml").is_file() or checkpoint_path(p).is_file()

    if is_run(root):
        return [root]
    markers = [*root.rglob(".hydra/config.yaml"), *root.rglob(str(CHECKPOINT))]
    runs = sorted({p.parent.parent for p in markers if "eval" not in p.relative_to(root).parts})
    if not runs:
        raise EvaluationError(
            f"{root}: no runs found (no .hydra/config.yaml or checkpoints/last.pt below it)"
        )
    return runs


def run_config(run: Path, modules: list[str] = ()) -> tuple[Config, dict]:
    """The run's config, as saved in its checkpoint (which must exist and load). Its task family
    must be the package's or in ``modules``, checked before anything is imported."""
    path = checkpoint_path(run)
    state = load_checkpoint(path)
    return checkpoint_config(state, path, list(modules)), state


def evaluate_run(cfg: Config, state: dict | None, run_dir: Path, eval_cfg, device: str) -> dict:
    """Returns [K+1][tasks] of the run's policy (or a fresh one when ``state`` is None, with
    the observation statistics of its own rollouts: ``Experiment.fit_initial_statistics``).
    The report's held-out settings replace the run's, except that a run evaluated without
    gradient steps (``eval.num_steps=0``: the oracle) is evaluated as is here too."""
    from maml_hydra.experiment import Experiment  # heavy import, only when evaluating

    if cfg.eval.num_steps == 0:
        eval_cfg = replace(eval_cfg, num_steps=0)
    cfg = replace(cfg, eval=eval_cfg, device=device, progress=False, resume=None)
    exp = Experiment(cfg, run_dir)
    try:
        if state is not None:
            exp.load_weights(state)
        else:
            exp.fit_initial_statistics()
        returns = exp.evaluator.evaluate(exp.learner.parameters())
    finally:
        exp.close()
    if not bool(torch.isfinite(returns).all()):
        raise EvaluationError(f"{run_dir}: a held-out return is not finite; nothing reported")
    entry = {
        "returns": returns.tolist(),
        "iteration": int(state["iteration"]) if state else 0,
        "tasks": exp.evaluator.tasks.tolist(),
    }
    if exp.evaluator.success is not None:  # a family with a notion of success (Meta-World)
        entry["success"] = exp.evaluator.success.tolist()
    return entry


def summarize_variants(results: dict) -> dict:
    """Per variant and step: the mean over seeds of each seed's mean over its tasks, and its
    standard error over seeds (``over``: "seeds"); with one seed the standard error over its
    tasks (``over``: "tasks"). Tasks within a seed are not independent samples."""
    by_variant: dict[str, list[torch.Tensor]] = {}
    for entry in results["runs"].values():
        by_variant.setdefault(entry["variant"], []).append(torch.tensor(entry["returns"]))
    summary = {}
    for variant, per_run in by_variant.items():
        steps = max(r.shape[0] for r in per_run)
        rows = []
        for k in range(steps):
            runs = [r[k].double() for r in per_run if r.shape[0] > k]
            over = "seeds" if len(runs) > 1 else "tasks"
            values = [r.mean().item() for r in runs] if len(runs) > 1 else runs[0].tolist()
            mean, stderr = mean_se(values)
            rows.append({"mean": mean, "stderr": stderr or 0.0, "n": len(runs), "over": over})
        summary[variant] = {"steps": rows, "seeds": len(per_run)}
    return summary


def write_markdown(
    path: Path,
    summary: dict,
    settings: dict,
    env: str,
    per_step: set[str] = frozenset(),
    success: dict | None = None,
) -> None:
    """``per_step``: what one gradient step's batch is, for each run's sampling plan;
    ``success``: the success rates' summary, tabled the same way after the returns."""
    steps = max(len(s["steps"]) for s in summary.values())
    per_step = " or ".join(sorted(per_step)) or f"{settings['episodes_per_task']} episodes"
    lines = [
        f"# Adaptation on held-out tasks: {env}",
        "",
        f"Average return (sum of rewards per episode) on {settings['num_tasks']} held-out tasks: "
        "the mean over seeds of each seed's mean, ± its standard error over seeds (over tasks "
        f"for a variant of one seed); {per_step} per step, step sizes {settings['lrs']}. The "
        "oracle is evaluated without gradient steps.",
        "",
        "| variant | seeds | " + " | ".join(steps_text(k) for k in range(steps)) + " |",
        "|---|---|" + "---|" * steps,
    ]
    for variant in ordered(summary):
        rows = summary[variant]["steps"]
        cells = [f"{r['mean']:.2f} ± {r['stderr']:.2f}" for r in rows] + ["-"] * (steps - len(rows))
        lines.append(f"| {variant} | {summary[variant]['seeds']} | " + " | ".join(cells) + " |")
    if success:
        lines += ["", "Success rate (the share of episodes with info['success'] at some step):", ""]
        lines += [lines[4], lines[5]]  # the header of the returns table
        for variant in ordered(success):
            rows = success[variant]["steps"]
            cells = [f"{r['mean']:.2f} ± {r['stderr']:.2f}" for r in rows]
            cells += ["-"] * (steps - len(rows))
            lines.append(f"| {variant} | {success[variant]['seeds']} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(
    path: Path,
    summary: dict,
    env: str,
    num_tasks: int,
    ylabel: str = "average return (sum of rewards per episode)",
) -> None:
    """Return (or the measure ``ylabel`` names) against gradient steps per variant; the band is
    one standard error over seeds (over tasks for a variant of one seed), which the figure says
    with the counts."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    steps = max(len(s["steps"]) for s in summary.values())
    for variant in ordered(summary):
        rows = summary[variant]["steps"]
        mean = torch.tensor([r["mean"] for r in rows])
        err = torch.tensor([r["stderr"] for r in rows])
        if len(rows) == 1:  # no adaptation: a horizontal reference line
            ax.axhline(mean[0], linestyle="--", label=f"{variant} (no adaptation)", color="black")
            ax.axhspan(mean[0] - err[0], mean[0] + err[0], color="black", alpha=0.1)
            continue
        x = list(range(len(rows)))
        (line,) = ax.plot(x, mean, marker="o", label=variant)
        ax.fill_between(x, mean - err, mean + err, alpha=0.2, color=line.get_color())
    ax.set_xticks(range(steps))
    ax.set_xlabel("gradient steps")
    ax.set_ylabel(ylabel)
    seeds = sorted({s["seeds"] for s in summary.values()})
    seeds_text = "/".join(str(n) for n in seeds) + (" seed" if seeds == [1] else " seeds")
    title = (
        f"Adaptation on held-out tasks: {env}\n"
        f"mean, band ± 1 s.e. over {seeds_text} (over {num_tasks} tasks where 1 seed)"
    )
    _save(fig, ax, path, title)


def plot_curves(path: Path, records: list[dict], env: str) -> None:
    """Training return after adaptation against env steps per trained variant, from result
    files' ``curve``: the mean over seeds, the band one standard error over seeds."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    seeds = set()
    for variant in ordered({r["variant"] for r in records if r.get("curve")}):
        curves = [r["curve"] for r in records if r["variant"] == variant and r.get("curve")]
        n = min(len(c["env_steps"]) for c in curves)
        steps = torch.tensor([c["env_steps"][:n] for c in curves], dtype=torch.float64)
        after = torch.tensor([c["return_after"][:n] for c in curves], dtype=torch.float64)
        mean = after.mean(0)
        err = after.std(0) / len(curves) ** 0.5 if len(curves) > 1 else torch.zeros(n)
        x = steps.mean(0) / 1e6
        (line,) = ax.plot(x, mean, label=variant)
        ax.fill_between(x, mean - err, mean + err, alpha=0.2, color=line.get_color())
        seeds.add(len(curves))
    ax.set_xlabel("env steps (millions)")
    ax.set_ylabel("training return after adaptation")
    counts = "/".join(str(n) for n in sorted(seeds))
    _save(fig, ax, path, f"Learning curves: {env}\nmean, band ± 1 s.e. over {counts} seeds")


def _save(fig, ax, path: Path, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def make_report(cfg: EvaluateConfig) -> dict:
    """Evaluate every run below ``cfg.dir`` and write the report; returns results.json's dict.
    Entries of an earlier report there, or of a run's own report, at the same settings and
    checkpoint iteration are reused, not evaluated again.
    Raises EvaluationError for input the report cannot use; results of runs evaluated before a
    bad one are kept in results.json."""
    root = Path(cfg.dir)
    runs = find_runs(root)
    out = root / "eval"  # made by the first write, once a run has been evaluated
    results_path = out / "results.json"
    settings = {"own_settings": True} if cfg.own_settings else asdict(cfg.eval)
    results = {"settings": settings, "runs": {}}
    if results_path.is_file():  # keep what an earlier report evaluated with the same settings
        try:
            previous = json.loads(results_path.read_text())
            assert isinstance(previous, dict)
        except (ValueError, AssertionError):
            raise EvaluationError(
                f"{results_path}: not a report's results (corrupt JSON); move it away to start "
                "a new report"
            ) from None
        if previous.get("settings") == settings:
            results["runs"] = previous.get("runs", {})

    configs, problems = {}, []
    for run in runs:
        try:
            configs[run] = run_config(run, cfg.modules)
        except CheckpointError as err:
            problems.append(str(err))
    envs = {c.env.name for c, _ in configs.values()}
    if len(envs) > 1:
        by_env = {e: next(str(r) for r, (c, _) in configs.items() if c.env.name == e) for e in envs}
        raise EvaluationError(
            f"{root}: runs of different envs cannot share one report: "
            + ", ".join(f"{e} (e.g. {r})" for e, r in sorted(by_env.items()))
        )
    if not configs:
        raise EvaluationError(f"{root}: no run has a usable checkpoint: {problems[0]}")
    env = envs.pop()

    # runs of several meta-optimizers (a sweep over algorithm=trpo,ppo,promp) are told apart:
    # variant maml_trpo, maml_promp, ...; random init is the same for all of them
    by_algorithm = len({c.algorithm.name for c, _ in configs.values()}) > 1
    jobs = []
    for run, (run_cfg, state) in configs.items():
        name = str(run.relative_to(root)) if run != root else run.name
        variant = run_cfg.baseline.name
        if by_algorithm and variant != "random":
            variant = f"{variant}_{run_cfg.algorithm.name}"
        jobs.append((name, run, run_cfg, state, variant))
    if cfg.own_settings:  # one variant and seed at several step sizes: told apart by the first
        seen = [(j[4], j[2].seed) for j in jobs]
        jobs = [
            (n, r, c, s, f"{v}_lr{c.eval.lrs[0]:g}" if seen.count((v, c.seed)) > 1 else v)
            for n, r, c, s, v in jobs
        ]
    if cfg.include_random and not cfg.own_settings and not any(j[4] == "random" for j in jobs):
        for _, run, run_cfg, _, _ in list(jobs):
            random = f"random_seed{run_cfg.seed}"
            if run_cfg.baseline.name == "maml" and random not in {j[0] for j in jobs}:
                jobs.append((random, run, run_cfg, None, "random"))

    def run_eval(run_cfg):
        return run_cfg.eval if cfg.own_settings else cfg.eval

    bar = tqdm(
        total=sum(run_eval(j[2]).num_tasks for j in jobs),
        unit="task",
        desc="evaluate",
        disable=not cfg.progress,
    )
    try:
        for name, run, run_cfg, state, variant in jobs:
            iteration = int(state["iteration"]) if state else 0
            done = results["runs"].get(name)
            if done is None or done.get("iteration") != iteration:
                # a run evaluated on its own (evaluate RUN) at the same settings is not redone
                own = None
                if run != root:
                    own = _own_entry(run, run.name if state else name, settings, iteration)
                if own is None:
                    own = evaluate_run(run_cfg, state, run, run_eval(run_cfg), cfg.device)
                results["runs"][name] = own
            # named from the runs there now: a reused entry of a TRPO run becomes maml_trpo
            # once a PPO run joins the folder
            results["runs"][name].update(
                variant=variant, seed=run_cfg.seed, env=run_cfg.env.name, run=str(run)
            )
            _write_json(results_path, results)
            # one TensorBoard run per evaluated run, the same tags for all: eval/return_step_k
            returns = torch.tensor(results["runs"][name]["returns"]).mean(dim=1).tolist()
            with SummaryWriter(log_dir=str(out / "tensorboard" / name)) as writer:
                for k, value in enumerate(returns):
                    writer.add_scalar(f"eval/return_step_{k}", value, iteration)
            bar.update(run_eval(run_cfg).num_tasks)
    finally:
        bar.close()

    results["summary"] = summarize_variants(results)
    rates = {
        n: {**e, "returns": e["success"]} for n, e in results["runs"].items() if "success" in e
    }
    if rates:  # the success rate beside the return, summarised the same way
        results["success_summary"] = summarize_variants({"runs": rates})
    _write_json(results_path, results)
    per_step = set()
    for c, _ in configs.values():
        episodes = run_eval(c).episodes_per_task
        plan = SamplingPlan.of(c.train.sampling, episodes, c.env.horizon, False)
        per_step.add(plan.describe(episodes))
    shown = asdict(cfg.eval)
    if cfg.own_settings:  # what the table's header names: the runs' own
        first = run_eval(next(iter(configs.values()))[0])
        shown = {**asdict(first), "lrs": "each run's own"}
    write_markdown(
        out / "summary.md", results["summary"], shown, env, per_step, results.get("success_summary")
    )
    plot(out / "adaptation.png", results["summary"], env, shown["num_tasks"])
    if problems:
        raise EvaluationError(
            "; ".join(problems) + f" (report written for the other runs in {out})"
        )
    return results


def _own_entry(run: Path, name: str, settings: dict, iteration: int) -> dict | None:
    """The entry ``name`` of the run's own report (``<run>/eval/results.json``), if that report
    used these settings and evaluated the same checkpoint iteration."""
    try:
        own = json.loads((run / "eval" / "results.json").read_text())
        entry = own["runs"][name] if own["settings"] == settings else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entry if isinstance(entry, dict) and entry.get("iteration") == iteration else None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1))
