"""Statistics over seeds. The seed is the unit: a run's tasks share its policy and are not
independent samples, so a standard error is over seeds, and over tasks only where there is one
seed (and then says so)."""

from __future__ import annotations

import math
import statistics

import torch

# Student t quantiles (two-sided 95%) by degrees of freedom, for intervals over a few seeds.
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def t95(dof: int) -> float:
    """The two-sided 95% Student t quantile for ``dof`` degrees of freedom (rounded down to a
    conservative tabled value past 9)."""
    return T95.get(dof, 2.23 if dof < 15 else 2.13 if dof < 30 else 2.0)


def mean_se(values) -> tuple[float, float | None]:
    """Mean and standard error of the mean (None for a single value)."""
    values = [float(v) for v in values]
    if len(values) < 2:
        return values[0], None
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def steps_text(k: int) -> str:
    """A number of gradient steps in words: "1 step", "0 steps", "3 steps"."""
    return f"{k} step" if k == 1 else f"{k} steps"


def fmt(mean: float, se: float | None) -> str:
    """ "mean ± s.e.", or "mean (1 seed)" where there is no standard error."""
    return f"{mean:.2f} ± {se:.2f}" if se is not None else f"{mean:.2f} (1 seed)"


def fmt_paired(mean: float, se: float, unit: str) -> str:
    """A paired difference as "+mean ± s.e. (mean / s.e., n = unit)"."""
    ratio = f"{mean / se:.1f} s.e." if se else "no spread"
    return f"{mean:+.2f} ± {se:.2f} ({ratio}, n = {unit})"


def paired(a: torch.Tensor, b: torch.Tensor, seeds: int = 1) -> tuple[float, float, str]:
    """Mean and standard error of a - b, and what the error is over. ``a`` and ``b`` hold
    ``seeds`` equal blocks of tasks, seed after seed: with several seeds the unit is the seed
    (its mean difference over the tasks), with one the task."""
    diff = (a - b).reshape(seeds, -1).double()
    if seeds > 1:
        per_seed = diff.mean(1)
        return per_seed.mean().item(), (per_seed.std() / seeds**0.5).item(), f"{seeds} seeds"
    return diff.mean().item(), (diff.std() / diff.numel() ** 0.5).item(), f"{diff.numel()} tasks"


def paired_lists(pairs: list[tuple[float, float]]) -> tuple[float, float, int]:
    """Mean and standard error over pairs (one per seed) of this - other, and how many gained."""
    diffs = [a - b for a, b in pairs]
    mean, se = mean_se(diffs)
    return mean, se, sum(d > 0 for d in diffs)
