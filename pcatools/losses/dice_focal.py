"""Dice Focal Loss (paper eq. 3) and ``DiceFocalLoss``, MONAI's with the paper's settings.

Paper and public code differ in the focal term: eq. 2 uses the softmax probabilities ``p`` of
eq. 1 (``focal="softmax"``, the default here), while the public code trained its DFL with
``monai.losses.DiceFocalLoss(to_onehot_y=True, softmax=True)``, whose focal term applies a
sigmoid to every logit (``focal="sigmoid"``, MONAI's own behaviour). See ``focal.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from monai.losses import DiceFocalLoss as MonaiDiceFocalLoss
from monai.losses import FocalLoss as MonaiFocalLoss
from torch import Tensor

from pcatools.losses.dice import dice_loss
from pcatools.losses.focal import focal_loss

__all__ = ["dice_focal_loss", "DiceFocalLoss"]


def dice_focal_loss(
    probs: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    r"""Dice Focal Loss of eq. 3: :math:`\mathcal{L}_{DFL} = \mathcal{L}_{Dice} + \mathcal{L}_{Focal}`.

    Dice of eq. 1 (:func:`~pcatools.losses.dice.dice_loss`) plus the softmax Focal Loss of eq. 2
    with ``alpha = 1`` (:func:`~pcatools.losses.focal.focal_loss`, MONAI mean reduction).

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[[0.5], [0.5]]])
    >>> g = torch.tensor([[[0.0], [1.0]]])
    >>> # Dice: class 0 -> 1e-5 / (0.5 + 1e-5), class 1 -> (1 + 1e-5) / (1.5 + 1e-5); focal 0.08664
    >>> round(float(dice_focal_loss(p, g)), 4)
    0.7533
    """
    return dice_loss(probs, target, smooth_nr, smooth_dr, reduction=reduction) + focal_loss(
        probs, target, gamma, reduction=reduction
    )


class DiceFocalLoss(MonaiDiceFocalLoss):
    """MONAI ``DiceFocalLoss`` with the paper's settings (eq. 3): softmax, one-hot labels,
    background included, ``gamma = 2``, ``alpha = 1`` (MONAI ``alpha=None``).

    ``forward(logits (B, C, *spatial), labels (B, 1, *spatial))``.

    Parameters
    ----------
    focal : {"softmax", "sigmoid"}
        ``"softmax"`` (default): the focal term uses the softmax probabilities, as eq. 2 reads
        (``monai.losses.FocalLoss(use_softmax=True)``); equals :func:`dice_focal_loss` (tested).
        ``"sigmoid"``: MONAI's own ``DiceFocalLoss`` unchanged, as trained by the public code.
    **kwargs
        Any other ``monai.losses.DiceFocalLoss`` argument.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[[0.0], [0.0]]])  # p = 0.5 / 0.5
    >>> labels = torch.tensor([[[1]]])
    >>> round(float(DiceFocalLoss()(logits, labels)), 4)
    0.7533
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = True,
        softmax: bool = True,
        gamma: float = 2.0,
        focal: Literal["softmax", "sigmoid"] = "softmax",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            include_background=include_background,
            to_onehot_y=to_onehot_y,
            softmax=softmax,
            gamma=gamma,
            **kwargs,
        )
        if focal not in ("softmax", "sigmoid"):
            raise ValueError(f"focal must be 'softmax' or 'sigmoid', found {focal!r}")
        self.focal_kind = focal
        if focal == "softmax":
            self.focal = MonaiFocalLoss(
                include_background=include_background,
                to_onehot_y=False,
                gamma=gamma,
                weight=kwargs.get("weight"),
                alpha=kwargs.get("alpha"),
                reduction=kwargs.get("reduction", "mean"),
                use_softmax=True,
            )
