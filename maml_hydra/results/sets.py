"""Held-out return of sets of result files side by side, one row per set:

    python -m maml_hydra.results sets [--steps 0 1 2 3] \\
        --row LABEL FILE.json[,FILE2.json...] [--row ...]

A set is one variant's runs, one file per seed (the seeds must differ; checked). Each cell is
the mean over the set's seeds of each seed's mean over its held-out tasks, ± the standard
error over the seeds; a set of one seed has no standard error, and the table says so. Sets from
different folders (the same runs evaluated at other step sizes, another meta-optimizer) compare
here; for differences paired per seed, ``python -m maml_hydra.results paired``.

With ``--gain`` a last column gives the first gradient step's gain, after 1 step minus at 0,
paired: over the seeds (each seed's mean gain over its tasks), or over the tasks of a set of one
seed, as its cell says.
"""

from __future__ import annotations

import argparse

import torch

from maml_hydra.results.records import fail, read_list, step_means
from maml_hydra.results.stats import fmt, fmt_paired, mean_se, paired, paired_lists, steps_text


def load_set(files: str) -> list[dict]:
    records = read_list(files)
    seeds = [r["seed"] for r in records]
    if not records or len(set(seeds)) != len(seeds):
        fail(f"a set holds one file per seed: seeds {seeds} in {files}")
    return records


def cell(records: list[dict], step: int) -> str:
    """The set's cell after ``step`` gradient steps; "-" where no run of it adapts that far
    (the oracle is not adapted)."""
    has = [step < len(record["returns"]) for record in records]
    if not any(has):
        return "-"
    if not all(has):
        fail(f"some runs of the set {records[0]['variant']!r} have step {step} and some not")
    return fmt(*mean_se(step_means(record["returns"])[step] for record in records))


def gain(records: list[dict]) -> str:
    """The set's first-step gain, paired, with its standard error over seeds (over tasks for one
    seed) and how many of them gained; "-" where the set does not adapt."""
    if any(len(record["returns"]) < 2 for record in records):
        return "-"
    if len(records) == 1:
        after, before = (
            torch.tensor(records[0]["returns"][k], dtype=torch.float64) for k in (1, 0)
        )
        mean, se, unit = paired(after, before)
        gained, n = int((after > before).sum()), after.numel()
    else:
        pairs = [tuple(step_means(record["returns"])[k] for k in (1, 0)) for record in records]
        mean, se, gained = paired_lists(pairs)
        n, unit = len(pairs), f"{len(pairs)} seeds"
    return f"{fmt_paired(mean, se, unit)}; {gained} of {n} gain"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m maml_hydra.results sets", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--row",
        nargs=2,
        action="append",
        required=True,
        metavar=("LABEL", "FILES"),
        help="a set: its label, then a comma-separated list of result files, one per seed",
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--gain", action="store_true", help="a last column: 1 step minus 0, paired")
    args = parser.parse_args(argv)
    rows = [(label, load_set(files)) for label, files in args.row]
    table = [  # every cell before the first line: a refused set prints nothing
        f"| {label} | {len(records)} | "
        + " | ".join(
            [cell(records, k) for k in args.steps] + ([gain(records)] if args.gain else [])
        )
        + " |"
        for label, records in rows
    ]
    extra = ["1 step minus 0, paired"] if args.gain else []
    print("| set | seeds | " + " | ".join([steps_text(k) for k in args.steps] + extra) + " |")
    print("|---|---|" + "---|" * (len(args.steps) + len(extra)))
    print("\n".join(table))


if __name__ == "__main__":
    main()
