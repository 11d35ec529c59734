"""Run logging: TensorBoard scalars (``train/``, ``eval/``, ``time/``, ``memory/``), config,
progress bar, a log line every ``train.log_every`` iterations and the run's closing summary
(stdout and ``train.log``, whatever the progress-bar setting)."""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from maml_hydra.config import flatten_config

log = logging.getLogger(__name__)


class Stopwatch:
    """Accumulates wall-clock seconds per named phase: ``with watch("sampling"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start


def peak_memory(device) -> dict[str, float]:
    """The process's peak resident memory so far (max RSS, GiB) and, on CUDA, the peak memory
    torch has allocated on the device."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    out = {"memory/peak_rss_gib": rss / 2**30}
    if torch.device(device).type == "cuda":
        out["memory/peak_cuda_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


class RunLogger:
    """One TensorBoard run in ``<run_dir>/tensorboard``, scalars at step = iteration (1-based).
    On resume from iteration k, ``purge_step=k+1`` makes TensorBoard drop the events a killed
    run wrote after its last checkpoint."""

    def __init__(
        self,
        run_dir: Path,
        cfg,
        start_iteration: int,
        total: int,
        progress: bool,
        log_every: int = 0,
    ) -> None:
        self.writer = SummaryWriter(
            log_dir=str(run_dir / "tensorboard"),
            purge_step=start_iteration + 1 if start_iteration else None,
        )
        self.config = flatten_config(cfg)
        if start_iteration == 0:
            rows = "\n".join(f"| {k} | {v} |" for k, v in self.config.items())
            self.writer.add_text("config", "| key | value |\n|---|---|\n" + rows, 0)
        self.bar = tqdm(
            total=total,
            initial=start_iteration,
            disable=not progress,
            desc="meta-train",
            unit="it",
            dynamic_ncols=True,
        )
        self.total, self.log_every = total, log_every
        self.start_iteration, self.start_time = start_iteration, time.perf_counter()
        self.exits = ExitStack()
        if progress:  # log lines above the bar, not through it
            self.exits.enter_context(logging_redirect_tqdm())

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def progress(self, values: dict[str, float]) -> None:
        self.bar.set_postfix(
            {k.split("/")[-1]: f"{v:.2f}" for k, v in values.items()}, refresh=False
        )
        self.bar.update(1)

    def line(self, iteration: int, metrics: dict[str, float]) -> None:
        """Every ``log_every`` iterations (and at the last): the iteration, the training returns
        before and after adaptation, the meta-step's KL where the meta-optimizer has one,
        seconds per iteration and the time left, from this process's mean iteration."""
        if not self.log_every or (iteration % self.log_every and iteration != self.total):
            return
        done = iteration - self.start_iteration
        mean = (time.perf_counter() - self.start_time) / max(done, 1)
        eta = timedelta(seconds=round(mean * (self.total - iteration)))
        kl = metrics.get("train/kl")
        success = ""
        if "train/success_after_adaptation" in metrics:
            before = metrics["train/success_before_adaptation"]
            after = metrics["train/success_after_adaptation"]
            success = f"; success {before:.2f} before, {after:.2f} after"
        log.info(
            "iteration %d/%d: return %.2f before adaptation, %.2f after%s%s; %.2f s/it, %s left",
            iteration,
            self.total,
            metrics["train/return_before_adaptation"],
            metrics["train/return_after_adaptation"],
            success,
            "" if kl is None else f"; KL {kl:.4f}",
            metrics["time/iteration"],
            eta,
        )

    def hparams(self, final_metrics: dict[str, float]) -> None:
        hp = {k: v for k, v in self.config.items() if isinstance(v, int | float | str | bool)}
        self.writer.add_hparams(
            hp, {f"hparam/{k}": v for k, v in final_metrics.items()}, run_name="."
        )

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        self.exits.close()


def closing_summary(
    run_dir: Path, summary: dict, lrs: list[float] | None, gain: str | None = None
) -> str:
    """What a finished run found and where: the held-out returns after 0..K gradient steps
    (mean ± standard error over the held-out tasks), the first step's gain paired per task
    (``gain``, as ``evaluator.paired_gain`` writes it), the run directory and the next
    commands."""
    means, errs = summary["return_mean"], summary["return_stderr"]
    tasks = len(summary["return_per_task"][0])
    lines = [f"held-out return over {tasks} tasks (mean ± s.e. over tasks), by gradient steps:"]
    for k, (m, e) in enumerate(zip(means, errs, strict=True)):
        step = "" if not k or lrs is None else f" (step size {lrs[k - 1]:g})"
        lines.append(f"  {k} step{'' if k == 1 else 's'}{step}: {m:.2f} ± {e:.2f}")
    if gain is not None:
        lines.append(f"gain of the first step, paired per task (± s.e. over tasks): {gain}")
    if "success_mean" in summary:
        rates = zip(summary["success_mean"], summary["success_stderr"], strict=True)
        cells = " / ".join(f"{m:.2f} ± {e:.2f}" for m, e in rates)
        lines.append(f"held-out success rate after 0..K steps (mean ± s.e. over tasks): {cells}")
    if "metaworld_protocol" in summary:
        protocol = summary["metaworld_protocol"]
        lines.append(
            f"Meta-World's own evaluation ({protocol['rounds']} rounds of {protocol['envs']} "
            f"envs): success rate {protocol['success_rate']:.3f}, "
            f"mean return {protocol['mean_return']:.1f}"
        )
    lines += [
        f"run directory: {run_dir} (eval_results.json, checkpoints/last.pt, tensorboard/)",
        f"next: tensorboard --logdir {run_dir / 'tensorboard'}",
        f"      python -m maml_hydra.evaluate {run_dir}   # the adaptation report, in eval/",
    ]
    return "\n".join(lines)
