"""Loss against the predicted probability of the true class (the curves of the paper's Figure 7).

The paper plots DL, DFL and L1DFL against the probability of the true class for "samples with
the ground truth label as 1" without saying how a single probability is turned into a patch-level
loss. Our construction (deterministic, all parameters exposed):

* one patch per probability value ``p``: ``n_foreground`` lesion voxels (``g = 1``) all predicted
  with foreground probability ``p``, and ``n_background`` background voxels (``g = 0``) all
  predicted with background probability ``background_p`` (easy, well-classified background, as in
  a typical PET patch);
* two softmax classes, so ``p_0 = 1 - p_1`` everywhere;
* each loss is evaluated on that patch exactly as in training: Dice (eq. 1) and Dice Focal
  (eq. 3) with MONAI's smoothing and mean reductions, L1DFL (eq. 12) with its histogram taken
  over the patch (Gamma = 0.1, paper convention).

The L1DFL curve is piecewise smooth: it jumps where ``1 - p`` crosses a bin boundary or joins
the background's bin (``1 - background_p``), which is the mechanism of the loss. With the defaults
(10 lesion voxels, 990 background voxels at 0.99) L1DFL lies above DL and DFL for p below about
0.35 and below them for larger p, the behaviour the paper describes for its Figure 7; with a less
confident background (``background_p = 0.9``) the lesion voxels share the background's bin at
p around 0.9 and L1DFL rises there again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike

from pcatools.losses.dice import dice_loss
from pcatools.losses.dice_focal import dice_focal_loss
from pcatools.losses.focal import focal_loss
from pcatools.losses.l1_weights import Convention
from pcatools.losses.l1dfl import l1_dice_focal_loss

__all__ = ["loss_vs_probability", "CURVE_LOSSES"]

CURVE_LOSSES = ("dice", "focal", "dice_focal", "l1dfl")


def loss_vs_probability(
    p: ArrayLike | None = None,
    losses: Sequence[str] = ("dice", "dice_focal", "l1dfl"),
    *,
    n_foreground: int = 10,
    n_background: int = 990,
    background_p: float = 0.99,
    bin_width: float | None = None,
    gamma: float = 2.0,
    convention: Convention = "paper",
) -> pd.DataFrame:
    """Loss curves against the predicted probability ``p`` of the true class (Figure 7).

    Parameters
    ----------
    p : array-like, optional
        Probabilities in (0, 1]; default 199 points from 0.005 to 0.995.
    losses : sequence of str
        Any of ``"dice"``, ``"focal"``, ``"dice_focal"``, ``"l1dfl"``.
    n_foreground, n_background : int
        Voxels of the synthetic patch (see the module docstring).
    background_p : float
        Probability of the true class predicted for every background voxel.
    bin_width, gamma, convention
        L1DFL / focal parameters.

    Returns
    -------
    pandas.DataFrame
        Column ``p`` then one column per requested loss (wide format).

    Examples
    --------
    >>> df = loss_vs_probability([0.1, 0.5, 0.9])
    >>> list(df.columns)
    ['p', 'dice', 'dice_focal', 'l1dfl']
    >>> bool((df["dice_focal"] >= df["dice"]).all())
    True
    """
    grid = np.linspace(0.005, 0.995, 199) if p is None else np.asarray(p, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all((grid > 0) & (grid <= 1)):
        raise ValueError(f"p must be non-empty with values in (0, 1], found {grid!r}")
    unknown = [name for name in losses if name not in CURVE_LOSSES]
    if unknown:
        raise ValueError(f"unknown loss names {unknown}; choose from {CURVE_LOSSES}")
    if n_foreground < 1 or n_background < 0:
        raise ValueError(
            f"need n_foreground >= 1 and n_background >= 0, found {n_foreground}, {n_background}"
        )
    if not 0 < background_p <= 1:
        raise ValueError(f"background_p must be in (0, 1], found {background_p!r}")

    b = grid.size
    fg = torch.as_tensor(grid, dtype=torch.float64).view(b, 1).expand(b, n_foreground)
    bg = torch.full((b, n_background), 1.0 - background_p, dtype=torch.float64)
    p1 = torch.cat([fg, bg], dim=1)  # foreground probability of every voxel
    g1 = torch.cat([torch.ones(b, n_foreground), torch.zeros(b, n_background)], dim=1).to(torch.float64)
    probs = torch.stack([1 - p1, p1], dim=1)  # (B, 2, V)
    target = torch.stack([1 - g1, g1], dim=1)

    out: dict[str, np.ndarray] = {"p": grid}
    for name in losses:
        if name == "dice":
            val = dice_loss(probs, target, reduction="none")
        elif name == "focal":
            val = focal_loss(probs, target, gamma, reduction="none")
        elif name == "dice_focal":
            val = dice_focal_loss(probs, target, gamma, reduction="none")
        else:
            val = l1_dice_focal_loss(
                probs, target, bin_width, gamma, convention, per_sample=True, reduction="none"
            )
        out[name] = val.numpy()
    return pd.DataFrame(out)
