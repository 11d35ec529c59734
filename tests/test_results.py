"""maml_hydra.results: statistics over seeds against their textbook formulas, the TensorBoard
reader on real event files, and the paper's numbers against the shares its field notes give."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from maml_hydra.results import paper, stats
from maml_hydra.results.tensorboard import eval_at, scalars, training_log
from tests.helpers import ROOT, results


def test_mean_and_standard_error_are_the_textbook_ones():
    values = [1.0, 2.0, 4.0, 7.0]
    mean, se = stats.mean_se(values)
    sd = math.sqrt(sum((v - 3.5) ** 2 for v in values) / 3)
    assert mean == 3.5 and se == pytest.approx(sd / 2, rel=1e-12)
    assert stats.mean_se([5.0]) == (5.0, None)
    assert stats.fmt(3.5, se) == f"3.50 ± {se:.2f}" and stats.fmt(5.0, None) == "5.00 (1 seed)"
    assert stats.t95(4) == 2.78 and stats.t95(40) == 2.0


def test_paired_differences_are_over_seeds_and_over_tasks_only_with_one_seed():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    mean, se, unit = stats.paired(a.flatten(), b.flatten(), seeds=3)
    per_seed = (a - b).double().mean(1)
    assert unit == "3 seeds" and mean == pytest.approx(per_seed.mean().item())
    assert se == pytest.approx((per_seed.std() / 3**0.5).item())
    mean, se, unit = stats.paired(a[0], b[0])
    assert unit == "5 tasks" and se == pytest.approx(((a[0] - b[0]).std() / 5**0.5).item())
    assert stats.paired_lists([(2.0, 1.0), (1.0, 3.0), (4.0, 1.0)])[2] == 2  # two gained


def test_the_reader_gives_back_what_a_run_logged(tmp_path):
    writer = SummaryWriter(str(tmp_path / "tensorboard"))
    for it in (1, 2, 3):
        writer.add_scalar("time/iteration", 0.5 * it, it)
        writer.add_scalar("train/env_steps", 100 * it, it)
        writer.add_scalar("train/return_before_adaptation", -it, it)
        writer.add_scalar("train/return_after_adaptation", it + 0.12345, it)
    for k in range(11):  # eval/return_step_10 sorts after _2
        writer.add_scalar(f"eval/return_step_{k}", float(k), 3)
    writer.close()
    assert [s for s, _ in scalars(tmp_path)["time/iteration"]] == [1, 2, 3]
    seconds, curve = training_log(tmp_path)
    assert seconds == pytest.approx(3.0)
    assert curve == {
        "env_steps": [100, 200, 300],
        "return_before": [-1.0, -2.0, -3.0],
        "return_after": [1.123, 2.123, 3.123],
    }
    assert eval_at(tmp_path, 3) == [float(k) for k in range(11)]
    assert eval_at(tmp_path, 2) is None
    assert scalars(tmp_path / "nothing") == {} and training_log(tmp_path / "nothing") == (0.0, {})
    fast = SummaryWriter(str(tmp_path / "fast" / "tensorboard"))
    for it in (1, 2, 3):  # a few fast iterations keep their time: no rounding to 0
        fast.add_scalar("time/iteration", 0.0104, it)
    fast.close()
    assert training_log(tmp_path / "fast")[0] == 0.031  # to the millisecond, as exported


def test_a_resumed_runs_scalars_drop_what_followed_its_checkpoint_quietly(tmp_path, caplog):
    """Killed after iteration 5 with its checkpoint at 3, resumed at 4 (the purge step the
    run's logger sets): one value per iteration, the resumed ones, and no TensorBoard warning."""
    first = SummaryWriter(str(tmp_path / "tensorboard"))
    for it in range(1, 6):
        first.add_scalar("time/iteration", 1.0, it)
    first.close()
    time.sleep(1.1)  # event files are named by the second they were opened in
    resumed = SummaryWriter(str(tmp_path / "tensorboard"), purge_step=4)
    for it in range(4, 8):
        resumed.add_scalar("time/iteration", 2.0, it)
    resumed.close()
    with caplog.at_level("WARNING"):
        logged = scalars(tmp_path)["time/iteration"]
    assert logged == [(1, 1.0), (2, 1.0), (3, 1.0), (4, 2.0), (5, 2.0), (6, 2.0), (7, 2.0)]
    assert caplog.records == []


def test_the_papers_gap_shares_are_those_of_its_numbers():
    shares = {f: round(paper.gap_share(f), 2) for f in paper.LOCOMOTION}
    # field notes section 9 (Ant direction: the half-batch MAML the presets compare with)
    assert shares == {
        "halfcheetah_dir": 0.68,
        "halfcheetah_vel": 0.70,
        "ant": 0.89,
        "ant_dir": 0.83,
    }
    assert paper.NAVIGATION_MAML == [-40.41, -11.68, -3.33, -3.23]


def test_the_docs_tables_are_what_the_committed_result_files_give():
    """Every generated block of README.md and docs/*.md equals what its command prints now."""
    done = results("docs", "--check")
    assert done.returncode == 0, done.stderr + done.stdout


def test_a_stale_or_foreign_block_is_found_and_rewritten(tmp_path):
    from maml_hydra.results.docs import render

    command = "table --paper docs/results/paper/halfcheetah_dir"
    page = tmp_path / "page.md"
    text = f"Intro\n\n<!-- generated: {command} -->\n| old |\n<!-- end generated -->\n\nEnd\n"
    page.write_text(text)
    stale = results("docs", "--check", page)
    assert stale.returncode == 1 and "out of date" in stale.stderr and command in stale.stderr
    assert page.read_text() == text  # --check changes nothing
    assert results("docs", page).returncode == 0
    assert page.read_text() == text.replace("| old |\n", render(command))
    assert results("docs", "--check", page).returncode == 0
    plot = "<!-- generated: table --plot x.png docs/results/ant -->\n<!-- end generated -->"
    page.write_text(plot)
    refused = results("docs", page)
    assert refused.returncode == 1 and "--plot" in refused.stderr.splitlines()[0]
    unknown = results("nonsense")
    assert unknown.returncode == 1 and "unknown command 'nonsense'" in unknown.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ("missing:returns", "no 'returns'"),
        ("seed:'0'", "'seed' is a str"),
        ("returns:[[1.0, 2.0], [3.0]]", "'returns' is not a list of equal"),
        ("returns:[[1.0, 'x']]", "'returns' holds a value that is not a number"),
        ("trial:no params", "no 'params'"),
        ("success:[[0.5]]", "'success' is not laid out as 'returns'"),
        ("success:{}", "'success' is a dict"),
    ],
)
def test_a_result_file_of_another_shape_is_refused_with_one_line(tmp_path, content, says):
    """``results table`` reads only the compact format: a corrupt file, or one that parses as
    JSON but has another shape, stops it with one line naming the file and the field."""
    import json

    good = ROOT / "docs" / "results" / "paper" / "halfcheetah_dir" / "maml_seed0.json"
    record = json.loads(good.read_text())
    if content.startswith("missing:"):
        del record[content.split(":")[1]]
        content = json.dumps(record)
    elif content.startswith("trial:"):
        content = json.dumps({**record, "objective": 1.0, "objective_step": 1})
    elif content.startswith("success:") and content.endswith("]"):  # a success rate per task
        content = json.dumps({**record, "success": [[0.5] * len(record["returns"][0])] * 2})
    elif ":" in content and not content.startswith("{"):
        key, value = content.split(":", 1)
        content = json.dumps({**record, key: json.loads(value.replace("'", '"'))})
    folder = tmp_path / "family"
    folder.mkdir()
    (folder / "maml_seed0.json").write_text(content)
    for args in ([folder], ["--paper", folder], ["--search", folder], ["--metaworld", folder]):
        done = results("table", *args)
        assert done.returncode == 1 and done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(folder / "maml_seed0.json") in lines[0], lines
        assert says in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (None, None),
        ({"original": {"tasks": []}}, "'original' has no 'returns'"),
        ({"original": {"returns": [[1.0]]}}, "'original.returns' has another number of steps"),
        ({"at": {"iteration": "50", "return_mean": [1.0]}}, "'at' has no iteration"),
        ({"at": {"iteration": 50, "return_mean": [1.0]}}, "'at.return_mean' is not one number"),
        ({"returns": [[1.0, 2.0, 4.0]] * 4}, None),  # any number of tasks: means are tabled
    ],
)
def test_the_table_4_seed_files_are_result_files(tmp_path, change, says):
    """``results seeds`` reads the same compact format as ``results table``, with the original
    script's goals and the earlier iteration as its two optional fields; a file whose optional
    fields have another shape is refused with one line naming the field."""
    import json

    good = ROOT / "docs" / "results" / "reproduce_nav" / "fvp_quarter" / "seed0.json"
    record = json.loads(good.read_text())
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps({**record, **(change or {})}))
    done = results("seeds", path)
    if says is not None:
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.strip().splitlines() == [done.stderr.strip()] and says in done.stderr
        assert str(path) in done.stderr
        return
    assert done.returncode == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| seed0 |")]
    held_out, original, at = row.split(" | ")[1:4]
    means = [sum(r) / len(r) for r in (change or record)["returns"]]
    assert held_out == " / ".join(f"{v:.2f}" for v in means)
    originals = [sum(r) / len(r) for r in record["original"]["returns"]]
    assert original == " / ".join(f"{v:.2f}" for v in originals)
    assert at.strip(" |") == " / ".join(f"{v:.2f}" for v in record["at"]["return_mean"])
    assert results("table", tmp_path).returncode == 0  # and `table` reads it as any other


def test_the_meta_world_table_refuses_other_families_with_one_line():
    folder = ROOT / "docs" / "results" / "paper" / "halfcheetah_dir"
    done = results("table", "--metaworld", folder)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == f"error: {folder}: not every run is of env=metaworld"


def test_paired_rows_are_over_seeds_and_refuse_files_that_do_not_pair(tmp_path):
    """``results paired``: the difference of each seed's mean over its tasks, with the standard
    error over the seeds (textbook formulas on the committed files); over tasks with one pair,
    and said so. A pair of other seeds or other tasks is refused with one line."""
    import json

    R = ROOT / "docs" / "results"
    tuned = [R / "halfcheetah_dir_tuned" / f"maml_seed{s}.json" for s in (0, 1, 2)]
    defaults = [R / "algorithms" / "halfcheetah_dir" / f"maml_promp_seed{s}.json" for s in (0, 1)]
    defaults.append(R / "algorithms" / "halfcheetah_dir" / "maml_promp_seed2.json")
    a, b = ",".join(map(str, tuned)), ",".join(map(str, defaults))
    done = results("paired", "--steps", "1", "--row", "tuned", a, b)
    assert done.returncode == 0, done.stderr
    row = done.stdout.splitlines()[-1].split(" | ")
    per_seed = []
    for x, y in zip(tuned, defaults, strict=True):
        this, other = (json.loads(p.read_text())["returns"][1] for p in (x, y))
        per_seed.append(sum(t - o for t, o in zip(this, other, strict=True)) / len(this))
    mean, se = stats.mean_se(per_seed)
    assert row[3] == f"{mean:+.2f} ± {se:.2f}" and row[4] == "3 seeds |"
    one = results("paired", "--row", "seed 0", str(tuned[0]), str(defaults[0]))
    assert one.returncode == 0 and one.stdout.splitlines()[-1].endswith("| 40 tasks |")
    for this, other, says in [
        (str(tuned[0]), str(defaults[1]), "its seed is 1, its pair's 0"),
        (a, str(defaults[0]), "pairs its files in order: 3 against 1"),
        (str(tuned[0]), str(R / "paper" / "halfcheetah_dir" / "maml_seed0.json"), "same held-out"),
    ]:
        refused = results("paired", "--row", "x", this, other)
        assert refused.returncode == 1 and refused.stdout == ""
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], lines


def test_sets_are_seed_level_means_side_by_side_and_refuse_a_seed_twice():
    """``results sets``: each cell the mean over seeds of each seed's mean over its tasks, with
    the standard error over the seeds; "-" where a set does not adapt (the oracle); a set that
    holds one seed twice is refused with one line."""
    import json

    folder = ROOT / "docs" / "results" / "ant"
    maml = [folder / f"maml_seed{s}.json" for s in (0, 1)]
    oracle = ",".join(str(folder / f"oracle_seed{s}.json") for s in (0, 1))
    done = results("sets", "--row", "maml", ",".join(map(str, maml)), "--row", "oracle", oracle)
    assert done.returncode == 0, done.stderr
    maml_row, oracle_row = done.stdout.splitlines()[2:]
    after_one = [json.loads(p.read_text())["returns"][1] for p in maml]
    mean, se = stats.mean_se(sum(r) / len(r) for r in after_one)
    assert maml_row.split(" | ")[1:4:2] == ["2", f"{mean:.2f} ± {se:.2f}"]
    assert oracle_row.endswith("| - | - | - |")
    twice = results("sets", "--row", "x", f"{maml[0]},{maml[0]}")
    assert twice.returncode == 1 and twice.stdout == ""
    assert len(twice.stderr.strip().splitlines()) == 1 and "one file per seed" in twice.stderr
    # --gain: 1 step minus 0, paired over the tasks of one seed, over the seeds of several
    rows = ["--row", "seed 0", str(maml[0]), "--row", "both", ",".join(map(str, maml))]
    gained = results("sets", "--gain", *rows, "--row", "oracle", oracle)
    assert gained.returncode == 0, gained.stderr
    one, both, no = (line.split(" | ")[-1] for line in gained.stdout.splitlines()[2:])
    before, after = json.loads(maml[0].read_text())["returns"][:2]
    gains = [a - b for a, b in zip(after, before, strict=True)]
    mean, se = stats.mean_se(gains)
    assert one.startswith(f"+{mean:.2f} ± {se:.2f} ({mean / se:.1f} s.e., n = 40 tasks)")
    assert one.endswith(f"; {sum(g > 0 for g in gains)} of 40 gain |")
    per_seed = [
        sum(r[1]) / len(r[1]) - sum(r[0]) / len(r[0])
        for r in (json.loads(p.read_text())["returns"] for p in maml)
    ]
    mean, se = stats.mean_se(per_seed)
    assert both.startswith(f"+{mean:.2f} ± {se:.2f} ({mean / se:.1f} s.e., n = 2 seeds)")
    assert no == "- |"


def test_the_paper_table_plots_figure_5s_panel(tmp_path):
    """``table --paper FOLDER --plot PNG``: the table as without it, and the figure written."""
    folder = ROOT / "docs" / "results" / "paper" / "halfcheetah_dir"
    png = tmp_path / "panel.png"
    plotted = results("table", "--paper", folder, "--plot", png)
    assert plotted.returncode == 0, plotted.stderr
    assert plotted.stdout.startswith(results("table", "--paper", folder).stdout)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_paired_and_sets_refuse_a_seed_twice_or_a_missing_step_before_printing():
    """A row that repeats a seed, or asks for a step a record lacks, is refused with one line
    and nothing printed: no half table."""
    folder = ROOT / "docs" / "results" / "ant"
    maml0, oracle0 = (str(folder / f"{v}_seed0.json") for v in ("maml", "oracle"))
    twice = results("paired", "--row", "x", f"{maml0},{maml0}", f"{maml0},{maml0}")
    assert twice.returncode == 1 and "one file per seed" in twice.stderr
    maml1 = str(folder / "maml_seed1.json")
    paired_rows = ["--row", "fine", maml0, maml0, "--row", "no step 1", oracle0, oracle0]
    set_rows = ["--steps", "1", "--row", "fine", maml0, "--row", "mixed", f"{oracle0},{maml1}"]
    for command, args, says in (
        ("paired", paired_rows, "has no step 1"),
        ("sets", set_rows, "have step 1 and some not"),
    ):
        refused = results(command, *args)
        assert refused.returncode == 1 and refused.stdout == "", (command, refused.stdout)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], lines


@pytest.mark.parametrize(
    ("own", "report"),
    [
        ({"iteration": 1}, {"runs": {"a": {"returns": [[1.0]]}}}),
        ({"iteration": 1, "return_per_task": [[1.0]]}, []),
        ({"iteration": 1, "return_per_task": [[]]}, {"runs": {"a": {"returns": [[1.0]]}}}),
    ],
)
def test_seeds_refuses_a_run_directory_of_another_shape_with_one_line(tmp_path, own, report):
    import json

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval_results.json").write_text(json.dumps(own))
    (tmp_path / "eval" / "results.json").write_text(json.dumps(report))
    done = results("seeds", tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "Traceback" not in done.stderr


def test_the_meta_world_table_plots_the_success_rate(tmp_path):
    folder = ROOT / "docs" / "results" / "metaworld" / "ml1_reach"
    png = tmp_path / "success.png"
    plotted = results("table", "--metaworld", folder, "--plot", png)
    assert plotted.returncode == 0, plotted.stderr
    assert plotted.stdout.startswith(results("table", "--metaworld", folder).stdout)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    two = results("table", "--metaworld", folder, folder, "--plot", png)
    assert two.returncode != 0 and "takes one folder" in two.stderr


def test_the_bars_row_on_the_papers_problem_checks_the_papers_bars_as_the_paper_table_does():
    """``table --bars`` on a family of the paper's problem checks the same two bars as
    ``table --paper`` (one step within 2 combined standard errors of the paper's; the gap share
    no lower than the paper's minus 0.1), with the same verdicts, on the committed results;
    Ant direction's bar rests on the s.e. standing in for its half-batch result's, and says so."""
    for family in ("ant", "ant_dir", "halfcheetah_dir", "halfcheetah_vel"):
        folder = ROOT / "docs" / "results" / "paper" / family
        full = results("table", "--paper", folder)
        row = results("table", "--bars", folder)
        assert full.returncode == 0 and row.returncode == 0, (full.stderr, row.stderr)
        verdicts = [line.endswith(": holds") for line in full.stdout.splitlines()[-2:]]
        cell = row.stdout.splitlines()[-1].split(" | ")[-2]
        assert cell.startswith("1 step ") and "; gap share " in cell, cell
        assert [part.endswith(" yes") for part in cell.split("; ")] == verdicts, (family, cell)
        one_step = full.stdout.splitlines()[-2]
        bar = one_step.split(" bar -2 x ")[1].split(" = ")[1].split(" ")[0]
        assert f">= {bar} " in cell, (bar, cell)
        stand_in = "s.e. 16.4, its full-batch MAML's standing in for this result's unpublished one"
        assert (stand_in in one_step) == (family == "ant_dir"), one_step


def test_the_gap_share_against_another_folders_oracles_is_the_textbook_share():
    """``table --paper FOLDER --oracle OTHER``: the gap share again with OTHER's oracles, each
    seed's (MAML after 1 step - pretrained after 1) / (oracle - pretrained after 1), mean and
    standard error over seeds, recomputed here from the committed files; ``--oracle`` alone,
    or with a folder of no such oracle, is refused before anything is printed."""
    import json

    results_dir = ROOT / "docs" / "results" / "paper"
    other = results_dir / "ant_per_task_baseline"
    done = results("table", "--paper", results_dir / "ant", "--oracle", other)
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[-1]

    def mean_after(folder, name, step):
        returns = json.loads((results_dir / folder / name).read_text())["returns"][step]
        return sum(returns) / len(returns)

    shares = []
    for s in (0, 1):
        maml = mean_after("ant", f"maml_seed{s}.json", 1)
        pre = mean_after("ant", f"pretrained_seed{s}.json", 1)
        oracle = mean_after("ant_per_task_baseline", f"oracle_seed{s}.json", 0)
        shares.append((maml - pre) / (oracle - pre))
    mean, se = stats.mean_se(shares)
    want = paper.gap_share("ant") - 0.1
    assert line.startswith(f"- the same against the oracles of {other} (seeds [0, 1]): "), line
    assert f": {mean:.2f} ± {se:.2f} (the share of the means" in line, (line, mean, se)
    assert line.endswith(f"bar {want:.2f}: {'holds' if mean >= want else 'FAILS'}"), line
    alone = results("table", results_dir / "ant", "--oracle", other)
    assert alone.returncode == 2 and "--oracle goes with --paper" in alone.stderr
    wrong = results("table", "--paper", results_dir / "ant", "--oracle", results_dir / "ant_dir")
    assert wrong.returncode != 0 and not wrong.stdout, wrong.stdout
    assert (
        wrong.stderr.strip()
        == f"error: {results_dir / 'ant_dir'}: no ant oracle on the paper's problem"
    )
