"""autoPET challenge metrics: false positive volume, false negative volume and Dice.

Definitions of the official evaluation (``lab-midas/autoPET`` ``val_script.py``, also used by
Ahamed et al.), on 18-connected components:

- false positive volume (FPV): total volume of the predicted components that share no voxel with
  the ground truth;
- false negative volume (FNV): total volume of the ground-truth components that share no voxel
  with the prediction;
- Dice: ``2 |G ∩ P| / (|G| + |P|)`` over the whole masks.

The official script scans the full volume once per component; here each mask is labelled once
and the overlap table of :class:`~pcatools.metrics.components.Components` answers all
components at once, with the same numbers. Volumes use the voxel size from the spacing given
(``evaluate_cohort`` reads it from the NIfTI header). One difference: the official ``dice_score``
divides 0 by 0 (NaN) when both masks are empty, which :func:`autopet_metrics` reproduces, whereas
:func:`pcatools.metrics.evaluate_case` reports DSC = 1 there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pcatools.metrics.components import Components, components
from pcatools.metrics.overlap import dice_from_counts


def false_positive_volume(comp: Components) -> float:
    """FPV in ml: ``sum over predicted components P_k with P_k ∩ G = ∅ of |P_k| * voxel volume``.

    Examples
    --------
    >>> g = np.zeros((6, 1, 1), bool); g[0] = True
    >>> p = np.zeros_like(g); p[0:2] = True; p[4] = True
    >>> false_positive_volume(components(g, p, (10.0, 10.0, 10.0)))
    1.0
    """
    fp = ~comp.pred_overlapped()
    fp[0] = False
    return float(comp.pred_sizes[fp].sum()) * comp.voxel_ml


def false_negative_volume(comp: Components) -> float:
    """FNV in ml: ``sum over ground-truth components G_k with G_k ∩ P = ∅ of |G_k| * voxel volume``.

    Examples
    --------
    >>> g = np.zeros((6, 1, 1), bool); g[0] = True; g[3:5] = True
    >>> p = np.zeros_like(g); p[0] = True
    >>> false_negative_volume(components(g, p, (10.0, 10.0, 10.0)))
    2.0
    """
    fn = ~comp.gt_overlapped()
    fn[0] = False
    return float(comp.gt_sizes[fn].sum()) * comp.voxel_ml


def autopet_from_components(comp: Components) -> dict[str, float]:
    """``dice``, ``fpv_ml``, ``fnv_ml`` of the official autoPET evaluation from labelled masks."""
    if comp.gt_voxels + comp.pred_voxels == 0:
        dsc = float("nan")
    else:
        dsc = dice_from_counts(comp.overlap_voxels, comp.gt_voxels, comp.pred_voxels)
    return {"dice": dsc, "fpv_ml": false_positive_volume(comp), "fnv_ml": false_negative_volume(comp)}


def autopet_metrics(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """The official autoPET evaluation of one case: ``{"dice", "fpv_ml", "fnv_ml"}``.

    Dice is NaN when both masks are empty (the official script's 0/0).

    Examples
    --------
    >>> g = np.zeros((6, 1, 1), bool); g[0:2] = True; g[4] = True
    >>> p = np.zeros_like(g); p[1:3] = True
    >>> autopet_metrics(g, p, (10.0, 10.0, 10.0))
    {'dice': 0.4, 'fpv_ml': 0.0, 'fnv_ml': 1.0}
    """
    return autopet_from_components(components(gt, pred, spacing))
