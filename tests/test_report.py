"""Baselines, one-command sweeps and the evaluation report."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from maml_hydra.checkpoint import config_from_yaml, load_checkpoint, save_checkpoint
from maml_hydra.config import EvalConfig, EvaluateConfig
from maml_hydra.experiment import Experiment
from maml_hydra.report import EvaluationError, make_report
from maml_hydra.seeding import generator
from tests.helpers import (
    TINY_BASELINES,
    cli,
    compose_config,
    make_config,
    python_script,
    results,
    run_cli,
)

# the sweep's run directories: jobs are numbered in the order of baseline=maml,pretrained,oracle
RUN = {
    b: f"navigation_{b}_trpo_seed0_job{n}" for n, b in enumerate(("maml", "pretrained", "oracle"))
}

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


REPORT_EVAL = EvalConfig(num_tasks=4, episodes_per_task=4, num_steps=2, lrs=[0.1, 0.05], seed=99)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """One real `-m` sweep: three baselines, one seed, the basic launcher."""
    root = tmp_path_factory.mktemp("sweep")
    result = cli(
        [
            "-m",
            "baseline=maml,pretrained,oracle",
            "seed=0",
            *TINY_BASELINES,
            f"hydra.sweep.dir={root / 'multi'}",
        ],
        root,
    )
    assert result.returncode == 0, result.stderr
    return root / "multi"


def test_baselines_set_what_they_need():
    maml = Experiment(make_config(["baseline=maml", "inner.num_steps=2"]), "unused")
    assert maml.learner.num_steps == 2 and maml.env.observation_dim == 2
    pretrained = Experiment(make_config(["baseline=pretrained"]), "unused")
    assert pretrained.learner.num_steps == 0 and pretrained.evaluator.cfg.num_steps == 2
    oracle = Experiment(make_config(["baseline=oracle"], tiny=False), "unused")
    assert oracle.env.observation_dim == 4 and oracle.evaluator.env.observation_dim == 4
    assert oracle.learner.num_steps == 0 and oracle.evaluator.cfg.num_steps == 0
    # TINY's train.iterations=3 would win over the baseline's 0, as any override does
    assert compose_config(["baseline=random"], tiny=False).train.iterations == 0


def test_what_a_baseline_sets_can_still_be_overridden():
    cfg = make_config(["baseline=pretrained", "inner.num_steps=2"])
    assert cfg.baseline.name == "pretrained" and cfg.inner.num_steps == 2
    cfg = make_config(["baseline=oracle", "eval.num_steps=1"])
    assert cfg.env.oracle and cfg.eval.num_steps == 1


# what each baseline must have set in the config that ran
RAN = {
    "maml": {"env.oracle": False, "inner.num_steps": 1, "eval.num_steps": 3},
    "pretrained": {"env.oracle": False, "inner.num_steps": 0, "eval.num_steps": 3},
    "oracle": {"env.oracle": True, "inner.num_steps": 0, "eval.num_steps": 0},
}


def test_the_logged_config_is_the_one_that_ran(sweep):
    """.hydra/config.yaml, the checkpoint and TensorBoard's config table and hparams all hold
    the baseline's keys as they ran."""
    for baseline, expected in RAN.items():
        run = sweep / RUN[baseline]
        hydra_cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
        checkpoint = OmegaConf.create(load_checkpoint(run / "checkpoints" / "last.pt")["config"])
        tb = EventMultiplexer().AddRunsFromDirectory(str(run / "tensorboard"))
        tb.Reload()
        table = tb.Tensors(".", "config/text_summary")[0].tensor_proto.string_val[0].decode()
        content = tb.PluginRunToTagToContent("hparams")["."]["_hparams_/session_start_info"]
        hparams = HParamsPluginData.FromString(content).session_start_info.hparams
        for key, value in expected.items():
            assert OmegaConf.select(hydra_cfg, key) == value, (baseline, key)
            assert OmegaConf.select(checkpoint, key) == value, (baseline, key)
            assert f"| {key} | {value} |" in table, (baseline, key)
            logged = hparams[key]
            assert getattr(logged, logged.WhichOneof("kind")) == value, (baseline, key)
        assert hydra_cfg.baseline == {"name": baseline}


def test_random_baseline_trains_nothing_and_saves_the_initial_policy(tmp_path, caplog):
    exp = Experiment(make_config(["baseline=random", "train.iterations=0"]), tmp_path)
    initial = exp.learner.parameters()
    with caplog.at_level("INFO", logger="maml_hydra.experiment"):
        exp.train()
    said = [r.getMessage() for r in caplog.records if r.name == "maml_hydra.experiment"]
    assert "baseline random, trpo: no training, its initialisation evaluated into" in said[0]
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["iteration"] == 0
    exp.learner.load_state_dict(state["learner"])
    assert torch.equal(exp.learner.parameters(), initial)


def test_sweep_names_every_run_by_env_baseline_algorithm_seed(sweep):
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert names == sorted(RUN.values())
    for name in names:
        assert (sweep / name / "checkpoints" / "last.pt").is_file()
        assert any((sweep / name / "tensorboard").iterdir())


def test_evaluate_cli_writes_the_whole_report(sweep):
    result = run_cli(
        [
            str(sweep),
            "eval.num_tasks=4",
            "eval.episodes_per_task=4",
            "eval.num_steps=2",
            "progress=false",
        ],
        cwd=sweep,
        module="maml_hydra.evaluate",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    out = sweep / "eval"
    results = json.loads((out / "results.json").read_text())
    variants = {e["variant"] for e in results["runs"].values()}
    assert variants == {"maml", "pretrained", "oracle", "random"}
    for entry in results["runs"].values():
        steps = 1 if entry["variant"] == "oracle" else 3
        assert len(entry["returns"]) == steps and all(len(r) == 4 for r in entry["returns"])
    assert set(results["summary"]) == variants
    table = (out / "summary.md").read_text()
    assert "| variant | seeds | 0 steps | 1 step | 2 steps |" in table
    for v in variants:
        assert f"| {v} | 1 |" in table
    image = mpimg.imread(out / "adaptation.png")
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas
    tb = EventAccumulator(str(out / "tensorboard" / RUN["maml"]))
    tb.Reload()
    assert {"eval/return_step_0", "eval/return_step_1", "eval/return_step_2"} <= set(
        tb.Tags()["scalars"]
    )
    assert (out / "tensorboard" / "random_seed0").is_dir()
    assert "maml" in result.stdout and "adaptation.png" in result.stdout

    # the held-out tasks are never among the tasks any run trained on
    held_out = torch.tensor(next(iter(results["runs"].values()))["tasks"])
    for run in (p for p in sweep.iterdir() if p.name.startswith("navigation_")):
        cfg = config_from_yaml(load_checkpoint(run / "checkpoints" / "last.pt")["config"])
        rng = generator("train-tasks", cfg.seed)
        seen = torch.rand(cfg.train.iterations * cfg.train.meta_batch_size, 2, generator=rng) - 0.5
        assert torch.cdist(held_out, seen).min() > 0


def copy_sweep(sweep: Path, dest: Path) -> Path:
    shutil.copytree(sweep, dest, ignore=shutil.ignore_patterns("eval"))
    return dest


def test_a_directory_without_runs_is_one_clear_error(tmp_path):
    with pytest.raises(EvaluationError, match="no runs found"):
        make_report(EvaluateConfig(dir=str(tmp_path), eval=REPORT_EVAL, progress=False))
    result = cli([str(tmp_path), "progress=false"], cwd=tmp_path, module="maml_hydra.evaluate")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path}: no runs found")


def test_bad_runs_get_one_line_each_and_the_rest_is_kept(sweep, tmp_path):
    root = copy_sweep(sweep, tmp_path / "s")
    (root / RUN["oracle"] / "checkpoints" / "last.pt").unlink()  # no checkpoint
    ckpt = root / RUN["pretrained"] / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # corrupt
    with pytest.raises(EvaluationError) as err:
        make_report(EvaluateConfig(dir=str(root), eval=REPORT_EVAL, progress=False))
    message = str(err.value)
    assert f"{RUN['oracle']}/checkpoints/last.pt: no checkpoint found" in message
    assert f"{RUN['pretrained']}/checkpoints/last.pt: not a readable checkpoint" in message
    assert "\n" not in message
    results = json.loads((root / "eval" / "results.json").read_text())
    assert {e["variant"] for e in results["runs"].values()} == {"maml", "random"}
    assert (root / "eval" / "summary.md").is_file()


def test_runs_of_different_envs_cannot_share_a_report(sweep, tmp_path):
    root = copy_sweep(sweep, tmp_path / "s")
    ckpt = root / RUN["oracle"] / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt)
    cfg = config_from_yaml(state["config"])
    state["config"] = OmegaConf.to_yaml(
        OmegaConf.structured(replace(cfg, env=replace(cfg.env, name="nav_b")))
    )
    save_checkpoint(ckpt, state)
    with pytest.raises(EvaluationError, match="runs of different envs cannot share one report"):
        make_report(EvaluateConfig(dir=str(root), eval=REPORT_EVAL, progress=False))
    assert not (root / "eval" / "results.json").exists()


def test_a_second_report_reuses_what_was_evaluated(sweep, tmp_path):
    root = copy_sweep(sweep, tmp_path / "s")
    cfg = EvaluateConfig(dir=str(root), eval=REPORT_EVAL, progress=False)
    first = make_report(cfg)
    (root / RUN["maml"] / "checkpoints" / "last.pt").write_bytes(b"broken")
    with pytest.raises(EvaluationError):
        make_report(cfg)  # the broken run is reported; the others come from results.json
    kept = json.loads((root / "eval" / "results.json").read_text())
    name = RUN["pretrained"]
    assert kept["runs"][name]["returns"] == first["runs"][name]["returns"]


def test_step_size_probe_reports_the_gain_of_one_step_per_size(tmp_path):
    run = tmp_path / "run"
    exp = Experiment(make_config(), run)
    exp.train()
    args = [run, "--lrs", "0.1", "0.7", "--gae-lambda", "0.9", "--tasks", "3"]
    result = python_script("bench.py", "--step-sizes", *args)
    assert result.returncode == 0, result.stderr
    rows = [
        line.removesuffix(" |").split(" | ")
        for line in result.stdout.splitlines()
        if line.startswith("| 0.")
    ]
    assert [r[0] for r in rows] == ["| 0.1", "| 0.7"]
    assert rows[0][1] == rows[1][1]  # both sizes adapt from the same pre-update episodes
    # the same numbers from the evaluator, with the inner step's advantages at lambda 0.9
    cfg = make_config(["train.gae_lambda=0.9", "eval.num_steps=1", "eval.lrs=[0.7]"])
    check = Experiment(cfg, run)
    check.load_weights(load_checkpoint(run / "checkpoints" / "last.pt"))
    returns = check.evaluator.evaluate(check.learner.parameters())
    gain = returns[1] - returns[0]
    assert rows[1][1:4] == [
        f"{returns[0].mean():.1f}",
        f"{returns[1].mean():.1f}",
        f"{gain.mean():+.2f} ± {gain.std() / 3**0.5:.2f} ({int((gain > 0).sum())} of 3 tasks gain)",
    ]

    for bad, message in [
        (["--tasks", "0"], "error: eval.num_tasks=0 is not allowed: must be >= 1"),
        (["--gae-lambda", "2"], "error: train.gae_lambda=2.0 is not allowed: must be in [0, 1]"),
    ]:
        refused = python_script("bench.py", "--step-sizes", run, *bad)
        assert refused.returncode == 1 and refused.stdout == ""  # no half-printed table
        assert refused.stderr.strip() == message
    missing = python_script("bench.py", "--step-sizes", tmp_path / "nothing")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().startswith("error: ") and "nothing" in missing.stderr


@pytest.mark.parametrize(
    "override,expected",
    [
        ("eval.lrs=[inf]", "error: eval.lrs=[inf] is not allowed: must be a non-empty list"),
        ("eval.num_taskz=3", "error: Could not override 'eval.num_taskz'."),
        ("device=tpu", "error: device='tpu' is not allowed: must be one of cpu, cuda"),
    ],
)
def test_report_config_errors_are_one_line_and_write_nothing(tmp_path, override, expected):
    result = cli([str(tmp_path), override], cwd=tmp_path, module="maml_hydra.evaluate")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith(expected), lines
    assert list(tmp_path.iterdir()) == []


def test_result_files_regenerate_the_tables_and_the_plot(sweep, tmp_path):
    """`results export` writes one compact JSON per evaluated run; `results table` makes the
    table, the paired comparisons and the plot from those files alone."""
    root = copy_sweep(sweep, tmp_path / "sweep")
    report = make_report(EvaluateConfig(dir=str(root), eval=REPORT_EVAL, progress=False))
    out = tmp_path / "results"
    export = results("export", root, "--out", out)
    assert export.returncode == 0, export.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{v}_seed0.json" for v in ("maml", "oracle", "pretrained", "random")]
    maml = json.loads((out / "maml_seed0.json").read_text())
    assert maml["returns"] == report["runs"][RUN["maml"]]["returns"]
    assert maml["iterations"] == 3 and maml["env_steps"] > 0 and maml["train_wall_s"] > 0
    curve = maml["curve"]  # the learning curve, one point per meta-iteration
    assert len(curve["env_steps"]) == len(curve["return_after"]) == 3
    assert curve["env_steps"][-1] == maml["env_steps"]
    assert config_from_yaml(maml["config"]).baseline.name == "maml"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert maml["commit"].removesuffix("+dirty") == head.strip()  # what the checkpoint records
    random = json.loads((out / "random_seed0.json").read_text())
    cfg = config_from_yaml(random["config"])
    assert (cfg.baseline.name, cfg.train.iterations, random["env_steps"]) == ("random", 0, 0)

    shutil.rmtree(root)  # the table needs only the result files
    png = tmp_path / "adaptation.png"
    table = results("table", out, "--plot", png)
    assert table.returncode == 0, table.stderr
    row = report["summary"]["maml"]["steps"]
    cells = " | ".join(f"{r['mean']:.2f} ± {r['stderr']:.2f}" for r in row)
    assert f"| maml | 1 | {cells} |" in table.stdout
    assert "MAML after 1 step minus pretrained after 1 step: " in table.stdout
    assert "MAML after 1 step minus random after 1 step: " in table.stdout
    assert "| maml seed 0 | 3 |" in table.stdout
    assert mpimg.imread(png)[..., :3].std() > 0.05

    # --bars: the family's row; a pretrained run evaluated at another step size (a second
    # folder) that adapts better in one step is the one MAML is compared against
    bars = results("table", "--bars", out)
    assert bars.returncode == 0, bars.stderr
    gain = table.stdout.split("MAML after 1 step minus MAML at 0 steps: ")[1].split(" (")[0]
    row = next(
        line for line in bars.stdout.splitlines() if line.startswith(f"| {maml['family']} |")
    )
    assert f"| 1 x {len(maml['tasks'])} |" in row and gain in row and ", lr" not in row
    other = tmp_path / "pretrained_lr"
    other.mkdir()
    pretrained = json.loads((out / "pretrained_seed0.json").read_text())
    pretrained["eval"]["lrs"] = [0.7]
    pretrained["returns"][1] = [r + 1e4 for r in pretrained["returns"][1]]
    (other / "pretrained_seed0.json").write_text(json.dumps(pretrained))
    bars = results("table", "--bars", out, other)
    row = next(
        line for line in bars.stdout.splitlines() if line.startswith(f"| {maml['family']} |")
    )
    assert ", lr 0.7) NO |" in row and row.endswith("| NO |"), row
    # MAML runs of another meta-optimizer in another folder: a row each, same baselines
    promp = tmp_path / "promp"
    promp.mkdir()
    maml["config"] = maml["config"].replace("name: trpo", "name: promp")
    (promp / "maml_seed0.json").write_text(json.dumps(maml))
    rows = results("table", "--bars", out, promp).stdout.splitlines()
    family = maml["family"]
    assert [r.split(" | ")[0] for r in rows[2:]] == [
        f"| {family}: trpo, {out}/",
        f"| {family}: promp, {promp}/",
    ]


def test_a_sweep_over_algorithms_reports_each_as_its_own_variant(tmp_path):
    """-m algorithm=trpo,promp: variants maml_trpo and maml_promp (one random init), compared
    pairwise in the table, with learning curves against env steps."""
    sweep = tmp_path / "sweep"
    args = ["-m", "algorithm=trpo,promp", "seed=0", *TINY_BASELINES, f"hydra.sweep.dir={sweep}"]
    assert cli(args, tmp_path).returncode == 0
    promp = next(sweep.glob("*_promp_*"))
    promp.rename(tmp_path / "aside")  # the TRPO run alone first: variant maml
    cfg = EvaluateConfig(dir=str(sweep), eval=REPORT_EVAL, progress=False)
    assert set(make_report(cfg)["summary"]) == {"maml", "random"}
    first = json.loads((sweep / "eval" / "results.json").read_text())["runs"]
    (tmp_path / "aside").rename(promp)
    # the ProMP run evaluated on its own (a finished job of a sweep still running) is not
    # evaluated again by the sweep's report: marked returns show where the entry came from
    make_report(EvaluateConfig(dir=str(promp), eval=REPORT_EVAL, progress=False))
    own = json.loads((promp / "eval" / "results.json").read_text())
    marked = [[r + 1000.0 for r in step] for step in own["runs"][promp.name]["returns"]]
    own["runs"][promp.name]["returns"] = marked
    (promp / "eval" / "results.json").write_text(json.dumps(own))
    report = make_report(cfg)  # the TRPO entry reused, renamed now that ProMP is there
    assert set(report["summary"]) == {"maml_trpo", "maml_promp", "random"}
    assert len(report["runs"]) == 3
    for name, entry in first.items():
        assert report["runs"][name]["returns"] == entry["returns"]
    assert report["runs"][promp.name]["returns"] == marked
    assert report["runs"][promp.name]["variant"] == "maml_promp"
    out = tmp_path / "results"
    assert results("export", sweep, "--out", out).returncode == 0
    png = tmp_path / "curves.png"
    table = results("table", out, "--curves", png)
    assert table.returncode == 0, table.stderr
    assert "maml_promp after 1 step minus maml_trpo after 1 step: " in table.stdout
    assert "maml_trpo after 1 step minus random after 1 step: " in table.stdout
    assert mpimg.imread(png)[..., :3].std() > 0.05
