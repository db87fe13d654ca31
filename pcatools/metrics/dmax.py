"""Lesion dissemination Dmax (paper 2.7.1, eq. 15), exact and fast.

``Dmax = max_{i,j} d_ij`` over all pairs of foreground voxels of the ground-truth mask, with
``d_ij`` the spacing-scaled Euclidean distance of eq. 15 between voxel centres. Section 3.4 words
it as "the maximum Euclidean distance between any two lesions"; we follow eq. 15 (voxel to voxel
over the whole mask, so a single large lesion also has a Dmax).

The farthest pair of a point set is a pair of vertices of its convex hull, so instead of the
``N^2 / 2`` distances we (1) keep only voxels that are the first or last foreground voxel of their
line along one axis (a voxel strictly between two others is not a hull vertex); (2) drop every
point that cannot reach the current best distance ``L`` (two farthest-point sweeps give ``L``;
with ``c`` the bounding-box centre and ``R`` the largest ``|p - c|``, a point with
``|p - c| + R < L`` is in no pair that long) -- exact, and for lesions spread over a body it
leaves a few dozen voxels, which are compared by brute force; (3) only when more than 512 points
survive (round, ragged blobs), take the convex hull with ``scipy.spatial.ConvexHull`` (Qhull) and
the largest distance among its vertices (plus Qhull's "coplanar" points, which it may leave out of
the vertex list for numerical reasons). Degenerate sets are handled exactly: no voxel gives NaN,
one voxel 0, collinear voxels the distance between the two extreme ones, coplanar voxels a 2-D
hull in their plane; should Qhull still fail, all remaining candidates are compared by brute force.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist, pdist

from pcatools.metrics.components import _byte_mask_nonzero, _raw_mask, check_spacing, foreground_coords

_PDIST_MAX = 4096
_PRUNED_PDIST_MAX = 512  # up to this many candidates left after pruning, compare all pairs directly


def voxel_distance(vi: Sequence[float], vj: Sequence[float], spacing: Sequence[float]) -> float:
    """Distance between two voxel centres in mm, eq. 15.

    ``d_ij = sqrt((s_x (x_i - x_j))^2 + (s_y (y_i - y_j))^2 + (s_z (z_i - z_j))^2)``.

    Examples
    --------
    >>> voxel_distance((0, 0, 0), (1, 1, 2), (3.0, 4.0, 6.0))
    13.0
    """
    s = np.asarray(check_spacing(spacing))
    d = s * (np.asarray(vi, dtype=np.float64) - np.asarray(vj, dtype=np.float64))
    return float(np.sqrt(np.sum(d * d)))


def max_pairwise_distance(points: np.ndarray, chunk: int = 2048) -> float:
    """Largest Euclidean distance between rows of ``points`` (N, d), by brute force.

    ``scipy.spatial.distance.pdist`` for up to 4096 points, otherwise ``cdist`` in blocks of
    ``chunk`` rows (same arithmetic, bounded memory). 0 for one point, NaN for none.
    """
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if n == 0:
        return float("nan")
    if n == 1:
        return 0.0
    if n <= _PDIST_MAX:
        return float(pdist(pts).max())
    best = 0.0
    for start in range(0, n - 1, chunk):
        best = max(best, float(cdist(pts[start : start + chunk], pts[start:]).max()))
    return best


def _line_ends(line: np.ndarray) -> np.ndarray:
    """Boolean mask of the first and last entry of each run of equal values in ``line``."""
    if line.size == 0:
        return np.zeros(0, dtype=bool)
    new = np.r_[True, line[1:] != line[:-1]]
    return new | np.r_[new[1:], True]


def _line_extremes(coords: np.ndarray) -> np.ndarray:
    """Keep the first and last voxel of every axis-parallel line along one axis.

    A voxel strictly between two others of its line is a convex combination of them, hence not a
    vertex of the convex hull and never part of the farthest pair. The axis is the one along which
    the points are already ordered (z for C order as ``np.argwhere`` gives, x for F order, the
    memory order of NIfTI data), so no sort is needed; other inputs are sorted in C order first.
    """
    c = coords - coords.min(axis=0)
    ext = c.max(axis=0) + 1
    c_line = c[:, 0] * ext[1] + c[:, 1]  # (x, y) names a z-line
    f_line = c[:, 2] * ext[1] + c[:, 1]  # (z, y) names an x-line
    if np.all(np.diff(f_line * ext[0] + c[:, 0]) > 0):
        line = f_line
    else:
        line = c_line
        key = c_line * ext[2] + c[:, 2]
        if not np.all(np.diff(key) > 0):
            order = np.argsort(key, kind="stable")
            coords, line = coords[order], line[order]
    return coords[_line_ends(line)]


def _mask_line_extremes(mask: np.ndarray) -> np.ndarray | None:
    """Step (1) straight from a contiguous 0/1 byte mask (NIfTI label data as stored).

    The foreground is found by :func:`~pcatools.metrics.components._byte_mask_nonzero` in memory
    order, where consecutive indices of one line along the fastest axis (x for F order, z for C
    order) share ``index // length``; only the first and last of each line are turned into
    coordinates. ``None`` for any other array (the general path then validates and searches it).
    """
    arr = _raw_mask(mask, "mask")
    found = _byte_mask_nonzero(arr)
    if found is None:
        return None
    flat, order = found
    ends = flat[_line_ends(flat // (arr.shape[0] if order == "F" else arr.shape[2]))]
    return np.stack(np.unravel_index(ends, arr.shape, order=order), axis=1).astype(np.int64, copy=False)


def _far_pair_candidates(pts: np.ndarray) -> np.ndarray:
    """Indices of the points that can still belong to the farthest pair (exact pruning).

    With ``c`` the centre of the bounding box, ``r_p = |p - c|`` and ``R = max r``, every pair
    satisfies ``|p - q| <= r_p + r_q <= r_p + R``. A lower bound ``L`` of the diameter comes from two
    "farthest point" sweeps (the point farthest from ``c``, the one farthest from it, and the one
    farthest from that). A point with ``r_p + R < L`` is in no pair as long as ``L``, so it cannot
    be an end of the farthest pair and is dropped. For lesions spread over the body this leaves the
    few voxels at the two far ends; for a round blob it leaves most points, and Qhull takes over.
    """
    c = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    d = pts - c
    r = np.sqrt(np.einsum("ij,ij->i", d, d))
    a = int(np.argmax(r))
    radius = float(r[a])
    best = 0.0
    for _ in range(2):
        e = pts - pts[a]
        dist2 = np.einsum("ij,ij->i", e, e)
        b = int(np.argmax(dist2))
        best = max(best, float(np.sqrt(dist2[b])))
        a = b
    # a relative slack of 1e-9 keeps a point whose bound equals L up to rounding
    return np.flatnonzero(r + radius >= best * (1.0 - 1e-9))


def _hull_candidates(points: np.ndarray) -> np.ndarray:
    """Indices of hull vertices (and Qhull coplanar points) of ``points``; raises QhullError."""
    hull = ConvexHull(points)
    idx = [hull.vertices]
    if hull.coplanar.size:
        idx.append(hull.coplanar[:, 0])
    return np.unique(np.concatenate(idx))


def dmax_points(coords: np.ndarray, spacing: Sequence[float]) -> float:
    """Dmax of a set of voxel indices ``coords`` (N, 3) with ``spacing`` (mm); see :func:`dmax`."""
    s = np.asarray(check_spacing(spacing))
    c = np.asarray(coords)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"coords: expected an (N, 3) array of voxel indices, found shape {c.shape}")
    n = len(c)
    if n == 0:
        return float("nan")
    if n == 1:
        return 0.0
    c = _line_extremes(c)
    pts = c * s
    keep = _far_pair_candidates(pts)
    if len(keep) <= _PRUNED_PDIST_MAX:  # any dimension: the pruning is exact on its own
        return max_pairwise_distance(pts[keep])
    c, pts = c[keep], pts[keep]
    diff = (c - c[0]).astype(np.float64)
    rank = int(np.linalg.matrix_rank(diff))
    if rank == 0:
        return 0.0
    if rank == 1:
        direction = diff[np.argmax(np.abs(diff).sum(axis=1))] * s
        t = (pts - pts[0]) @ direction
        ends = np.array([np.argmin(t), np.argmax(t)])
        return max_pairwise_distance(pts[ends])
    try:
        if rank == 2:
            centred = pts - pts.mean(axis=0)
            basis = np.linalg.svd(centred, full_matrices=False)[2][:2]
            cand = _hull_candidates(centred @ basis.T)
        else:
            cand = _hull_candidates(pts)
    except QhullError:  # pragma: no cover - numerical trouble only; stay exact by brute force
        cand = np.arange(len(pts))
    return max_pairwise_distance(pts[cand])


def dmax(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Lesion dissemination Dmax in mm: the largest eq. 15 distance between two foreground voxels.

    ``Dmax = max_{i,j} d_ij``,
    ``d_ij = sqrt((s_x (x_i - x_j))^2 + (s_y (y_i - y_j))^2 + (s_z (z_i - z_j))^2)`` (eq. 15),
    computed exactly through the convex hull of the voxel centres (see the module docstring).

    Parameters
    ----------
    mask : ndarray (x, y, z)
        Binary ground-truth mask (all lesions together).
    spacing : sequence of 3 float
        Voxel spacing in mm, ``(s_x, s_y, s_z)``.

    Returns
    -------
    float
        Dmax in mm; 0.0 for a single voxel, NaN for an empty mask.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[0, 0, 0] = m[3, 4, 0] = m[1, 1, 1] = True
    >>> dmax(m, (1.0, 1.0, 1.0))
    5.0
    >>> dmax(m, (2.0, 1.0, 1.0))
    7.211102550927978
    """
    coords = _mask_line_extremes(mask)
    return dmax_points(foreground_coords(mask) if coords is None else coords, spacing)


def dmax_bruteforce(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Dmax by comparing all pairs of voxels (the reference the fast :func:`dmax` must equal)."""
    s = np.asarray(check_spacing(spacing))
    return max_pairwise_distance(foreground_coords(mask) * s)
