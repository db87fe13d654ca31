"""The nnU-Net trainer class name of every loss: the loss registry's, and nnU-Net's own stock trainer.

Read from :mod:`pcatools.loss_registry` on each use (a loss registered later has its trainer at
once); kept apart from :mod:`pcatools.nnunet.trainers`, which imports nnU-Net and torch, so that
naming a trainer needs neither.
"""

from __future__ import annotations

from pcatools.loss_registry import loss_entries

__all__ = ["STOCK", "trainer_names"]

STOCK = "dice_ce"
"""nnU-Net's own ``nnUNetTrainer`` (Dice + cross-entropy), the baseline; every other loss is the registry's."""


def trainer_names() -> dict[str, str]:
    """Loss name -> nnU-Net trainer class name: every registered loss (:mod:`pcatools.loss_registry`),
    then ``dice_ce``, nnU-Net's stock trainer (Dice + cross-entropy).

    Examples
    --------
    >>> trainer_names()["l1dfl"], trainer_names()[STOCK]
    ('nnUNetTrainerL1DFL', 'nnUNetTrainer')
    """
    return {**{e.name: e.trainer_name for e in loss_entries()}, STOCK: "nnUNetTrainer"}
