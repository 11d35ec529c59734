"""Tables and the adaptation plot of one family from its committed result files
(``docs/results/<family>/*.json``, written by ``python -m maml_hydra.results export``):

    .venv/bin/python -m maml_hydra.results table docs/results/<family> [--plot PNG]
    .venv/bin/python -m maml_hydra.results table --bars docs/results/<family> [docs/results/...]
    .venv/bin/python -m maml_hydra.results table --search docs/results/search/<family>
    .venv/bin/python -m maml_hydra.results table --paper docs/results/paper/<family> [...]
        [--oracle FOLDER]
    .venv/bin/python -m maml_hydra.results table --metaworld docs/results/metaworld/<name>

Prints, as Markdown: the held-out return per variant after 0..K gradient steps (mean ± standard
error over seeds, or over tasks where one seed), the paired comparisons the locomotion results
are judged by (MAML after one step against pretrained and random after one step, and MAML's
own one-step gain, each paired over the same held-out tasks and seeds, its standard error over
seeds, or over tasks where there is one seed), and the runs' budgets.

``--bars``: one row per family (per folder and algorithm of its MAML runs, where several) over
every folder given, each bar of the locomotion results checked. A baseline evaluated at several
step sizes (folders of the same family with other ``eval.lrs``) is compared at its best one:
the step size whose one-step mean over MAML's seeds is the highest.

``--paper``: a family on the paper's scale (runs on ``env.dynamics=rllab`` only): every
variant's held-out return after 0..3 steps, mean ± standard error over seeds, beside the paper's
own numbers; MAML's one-step bar against the paper's within 2 combined standard errors; and the
share of the pretrained-to-oracle gap that MAML closes after one step, paired per seed;
``--oracle FOLDER``: that share again against FOLDER's oracles (trained another way).

``--metaworld``: a Meta-World benchmark's success rates (``maml_hydra.results.metaworld``).

``--search``: the trials of an exported Optuna search (``trial<n>.json``), best objective first,
with the searched parameters, the held-out return before and after adaptation and each trial's
budget; then the mean objective per value of each categorical parameter.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf

from maml_hydra.report import plot, plot_curves, summarize_variants
from maml_hydra.results import metaworld, stats
from maml_hydra.results import paper as published
from maml_hydra.results.records import RecordError, ordered, print_budgets
from maml_hydra.results.records import read as read_record
from maml_hydra.results.stats import fmt, mean_se, steps_text, t95

PAPER = published.LOCOMOTION


def over_seeds(values: dict[int, float]) -> tuple[float, float | None, int]:
    """mean and standard error over seeds (None with one seed), and the number of seeds."""
    return (*mean_se(values.values()), len(values))


def load(folder: Path) -> list[dict]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise SystemExit(f"error: {folder}: no result files")
    try:
        return [read_record(f) for f in files]
    except RecordError as err:
        raise SystemExit(f"error: {err}") from None


def paired(a: torch.Tensor, b: torch.Tensor, seeds: int = 1) -> str:
    """mean ± s.e. of a - b, paired per seed (per task with one seed), and mean / s.e."""
    return stats.fmt_paired(*stats.paired(a, b, seeds))


def by_seed(records: list[dict]) -> dict[int, torch.Tensor]:
    """seed -> [steps, tasks] of the given records."""
    return {r["seed"]: torch.tensor(r["returns"]) for r in records}


def one_step(records: list[dict], variant: str) -> dict[int, torch.Tensor]:
    """seed -> [steps, tasks] of a variant."""
    return by_seed([r for r in records if r["variant"] == variant])


# The bars of the locomotion results: a paired difference holds beyond this many standard errors.
BAR_SE = 2.0


def bar_cell(a: torch.Tensor, b: torch.Tensor, seeds: int, note: str = "") -> tuple[str, bool]:
    mean, se, _ = stats.paired(a, b, seeds)
    holds = mean > BAR_SE * se
    return f"{mean:+.2f} ± {se:.2f} ({mean / se:.1f} s.e.{note}) {'yes' if holds else 'NO'}", holds


def best_step_size(records: list[dict], variant: str, seeds: list[int]) -> tuple[str, dict]:
    """A variant's evaluations grouped by step sizes; the group with the highest one-step mean
    over the given seeds (all of them evaluated), as (label, {seed: [steps, tasks]})."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["variant"] == variant:
            groups.setdefault(tuple(r["eval"]["lrs"]), []).append(r)
    full = {lrs: by_seed(rs) for lrs, rs in groups.items()}
    full = {lrs: runs for lrs, runs in full.items() if all(s in runs for s in seeds)}
    if not full:
        return "", {}
    lrs = max(full, key=lambda k: torch.cat([full[k][s][1] for s in seeds]).mean().item())
    label = f", lr {lrs[0]:g}" if len(groups) > 1 else ""
    return label, full[lrs]


def bars(folders: list[Path]) -> None:
    """One row per family: each bar of the locomotion results, paired over tasks and seeds."""
    families: dict[str, list[dict]] = {}
    for folder in folders:
        for r in load(folder):
            families.setdefault(r["family"], []).append({**r, "folder": str(folder)})
    print(
        f"| family | MAML seeds x tasks | MAML 0 / 1 step | one-step gain > {BAR_SE:g} s.e. | "
        f"MAML - pretrained after 1 step > {BAR_SE:g} s.e. | MAML - random after 1 step "
        f"> {BAR_SE:g} s.e. | paper's numbers | all bars |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for family, records in families.items():
        # one row per folder and meta-optimizer of MAML runs; the baselines are the family's
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in records:
            if r["variant"].split("_")[0] == "maml":
                algorithm = OmegaConf.create(r["config"]).algorithm.name
                groups.setdefault((r["folder"], algorithm), []).append(r)
        for (folder, algorithm), mamls in groups.items():
            name = family if len(groups) == 1 else f"{family}: {algorithm}, {folder}/"
            bar_row(name, family, mamls, records)


def bar_row(name: str, family: str, mamls: list[dict], records: list[dict]) -> None:
    """The bars of one group of MAML runs against the family's baselines on the same problem
    (``env.dynamics``): the two problems' returns are on different scales."""
    problem = rllab(mamls[0])
    if any(rllab(m) != problem for m in mamls):
        raise SystemExit(f"error: {name}: MAML runs of both dynamics in one folder")
    records = [r for r in records if rllab(r) == problem]
    maml = by_seed(mamls)
    seeds = sorted(maml)
    after = torch.cat([maml[s][1] for s in seeds])
    before = torch.cat([maml[s][0] for s in seeds])
    gain, ok = bar_cell(after, before, len(seeds))
    cells, holds = [gain], [ok]
    for other in ("pretrained", "random"):
        label, theirs = best_step_size(records, other, seeds)
        if not theirs:
            cells.append(f"no {other} run for seeds {seeds}")
            holds.append(False)
            continue
        cell, ok = bar_cell(after, torch.cat([theirs[s][1] for s in seeds]), len(seeds), label)
        cells.append(cell)
        holds.append(ok)
    steps = min(m.shape[0] for m in maml.values())
    means = [torch.cat([maml[s][k] for s in seeds]).mean().item() for k in range(steps)]
    if family in PAPER and all(rllab(r) for r in mamls):
        # the paper's problem: its bars, as ``--paper`` checks them
        chosen = {v: best_group(step_means(records, v))[1] for v in ("pretrained", "oracle")}
        chosen["maml"] = {s: maml[s].double().mean(1).tolist() for s in seeds}
        bar = one_step_bar(family, chosen["maml"])
        gap = gap_share_bar(family, chosen["maml"], chosen["pretrained"], chosen["oracle"])
        ok = bar["holds"] and gap is not None and gap["holds"]
        share = (
            f"gap share {gap['share']:.2f} >= {gap['want']:.2f} {'yes' if gap['holds'] else 'NO'}"
            if gap is not None
            else "no gap share (no seed has MAML, pretrained and oracle) NO"
        )
        cells.append(
            f"1 step {bar['mean']:.2f} - {bar['ref']:.2f} >= {-BAR_SE * bar['combined']:.2f} "
            f"{'yes' if bar['holds'] else 'NO'}; {share}"
        )
        holds.append(ok)
    else:  # gymnasium dynamics: the paper's numbers are of another problem
        cells.append("- (gymnasium dynamics)" if family in PAPER else "-")
    tasks = after.numel() // len(seeds)
    print(
        f"| {name} | {len(seeds)} x {tasks} | {means[0]:.2f} / {means[1]:.2f} | "
        + " | ".join(cells)
        + f" | {'yes' if all(holds) else 'NO'} |"
    )


def rllab(record: dict) -> bool:
    """Whether a result ran on the paper's problem (a config without the key: gymnasium)."""
    return OmegaConf.create(record["config"]).env.get("dynamics", "gymnasium") == "rllab"


def step_means(records: list[dict], variant: str) -> dict[tuple, dict[int, list[float]]]:
    """lrs -> seed -> the mean over tasks after each step, for a variant's records."""
    groups: dict[tuple, dict[int, list[float]]] = {}
    for r in records:
        if r["variant"] == variant:
            means = torch.tensor(r["returns"], dtype=torch.float64).mean(1).tolist()
            groups.setdefault(tuple(r["eval"]["lrs"]), {})[r["seed"]] = means
    return groups


def best_group(groups: dict[tuple, dict[int, list[float]]]) -> tuple[tuple, dict[int, list]]:
    """The step sizes whose one-step mean over seeds is the highest (the paper's random init:
    the better of two first steps); a variant that is not adapted has one group."""
    if not groups:
        return (), {}

    def one_step_mean(lrs):
        return sum(m[min(1, len(m) - 1)] for m in groups[lrs].values()) / len(groups[lrs])

    lrs = max(groups, key=one_step_mean)
    return lrs, groups[lrs]


# The bars on the paper's problem, written once: ``--paper`` prints them in full, ``--bars`` in
# its row. Each variant is seed -> the mean over tasks after each step, at its tabled step sizes.
def one_step_bar(family: str, maml: dict[int, list[float]]) -> dict:
    """MAML's return after one step against the paper's, within 2 combined standard errors:
    ours over seeds (0 with one seed), the paper's over its 40 goals (where a result's own is
    not published, another run's stands in: ``paper.SE_STAND_IN``)."""
    mean, se, _ = over_seeds({s: m[1] for s, m in maml.items()})
    paper = PAPER[family]["maml"]
    ref, ref_se, whose = paper[0][1], paper[1], None
    if ref_se is None:
        ref_se, whose = published.SE_STAND_IN[family]
    combined = ((se or 0.0) ** 2 + ref_se**2) ** 0.5
    holds = mean - ref >= -BAR_SE * combined
    return {
        "mean": mean,
        "se": se,
        "ref": ref,
        "ref_se": ref_se,
        "stand_in": whose,
        "combined": combined,
        "holds": holds,
    }


def gap_share_bar(family: str, maml: dict, pre: dict, oracle: dict) -> dict | None:
    """The share of the pretrained-to-oracle gap MAML closes after one step, per seed, and its
    bar: no lower than the paper's minus 0.1; None where no seed has all three variants."""
    seeds = sorted(set(maml) & set(pre) & set(oracle))
    if not seeds:
        return None
    shares = {s: (maml[s][1] - pre[s][1]) / (oracle[s][0] - pre[s][1]) for s in seeds}
    share, se, n = over_seeds(shares)
    pooled = {
        v: sum(by[s][k] for s in seeds) / len(seeds)
        for v, by, k in (("maml", maml, 1), ("pretrained", pre, 1), ("oracle", oracle, 0))
    }
    of_means = (pooled["maml"] - pooled["pretrained"]) / (pooled["oracle"] - pooled["pretrained"])
    theirs = published.gap_share(family)
    want = theirs - 0.1
    return {
        "seeds": seeds,
        "share": share,
        "se": se,
        "n": n,
        "of_means": of_means,
        "theirs": theirs,
        "want": want,
        "holds": share >= want,
    }


def paper_table(
    folder: Path, oracles: Path | None = None
) -> tuple[str, dict[str, dict[int, list[float]]]]:
    """One family on the paper's scale: every variant after 0..3 steps, mean ± s.e. over seeds,
    beside the paper's own numbers; the bars; the share of the pretrained-to-oracle gap MAML
    closes after one step, per seed, with a 95% interval over seeds, and again against the
    oracles of ``oracles`` (another folder's, trained otherwise) where given. Returns the family and
    what was tabled: variant -> seed -> the mean over tasks after each step, at the variant's
    tabled step sizes."""
    records = load(folder)
    family = records[0]["family"]
    if oracles is not None:  # refused before anything is printed
        theirs = [r for r in load(oracles) if rllab(r) and r["family"] == family]
        other_oracles = best_group(step_means(theirs, "oracle"))[1]
        if not other_oracles:
            raise SystemExit(f"error: {oracles}: no {family} oracle on the paper's problem")
    other = [r for r in records if not rllab(r)]
    records = [r for r in records if rllab(r)]
    print(f"### {family} on the paper's problem (env.dynamics=rllab), {folder}\n")
    if other:
        print(
            f"{len(other)} result file(s) of gymnasium dynamics left out: the paper's numbers "
            "are of another problem.\n"
        )
    if not records:
        return family, {}
    paper = PAPER.get(family, {})
    print("| variant | seeds | step sizes | 0 steps | 1 step | 2 steps | 3 steps | paper |")
    print("|---|---|---|---|---|---|---|---|")
    chosen = {}
    variants = ordered({r["variant"] for r in records})
    for variant in variants:
        lrs, by = best_group(step_means(records, variant))
        chosen[variant] = by
        steps = min(len(m) for m in by.values())
        cells = []
        for k in range(4):
            if k < steps:
                cells.append(fmt(*over_seeds({s: m[k] for s, m in by.items()})[:2]))
            else:
                cells.append("-")
        theirs = paper.get(variant.split("_")[0])
        ref = " / ".join(f"{v:.2f}" for v in theirs[0]) if theirs else "-"
        label = f"{lrs[0]:g} then {lrs[-1]:g}" if steps > 1 else "not adapted"
        print(f"| {variant} | {len(by)} | {label} | " + " | ".join(cells) + f" | {ref} |")
    maml, pre, oracle = (chosen.get(v, {}) for v in ("maml", "pretrained", "oracle"))
    if not maml or "maml" not in paper:
        return family, chosen
    bar = one_step_bar(family, maml)
    note = (
        "" if bar["se"] is not None else "; one seed: its s.e. over seeds is unknown and taken as 0"
    )
    whose = bar["stand_in"]
    stand_in = f", {whose} standing in for this result's unpublished one" if whose else ""
    print(
        f"\n- MAML after one step: {fmt(bar['mean'], bar['se'])} against the paper's "
        f"{bar['ref']:.2f} (s.e. {bar['ref_se']:g}{stand_in}, over its 40 goals, one seed): "
        f"difference {bar['mean'] - bar['ref']:+.2f}, bar -{BAR_SE:g} x {bar['combined']:.2f} = "
        f"{-BAR_SE * bar['combined']:.2f} (our s.e. over seeds combined with the paper's over "
        f"goals{note}): {'holds' if bar['holds'] else 'FAILS'}"
    )
    gap = gap_share_bar(family, maml, pre, oracle)
    if gap is None:
        print("- gap share: no seed has MAML, pretrained and oracle")
        return family, chosen
    share, share_se, n = gap["share"], gap["se"], gap["n"]
    t = t95(n - 1)
    interval = (
        f", 95% interval {share - t * share_se:.2f} to {share + t * share_se:.2f}"
        if share_se is not None
        else ""
    )
    print(
        f"- share of the pretrained-to-oracle gap MAML closes after one step, paired per seed "
        f"(seeds {gap['seeds']}): mean of the seeds' shares {fmt(share, share_se)}{interval} "
        f"(the share of the means {gap['of_means']:.2f}); the paper's {gap['theirs']:.2f}, bar "
        f"{gap['want']:.2f}: {'holds' if gap['holds'] else 'FAILS'}"
    )
    if oracles is not None:
        again = gap_share_bar(family, maml, pre, other_oracles)
        if again is None:
            raise SystemExit(
                f"error: {oracles}: no {family} oracle on a seed that has MAML and pretrained"
            )
        print(
            f"- the same against the oracles of {oracles} (seeds {again['seeds']}): "
            f"{fmt(again['share'], again['se'])} (the share of the means "
            f"{again['of_means']:.2f}); bar {again['want']:.2f}: "
            f"{'holds' if again['holds'] else 'FAILS'}"
        )
    return family, chosen


def paper_plot(path: Path, family: str, chosen: dict[str, dict[int, list[float]]]) -> None:
    """Figure 5's panel for one family: each variant's return after 0..3 steps, the band one
    standard error over seeds, beside the paper's own numbers (dotted, open markers)."""
    import matplotlib.pyplot as plt

    paper = PAPER.get(family, {})
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for i, (variant, by) in enumerate(chosen.items()):
        color = "black" if variant == "oracle" else f"C{i}"
        steps = min(4, *(len(m) for m in by.values()))
        cells = [over_seeds({s: m[k] for s, m in by.items()}) for k in range(steps)]
        mean = torch.tensor([c[0] for c in cells])
        err = torch.tensor([c[1] or 0.0 for c in cells])
        theirs = paper.get(variant)  # a variant of the paper's own name only
        seeds = f"{len(by)} seed{'' if len(by) == 1 else 's'}"
        if steps == 1:  # not adapted: a horizontal line
            label = f"{variant} ({seeds}, not adapted)"
            ax.axhline(mean[0], linestyle="--", label=label, color=color)
            ax.axhspan(mean[0] - err[0], mean[0] + err[0], color=color, alpha=0.1)
            if theirs:
                ax.axhline(theirs[0][0], linestyle=":", color=color)
            continue
        x = list(range(steps))
        ax.plot(x, mean, marker="o", label=f"{variant} ({seeds})", color=color)
        ax.fill_between(x, mean - err, mean + err, alpha=0.2, color=color)
        if theirs:
            ours = theirs[0][:steps]
            ax.plot(range(len(ours)), ours, ":", marker="o", mfc="none", color=color)
    ax.plot([], [], ":", marker="o", mfc="none", color="gray", label="the paper's (dotted)")
    ax.set_xlabel("gradient steps on the held-out task")
    ax.set_ylabel("return (paper's 40 goals, 20 episodes per step)")
    ax.set_title(f"{family} on the paper's problem; bands: s.e. over seeds")
    ax.set_xticks(range(4))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def search(folder: Path) -> None:
    """The trials of one exported search, best first, and the objective per categorical value."""
    trials = [r for r in load(folder) if "objective" in r]
    if not trials:
        raise SystemExit(
            f"error: {folder}: no trial files (python -m maml_hydra.results export SEARCH)"
        )
    keys = list(trials[0]["params"])
    first = trials[0]
    k = first["objective_step"]
    print(
        f"### {first['family']}: {len(trials)} trials, objective = held-out return after "
        f"{steps_text(k)} ({first['eval']['num_tasks']} tasks x "
        f"{first['eval']['episodes_per_task']} episodes, eval.seed {first['eval']['seed']}), "
        "mean ± s.e. over tasks\n"
    )
    print(f"| trial | {' | '.join(keys)} | 0 steps | objective | gain | env steps | wall time |")
    print("|---|" + "---|" * (len(keys) + 5))
    for r in sorted(trials, key=lambda r: -r["objective"]):
        returns = torch.tensor(r["returns"])
        after, before = returns[k], returns[0]
        params = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r["params"].values()]
        gain, gain_se, _ = stats.paired(after, before)
        print(
            f"| {r['variant']} | {' | '.join(params)} | {before.mean():.2f} | "
            f"{after.mean():.2f} ± {after.std() / after.numel() ** 0.5:.2f} | "
            f"{gain:+.2f} ± {gain_se:.2f} | {r['env_steps']:,} | "
            f"{r['train_wall_s'] / 60:.0f} min |"
        )
    for key in keys:
        values = {str(r["params"][key]) for r in trials}
        if all(isinstance(r["params"][key], float) for r in trials) or len(values) < 2:
            continue
        cells = []
        for value in sorted(values):
            got = [r["objective"] for r in trials if str(r["params"][key]) == value]
            cells.append(f"{value}: {sum(got) / len(got):.1f} (best {max(got):.1f}, {len(got)})")
        print(f"\nMean objective by {key} (best, trials): " + "; ".join(cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m maml_hydra.results table", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", type=Path, nargs="+")
    parser.add_argument(
        "--bars",
        action="store_true",
        help="one row per family (and per folder and algorithm of MAML runs): the bars",
    )
    parser.add_argument(
        "--search", action="store_true", help="the trials of an exported Optuna search"
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="each folder's family on the paper's scale: runs of env.dynamics=rllab only",
    )
    parser.add_argument(
        "--metaworld",
        action="store_true",
        help="each folder's Meta-World success rates, beside the published MAML numbers",
    )
    parser.add_argument(
        "--oracle",
        type=Path,
        default=None,
        help="with --paper: the gap share again, against this folder's oracles",
    )
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument(
        "--curves", type=Path, default=None, help="plot learning curves against env steps"
    )
    args = parser.parse_args(argv)
    if args.bars:
        bars(args.folder)
        return
    if args.search:
        for folder in args.folder:
            search(folder)
        return
    if args.oracle is not None and not args.paper:
        parser.error("--oracle goes with --paper")
    if args.paper:
        if args.plot is not None and len(args.folder) > 1:
            parser.error("--paper --plot takes one folder")
        for folder in args.folder:
            family, chosen = paper_table(folder, args.oracle)
        if args.plot is not None and not chosen:
            raise SystemExit(f"error: {args.folder[0]}: no run of env.dynamics=rllab to plot")
        if args.plot is not None:
            paper_plot(args.plot, family, chosen)
            print(f"\nplot: {args.plot}")
        return
    if args.metaworld:
        if args.plot is not None and len(args.folder) > 1:
            parser.error("--metaworld --plot takes one folder")
        for folder in args.folder:
            metaworld.table(load(folder), folder, args.plot)
        return
    if len(args.folder) > 1:
        parser.error("one folder, or --bars with several")
    records = load(args.folder[0])
    family = records[0]["family"]
    results = {"runs": {f"{r['variant']}_seed{r['seed']}": r for r in records}}
    summary = summarize_variants(results)
    steps = max(len(s["steps"]) for s in summary.values())
    num_tasks = len(records[0]["returns"][0])
    print(
        f"### {family}: held-out return on {num_tasks} tasks, mean ± s.e. over seeds (over "
        "tasks where one seed)\n"
    )
    print("| variant | seeds | " + " | ".join(steps_text(k) for k in range(steps)) + " |")
    print("|---|---|" + "---|" * steps)
    for variant in ordered(summary):
        rows = summary[variant]["steps"]
        cells = [f"{r['mean']:.2f} ± {r['stderr']:.2f}" for r in rows] + ["-"] * (steps - len(rows))
        print(f"| {variant} | {summary[variant]['seeds']} | " + " | ".join(cells) + " |")
    if family in PAPER and all(rllab(r) for r in records):
        paper = PAPER[family]["maml"][0][:steps]
        print("| MAML paper | | " + " | ".join(f"{v:.2f}" for v in paper) + " |")

    print("\nPaired over the same held-out tasks and seeds (MAML's seeds):\n")
    variants = ordered(summary)
    mamls = [v for v in variants if v.split("_")[0] == "maml"]
    others = [v for v in variants if v.split("_")[0] in ("pretrained", "random")]
    for i, variant in enumerate(mamls):
        mine = one_step(records, variant)
        label = "MAML" if variant == "maml" else variant
        gain = torch.cat([r[1] for r in mine.values()]), torch.cat([r[0] for r in mine.values()])
        print(f"- {label} after 1 step minus {label} at 0 steps: {paired(*gain, len(mine))}")
        for other in [*others, *mamls[i + 1 :]]:
            theirs = one_step(records, other)
            seeds = sorted(set(mine) & set(theirs))
            if seeds and all(theirs[s].shape[0] > 1 for s in seeds):
                a = torch.cat([mine[s][1] for s in seeds])
                b = torch.cat([theirs[s][1] for s in seeds])
                print(
                    f"- {label} after 1 step minus {other} after 1 step: {paired(a, b, len(seeds))}"
                )
    print_budgets(records)
    if args.plot is not None:
        plot(args.plot, summary, family, num_tasks)
        print(f"\nplot: {args.plot}")
    if args.curves is not None:
        plot_curves(args.curves, records, family)
        print(f"learning curves: {args.curves}")


if __name__ == "__main__":
    main()
