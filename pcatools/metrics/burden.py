"""Tumour burden: MTV per lesion, TMTV per patient, TLA, and per-lesion SUV statistics.

The paper (2.7.1, 2.7.2, 3.3) uses these without numbered equations:

- MTV of a lesion: its volume, ``|G_l| * voxel volume`` (ml);
- TMTV of a patient: ``|G| * voxel volume`` (ml), the sum of the MTVs;
- TLA ("total lesion activity"): ``sum over voxels of SUV * voxel volume`` (SUV x ml), equal to
  ``SUVmean * MTV`` for a lesion and summed over lesions for a patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcatools.metrics.components import Components, as_mask, voxel_volume_ml


def mtv_ml(voxels: np.ndarray | int, spacing: Sequence[float]) -> np.ndarray | float:
    """Molecular tumour volume in ml: ``MTV = n_voxels * sx * sy * sz / 1000``.

    Examples
    --------
    >>> mtv_ml(np.array([10, 1]), (2.0, 2.0, 2.0)).tolist()
    [0.08, 0.008]
    """
    vox = voxel_volume_ml(spacing)
    if np.ndim(voxels) == 0:
        return float(voxels) * vox
    return np.asarray(voxels, dtype=np.float64) * vox


def tmtv_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Total molecular tumour volume of a patient in ml: ``TMTV = |G| * voxel volume``.

    Examples
    --------
    >>> m = np.zeros((3, 3, 3), bool); m[0, 0, :2] = True
    >>> tmtv_ml(m, (4.0, 4.0, 2.0))
    0.064
    """
    return float(np.count_nonzero(as_mask(mask))) * voxel_volume_ml(spacing)


def tla(suv: np.ndarray, mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Total lesion activity: ``TLA = sum_{i in G} SUV_i * voxel volume`` (SUV x ml).

    Equals ``SUVmean * TMTV`` of the mask. Raises when SUV is not finite inside the mask.

    Examples
    --------
    >>> m = np.zeros((2, 1, 1), bool); m[:] = True
    >>> tla(np.array([2.0, 4.0]).reshape(2, 1, 1), m, (10.0, 10.0, 10.0))
    6.0
    """
    m = as_mask(mask)
    arr = np.asarray(suv)
    if arr.shape != m.shape:
        raise ValueError(f"suv: expected shape {m.shape} like the mask, found {arr.shape}")
    values = arr[m]
    if not np.all(np.isfinite(values)):
        raise ValueError("suv: found non-finite SUV values inside the lesion mask")
    return float(values.sum(dtype=np.float64)) * voxel_volume_ml(spacing)


@dataclass(frozen=True)
class LesionSUV:
    """Per-lesion SUV statistics (arrays of length ``n_gt``, lesion ``l`` at index ``l - 1``).

    ``argmax`` indexes :attr:`Components.gt_coords` / ``gt_voxel_pred``: the lesion's SUVmax
    voxel. Ties (equal SUV) go to the first voxel in C order of the ``(x, y, z)`` array, as
    ``numpy.argmax`` does in the paper's and Ahamed et al.'s public code.
    """

    suvmax: np.ndarray
    suvmean: np.ndarray
    suv_sum: np.ndarray
    argmax: np.ndarray


def _suv_at(comp: Components, suv: np.ndarray, coords: np.ndarray, where: str) -> np.ndarray:
    arr = np.asanyarray(suv)
    if arr.shape != comp.shape:
        raise ValueError(f"suv: expected shape {comp.shape} like the masks, found {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"suv: expected a numeric SUV array, found dtype {arr.dtype}")
    values = np.asarray(arr[coords[:, 0], coords[:, 1], coords[:, 2]], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"suv: found non-finite SUV values (NaN/inf) inside {where}")
    return values


def gt_suv(comp: Components, suv: np.ndarray) -> np.ndarray:
    """SUV at each ground-truth voxel of ``comp`` (validated: same grid, finite values)."""
    return _suv_at(comp, suv, comp.gt_coords, "ground-truth lesions")


def pred_suv(comp: Components, suv: np.ndarray) -> np.ndarray:
    """SUV at each predicted voxel of ``comp`` (validated: same grid, finite values)."""
    return _suv_at(comp, suv, comp.pred_coords, "predicted components")


def _suv_by_label(lab: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> LesionSUV:
    n = sizes.size - 1
    if values.shape != lab.shape:
        raise ValueError(f"values: expected one SUV per voxel ({lab.shape}), found {values.shape}")
    if n == 0:
        empty = np.zeros(0)
        return LesionSUV(empty, empty, empty, np.zeros(0, dtype=np.int64))
    # sort by label, then SUV descending, then C order (position in the coordinates): first of each label
    order = np.lexsort((np.arange(lab.size), -values, lab))
    starts = np.searchsorted(lab[order], np.arange(1, n + 1))
    argmax = order[starts]
    suv_sum = np.bincount(lab, weights=values, minlength=n + 1)[1:]
    return LesionSUV(values[argmax], suv_sum / sizes[1:], suv_sum, argmax)


def lesion_suv(comp: Components, values: np.ndarray) -> LesionSUV:
    """SUVmax, SUVmean, SUV sum and SUVmax voxel of each ground-truth lesion.

    ``values`` is the SUV at each ground-truth voxel (:func:`gt_suv`).

    Examples
    --------
    >>> from pcatools.metrics.components import components
    >>> g = np.zeros((5, 1, 1), bool); g[0:2] = True; g[3:5] = True
    >>> c = components(g, np.zeros_like(g))
    >>> s = lesion_suv(c, np.array([1.0, 3.0, 5.0, 5.0]))
    >>> s.suvmax.tolist(), s.suvmean.tolist(), s.argmax.tolist()
    ([3.0, 5.0], [2.0, 5.0], [1, 2])
    """
    return _suv_by_label(comp.gt_voxel_label, values, comp.gt_sizes)


def pred_component_suv(comp: Components, values: np.ndarray) -> LesionSUV:
    """SUVmax, SUVmean, SUV sum and SUVmax voxel of each predicted component.

    ``values`` is the SUV at each predicted voxel (:func:`pred_suv`); ``argmax`` indexes
    :attr:`Components.pred_coords`.

    Examples
    --------
    >>> from pcatools.metrics.components import components
    >>> p = np.zeros((5, 1, 1), bool); p[0:2] = True; p[4] = True
    >>> c = components(np.zeros_like(p), p)
    >>> pred_component_suv(c, np.array([1.0, 3.0, 2.0])).suvmax.tolist()
    [3.0, 2.0]
    """
    return _suv_by_label(comp.pred_voxel_label, values, comp.pred_sizes)
