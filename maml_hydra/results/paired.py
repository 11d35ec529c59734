"""Paired differences of held-out return between two sets of result files, one row per
comparison:

    python -m maml_hydra.results paired [--steps 1 2 3] \\
        --row LABEL THIS.json[,THIS2.json...] OTHER.json[,OTHER2.json...] [--row ...]

The files of a row pair in order, the i-th of THIS with the i-th of OTHER, and a pair must
share its family, seed and held-out tasks (checked; a pair that does not is refused with one
line). The seed is the unit: with several pairs the difference is the mean over them of each
seed's mean difference over its tasks, with its standard error over the seeds; with a single
pair it is over that seed's tasks, and the table says so (tasks within a seed are not
independent samples, so such an error leaves out the seed-to-seed variation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from maml_hydra.results.records import fail, read_list, step_means
from maml_hydra.results.stats import fmt, mean_se, paired, paired_lists, steps_text


def load_pairs(this: str, other: str) -> list[tuple[dict, dict]]:
    """The row's records, paired in order, each pair checked to share family, seed and tasks."""
    paths = [[Path(p) for p in side.split(",") if p] for side in (this, other)]
    if not paths[0] or len(paths[0]) != len(paths[1]):
        fail(f"a row pairs its files in order: {len(paths[0])} against {len(paths[1])}")
    pairs = list(zip(read_list(this), read_list(other), strict=True))
    seeds = [a["seed"] for a, _ in pairs]
    if len(set(seeds)) != len(seeds):
        fail(f"a row pairs one file per seed: seeds {seeds} in {this}")
    for (a, b), path in zip(pairs, paths[1], strict=True):
        for key in ("family", "seed"):
            if a[key] != b[key]:
                fail(f"{path}: its {key} is {b[key]!r}, its pair's {a[key]!r}")
        drawn = [(r.get("tasks"), r["eval"].get("seed"), len(r["returns"][0])) for r in (a, b)]
        if drawn[0] != drawn[1]:  # the tasks themselves, or the draw that made them
            fail(f"{path}: not the same held-out tasks as its pair")
    return pairs


def cells(pairs: list[tuple[dict, dict]], step: int) -> tuple[str, str, str, str]:
    """This set's mean, the other's, the paired difference after ``step`` gradient steps, and
    what its standard error is over."""
    for a, b in pairs:
        for record in (a, b):
            if step >= len(record["returns"]):
                fail(
                    f"the record of seed {record['seed']} ({record['variant']}) has no step {step}"
                )
    if len(pairs) == 1:  # one seed: over its tasks, and said so
        ((a, b),) = pairs
        this, other = (torch.tensor(r["returns"][step], dtype=torch.float64) for r in (a, b))
        mean, se, unit = paired(this, other)
        return f"{this.mean():.2f}", f"{other.mean():.2f}", f"{mean:+.2f} ± {se:.2f}", unit
    this = [step_means(a["returns"])[step] for a, _ in pairs]
    other = [step_means(b["returns"])[step] for _, b in pairs]
    mean, se, _ = paired_lists(list(zip(this, other, strict=True)))
    return (
        fmt(*mean_se(this)),
        fmt(*mean_se(other)),
        f"{mean:+.2f} ± {se:.2f}",
        f"{len(pairs)} seeds",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m maml_hydra.results paired", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--row",
        nargs=3,
        action="append",
        required=True,
        metavar=("LABEL", "THIS", "OTHER"),
        help="a comparison: its label, then two comma-separated lists of result files",
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[1], help="gradient steps")
    args = parser.parse_args(argv)
    rows = [(label, load_pairs(this, other)) for label, this, other in args.row]
    steps = (
        steps_text(args.steps[0])
        if len(args.steps) == 1
        else "/".join(map(str, args.steps)) + " steps"
    )
    header = ("this", "other", "this minus other, paired", "s.e. over")
    table = []  # every cell before the first line: a refused row prints nothing
    for label, pairs in rows:
        *columns, (unit, *_) = zip(*(cells(pairs, k) for k in args.steps), strict=True)
        table.append(f"| {label} | " + " | ".join(" / ".join(c) for c in columns) + f" | {unit} |")
    print(f"| comparison (after {steps}) | " + " | ".join(header) + " |")
    print("|---|---|---|---|---|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
