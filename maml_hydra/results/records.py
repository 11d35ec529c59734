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
# fields only some runs have: the held-out success rate (Meta-World), laid out as "returns";
# Meta-World's own evaluation of the final policy (eval_results.json's); and, for the Table 4
# reproduction (``results seeds --export``), the original evaluation script's goals and the
# held-out returns at an earlier iteration
OPTIONAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "success": list,  # [gradient steps + 1][tasks], each in [0, 1]
    "metaworld_protocol": dict,
    "original": dict,  # {"settings", "tasks", "returns": [gradient steps + 1][tasks]}
    "at": dict,  # {"iteration", "return_mean": [gradient steps + 1]}
}
TRIAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "params": dict,
    "objective": (int, float),
    "objective_step": int,
}


VARIANT_ORDER = ("maml", "pretrained", "random", "oracle")  # how tables list the variants


def ordered(variants) -> list[str]:
    """maml first, oracle last; maml_trpo, maml_ppo, ... (one per algorithm) with maml."""

    def key(variant: str) -> tuple[int, str]:
        base = variant.split("_")[0]
        return (VARIANT_ORDER.index(base) if base in VARIANT_ORDER else 99, variant)

    return sorted(variants, key=key)


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
    for key, kind in OPTIONAL_FIELDS.items():
        if key in record and (isinstance(record[key], bool) or not isinstance(record[key], kind)):
            raise RecordError(f"{where}: {key!r} is a {_kind(record[key])}")
    returns = record["returns"]
    check_table(returns, where, "'returns'")
    if "success" in record:
        success = record["success"]
        same = [len(row) if isinstance(row, list) else -1 for row in success]
        if same != [len(row) for row in returns]:
            raise RecordError(f"{where}: 'success' is not laid out as 'returns' (steps x tasks)")
        numbers = [v for row in success for v in row]
        if not all(_number(v) for v in numbers):
            raise RecordError(f"{where}: 'success' holds a value that is not a number")
        if not all(0 <= v <= 1 for v in numbers):
            raise RecordError(f"{where}: 'success' holds a rate outside [0, 1]")
    if "metaworld_protocol" in record:
        rate = record["metaworld_protocol"].get("success_rate")
        if isinstance(rate, bool) or not isinstance(rate, Real) or not 0 <= rate <= 1:
            raise RecordError(f"{where}: 'metaworld_protocol' has no success rate in [0, 1]")
    if "original" in record:
        original = record["original"]
        if not isinstance(original.get("returns"), list):
            raise RecordError(f"{where}: 'original' has no 'returns'")
        check_table(original["returns"], where, "'original.returns'")
        if len(original["returns"]) != len(returns):
            raise RecordError(f"{where}: 'original.returns' has another number of steps")
    if "at" in record:
        at, means = record["at"], record["at"].get("return_mean")
        if isinstance(at.get("iteration"), bool) or not isinstance(at.get("iteration"), int):
            raise RecordError(f"{where}: 'at' has no iteration")
        numbers = isinstance(means, list) and all(_number(v) for v in means)
        if not numbers or len(means) != len(returns):
            raise RecordError(f"{where}: 'at.return_mean' is not one number per step")
    return record


def _number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_table(rows, where, name: str) -> None:
    """``rows`` is [gradient steps + 1][tasks] of numbers, every row as long."""
    rows_ok = rows and all(isinstance(row, list) and row for row in rows)
    if not rows_ok or len({len(row) for row in rows}) != 1:
        raise RecordError(f"{where}: {name} is not a list of equal, non-empty rows per step")
    if not all(_number(v) for row in rows for v in row):
        raise RecordError(f"{where}: {name} holds a value that is not a number")


def step_means(rows: list[list[float]]) -> list[float]:
    """The mean over tasks after each gradient step."""
    return [sum(row) / len(row) for row in rows]


def fail(message: str) -> None:
    """Stop a results command with one line."""
    raise SystemExit(f"error: {message}")


def read_list(files: str) -> list[dict]:
    """The records of a comma-separated list of result files; one line and exit where one is
    corrupt or of another shape."""
    try:
        return [read(Path(p)) for p in files.split(",") if p]
    except RecordError as err:
        fail(str(err))


def read(path: Path) -> dict:
    """The record in ``path``, checked; RecordError where it is corrupt or of another shape."""
    try:
        return check(json.loads(path.read_text()), path)
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    except OSError as err:
        raise RecordError(f"{path}: {err.strerror}") from None


def print_budgets(records: list[dict]) -> None:
    """The runs' budgets, one row each: iterations, env steps, training wall time, commit."""
    print("\n| run | iterations | env steps | training wall time | commit |")
    print("|---|---|---|---|---|")
    for r in sorted(records, key=lambda r: (ordered([r["variant"]]), r["variant"], r["seed"])):
        wall = f"{r['train_wall_s'] / 60:.0f} min" if r["train_wall_s"] else "-"
        print(
            f"| {r['variant']} seed {r['seed']} | {r['iterations']} | {r['env_steps']:,} | "
            f"{wall} | {r['commit'][:7]} |"
        )
