"""The public code's L1DFL, re-implemented: the peer for tests and ``benchmarks/losses.py``.

A re-implementation (not a copy) of the approach of ``segmentation/losses.py`` in
github.com/ObedDzik/pca_segment: softmax probabilities, one-hot targets, ``Delta = |p - g|`` over
the whole ``(B, C, *spatial)`` tensor, bins by ``torch.bucketize`` on the clamped left edges of
``linspace(0, 1, int(1 / Gamma + 1))`` centres, counts by ``scatter_add``, densities
``count / (width + 1e-8)``, weights ``N / density`` looked up per element, weighted squared Dice
per sample and class with ``1e-8`` smoothing averaged, plus MONAI's softmax ``FocalLoss``.
Unlike the original it also accepts 2D inputs and any number of classes.
``L1DiceFocalLoss(convention="reference-code")`` must agree with it (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import FocalLoss
from torch import Tensor, nn

from pcatools.losses.l1_weights import REFERENCE_CODE_BIN_WIDTH, reference_code_bins

__all__ = ["ReferenceCodeL1DFL"]


class ReferenceCodeL1DFL(nn.Module):
    """The public code's L1DFL approach (bucketize + scatter_add), straightforward autograd.

    Parameters
    ----------
    gamma : float
        Focal exponent.
    bin_width : float
        The public code's ``epsilon`` (default 0.05).

    Examples
    --------
    >>> loss = ReferenceCodeL1DFL()
    >>> logits = torch.zeros(1, 2, 2, 2, 2)
    >>> labels = torch.zeros(1, 1, 2, 2, 2, dtype=torch.long)
    >>> float(loss(logits, labels)) > 0
    True
    """

    def __init__(self, gamma: float = 2.0, bin_width: float = REFERENCE_CODE_BIN_WIDTH) -> None:
        super().__init__()
        self.gamma = gamma
        self.bin_width = bin_width
        centres, left, widths = reference_code_bins(bin_width)
        self.register_buffer("left_edges", left)
        self.register_buffer("widths", widths)
        self.focal = FocalLoss(gamma=gamma, use_softmax=True, to_onehot_y=False)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        x = logits.float()
        n_classes = x.shape[1]
        probs = torch.softmax(x, dim=1)
        target = F.one_hot(labels.long()[:, 0], n_classes).movedim(-1, 1).float()
        focal = self.focal(x, target)

        delta = (probs - target).abs()
        flat = delta.detach().reshape(-1)
        left: Tensor = self.left_edges  # type: ignore[assignment]
        widths: Tensor = self.widths  # type: ignore[assignment]
        n_bins = left.numel()
        idx = torch.clamp(torch.bucketize(flat, left, right=True) - 1, 0, n_bins - 1)
        counts = torch.zeros(n_bins, device=x.device).scatter_add(0, idx, torch.ones_like(flat))
        density = counts / (widths + 1e-8)
        per_elem = density[idx]
        beta = torch.where(per_elem > 0, flat.numel() / per_elem, torch.zeros_like(per_elem)).view_as(delta)

        dims = list(range(2, x.ndim))
        inter = (beta * probs * target).sum(dims)
        union = (beta * (probs**2 + target**2)).sum(dims)
        dice = (2.0 * inter + 1e-8) / (union + 1e-8)
        return 1 - dice.mean() + focal
