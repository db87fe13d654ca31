"""Lesion components: input checks, 18-connected labelling (once per mask) and the GT/prediction overlap.

Everything else in :mod:`pcatools.metrics` reads the :class:`Components` built here, so that each
mask of a case is labelled exactly once with ``cc3d`` and the labels are reused for Dice,
detection, lesion-level metrics, burden, Dmax and the autoPET volumes.

Speed comes from working on foreground voxels only: the two masks are cropped to the bounding box
of ``gt | pred`` (a component never leaves that box, so the labelling is unchanged), labelled there,
and from then on only the coordinates of the foreground voxels (about 10^4 in a whole-body scan,
against 2 x 10^7 grid voxels) are touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import cc3d
import numpy as np

CONNECTIVITY: Literal[18] = 18
"""Default connectivity of lesion components in pcatools (paper 2.7.2, autoPET's official)."""

CONNECTIVITIES: tuple[int, ...] = (6, 18, 26)
"""The 3-D connectivities a caller may choose (``pcatools evaluate --connectivity``): 26 is what
panoptica and many other tools use, 6 the face neighbours only."""


def check_connectivity(connectivity: int) -> Literal[6, 18, 26]:
    """Validate a 3-D connectivity: one of :data:`CONNECTIVITIES`."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity: expected one of {list(CONNECTIVITIES)}, found {connectivity!r}")
    return cast(Literal[6, 18, 26], int(connectivity))


Scenario = Literal["none", "S", "M"]
"""A case's lesion scenario: no lesion, a single lesion (S) or multiple lesions (M)."""


def check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """Validate a voxel spacing: three finite positive numbers in mm, ``(x, y, z)``."""
    try:
        values = tuple(float(v) for v in spacing)
    except (TypeError, ValueError) as err:
        raise ValueError(f"spacing: expected three positive numbers in mm, found {spacing!r}") from err
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing: expected three finite positive numbers in mm (x, y, z), found {values}")
    return values  # type: ignore[return-value]


def voxel_volume_ml(spacing: Sequence[float]) -> float:
    """Volume of one voxel in ml (``sx * sy * sz / 1000``, spacing in mm).

    Examples
    --------
    >>> voxel_volume_ml((4.0, 4.0, 2.0))
    0.032
    """
    sx, sy, sz = check_spacing(spacing)
    return sx * sy * sz / 1000.0


Box = tuple[slice, slice, slice]
"""A bounding box as one slice per axis."""


def _raw_mask(mask: np.ndarray, name: str) -> np.ndarray:
    arr = np.asanyarray(mask)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a 3-D (x, y, z) mask, found shape {arr.shape}")
    if not (
        arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name}: expected a bool, integer or float 0/1 mask, found dtype {arr.dtype}")
    return arr


def bbox(mask: np.ndarray) -> Box | None:
    """Bounding box of the nonzero voxels of a 3-D array (two reductions over the volume), or None.

    Examples
    --------
    >>> m = np.zeros((4, 5, 6), np.uint8); m[1, 2, 3] = m[2, 2, 5] = 1
    >>> bbox(m)
    (slice(1, 3, None), slice(2, 3, None), slice(3, 6, None))
    """
    proj_xy = np.any(mask, axis=2)
    xs = np.flatnonzero(np.any(proj_xy, axis=1))
    if xs.size == 0:
        return None
    ys = np.flatnonzero(np.any(proj_xy, axis=0))
    zs = np.flatnonzero(np.any(mask, axis=(0, 1)))
    return (
        slice(int(xs[0]), int(xs[-1]) + 1),
        slice(int(ys[0]), int(ys[-1]) + 1),
        slice(int(zs[0]), int(zs[-1]) + 1),
    )


def _binary_crop(arr: np.ndarray, box: Box, name: str) -> np.ndarray:
    """``arr[box] != 0`` after checking that the values there are 0 or 1 (outside the box all are 0)."""
    sub = arr[box]
    if sub.dtype == np.bool_:
        return np.ascontiguousarray(sub)
    if np.issubdtype(sub.dtype, np.unsignedinteger):
        ok = sub.max() <= 1
        fg = sub != 0
    else:
        fg = sub != 0  # NaN counts as foreground here and is refused just below
        values = sub[fg]
        ok = bool(np.all(values == 1))
    if not ok:
        sub_bad = sub[(sub != 0) & (sub != 1)]
        found = np.unique(sub_bad)[:5]
        raise ValueError(
            f"{name}: expected a binary mask with values 0/1, found other values such as {found.tolist()} "
            f"(dtype {arr.dtype}); binarise it first, e.g. mask > 0"
        )
    return fg


def _flat_nonzero_bytes(flat_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending indices and values of the nonzero entries of a 1-D uint8 array.

    The array is scanned as 64-bit words (8 voxels at a time, a few times faster than
    ``np.flatnonzero`` on a sparse mask); only the nonzero words are expanded to bytes.
    """
    n = flat_bytes.size
    n8 = n - n % 8
    head = flat_bytes[:n8]
    words = np.flatnonzero(head.view(np.uint64) != 0) if n8 else np.zeros(0, dtype=np.intp)
    blocks = head.reshape(-1, 8)[words]
    row, col = np.nonzero(blocks)
    tail = np.flatnonzero(flat_bytes[n8:])
    index = np.concatenate([words[row] * 8 + col, tail + n8])
    values = np.concatenate([blocks[row, col], flat_bytes[n8:][tail]])
    return index, values


def _byte_mask_nonzero(arr: np.ndarray) -> tuple[np.ndarray, Literal["C", "F"]] | None:
    """Foreground of a contiguous 0/1 ``bool`` / ``uint8`` array (NIfTI label data as stored).

    Returns the ascending flat indices in the array's memory order and that order (``"C"`` when the
    array is both), read in one pass by :func:`_flat_nonzero_bytes`; ``None`` for any other array
    (another dtype, not contiguous, a value above 1), which the caller searches the general way.
    """
    if arr.itemsize != 1 or arr.dtype not in (np.bool_, np.uint8):
        return None
    order: Literal["C", "F"]
    if arr.flags.c_contiguous:
        order = "C"
    elif arr.flags.f_contiguous:
        order = "F"
    else:
        return None
    flat, values = _flat_nonzero_bytes(arr.reshape(-1, order=order).view(np.uint8))
    if values.size and values.max() > 1:
        return None
    return flat, order


def nonzero_coords(arr: np.ndarray) -> np.ndarray:
    """Indices ``(N, 3)`` of the nonzero voxels in C order (like ``np.argwhere``, several times faster)."""
    flat = np.flatnonzero(arr)
    return np.stack(np.unravel_index(flat, arr.shape), axis=1).astype(np.int64, copy=False)


def mask_crop(mask: np.ndarray, name: str = "mask") -> tuple[np.ndarray, Box | None]:
    """Validate a binary mask and return ``(foreground inside its bounding box, box)``.

    The full volume is read only to find the box; values are checked inside it. An empty mask
    gives ``(empty array, None)``.
    """
    arr = _raw_mask(mask, name)
    box = bbox(arr)
    if box is None:
        return np.zeros((0, 0, 0), dtype=bool), None
    return _binary_crop(arr, box, name), box


def foreground_coords(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Indices ``(N, 3)`` of the foreground voxels of a binary mask, in the array's memory order.

    Bool and unsigned 0/1 arrays (NIfTI label data) are read in one pass as booleans; other dtypes
    are validated and searched inside their bounding box.

    Examples
    --------
    >>> m = np.zeros((3, 3, 3), np.uint8); m[2, 0, 1] = m[0, 1, 2] = 1
    >>> sorted(map(tuple, foreground_coords(m).tolist()))
    [(0, 1, 2), (2, 0, 1)]
    """
    arr = _raw_mask(mask, name)
    found = _byte_mask_nonzero(arr)
    if found is not None:
        flat, order_1 = found
        return np.stack(np.unravel_index(flat, arr.shape, order=order_1), axis=1).astype(np.int64, copy=False)
    if arr.dtype == np.bool_ or (np.issubdtype(arr.dtype, np.unsignedinteger) and arr.max(initial=0) <= 1):
        b = arr if arr.dtype == np.bool_ else (arr.view(np.bool_) if arr.itemsize == 1 else arr != 0)
        order: Literal["C", "F"] = "F" if (b.flags.f_contiguous and not b.flags.c_contiguous) else "C"
        flat = np.flatnonzero(b.ravel(order=order))
        return np.stack(np.unravel_index(flat, b.shape, order=order), axis=1).astype(np.int64, copy=False)
    crop, box = mask_crop(arr, name)
    if box is None:
        return np.zeros((0, 3), dtype=np.int64)
    offset = np.array([sl.start for sl in box], dtype=np.int64)
    return nonzero_coords(crop) + offset


def as_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Return a 3-D boolean array of a binary mask, or raise a ValueError naming what was found.

    Accepted: ``bool`` arrays, and integer or float arrays whose values are all 0 or 1 (what
    NIfTI label files hold). Anything else (a probability map, a multi-label map, NaN) is refused:
    threshold or binarise it first, e.g. ``mask > 0``.

    Examples
    --------
    >>> as_mask(np.array([0.0, 1.0, 1.0]).reshape(3, 1, 1)).ravel().tolist()
    [False, True, True]
    """
    arr = _raw_mask(mask, name)
    if arr.dtype == np.bool_:
        return arr
    crop, box = mask_crop(arr, name)
    out = np.zeros(arr.shape, dtype=bool)
    if box is not None:
        out[box] = crop
    return out


def label_components(mask: np.ndarray, connectivity: int = CONNECTIVITY) -> tuple[np.ndarray, int]:
    """Label the connected components (18-connected by default) of a binary mask with ``cc3d``.

    Labels are ``1..n`` in the order of each component's first voxel in C order of the
    ``(x, y, z)`` array (cc3d's raster order on a C-contiguous array, the numbering of
    ``scipy.ndimage.label``), whatever the memory layout of the input; 0 is background.

    Examples
    --------
    >>> m = np.zeros((5, 1, 1), bool); m[0] = m[1] = m[3] = True
    >>> labels, n = label_components(m)
    >>> n, labels.ravel().tolist()
    (2, [1, 1, 0, 2, 0])
    """
    arr = np.ascontiguousarray(as_mask(mask)).view(np.uint8)
    labels, n = cc3d.connected_components(arr, connectivity=check_connectivity(connectivity), return_N=True)
    return np.asarray(labels), int(n)


def scenario(n_gt_lesions: int) -> Scenario:
    """Lesion scenario of a case (paper 2.7): ``"S"`` one lesion, ``"M"`` two or more, ``"none"`` none.

    Examples
    --------
    >>> [scenario(n) for n in (0, 1, 2, 7)]
    ['none', 'S', 'M', 'M']
    """
    if n_gt_lesions < 0:
        raise ValueError(f"n_gt_lesions: expected a count >= 0, found {n_gt_lesions}")
    return "none" if n_gt_lesions == 0 else ("S" if n_gt_lesions == 1 else "M")


@dataclass(frozen=True)
class Components:
    """The 18-connected components of a ground truth and a predicted mask and how they overlap.

    Built once per case by :func:`components`; every metric reads it.

    Attributes
    ----------
    shape : tuple of int
        Shape of the full grid.
    spacing : tuple of float
        Voxel spacing in mm ``(x, y, z)``.
    n_gt, n_pred : int
        Number of ground-truth lesions and predicted components.
    gt_coords : ndarray (N, 3) int
        Grid indices of the ground-truth voxels, in C order of the ``(x, y, z)`` array.
    gt_voxel_label : ndarray (N,)
        Lesion label (1..n_gt) of each ground-truth voxel.
    gt_voxel_pred : ndarray (N,)
        Predicted component label (0 = not predicted) at each ground-truth voxel.
    gt_sizes, pred_sizes : ndarray (n + 1,) int
        Voxels per component; index 0 is unused (0).
    pairs : ndarray (K, 2) int
        ``(gt label, pred label)`` of every overlapping pair, sorted.
    pair_overlap : ndarray (K,) int
        Voxels shared by each pair.
    pred_coords : ndarray (M, 3) int
        Grid indices of the predicted voxels, in C order (for prediction-side SUV, TLA and Dmax).
    pred_voxel_label : ndarray (M,)
        Predicted component label (1..n_pred) of each predicted voxel.
    connectivity : int
        The connectivity both masks were labelled with (6, 18 or 26).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    n_gt: int
    n_pred: int
    gt_coords: np.ndarray
    gt_voxel_label: np.ndarray
    gt_voxel_pred: np.ndarray
    gt_sizes: np.ndarray
    pred_sizes: np.ndarray
    pairs: np.ndarray
    pair_overlap: np.ndarray
    pred_coords: np.ndarray
    pred_voxel_label: np.ndarray
    connectivity: int = CONNECTIVITY

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in ml."""
        return voxel_volume_ml(self.spacing)

    @property
    def gt_voxels(self) -> int:
        """``|G|``: ground-truth voxels."""
        return int(self.gt_sizes.sum())

    @property
    def pred_voxels(self) -> int:
        """``|P|``: predicted voxels."""
        return int(self.pred_sizes.sum())

    @property
    def overlap_voxels(self) -> int:
        """``|G ∩ P|``."""
        return int(self.pair_overlap.sum())

    def gt_overlapped(self) -> np.ndarray:
        """Boolean ``(n_gt + 1,)``: ground-truth lesion overlaps any predicted voxel (index 0 False)."""
        out = np.zeros(self.n_gt + 1, dtype=bool)
        out[self.pairs[:, 0]] = True
        return out

    def pred_overlapped(self) -> np.ndarray:
        """Boolean ``(n_pred + 1,)``: predicted component overlaps any ground-truth voxel (index 0 False)."""
        out = np.zeros(self.n_pred + 1, dtype=bool)
        out[self.pairs[:, 1]] = True
        return out

    def overlap_matrix(self) -> np.ndarray:
        """Dense ``(n_gt + 1, n_pred + 1)`` matrix of shared voxels (row/column 0 unused)."""
        out = np.zeros((self.n_gt + 1, self.n_pred + 1), dtype=np.int64)
        out[self.pairs[:, 0], self.pairs[:, 1]] = self.pair_overlap
        return out


def _union_box(a: Box | None, b: Box | None) -> Box | None:
    if a is None or b is None:
        return a if b is None else b
    return (
        slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
        slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
        slice(min(a[2].start, b[2].start), max(a[2].stop, b[2].stop)),
    )


def components(
    gt: np.ndarray,
    pred: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    connectivity: int = CONNECTIVITY,
) -> Components:
    """Label ``gt`` and ``pred`` once (18-connectivity unless ``connectivity`` says 6 or 26) and tabulate their overlap.

    Parameters
    ----------
    gt, pred : ndarray (x, y, z)
        Binary masks on the same grid (bool or 0/1 integers/floats).
    spacing : sequence of 3 float
        Voxel spacing in mm, same axis order.

    Examples
    --------
    >>> g = np.zeros((6, 1, 1), bool); g[0:2] = True; g[4] = True
    >>> p = np.zeros_like(g); p[1:3] = True
    >>> c = components(g, p)
    >>> c.n_gt, c.n_pred, c.pairs.tolist(), c.pair_overlap.tolist()
    (2, 1, [[1, 1]], [1])
    """
    spacing_t = check_spacing(spacing)
    connectivity = check_connectivity(connectivity)
    g_raw = _raw_mask(gt, "gt")
    p_raw = _raw_mask(pred, "pred")
    if g_raw.shape != p_raw.shape:
        raise ValueError(f"gt and pred must share one grid: gt shape {g_raw.shape}, pred shape {p_raw.shape}")
    shape = (int(g_raw.shape[0]), int(g_raw.shape[1]), int(g_raw.shape[2]))
    empty_i = np.zeros(0, dtype=np.int64)
    box = _union_box(bbox(g_raw), bbox(p_raw))
    if box is None:
        return Components(
            shape,
            spacing_t,
            0,
            0,
            np.zeros((0, 3), np.int64),
            empty_i,
            empty_i,
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros((0, 2), np.int64),
            empty_i,
            np.zeros((0, 3), np.int64),
            empty_i,
            connectivity,
        )
    g_b = np.ascontiguousarray(_binary_crop(g_raw, box, "gt"))
    p_b = np.ascontiguousarray(_binary_crop(p_raw, box, "pred"))
    g_lab, n_gt = label_components(g_b, connectivity)
    p_lab, n_pred = label_components(p_b, connectivity)
    g_flat = np.flatnonzero(g_b)  # C order
    gl = g_lab.ravel()[g_flat].astype(np.int64)
    gp = p_lab.ravel()[g_flat].astype(np.int64)
    p_flat = np.flatnonzero(p_b)
    pl = p_lab.ravel()[p_flat].astype(np.int64)
    gt_sizes = np.bincount(gl, minlength=n_gt + 1)
    pred_sizes = np.bincount(pl, minlength=n_pred + 1)
    both = gp > 0
    code = gl[both] * (n_pred + 1) + gp[both]
    uniq, counts = np.unique(code, return_counts=True)
    pairs = np.stack([uniq // (n_pred + 1), uniq % (n_pred + 1)], axis=1)
    offset = np.array([box[0].start, box[1].start, box[2].start], dtype=np.int64)
    coords = np.stack(np.unravel_index(g_flat, g_b.shape), axis=1).astype(np.int64) + offset
    p_coords = np.stack(np.unravel_index(p_flat, p_b.shape), axis=1).astype(np.int64) + offset
    return Components(
        shape,
        spacing_t,
        n_gt,
        n_pred,
        coords,
        gl,
        gp,
        gt_sizes,
        pred_sizes,
        pairs,
        counts.astype(np.int64),
        p_coords,
        pl,
        connectivity,
    )
