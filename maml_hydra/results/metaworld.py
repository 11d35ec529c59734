"""The Meta-World table of one benchmark's result files (``docs/results/metaworld/<name>/``):

    .venv/bin/python -m maml_hydra.results table --metaworld docs/results/metaworld/<name> \\
        [--plot PNG]

Prints, as Markdown: per variant the held-out success rate and return after 0..K gradient
steps, and the success rate of Meta-World's own evaluation protocol (``metaworld_protocol``),
each mean ± standard error over seeds (over the held-out tasks where one seed); MAML's protocol
success minus each baseline's, paired per seed; the published MAML numbers for the benchmark,
with their sources and budgets; and the runs' budgets.
"""

from __future__ import annotations

import torch

from maml_hydra.report import plot, summarize_variants
from maml_hydra.results import stats
from maml_hydra.results.records import ordered, print_budgets
from maml_hydra.results.stats import fmt, mean_se, steps_text

# Published MAML success rates, with where each was read. Only numbers that a stored source
# gives are here; the budgets are the sources' own. Meta-World v1 differs from v3 (its reward
# functions, 150-step episodes): the comparison is of scale, not a reproduction.
PUBLISHED = {
    "ML10": [
        {
            "what": "MAML, Meta-World v1 (Yu et al. 2019), meta-train / meta-test success",
            "train": 0.25,
            "test": 0.36,
            "source": "Yu et al., Meta-World (arXiv 1910.10897), Table 1, as Papers with Code "
            "lists it for that paper",
            "budget": "not stated in that listing",
        },
        {
            "what": "MAML (Yu et al., the paper's revised version: 7 methods), meta-train / "
            "meta-test success, the average over tasks of the maximum over training, 10 seeds",
            "train": 0.444,
            "test": 0.316,
            "source": "Yu et al., Meta-World (arXiv 1910.10897, the revision updating the CoRL "
            "2019 manuscript), Table 1 (its text elsewhere says 35% on ML10's test tasks)",
            "budget": "meta-batch 20 tasks x 10 episodes of 500 steps, one inner step (its Table "
            "9); no total of env steps stated; a maximum over training, not a final value",
        },
        {
            "what": "MAML-TRPO, one gradient step (Atamuradov 2025), final train / test success",
            "train": 0.21,
            "test": 0.132,
            "source": "Atamuradov, Evaluating MAML on MetaWorld ML10 (arXiv 2511.12383), abstract",
            "budget": "not stated in the abstract",
        },
    ],
    # The Meta-World paper gives ML1 reach and push for MAML only as learning curves (its Figures
    # 12 and 13), without numbers: no MAML success rate for ML1 could be read from a stored source
    "ML1": [],
}


def benchmark_of(records: list[dict], folder) -> tuple[str, str | None]:
    """(benchmark, ML1's task) from the runs' configs: one of them for every run, or exit with
    one line."""
    from omegaconf import OmegaConf

    envs = [OmegaConf.create(r["config"]).env for r in records]
    if any(env.get("name") != "metaworld" for env in envs):
        raise SystemExit(f"error: {folder}: not every run is of env=metaworld")
    found = {(str(env.benchmark), env.get("task")) for env in envs}
    if len(found) > 1:
        raise SystemExit(f"error: {folder}: runs of several benchmarks: {sorted(found, key=str)}")
    return found.pop()


def protocol_success(records: list[dict], variant: str) -> dict[int, float]:
    """seed -> Meta-World's protocol success rate of a variant (runs that have one)."""
    return {
        r["seed"]: r["metaworld_protocol"]["success_rate"]
        for r in records
        if r["variant"] == variant and "metaworld_protocol" in r
    }


def table(records: list[dict], folder="the folder", plot_path=None) -> None:
    """The benchmark's table (the module's docstring); with ``plot_path``, the held-out success
    rate against gradient steps per variant drawn there."""
    benchmark, task = benchmark_of(records, folder)
    name = f"ML1 {task}" if benchmark == "ML1" else benchmark
    num_tasks = len(records[0]["returns"][0])
    missing = [f"{r['variant']} seed {r['seed']}" for r in records if "success" not in r]
    if missing:
        raise SystemExit(f"error: no held-out success rate in {', '.join(missing)}")
    returns = summarize_variants({"runs": {i: r for i, r in enumerate(records)}})
    success = summarize_variants(
        {"runs": {i: {**r, "returns": r["success"]} for i, r in enumerate(records)}}
    )
    steps = max(len(s["steps"]) for s in returns.values())
    print(
        f"### Meta-World {name}: held-out test tasks ({num_tasks} per run), mean ± s.e. over "
        "seeds (over tasks where one seed)\n"
    )
    head = " | ".join(f"success {steps_text(k)}" for k in range(steps))
    head += " | " + " | ".join(f"return {steps_text(k)}" for k in range(steps))
    print(f"| variant | seeds | {head} | Meta-World's protocol success |")
    print("|---|---|" + "---|" * (2 * steps + 1))
    for variant in ordered(returns):
        cells = []
        for summary, digits in ((success, 3), (returns, 1)):
            rows = summary[variant]["steps"]
            cells += [f"{r['mean']:.{digits}f} ± {r['stderr']:.{digits}f}" for r in rows]
            cells += ["-"] * (steps - len(rows))
        protocol = protocol_success(records, variant)
        cells.append(fmt(*mean_se(protocol.values())) if protocol else "-")
        print(f"| {variant} | {returns[variant]['seeds']} | " + " | ".join(cells) + " |")

    lines = []
    for other in [v for v in ordered(returns) if v != "maml"]:
        seeds = sorted(
            {r["seed"] for r in records if r["variant"] == "maml"}
            & {r["seed"] for r in records if r["variant"] == other}
        )
        if not seeds:
            continue
        # the held-out success after one step, task by task: every run of a seed has the same
        # held-out tasks (eval.seed), so the pairs are per task, the s.e. over seeds
        one_step = {(r["variant"], r["seed"]): r["success"][1] for r in records}
        mine = torch.tensor([x for s in seeds for x in one_step["maml", s]])
        theirs = torch.tensor([x for s in seeds for x in one_step[other, s]])
        mean, se, unit = stats.paired(mine, theirs, len(seeds))
        lines.append(
            f"- held-out success after one step, MAML minus {other}: {mean:+.3f} ± {se:.3f} "
            f"(s.e. over {unit})"
        )
        maml, theirs = protocol_success(records, "maml"), protocol_success(records, other)
        both = sorted(set(maml) & set(theirs))
        if both:
            mean, se = mean_se([maml[s] - theirs[s] for s in both])
            over = f"s.e. over {len(both)} seeds" if se is not None else "1 seed, no s.e."
            se_text = f" ± {se:.2f}" if se is not None else ""
            lines.append(
                f"- Meta-World's protocol success, MAML minus {other}: {mean:+.2f}{se_text} "
                f"({over})"
            )
    if lines:
        print("\nPaired over the same held-out tasks and seeds (MAML's seeds):\n")
        print("\n".join(lines))

    print(f"\nPublished MAML success rates on {benchmark}:\n")
    published = PUBLISHED.get(benchmark, [])
    if not published:
        print(f"- none that a stored source gives for {name}")
    for entry in published:
        print(
            f"- {entry['what']}: {entry['train']:.1%} / {entry['test']:.1%}. "
            f"Source: {entry['source']}. Budget: {entry['budget']}."
        )

    print_budgets(records)
    if plot_path is not None:
        rate = "held-out success rate (episodes that succeed)"
        plot(plot_path, success, f"Meta-World {name}", num_tasks, ylabel=rate)
        print(f"\nplot: {plot_path}")
