"""Table 4 numbers of several seeds of `scripts/reproduce_nav.sh`, per seed and averaged.

    .venv/bin/python scripts/seed_table.py outputs/reproduce_nav/NAME/seed* [--at 50]

For each run directory: the average return after 0..K gradient steps on the run's held-out
goals at its last iteration (eval_results.json), on the original evaluation script's goals
(eval/results.json, written by reproduce_nav.sh), and on the held-out goals at iteration
``--at`` (the `eval/return_step_k` curves; needs train.eval_every to divide it). Then the mean
and the standard error over seeds, over all of them and over those that did not diverge (a
pre-update held-out return above ``--diverged-below``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

PAPER = [-40.41, -11.68, -3.33, -3.23]


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def read_json(path: Path) -> dict:
    if not path.is_file():
        fail(f"{path}: missing (run scripts/reproduce_nav.sh to completion)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        fail(f"{path}: not valid JSON ({err.msg})")


def curve_at(run_dir: Path, iteration: int) -> list[float] | None:
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = sorted(t for t in acc.Tags()["scalars"] if t.startswith("eval/return_step_"))
    values = []
    for tag in tags:
        at = [e.value for e in acc.Scalars(tag) if e.step == iteration]
        if not at:
            return None
        values.append(at[0])
    return values or None


def row(run_dir: Path, at: int) -> dict:
    own = read_json(run_dir / "eval_results.json")
    goals = read_json(run_dir / "eval" / "results.json")
    try:
        original = [s["mean"] for s in goals["summary"]["maml"]["steps"]]
    except KeyError:
        fail(f"{run_dir / 'eval' / 'results.json'}: no summary.maml.steps")
    return {
        "held_out": own["return_mean"],
        "original": original,
        "at": curve_at(run_dir, at),
        "iteration": own["iteration"],
    }


def fmt(values: list[float] | None) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "-"


def mean_row(rows: list[dict], key: str) -> str:
    columns = [r[key] for r in rows if r[key]]
    if not columns:
        return "-"
    if len(columns) == 1:
        return fmt(columns[0])
    cells = []
    for k in range(len(columns[0])):
        values = [c[k] for c in columns]
        stderr = statistics.stdev(values) / len(values) ** 0.5
        cells.append(f"{statistics.mean(values):.2f} ± {stderr:.2f}")
    return " / ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--at", type=int, default=50, help="iteration of the middle column")
    parser.add_argument("--diverged-below", type=float, default=-45.0)
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        if not run_dir.is_dir():
            fail(f"{run_dir}: not a directory")
    rows = {run_dir: row(run_dir, args.at) for run_dir in args.run_dirs}
    iterations = sorted({r["iteration"] for r in rows.values()})
    print(
        f"| run | held-out goals, iteration {'/'.join(map(str, iterations))} "
        f"| original script's goals | held-out goals, iteration {args.at} |"
    )
    print("|---|---|---|---|")
    for run_dir, r in rows.items():
        print(f"| {run_dir.name} | {fmt(r['held_out'])} | {fmt(r['original'])} | {fmt(r['at'])} |")
    converged = [r for r in rows.values() if r["held_out"][0] > args.diverged_below]
    groups = [(f"mean ± s.e. of all {len(rows)}", list(rows.values()))]
    if len(converged) < len(rows):
        groups.append((f"mean ± s.e. of the {len(converged)} that did not diverge", converged))
    for label, group in groups:
        cells = [mean_row(group, key) for key in ("held_out", "original", "at")]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"| MAML paper, Table 4 | | {fmt(PAPER)} | |")


if __name__ == "__main__":
    main()
