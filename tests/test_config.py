"""Config composition, every group option, validation errors and Hydra's own errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from maml_hydra.config import (
    Config,
    ConfigError,
    Estimator,
    InnerConfig,
    NavigationConfig,
    TRPOConfig,
    to_config,
)
from maml_hydra.runtime import check_config
from tests.helpers import CONF, TINY, cli, compose_config, make_config

GROUPS = ("env", "algorithm", "inner", "baseline")


def test_defaults_compose_to_typed_config():
    cfg = make_config(tiny=False)
    assert isinstance(cfg, Config)
    assert isinstance(cfg.env, NavigationConfig)
    assert isinstance(cfg.algorithm, TRPOConfig)
    assert isinstance(cfg.inner, InnerConfig)
    assert cfg.baseline.name == "maml"
    # The paper's settings are the defaults.
    assert (cfg.train.meta_batch_size, cfg.train.episodes_per_task, cfg.env.horizon) == (
        20,
        20,
        100,
    )
    assert (cfg.inner.lr, cfg.inner.num_steps, cfg.algorithm.max_kl) == (0.1, 1, 0.01)
    assert list(cfg.policy.hidden_sizes) == [100, 100] and cfg.policy.activation == "relu"


@pytest.mark.parametrize(
    "group,option", [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
)
def test_every_group_option_composes(group, option):
    cfg = make_config([f"{group}={option}"])
    assert getattr(cfg, group) is not None


@pytest.mark.parametrize(
    "override,value",
    [
        ("seed=7", ("seed", 7)),
        ("train.iterations=9", ("train.iterations", 9)),
        ("train.meta_batch_size=5", ("train.meta_batch_size", 5)),
        ("train.episodes_per_task=6", ("train.episodes_per_task", 6)),
        ("train.checkpoint_every=4", ("train.checkpoint_every", 4)),
        ("inner.num_steps=2", ("inner.num_steps", 2)),
        ("inner.lr=0.3", ("inner.lr", 0.3)),
        ("inner.first_order=true", ("inner.first_order", True)),
        ("algorithm.max_kl=0.02", ("algorithm.max_kl", 0.02)),
        ("algorithm.cg_iters=5", ("algorithm.cg_iters", 5)),
        ("algorithm.cg_damping=0.1", ("algorithm.cg_damping", 0.1)),
        ("algorithm.ls_steps=3", ("algorithm.ls_steps", 3)),
        ("algorithm.max_kl_pre_update=0.02", ("algorithm.max_kl_pre_update", 0.02)),
        ("algorithm.hvp=finite_difference", ("algorithm.hvp", "finite_difference")),
        ("algorithm.fd_eps=0.5", ("algorithm.fd_eps", 0.5)),
        ("env.horizon=50", ("env.horizon", 50)),
        ("policy.hidden_sizes=[32,32,32]", ("policy.hidden_sizes", [32, 32, 32])),
        ("policy.activation=tanh", ("policy.activation", "tanh")),
        ("policy.init=xavier", ("policy.init", "xavier")),
        (f"resume={CONF}", ("resume", str(CONF))),  # an existing directory
        ("device=cpu", ("device", "cpu")),
        ("train.sampling=steps", ("train.sampling", "steps")),
    ],
)
def test_overrides_reach_the_typed_config(override, value):
    cfg = make_config([override])
    key, expected = value
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    assert (list(node) if isinstance(node, list) else node) == expected


BAD_VALUES = [
    ("inner.num_steps=-1", "inner.num_steps=-1"),
    ("inner.lr=0", "inner.lr=0.0"),
    ("inner.lr=-0.5", "inner.lr=-0.5"),
    ("train.meta_batch_size=0", "train.meta_batch_size=0"),
    ("train.episodes_per_task=1", "train.episodes_per_task=1"),
    ("train.checkpoint_every=0", "train.checkpoint_every=0"),
    ("train.gamma=1.5", "train.gamma=1.5"),
    ("eval.tasks=[[0.1,0.2]]", "eval.tasks='[[0.1, 0.2]]'"),  # TINY has eval.num_tasks=3
    ("eval.tasks=[[0.1],[0.2],[0.3]]", "eval.tasks='[[0.1], [0.2], [0.3]]'"),  # goals are 2-d
    ("env.horizon=0", "env.horizon=0"),
    ("policy.hidden_sizes=[]", "policy.hidden_sizes=[]"),
    ("policy.hidden_sizes=[16,0]", "policy.hidden_sizes=[16, 0]"),
    ("algorithm.max_kl=0", "algorithm.max_kl=0.0"),
    ("algorithm.cg_iters=0", "algorithm.cg_iters=0"),
    ("algorithm.ls_backtrack=1.0", "algorithm.ls_backtrack=1.0"),
    ("device=tpu", "device='tpu'"),
    ("eval.lrs=[]", "eval.lrs=[]"),
    ("train.iterations=-1", "train.iterations=-1"),
    ("inner.lr=inf", "inner.lr=inf"),
    ("algorithm.max_kl=inf", "algorithm.max_kl=inf"),
    ("algorithm.max_kl=nan", "algorithm.max_kl=nan"),
    ("eval.lrs=[inf]", "eval.lrs=[inf]"),
    (
        "eval.tasks=[[0.1,nan],[0.0,0.0],[0.0,0.0]]",
        "eval.tasks='[[0.1, nan], [0.0, 0.0], [0.0, 0.0]]'",
    ),
    ("env.goal_high=inf", "env.goal_high=inf"),
    ("env.goal_high=-1", "env.goal_high=-1.0"),
    ("algorithm.fvp_task_fraction=0", "algorithm.fvp_task_fraction=0.0"),
    ("algorithm.max_kl_pre_update=0", "algorithm.max_kl_pre_update=0.0"),
    ("algorithm.fvp_task_fraction=1.5", "algorithm.fvp_task_fraction=1.5"),
    ("algorithm.fvp_min_tasks=0", "algorithm.fvp_min_tasks=0"),
    ("algorithm.fd_eps=0", "algorithm.fd_eps=0.0"),
    ("train.linear_baseline=batch", "train.linear_baseline='batch'"),  # MAML adapts in training
]

# keys of the MuJoCo families, checked for each family's schema
BAD_LOCOMOTION = [
    (["env=halfcheetah_vel", "env.goal_high=-1"], "env.goal_high=-1.0"),
    (["env=ant", "env.goal_low=4"], "env.goal_high=3.0"),
    (["env=halfcheetah_dir", "env.frame_skip=0"], "env.frame_skip=0"),
    (["env=ant_dir", "env.threads=0"], "env.threads=0"),
    (["env=halfcheetah_vel", "env.ctrl_cost=-1"], "env.ctrl_cost=-1.0"),
    (["env=ant", "env.reset_noise=-0.1"], "env.reset_noise=-0.1"),
    (["env=ant", "env.goal_low=nan"], "env.goal_low=nan"),
    (["env=ant_dir", "env.survive_bonus=inf"], "env.survive_bonus=inf"),
]


# choice lists are Enums: Hydra refuses a value outside them while composing, naming the key
BAD_CHOICES = [
    ("train.sampling=trajectories", "train.sampling"),
    ("policy.activation=sigmoidal", "policy.activation"),
    ("policy.init=glorot", "policy.init"),
    ("algorithm.hvp=perlmutter", "algorithm.hvp"),
    ("inner.estimator=loaded_dice", "inner.estimator"),
    ("train.linear_baseline=pooled", "train.linear_baseline"),
]


@pytest.mark.parametrize("override,key", BAD_CHOICES)
def test_bad_choices_are_refused_while_composing(override, key):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override])
    cause = err.value.__cause__
    assert isinstance(cause, ValidationError)
    assert cause.full_key == key and "expected one of" in str(cause)


@pytest.mark.parametrize("overrides,message", BAD_LOCOMOTION)
def test_bad_locomotion_values_raise_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        make_config(overrides)
    assert str(err.value).startswith(message) and "must" in str(err.value)


@pytest.mark.parametrize("override,message", BAD_VALUES)
def test_bad_values_raise_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:  # the schemas' rules, then the runtime's
        check_config(make_config([override]))
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text
    assert "must" in text or "no CUDA" in text


def test_cuda_without_gpu_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    cfg = make_config(["device=cuda"])  # a schema's rule passes; the machine's does not
    with pytest.raises(ConfigError, match="device='cuda'.*no CUDA GPU"):
        check_config(cfg)


def test_validation_needs_no_hydra():
    cfg = make_config()
    cfg.inner.num_steps = -3
    with pytest.raises(ConfigError, match="inner.num_steps=-3"):
        to_config(cfg)


def test_hydra_node_is_dropped_before_validation():
    cfg = to_config(compose_config(return_hydra_config=True))
    assert isinstance(cfg.env, NavigationConfig)


# ------------------------------------------------------------- one home for every value
SCHEMA_GROUPS = ("env", "algorithm", "inner")


@pytest.mark.parametrize(
    "path", [p for g in SCHEMA_GROUPS for p in sorted((CONF / g).glob("*.yaml"))], ids=str
)
def test_no_yaml_value_repeats_its_schema_default(path):
    raw = OmegaConf.load(path)
    store = ConfigStore.instance()
    name, _, package = raw.defaults[0].partition("@")
    schema = store.load(f"{path.parent.name}/{name}.yaml").node
    if package:  # a global file (algorithm=promp): each section against its group's schema
        sections = {k: v for k, v in raw.items() if k != "defaults"}
    else:
        sections = {path.parent.name: {k: v for k, v in raw.items() if k != "defaults"}}
    for section, values in sections.items():
        node = schema if section in (package, path.parent.name) else None
        node = node or store.load(f"{section}/base_{section}.yaml").node
        for key, value in values.items():
            assert key in node and node[key] != value, f"{path.name}: {section}.{key}"


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("baseline", ["pretrained", "oracle", "random"])
def test_a_baseline_holds_over_an_experiment(experiment, baseline):
    cfg = compose_config([f"experiment={experiment}", f"baseline={baseline}"], tiny=False)
    to_config(cfg)
    sets = OmegaConf.load(CONF / "baseline" / f"{baseline}.yaml")
    for section, values in sets.items():
        for key, value in values.items():
            assert cfg[section][key] == value, f"{section}.{key}"


ALGORITHMS = sorted(p.stem for p in (CONF / "algorithm").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_experiment_composes_with_every_algorithm(experiment, algorithm):
    """An experiment's keys for one meta-optimizer live in conf/experiment_algorithm/
    <experiment>_<algorithm>.yaml, read only with that algorithm, so that a sweep
    algorithm=trpo,ppo,promp composes with any experiment."""
    cfg = to_config(
        compose_config([f"experiment={experiment}", f"algorithm={algorithm}"], tiny=False)
    )
    assert cfg.algorithm.name == algorithm
    special = CONF / "experiment_algorithm" / f"{experiment}_{algorithm}.yaml"
    if special.exists():
        for key, value in algorithm_keys(special).items():
            assert getattr(cfg.algorithm, key) == value, f"{special.name}: {key}"


def algorithm_keys(path) -> dict:
    """The keys an experiment_algorithm file sets: those of the shared files its defaults list
    names (conf/experiment_algorithm_base/, placed @_here_), then its own."""
    node = OmegaConf.to_container(OmegaConf.load(path))
    keys = {}
    for entry in node.pop("defaults", []):
        if entry != "_self_":
            name, _, package = entry.partition("@")
            assert package == "_here_", f"{path.name}: {entry}"
            keys.update(OmegaConf.to_container(OmegaConf.load(CONF / f"{name.lstrip('/')}.yaml")))
    return {**keys, **node}


@pytest.mark.parametrize("path", sorted((CONF / "experiment_algorithm").glob("*.yaml")), ids=str)
def test_every_experiment_algorithm_file_names_an_experiment_and_an_algorithm(path):
    experiment, _, algorithm = path.stem.rpartition("_")
    assert experiment in EXPERIMENTS and algorithm in ALGORITHMS, path.name
    default = ConfigStore.instance().load(f"algorithm/base_{algorithm}.yaml").node
    for key, value in algorithm_keys(path).items():
        assert key in default and default[key] != value, f"{path.name}: {key}"


def test_an_experiment_file_holds_what_its_script_passed_by_hand():
    cfg = make_config(["experiment=reproduce_nav"], tiny=False)
    assert (cfg.policy.init, cfg.train.sampling, cfg.algorithm.hvp) == (
        "xavier",
        "steps",
        "finite_difference",
    )
    ant = make_config(["experiment=ant_short"], tiny=False)
    assert (ant.env.name, ant.inner.lr, ant.train.episodes_per_task, list(ant.eval.lrs)) == (
        "ant",
        0.5,
        10,
        [0.5],
    )


def test_every_schema_with_a_name_is_registered_for_yaml():
    from maml_hydra.config import AlgorithmConfig, EnvConfig, _subclasses

    for group, root in (("env", EnvConfig), ("algorithm", AlgorithmConfig)):
        for schema in _subclasses(root):
            if schema.name != "???":
                node = ConfigStore.instance().load(f"{group}/base_{schema.name}.yaml").node
                assert node._metadata.object_type is schema


# --------------------------------------------------------------------- the CLI, end to end
@pytest.mark.parametrize(
    "override,expected",
    [
        ("inner.lrr=0.1", "Could not override 'inner.lrr'. To append to your config use "),
        ("train.iterations=abc", "train.iterations=abc. Value 'abc' of type 'str' could not be"),
        ("env=foo", "Could not find 'env/foo'. Available options in 'env': ant, ant_dir, half"),
        ("policy.activation=sigm", "policy.activation=sigm. Invalid value 'sigm', expected one"),
        ("+experiment=nope", "Could not find 'experiment/nope'. Available options in 'experi"),
        ("inner.num_steps=-1", "inner.num_steps=-1 is not allowed: must be >= 0"),
        ("inner.lr=inf", "inner.lr=inf is not allowed: must be > 0"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, override, expected):
    result = cli([*TINY, override], cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert "HYDRA_FULL_ERROR" not in result.stderr and not (tmp_path / "outputs").exists()


def test_plus_experiment_composes_the_experiment(tmp_path):
    result = cli(["+experiment=reproduce_nav", "--cfg", "job"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hvp: finite_difference" in result.stdout and "sampling: steps" in result.stdout


def test_a_config_error_is_refused_before_torch_is_imported(tmp_path):
    """The error path stays lean (a config error answers within a second or so on 2 cores):
    neither the Hydra plugins nor the checks import torch before the one line is printed."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['train', 'inner.lr=-1']\n"
        "try:\n"
        "    runpy.run_module('maml_hydra.train', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print(e.code, '|', 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.stdout.strip() == "error: inner.lr=-1.0 is not allowed: must be > 0 | False"


def test_a_checkpoint_config_from_before_baselines_were_keys_reads_as_what_ran():
    """Older checkpoints stored baseline flags and the keys as composed; read back, they hold
    the keys that ran."""
    from maml_hydra.checkpoint import config_from_yaml
    from maml_hydra.config import config_to_yaml

    old = OmegaConf.create(config_to_yaml(make_config()))
    old.baseline = {
        "name": "oracle",
        "meta_train": False,
        "oracle": True,
        "train": True,
        "adapt_at_eval": False,
    }
    cfg = config_from_yaml(OmegaConf.to_yaml(old))
    assert (cfg.env.oracle, cfg.inner.num_steps, cfg.eval.num_steps) == (True, 0, 0)
    assert cfg.train.iterations == 3 and cfg.baseline.name == "oracle"
    old.baseline = {"name": "random", "meta_train": False, "oracle": False, "train": False}
    assert config_from_yaml(OmegaConf.to_yaml(old)).train.iterations == 0


@pytest.mark.parametrize(
    "pair",
    [("ant", "ant_dir"), ("halfcheetah_dir", "halfcheetah_vel"), ("paper_ant", "paper_ant_dir")],
)
def test_experiments_of_one_family_differ_only_where_their_files_say(pair):
    """The experiment files build on conf/experiment_base/: two experiments of one base compose
    to the same values outside the keys their own files set (the env, and the paper presets'
    iteration counts, sampler and held-out goals)."""
    own = {"env", "eval.tasks", "train.iterations", "train.sampling", "train.episodes_per_task"}

    def flat(name):
        container = OmegaConf.to_container(compose_config([f"experiment={name}"], tiny=False))
        out = {}

        def walk(node, prefix):
            for key, value in node.items():
                path = f"{prefix}{key}"
                if isinstance(value, dict) and path not in own:
                    walk(value, path + ".")
                else:
                    out[path] = value

        walk(container, "")
        return out

    a, b = flat(pair[0]), flat(pair[1])
    differ = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert differ and differ <= own, differ


@pytest.mark.parametrize("family", ["ant", "ant_dir"])
@pytest.mark.parametrize("algorithm", ["trpo", "ppo", "promp"])
def test_the_ant_families_train_with_their_own_defaults(family, algorithm):
    """`env=ant algorithm=ppo` at its defaults is the Ant families' short run
    (conf/family_defaults/ant.yaml), whichever meta-optimizer: the family's inner step holds over
    the inner schema's, and the held-out protocol's steps follow it. Navigation keeps the
    schemas' defaults, and experiment=<family> trains exactly as env=<family>."""
    cfg = make_config([f"env={family}", f"algorithm={algorithm}"], tiny=False)
    trained = (
        cfg.policy.init_log_std,
        cfg.inner.lr,
        cfg.train.iterations,
        cfg.train.meta_batch_size,
        cfg.train.episodes_per_task,
        cfg.train.gae_lambda,
    )
    assert trained == (-1.0, 0.5, 100, 20, 10, 0.9)
    assert cfg.eval.lrs == [0.5, 0.25] and cfg.env.dynamics == "gymnasium"
    if algorithm == "promp":
        assert cfg.inner.estimator == Estimator.lvc  # the meta-optimizer's choice still holds
    nav = make_config([f"algorithm={algorithm}"], tiny=False)
    assert (nav.policy.init_log_std, nav.inner.lr, nav.train.gae_lambda) == (0.0, 0.1, 1.0)
    assert (nav.train.iterations, nav.train.episodes_per_task) == (100, 20)
    experiment = make_config([f"experiment={family}", f"algorithm={algorithm}"], tiny=False)
    # experiment_base/locomotion's checkpoint every 5 iterations is the only train key it adds
    assert replace(experiment.train, checkpoint_every=10) == cfg.train
    assert experiment.policy == cfg.policy
    assert experiment.inner == cfg.inner
