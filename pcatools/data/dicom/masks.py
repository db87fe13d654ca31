"""Lesion masks from DICOM: RTSTRUCT contours and SEG frames drawn on an image grid; resampling onto another grid.

:func:`rtstruct_to_mask` rasterises the closed planar contours of an RTSTRUCT onto a reference
image grid; :func:`seg_to_mask` places the frames of a DICOM SEG onto one;
:func:`referenced_series_uids` names the series either was drawn on. :func:`resample_to_reference`
brings an image (a mask by nearest neighbour, a CT trilinearly) onto the grid of another.

Array axes are ``(x, y, z)`` = ``(column, row, slice)`` of the DICOM images, as nibabel returns
them; spacing in mm.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from pcatools.data.dicom.series import DicomSeries, DicomSeriesError, _nifti

__all__ = ["referenced_series_uids", "resample_to_reference", "rtstruct_to_mask", "seg_to_mask"]


def _as_dataset(obj: str | os.PathLike[str] | Dataset) -> tuple[Dataset, str]:
    if isinstance(obj, Dataset):
        return obj, str(getattr(obj, "filename", "") or "<dataset>")
    return pydicom.dcmread(obj), str(obj)


def rtstruct_to_mask(
    rtstruct: str | os.PathLike[str] | Dataset,
    reference: DicomSeries,
    roi_names: Sequence[str] | None = None,
    slice_tolerance: float = 0.25,
) -> np.ndarray:
    """Rasterise RTSTRUCT contours onto the grid of ``reference``: a uint8 0/1 mask of shape ``reference.shape``.

    Each ``CLOSED_PLANAR`` contour is mapped to voxel coordinates with the inverse of the reference
    affine; it must lie in one slice plane (within ``slice_tolerance`` slices). A voxel belongs to
    the contour when its centre is inside the polygon or on its edge. Several contours of one ROI in
    one slice combine by exclusive or (even-odd rule), so a contour inside another is a hole, as
    the DICOM standard intends for RT structures; the selected ROIs combine by union. ``POINT``
    contours mark their voxel; open contours enclose nothing and are skipped with a warning.

    Parameters
    ----------
    rtstruct : path or pydicom.Dataset
        The RT Structure Set (Modality RTSTRUCT).
    reference : DicomSeries
        The image grid to draw on (normally the series the structure set references).
    roi_names : sequence of str, optional
        ROIs to include (case-insensitive ``ROIName``); all by default.
    slice_tolerance : float
        How far (in slices) a contour may lie from a slice centre.

    Raises
    ------
    DicomSeriesError
        Not an RTSTRUCT, unknown ROI names, or a contour off the reference grid's slices / outside it.
    """
    from matplotlib.path import Path as PolygonPath  # deferred: start-up (see tests/test_imports.py)

    ds, name = _as_dataset(rtstruct)
    if str(ds.get("Modality", "")).upper() != "RTSTRUCT":
        raise DicomSeriesError(
            f"{name}: Modality (0008,0060) is {ds.get('Modality', None)!r}, expected 'RTSTRUCT'"
        )
    names = {int(r.ROINumber): str(r.get("ROIName", "") or "") for r in ds.get("StructureSetROISequence", [])}
    if roi_names is None:
        selected = set(names)
    else:
        wanted = {n.lower() for n in roi_names}
        selected = {num for num, roi in names.items() if roi.lower() in wanted}
        missing = wanted - {names[n].lower() for n in selected}
        if missing:
            raise DicomSeriesError(
                f"{name}: ROI(s) {sorted(missing)} not in the structure set; it has {sorted(names.values())}"
            )
    _check_frame_of_reference(ds, reference, name)
    shape = reference.shape
    inverse = np.linalg.inv(reference.affine_lps)
    mask = np.zeros(shape, dtype=bool)
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        if number not in selected:
            continue
        roi_mask = np.zeros(shape, dtype=bool)
        for contour in roi.get("ContourSequence", []) or []:
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            ijk = (inverse @ np.column_stack([points, np.ones(len(points))]).T)[:3].T
            k = int(np.rint(ijk[:, 2].mean()))
            if np.abs(ijk[:, 2] - k).max() > slice_tolerance or not 0 <= k < shape[2]:
                raise DicomSeriesError(
                    f"{name}: a contour of ROI {names.get(number, number)!r} at z = {points[:, 2].mean():.2f} mm (LPS) "
                    f"does not lie on a slice of the reference grid ({reference.files[0].parent}, slice index "
                    f"{ijk[:, 2].mean():.2f}); rasterise it onto the series it was drawn on"
                )
            if kind == "POINT":
                i, j = np.rint(ijk[0, :2]).astype(int)
                if 0 <= i < shape[0] and 0 <= j < shape[1]:
                    roi_mask[i, j, k] = True
                continue
            if kind != "CLOSED_PLANAR":
                warnings.warn(
                    f"{name}: skipping a {kind} contour of ROI {names.get(number, number)!r} (encloses no area)",
                    stacklevel=2,
                )
                continue
            if len(points) < 3:
                continue
            polygon = PolygonPath(ijk[:, :2], closed=False)
            lo = np.maximum(np.floor(ijk[:, :2].min(axis=0)).astype(int), 0)
            hi = np.minimum(np.ceil(ijk[:, :2].max(axis=0)).astype(int), np.array(shape[:2]) - 1)
            if np.any(hi < lo):
                continue
            sub_i = np.arange(lo[0], hi[0] + 1)
            sub_j = np.arange(lo[1], hi[1] + 1)
            gi, gj = np.meshgrid(sub_i, sub_j, indexing="ij")
            pts = np.column_stack([gi.ravel(), gj.ravel()]).astype(float)
            # inside or on the edge: matplotlib's radius sign depends on the polygon's orientation
            inside = polygon.contains_points(pts, radius=1e-6) | polygon.contains_points(pts, radius=-1e-6)
            roi_mask[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, k] ^= inside.reshape(gi.shape)
        mask |= roi_mask
    return mask.astype(np.uint8)


def _check_frame_of_reference(ds: Dataset, reference: DicomSeries, name: str) -> None:
    ref_for = reference.frame_of_reference_uid
    fors = {
        str(item.get("FrameOfReferenceUID", "") or "")
        for item in ds.get("ReferencedFrameOfReferenceSequence", [])
    }
    fors |= {str(ds.get("FrameOfReferenceUID", "") or "")}
    fors.discard("")
    if ref_for and fors and ref_for not in fors:
        warnings.warn(
            f"{name}: FrameOfReferenceUID {sorted(fors)} differs from the reference series' {ref_for}; "
            "assuming both share patient coordinates",
            stacklevel=3,
        )


def referenced_series_uids(ds: Dataset) -> set[str]:
    """SeriesInstanceUIDs an RTSTRUCT or SEG refers to (the images it was drawn on)."""
    uids: set[str] = set()
    for fref in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        for study in fref.get("RTReferencedStudySequence", []) or []:
            for series in study.get("RTReferencedSeriesSequence", []) or []:
                uids.add(str(series.get("SeriesInstanceUID", "") or ""))
    for series in ds.get("ReferencedSeriesSequence", []) or []:
        uids.add(str(series.get("SeriesInstanceUID", "") or ""))
    uids.discard("")
    return uids


def seg_to_mask(
    seg: str | os.PathLike[str] | Dataset,
    reference: DicomSeries,
    segment_numbers: Sequence[int] | None = None,
    tolerance: float = 0.1,
) -> np.ndarray:
    """Place the frames of a DICOM SEG onto the grid of ``reference``: a uint8 0/1 mask (union of segments).

    Each frame's ``PlanePositionSequence`` / ``PlaneOrientationSequence`` / ``PixelMeasuresSequence``
    (per frame, or shared) must put it on the reference grid: same orientation and pixel spacing,
    its first pixel on a voxel centre (within ``tolerance`` voxels); frames may cover part of the
    grid. ``BINARY`` segments are taken as they are; ``FRACTIONAL`` ones above half of
    ``MaximumFractionalValue``.

    Parameters
    ----------
    seg : path or pydicom.Dataset
        The Segmentation (Modality SEG).
    reference : DicomSeries
        The image grid (normally the series the SEG references).
    segment_numbers : sequence of int, optional
        Segments to include (``SegmentNumber``); all by default.

    Raises
    ------
    DicomSeriesError
        Not a SEG, or frames off the reference grid.
    """
    ds, name = _as_dataset(seg)
    if str(ds.get("Modality", "")).upper() != "SEG":
        raise DicomSeriesError(
            f"{name}: Modality (0008,0060) is {ds.get('Modality', None)!r}, expected 'SEG'"
        )
    kind = str(ds.get("SegmentationType", "BINARY")).upper()
    frames = np.asarray(ds.pixel_array)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.shape[0] != n_frames:
        raise DicomSeriesError(
            f"{name}: NumberOfFrames (0028,0008) is {n_frames} but PixelData holds {frames.shape[0]}"
        )
    if kind == "FRACTIONAL":
        frames = frames > float(ds.get("MaximumFractionalValue", 255)) / 2.0
    else:
        frames = frames > 0
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != n_frames:
        raise DicomSeriesError(
            f"{name}: PerFrameFunctionalGroupsSequence (5200,9230) has {len(per_frame)} items for {n_frames} frames"
        )
    wanted = None if segment_numbers is None else {int(s) for s in segment_numbers}
    _check_frame_of_reference(ds, reference, name)
    shape = reference.shape
    inverse = np.linalg.inv(reference.affine_lps)
    ref_iop = np.array(reference.headers[0].ImageOrientationPatient, dtype=float)
    ref_ps = np.array(reference.headers[0].PixelSpacing, dtype=float)
    mask = np.zeros(shape, dtype=bool)

    def group(fg: Dataset, keyword: str) -> Dataset:
        seq = fg.get(keyword) or shared.get(keyword)
        if not seq:
            raise DicomSeriesError(f"{name}: {keyword} missing in the per-frame and shared functional groups")
        return seq[0]

    for f, fg in enumerate(per_frame):
        number = int(group(fg, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        if wanted is not None and number not in wanted:
            continue
        iop = np.array(group(fg, "PlaneOrientationSequence").ImageOrientationPatient, dtype=float)
        ps = np.array(group(fg, "PixelMeasuresSequence").PixelSpacing, dtype=float)
        ipp = np.array(group(fg, "PlanePositionSequence").ImagePositionPatient, dtype=float)
        if not np.allclose(iop, ref_iop, atol=1e-4) or not np.allclose(ps, ref_ps, rtol=1e-4):
            raise DicomSeriesError(
                f"{name}: frame {f + 1} (orientation {iop.tolist()}, spacing {ps.tolist()}) is not on the reference "
                f"grid (orientation {ref_iop.tolist()}, spacing {ref_ps.tolist()})"
            )
        ijk = (inverse @ np.append(ipp, 1.0))[:3]
        start = np.rint(ijk).astype(int)
        if np.abs(ijk - start).max() > tolerance:
            raise DicomSeriesError(
                f"{name}: frame {f + 1} at {ipp.tolist()} mm (LPS) falls between voxels of the reference grid "
                f"(voxel index {np.round(ijk, 3).tolist()})"
            )
        plane = frames[f].T  # (columns, rows)
        i0, j0, k = start
        if not (
            0 <= k < shape[2]
            and i0 >= 0
            and j0 >= 0
            and i0 + plane.shape[0] <= shape[0]
            and j0 + plane.shape[1] <= shape[1]
        ):
            raise DicomSeriesError(
                f"{name}: frame {f + 1} (voxel {start.tolist()}, {plane.shape[0]}x{plane.shape[1]}) lies outside "
                f"the reference grid {shape}"
            )
        mask[i0 : i0 + plane.shape[0], j0 : j0 + plane.shape[1], k] |= plane
    return mask.astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# resampling


def resample_to_reference(
    img: nib.Nifti1Image, reference: nib.Nifti1Image, order: int = 1, cval: float = 0.0
) -> nib.Nifti1Image:
    """Resample ``img`` onto the grid (shape and affine) of ``reference`` in world coordinates.

    ``order=1`` is trilinear (images), ``order=0`` nearest neighbour (labels). ``img`` covers the
    box of its voxels, half a voxel beyond its outermost voxel centres, as in SimpleITK / ITK
    (whose interpolators take the edge voxel's value there): a PET slice centre up to half a CT
    slice beyond the CT's last slice centre, common where the slice thicknesses differ, gets the
    CT's last slice, not air inside the body. Points outside that box get ``cval``. The result
    keeps the dtype of ``img``.
    """
    from scipy.ndimage import affine_transform  # deferred: start-up (see tests/test_imports.py)

    data = np.asarray(img.dataobj)
    shape_in = np.array(data.shape[:3])
    to_input = np.linalg.inv(img.affine) @ reference.affine  # reference voxel -> img voxel
    shape = tuple(int(n) for n in reference.shape[:3])
    dtype = img.get_data_dtype()
    # mode "nearest" repeats the edge voxel outside the array: its value out to half a voxel
    out = affine_transform(
        data,
        to_input[:3, :3],
        to_input[:3, 3],
        output_shape=shape,
        order=order,
        mode="nearest",
        output=np.float64 if np.issubdtype(dtype, np.integer) else dtype,
    )
    i, j = (a.ravel() for a in np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"))
    in_plane = to_input[:3, :2] @ np.stack([i, j]).astype(float) + to_input[:3, 3:4]
    tolerance = 1e-6  # voxel units: a reference centre on the box's face counts as inside
    lo, hi = -0.5 - tolerance, shape_in[:, None] - 0.5 + tolerance
    for k in range(shape[2]):  # beyond the box: cval (one output slice at a time keeps this small)
        ijk = in_plane + to_input[:3, 2:3] * k
        outside = ~np.all((ijk >= lo) & (ijk <= hi), axis=0)
        out[:, :, k][outside.reshape(shape[:2])] = cval
    if np.issubdtype(dtype, np.integer):
        out = np.rint(out)
    return _nifti(out.astype(dtype), reference.affine, str(img.header["descrip"].astype(str)))
