"""Benchmark: ``evaluate_case`` and ``dmax`` against the official autoPET approach and brute-force Dmax.

What is measured, on the real autoPET PSMA sample in ``../shared/data/autopet-psma-sample``
(200 x 200 x 448 voxels at 4.07 x 4.07 x 2 mm; ground truth with 12,996 lesion voxels in 112
lesions; predictions ``pred_nnunet`` and, with ``--all``, ``pred_dc``):

1. **Official autoPET evaluation approach** (``lab-midas/autoPET`` ``val_script.py``, also in Ahamed
   et al.'s code): masks as ``get_fdata()`` float64 arrays, 18-connected components with cc3d, then
   for every component a full-volume ``np.isin`` mask and a full-volume product to test overlap
   (false positive and false negative volumes), and Dice on the whole arrays. Timed once (slow).
2. **pcatools** ``evaluate_case(gt, pred, suv, spacing)`` on the same float64 arrays: every metric
   of the paper (Dice, SUVmax detection TP/FP/FN, F1, FPV, FNV, TMTV, TLA, Dmax, lesion counts),
   each mask labelled once. The sample has no PET, so a seeded synthetic SUV map (gamma
   distributed) is passed to exercise the default SUVmax criterion; ``criterion="overlap"``
   without SUV is timed as well, and the uint8 arrays as stored in the files (what
   ``evaluate_cohort`` passes). Best of 5 runs.
3. **Dmax**: brute force over all pairs of the 12,996 ground-truth voxels (eq. 15, chunked
   ``scipy.spatial.distance.cdist``) against ``pcatools.metrics.dmax`` (convex hull), both from
   the mask as stored (uint8), both from the float64 mask, and both from the voxel coordinates
   (the algorithms alone). Best of 3 (brute force) / 5 runs.

Loading the NIfTI files is not timed. Volumes use the header voxel size in float64 on both sides
(the official script multiplies float32 ``pixdim`` values, which differs in the 7th digit). The
script prints times, ratios (official / pcatools) and whether the numbers are identical (Dice,
FPV, FNV, Dmax: exact float equality).

Run: ``python benchmarks/metrics.py [--all] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cc3d
import nibabel as nib
import numpy as np

from pcatools.metrics import dmax, dmax_bruteforce, dmax_points, evaluate_case, max_pairwise_distance

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "autopet-psma-sample"


# ---- the official autoPET evaluation (val_script.py), as published -------------------------


def official_con_comp(seg_array: np.ndarray) -> np.ndarray:
    return cc3d.connected_components(seg_array, connectivity=18)


def official_false_pos_pix(gt_array: np.ndarray, pred_array: np.ndarray) -> float:
    pred_conn_comp = official_con_comp(pred_array)
    false_pos = 0
    for idx in range(1, int(pred_conn_comp.max()) + 1):
        comp_mask = np.isin(pred_conn_comp, idx)
        if (comp_mask * gt_array).sum() == 0:
            false_pos = false_pos + comp_mask.sum()
    return false_pos


def official_false_neg_pix(gt_array: np.ndarray, pred_array: np.ndarray) -> float:
    gt_conn_comp = official_con_comp(gt_array)
    false_neg = 0
    for idx in range(1, int(gt_conn_comp.max()) + 1):
        comp_mask = np.isin(gt_conn_comp, idx)
        if (comp_mask * pred_array).sum() == 0:
            false_neg = false_neg + comp_mask.sum()
    return false_neg


def official_compute_metrics(
    gt_array: np.ndarray, pred_array: np.ndarray, voxel_vol: float
) -> dict[str, float]:
    false_neg_vol = official_false_neg_pix(gt_array, pred_array) * voxel_vol
    false_pos_vol = official_false_pos_pix(gt_array, pred_array) * voxel_vol
    overlap = (gt_array * pred_array).sum()
    dice_sc = 2 * overlap / (gt_array.sum() + pred_array.sum())
    return {"dice": float(dice_sc), "fpv_ml": float(false_pos_vol), "fnv_ml": float(false_neg_vol)}


# ---- timing helpers --------------------------------------------------------------------------


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="autopet-psma-sample folder")
    parser.add_argument("--all", action="store_true", help="also run pred_dc (another ~minute)")
    args = parser.parse_args()

    img = nib.load(str(args.data / "orig_label.nii.gz"))
    gt = img.get_fdata()  # type: ignore[attr-defined]
    gt_u8 = np.asanyarray(img.dataobj)  # type: ignore[attr-defined]
    zooms = img.header.get_zooms()[:3]  # type: ignore[attr-defined]
    spacing = (float(zooms[0]), float(zooms[1]), float(zooms[2]))
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    suv = np.random.default_rng(0).gamma(2.0, 2.0, gt.shape).astype(np.float32)
    print(f"ground truth: shape {gt.shape}, spacing {spacing} mm, {int(gt.sum())} lesion voxels")

    total_official = total_ours = 0.0
    identical = True
    for name in ["pred_nnunet", "pred_dc"] if args.all else ["pred_nnunet"]:
        pred_img = nib.load(str(args.data / f"{name}.nii.gz"))
        pred = pred_img.get_fdata()  # type: ignore[attr-defined]
        pred_u8 = np.asanyarray(pred_img.dataobj)  # type: ignore[attr-defined]
        t_off, off = best_of(lambda pred=pred: official_compute_metrics(gt, pred, voxel_ml), 1)
        t_ours, ours = best_of(lambda pred=pred: evaluate_case(gt, pred, suv, spacing), 5)
        t_ovl, ovl = best_of(lambda pred=pred: evaluate_case(gt, pred, None, spacing, criterion="overlap"), 5)
        t_u8, u8 = best_of(lambda pred_u8=pred_u8: evaluate_case(gt_u8, pred_u8, suv, spacing), 5)
        same = all(off[k] == ours[k] == ovl[k] == u8[k] for k in ("dice", "fpv_ml", "fnv_ml"))
        identical &= same
        total_official += t_off
        total_ours += t_ours
        print(f"\n[{name}] {ours['n_pred_lesions']} predicted components")
        print(f"  official autoPET approach : {t_off * 1e3:10.1f} ms  dice/fpv/fnv only")
        print(
            f"  evaluate_case (SUVmax)    : {t_ours * 1e3:10.1f} ms  all metrics  -> {t_off / t_ours:7.1f}x faster"
        )
        print(
            f"  evaluate_case (overlap)   : {t_ovl * 1e3:10.1f} ms  no SUV       -> {t_off / t_ovl:7.1f}x faster"
        )
        print(
            f"  evaluate_case (uint8)     : {t_u8 * 1e3:10.1f} ms  as stored    -> {t_off / t_u8:7.1f}x faster"
        )
        print(f"  official: dice {off['dice']!r} fpv_ml {off['fpv_ml']!r} fnv_ml {off['fnv_ml']!r}")
        print(f"  pcatools: dice {ours['dice']!r} fpv_ml {ours['fpv_ml']!r} fnv_ml {ours['fnv_ml']!r}")
        print(f"  identical: {same}")

    coords = np.argwhere(gt_u8)
    s = np.asarray(spacing)
    t_bf, d_bf = best_of(lambda: dmax_bruteforce(gt_u8, spacing), 3)
    t_hull, d_hull = best_of(lambda: dmax(gt_u8, spacing), 5)
    t_bf64, d_bf64 = best_of(lambda: dmax_bruteforce(gt, spacing), 3)
    t_hull64, d_hull64 = best_of(lambda: dmax(gt, spacing), 5)
    t_bf_pts, d_bf_pts = best_of(lambda: max_pairwise_distance(coords * s), 3)
    t_hull_pts, d_hull_pts = best_of(lambda: dmax_points(coords, spacing), 5)
    dmax_same = d_bf == d_hull == d_bf64 == d_hull64 == d_bf_pts == d_hull_pts
    print(f"\n[Dmax of the ground truth, {len(coords)} voxels] {d_hull!r} mm")
    for label, tb, th in (
        ("uint8 mask (file)", t_bf, t_hull),
        ("float64 mask     ", t_bf64, t_hull64),
        ("voxel coordinates", t_bf_pts, t_hull_pts),
    ):
        print(
            f"  {label}: brute force {tb * 1e3:8.1f} ms, convex hull {th * 1e3:7.2f} ms -> {tb / th:7.1f}x faster"
        )
    print(f"  identical: {dmax_same}")

    print("\nsummary")
    print(f"  evaluate_case vs official autoPET approach: {total_official / total_ours:7.1f}x (goal >= 50x)")
    print(f"  Dmax convex hull vs brute force (uint8)   : {t_bf / t_hull:7.1f}x (goal >= 100x)")
    print(f"  all numbers identical: {identical and dmax_same}")


if __name__ == "__main__":
    main()
