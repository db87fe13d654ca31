"""Focal Loss (paper eq. 2) and how it maps onto MONAI's ``FocalLoss``.

Reading of eq. 2. As printed, eq. 2 sums ``(1 - p_i(c))^gamma log p_i(c)`` over both classes
without the ground truth; we read ``p_i(c)`` the standard way (Lin et al., the paper's [24]):
only the true class of each voxel contributes (``g_i(c) = 1``), i.e. the softmax focal loss
``-(1 - p_t)^gamma log p_t`` with ``p_t`` the probability of the true class, the same ``p`` as
in eq. 1 and eq. 11. This is ``monai.losses.FocalLoss(use_softmax=True)`` and the focal term of
the public code's L1DFL (tested).

``alpha``. The paper's ``alpha = 1`` weighs every class by 1, i.e. no class balancing. That is
MONAI's ``alpha=None``; MONAI's *scalar* ``alpha`` means ``(1 - alpha)`` for the background and
``alpha`` for the others, so MONAI ``alpha=1.0`` would drop the background: do not pass it.
Here a scalar ``alpha`` multiplies every class, a sequence gives one ``alpha_c`` per class.

Reductions. Eq. 2 is a sum over the voxels with ``1/2 sum_c``: ``reduction="sum"``. MONAI (and
the public code) take the mean over batch, classes and voxels: ``reduction="mean"`` = eq. 2
divided by the number of voxels in the batch.

The sigmoid variant (``kind="sigmoid"``) treats every channel as its own binary problem,
``p_t = p`` where ``g = 1`` and ``1 - p`` where ``g = 0``; this is what MONAI's
``DiceFocalLoss(softmax=True)`` computes for its focal term (its ``FocalLoss`` is built without
``use_softmax``), i.e. the Dice Focal Loss the public code trained as DFL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from pcatools.losses._checks import check_probs_target

__all__ = ["FocalLoss", "focal_loss"]

_TINY = 1e-30


def focal_loss(
    probs: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | None = None,
    reduction: Literal["mean", "sum", "none"] = "mean",
    kind: Literal["softmax", "sigmoid"] = "softmax",
) -> Tensor:
    r"""Focal Loss of eq. 2 on probabilities.

    .. math::
        \mathcal{L}_{Focal} = -\frac{1}{C} \sum_{c} \sum_i \alpha_c\, g_i(c)\, (1 - p_i(c))^{\gamma} \log p_i(c)

    Parameters
    ----------
    probs : Tensor
        ``(B, C, *spatial)`` probabilities (softmax output; per-channel sigmoid for ``kind="sigmoid"``).
    target : Tensor
        One-hot ground truth, same shape.
    gamma : float
        Focusing parameter (paper: 2).
    alpha : float or sequence of float, optional
        Class weights ``alpha_c``; ``None`` (= the paper's ``alpha = 1``) weighs all classes 1.
    reduction : {"mean", "sum", "none"}
        ``"mean"``: MONAI's mean over batch, classes, voxels. ``"sum"``: eq. 2 as printed
        (sum over voxels, mean over classes). ``"none"``: ``(B,)`` per-sample means.
    kind : {"softmax", "sigmoid"}
        See the module docstring.

    Examples
    --------
    One voxel, true class 1 predicted at 0.5: ``-(0.5)^2 log 0.5 = 0.1733``, over C = 2 channels:

    >>> p = torch.tensor([[[0.5], [0.5]]])
    >>> g = torch.tensor([[[0.0], [1.0]]])
    >>> round(float(focal_loss(p, g)), 5)
    0.08664
    """
    check_probs_target(probs, target)
    target = target.to(probs.dtype)
    if kind == "softmax":
        pt, t = probs, target
    elif kind == "sigmoid":
        pt = torch.where(target > 0.5, probs, 1 - probs)
        t = torch.ones_like(target)
    else:
        raise ValueError(f"kind must be 'softmax' or 'sigmoid', found {kind!r}")
    loss = -t * (1 - pt).clamp_min(0).pow(gamma) * torch.log(pt.clamp_min(_TINY))
    if alpha is not None:
        a = torch.as_tensor(alpha, dtype=probs.dtype, device=probs.device)
        if a.ndim == 1:
            if a.numel() != probs.shape[1]:
                raise ValueError(
                    f"alpha has {a.numel()} entries, expected one per class (C={probs.shape[1]})"
                )
            a = a.view(1, -1, *([1] * (probs.ndim - 2)))
        loss = loss * a
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum() / probs.shape[1]
    if reduction == "none":
        return loss.flatten(1).mean(1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', found {reduction!r}")


class FocalLoss(torch.nn.Module):
    """The softmax Focal Loss of eq. 2 as a module on logits (``alpha = 1``, MONAI mean reduction).

    ``forward(logits (B, C, *spatial), labels (B, 1, *spatial))``: :func:`focal_loss` of the
    softmax and the one-hot labels, in the logits' float dtype (float64 kept), so that the loss
    registry can build and draw Focal like the study's losses.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, dtype=torch.float64)  # p = 0.5 / 0.5
    >>> round(float(FocalLoss()(logits, torch.ones(1, 1, 1))), 6)  # 0.25 ln 2 / 2 classes
    0.086643
    """

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean focal loss (0-dim) of ``logits`` against integer ``labels``."""
        x = logits if logits.dtype == torch.float64 else logits.float()
        probs = torch.softmax(x, dim=1)
        target = torch.nn.functional.one_hot(labels[:, 0].long(), x.shape[1]).movedim(-1, 1).to(x.dtype)
        return focal_loss(probs, target, self.gamma)
