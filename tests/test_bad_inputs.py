"""The NIfTI half of the bad-input corpus (issue 2): each bad input, its exception type and its message.

(The DICOM half -- missing PET tags, a CT series given as PET -- lives with the SUV tests.)
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pcatools.data.case import write_case
from pcatools.data.discovery import discover_cases
from pcatools.data.errors import DataError
from pcatools.data.io import load_case, load_nifti
from tests.test_io import affine, make_case


@pytest.fixture()
def case_paths(tmp_path: Path) -> dict[str, Path]:
    return write_case(make_case("bad", n_lesions=2), tmp_path, "flat")


def test_data_error_is_a_value_error() -> None:
    assert issubclass(DataError, ValueError)


def test_mismatched_label_grid(case_paths: dict[str, Path]) -> None:
    shifted = affine(origin=(-40.0, -30.0, 14.0))  # one slice (4 mm) off along z
    nib.save(nib.Nifti1Image(np.zeros((24, 20, 16), np.uint8), shifted), case_paths["label"])
    with pytest.raises(DataError) as info:
        load_case(case_paths)
    msg = str(info.value)
    assert f"label {case_paths['label']} and PET {case_paths['pet']} do not share one voxel grid" in msg
    assert "label has shape (24, 20, 16), spacing (4.0, 4.0, 4.0) mm, origin (-40.0, -30.0, 14.0) mm" in msg
    assert "PET has shape (24, 20, 16), spacing (4.0, 4.0, 4.0) mm, origin (-40.0, -30.0, 10.0) mm" in msg
    assert "resample_ct" not in msg  # labels are never resampled
    with pytest.raises(DataError, match="label .* do not share one voxel grid"):
        load_case(case_paths, resample_ct=True)


def test_mismatched_ct_shape(case_paths: dict[str, Path]) -> None:
    nib.save(nib.Nifti1Image(np.zeros((24, 20, 15), np.float32), affine()), case_paths["ct"])
    with pytest.raises(
        DataError, match=r"CT .* and PET .*: CT has shape \(24, 20, 15\).*PET has shape \(24, 20, 16\)"
    ):
        load_case(case_paths)


def test_flipped_ct_orientation_is_a_different_grid(case_paths: dict[str, Path]) -> None:
    lps = affine() @ np.diag([-1.0, -1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((24, 20, 16), np.float32), lps), case_paths["ct"])
    with pytest.raises(DataError, match=r"CT has shape .* orientation LPS; PET has shape .* orientation RAS"):
        load_case(case_paths)


@pytest.mark.parametrize(("bad", "found"), [(np.nan, "3 NaN and 0 inf"), (np.inf, "0 NaN and 3 inf")])
def test_nan_or_inf_in_pet(case_paths: dict[str, Path], bad: float, found: str) -> None:
    pet = np.ones((24, 20, 16), np.float32)
    pet[0, 0, :3] = bad
    nib.save(nib.Nifti1Image(pet, affine()), case_paths["pet"])
    with pytest.raises(
        DataError, match=rf"PET .*bad_pet\.nii\.gz: expected finite SUV values, found {found} voxels of 7680"
    ):
        load_case(case_paths)


def test_nan_in_ct(case_paths: dict[str, Path]) -> None:
    ct = np.zeros((24, 20, 16), np.float32)
    ct[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(ct, affine()), case_paths["ct"])
    with pytest.raises(
        DataError, match=r"CT .*bad_ct\.nii\.gz: expected finite HU values, found 1 NaN and 0 inf"
    ):
        load_case(case_paths)


@pytest.mark.parametrize(
    ("values", "found"),
    [
        ([0, 1, 2], r"found other values \[2\] in 1 voxels"),
        ([0, 3, 255], r"found other values \[3, 255\] in 2 voxels"),
        ([0.0, 0.5, 1.0], r"found other values \[0\.5\] in 1 voxels"),
        ([0, -1, 1], r"found other values \[-1\] in 1 voxels"),
    ],
)
def test_label_values_other_than_0_1(case_paths: dict[str, Path], values: list[float], found: str) -> None:
    label = np.zeros((24, 20, 16), np.float32 if isinstance(values[1], float) else np.int16)
    label[0, 0, : len(values)] = values
    nib.save(nib.Nifti1Image(label, affine()), case_paths["label"])
    with pytest.raises(
        DataError, match=r"label .*bad_label\.nii\.gz: expected values 0 and 1 only, " + found
    ):
        load_case(case_paths)


def test_label_with_many_values_lists_ten(tmp_path: Path) -> None:
    nib.save(
        nib.Nifti1Image(np.arange(20, dtype=np.int16).reshape(4, 5, 1), np.eye(4)), tmp_path / "l.nii.gz"
    )
    with pytest.raises(
        DataError, match=r"found other values \[2, 3, 4, 5, 6, 7, 8, 9, 10, 11\] and 8 more in 18 voxels"
    ):
        load_nifti(tmp_path / "l.nii.gz", "label")


def test_truncated_nifti(case_paths: dict[str, Path]) -> None:
    path = case_paths["pet"]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # a valid .nii.gz cut in half
    with pytest.raises(
        DataError, match=rf"PET {path}: cannot read the NIfTI file, it is truncated or corrupt"
    ):
        load_case(case_paths)


def test_truncated_uncompressed_nifti(tmp_path: Path) -> None:
    path = tmp_path / "pet.nii"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:1000])  # header intact, data cut
    with pytest.raises(
        DataError, match=r"PET .*pet\.nii: cannot read the NIfTI file, it is truncated or corrupt"
    ):
        load_nifti(path, "pet")


def test_corrupt_gzip_header(tmp_path: Path) -> None:
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header" * 3))
    with pytest.raises(
        DataError, match=r"CT .*ct\.nii\.gz: cannot read the NIfTI file, it is truncated or corrupt"
    ):
        load_nifti(path, "ct")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"PET file not found: .*nothing\.nii\.gz"):
        load_nifti(tmp_path / "nothing.nii.gz", "pet")


def test_not_3d(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 2), np.float32), np.eye(4)), tmp_path / "pet.nii.gz")
    with pytest.raises(DataError, match=r"expected a 3-D \(x, y, z\) image, found shape \(4, 4, 4, 2\)"):
        load_nifti(tmp_path / "pet.nii.gz", "pet")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"dataset root {tmp_path} is an empty directory: expected nnU-Net"):
        discover_cases(tmp_path, progress=False)


def test_nonexistent_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset root .*missing: expected a directory, found nothing"):
        discover_cases(tmp_path / "missing", progress=False)


def test_directory_without_a_known_layout(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"no known layout found: .*found 2 entries: notes\.txt, scan\.nii\.gz"
    ):
        discover_cases(tmp_path, progress=False)


def test_empty_nnunet_folders(tmp_path: Path) -> None:
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(DataError, match=r"no cases found in the nnunet layout"):
        discover_cases(tmp_path, progress=False)


def test_unexpected_nnunet_channel(tmp_path: Path) -> None:
    write_case(make_case("c1"), tmp_path, "nnunet")
    (tmp_path / "imagesTr" / "c1_0002.nii.gz").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"c1_0002\.nii\.gz: unexpected channel 0002: expected 0000 \(CT\) and 0001 \(PET\)"
    ):
        discover_cases(tmp_path, progress=False)


def test_unexpected_flat_name(tmp_path: Path) -> None:
    write_case(make_case("c1"), tmp_path, "flat")
    (tmp_path / "c1_mask.nii.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"c1_mask\.nii\.gz: expected flat-layout names <id>_ct\.nii\.gz"):
        discover_cases(tmp_path, progress=False)


def test_bad_file_found_during_discovery_is_named(tmp_path: Path) -> None:
    paths = write_case(make_case("c1"), tmp_path, "nnunet")
    label = np.zeros((24, 20, 16), np.uint8)
    label[0, 0, 0] = 2
    nib.save(nib.Nifti1Image(label, affine()), paths["label"])
    with pytest.raises(
        DataError,
        match=r"label .*labelsTr/c1\.nii\.gz: expected values 0 and 1 only, found other values \[2\]",
    ):
        discover_cases(tmp_path, progress=False)


def test_load_case_without_pet_key() -> None:
    with pytest.raises(
        DataError, match=r"expected paths for 'ct' and 'pet', missing \['pet'\] in keys \['ct', 'label'\]"
    ):
        load_case({"ct": "a.nii.gz", "label": "b.nii.gz"})
