"""``build_loss(name)``: the study's three losses with the paper's settings."""

from __future__ import annotations

from typing import Any

from torch import nn

from pcatools.losses.dice import DiceLoss
from pcatools.losses.dice_focal import DiceFocalLoss
from pcatools.losses.l1dfl import L1DiceFocalLoss
from pcatools.vocabulary import LOSSES, loss_key

__all__ = ["build_loss", "LOSS_NAMES"]

LOSS_NAMES = LOSSES
"""The losses ``build_loss`` builds: the study's (:data:`pcatools.vocabulary.LOSSES`)."""


def build_loss(name: str, **overrides: Any) -> nn.Module:
    """A loss module taking ``(logits (B, 2, *spatial), labels (B, 1, *spatial))``.

    * ``"dice"`` (DL, eq. 1): :class:`~pcatools.losses.dice.DiceLoss` (MONAI, softmax, one-hot
      labels, background included).
    * ``"dice_focal"`` (DFL, eq. 3): :class:`~pcatools.losses.dice_focal.DiceFocalLoss`
      (``gamma = 2``, ``alpha = 1``, softmax focal; ``focal="sigmoid"`` for MONAI's own).
    * ``"l1dfl"`` (L1DFL, eq. 12): :class:`~pcatools.losses.l1dfl.L1DiceFocalLoss`
      (``bin_width = 0.1``, ``gamma = 2``, two classes).

    Names are case-insensitive; ``DL``, ``DFL``, ``L1DFL`` are accepted. ``overrides`` go to the
    constructor.

    Examples
    --------
    >>> build_loss("l1dfl")
    L1DiceFocalLoss(bin_width=0.1, gamma=2.0, convention='paper', smooth=1e-05, histogram='batch', fused=True)
    >>> type(build_loss("DFL")).__name__
    'DiceFocalLoss'
    """
    key = loss_key(name)
    if key == "dice":
        return DiceLoss(**overrides)
    if key == "dice_focal":
        params: dict[str, Any] = {"gamma": 2.0}
        params.update(overrides)
        return DiceFocalLoss(**params)
    if key == "l1dfl":
        params = {"bin_width": 0.1, "gamma": 2.0, "num_classes": 2}
        params.update(overrides)
        return L1DiceFocalLoss(**params)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSS_NAMES} (or DL, DFL, L1DFL)")
