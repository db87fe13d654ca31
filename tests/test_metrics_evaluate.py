"""evaluate_case keys and evaluate_cohort on small NIfTI files (serial and parallel)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pcatools.data.errors import DataError
from pcatools.metrics import CASE_COLUMNS, LESION_COLUMNS, evaluate_case, evaluate_cohort

REQUIRED = {
    "dice",
    "tp",
    "fp",
    "fn",
    "f1",
    "fpv_ml",
    "fnv_ml",
    "tmtv_ml",
    "tla",
    "dmax_mm",
    "n_gt_lesions",
    "n_pred_lesions",
}
SPACING = (2.0, 2.5, 4.0)  # 0.02 ml voxels
AFFINE = np.diag([*SPACING, 1.0])


def _save(arr, path, affine=AFFINE):
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return str(path)


def _case(kind: str):
    """Hand-built (gt, pred, suv) with known answers."""
    gt = np.zeros((8, 8, 8), np.uint8)
    pred = np.zeros_like(gt)
    suv = np.ones(gt.shape, np.float32)
    if kind == "single":  # one lesion 2x2x2, predicted exactly
        gt[1:3, 1:3, 1:3] = 1
        pred[1:3, 1:3, 1:3] = 1
        suv[2, 2, 2] = 7.0
    elif kind == "multi":  # two lesions, one found, plus one false positive voxel
        gt[0:2, 0, 0] = 1
        gt[6, 6, 4:7] = 1
        pred[0:2, 0, 0] = 1
        pred[4, 0, 7] = 1
        suv[1, 0, 0] = 5.0
        suv[6, 6, 6] = 9.0
    return gt, pred, suv


def test_case_keys_and_known_values():
    gt, pred, suv = _case("multi")
    r = evaluate_case(gt, pred, suv, SPACING)
    assert REQUIRED <= set(r) and list(r) == list(CASE_COLUMNS)
    vox = 2.0 * 2.5 * 4.0 / 1000
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)
    assert r["f1"] == 1 / (1 + 1)
    assert r["dice"] == 2 * 2 / (5 + 3)
    assert r["fpv_ml"] == 1 * vox and r["fnv_ml"] == 3 * vox and r["tmtv_ml"] == 5 * vox
    assert r["tla"] == pytest.approx((1 + 5 + 1 + 1 + 9) * vox)
    # Dmax between voxel (0,0,0) and (6,6,6): eq. 15 with anisotropic spacing
    assert r["dmax_mm"] == pytest.approx(np.sqrt((6 * 2.0) ** 2 + (6 * 2.5) ** 2 + (6 * 4.0) ** 2))
    assert (r["n_gt_lesions"], r["n_pred_lesions"], r["scenario"], r["suvmax"]) == (2, 2, "M", 9.0)


@pytest.fixture()
def manifest(tmp_path):
    rows = []
    for i, (kind, net, loss) in enumerate(
        [("single", "segresnet", "dice"), ("multi", "segresnet", "l1dfl"), ("none", "attention_unet", "dice")]
    ):
        gt, pred, suv = _case(kind)
        rows.append(
            {
                "case_id": f"c{i}",
                "patient_id": f"p{i // 2}",
                "network": net,
                "loss": loss,
                "label": _save(gt, tmp_path / f"c{i}_label.nii.gz"),
                "pred": _save(pred, tmp_path / f"c{i}_pred.nii.gz"),
                "pet": _save(suv, tmp_path / f"c{i}_pet.nii.gz"),
                "tmtv_ml": -1.0,  # clashes with a computed column: replaced
            }
        )
    return pd.DataFrame(rows)


def test_cohort_serial(manifest):
    cases, lesions = evaluate_cohort(manifest, workers=0, progress=False)
    assert list(cases.columns[:7]) == ["case_id", "patient_id", "network", "loss", "label", "pred", "pet"]
    assert cases["case_id"].tolist() == ["c0", "c1", "c2"]
    assert cases["scenario"].tolist() == ["S", "M", "none"]
    vox = 2.0 * 2.5 * 4.0 / 1000
    assert cases["tmtv_ml"].tolist() == pytest.approx([8 * vox, 5 * vox, 0.0])
    assert cases["dice"].tolist() == [1.0, 0.5, 1.0]
    for i in range(2):
        gt, pred, suv = _case(["single", "multi"][i])
        expected = evaluate_case(gt, pred, suv, SPACING)
        got = cases.iloc[i][list(CASE_COLUMNS)].to_dict()
        for k in CASE_COLUMNS:
            assert got[k] == expected[k] or (pd.isna(got[k]) and pd.isna(expected[k])), k
    # lesions: carried columns, then the lesion columns and the scenario of the case
    assert list(lesions.columns) == [
        *[c for c in manifest.columns if c != "tmtv_ml"],
        *LESION_COLUMNS,
        "scenario",
    ]
    assert lesions["case_id"].tolist() == ["c0", "c1", "c1"]
    assert lesions["scenario"].tolist() == ["S", "M", "M"]
    assert lesions["suvmax"].tolist() == [7.0, 5.0, 9.0]
    assert lesions["dice"].tolist() == [1.0, 1.0, 0.0]


def test_cohort_parallel_equals_serial(manifest, tmp_path):
    csv = tmp_path / "manifest.csv"
    manifest.to_csv(csv, index=False)
    serial = evaluate_cohort(manifest, workers=0, progress=False)
    parallel = evaluate_cohort(csv, workers=2, progress=False)  # also reads a CSV path
    pd.testing.assert_frame_equal(serial[0], parallel[0], check_dtype=False)
    pd.testing.assert_frame_equal(serial[1], parallel[1], check_dtype=False)


def test_cohort_bad_input(manifest, tmp_path):
    with pytest.raises(KeyError, match="'pred'"):
        evaluate_cohort(manifest.drop(columns="pred"), workers=0, progress=False)
    bad = manifest.copy()
    bad.loc[0, "pred"] = _save(np.zeros((8, 8, 9), np.uint8), tmp_path / "bad_pred.nii.gz")
    with pytest.raises(ValueError, match="not on the grid"):
        evaluate_cohort(bad, workers=0, progress=False)
    bad.loc[0, "pred"] = str(tmp_path / "missing.nii.gz")
    with pytest.raises(DataError, match=r"case .*: prediction file not found: .*missing.nii.gz"):
        evaluate_cohort(bad, workers=0, progress=False)


def test_cohort_without_pet_warns_and_uses_overlap(manifest):
    with pytest.warns(UserWarning, match="needs PET"):
        cases, lesions = evaluate_cohort(manifest.drop(columns="pet"), workers=0, progress=False)
    assert set(cases["criterion"]) == {"overlap"}
    assert lesions["suvmax"].isna().all() and cases["tla"].isna().all()
