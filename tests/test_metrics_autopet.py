"""autoPET metrics on the real autoPET PSMA sample equal a plain implementation of the official definition.

The reference below follows the official evaluation (``lab-midas/autoPET`` ``val_script.py``):
masks read with ``get_fdata()``, 18-connected components, and for every component a scan of the
full volume to see whether it overlaps the other mask; volumes from the header's voxel size.
"""

from __future__ import annotations

import cc3d
import nibabel as nib
import numpy as np
import pytest

from pcatools.metrics import autopet_metrics, dmax, dmax_bruteforce, evaluate_case

SAMPLE = "autopet-psma-sample"


def _read(path):
    img = nib.load(str(path))
    return img.get_fdata(), img.header


def _official(gt: np.ndarray, pred: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Dice, FPV, FNV by the published definition: one full-volume overlap test per component."""
    gt_b, pred_b = gt > 0, pred > 0
    pred_cc, n_pred = cc3d.connected_components(pred_b, connectivity=18, return_N=True)
    fp_vox = 0
    for idx in range(1, n_pred + 1):
        comp = pred_cc == idx
        if not np.any(comp & gt_b):
            fp_vox += int(np.count_nonzero(comp))
    gt_cc, n_gt = cc3d.connected_components(gt_b, connectivity=18, return_N=True)
    fn_vox = 0
    for idx in range(1, n_gt + 1):
        comp = gt_cc == idx
        if not np.any(comp & pred_b):
            fn_vox += int(np.count_nonzero(comp))
    dsc = 2 * (gt * pred).sum() / (gt.sum() + pred.sum())
    return {
        "dice": float(dsc),
        "fpv_ml": fp_vox * voxel_ml,
        "fnv_ml": fn_vox * voxel_ml,
        "fp_vox": fp_vox,
        "fn_vox": fn_vox,
        "n_gt": n_gt,
        "n_pred": n_pred,
    }


@pytest.fixture(scope="module")
def sample(shared_data):
    d = shared_data / SAMPLE
    gt, hdr = _read(d / "orig_label.nii.gz")
    return d, gt, hdr


@pytest.mark.parametrize("pred_name", ["pred_nnunet", "pred_dc"])
def test_equal_to_official_definition(sample, pred_name):
    d, gt, hdr = sample
    pred, pred_hdr = _read(d / f"{pred_name}.nii.gz")
    assert gt.shape == pred.shape == (200, 200, 448)
    spacing = tuple(float(z) for z in hdr.get_zooms()[:3])
    assert spacing == pytest.approx((4.07283, 4.07283, 2.0), rel=1e-6)
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    ref = _official(gt, pred, voxel_ml)

    ours = autopet_metrics(gt, pred, spacing)
    assert ours["dice"] == ref["dice"]
    assert ours["fpv_ml"] == ref["fpv_ml"]
    assert ours["fnv_ml"] == ref["fnv_ml"]

    case = evaluate_case(gt.astype(np.uint8), pred.astype(np.uint8), None, spacing, criterion="overlap")
    assert (case["dice"], case["fpv_ml"], case["fnv_ml"]) == (ref["dice"], ref["fpv_ml"], ref["fnv_ml"])
    assert case["n_gt_lesions"] == ref["n_gt"] == 112
    assert case["n_pred_lesions"] == ref["n_pred"]
    assert case["tmtv_ml"] == 12996 * voxel_ml

    # the official script multiplies by a float32 voxel size from pixdim: same numbers to float32 precision
    pix = hdr["pixdim"]
    vox32 = pix[1] * pix[2] * pix[3] / 1000
    assert ours["fpv_ml"] == pytest.approx(ref["fp_vox"] * vox32, rel=1e-6)
    assert ours["fnv_ml"] == pytest.approx(ref["fn_vox"] * vox32, rel=1e-6)
    assert ref["fp_vox"] > 0 and ref["fn_vox"] > 0  # both branches are exercised


@pytest.mark.parametrize(
    ("pred_name", "n_pred", "overlap", "fp_vox", "fn_vox"),
    [("pred_nnunet", 88, 10304, 83, 754), ("pred_dc", 98, 10017, 150, 564)],
)
def test_known_sample_values(sample, pred_name, n_pred, overlap, fp_vox, fn_vox):
    """Pinned voxel counts of the sample (from the slow reference above), guarding the data itself."""
    d, gt, hdr = sample
    pred, _ = _read(d / f"{pred_name}.nii.gz")
    spacing = tuple(float(z) for z in hdr.get_zooms()[:3])
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    r = evaluate_case(gt.astype(bool), pred.astype(bool), None, spacing, criterion="overlap")
    assert r["n_pred_lesions"] == n_pred
    assert r["dice"] == 2 * overlap / (12996 + int(pred.sum()))
    assert (r["fpv_ml"], r["fnv_ml"]) == (fp_vox * voxel_ml, fn_vox * voxel_ml)


def test_dmax_of_sample_equals_brute_force(sample):
    _, gt, hdr = sample
    spacing = tuple(float(z) for z in hdr.get_zooms()[:3])
    assert dmax(gt, spacing) == dmax_bruteforce(gt, spacing)
