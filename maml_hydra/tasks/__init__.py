"""Task families: batched torchrl environments that also sample their tasks."""

from maml_hydra.tasks.base import TaskFamily, family_class

__all__ = ["TaskFamily", "family_class"]
