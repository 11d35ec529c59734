"""Run logging: TensorBoard scalars (``train/``, ``eval/``, ``time/``, ``memory/``), config,
progress bar."""

from __future__ import annotations

import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from maml_hydra.config import flatten_config


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
        self, run_dir: Path, cfg, start_iteration: int, total: int, progress: bool
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

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def progress(self, values: dict[str, float]) -> None:
        self.bar.set_postfix(
            {k.split("/")[-1]: f"{v:.2f}" for k, v in values.items()}, refresh=False
        )
        self.bar.update(1)

    def hparams(self, final_metrics: dict[str, float]) -> None:
        hp = {k: v for k, v in self.config.items() if isinstance(v, int | float | str | bool)}
        self.writer.add_hparams(
            hp, {f"hparam/{k}": v for k, v in final_metrics.items()}, run_name="."
        )

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
