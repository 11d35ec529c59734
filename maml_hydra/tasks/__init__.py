"""Task families: batched torchrl environments that also sample their tasks."""

from maml_hydra.tasks.base import TaskFamily

__all__ = ["TaskFamily"]
