"""Dice losses: the paper's Dice Loss (eq. 1), its L1-weighted squared variant (eq. 11), and
``DiceLoss``, MONAI's ``DiceLoss`` with the paper's settings.

Reductions. The paper writes sums over the voxels ``i`` of a patch and ``1/2 sum_c`` over the
two classes; MONAI computes one Dice per (sample, class) (``batch=False``, its default and the
public code's setting) and takes the mean over samples and classes. For one sample the two are
identical; for a batch, MONAI's value is the mean of the per-patch eq. 1. With ``batch=True`` the
sums run over the whole batch instead.

Smoothing. Eq. 1 has a small ``epsilon`` in the denominator only. MONAI (and the public code)
add ``smooth_nr = smooth_dr = 1e-5`` to numerator and denominator, so that a class absent from
both prediction and ground truth scores Dice 1 (loss 0) instead of 0. ``dice_loss`` exposes both
constants; ``smooth_nr=0`` is eq. 1 verbatim.
"""

from __future__ import annotations

from typing import Any, Literal

from monai.losses import DiceLoss as MonaiDiceLoss
from torch import Tensor

from pcatools.losses._checks import check_probs_target

__all__ = ["dice_loss", "weighted_dice_loss", "DiceLoss"]

Reduction = Literal["mean", "none"]


def _spatial_dims(t: Tensor, batch: bool) -> list[int]:
    dims = list(range(2, t.ndim))
    return [0, *dims] if batch else dims


def _reduce(per_class: Tensor, reduction: str, batch: bool = False) -> Tensor:
    """``(B, C)`` per sample and class (``(C,)`` with ``batch``) -> mean over both, or ``(B,)`` mean over classes."""
    if reduction == "mean":
        return per_class.mean()
    if reduction == "none":
        if batch:
            raise ValueError("reduction='none' needs batch=False (one Dice per sample)")
        return per_class.mean(dim=1)
    raise ValueError(f"reduction must be 'mean' or 'none', found {reduction!r}")


def dice_loss(
    probs: Tensor,
    target: Tensor,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Dice Loss of eq. 1, averaged over the classes (and samples).

    .. math::
        \mathcal{L}_{Dice} = 1 - \frac{1}{C} \sum_{c} \frac{2\sum_i p_i(c) g_i(c) + \epsilon_{nr}}
        {\sum_i p_i(c) + \sum_i g_i(c) + \epsilon_{dr}}

    (eq. 1 has ``C = 2`` and ``epsilon_nr = 0``; the defaults are MONAI's and the public code's.)
    Equal to ``monai.losses.DiceLoss(softmax=True, to_onehot_y=True)`` on logits (tested).

    Parameters
    ----------
    probs : Tensor
        ``(B, C, *spatial)`` class probabilities (softmax output).
    target : Tensor
        One-hot ground truth of the same shape.
    smooth_nr, smooth_dr : float
        Constants added to numerator and denominator.
    batch : bool
        Sum over the batch too (one Dice per class) instead of one Dice per sample and class.
    reduction : {"mean", "none"}
        Scalar mean, or ``(B,)`` per-sample values (mean over classes; needs ``batch=False``).

    Examples
    --------
    One voxel of each class, predicted at 0.8 / 0.2: per class Dice = 2*0.8 / (1 + 1) = 0.8.

    >>> import torch
    >>> p = torch.tensor([[[0.8, 0.2], [0.2, 0.8]]])  # (B=1, C=2, 2 voxels)
    >>> g = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> round(float(dice_loss(p, g, smooth_nr=0.0, smooth_dr=0.0)), 6)
    0.2
    """
    check_probs_target(probs, target)
    target = target.to(probs.dtype)
    dims = _spatial_dims(probs, batch)
    inter = (probs * target).sum(dims)
    denom = probs.sum(dims) + target.sum(dims)
    dice = (2 * inter + smooth_nr) / (denom + smooth_dr)
    return _reduce(1 - dice, reduction, batch)


def weighted_dice_loss(
    probs: Tensor,
    target: Tensor,
    weights: Tensor,
    smooth: float = 1e-5,
    reduction: Reduction = "mean",
    batch: bool = False,
) -> Tensor:
    r"""L1-weighted Dice Loss with squared denominator (eq. 11), per sample and class, averaged.

    .. math::
        \mathcal{L}_{wDice} = 1 - \frac{2\sum_i w_i y_i p_i + \epsilon}{\sum_i w_i (y_i^2 + p_i^2) + \epsilon}

    computed for every sample and class and averaged over both (the paper's "1/2 sum_c" over
    the two classes; the public code's ``dice_score.mean()``). ``weights`` get no gradient.
    With all ``w_i = 1`` this is MONAI's ``DiceLoss(squared_pred=True)`` (tested); with any
    constant ``w`` it equals the plain squared Dice when ``smooth = 0``.

    Parameters
    ----------
    probs, target : Tensor
        ``(B, C, *spatial)`` probabilities and one-hot ground truth.
    weights : Tensor
        ``w_i`` (eq. 10), broadcastable to ``probs`` (e.g. ``(B, 1, *spatial)`` shared by classes).
    smooth : float
        ``epsilon``.
    reduction : {"mean", "none"}
        Scalar, or ``(B,)`` per-sample values (mean over classes; needs ``batch=False``).
    batch : bool
        Sum over the batch too (one Dice per class, as :func:`dice_loss` and MONAI's ``batch=True``)
        instead of one Dice per sample and class.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    >>> g = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> w = torch.tensor([[[3.0, 1.0]]])  # voxel 0 weighs 3, voxel 1 weighs 1
    >>> # class 0: (2*3*0.5) / (3*(1+0.25) + 1*0.25) = 3/4; class 1: (2*0.5) / (3*0.25 + 1.25) = 1/2
    >>> round(float(weighted_dice_loss(p, g, w, smooth=0.0)), 6)
    0.375
    """
    check_probs_target(probs, target)
    target = target.to(probs.dtype)
    w = weights.detach().to(probs.dtype)
    dims = _spatial_dims(probs, batch)
    inter = (w * target * probs).sum(dims)
    denom = (w * (target * target + probs * probs)).sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return _reduce(1 - dice, reduction, batch)


class DiceLoss(MonaiDiceLoss):
    """MONAI ``DiceLoss`` with the paper's settings (eq. 1): softmax over the channels,
    one-hot labels, background included, smooth 1e-5, one Dice per sample and class.

    ``forward(logits (B, C, *spatial), labels (B, 1, *spatial))``. Any MONAI argument can be
    overridden. Equals :func:`dice_loss` on ``softmax(logits)`` (tested).

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[[2.0, -2.0], [-2.0, 2.0]]])
    >>> labels = torch.tensor([[[0, 1]]])
    >>> float(DiceLoss()(logits, labels)) < 0.2
    True
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = True,
        softmax: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            include_background=include_background, to_onehot_y=to_onehot_y, softmax=softmax, **kwargs
        )
