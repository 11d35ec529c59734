"""Table 4 numbers of several seeds of `scripts/reproduce_nav.sh`, per seed and averaged.

    .venv/bin/python -m maml_hydra.results seeds outputs/reproduce_nav/NAME/seed* [--at 50]
        [--export docs/results/reproduce_nav/NAME] [--against OTHER/seed*]

For each run directory: the average return after 0..K gradient steps on the run's held-out
goals at its last iteration (eval_results.json), on the original evaluation script's goals
(eval/results.json, written by reproduce_nav.sh), and on the held-out goals at iteration
``--at`` (the `eval/return_step_k` curves; needs train.eval_every to divide it). Then the mean
and the standard error over seeds, over all of them and over those that did not diverge (a
pre-update held-out return above ``--diverged-below``).

``--export DIR`` writes one ``<run>.json`` per run directory in the compact result format
(``records``: the held-out returns per step and task, the config and commit from the checkpoint,
env steps and training wall time), with the original script's per-task returns (``original``)
and the held-out means at ``--at`` (``at``); such files stand in for run directories on the
command line, so the tables can be made again from committed files. ``--against`` names a
second set (run directories or files) and adds the paired differences, this set minus that
one, matched by run name (seed0 with seed0): mean ± s.e. over the pairs, and how many gained.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maml_hydra.results import paper as published
from maml_hydra.results.export import head_commit, run_record
from maml_hydra.results.records import RecordError, check, check_table, fail, step_means
from maml_hydra.results.records import read as read_record
from maml_hydra.results.stats import mean_se, paired_lists
from maml_hydra.results.tensorboard import eval_at

COLUMNS = ("held_out", "original", "at")  # a row's columns, as the table prints them


def read_json(path: Path) -> dict:
    if not path.is_file():
        fail(f"{path}: missing (run scripts/reproduce_nav.sh to completion)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        fail(f"{path}: not valid JSON ({err.msg})")


def name(path: Path) -> str:
    return path.stem if path.suffix == ".json" else path.name


def row(path: Path, at: int) -> dict:
    """The three columns of a run directory, or of a file --export wrote."""
    if path.suffix == ".json":
        try:
            record = read_record(path)
        except RecordError as err:
            fail(str(err))
        if "original" not in record:
            fail(f"{path}: no 'original' (not a file of results seeds --export)")
        earlier = record.get("at", {})
        return {
            "held_out": step_means(record["returns"]),
            "original": step_means(record["original"]["returns"]),
            "at": earlier["return_mean"] if earlier.get("iteration") == at else None,
            "iteration": record["iterations"],
        }
    own = read_json(path / "eval_results.json")
    goals = read_json(path / "eval" / "results.json")
    try:
        (entry,) = goals["runs"].values()
        iteration = own["iteration"]
        tables = {
            path / "eval_results.json": own["return_per_task"],
            path / "eval" / "results.json": entry["returns"],
        }
    except (KeyError, ValueError, TypeError, AttributeError):
        fail(f"{path}: eval_results.json and eval/results.json are not one run's evaluations")
    for where, rows in tables.items():
        try:
            check_table(rows, where, "the per-task returns")
        except RecordError as err:
            fail(str(err))
    own_rows, original_rows = tables.values()
    return {  # as a file --export writes gives them: means of the per-task returns
        "held_out": step_means(own_rows),
        "original": step_means(original_rows),
        "at": eval_at(path, at),
        "iteration": iteration,
    }


def record(run_dir: Path, columns: dict, at: int, out: Path) -> tuple[Path, dict]:
    """``<out>/<run>.json`` and what it is to hold: the run's record (``export.run_record``)
    with the original script's per-task returns and the held-out means at iteration ``at``."""
    report = read_json(run_dir / "eval" / "results.json")
    (entry,) = report["runs"].values()
    fields = {
        **run_record(run_dir, head_commit()),
        "original": {
            "settings": report["settings"],
            "tasks": entry["tasks"],
            "returns": entry["returns"],  # [gradient steps + 1][tasks]
        },
        **({"at": {"iteration": at, "return_mean": columns["at"]}} if columns["at"] else {}),
    }
    path = out / f"{run_dir.name}.json"
    try:
        return path, check(fields, path)
    except RecordError as err:
        fail(str(err))


def fmt(values: list[float] | None) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "-"


def mean_row(rows: list[dict], key: str) -> str:
    columns = [r[key] for r in rows if r[key]]
    if not columns:
        return "-"
    if len(columns) == 1:
        return fmt(columns[0])
    return " / ".join(
        "{:.2f} ± {:.2f}".format(*mean_se(c[k] for c in columns)) for k in range(len(columns[0]))
    )


def paired(rows: dict[str, dict], others: dict[str, dict], key: str) -> str:
    """Per gradient step: mean ± s.e. over the runs both sets hold of (this - other) in
    column ``key``, and how many of them gained."""
    pairs = [(rows[n][key], others[n][key]) for n in rows if n in others]
    pairs = [(a, b) for a, b in pairs if a and b]
    if len(pairs) < 2:
        return "-"
    cells = []
    for k in range(len(pairs[0][0])):
        mean, se, gained = paired_lists([(a[k], b[k]) for a, b in pairs])
        cells.append(f"{mean:+.2f} ± {se:.2f} ({gained} of {len(pairs)})")
    return " / ".join(cells)


def load(paths: list[Path], at: int) -> dict[str, dict]:
    for path in paths:
        if not (path.is_dir() or (path.suffix == ".json" and path.is_file())):
            fail(f"{path}: not a run directory or a .json file of --export")
    rows = {name(path): row(path, at) for path in paths}
    if len(rows) < len(paths):
        fail("two runs with the same name: pairs are matched by name")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m maml_hydra.results seeds", description=__doc__.splitlines()[0]
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run directories or --export files")
    parser.add_argument("--at", type=int, default=50, help="iteration of the middle column")
    parser.add_argument("--diverged-below", type=float, default=-45.0)
    parser.add_argument("--export", type=Path, help="write one <run>.json per run directory here")
    parser.add_argument("--against", type=Path, nargs="+", help="a second set, for differences")
    args = parser.parse_args(argv)
    rows = load(args.runs, args.at)
    others = load(args.against, args.at) if args.against else None
    if args.export:  # every run is read before anything is written
        runs = [path for path in args.runs if path.is_dir()]
        files = [record(path, rows[name(path)], args.at, args.export) for path in runs]
        args.export.mkdir(parents=True, exist_ok=True)
        for path, fields in files:
            path.write_text(json.dumps(fields, indent=1) + "\n")
            print(f"wrote {path}", file=sys.stderr)
    iterations = sorted({r["iteration"] for r in rows.values()})
    print(
        f"| run | held-out goals, iteration {'/'.join(map(str, iterations))} "
        f"| original script's goals | held-out goals, iteration {args.at} |"
    )
    print("|---|---|---|---|")
    for run, r in rows.items():
        print(f"| {run} | {fmt(r['held_out'])} | {fmt(r['original'])} | {fmt(r['at'])} |")
    converged = [r for r in rows.values() if r["held_out"][0] > args.diverged_below]
    groups = [(f"mean ± s.e. of all {len(rows)}", list(rows.values()))]
    if len(converged) < len(rows):
        groups.append((f"mean ± s.e. of the {len(converged)} that did not diverge", converged))
    for label, group in groups:
        cells = [mean_row(group, key) for key in COLUMNS]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"| MAML paper, Table 4 | | {fmt(published.NAVIGATION_MAML)} | |")
    if others is not None:
        print(f"| mean ± s.e. of the --against set ({len(others)}) | ", end="")
        print(" | ".join(mean_row(list(others.values()), k) for k in COLUMNS) + " |")
        both = sum(n in others for n in rows)
        print(f"| this minus --against, paired by run ({both} pairs) | ", end="")
        print(" | ".join(paired(rows, others, k) for k in COLUMNS) + " |")


if __name__ == "__main__":
    main()
