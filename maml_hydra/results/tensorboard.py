"""A run's TensorBoard scalars, read back from ``<run>/tensorboard``."""

from __future__ import annotations

import logging
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tb_logging


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the run as [(iteration, value)], all events kept ({} when the run
    has no event file). A resumed run's events from after its checkpoint, written before it was
    stopped, are dropped: the resumed writer marks them (its purge step) and TensorBoard purges
    them with a warning, expected here. TensorBoard's warnings are not shown during the read
    (all of them: its logger has no finer switch)."""
    events = Path(run_dir) / "tensorboard"
    if not list(events.glob("events.out.tfevents.*")):
        return {}
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
    tb_log = tb_logging.get_logger()
    level = tb_log.level
    tb_log.setLevel(logging.ERROR)
    try:
        acc.Reload()
    finally:
        tb_log.setLevel(level)
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def values(tags: dict[str, list[tuple[int, float]]], tag: str) -> list[float]:
    """The values of one tag in step order ([] when the run never logged it)."""
    return [v for _, v in tags.get(tag, [])]


def training_log(run_dir: Path) -> tuple[float, dict]:
    """The seconds of meta-training (the sum of ``time/iteration`` to the millisecond, so that
    a run of a few fast iterations does not round to 0; 0 if it never trained) and
    the learning curve per meta-iteration: cumulative env steps and the training batch's mean
    return before and after adaptation (values rounded to 3 decimals)."""
    tags = scalars(run_dir)
    if "time/iteration" not in tags:
        return 0.0, {}

    def rounded(tag: str) -> list[float]:
        return [round(v, 3) for v in values(tags, tag)]

    curve = {
        "env_steps": [int(v) for v in values(tags, "train/env_steps")],
        "return_before": rounded("train/return_before_adaptation"),
        "return_after": rounded("train/return_after_adaptation"),
    }
    return round(sum(values(tags, "time/iteration")), 3), curve


def eval_at(run_dir: Path, iteration: int) -> list[float] | None:
    """The held-out returns ``eval/return_step_k`` logged at one iteration, k = 0..K (None if
    the run did not evaluate there)."""
    tags = scalars(run_dir)
    names = [t for t in tags if t.startswith("eval/return_step_")]
    names.sort(key=lambda t: int(t.rsplit("_", 1)[1]))
    out = []
    for name in names:
        at = [v for step, v in tags[name] if step == iteration]
        if not at:
            return None
        out.append(at[0])
    return out or None
