"""Held-out return of sets of result files side by side, one row per set:

    python -m maml_hydra.results sets [--steps 0 1 2 3] \\
        --row LABEL FILE.json[,FILE2.json...] [--row ...]

A set is one variant's runs, one file per seed (the seeds must differ; checked). Each cell is
the mean over the set's seeds of each seed's mean over its held-out tasks, ± the standard
error over the seeds; a set of one seed has no standard error, and the table says so. Sets from
different folders (the same runs evaluated at other step sizes, another meta-optimizer) compare
here; for differences paired per seed, ``python -m maml_hydra.results paired``.
"""

from __future__ import annotations

import argparse

from maml_hydra.results.records import fail, read_list, step_means
from maml_hydra.results.stats import fmt, mean_se


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
    args = parser.parse_args(argv)
    rows = [(label, load_set(files)) for label, files in args.row]
    table = [  # every cell before the first line: a refused set prints nothing
        f"| {label} | {len(records)} | " + " | ".join(cell(records, k) for k in args.steps) + " |"
        for label, records in rows
    ]
    print("| set | seeds | " + " | ".join(f"{k} steps" for k in args.steps) + " |")
    print("|---|---|" + "---|" * len(args.steps))
    print("\n".join(table))


if __name__ == "__main__":
    main()
