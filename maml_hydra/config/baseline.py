"""The ``baseline`` group: the MAML paper's comparison methods."""

from __future__ import annotations

from dataclasses import dataclass

from maml_hydra.config.rules import Root, require


@dataclass
class BaselineConfig:
    """Which method of the MAML paper's comparison is trained (``baseline`` group). Each option
    under ``conf/baseline/`` is a ``# @package _global_`` file that sets, while the config is
    composed, exactly the keys of the other groups it changes; so the config that is logged,
    checkpointed and shown in TensorBoard is the one that ran. Only the name lives here."""

    name: str = "maml"  # maml, pretrained, oracle, random, or a user's own option

    def check(self, cfg: Root) -> None:
        require(bool(self.name), "baseline.name", self.name, "must be non-empty")
