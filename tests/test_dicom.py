"""DICOM series geometry, CT -> HU, RTSTRUCT / SEG masks and study conversion.

Known answers: SimpleITK (ITK/GDCM) as an independent reader of the same files, masks drawn on
synthetic grids where every voxel's membership is known, and a linear CT ramp, which trilinear
resampling must reproduce exactly at the PET voxel centres.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RTStructureSetStorage,
    SegmentationStorage,
    generate_uid,
)

from pcatools.data.dicom import (
    DicomSeriesError,
    convert_study,
    dicom_ct_to_hu,
    find_series,
    read_dicom_series,
    rtstruct_to_mask,
    seg_to_mask,
)

FOR_UID = generate_uid(entropy_srcs=["pcatools-test-frame-of-reference"])


def uid(*parts: object) -> str:
    """A deterministic UID (no randomness in the tests)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _file_dataset(sop_class: str, sop_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = uid("study")
    ds.FrameOfReferenceUID = FOR_UID
    ds.PatientID = "P1"
    return ds


def write_series(
    folder: Path,
    stored: np.ndarray,
    *,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    rotation: np.ndarray | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    series_uid: str | None = None,
    modality: str = "CT",
    intercept: float = -1024.0,
    slope: float = 1.0,
    name: Callable[[int], str] = lambda k: f"slice_{k:03d}.dcm",
    positions: Sequence[float] | None = None,
) -> str:
    """Write ``stored`` (x=columns, y=rows, z=slices; int16) as a single-frame image series; return its UID.

    ``rotation`` columns are the row direction, column direction and slice normal (LPS); ``spacing`` is
    (column spacing, row spacing, slice spacing) in mm; ``positions`` overrides the slice offsets.
    """
    folder.mkdir(parents=True, exist_ok=True)
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
    series_uid = series_uid or uid("series", folder, modality)
    nx, ny, nz = stored.shape
    offsets = [k * spacing[2] for k in range(nz)] if positions is None else list(positions)
    for k in range(nz):
        sop = uid(series_uid, k)
        ds = _file_dataset(CTImageStorage, sop)
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.SeriesDescription = f"synthetic {modality}"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [f"{v:.10f}" for v in (*r[:, 0], *r[:, 1])]
        ds.ImagePositionPatient = [f"{v:.10f}" for v in np.asarray(origin) + offsets[k] * r[:, 2]]
        ds.PixelSpacing = [f"{spacing[1]:.10g}", f"{spacing[0]:.10g}"]  # row spacing, column spacing
        ds.SliceThickness = f"{spacing[2]:.10g}"
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleSlope = f"{slope:g}"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T.astype("<i2")).tobytes()
        ds.save_as(folder / name(k), enforce_file_format=True)
    return series_uid


def lps_affine(origin: Sequence[float], rotation: np.ndarray | None, spacing: Sequence[float]) -> np.ndarray:
    """Voxel -> LPS affine written out by hand (the test's own reference)."""
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
    a = np.eye(4)
    a[:3, :3] = r * np.asarray(spacing, dtype=float)
    a[:3, 3] = origin
    return a


def write_rtstruct(
    path: Path,
    referenced_series: str,
    rois: dict[str, list[np.ndarray]],
    kinds: dict[str, str] | None = None,
    for_uid: str = FOR_UID,
) -> Path:
    """An RT Structure Set with closed planar contours (each an (N, 3) LPS array) per ROI name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _file_dataset(RTStructureSetStorage, uid("rtstruct", path))
    ds.FrameOfReferenceUID = for_uid
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = uid("rtstruct-series", path)
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = referenced_series
    ref_study = Dataset()
    ref_study.RTReferencedSeriesSequence = [ref_series]
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = for_uid
    ref_for.RTReferencedStudySequence = [ref_study]
    ds.ReferencedFrameOfReferenceSequence = [ref_for]
    ds.StructureSetROISequence = []
    ds.ROIContourSequence = []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, for_uid
        ds.StructureSetROISequence.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ContourSequence = []
        for points in contours:
            c = Dataset()
            c.ContourGeometricType = (kinds or {}).get(name, "CLOSED_PLANAR")
            c.NumberOfContourPoints = len(points)
            c.ContourData = [f"{v:.6f}" for v in np.asarray(points, dtype=float).ravel()]
            rc.ContourSequence.append(c)
        ds.ROIContourSequence.append(rc)
    ds.save_as(path, enforce_file_format=True)
    return path


def contour(affine_lps: np.ndarray, ij: Sequence[tuple[float, float]], k: float) -> np.ndarray:
    """Polygon given in voxel index coordinates (i, j) on slice k -> LPS points."""
    idx = np.array([[i, j, k, 1.0] for i, j in ij])
    return (affine_lps @ idx.T)[:3].T


def box(i0: float, i1: float, j0: float, j1: float) -> list[tuple[float, float]]:
    return [(i0, j0), (i1, j0), (i1, j1), (i0, j1)]


# ---------------------------------------------------------------------------------------------- real CT


@pytest.fixture(scope="module")
def real_ct(shared_data: Path) -> nib.Nifti1Image:
    return dicom_ct_to_hu(shared_data / "real-ct" / "dicom")


def _corners_world(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World coordinates of the 8 outer voxel corners (index -0.5 and n - 0.5 on each axis)."""
    corners = np.array(
        [
            [a, b, c, 1.0]
            for a in (-0.5, shape[0] - 0.5)
            for b in (-0.5, shape[1] - 0.5)
            for c in (-0.5, shape[2] - 0.5)
        ]
    )
    return (affine @ corners.T)[:3].T


def test_real_ct_matches_simpleitk(shared_data: Path, real_ct: nib.Nifti1Image) -> None:
    """ITK/GDCM reads the same JPEG 2000 files independently: same HU voxel for voxel, same world corners."""
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(shared_data / "real-ct" / "dicom")))
    ref = reader.Execute()
    ref_hu = sitk.GetArrayFromImage(ref).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
    np.testing.assert_array_equal(np.asarray(real_ct.dataobj), ref_hu.astype(np.float32))
    lps = np.eye(4)
    lps[:3, :3] = np.array(ref.GetDirection()).reshape(3, 3) * np.array(ref.GetSpacing())
    lps[:3, 3] = ref.GetOrigin()
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    np.testing.assert_allclose(
        _corners_world(real_ct.affine, real_ct.shape), _corners_world(ras, ref_hu.shape), atol=1e-3
    )
    assert nib.aff2axcodes(real_ct.affine) == (
        "L",
        "P",
        "S",
    )  # DICOM's native storage order, labelled correctly
    assert real_ct.shape == (512, 512, 20) and real_ct.header.get_zooms() == pytest.approx(
        (0.9765625, 0.9765625, 2.0)
    )


def test_real_ct_hu_range(real_ct: nib.Nifti1Image) -> None:
    hu = np.asarray(real_ct.dataobj)
    assert hu.dtype == np.float32
    assert hu.min() == -1024.0 and hu.max() <= 3071.0  # 12-bit CT with intercept -1024
    air = hu[:40, :40, :]  # a corner of the 50 cm field of view, outside the body
    assert abs(float(np.median(air)) - (-1000.0)) < 30.0
    # the slice centre is inside the abdomen (soft tissue), and there is bone (spine) in every slice
    assert -200.0 < float(np.median(hu[200:312, 200:312, :])) < 200.0
    assert all((hu[:, :, k] > 400).sum() > 500 for k in range(hu.shape[2]))


def test_real_ct_niftis_are_another_scan(shared_data: Path, real_ct: nib.Nifti1Image) -> None:
    """Neither NIfTI in real-ct is this DICOM series: they cannot be overlaid.

    TotalSegmentator ships ``example_ct_dicom`` (here ``dicom/``) as a subject of its own, beside
    ``example_ct(.sm).nii.gz``; the world boxes do not intersect (DICOM z from -805 to -765 mm,
    NIfTI z from 93 to 428 mm) and the patients differ in size. The voxel-by-voxel and affine
    agreement is therefore checked against SimpleITK above, and orientation against the NIfTI's
    anatomy below.
    """
    lo, hi = (
        _corners_world(real_ct.affine, real_ct.shape).min(0),
        _corners_world(real_ct.affine, real_ct.shape).max(0),
    )
    for name in ("example_ct.nii.gz", "example_ct_sm.nii.gz"):
        img = nib.load(str(shared_data / "real-ct" / name))
        corners = _corners_world(img.affine, img.shape)
        other_lo, other_hi = corners.min(0), corners.max(0)
        assert np.any((hi < other_lo) | (other_hi < lo)), f"{name} overlaps the DICOM series"
        assert img.shape[:2] != real_ct.shape[:2]


def _soft_tissue_offset_x(hu: np.ndarray, affine: np.ndarray) -> float:
    """World x of the soft-tissue centroid (60-200 HU) minus that of the body (> -300 HU), in mm."""
    body = np.argwhere(hu > -300).mean(axis=0)
    soft = np.argwhere((hu > 60) & (hu < 200)).mean(axis=0)
    return float((affine @ np.r_[soft, 1.0])[0] - (affine @ np.r_[body, 1.0])[0])


def test_real_ct_orientation_agrees_with_the_nifti_anatomy(
    shared_data: Path, real_ct: nib.Nifti1Image
) -> None:
    """At liver level the liver makes the patient's right (+x in RAS) the heavier soft-tissue side.

    The NIfTI's organ labels confirm where liver (5) and spleen (1) lie in its world frame; the
    DICOM conversion, a different patient at the same level, must agree. A left-right flip of the
    DICOM affine would put the soft tissue 13 mm to the left instead.
    """
    seg = nib.load(str(shared_data / "real-ct" / "example_seg.nii.gz"))
    labels = np.asarray(seg.dataobj)
    liver_x = (seg.affine @ np.r_[np.argwhere(labels == 5).mean(axis=0), 1.0])[0]
    spleen_x = (seg.affine @ np.r_[np.argwhere(labels == 1).mean(axis=0), 1.0])[0]
    assert liver_x > 0 > spleen_x
    sm = nib.load(str(shared_data / "real-ct" / "example_ct_sm.nii.gz"))
    assert _soft_tissue_offset_x(np.asarray(sm.dataobj, dtype=np.float32)[:, :, 20:], sm.affine) > 10.0
    assert _soft_tissue_offset_x(np.asarray(real_ct.dataobj), real_ct.affine) > 10.0


# ---------------------------------------------------------------------------------------------- geometry


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rx = np.array([[1, 0, 0], [0, cc, -sc], [0, sc, cc]])
    return rz @ ry @ rx


def test_oblique_series_matches_simpleitk_and_hand_affine(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 2000, size=(7, 5, 6)).astype(np.int16)
    rot, origin, spacing = _rotation(0.3, -0.2, 0.5), (-12.5, 40.0, 7.25), (0.8, 1.3, 2.5)
    order = [3, 0, 5, 1, 4, 2]  # file names do not follow the slice order
    write_series(
        tmp_path / "obl",
        stored,
        origin=origin,
        rotation=rot,
        spacing=spacing,
        name=lambda k: f"f{order[k]}.dcm",
    )
    series = read_dicom_series(tmp_path / "obl")
    np.testing.assert_allclose(series.affine_lps, lps_affine(origin, rot, spacing), atol=1e-8)
    np.testing.assert_array_equal(series.rescaled(), stored.astype(np.float32) - 1024)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "obl")))
    ref = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.array(ref.GetDirection()).reshape(3, 3) * np.array(ref.GetSpacing())
    lps[:3, 3] = ref.GetOrigin()
    np.testing.assert_allclose(series.affine_lps, lps, atol=1e-6)
    np.testing.assert_array_equal(series.rescaled(), sitk.GetArrayFromImage(ref).transpose(2, 1, 0))


def test_slices_descending_along_the_normal_are_sorted(tmp_path: Path) -> None:
    stored = np.arange(4 * 3 * 5, dtype=np.int16).reshape(4, 3, 5)
    # slice k written at offset -2k along the normal: the sorted series runs the other way round
    write_series(tmp_path / "s", stored, spacing=(1, 1, 2), positions=[-2.0 * k for k in range(5)])
    series = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(series.rescaled(), stored[:, :, ::-1].astype(np.float32) - 1024)
    assert series.affine_lps[2, 3] == pytest.approx(-8.0) and series.affine_lps[2, 2] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        ("gap", r"non-uniform slice spacing .* 2.0000 to 4.0000 mm"),
        ("tilt", r"not stacked along their normal .* gantry tilt"),
        ("no_position", r"ImagePositionPatient \(0020,0032\) is missing"),
        ("two_series", r"holds 2 image series, expected one; pass series_uid=.* CT series"),
    ],
)
def test_bad_geometry(tmp_path: Path, breaker: str, message: str) -> None:
    stored = np.zeros((4, 4, 4), dtype=np.int16)
    folder = tmp_path / "bad"
    if breaker == "gap":
        write_series(folder, stored, positions=[0, 2, 4, 8])
    elif breaker == "two_series":
        write_series(folder / "a", stored, series_uid=uid("a"))
        write_series(folder / "b", stored, series_uid=uid("b"))
    else:
        write_series(folder, stored, spacing=(1, 1, 2))
        f = folder / "slice_002.dcm"
        ds = pydicom.dcmread(f)
        if breaker == "tilt":
            ds.ImagePositionPatient = [0.0, 1.5, 4.0]
        else:
            del ds.ImagePositionPatient
        ds.save_as(f)
    with pytest.raises(DicomSeriesError, match=message):
        read_dicom_series(folder)
    if breaker == "two_series":
        assert read_dicom_series(folder, series_uid=uid("b")).series_uid == uid("b")


def test_find_series_skips_non_dicom_and_groups_by_series(shared_data: Path) -> None:
    found = find_series(shared_data / "suv-dro" / "DRO_0_0")  # PT slices, an RTSTRUCT and a NIfTI mask
    assert sorted((s.modality, len(s.files)) for s in found) == [("PT", 20), ("RTSTRUCT", 1)]


# ---------------------------------------------------------------------------------------------- masks


@pytest.fixture
def small_grid(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 12 x 10 x 5 CT (columns x rows x slices), 1.5 x 2.0 mm pixels, 3 mm slices, at (-10, 20, 30) LPS."""
    folder = tmp_path / "ct"
    write_series(
        folder,
        np.zeros((12, 10, 5), dtype=np.int16),
        origin=(-10, 20, 30),
        spacing=(1.5, 2.0, 3.0),
        series_uid=uid("small-grid"),
    )
    return folder, lps_affine((-10, 20, 30), None, (1.5, 2.0, 3.0))


def test_rtstruct_rasterised_onto_a_known_mask(small_grid: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, a = small_grid
    rois = {
        # slice 1: voxels i 2..6, j 3..7 (polygon through the voxel edges, half a voxel out)
        # slice 2: a 7 x 7 square with a 2 x 2 hole (a contour inside another is a hole)
        "Lesion": [
            contour(a, box(1.5, 6.5, 2.5, 7.5), 1),
            contour(a, box(1.5, 8.5, 1.5, 8.5), 2),
            contour(a, box(3.5, 5.5, 3.5, 5.5), 2),
        ],
        # slice 3: polygon through voxel centres i 8..10, j 1..2: centres on the edge are inside
        "Other": [contour(a, box(8, 10, 1, 2), 3)],
    }
    rs = write_rtstruct(tmp_path / "rs.dcm", uid("small-grid"), rois)
    expected = np.zeros((12, 10, 5), dtype=np.uint8)
    expected[2:7, 3:8, 1] = 1
    expected[2:9, 2:9, 2] = 1
    expected[4:6, 4:6, 2] = 0
    other = np.zeros_like(expected)
    other[8:11, 1:3, 3] = 1
    series = read_dicom_series(folder)
    np.testing.assert_array_equal(rtstruct_to_mask(rs, series, roi_names=["lesion"]), expected)
    np.testing.assert_array_equal(rtstruct_to_mask(rs, series), expected | other)
    with pytest.raises(DicomSeriesError, match=r"ROI\(s\) \['tumour'\] not in the structure set"):
        rtstruct_to_mask(rs, series, roi_names=["tumour"])


def test_rtstruct_off_the_slices_is_refused(small_grid: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, a = small_grid
    rs = write_rtstruct(
        tmp_path / "rs.dcm", uid("small-grid"), {"L": [contour(a, box(1.5, 4.5, 1.5, 4.5), 1.5)]}
    )
    with pytest.raises(
        DicomSeriesError, match=r"does not lie on a slice of the reference grid .* slice index 1.50"
    ):
        rtstruct_to_mask(rs, read_dicom_series(folder))


def test_dro_rtstruct_lies_inside_the_dro_mask(shared_data: Path) -> None:
    """A third-party RTSTRUCT: the DRO's drawn ROI covers the NIfTI mask's disc on 16 of its 18 slices."""
    dro = shared_data / "suv-dro" / "DRO_0_0"
    mask = np.asarray(nib.load(str(dro / "mask" / "DRO_mask.nii.gz")).dataobj) > 0
    drawn = rtstruct_to_mask(dro / "RS" / "RS_dro_0_0.dcm", read_dicom_series(dro / "PT")).astype(bool)
    assert set(np.nonzero(drawn.any(axis=(0, 1)))[0]) == set(range(2, 18))
    assert not np.any(drawn & ~mask)  # never outside the mask
    on = slice(2, 18)
    dice = 2 * (drawn[:, :, on] & mask[:, :, on]).sum() / (drawn[:, :, on].sum() + mask[:, :, on].sum())
    assert dice > 0.98


def write_seg(
    path: Path,
    referenced_series: str,
    frames: list[tuple[int, Sequence[float], np.ndarray]],
    pixel_spacing: Sequence[float],
    fractional: bool = False,
) -> Path:
    """A DICOM SEG: ``frames`` of (segment number, ImagePositionPatient, (rows, columns) 0/1 array), axial."""
    ds = _file_dataset(SegmentationStorage, uid("seg", path))
    ds.Modality = "SEG"
    ds.SeriesInstanceUID = uid("seg-series", path)
    ds.SegmentationType = "FRACTIONAL" if fractional else "BINARY"
    rows, cols = frames[0][2].shape
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, len(frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures = Dataset()
    measures.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    measures.SliceThickness = "3"
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = []
    for number, ipp, _ in frames:
        fg, pos, ident = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [f"{v:g}" for v in ipp]
        ident.ReferencedSegmentNumber = number
        fg.PlanePositionSequence = [pos]
        fg.SegmentIdentificationSequence = [ident]
        ds.PerFrameFunctionalGroupsSequence.append(fg)
    ds.SegmentSequence = []
    for number in sorted({f[0] for f in frames}):
        seg = Dataset()
        seg.SegmentNumber, seg.SegmentLabel = number, f"lesion {number}"
        ds.SegmentSequence.append(seg)
    ref = Dataset()
    ref.SeriesInstanceUID = referenced_series
    ds.ReferencedSeriesSequence = [ref]
    stack = np.stack([f[2] for f in frames])
    if fractional:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.MaximumFractionalValue = 8, 8, 7, 255
        ds.PixelData = stack.astype(np.uint8).tobytes()
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
        ds.PixelData = pack_bits(stack.astype(np.uint8))
    ds.save_as(path, enforce_file_format=True)
    return path


def test_seg_frames_placed_on_the_reference_grid(small_grid: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, a = small_grid
    rng = np.random.default_rng(1)
    planes = [(rng.random((10, 12)) > 0.6).astype(np.uint8) for _ in range(3)]
    # frames in scrambled order: segment 1 on slices 3 and 1, segment 2 on slice 2 (k -> z = 30 + 3k)
    frames = [(1, (-10, 20, 39), planes[0]), (2, (-10, 20, 36), planes[1]), (1, (-10, 20, 33), planes[2])]
    series = read_dicom_series(folder)
    expected = np.zeros((12, 10, 5), dtype=np.uint8)
    expected[:, :, 3] = planes[0].T
    expected[:, :, 1] = planes[2].T
    seg = write_seg(tmp_path / "seg.dcm", uid("small-grid"), frames, (2.0, 1.5))
    np.testing.assert_array_equal(seg_to_mask(seg, series, segment_numbers=[1]), expected)
    expected[:, :, 2] = planes[1].T
    np.testing.assert_array_equal(seg_to_mask(seg, series), expected)
    # a fractional SEG thresholded at half of MaximumFractionalValue; a frame covering part of the grid
    frac = [
        (1, (-10 + 1.5 * 3, 20 + 2.0 * 4, 36), np.array([[0, 100, 200], [255, 127, 128]], dtype=np.uint8))
    ]
    part = np.zeros((12, 10, 5), dtype=np.uint8)
    part[3:6, 4:6, 2] = np.array([[0, 0, 1], [1, 0, 1]]).T
    fseg = write_seg(tmp_path / "frac.dcm", uid("small-grid"), frac, (2.0, 1.5), fractional=True)
    np.testing.assert_array_equal(seg_to_mask(fseg, series), part)
    off = write_seg(tmp_path / "off.dcm", uid("small-grid"), [(1, (-10.75, 20, 36), planes[0])], (2.0, 1.5))
    with pytest.raises(DicomSeriesError, match="falls between voxels of the reference grid"):
        seg_to_mask(off, series)


# ---------------------------------------------------------------------------------------------- studies

# The synthetic study: DRO_0_0's PET (256 x 256 x 20 voxels of 4 mm at LPS (0, 0, 0)) and a CT of
# 100 x 100 x 12 voxels, 10 x 10 mm pixels, 6.5 mm slices at LPS (3.3, 5.3, 2.3), holding the linear
# ramp HU = 2 i + 3 j + 7 k - 500 (i, j, k its voxel indices). Offsets by 0.3 mm keep PET voxel centres
# away from ties between CT voxels.
CT_ORIGIN, CT_SPACING, CT_SHAPE = (3.3, 5.3, 2.3), (10.0, 10.0, 6.5), (100, 100, 12)


def ct_ramp_hu(lps: np.ndarray) -> np.ndarray:
    """The CT ramp as a function of LPS position (rows of ``lps``)."""
    ijk = (lps - np.array(CT_ORIGIN)) / np.array(CT_SPACING)
    return 2 * ijk[:, 0] + 3 * ijk[:, 1] + 7 * ijk[:, 2] - 500


def make_study(shared_data: Path, study: Path, mask_on: str | None = "PT") -> dict[str, str]:
    """PET (DRO_0_0) + ramp CT (+ an RTSTRUCT drawn on the PET or the CT grid) in ``study``; return series UIDs."""
    shutil.copytree(shared_data / "suv-dro" / "DRO_0_0" / "PT", study / "PET")
    pet_uid = str(pydicom.dcmread(next((study / "PET").iterdir()), stop_before_pixels=True).SeriesInstanceUID)
    pet_for = str(
        pydicom.dcmread(next((study / "PET").iterdir()), stop_before_pixels=True).FrameOfReferenceUID
    )
    i, j, k = np.meshgrid(*(np.arange(n) for n in CT_SHAPE), indexing="ij")
    stored = (2 * i + 3 * j + 7 * k - 500 + 1024).astype(np.int16)
    ct_uid = write_series(
        study / "CT", stored, origin=CT_ORIGIN, spacing=CT_SPACING, series_uid=uid("study-ct", study)
    )
    for f in (study / "CT").iterdir():  # share the PET's frame of reference, as a PET/CT does
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = pet_for
        ds.save_as(f)
    if mask_on == "PT":  # PET voxels i 100..119, j 60..69 on PET slice 10
        pet_affine = lps_affine((0, 0, 0), None, (4, 4, 4))
        write_rtstruct(
            study / "RS" / "rs.dcm",
            pet_uid,
            {"lesion": [contour(pet_affine, box(99.5, 119.5, 59.5, 69.5), 10)]},
            for_uid=pet_for,
        )
    elif mask_on == "CT":  # CT voxels i 40..49, j 30..39 on CT slice 5
        write_rtstruct(
            study / "RS" / "rs.dcm",
            ct_uid,
            {"lesion": [contour(lps_affine(CT_ORIGIN, None, CT_SPACING), box(39.5, 49.5, 29.5, 39.5), 5)]},
            for_uid=pet_for,
        )
    return {"pet": pet_uid, "ct": ct_uid}


def _pet_centres_lps(shape: Sequence[int]) -> np.ndarray:
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return np.column_stack([4.0 * i.ravel(), 4.0 * j.ravel(), 4.0 * k.ravel()])


def test_convert_study_writes_the_nnunet_case_on_one_grid(shared_data: Path, tmp_path: Path) -> None:
    make_study(shared_data, tmp_path / "Study 01")
    out = convert_study(tmp_path / "Study 01", tmp_path / "nnunet")
    assert out == {
        "ct": tmp_path / "nnunet" / "imagesTr" / "Study-01_0000.nii.gz",
        "pet": tmp_path / "nnunet" / "imagesTr" / "Study-01_0001.nii.gz",
        "label": tmp_path / "nnunet" / "labelsTr" / "Study-01.nii.gz",
    }
    ct, pet, label = (nib.load(str(out[key])) for key in ("ct", "pet", "label"))
    for img in (ct, label):
        assert img.shape == pet.shape == (256, 256, 20)
        np.testing.assert_allclose(img.affine, pet.affine)
    mask = (
        np.asarray(nib.load(str(shared_data / "suv-dro" / "DRO_0_0" / "mask" / "DRO_mask.nii.gz")).dataobj)
        > 0
    )
    suv = np.asarray(pet.dataobj)[mask]
    assert (round(float(suv.min()), 2), round(float(np.median(suv)), 2), round(float(suv.max()), 2)) == (
        0.2,
        1.0,
        4.0,
    )
    # CT: trilinear resampling reproduces the linear ramp at PET centres inside the CT's hull of voxel centres
    centres = _pet_centres_lps(pet.shape)
    ijk = (centres - np.array(CT_ORIGIN)) / np.array(CT_SPACING)
    inside = np.all((ijk > 0) & (ijk < np.array(CT_SHAPE) - 1), axis=1)
    outside = np.any((ijk < -0.5) | (ijk > np.array(CT_SHAPE) - 0.5), axis=1)
    hu = np.asarray(ct.dataobj).ravel()
    assert inside.sum() > 1000
    np.testing.assert_allclose(hu[inside], ct_ramp_hu(centres[inside]), atol=1e-3)
    assert np.all(hu[outside] == -1024.0)  # air outside the CT's field of view
    expected = np.zeros(pet.shape, dtype=np.uint8)
    expected[100:120, 60:70, 10] = 1
    assert label.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(label.dataobj), expected)


def test_convert_study_label_drawn_on_the_ct_and_ct_on_its_own_grid(
    shared_data: Path, tmp_path: Path
) -> None:
    make_study(shared_data, tmp_path / "s", mask_on="CT")
    out = convert_study(tmp_path / "s", tmp_path / "out", case_id="c1", ct_grid="own", split="Ts")
    assert out["ct"] == tmp_path / "out" / "imagesTs" / "c1_0000.nii.gz"
    ct, pet, label = (nib.load(str(out[key])) for key in ("ct", "pet", "label"))
    assert ct.shape == CT_SHAPE
    np.testing.assert_allclose(
        ct.affine, np.diag([-1, -1, 1, 1]) @ lps_affine(CT_ORIGIN, None, CT_SPACING), atol=1e-6
    )
    assert label.shape == pet.shape
    # nearest neighbour: a PET voxel is in the label when its centre's nearest CT voxel is (i 40..49, j 30..39, k 5)
    centres = _pet_centres_lps(pet.shape)
    nearest = np.rint((centres - np.array(CT_ORIGIN)) / np.array(CT_SPACING)).astype(int)
    expected = (
        (nearest[:, 0] >= 40)
        & (nearest[:, 0] <= 49)
        & (nearest[:, 1] >= 30)
        & (nearest[:, 1] <= 39)
        & (nearest[:, 2] == 5)
    ).reshape(pet.shape)
    assert expected.sum() > 0
    np.testing.assert_array_equal(np.asarray(label.dataobj), expected.astype(np.uint8))


def test_convert_study_without_mask_and_bad_studies(shared_data: Path, tmp_path: Path) -> None:
    make_study(shared_data, tmp_path / "s", mask_on=None)
    out = convert_study(tmp_path / "s", tmp_path / "out")
    assert set(out) == {"ct", "pet"}
    shutil.rmtree(tmp_path / "s" / "CT")
    with pytest.raises(DicomSeriesError, match=r"no CT image series in .* found: PT series"):
        convert_study(tmp_path / "s", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DicomSeriesError, match="no DICOM files found"):
        convert_study(tmp_path / "empty", tmp_path / "out")
