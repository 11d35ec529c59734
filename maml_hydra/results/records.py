"""The compact result file: one run's held-out evaluation as ``results export`` writes it
(``docs/results/<family>/<variant>_seed<seed>.json``) and ``results table`` reads it back.

The fields every file holds, and their types, are written here once: ``export`` checks what it
writes against them and ``table`` refuses, with one line naming the file and the field, a file
that parses as JSON but has another shape. An exported search trial (``trial<n>.json``) holds
its searched ``params`` and its ``objective`` as well.
"""

from __future__ import annotations

import json
from numbers import Real
from pathlib import Path

FIELDS: dict[str, type | tuple[type, ...]] = {
    "family": str,
    "variant": str,
    "seed": int,
    "commit": str,
    "config": str,  # the config that ran, as YAML
    "iterations": int,
    "env_steps": int,
    "train_wall_s": (int, float),
    "eval": dict,  # the held-out settings: tasks, episodes, step sizes, seed
    "returns": list,  # [gradient steps + 1][tasks]
}
TRIAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "params": dict,
    "objective": (int, float),
    "objective_step": int,
}


class RecordError(ValueError):
    """A result file that cannot be read, or has another shape than ``FIELDS``."""


def _kind(value) -> str:
    return type(value).__name__


def check(record, where: str | Path) -> dict:
    """``record`` itself if it has the compact format; else RecordError naming the field."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: not a result file (a JSON {_kind(record)}, not an object)")
    fields = {**FIELDS, **(TRIAL_FIELDS if "objective" in record else {})}
    for key, kind in fields.items():
        if key not in record:
            raise RecordError(f"{where}: not a result file (no {key!r})")
        if isinstance(record[key], bool) or not isinstance(record[key], kind):
            raise RecordError(f"{where}: {key!r} is a {_kind(record[key])}")
    returns = record["returns"]
    rows_ok = returns and all(isinstance(row, list) and row for row in returns)
    if not rows_ok or len({len(row) for row in returns}) != 1:
        raise RecordError(f"{where}: 'returns' is not a list of equal, non-empty rows per step")
    if not all(isinstance(v, Real) and not isinstance(v, bool) for row in returns for v in row):
        raise RecordError(f"{where}: 'returns' holds a value that is not a number")
    return record


def read(path: Path) -> dict:
    """The record in ``path``, checked; RecordError where it is corrupt or of another shape."""
    try:
        return check(json.loads(path.read_text()), path)
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    except OSError as err:
        raise RecordError(f"{path}: {err.strerror}") from None
