"""The rules a config must meet on this machine, beyond its schemas' own (``maml_hydra.config``,
torch-free): the task family it names imports and is one, with what the config asks of it;
MuJoCo Warp is installed where it asks for it; Meta-World's interpreter is, and knows the task,
where it asks for Meta-World; the device it names is visible. Torch and the
family are imported only when a rule needs them."""

from __future__ import annotations

from maml_hydra.config import Config, EvaluateConfig, MetaWorldConfig, Physics, require


def check_runtime(cfg: Config | EvaluateConfig) -> None:
    """The rules that need torch or the task family's class (after the schemas' own)."""
    if isinstance(cfg, Config) and cfg.needs_family():
        from maml_hydra.tasks import family_class

        cfg.check_family(family_class(cfg.env._target_))
    if isinstance(cfg, Config) and getattr(cfg.env, "physics", None) == Physics.warp:
        from maml_hydra.tasks.physics import import_warp

        try:
            import_warp()
        except ImportError:
            rule = 'MuJoCo Warp is not installed: pip install -e ".[gpu]"'
            require(False, "env.physics", Physics.warp.value, rule)
    if isinstance(cfg, Config) and isinstance(cfg.env, MetaWorldConfig):
        from maml_hydra.tasks.meta_world import MetaWorldError, known_tasks

        try:
            names = known_tasks(cfg.env.python)
        except MetaWorldError as err:
            require(False, "env", cfg.env.name, str(err))
        if cfg.env.task is not None:
            near = [n for n in names if n.split("-")[0] in cfg.env.task] or names[:3]
            rule = f"not a Meta-World v3 task (e.g. {', '.join(near[:3])})"
            require(cfg.env.task in names, "env.task", cfg.env.task, rule)
    if cfg.device == "cuda":
        import torch

        require(torch.cuda.is_available(), "device", cfg.device, "no CUDA GPU is visible")


def check_config(cfg: Config) -> None:
    """Every rule of a run's config: its schemas', then ``check_runtime``'s."""
    cfg.check()
    check_runtime(cfg)
