"""Numbers of one run's TensorBoard curves, as a Markdown table for docs/RESULTS.md.

    .venv/bin/python -m maml_hydra.results summary RUN_DIR [--window 20]

Prints the training return before and after adaptation averaged over windows of iterations
(with the mean gain and how many iterations gained), every held-out evaluation, the paired
held-out gain of the last evaluation (from eval_results.json), the peak memory and seconds per
iteration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from maml_hydra.evaluator import paired_gain
from maml_hydra.results.tensorboard import scalars, values


def curves(run_dir: Path) -> dict[str, list[float]]:
    tags = scalars(run_dir)
    if not tags:
        sys.exit(f"error: {run_dir / 'tensorboard'}: no TensorBoard event file")
    if "train/return_before_adaptation" not in tags:  # e.g. a random-init baseline, never trained
        sys.exit(
            f"error: {run_dir / 'tensorboard'}: no training curves (train/return_before_adaptation)"
        )
    return {tag: values(tags, tag) for tag in tags}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m maml_hydra.results summary", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--window", type=int, default=20, help="iterations per table row")
    args = parser.parse_args(argv)
    if args.window < 1:
        sys.exit(f"error: --window={args.window} is not allowed: must be >= 1")
    c = curves(args.run_dir)
    before, after = c["train/return_before_adaptation"], c["train/return_after_adaptation"]
    print(f"{args.run_dir}: {len(before)} iterations\n")
    print(
        "| iterations | return before adaptation | after | gain (after - before) | "
        "iterations that gained |"
    )
    print("|---|---|---|---|---|")
    for start in range(0, len(before), args.window):
        b, a = before[start : start + args.window], after[start : start + args.window]
        gains = [y - x for x, y in zip(b, a, strict=True)]
        print(
            f"| {start + 1}-{start + len(b)} | {statistics.mean(b):.1f} | {statistics.mean(a):.1f}"
            f" | {statistics.mean(gains):+.2f} | {sum(g > 0 for g in gains)} of {len(b)} |"
        )
    steps = sorted(t for t in c if t.startswith("eval/return_step_"))
    if steps:
        print(
            "\nheld-out evaluations (eval/return_step_k):",
            *(f"{t}: " + ", ".join(f"{v:.1f}" for v in c[t]) for t in steps),
            sep="\n",
        )
    results = args.run_dir / "eval_results.json"
    if results.is_file():
        per_task = json.loads(results.read_text())["return_per_task"]
        if len(per_task) > 1:
            print(f"\nheld-out paired gain of one step at the end: {paired_gain(per_task)}")
    if "memory/peak_rss_gib" in c:
        print(f"peak memory (max RSS): {max(c['memory/peak_rss_gib']):.2f} GiB")
    seconds = c["time/iteration"]
    print(f"seconds per iteration: mean {statistics.mean(seconds):.1f}, total {sum(seconds):.0f}")


if __name__ == "__main__":
    main()
