"""Tables and the adaptation plot of one family from its committed result files
(``docs/results/<family>/*.json``, written by ``scripts/export_results.py``):

    .venv/bin/python scripts/results_table.py docs/results/<family> [--plot PNG]

Prints, as Markdown: the held-out return per variant after 0..K gradient steps (mean ± standard
error over every (seed, task) pair), the paired comparisons the locomotion results are judged by
(MAML after one step against pretrained and random after one step, and MAML's own one-step gain,
each paired over the same held-out tasks and seeds), and the runs' budgets.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maml_hydra.report import ordered, plot, plot_curves, summarize_variants  # noqa: E402

# The MAML paper's own numbers, where it has them (Table 5).
PAPER = {"halfcheetah_dir": [-50.69, 293.19, 313.48, 315.65]}


def load(folder: Path) -> list[dict]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise SystemExit(f"error: {folder}: no result files")
    return [json.loads(f.read_text()) for f in files]


def paired(a: torch.Tensor, b: torch.Tensor) -> str:
    """mean ± s.e. of a - b over pairs, and the ratio of the mean to its s.e."""
    diff = a - b
    se = diff.std() / diff.numel() ** 0.5
    return f"{diff.mean():+.2f} ± {se:.2f} ({diff.mean() / se:.1f} s.e., n = {diff.numel()})"


def one_step(records: list[dict], variant: str) -> dict[int, torch.Tensor]:
    """seed -> [steps, tasks] of a variant."""
    return {r["seed"]: torch.tensor(r["returns"]) for r in records if r["variant"] == variant}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument(
        "--curves", type=Path, default=None, help="plot learning curves against env steps"
    )
    args = parser.parse_args()
    records = load(args.folder)
    family = records[0]["family"]
    results = {"runs": {f"{r['variant']}_seed{r['seed']}": r for r in records}}
    summary = summarize_variants(results)
    steps = max(len(s["steps"]) for s in summary.values())
    num_tasks = len(records[0]["tasks"])
    print(f"### {family}: held-out return, mean ± s.e. over {num_tasks} tasks x seeds\n")
    print("| variant | seeds | " + " | ".join(f"{k} steps" for k in range(steps)) + " |")
    print("|---|---|" + "---|" * steps)
    for variant in ordered(summary):
        rows = summary[variant]["steps"]
        cells = [f"{r['mean']:.2f} ± {r['stderr']:.2f}" for r in rows] + ["-"] * (steps - len(rows))
        print(f"| {variant} | {summary[variant]['seeds']} | " + " | ".join(cells) + " |")
    if family in PAPER:
        print("| MAML paper | | " + " | ".join(f"{v:.2f}" for v in PAPER[family][:steps]) + " |")

    print("\nPaired over the same held-out tasks and seeds (MAML's seeds):\n")
    variants = ordered(summary)
    mamls = [v for v in variants if v.split("_")[0] == "maml"]
    others = [v for v in variants if v.split("_")[0] in ("pretrained", "random")]
    for i, variant in enumerate(mamls):
        mine = one_step(records, variant)
        label = "MAML" if variant == "maml" else variant
        gain = torch.cat([r[1] for r in mine.values()]), torch.cat([r[0] for r in mine.values()])
        print(f"- {label} after 1 step minus {label} at 0 steps: {paired(*gain)}")
        for other in [*others, *mamls[i + 1 :]]:
            theirs = one_step(records, other)
            seeds = sorted(set(mine) & set(theirs))
            if seeds and all(theirs[s].shape[0] > 1 for s in seeds):
                a = torch.cat([mine[s][1] for s in seeds])
                b = torch.cat([theirs[s][1] for s in seeds])
                print(f"- {label} after 1 step minus {other} after 1 step: {paired(a, b)}")
    print("\n| run | iterations | env steps | training wall time | commit |")
    print("|---|---|---|---|---|")
    for r in sorted(records, key=lambda r: (ordered([r["variant"]]), r["variant"], r["seed"])):
        wall = f"{r['train_wall_s'] / 60:.0f} min" if r["train_wall_s"] else "-"
        print(
            f"| {r['variant']} seed {r['seed']} | {r['iterations']} | {r['env_steps']:,} | "
            f"{wall} | {r['commit'][:7]} |"
        )
    if args.plot is not None:
        plot(args.plot, summary, family, num_tasks)
        print(f"\nplot: {args.plot}")
    if args.curves is not None:
        plot_curves(args.curves, records, family)
        print(f"learning curves: {args.curves}")


if __name__ == "__main__":
    main()
