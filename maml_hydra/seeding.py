"""Named random streams: every consumer of randomness gets its own seeded generator."""

from __future__ import annotations

import hashlib

import torch


def stream_seed(stream: str, seed: int) -> int:
    """A 63-bit seed for the stream ``stream`` of run seed ``seed``. Different names give
    unrelated streams, so e.g. training and evaluation tasks never come from the same draws."""
    digest = hashlib.sha256(f"{stream}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(stream: str, seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(stream, seed))
