"""Loss against the predicted probability of the true class (the curves of the paper's Figure 7).

Figure 7 plots DL, DFL and L1DFL against "the probability of correctly classifying" for
"samples with the ground truth label as 1". Two constructions are offered; the first is the
default because it is how the figure is defined.

``construction="per_sample"`` (default): each loss of one sample
    One voxel ``i`` with ``g_i(1) = 1`` predicted at ``p_i(1) = P`` (two softmax classes, so
    ``p_i(0) = 1 - P``), and every equation evaluated on that voxel for its true class:

    * Dice (eq. 1) of the single voxel, class 1: ``1 - (2P + e_nr) / (P + 1 + e_dr)``,
      ``~ (1 - P) / (1 + P)`` (:func:`per_sample_dice`);
    * Focal (eq. 2) of the voxel, true class only and not averaged over anything else:
      ``-(1 - P)^gamma log P`` (:func:`per_sample_focal`; the softmax and MONAI's sigmoid focal
      terms agree here, since the background channel's sigmoid problem has the same ``p_t = P``);
    * L1 weights (eq. 4-10) of the sample's own histogram: ``N = 1``, ``Delta = 1 - P`` alone in
      its bin k, ``D = 1 / lambda_k`` and ``w = N / D = lambda_k``; the weight multiplies
      numerator and denominator of eq. 11 alike and cancels (up to ``epsilon / w ~ 1e-4``), so
      the weighted Dice of one voxel is the squared Dice ``1 - 2P / (1 + P^2) = (1 - P)^2 / (1 + P^2)``
      (:func:`per_sample_weighted_dice`);
    * DFL = Dice + Focal (eq. 3), L1DFL = weighted Dice + Focal (eq. 12).

    The background class is left out: a label-1 voxel has no background ground truth, so its
    class-0 Dice is 0 (eq. 1) for every ``P < 1`` and adds a constant 1/2 that says nothing about
    ``P`` (and MONAI's smoothing makes it jump to 1 at ``P = 1``). So each loss keeps its own
    shape: DFL is DL plus the focal term, unbounded as ``P -> 0`` (the "much steeper penalty");
    L1DFL is below DFL everywhere (squared denominator) and crosses DL at ``P = 0.5354``: above
    it for smaller ``P`` (0.373 against 0.333 at ``P = 0.5``), below for larger (0.0066 against
    0.0526 at ``P = 0.9``), the paper's "reduced penalty" for ``P > 0.5`` and heavier one for
    ``P < 0.5`` (tested).

``construction="patch"``: each loss of a synthetic patch
    One patch per ``P``: ``n_foreground`` lesion voxels (``g = 1``) all predicted at ``P`` and
    ``n_background`` background voxels predicted at background probability ``background_p``;
    every loss evaluated on the patch exactly as in training (MONAI smoothing and means, L1DFL's
    histogram over the patch, Gamma = 0.1 paper convention). With the defaults (10 lesion
    voxels, 990 background at 0.99) the focal term is averaged over 2000 elements of which 10
    are hard, so DFL stays within 0.03 of DL everywhere: the curve shows the patch's
    composition, not the losses' shapes. The L1DFL curve is piecewise smooth, with jumps where
    ``1 - P`` crosses a bin boundary or joins the background's bin (the L1 weighting acts
    *between* voxels, which one voxel alone cannot show); it lies above DL and DFL for ``P``
    up to 0.32 and below them from 0.33 on.

Any registered loss (:mod:`pcatools.loss_registry`) can be drawn: a loss that declares its own
``curve`` (the four above) uses it; any other is swept generically (:func:`generic_curve`): the
loss module itself evaluated on one voxel of label 1 (per sample) or on the patch, with logits
``log p``, so its softmax gives back ``p``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from pcatools.loss_registry import fitting_options, iter_curves, loss_entries, loss_name, loss_names
from pcatools.losses.dice import dice_loss, weighted_dice_loss
from pcatools.losses.factory import build_loss
from pcatools.losses.focal import focal_loss
from pcatools.losses.l1_weights import Convention, l1_weights
from pcatools.losses.l1dfl import _resolve_smooth

__all__ = [
    "loss_vs_probability",
    "per_sample_dice",
    "per_sample_focal",
    "per_sample_weighted_dice",
    "per_sample_dice_focal",
    "per_sample_l1dfl",
    "generic_curve",
    "CURVE_LOSSES",
    "CONSTRUCTIONS",
]

CURVE_LOSSES = tuple(e.name for e in loss_entries() if e.curve is not None)
"""pcatools' losses with a curve of their own (dice, dice_focal, l1dfl, focal); any other registered
loss is drawn by :func:`generic_curve`."""
CONSTRUCTIONS = ("per_sample", "patch")
"""The curve constructions (``construction=``, module docstring): ``per_sample`` (default) and ``patch``."""

#: Patch defaults (``construction="patch"``): lesion voxels, background voxels, background probability.
PATCH_DEFAULTS = {"n_foreground": 10, "n_background": 990, "background_p": 0.99}


def _one_voxel(p: ArrayLike) -> tuple[Tensor, Tensor]:
    """``(B, 1, 1)`` foreground probabilities ``P`` and their ground truth 1 (float64)."""
    probs = torch.as_tensor(np.asarray(p, dtype=np.float64)).reshape(-1, 1, 1)
    return probs, torch.ones_like(probs)


def per_sample_dice(p: ArrayLike, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5) -> np.ndarray:
    r"""Dice Loss (eq. 1) of one voxel of label 1 predicted at ``P``, its own class only.

    .. math:: \mathcal{L}_{Dice}(P) = 1 - \frac{2P + \epsilon_{nr}}{P + 1 + \epsilon_{dr}}
              \approx \frac{1 - P}{1 + P}

    The sums of eq. 1 run over the one voxel; only the class of its ground truth is kept,
    because the background term of a label-1 voxel is 0 for any ``P < 1`` and would only add
    a constant (see the module docstring).

    Examples
    --------
    ``P = 0.5``: ``1 - (1 + 1e-5) / (1.5 + 1e-5) = 0.5 / 1.50001 = 0.333331``:

    >>> per_sample_dice([0.5, 1.0]).round(6).tolist()
    [0.333331, 0.0]
    """
    probs, target = _one_voxel(p)
    return dice_loss(probs, target, smooth_nr, smooth_dr, reduction="none").numpy()


def per_sample_focal(p: ArrayLike, gamma: float = 2.0) -> np.ndarray:
    r"""Focal Loss (eq. 2) of one voxel of label 1 predicted at ``P``, true class only.

    .. math:: \mathcal{L}_{Focal}(P) = -(1 - P)^{\gamma} \log P

    Not divided by the number of classes or voxels: this is the loss of the sample itself, as in
    Lin et al.'s figure of the focal loss against the probability of the ground-truth class.

    Examples
    --------
    ``P = 0.5``: ``0.25 ln 2 = 0.173287``:

    >>> per_sample_focal([0.5, 1.0]).round(6).tolist()
    [0.173287, 0.0]
    """
    probs, target = _one_voxel(p)
    return focal_loss(probs, target, gamma, reduction="none").numpy()


def per_sample_weighted_dice(
    p: ArrayLike,
    bin_width: float | None = None,
    convention: Convention = "paper",
    smooth: float | None = None,
) -> np.ndarray:
    r"""L1-weighted squared Dice (eq. 11) of one voxel of label 1 predicted at ``P``.

    The L1 weight comes from the sample's own histogram (eq. 4-10 with ``N = 1``):
    ``w = N / D(B_k) = lambda_k``, the effective width of the bin of ``Delta = 1 - P``. It
    multiplies numerator and denominator alike, so

    .. math:: \mathcal{L}_{wDice}(P) = 1 - \frac{2wP + \epsilon}{w(1 + P^2) + \epsilon}
              \approx \frac{(1 - P)^2}{1 + P^2}

    Examples
    --------
    ``P = 0.5``: ``Delta = 0.5``, bin 0.5, ``w = 0.1``; ``1 - (0.1 + 1e-5) / (0.125 + 1e-5) = 0.199984``:

    >>> per_sample_weighted_dice([0.5]).round(6).tolist()
    [0.199984]
    """
    probs, target = _one_voxel(p)
    two = torch.cat([1 - probs, probs], dim=1)  # (B, 2, 1): the voxel's both channels
    w = l1_weights(two, torch.cat([1 - target, target], dim=1), bin_width, convention, per_sample=True)
    eps = _resolve_smooth(smooth, convention)
    return weighted_dice_loss(probs, target, w[:, 1:], smooth=eps, reduction="none").numpy()


def per_sample_dice_focal(p: ArrayLike, gamma: float = 2.0) -> np.ndarray:
    """Dice Focal Loss (eq. 3) of one voxel of label 1 at ``P``: :func:`per_sample_dice` + :func:`per_sample_focal`."""
    return per_sample_dice(p) + per_sample_focal(p, gamma)


def per_sample_l1dfl(
    p: ArrayLike, bin_width: float | None = None, gamma: float = 2.0, convention: Convention = "paper"
) -> np.ndarray:
    """L1DFL (eq. 12) of one voxel of label 1 at ``P``: :func:`per_sample_weighted_dice` + :func:`per_sample_focal`."""
    return per_sample_weighted_dice(p, bin_width, convention) + per_sample_focal(p, gamma)


def _logits(probs: Tensor) -> Tensor:
    """Logits whose softmax over dim 1 is ``probs`` (``log p``, clamped away from ``log 0``)."""
    return torch.log(probs.clamp_min(1e-300))


@torch.no_grad()
def generic_curve(
    name: str, probs: Tensor, target1: Tensor, options: dict[str, Any] | None = None
) -> np.ndarray:
    """Any registered loss ``name`` on each sample of a batch, one value per sample.

    ``probs`` is ``(B, 2, V)`` (background, foreground) and ``target1`` ``(B, V)`` the labels; each
    sample ``b`` is given to the loss module alone as logits ``log probs[b]`` shaped
    ``(1, 2, V, 1, 1)`` and labels ``(1, 1, V, 1, 1)``, as in training (the loss's own reduction).
    ``options`` (``bin_width``, ``gamma``, ``convention``) go to the losses that take them.
    """

    loss = build_loss(
        name, **fitting_options(name, {k: v for k, v in (options or {}).items() if v is not None})
    )
    out = []
    for b in range(probs.shape[0]):
        logits = _logits(probs[b : b + 1]).reshape(1, 2, -1, 1, 1)
        labels = target1[b : b + 1].reshape(1, 1, -1, 1, 1).long()
        out.append(float(loss(logits, labels)))
    return np.asarray(out, dtype=np.float64)


def _own_curve(name: str) -> Callable[..., Any] | None:
    return dict(iter_curves()).get(name)


def _per_sample_curves(
    grid: np.ndarray,
    losses: Sequence[str],
    bin_width: float | None,
    gamma: float,
    convention: Convention,
) -> dict[str, np.ndarray]:
    params: dict[str, Any] = {"bin_width": bin_width, "gamma": gamma, "convention": convention}
    out: dict[str, np.ndarray] = {}
    for name in losses:
        curve = _own_curve(name)
        if curve is None:
            probs, target = _one_voxel(grid)  # (B, 1, 1) foreground probabilities, labels 1
            out[name] = generic_curve(name, torch.cat([1 - probs, probs], dim=1), target[:, 0])
            continue
        takes = inspect.signature(curve).parameters
        out[name] = np.asarray(curve(grid, **{k: v for k, v in params.items() if k in takes}))
    return out


def _patch_curves(
    grid: np.ndarray,
    losses: Sequence[str],
    n_foreground: int,
    n_background: int,
    background_p: float,
    bin_width: float | None,
    gamma: float,
    convention: Convention,
) -> dict[str, np.ndarray]:
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
    options = {"bin_width": bin_width, "gamma": gamma, "convention": convention}
    return {name: generic_curve(name, probs, g1, options) for name in losses}


def loss_vs_probability(
    p: ArrayLike | None = None,
    losses: Sequence[str] | None = None,
    *,
    construction: Literal["per_sample", "patch"] = "per_sample",
    n_foreground: int | None = None,
    n_background: int | None = None,
    background_p: float | None = None,
    bin_width: float | None = None,
    gamma: float = 2.0,
    convention: Convention = "paper",
) -> pd.DataFrame:
    """Loss curves against the predicted probability ``p`` of the true class (Figure 7).

    Parameters
    ----------
    p : array-like, optional
        Probabilities in (0, 1]; default 199 points from 0.005 to 0.995.
    losses : sequence of str, optional
        Registered loss names (:func:`pcatools.loss_registry.loss_names`); default: every registered
        loss but Focal (drawn inside DFL and L1DFL). A loss without a curve of its own is swept by
        :func:`generic_curve`.
    construction : {"per_sample", "patch"}
        ``"per_sample"`` (default, the figure's definition): the loss of one voxel of label 1;
        ``"patch"``: the loss of a synthetic patch (see the module docstring).
    n_foreground, n_background : int, optional
        Voxels of the patch (``construction="patch"`` only; defaults 10 and 990).
    background_p : float, optional
        Probability of the true class of every background voxel (patch only; default 0.99).
    bin_width, gamma, convention
        L1DFL / focal parameters (per sample, ``bin_width`` and ``convention`` only move L1DFL
        by ``epsilon / w``: the weight cancels).

    Returns
    -------
    pandas.DataFrame
        Column ``p`` then one column per requested loss (wide format); ``attrs["construction"]``
        names the construction.

    Raises
    ------
    ValueError
        Unknown loss or construction, ``p`` outside (0, 1], or patch parameters with
        ``construction="per_sample"`` (they would be silently ignored).

    Examples
    --------
    >>> df = loss_vs_probability([0.1, 0.5, 0.9])
    >>> list(df.columns), df.attrs["construction"]
    (['p', 'dice', 'dice_focal', 'l1dfl'], 'per_sample')
    >>> df.round(4).to_dict("list")["l1dfl"]  # squared Dice + focal: above DL at 0.1, below at 0.9
    [2.667, 0.3733, 0.0066]
    >>> patch = loss_vs_probability([0.1, 0.9], construction="patch")
    >>> bool((patch["dice_focal"] - patch["dice"] < 0.03).all())
    True
    """
    grid = np.linspace(0.005, 0.995, 199) if p is None else np.asarray(p, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all((grid > 0) & (grid <= 1)):
        raise ValueError(f"p must be non-empty with values in (0, 1], found {grid!r}")
    if losses is None:
        losses = [n for n in loss_names() if n != "focal"]
    losses = [loss_name(n) for n in losses]
    unknown = [name for name in losses if name not in loss_names()]
    if unknown:
        raise ValueError(f"unknown loss names {unknown}; choose from {loss_names()}")
    patch_args = {"n_foreground": n_foreground, "n_background": n_background, "background_p": background_p}
    if construction == "per_sample":
        given = [k for k, v in patch_args.items() if v is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)}: only used with construction='patch' (per sample there is one voxel)"
            )
        out = _per_sample_curves(grid, losses, bin_width, gamma, convention)
    elif construction == "patch":
        args = {k: PATCH_DEFAULTS[k] if v is None else v for k, v in patch_args.items()}
        out = _patch_curves(
            grid,
            losses,
            int(args["n_foreground"]),
            int(args["n_background"]),
            float(args["background_p"]),
            bin_width,
            gamma,
            convention,
        )
    else:
        raise ValueError(f"construction must be one of {CONSTRUCTIONS}, found {construction!r}")
    df = pd.DataFrame({"p": grid, **out})
    df.attrs["construction"] = construction
    return df
