"""Checkpoints: written atomically, loaded with ``weights_only=True``, failing with one line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit this run; the message names it."""


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


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
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
    return state
