"""Loading cases and discovering them in the nnU-Net, autoPET and flat layouts (issue 2, item 4)."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pcatools.data.case import Case, layout_paths, write_case
from pcatools.data.discovery import MANIFEST_COLUMNS, discover_cases, patient_ids
from pcatools.data.errors import DataError
from pcatools.data.io import count_lesions, describe_grid, load_case, load_nifti, same_grid
from pcatools.data.manifest import read_manifest

SHAPE = (24, 20, 16)
SPACING = (4.0, 4.0, 4.0)
VOXEL_ML = 4.0 * 4.0 * 4.0 / 1000.0


def affine(
    spacing: tuple[float, float, float] = SPACING, origin: tuple[float, float, float] = (-40.0, -30.0, 10.0)
):
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = origin
    return a


def lesion_label(n_lesions: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """``n_lesions`` separate 2x2x2 cubes (8 voxels each), 4 voxels apart along x."""
    label = np.zeros(shape, np.uint8)
    for i in range(n_lesions):
        label[2 + 5 * i : 4 + 5 * i, 4:6, 4:6] = 1
    return label


def make_case(case_id: str, n_lesions: int = 1, patient_id: str = "", seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    pet = rng.uniform(0.1, 5.0, SHAPE).astype(np.float32)
    ct = rng.uniform(-1000.0, 1500.0, SHAPE).astype(np.float32)
    return Case(case_id, pet, ct, lesion_label(n_lesions), affine(), patient_id=patient_id)


# ------------------------------------------------------------------------------------------------ load


def test_load_nifti_reads_values_affine_and_squeezes_singleton_4d(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1)
    nib.save(nib.Nifti1Image(data, affine()), tmp_path / "pet.nii.gz")
    img = load_nifti(tmp_path / "pet.nii.gz", "pet")
    assert img.shape == (2, 3, 4)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data[..., 0])
    np.testing.assert_allclose(img.affine, affine())


def test_load_nifti_applies_header_scaling(tmp_path: Path) -> None:
    # int16 stored 0..5 with scl_slope 0.5, scl_inter 1 -> 1.0 .. 3.5
    img = nib.Nifti1Image(np.arange(6, dtype=np.int16).reshape(1, 2, 3), np.eye(4))
    img.header.set_slope_inter(0.5, 1.0)
    nib.save(img, tmp_path / "pet.nii.gz")
    out = load_nifti(tmp_path / "pet.nii.gz", "pet")
    assert out.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asarray(out.dataobj).ravel(), [1.0, 1.5, 2.0, 2.5, 3.0, 3.5])


def test_load_nifti_label_float_01_becomes_uint8(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.array([[[0.0, 1.0, 1.0]]], np.float32), np.eye(4)), tmp_path / "l.nii.gz")
    out = np.asarray(load_nifti(tmp_path / "l.nii.gz", "label").dataobj)
    assert out.dtype == np.uint8 and out.ravel().tolist() == [0, 1, 1]


def test_load_case_returns_the_written_arrays(tmp_path: Path) -> None:
    case = make_case("c7", n_lesions=2, patient_id="p3")
    paths = write_case(case, tmp_path, "flat")
    loaded = load_case({"ct": paths["ct"], "pet": paths["pet"], "label": paths["label"], "patient_id": "p3"})
    assert loaded.case_id == "c7_pet"  # default: the PET file name
    assert loaded.patient_id == "p3"
    np.testing.assert_array_equal(loaded.pet, case.pet)
    np.testing.assert_array_equal(loaded.ct, case.ct)
    np.testing.assert_array_equal(loaded.label, case.label)
    np.testing.assert_allclose(loaded.affine, case.affine)
    assert loaded.spacing == SPACING
    assert loaded.meta["paths"]["pet"] == str(paths["pet"]) and loaded.meta["ct_resampled"] is False


def test_load_case_without_label(tmp_path: Path) -> None:
    paths = write_case(make_case("c1"), tmp_path, "flat")
    row = pd.Series(
        {"case_id": "c1", "ct": str(paths["ct"]), "pet": str(paths["pet"]), "label": float("nan")}
    )
    assert load_case(row).label is None


def test_load_case_resamples_ct_onto_pet_grid(tmp_path: Path) -> None:
    """CT on a 2 mm grid holding CT(x, y, z) = x_mm: trilinear resampling onto the 4 mm PET grid is exact.

    Outside the CT field of view (it covers only part of the PET box) the value is -1000 HU (air).
    """
    case = make_case("c1")
    paths = write_case(case, tmp_path, "flat")
    ct_aff = affine((2.0, 2.0, 2.0), origin=(-40.0, -30.0, 10.0))
    ct_shape = (30, 40, 32)  # x: -40 .. 18 mm, PET x: -40 .. 52 mm
    x_mm = ct_aff[0, 0] * np.arange(ct_shape[0]) + ct_aff[0, 3]
    ct = np.broadcast_to(x_mm[:, None, None], ct_shape).astype(np.float32)
    nib.save(nib.Nifti1Image(ct, ct_aff), paths["ct"])

    with pytest.raises(DataError, match="do not share one voxel grid"):
        load_case(paths)
    loaded = load_case(paths, resample_ct=True)
    assert loaded.meta["ct_resampled"] is True
    assert loaded.ct.shape == SHAPE
    pet_x = 4.0 * np.arange(SHAPE[0]) - 40.0
    inside = pet_x <= 18.0
    np.testing.assert_allclose(loaded.ct[inside, 5, 5], pet_x[inside], atol=1e-3)
    np.testing.assert_array_equal(loaded.ct[pet_x > 18.5, 5, 5], -1000.0)


def test_same_grid_tolerance_and_describe() -> None:
    a = affine()
    b = a.copy()
    b[:3, 3] += 0.005  # within 0.01 mm
    c = a.copy()
    c[:3, 3] += 0.5
    assert same_grid(SHAPE, a, SHAPE, b) and not same_grid(SHAPE, a, SHAPE, c)
    assert not same_grid(SHAPE, a, (24, 20, 17), a)
    # a spacing error of 0.001 mm grows to 0.023 mm at the far corner: not the same grid
    d = a.copy()
    d[0, 0] += 0.001
    assert not same_grid(SHAPE, a, SHAPE, d)
    assert describe_grid(SHAPE, a) == (
        "shape (24, 20, 16), spacing (4.0, 4.0, 4.0) mm, origin (-40.0, -30.0, 10.0) mm, orientation RAS"
    )


def test_count_lesions_uses_18_connectivity() -> None:
    m = np.zeros((6, 6, 6), np.uint8)
    m[0, 0, 0] = m[1, 1, 0] = 1  # edge neighbours: one 18-connected lesion
    m[3, 3, 3] = m[4, 4, 4] = 1  # corner neighbours only: two lesions with 18-connectivity
    assert count_lesions(m) == 3
    assert count_lesions(lesion_label(4)) == 4


# ------------------------------------------------------------------------------------------- discovery

LESIONS = {"P1__s1": 0, "P1__s2": 1, "P2__s1": 3}


def _write_tree(root: Path, layout: str) -> dict[str, dict[str, Path]]:
    written = {}
    for i, (cid, n) in enumerate(LESIONS.items()):
        case = make_case(cid if layout != "autopet" else cid.split("__")[1], n, cid.split("__")[0], seed=i)
        if layout == "autopet":
            case.case_id = f"{case.patient_id}-{case.case_id}"  # study folders unique over the dataset
        written[case.case_id] = write_case(case, root, layout)  # type: ignore[arg-type]
    return written


@pytest.mark.parametrize("layout", ["nnunet", "autopet", "flat"])
def test_discover_cases_all_layouts(tmp_path: Path, layout: str) -> None:
    written = _write_tree(tmp_path / layout, layout)
    manifest = discover_cases(tmp_path / layout, progress=False, out_csv=tmp_path / "manifest.csv")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert manifest["case_id"].tolist() == sorted(written)
    assert manifest["patient_id"].tolist() == ["P1", "P1", "P2"]
    assert manifest["n_lesions"].tolist() == [0, 1, 3]
    assert manifest["tmtv_ml"].tolist() == pytest.approx([0.0, 8 * VOXEL_ML, 24 * VOXEL_ML])
    assert set(manifest["shape"]) == {SHAPE} and set(manifest["spacing"]) == {SPACING}
    for _, row in manifest.iterrows():
        for key in ("ct", "pet", "label"):
            assert row[key] == str(written[row["case_id"]][key])
    # the CSV round-trips (shape/spacing parsed back to tuples)
    back = read_manifest(tmp_path / "manifest.csv")
    pd.testing.assert_frame_equal(back, manifest, check_dtype=False)
    # auto-detection agrees with the explicit layout
    explicit = discover_cases(tmp_path / layout, layout=layout, progress=False)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(explicit, manifest)


def test_discover_pairs_by_case_id_not_by_sort_order(tmp_path: Path) -> None:
    """Ids ``case1`` and ``case10`` sort differently as image and label names.

    ``case10_0000`` < ``case1_0000`` ('0' < '_') but ``case1.nii.gz`` < ``case10.nii.gz``
    ('.' < '0'): pairing sorted lists (as the paper's public code does) swaps the labels.
    """
    write_case(make_case("case1", n_lesions=1, seed=1), tmp_path)
    write_case(make_case("case10", n_lesions=3, seed=2), tmp_path)
    cts = [Path(p).name for p in sorted(glob.glob(str(tmp_path / "imagesTr" / "*_0000.nii.gz")))]
    labels = [Path(p).name for p in sorted(glob.glob(str(tmp_path / "labelsTr" / "*.nii.gz")))]
    assert cts == ["case10_0000.nii.gz", "case1_0000.nii.gz"] and labels == ["case1.nii.gz", "case10.nii.gz"]

    manifest = discover_cases(tmp_path, progress=False).set_index("case_id")
    assert manifest.loc["case1", "n_lesions"] == 1 and manifest.loc["case10", "n_lesions"] == 3
    assert manifest.loc["case10", "label"].endswith("labelsTr/case10.nii.gz")
    assert manifest.loc["case10", "ct"].endswith("imagesTr/case10_0000.nii.gz")


def test_discover_nnunet_reads_test_split_and_optional_labels(tmp_path: Path) -> None:
    write_case(make_case("a"), tmp_path, "nnunet", split="Tr")
    write_case(make_case("b", n_lesions=2), tmp_path, "nnunet", split="Ts")
    manifest = discover_cases(tmp_path, progress=False)
    assert manifest["case_id"].tolist() == ["a", "b"]
    assert manifest["label"].iloc[1].endswith("labelsTs/b.nii.gz") and manifest["n_lesions"].iloc[1] == 2

    shutil.rmtree(tmp_path / "labelsTs")
    with pytest.raises(
        DataError, match=r"case 'b'.*has no partner file: expected label .*labelsTs/b\.nii\.gz"
    ):
        discover_cases(tmp_path, progress=False)
    unlabelled = discover_cases(tmp_path, progress=False, require_labels=False).set_index("case_id")
    assert unlabelled.loc["b", "label"] == "" and np.isnan(unlabelled.loc["b", "n_lesions"])


@pytest.mark.parametrize(
    ("layout", "remove", "message"),
    [
        (
            "nnunet",
            "pet",
            r"case 'P1__s2': CT .*P1__s2_0000\.nii\.gz, label .* has no partner file: expected PET ",
        ),
        (
            "flat",
            "label",
            r"case 'P2__s1': CT .*, PET .* has no partner file: expected label .*P2__s1_label\.nii\.gz",
        ),
        (
            "autopet",
            "ct",
            r"case 'P1-s1': PET .*SUV\.nii\.gz, label .*SEG\.nii\.gz has no partner file: expected CT ",
        ),
    ],
)
def test_discover_missing_partner_names_the_file(
    tmp_path: Path, layout: str, remove: str, message: str
) -> None:
    written = _write_tree(tmp_path, layout)
    victim = {"nnunet": "P1__s2", "flat": "P2__s1", "autopet": "P1-s1"}[layout]
    os.remove(written[victim][remove])
    with pytest.raises(DataError, match=message):
        discover_cases(tmp_path, progress=False)


def test_discover_mismatched_pair_names_both_files_and_geometries(tmp_path: Path) -> None:
    _write_tree(tmp_path, "nnunet")
    paths = layout_paths(tmp_path, "P2__s1", "nnunet")
    ct = np.zeros((48, 40, 32), np.float32)  # the same box at 2 mm
    nib.save(nib.Nifti1Image(ct, affine((2.0, 2.0, 2.0))), paths["ct"])
    expected = (
        r"CT .*P2__s1_0000\.nii\.gz and PET .*P2__s1_0001\.nii\.gz do not share one voxel grid .*resample_ct=True.*"
        r"CT has shape \(48, 40, 32\), spacing \(2\.0, 2\.0, 2\.0\) mm.*PET has shape \(24, 20, 16\), spacing \(4\.0, 4\.0, 4\.0\)"
    )
    with pytest.raises(DataError, match=expected):
        discover_cases(tmp_path, progress=False)
    manifest = discover_cases(tmp_path, progress=False, resample_ct=True)
    assert manifest["shape"].tolist() == [SHAPE] * 3  # the PET grid


def test_autopet_duplicate_study_names_are_qualified_with_the_patient(tmp_path: Path) -> None:
    for pid in ("PSMA_a", "PSMA_b"):
        write_case(make_case("2019-01-01", patient_id=pid), tmp_path, "autopet")
    manifest = discover_cases(tmp_path, progress=False)
    assert manifest["case_id"].tolist() == ["PSMA_a__2019-01-01", "PSMA_b__2019-01-01"]
    assert manifest["patient_id"].tolist() == ["PSMA_a", "PSMA_b"]
    # a study loaded alone gets the same qualified id and the same patient
    row = manifest.iloc[1]
    alone = load_case({"ct": row["ct"], "pet": row["pet"], "label": row["label"]})
    assert (alone.case_id, alone.patient_id) == ("PSMA_b__2019-01-01", "PSMA_b")


def test_patient_ids_separator_and_patients_csv(tmp_path: Path) -> None:
    assert patient_ids(["x__1", "x__2__b", "y"]) == {"x__1": "x", "x__2__b": "x", "y": "y"}
    for cid in ("s1", "s2", "s3"):
        write_case(make_case(cid), tmp_path, "flat")
    pd.DataFrame({"case_id": ["s1", "s2", "s3"], "patient_id": ["A", "A", "B"]}).to_csv(
        tmp_path / "patients.csv", index=False
    )
    assert discover_cases(tmp_path, progress=False)["patient_id"].tolist() == ["A", "A", "B"]
    pd.DataFrame({"case_id": ["s1"], "patient_id": ["A"]}).to_csv(tmp_path / "patients.csv", index=False)
    with pytest.raises(DataError, match=r"patients\.csv: no patient_id for 2 case\(s\), e.g. \['s2', 's3'\]"):
        discover_cases(tmp_path, progress=False)
