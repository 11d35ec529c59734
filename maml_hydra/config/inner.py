"""The ``inner`` group: the adaptation step's schema."""

from __future__ import annotations

from dataclasses import dataclass

from maml_hydra.config.choices import Estimator
from maml_hydra.config.rules import Root, at_least, positive


@dataclass
class InnerConfig:
    """The inner (adaptation) update (``inner`` group): REINFORCE (VPG) steps, Finn et al.
    2017 eq. (1), each on fresh support data."""

    name: str = "vpg"
    # Gradient steps per task in meta-training; 0 = no adaptation (baseline=pretrained and
    # baseline=oracle set it).
    num_steps: int = 1
    lr: float = 0.1  # inner step size (paper: 0.1); with learn_lr, every step size's start
    first_order: bool = False  # stop gradients through the inner gradient (FOMAML)
    # The inner objective: reinforce, dice or lvc (algorithm=promp sets lvc)
    estimator: Estimator = Estimator.reinforce
    # Meta-SGD (Li et al. 2017): a learned step size per policy parameter, initialised to lr;
    # the evaluator then adapts with the learned step sizes, not eval.lrs.
    learn_lr: bool = False

    def check(self, cfg: Root) -> None:
        at_least("inner.num_steps", self.num_steps, 0)
        positive("inner.lr", self.lr)
