"""Legitimate variants of a study that ``pcatools convert`` must convert to exactly the plain study's numbers.

Each variant is built from the undamaged study of ``tests/test_dicom_refusals.py`` (DRO_0_0's PET,
a ramp CT, an RTSTRUCT): a series folder behind a link, study folders with non-ASCII names, a
raw-data object or a large non-DICOM file beside the slices. The CT resampled onto the PET grid is
checked against SimpleITK's resampling of the same DICOM files, where the PET's outermost slice
centres lie up to half a CT slice beyond the CT's.
"""

from __future__ import annotations

import shutil
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from pcatools.cli import app
from pcatools.data.case_ids import case_id_from_name, colliding_case_ids
from pcatools.data.dicom import UnreadableDicomError, find_series
from tests.test_dicom import CT_ORIGIN, CT_SHAPE, CT_SPACING, make_study
from tests.test_dicom_refusals import _big_non_dicom_file, _raw_data_object, _series_folder_behind_links

runner = CliRunner()


@pytest.fixture(scope="module")
def plain(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """The undamaged study and its conversion (CT, PET, label arrays by file suffix)."""
    study = tmp_path_factory.mktemp("plain") / "study"
    make_study(shared_data, study)
    out = tmp_path_factory.mktemp("plain-out")
    result = runner.invoke(app, ["convert", str(study), str(out), "--case-id", "c1"])
    assert result.exit_code == 0, result.output
    return study, _volumes(out, "c1")


def _volumes(out: Path, case_id: str) -> dict[str, np.ndarray]:
    return {
        p.name[len(case_id) :]: np.asarray(nib.load(str(p)).dataobj)
        for p in sorted(out.rglob(f"{case_id}*.nii.gz"))
    }


def _assert_same(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert got.keys() == expected.keys() == {"_0000.nii.gz", "_0001.nii.gz", ".nii.gz"}
    for key in got:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


# ---------------------------------------------------------------------------------------------- 3: CT edges


def test_ct_on_the_pet_grid_matches_simpleitk_at_the_edge_slices(
    plain: tuple[Path, dict[str, np.ndarray]],
) -> None:
    """PET slice centres z = 0 and 76 mm lie 0.35 and 0.34 CT slices beyond the CT's outermost centres (2.3, 73.8 mm).

    SimpleITK (ITK's linear interpolator) takes the edge slice's values there; they used to be
    -1024 HU (air) over the whole slice, 147,392 voxels up to 1096 HU away from SimpleITK's.
    """
    sitk = pytest.importorskip("SimpleITK")
    study, converted = plain

    def read(folder: Path) -> object:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        return reader.Execute()

    ct, pet = read(study / "CT"), read(study / "PET")
    resampled = sitk.Resample(
        sitk.Cast(ct, sitk.sitkFloat32), pet, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32
    )
    expected = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
    got = converted["_0000.nii.gz"]
    assert got.shape == expected.shape == (256, 256, 20)
    k_first = (0.0 - CT_ORIGIN[2]) / CT_SPACING[2]  # PET slice 0 in CT slice units
    k_last = (76.0 - CT_ORIGIN[2]) / CT_SPACING[2]
    assert -0.5 < k_first < 0 and CT_SHAPE[2] - 1 < k_last < CT_SHAPE[2] - 0.5
    for k in (0, 19):  # the edge slices hold CT values inside the CT's x/y extent, as SimpleITK's do
        assert (got[:, :, k] > -1024).sum() == (expected[:, :, k] > -1024).sum() > 9000
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


def _sitk_image(sitk: object, img: nib.Nifti1Image) -> object:
    """The NIfTI image as a SimpleITK image (LPS: the RAS affine with x and y negated)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    out = sitk.GetImageFromArray(np.asarray(img.dataobj).transpose(2, 1, 0))  # type: ignore[attr-defined]
    out.SetOrigin(tuple(lps[:3, 3]))
    out.SetSpacing(tuple(spacing))
    out.SetDirection(tuple((lps[:3, :3] / spacing).ravel()))
    return out


@pytest.mark.parametrize("order", [1, 0])
def test_resampling_an_oblique_grid_matches_simpleitk(order: int) -> None:
    """A rotated 7 x 6 x 5 image onto a larger tilted grid that reaches past all its faces (no ../shared needed)."""
    sitk = pytest.importorskip("SimpleITK")
    from scipy.spatial.transform import Rotation

    from pcatools.data.dicom import resample_to_reference

    rng = np.random.default_rng(22)
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix() @ np.diag(
        [2.0, 3.0, 5.0]
    )
    affine[:3, 3] = [1.0, -2.0, 3.0]
    dtype = np.float32 if order == 1 else np.uint8
    img = nib.Nifti1Image(rng.integers(1, 200, size=(7, 6, 5)).astype(dtype), affine)
    ref_affine = np.eye(4)
    ref_affine[:3, :3] = Rotation.from_euler("z", 7, degrees=True).as_matrix() * 1.3
    ref_affine[:3, 3] = [-12.0, -14.0, -10.0]
    reference = nib.Nifti1Image(np.zeros((24, 26, 30), dtype=np.float32), ref_affine)
    got = np.asarray(resample_to_reference(img, reference, order=order, cval=-5 if order else 0).dataobj)
    expected = sitk.GetArrayFromImage(
        sitk.Resample(
            _sitk_image(sitk, img),
            _sitk_image(sitk, reference),
            sitk.Transform(),
            sitk.sitkLinear if order else sitk.sitkNearestNeighbor,
            -5.0 if order else 0.0,
        )
    ).transpose(2, 1, 0)
    inside = got != (-5 if order else 0)
    assert 1000 < inside.sum() < got.size  # the reference reaches past the image on every side
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)


# ---------------------------------------------------------------------------------------------- 4: links


def test_series_folder_behind_a_link_converts_as_the_plain_study(
    plain: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(plain[0], study)
    _series_folder_behind_links(study)  # PET -> ../PET-elsewhere, CT/loop -> the study
    assert [(s.modality, len(s.files)) for s in find_series(study)] == [
        ("CT", 12),
        ("PT", 20),
        ("RTSTRUCT", 1),
    ]
    result = runner.invoke(app, ["convert", str(study), str(tmp_path / "out"), "--case-id", "c1"])
    assert result.exit_code == 0, result.output
    _assert_same(_volumes(tmp_path / "out", "c1"), plain[1])


# ---------------------------------------------------------------------------------------------- 5: case ids


def test_batch_with_non_ascii_study_names_gives_distinct_ids(
    plain: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    """Jörg and Jürg, and two CJK names, used to map to 'J-rg' twice and 'case' twice and were refused."""
    names = ["Jörg", "Jürg", "山田", "田中"]
    for name in names:
        shutil.copytree(plain[0], tmp_path / "studies" / name)
    assert colliding_case_ids(sorted((tmp_path / "studies").iterdir())) == {}
    result = runner.invoke(app, ["convert", str(tmp_path / "studies"), str(tmp_path / "out"), "--batch"])
    assert result.exit_code == 0, result.output
    for name in names:
        assert case_id_from_name(name) == name
        _assert_same(_volumes(tmp_path / "out", name), plain[1])
    assert len(list((tmp_path / "out" / "imagesTr").iterdir())) == 8


def test_case_ids_keep_unicode_letters_nfc_normalised() -> None:
    decomposed = "Jo\u0308rg"  # as macOS stores 'Jörg'
    assert case_id_from_name(decomposed) == "J\u00f6rg"
    assert case_id_from_name("Ünal_01 (PET)") == "Ünal-01-PET"
    assert case_id_from_name("山田 太郎") == "山田-太郎"
    assert colliding_case_ids([Path("s/Jörg"), Path(f"s/{decomposed}"), Path("s/JÖRG")]) == {
        "Jörg": [Path("s/Jörg"), Path(f"s/{decomposed}"), Path("s/JÖRG")]
    }


# ---------------------------------------------------------------------------------------------- 7: cheap headers


def test_raw_data_object_is_skipped_without_reading_its_blob(
    plain: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    """A 64 MiB list-mode blob in the PET's series: headers only (it used to be read whole, and to hide the PET)."""
    study = tmp_path / "study"
    shutil.copytree(plain[0], study)
    _raw_data_object(study, 64 << 20)
    tracemalloc.start()
    try:
        found = find_series(study)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"
    assert [(s.modality, len(s.files)) for s in found] == [("CT", 12), ("PT", 20), ("RTSTRUCT", 1)]
    result = runner.invoke(app, ["convert", str(study), str(tmp_path / "out"), "--case-id", "c1"])
    assert result.exit_code == 0, result.output
    _assert_same(_volumes(tmp_path / "out", "c1"), plain[1])


def test_large_non_dicom_file_named_dcm_is_refused_at_once(
    plain: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    """64 MiB of zeros named .dcm: refused from its first bytes (forced parsing took 60 s per 100 MB)."""
    study = tmp_path / "study"
    shutil.copytree(plain[0], study)
    _big_non_dicom_file(study)
    start = time.perf_counter()
    with pytest.raises(UnreadableDicomError, match=r"zeros\.dcm \(not a DICOM data set\)"):
        find_series(study)
    assert time.perf_counter() - start < 5.0
    result = runner.invoke(
        app, ["convert", str(study), str(tmp_path / "out"), "--case-id", "c1", "--skip-unreadable"]
    )
    assert result.exit_code == 0, result.output
    _assert_same(_volumes(tmp_path / "out", "c1"), plain[1])
