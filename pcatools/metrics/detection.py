"""Lesion detection (paper 2.7.1): TP / FP / FN per patient under four criteria, and F1 (eq. 14).

Criteria (``criterion=``):

``"suvmax"`` (default, the paper's text, 2.7.1)
    Counted per ground-truth lesion. Lesion ``G_l`` is a TP when any predicted voxel covers its
    SUVmax voxel, otherwise an FN. A predicted component that overlaps no ground-truth voxel is an
    FP. Hence ``TP + FN = n_gt``. A component covering the SUVmax voxels of two lesions gives two
    TPs and no FP; a lesion split over two components gives one TP, and the component that does
    not hold the SUVmax voxel is not an FP (it overlaps a lesion). A component that overlaps a
    lesion but misses its SUVmax voxel is neither TP nor FP: the lesion is an FN.
``"overlap"`` (Ahamed et al. criterion 1)
    Counted per predicted component: a component overlapping any ground-truth voxel is a TP,
    otherwise an FP; a ground-truth lesion no component overlaps is an FN. Here a lesion split in
    two gives two TPs and a component over two lesions gives one TP.
``"iou"`` (Ahamed et al. criterion 2)
    Each predicted component is matched to the ground-truth lesion of highest IoU (ties: lowest
    lesion label); TP when that IoU >= ``iou_threshold`` (the lesion is then used up), else FP.
    Lesions never used up are FNs. ``iou_threshold`` must be >= 0.5, which makes the matching
    one-to-one (two disjoint components cannot both reach IoU 0.5 with one connected lesion).
``"suvmax_iou"`` (Ahamed et al. criterion 3, the paper's public code)
    As ``"iou"``, but the component is a TP when it covers the SUVmax voxel of its best-IoU lesion.
    A component overlapping nothing, or missing that voxel, is an FP.

SUVmax voxel ties go to the first voxel in C order (``numpy.argmax``), as in the public code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from pcatools.metrics.components import Components


class Criterion(str, enum.Enum):
    """A detection rule: ``suvmax`` (the paper's), ``overlap``, ``iou`` or ``suvmax_iou``.

    A criterion is checked once where it enters (:meth:`parse`, at the public functions and the
    CLI) and carried as this type from there, so that no inner function checks it again. It is a
    ``str``: it compares equal to its name and is written as its name in tables, files and messages.

    Examples
    --------
    >>> Criterion.parse("overlap") is Criterion.OVERLAP, Criterion.OVERLAP == "overlap", f"{Criterion.IOU}"
    (True, True, 'iou')
    """

    SUVMAX = "suvmax"
    OVERLAP = "overlap"
    IOU = "iou"
    SUVMAX_IOU = "suvmax_iou"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:  # messages quote it as the name a user types
        return repr(self.value)

    def __hash__(self) -> int:  # equal to its name, so it finds the entries keyed by the name
        return hash(self.value)

    @property
    def needs_suv(self) -> bool:
        """Whether the rule reads each lesion's SUVmax voxel (``suvmax``, ``suvmax_iou``)."""
        return self in NEEDS_SUV

    @classmethod
    def parse(cls, value: Criterion | str) -> Criterion:
        """The criterion named ``value``; a ``Criterion`` is returned as it is.

        Raises
        ------
        ValueError
            ``criterion: expected one of ('suvmax', 'overlap', 'iou', 'suvmax_iou'), found 'nope'``.
        """
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"criterion: expected one of {CRITERIA}, found {value!r}") from None


CRITERIA: tuple[str, ...] = tuple(c.value for c in Criterion)
"""Every detection rule by name, the paper's first."""
NEEDS_SUV: frozenset[Criterion] = frozenset({Criterion.SUVMAX, Criterion.SUVMAX_IOU})
"""The detection rules that read the SUV image."""


@dataclass(frozen=True)
class Detection:
    """Detection counts of one case.

    Attributes
    ----------
    tp, fp, fn : int
    detected : ndarray (n_gt,) bool
        Ground-truth lesion counted as detected (a TP, or used up by a TP match).
    false_positive : ndarray (n_pred,) bool
        Predicted component counted as an FP.
    criterion : Criterion
    """

    tp: int
    fp: int
    fn: int
    detected: np.ndarray
    false_positive: np.ndarray
    criterion: Criterion


def f1_score(tp: int, fp: int, fn: int, empty: float = 1.0) -> float:
    """Detection F1 score per patient, eq. 14: ``F1 = TP / (TP + (FP + FN) / 2)``.

    Choice: with ``TP = FP = FN = 0`` (no lesion, nothing predicted) the value is ``empty``
    (default 1.0, consistent with DSC = 1 for two empty masks).

    Examples
    --------
    >>> f1_score(2, 1, 1)
    0.6666666666666666
    >>> f1_score(0, 0, 0), f1_score(0, 3, 0)
    (1.0, 0.0)
    """
    if min(tp, fp, fn) < 0:
        raise ValueError(f"f1_score: expected counts >= 0, found tp={tp}, fp={fp}, fn={fn}")
    denom = tp + 0.5 * (fp + fn)
    return float(empty) if denom == 0 else tp / denom


def _best_iou(comp: Components) -> tuple[np.ndarray, np.ndarray]:
    """For each predicted component (1..n_pred): best-IoU lesion label (0: none) and that IoU."""
    best_gt = np.zeros(comp.n_pred + 1, dtype=np.int64)
    best_iou = np.zeros(comp.n_pred + 1)
    if comp.pairs.size:
        g, p = comp.pairs[:, 0], comp.pairs[:, 1]
        inter = comp.pair_overlap
        iou = inter / (comp.gt_sizes[g] + comp.pred_sizes[p] - inter)
        order = np.lexsort((g, -iou, p))  # per component: highest IoU, then lowest lesion label
        p_sorted = p[order]
        first = order[np.r_[True, p_sorted[1:] != p_sorted[:-1]]]
        best_gt[p[first]] = g[first]
        best_iou[p[first]] = iou[first]
    return best_gt, best_iou


def detect(
    comp: Components,
    suvmax_voxel: np.ndarray | None = None,
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
) -> Detection:
    """TP, FP and FN of one case under a detection criterion (see the module docstring).

    Parameters
    ----------
    comp : Components
        Labelled ground truth and prediction (:func:`pcatools.metrics.components.components`).
    suvmax_voxel : ndarray (n_gt,) int, optional
        Index (into ``comp.gt_coords``) of each lesion's SUVmax voxel
        (:func:`pcatools.metrics.burden.lesion_suv`); required by ``"suvmax"`` and ``"suvmax_iou"``.
    criterion : {"suvmax", "overlap", "iou", "suvmax_iou"}
    iou_threshold : float
        IoU needed by ``"iou"``; in [0.5, 1].

    Examples
    --------
    One component covers the SUVmax voxels of two lesions (two TPs), another covers nothing (FP):

    >>> from pcatools.metrics.components import components
    >>> g = np.zeros((9, 1, 1), bool); g[0:2] = True; g[3:5] = True
    >>> p = np.zeros_like(g); p[1:4] = True; p[8] = True
    >>> d = detect(components(g, p), suvmax_voxel=np.array([1, 2]))
    >>> d.tp, d.fp, d.fn
    (2, 1, 0)
    """
    criterion = Criterion.parse(criterion)
    n_gt, n_pred = comp.n_gt, comp.n_pred
    if criterion.needs_suv:
        if suvmax_voxel is None:
            raise ValueError(
                f"criterion {criterion!r} needs the SUVmax voxel of each lesion, i.e. a SUV image"
            )
        suvmax_voxel = np.asarray(suvmax_voxel, dtype=np.int64)
        if suvmax_voxel.shape != (n_gt,):
            raise ValueError(f"suvmax_voxel: expected shape ({n_gt},), found {suvmax_voxel.shape}")

    if criterion is Criterion.SUVMAX:
        assert suvmax_voxel is not None
        detected = comp.gt_voxel_pred[suvmax_voxel] > 0
        false_pos = ~comp.pred_overlapped()[1:]
        tp = int(detected.sum())
        return Detection(tp, int(false_pos.sum()), n_gt - tp, detected, false_pos, criterion)

    if criterion is Criterion.OVERLAP:
        hit = comp.pred_overlapped()[1:]
        detected = comp.gt_overlapped()[1:]
        return Detection(int(hit.sum()), int((~hit).sum()), int((~detected).sum()), detected, ~hit, criterion)

    best_gt, best_iou = _best_iou(comp)
    if criterion is Criterion.IOU:
        if not 0.5 <= iou_threshold <= 1.0:
            raise ValueError(
                f"iou_threshold: expected a value in [0.5, 1] (one-to-one matching), found {iou_threshold}"
            )
        is_tp = (best_gt[1:] > 0) & (best_iou[1:] >= iou_threshold)
    else:  # suvmax_iou
        assert suvmax_voxel is not None
        labels = np.arange(1, n_pred + 1)
        bg = best_gt[1:]
        covers = np.zeros(n_pred, dtype=bool)
        has = bg > 0
        covers[has] = comp.gt_voxel_pred[suvmax_voxel[bg[has] - 1]] == labels[has]
        is_tp = covers
    detected = np.zeros(n_gt + 1, dtype=bool)
    detected[best_gt[1:][is_tp]] = True
    detected = detected[1:]
    tp = int(is_tp.sum())
    return Detection(tp, n_pred - tp, n_gt - int(detected.sum()), detected, ~is_tp, criterion)
