"""Checkpoints and the run directory they live in: written atomically, loaded with
``weights_only=True``, failing with one line; a run directory is owned by one process."""

from __future__ import annotations

import fcntl
import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from maml_hydra.config import (
    AlgorithmConfig,
    Config,
    ConfigError,
    EnvConfig,
    _subclasses,
    flatten_config,
)
from maml_hydra.rundir import checkpoint_path, continues

# What every checkpoint holds (``Experiment.state_dict``).
KEYS = ("format", "iteration", "env_steps", "learner", "meta_optimizer", "rng", "config")
# Config keys that may differ between a run and its resumption.
RESUMABLE_KEYS = (
    "resume",
    "train.iterations",
    "train.log_every",
    "progress",
    "device",
    "env.threads",  # mujoco.rollout's threads split independent simulations: no number changes
    "keep_freed_memory",  # where freed memory goes changes no number
)


# ---------------------------------------------------------------- configs read back
def config_from_yaml(text: str, modules: list[str] | None = None) -> Config:
    """A typed Config from YAML written by ``OmegaConf.to_yaml`` (as in a checkpoint). The
    ``env`` and ``algorithm`` schemas are the subclasses whose ``_target_`` the YAML names. An
    env family defined outside the package uses the base EnvConfig (its settings in params),
    and with ``modules`` given its module must be one of them: a checkpoint then names only
    classes it may import, checked here before anything imports them."""
    raw = _legacy_baseline(OmegaConf.create(text))
    typed = OmegaConf.structured(Config)
    for key, base in (("env", EnvConfig), ("algorithm", AlgorithmConfig)):
        target = raw[key]["_target_"]
        schema = next(
            (c for c in _subclasses(base) if getattr(c, "_target_", None) == target), None
        )
        if schema is None and base is EnvConfig:
            module = str(target).rpartition(".")[0]
            if modules is not None and module not in modules:
                raise ConfigError(
                    f"env._target_={target!r} is not allowed: not a task family of maml_hydra; "
                    f"name its module to allow it (modules=[{module}])"
                )
            schema = EnvConfig
        if schema is None:
            raise ConfigError(
                f"{key}._target_={target!r} is not allowed: no {base.__name__} schema has it"
            )
        typed[key] = OmegaConf.structured(schema)
    return OmegaConf.to_object(OmegaConf.merge(typed, raw))


def _legacy_baseline(raw: DictConfig) -> DictConfig:
    """Checkpoints written before baselines were applied in the config kept the baseline's
    effects as flags; turn them into the keys that ran."""
    baseline = raw.get("baseline", {})
    flags = {
        k: baseline.pop(k)
        for k in ("meta_train", "oracle", "train", "adapt_at_eval")
        if k in baseline
    }
    if not flags.get("meta_train", True):
        raw.inner.num_steps = 0
    if flags.get("oracle", False):
        raw.env.oracle = True
    if not flags.get("adapt_at_eval", True):
        raw.eval.num_steps = 0
    if not flags.get("train", True):
        raw.train.iterations = 0
    return raw


@functools.cache
def source_commit() -> str | None:
    """The git commit of this package's code, with ``+dirty`` if tracked files differ from it
    (None outside a git checkout); looked up once per process."""
    git = ["git", "-C", str(Path(__file__).resolve().parent)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        status = ["status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run([*git, *status], capture_output=True, text=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit this run, or a run directory
    that another run owns; the message names the file or directory."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename: a reader
    (or a run killed mid-write) sees either the old checkpoint or the new one, never half.
    Each write has its own temporary name, so a write from a signal handler that interrupts
    another one cannot mix with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary file and a rename: never half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def remove_stale_writes(path: Path) -> None:
    """Delete the temporary files of writes to ``path`` that a killed process left behind;
    only the run directory's owner calls this (see ``claim_run_dir``)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A maml-hydra checkpoint, checked: every key present and finite parameters."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {type(err).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != 1:
        raise CheckpointError(f"{path}: not a maml-hydra checkpoint")
    missing = [k for k in KEYS if k not in state]
    if missing or not isinstance(state["config"], str):
        raise CheckpointError(
            f"{path}: not a maml-hydra checkpoint (no {missing[0] if missing else 'config'})"
        )
    groups = [*state["learner"].values(), state.get("obs_normalizer") or {}]
    for group in groups:
        for name, value in group.items():
            if torch.is_tensor(value) and not bool(torch.isfinite(value).all()):
                raise CheckpointError(
                    f"{path}: parameter {name} is not finite (a diverged run); "
                    "it cannot be resumed or evaluated"
                )
    return state


def checkpoint_config(state: dict[str, Any], path: Path, modules: list[str] | None = None):
    """The typed config a checkpoint (loaded from ``path``) holds; with ``modules``, its task
    family must be the package's or in one of them (``config.config_from_yaml``)."""
    try:
        return config_from_yaml(state["config"], modules)
    except ConfigError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except Exception as err:  # OmegaConf's: a key or value this version does not know
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{path}: its config does not fit this version: {first}") from None


def check_resumable(state: dict[str, Any], cfg: Config, path: Path) -> None:
    """A run resumed from ``state`` (loaded from ``path``) may change only RESUMABLE_KEYS."""
    saved = flatten_config(checkpoint_config(state, path))
    current = flatten_config(cfg)
    diffs = [
        f"{k} (checkpoint {saved.get(k)!r}, now {current.get(k)!r})"
        for k in sorted(set(saved) | set(current))
        if k not in RESUMABLE_KEYS and saved.get(k) != current.get(k)
    ]
    if diffs:
        raise CheckpointError(f"{path}: written with a different config: {'; '.join(diffs)}")


# Run directories this process owns: their open descriptors hold the locks until it exits.
_OWNED: dict[Path, int] = {}


def claim_run_dir(run_dir: str | os.PathLike) -> None:
    """Own ``run_dir`` (creating it) for the rest of this process: an exclusive ``flock`` on the
    directory itself, so that nothing is written into it to take the lock, and the kernel
    drops it when the process ends, even by SIGKILL. A second run into the same directory gets
    a CheckpointError. Idempotent within a process."""
    path = Path(run_dir).resolve()
    if path in _OWNED:
        return
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CheckpointError(
            f"{run_dir}: another run is writing to this directory; wait for it to end or "
            "choose another hydra.run.dir"
        ) from None
    _OWNED[path] = fd


def prepare_run_dir(cfg: Config, run_dir: Path) -> None:
    """Before a training writes anything (``hydra_glue``'s callback, ``cfg`` checked): a
    checkpoint in ``run_dir`` (resumed, or continued as a requeued job does) must load and fit
    ``cfg``; then this process owns the directory, so that a second run into it is refused.
    Raises CheckpointError, having changed nothing."""
    if run_dir.is_file():
        raise CheckpointError(f"{run_dir}: is a file, not a run directory")
    checkpoint = checkpoint_path(run_dir)
    if continues(cfg.resume, run_dir):
        state = load_checkpoint(checkpoint)
        check_resumable(state, cfg, checkpoint)
        _CHECKED[checkpoint.resolve()] = (checkpoint.stat().st_mtime_ns, state)
    claim_run_dir(run_dir)


# checkpoints loaded by the start-up check, kept for the run that resumes them in this process
_CHECKED: dict[Path, tuple[int, dict[str, Any]]] = {}


def load_resumed(path: str | os.PathLike) -> tuple[dict[str, Any], bool]:
    """The checkpoint a run resumes from, and whether it was checked against the run's config
    already: the one ``prepare_run_dir`` loaded and checked in this process, if the file has not
    changed since; else read now, unchecked (a job on another machine, or a run built without
    the command line)."""
    key = Path(path).resolve()
    mtime, state = _CHECKED.pop(key, (None, None))
    if state is not None and key.is_file() and key.stat().st_mtime_ns == mtime:
        return state, True
    return load_checkpoint(path), False
