"""Panoptic quality of one case (Kirillov et al. 2019; panoptica's definition): RQ, SQ and PQ of the lesion instances.

Instances are the connected components of each mask (:class:`~pcatools.metrics.components.Components`,
at its connectivity). A ground-truth lesion and a predicted component match when their IoU is
> 0.5, which makes the matching one-to-one (two disjoint components cannot both cover more than
half of one union). With ``TP`` matched pairs, ``FP`` unmatched components and ``FN`` unmatched
lesions: ``RQ = TP / (TP + FP/2 + FN/2)``, ``SQ`` = the mean IoU of the matched pairs and
``PQ = SQ x RQ``. It is offered beside the paper's metrics because other tools (panoptica,
BraTS 2023+) report it, so that users comparing them read the same numbers.

Edge cases: no lesion and no component: RQ, SQ and PQ are NaN (nothing to recognise); no
matched pair otherwise: RQ = PQ = 0 and SQ NaN (no pair to average). panoptica matches at IoU >= 0.5
by default (``strict_threshold=False``); a pair at exactly 0.5 is matched there and not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcatools.metrics.components import Components

PQ_IOU_THRESHOLD = 0.5
"""A pair matches when its IoU is strictly above this (panoptica's default matching threshold)."""


@dataclass(frozen=True)
class Panoptic:
    """Panoptic quality of one case: matched pairs (``tp``), ``fp``, ``fn``, ``rq``, ``sq``, ``pq``."""

    tp: int
    fp: int
    fn: int
    rq: float
    sq: float
    pq: float


def panoptic_quality(comp: Components) -> Panoptic:
    """RQ, SQ and PQ of one case from its components (module docstring).

    Examples
    --------
    >>> from pcatools.metrics.components import components
    >>> g = np.zeros((10, 1, 1), bool); g[0:4] = True; g[7] = True
    >>> p = np.zeros_like(g); p[1:4] = True; p[9] = True
    >>> q = panoptic_quality(components(g, p))
    >>> q.tp, q.fp, q.fn, q.rq, q.sq, q.pq
    (1, 1, 1, 0.5, 0.75, 0.375)
    """
    g, c = comp.pairs[:, 0], comp.pairs[:, 1]
    union = comp.gt_sizes[g] + comp.pred_sizes[c] - comp.pair_overlap
    iou = comp.pair_overlap / np.maximum(union, 1)
    matched = iou > PQ_IOU_THRESHOLD
    tp = int(matched.sum())
    fp, fn = comp.n_pred - tp, comp.n_gt - tp
    if comp.n_gt == 0 and comp.n_pred == 0:
        return Panoptic(0, 0, 0, float("nan"), float("nan"), float("nan"))
    rq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(iou[matched].mean()) if tp else float("nan")
    return Panoptic(tp, fp, fn, rq, sq, rq * sq if tp else 0.0)
