"""Overlap metrics: patient-level Dice (eq. 13) and lesion-level Dice (eq. 16)."""

from __future__ import annotations

import numpy as np

from pcatools.metrics.components import Components, as_mask


def dice_from_counts(overlap: int, n_gt: int, n_pred: int, empty: float = 1.0) -> float:
    """Dice similarity coefficient from voxel counts, eq. 13 / eq. 16.

    ``DSC = 2 |G ∩ P| / (|G| + |P|)``.

    Choice for the case the paper leaves open: when both sets are empty (0/0) the value is
    ``empty`` (default 1.0: nothing to find and nothing predicted is perfect agreement). When
    exactly one is empty the formula gives 0.

    Examples
    --------
    >>> dice_from_counts(3, 4, 4)
    0.75
    >>> dice_from_counts(0, 0, 0), dice_from_counts(0, 5, 0)
    (1.0, 0.0)
    """
    if overlap < 0 or n_gt < 0 or n_pred < 0 or overlap > min(n_gt, n_pred):
        raise ValueError(
            f"dice: expected 0 <= overlap <= min(|G|, |P|), found overlap={overlap}, |G|={n_gt}, |P|={n_pred}"
        )
    total = n_gt + n_pred
    if total == 0:
        return float(empty)
    return 2.0 * overlap / total


def dice(gt: np.ndarray, pred: np.ndarray, empty: float = 1.0) -> float:
    """Patient-level Dice similarity coefficient, eq. 13: ``DSC = 2 |G ∩ P| / (|G| + |P|)``.

    ``G`` and ``P`` are the whole ground-truth and predicted masks of one image. Both empty gives
    ``empty`` (default 1.0); see :func:`dice_from_counts`.

    Examples
    --------
    >>> g = np.zeros((4, 1, 1), bool); g[:2] = True
    >>> p = np.zeros_like(g); p[1:4] = True
    >>> dice(g, p)
    0.4
    """
    g = as_mask(gt, "gt")
    p = as_mask(pred, "pred")
    if g.shape != p.shape:
        raise ValueError(f"gt and pred must share one grid: gt shape {g.shape}, pred shape {p.shape}")
    return dice_from_counts(
        int(np.count_nonzero(g & p)), int(np.count_nonzero(g)), int(np.count_nonzero(p)), empty
    )


LESION_DICE_READINGS: tuple[str, ...] = ("union", "pair")
"""Readings of eq. 16 (``pcatools evaluate --lesion-dice``): ``"union"`` (default) scores a lesion
against the union of its matched components, ``"pair"`` against each matched component alone."""


def check_lesion_dice_reading(reading: str) -> str:
    """Validate a reading of eq. 16: one of :data:`LESION_DICE_READINGS`."""
    if reading not in LESION_DICE_READINGS:
        raise ValueError(
            f"lesion dice reading: expected one of {list(LESION_DICE_READINGS)}, found {reading!r}"
        )
    return reading


def lesion_dice(comp: Components, reading: str = "union") -> np.ndarray:
    """Lesion-level Dice of every ground-truth lesion, eq. 16: ``DSC_l = 2 |G_l ∩ P_l| / (|G_l| + |P_l|)``.

    Matching is by any voxel overlap between connected components (paper 2.7.2). The paper
    defines DSC per matched pair but reports one value per lesion, so two readings are offered:
    ``reading="union"`` (default): ``P_l`` is the union of all predicted components that overlap
    ``G_l`` (a lesion split over two components is scored against both pieces, and a component
    covering two lesions counts fully in each lesion's denominator); ``reading="pair"`` (eq. 16
    literally): each matched pair ``(G_l, P_c)`` is scored alone and the lesion reports its best
    pair. The two differ only for a lesion split over several components. A lesion with no match
    scores 0, as the paper states.

    Returns
    -------
    ndarray (n_gt,)
        DSC of lesions 1..n_gt.

    Examples
    --------
    >>> from pcatools.metrics.components import components
    >>> g = np.zeros((8, 1, 1), bool); g[0:4] = True
    >>> p = np.zeros_like(g); p[0] = True; p[2:4] = True
    >>> lesion_dice(components(g, p)).tolist(), lesion_dice(components(g, p), "pair").tolist()
    ([0.8571428571428571], [0.6666666666666666])
    """
    check_lesion_dice_reading(reading)
    out = np.zeros(comp.n_gt + 1)
    if reading == "pair":
        g, c = comp.pairs[:, 0], comp.pairs[:, 1]
        pair = 2.0 * comp.pair_overlap / (comp.gt_sizes[g] + comp.pred_sizes[c])
        np.maximum.at(out, g, pair)
        return out[1:]
    inter = np.bincount(comp.pairs[:, 0], weights=comp.pair_overlap, minlength=comp.n_gt + 1)
    pred_size = np.bincount(
        comp.pairs[:, 0], weights=comp.pred_sizes[comp.pairs[:, 1]], minlength=comp.n_gt + 1
    )
    denom = comp.gt_sizes + pred_size
    np.divide(2.0 * inter, denom, out=out, where=denom > 0)
    return out[1:]
