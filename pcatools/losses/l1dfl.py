"""The L1-weighted Dice Focal Loss (paper eq. 11-12): ``L1DFL = L_wDice + L_Focal``.

``L1DiceFocalLoss`` takes logits ``(B, C, *spatial)`` and integer labels ``(B, 1, *spatial)``;
probabilities are the softmax over the channels (computed in float32, float64 kept), the
weighted Dice (eq. 11) is taken per sample and class with the L1 weights of eq. 4-10 (no
gradient through the weights) and averaged over both, and the softmax Focal Loss of eq. 2
(``gamma = 2``, ``alpha = 1``, MONAI mean reduction) is added.

Implementation. The default (``fused=True``) path is a custom autograd function that never
materialises the one-hot target nor any autograd intermediates: forward uses log-sum-exp
probabilities, ``Delta`` from the probability of the true class, integer bin indices, a
``bincount`` histogram and a table lookup; backward applies the closed-form gradient

* weighted Dice, per sample b and class c with ``A = 1 / (U + eps)`` and
  ``Q = (2 I + eps) / (U + eps)^2``: ``dL/dp_i = 2 w_i (p_i Q - g_i A) / (B C)``;
* focal, per voxel with ``p_t`` the probability of the true class:
  ``dL/dx_j = (delta_tj - p_j) [gamma (1-p_t)^(gamma-1) p_t log p_t - (1-p_t)^gamma] / (B C V)``;

chained through the softmax Jacobian. ``fused=False`` is the plain autograd composition of
:func:`~pcatools.losses.dice.weighted_dice_loss`, :func:`~pcatools.losses.l1_weights.l1_weights`
and MONAI's ``FocalLoss(use_softmax=True)``; tests check both agree in value and gradient.

Two classes. With ``C = 2`` the two channels have the same ``Delta = 1 - p_t`` (the
background's ``|g_0 - p_0|`` equals the foreground's ``|g_1 - p_1|``), so the histogram over
all ``B * 2 * V`` elements (the public code's) is twice the histogram over ``B * V`` voxels and
``N`` doubles too: the weights are the same. The fused path bins each voxel once.

Histogram. Over the whole batch by default (``histogram="batch"``, as in the public code:
``N`` = all elements of the batch); ``histogram="sample"`` takes one histogram per sample.

Multi-class (``C > 2``). Every element (voxel, class) has its own ``Delta = |g - p|``: the
true class ``1 - p_t``, the others ``p_c``. All ``B * C * V`` elements (or ``C * V`` per
sample) form the histogram, each element is weighted by its own bin, and the weighted Dice is
averaged over all C classes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from pcatools.losses._checks import check_logits_labels, check_probs_target, plain
from pcatools.losses.dice import weighted_dice_loss
from pcatools.losses.focal import focal_loss
from pcatools.losses.l1_weights import (
    DEFAULT_TOL,
    Convention,
    _binning_flat,
    _resolve_bin_width,
    l1_weights,
)

__all__ = ["L1DiceFocalLoss", "l1_dice_focal_loss", "PAPER_SMOOTH", "REFERENCE_CODE_SMOOTH"]

PAPER_SMOOTH = 1e-5
"""epsilon of eq. 11 (unspecified in the paper; MONAI's default, used for DL and DFL)."""
REFERENCE_CODE_SMOOTH = 1e-8
"""epsilon of the weighted Dice in the public code."""


def _resolve_smooth(smooth: float | None, convention: str) -> float:
    if smooth is None:
        return PAPER_SMOOTH if convention == "paper" else REFERENCE_CODE_SMOOTH
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, found {smooth!r}")
    return float(smooth)


def l1_dice_focal_loss(
    probs: Tensor,
    target: Tensor,
    bin_width: float | None = None,
    gamma: float = 2.0,
    convention: Convention = "paper",
    smooth: float | None = None,
    per_sample: bool = False,
    reduction: Literal["mean", "none"] = "mean",
    tol: float = DEFAULT_TOL,
) -> Tensor:
    r"""L1-weighted Dice Focal Loss of eq. 12 on probabilities: :math:`\mathcal{L}_{wDice} + \mathcal{L}_{Focal}`.

    The readable definition (plain autograd): ``w = l1_weights(p, g)`` (eq. 4-10, no gradient),
    :func:`~pcatools.losses.dice.weighted_dice_loss` (eq. 11) and the softmax
    :func:`~pcatools.losses.focal.focal_loss` (eq. 2, mean reduction).

    Parameters
    ----------
    probs, target : Tensor
        ``(B, C, *spatial)`` softmax probabilities and one-hot ground truth.
    bin_width : float, optional
        Gamma (``None``: 0.1 paper, 0.05 reference code).
    gamma : float
        Focal exponent.
    convention : {"paper", "reference-code"}
        Binning convention (see ``l1_weights``).
    smooth : float, optional
        epsilon of eq. 11 (``None``: 1e-5 paper, 1e-8 reference code).
    per_sample : bool
        One L1 histogram per sample instead of one over the batch.
    reduction : {"mean", "none"}
        Scalar, or ``(B,)`` per-sample values.
    tol : float
        Boundary tolerance of the paper convention.

    Examples
    --------
    The hand-computed 2x2x2 case of the tests (one lesion voxel at p = 0.7, seven background
    voxels, one of them a false positive at 0.3): weights 0.4 (Delta = 0.3) and 2/15
    (Delta = 0.1), weighted Dice 0.081730, focal 0.004408:

    >>> p1 = torch.tensor([0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3]).view(1, 1, 2, 2, 2)
    >>> g1 = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]).view(1, 1, 2, 2, 2)
    >>> probs, target = torch.cat([1 - p1, p1], 1), torch.cat([1 - g1, g1], 1)
    >>> round(float(l1_dice_focal_loss(probs, target, smooth=0.0)), 5)
    0.08614
    """
    check_probs_target(probs, target)
    bw = _resolve_bin_width(bin_width, convention)
    eps = _resolve_smooth(smooth, convention)
    w = l1_weights(probs.detach(), target.detach(), bw, convention, per_sample=per_sample, tol=tol)
    wd = weighted_dice_loss(probs, target, w, smooth=eps, reduction=reduction)
    return wd + focal_loss(probs, target, gamma, reduction=reduction)


def _element_weights(delta: Tensor, bw: float, convention: str, tol: float, per_sample: bool) -> Tensor:
    """Weight of every element of ``delta`` ``(B, K, V)`` (histogram over all, or per sample)."""
    groups = delta.shape[0] if per_sample else 1
    flat = delta.reshape(groups, -1)
    idx, _, _, _, _, table = _binning_flat(flat, bw, convention, tol)
    table = table.to(delta.dtype)
    if groups > 1:
        n = table.shape[-1]
        idx.add_(torch.arange(groups, device=idx.device).unsqueeze(1) * n)
    return torch.take(table.reshape(-1), idx).reshape(delta.shape)


class _FusedL1DFL(torch.autograd.Function):
    """Forward and closed-form backward of eq. 11-12 on logits ``(B, C, V)`` and labels ``(B, 1, V)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: Tensor,
        labels: Tensor,
        bw: float,
        gamma: float,
        smooth: float,
        tol: float,
        per_sample: bool,
        convention: str,
        lambda_dice: float,
        lambda_focal: float,
        batch_dice: bool = False,
    ) -> Tensor:
        b, c, v = logits.shape
        x = logits.detach()
        lse = torch.logsumexp(x, dim=1, keepdim=True)
        p = torch.sub(x, lse).exp_()
        logpt = x.gather(1, labels).sub_(lse)
        del lse
        pt = logpt.exp()
        omp = torch.sub(1.0, pt)  # 1 - p_t = Delta of the true class
        # Focal loss, eq. 2 (mean over B, C, V)
        fw = omp.square() if gamma == 2.0 else omp.pow(gamma)
        focal = -fw.mul_(logpt).sum() / (b * c * v)
        del fw
        # L1 weights, eq. 4-10
        if c == 2:
            w = _element_weights(omp, bw, convention, tol, per_sample)  # (B, 1, V), shared by both classes
            wt = w
        else:
            delta = p.clone()
            delta.scatter_(1, labels, omp)
            w = _element_weights(delta, bw, convention, tol, per_sample)  # (B, C, V)
            del delta
            wt = w.gather(1, labels)
        del omp
        # Weighted Dice, eq. 11, per sample and class
        sq = torch.mul(p, w).mul_(p).sum(-1)  # sum_i w_i p_i^2, (B, C)
        wpt = wt * pt
        inter = torch.empty(b, c, dtype=x.dtype, device=x.device)
        wsum = torch.empty(b, c, dtype=x.dtype, device=x.device)
        for k in range(c):
            m = labels == k
            inter[:, k] = torch.where(m, wpt, 0.0).sum((1, 2))
            wsum[:, k] = torch.where(m, wt, 0.0).sum((1, 2))
        del wpt
        if batch_dice:  # one Dice per class over the whole batch, (1, C)
            sq, inter, wsum = (t.sum(0, keepdim=True) for t in (sq, inter, wsum))
        num = 2 * inter + smooth
        den = sq + wsum + smooth
        dice = num / den
        loss = lambda_dice * (1 - dice.mean()) + lambda_focal * focal
        ctx.save_for_backward(p, w, labels, pt, logpt, 1 / den, num / den.square())
        ctx.params = (gamma, lambda_dice, lambda_focal)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        p, w, labels, pt, logpt, a, q = ctx.saved_tensors
        gamma, lambda_dice, lambda_focal = ctx.params
        b, c, v = p.shape
        k = 2.0 * lambda_dice / (a.shape[0] * c)  # dice.mean() over (B or 1) x C terms
        wt = w if c == 2 else w.gather(1, labels)
        # dice: G_j = k w_j (p_j Q_j - g_j A_j) = H_j - [j = t] k w_t A_t
        h = torch.mul(p, q.unsqueeze(-1)).mul_(w).mul_(k)
        at = a.expand(b, c).gather(1, labels.view(b, v)).view(b, 1, v)
        kwa = at.mul_(wt).mul_(pt).mul_(k)  # p_t k w_t A_t
        # focal: dL/dx_j = ([j = t] - p_j) F
        omp = torch.sub(1.0, pt)
        if gamma == 2.0:
            f = (2.0 * omp).mul_(pt).mul_(logpt).sub_(omp.square())
        else:
            t = gamma * omp.pow(gamma - 1.0) * pt * logpt
            if gamma < 1.0:
                t = torch.where(omp > 0, t, torch.zeros_like(t))
            f = t.sub_(omp.pow(gamma))
        f.mul_(lambda_focal / (b * c * v))
        # softmax chain: dx_j = p_j (H_j - s - F) + [j = t] (F - p_t k w_t A_t), s = sum_c p_c G_c
        s = torch.mul(p, h).sum(1, keepdim=True).sub_(kwa).add_(f)
        h.sub_(s).mul_(p)
        h.scatter_add_(1, labels, f.sub_(kwa))
        h.mul_(grad_out)
        return h, None, None, None, None, None, None, None, None, None, None


class L1DiceFocalLoss(nn.Module):
    """L1-weighted Dice Focal Loss (eq. 11-12) on logits.

    Parameters
    ----------
    bin_width : float, optional
        Gamma of eq. 5; ``None`` takes the convention's default (paper 0.1, public code 0.05).
    gamma : float
        Focal exponent of eq. 2 (paper: 2).
    convention : {"paper", "reference-code"}
        L1 binning (see :mod:`pcatools.losses.l1_weights`); ``"reference-code"`` also makes the
        default ``smooth`` the public code's 1e-8.
    smooth : float, optional
        epsilon of eq. 11 (``None``: 1e-5 paper, 1e-8 reference code).
    histogram : {"batch", "sample"}
        One L1 histogram over the whole batch (public code) or one per sample.
    num_classes : int, optional
        Expected number of channels (``None``: any ``C >= 2``).
    lambda_dice, lambda_focal : float
        Weights of the two terms (paper: 1, 1).
    tol : float
        Boundary tolerance of the paper convention, in units of Delta.
    batch : bool
        Weighted Dice summed over the whole batch, one Dice per class (as MONAI's ``batch=True``),
        instead of one per sample and class (default, the paper's and the public code's). Not
        to be confused with ``histogram``, which only sets where the L1 weights are counted.
    fused : bool
        Use the fused forward/backward (default) or the plain autograd composition.
    check_labels : bool
        Check that the labels lie in ``[0, C)`` (one min/max pass; disable in tight loops).

    Examples
    --------
    >>> loss = L1DiceFocalLoss()
    >>> logits = torch.zeros(1, 2, 2, 2, 2, requires_grad=True)
    >>> labels = torch.zeros(1, 1, 2, 2, 2, dtype=torch.long)
    >>> labels[0, 0, 0, 0, 0] = 1
    >>> value = loss(logits, labels)
    >>> value.backward()
    >>> round(value.item(), 4), tuple(logits.grad.shape)
    (0.5311, (1, 2, 2, 2, 2))
    """

    def __init__(
        self,
        bin_width: float | None = None,
        gamma: float = 2.0,
        *,
        convention: Convention = "paper",
        smooth: float | None = None,
        histogram: Literal["batch", "sample"] = "batch",
        num_classes: int | None = None,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        tol: float = DEFAULT_TOL,
        batch: bool = False,
        fused: bool = True,
        check_labels: bool = True,
    ) -> None:
        super().__init__()
        self.bin_width = _resolve_bin_width(bin_width, convention)
        self.convention = convention
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, found {gamma!r}")
        self.gamma = float(gamma)
        self.smooth = _resolve_smooth(smooth, convention)
        if histogram not in ("batch", "sample"):
            raise ValueError(f"histogram must be 'batch' or 'sample', found {histogram!r}")
        self.histogram = histogram
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, found {num_classes!r}")
        self.num_classes = num_classes
        if lambda_dice < 0 or lambda_focal < 0:
            raise ValueError(
                f"lambda_dice and lambda_focal must be >= 0, found {lambda_dice}, {lambda_focal}"
            )
        self.lambda_dice = float(lambda_dice)
        self.lambda_focal = float(lambda_focal)
        if not 0 <= tol < self.bin_width / 2:
            raise ValueError(f"tol must be in [0, bin_width/2), found {tol!r}")
        self.tol = float(tol)
        self.batch = bool(batch)
        self.fused = fused
        self.check_labels = check_labels

    def extra_repr(self) -> str:
        return (
            f"bin_width={self.bin_width}, gamma={self.gamma}, convention={self.convention!r}, "
            f"smooth={self.smooth}, histogram={self.histogram!r}, fused={self.fused}"
            + (", batch=True" if self.batch else "")
        )

    def _prepare(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits, labels = plain(logits), plain(labels)
        check_logits_labels(logits, labels, self.num_classes, check_values=self.check_labels)
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        return logits.to(dtype), labels.long()

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Loss (0-dim, float32 or float64) for ``logits (B, C, *sp)`` and ``labels (B, 1, *sp)``."""
        x, y = self._prepare(logits, labels)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self.fused:
                b, c = x.shape[:2]
                out: Tensor = _FusedL1DFL.apply(
                    x.reshape(b, c, -1),
                    y.reshape(b, 1, -1),
                    self.bin_width,
                    self.gamma,
                    self.smooth,
                    self.tol,
                    self.histogram == "sample",
                    self.convention,
                    self.lambda_dice,
                    self.lambda_focal,
                    self.batch,
                )
                return out
            return self._forward_autograd(x, y)

    def _forward_autograd(self, x: Tensor, y: Tensor) -> Tensor:
        c = x.shape[1]
        probs = torch.softmax(x, dim=1)
        target = F.one_hot(y[:, 0], c).movedim(-1, 1).to(x.dtype)
        w = l1_weights(
            probs.detach(),
            target,
            self.bin_width,
            self.convention,
            per_sample=self.histogram == "sample",
            tol=self.tol,
        )
        wd = weighted_dice_loss(probs, target, w, smooth=self.smooth, batch=self.batch)
        # eq. 2 as monai.losses.FocalLoss(use_softmax=True) computes it, kept in float64 where given
        log_p = torch.log_softmax(x, dim=1)
        fl = -(target * (1 - log_p.exp()).pow(self.gamma) * log_p).mean()
        return self.lambda_dice * wd + self.lambda_focal * fl

    @torch.no_grad()
    def element_weights(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The weights ``w_i`` this loss applies, ``(B, C, *spatial)`` (for inspection / napari)."""
        x, y = self._prepare(logits, labels)
        probs = torch.softmax(x, dim=1)
        target = F.one_hot(y[:, 0], x.shape[1]).movedim(-1, 1).to(x.dtype)
        return l1_weights(
            probs,
            target,
            self.bin_width,
            self.convention,
            per_sample=self.histogram == "sample",
            tol=self.tol,
        )
