"""A whole DICOM PET/CT study -> NIfTI in the nnU-Net layout.

:func:`convert_study` finds the PET, CT and (if present) RTSTRUCT / SEG series of a study
folder and writes PET (SUVbw, :mod:`pcatools.data.dicom.suv`), CT (HU,
:mod:`pcatools.data.dicom.ct`, on the PET grid unless asked otherwise) and label
(:mod:`pcatools.data.dicom.masks`) in the nnU-Net layout (:func:`pcatools.data.case.layout_paths`).
:func:`check_output_dir` checks the output folders before any DICOM is read.

What is refused rather than converted (unreadable files, a CT of another frame of reference,
implausible headers ...) and the option that overrides each check is listed in
``docs/refusals.md``; an override never passes silently: it emits
:class:`~pcatools.data.dicom.series.OverriddenCheckWarning`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pydicom

from pcatools.data.case import layout_paths, save_niftis
from pcatools.data.case_ids import case_id_from_name, study_folder_name, validate_case_id
from pcatools.data.dicom.ct import ct_series_to_hu
from pcatools.data.dicom.masks import (
    referenced_series_uids,
    resample_to_reference,
    rtstruct_to_mask,
    seg_to_mask,
)
from pcatools.data.dicom.series import (
    DicomSeries,
    DicomSeriesError,
    OutputPathError,
    SeriesFiles,
    find_series,
    read_dicom_series,
    refuse_unless_allowed,
)
from pcatools.data.dicom.suv import pet_series_to_suv

__all__ = ["check_output_dir", "convert_study"]


#: The option that chooses among several series of one kind: (library keyword, CLI flag).
_SERIES_OPTIONS = {
    "PT": ("pet_series_uid", "--pet-series-uid"),
    "CT": ("ct_series_uid", "--ct-series-uid"),
    "mask": ("mask_series_uid", "--mask-series-uid"),
}


def _pick(series: Sequence[SeriesFiles], modality: str, uid: str | None, where: Path) -> SeriesFiles:
    candidates = [
        s for s in series if s.modality == modality and s.is_image and (uid is None or s.series_uid == uid)
    ]
    if modality == "CT" and uid is None:
        candidates = [
            s
            for s in candidates
            if "LOCALIZER" not in [str(v).upper() for v in (s.headers[0].get("ImageType", []) or [])]
        ]
    if not candidates:
        found = "; ".join(str(s) for s in series) or "nothing"
        asked = f" with SeriesInstanceUID {uid}" if uid is not None else ""
        raise DicomSeriesError(
            f"no {modality} image series{asked} in {where} (Modality (0008,0060) {modality!r}); found: {found}"
        )
    if len(candidates) > 1:
        found = "; ".join(str(s) for s in candidates)
        keyword, flag = _SERIES_OPTIONS[modality]
        raise DicomSeriesError(
            f"{where} holds {len(candidates)} {modality} series; pass {keyword}=... ({flag} on the command line) "
            f"to choose: {found}"
        )
    return candidates[0]


def check_output_dir(out_dir: str | os.PathLike[str], split: Literal["Tr", "Ts"] = "Tr") -> Path:
    """Check that the nnU-Net folders under ``out_dir`` can be created and written; return ``out_dir``.

    Run before a conversion reads anything, so that a wrong output path fails in a second with one
    line instead of after minutes of work or, worse, with some files of a case written.

    Raises
    ------
    OutputPathError
        ``out_dir``, ``images<split>`` or ``labels<split>`` is an existing file (or other non-folder),
        or the nearest existing folder on the way cannot be written (tried by creating a temporary
        file, which also catches read-only file systems and root-squashed mounts).
    """
    root = Path(out_dir)
    probed: set[Path] = set()
    for folder in (root, root / f"images{split}", root / f"labels{split}"):
        existing = folder
        while not existing.exists() and existing != existing.parent:
            if existing.is_symlink():
                raise OutputPathError(f"output folder {existing} is a broken symbolic link")
            existing = existing.parent
        if not existing.is_dir():
            raise OutputPathError(
                f"output folder {existing} is an existing file, not a folder; choose another output path"
            )
        if existing in probed:
            continue
        probed.add(existing)
        try:
            with tempfile.TemporaryFile(dir=existing, prefix=".pcatools-write-test-"):
                pass
        except OSError as exc:
            raise OutputPathError(
                f"output folder {existing} cannot be written ({exc.strerror or exc}); choose another output path"
            ) from None
    return root


def _world_box(series: DicomSeries) -> np.ndarray:
    """``(2, 3)`` RAS lower and upper corners of the axis-aligned box around the series' voxels (edges, not centres)."""
    shape = series.shape
    corners = np.array(
        [
            [i, j, k, 1.0]
            for i in (-0.5, shape[0] - 0.5)
            for j in (-0.5, shape[1] - 0.5)
            for k in (-0.5, shape[2] - 0.5)
        ]
    )
    world = (series.affine @ corners.T)[:3].T
    return np.stack([world.min(axis=0), world.max(axis=0)])


def _check_ct_matches_pet(pet: DicomSeries, ct: DicomSeries, allow: bool) -> None:
    """Refuse a CT that is not of the PET's scan: another FrameOfReferenceUID, or a field of view beside the PET's.

    A PET/CT shares one frame of reference (DICOM PS3.3 C.7.4.1: same UID, same patient coordinate
    system); a CT of another frame or one whose box does not meet the PET's box would be resampled
    into a volume that does not overlay the PET (or is all air). ``allow`` warns instead.
    """
    option = ("allow_ct_mismatch", "--allow-ct-mismatch")
    pet_for, ct_for = pet.frame_of_reference_uid, ct.frame_of_reference_uid
    if pet_for and ct_for and pet_for != ct_for:
        refuse_unless_allowed(
            DicomSeriesError,
            f"CT {ct.files[0]} has FrameOfReferenceUID (0020,0052) {ct_for}, the PET {pet.files[0]} has {pet_for}: "
            "not one PET/CT acquisition, so their coordinates need not agree",
            allow,
            *option,
        )
    pet_box, ct_box = _world_box(pet), _world_box(ct)
    overlap = np.minimum(pet_box[1], ct_box[1]) - np.maximum(pet_box[0], ct_box[0])
    if np.any(overlap <= 0):

        def span(box: np.ndarray) -> str:
            return ", ".join(
                f"{a} {lo:.1f} to {hi:.1f}" for a, lo, hi in zip("xyz", box[0], box[1], strict=True)
            )

        refuse_unless_allowed(
            DicomSeriesError,
            f"CT {ct.files[0].parent} does not overlap the PET {pet.files[0].parent}: the CT spans {span(ct_box)} mm, "
            f"the PET {span(pet_box)} mm (RAS), so it is not this PET's CT",
            allow,
            *option,
        )


def convert_study(
    study_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    case_id: str | None = None,
    *,
    ct_grid: Literal["pet", "own"] = "pet",
    split: Literal["Tr", "Ts"] = "Tr",
    roi_names: Sequence[str] | None = None,
    pet_series_uid: str | None = None,
    ct_series_uid: str | None = None,
    mask_series_uid: str | None = None,
    skip_unreadable: bool = False,
    allow_implausible: bool = False,
    allow_ct_mismatch: bool = False,
) -> dict[str, Path]:
    """Convert one DICOM PET/CT study to NIfTI in the nnU-Net layout; return the written paths.

    Writes ``imagesTr/<id>_0000.nii.gz`` CT in HU, ``imagesTr/<id>_0001.nii.gz`` PET in SUVbw
    (:func:`pcatools.data.dicom.suv.pet_series_to_suv`) and, where the study holds an RTSTRUCT or a
    DICOM SEG, ``labelsTr/<id>.nii.gz`` (uint8 0/1, union of the ROIs / segments). The files are
    written together (:func:`pcatools.data.case.save_niftis`): a failure leaves none of them.

    The label is drawn on the grid of the series it references (PET or CT; the PET grid where it
    references neither) and then brought onto the PET grid by nearest neighbour. The CT is
    resampled onto the PET grid by trilinear interpolation, as autoPET's ``CTres``: it covers the
    box of its voxels, half a voxel beyond its outermost centres, as in SimpleITK, and is air
    (-1024 HU) beyond (:func:`~pcatools.data.dicom.masks.resample_to_reference`); ``ct_grid="own"``
    keeps its own grid instead.

    Before reading any DICOM the case id (:func:`pcatools.data.case_ids.validate_case_id`) and the
    output folders (:func:`check_output_dir`) are checked.

    Parameters
    ----------
    study_dir : path
        Folder with the study's DICOM files (any sub-folder structure).
    out_dir : path
        Dataset root (``imagesTr`` / ``labelsTr`` are created inside).
    case_id : str, optional
        nnU-Net case id; by default the study folder's name as given (a link keeps its own name)
        with unsafe characters replaced (:func:`pcatools.data.case_ids.case_id_from_name`).
    ct_grid : {"pet", "own"}
        Grid of the written CT.
    split : {"Tr", "Ts"}
        ``imagesTr``/``labelsTr`` or ``imagesTs``/``labelsTs``.
    roi_names : sequence of str, optional
        RTSTRUCT ROIs to include (all by default).
    pet_series_uid, ct_series_uid, mask_series_uid : str, optional
        Choose among several series of one kind.
    skip_unreadable : bool
        Leave out empty or truncated DICOM files with a warning (:func:`find_series`).
    allow_implausible : bool
        Convert a PET with implausible weight, dose, uptake time, a half-life that contradicts its
        nuclide code, or implausible SUVs with a warning
        (:func:`pcatools.data.dicom.suv.pet_series_to_suv`).
    allow_ct_mismatch : bool
        Convert a CT of another frame of reference, or one that does not overlap the PET, with a
        warning.

    Returns
    -------
    dict
        ``{"ct": Path, "pet": Path}`` plus ``"label"`` when a mask was written.

    Raises
    ------
    DicomSeriesError, pcatools.data.dicom.pet_headers.SUVConversionError
        Missing or ambiguous series, unreadable files or geometry, a CT that does not match the
        PET, a PET that cannot be converted to SUV.
    pcatools.data.case_ids.CaseIdError, OutputPathError
        A case id that is not a plain file name; an output folder that is a file or not writable.
    """
    study = Path(study_dir)
    if ct_grid not in ("pet", "own"):
        raise ValueError(f"ct_grid must be 'pet' or 'own', found {ct_grid!r}")
    if case_id is None:
        cid = validate_case_id(case_id_from_name(study_folder_name(study)), f"study folder {study}")
    else:
        cid = validate_case_id(case_id)
    check_output_dir(out_dir, split)
    series = find_series(study, skip_unreadable=skip_unreadable)
    if not series:
        raise DicomSeriesError(f"no DICOM files found in {study}")
    pet_series = read_dicom_series(_pick(series, "PT", pet_series_uid, study))
    ct_series = read_dicom_series(_pick(series, "CT", ct_series_uid, study))
    masks = [
        s
        for s in series
        if s.modality in ("RTSTRUCT", "SEG") and (mask_series_uid is None or s.series_uid == mask_series_uid)
    ]
    if mask_series_uid is not None and not masks:
        raise DicomSeriesError(f"no RTSTRUCT / SEG series {mask_series_uid} in {study}")
    if len(masks) > 1 or (masks and len(masks[0].files) > 1):
        found = "; ".join(str(s) for s in masks)
        keyword, flag = _SERIES_OPTIONS["mask"]
        raise DicomSeriesError(
            f"{study} holds several RTSTRUCT / SEG objects; pass {keyword}=... ({flag} on the command line) "
            f"to choose: {found}"
        )
    _check_ct_matches_pet(pet_series, ct_series, allow_ct_mismatch)

    pet_img = pet_series_to_suv(pet_series, allow_implausible=allow_implausible)
    ct_img = ct_series_to_hu(ct_series)
    if ct_grid == "pet":
        ct_img = resample_to_reference(ct_img, pet_img, order=1, cval=-1024.0)
    images = {"ct": ct_img, "pet": pet_img}
    if masks:
        images["label"] = _mask_on_pet_grid(masks[0], pet_series, ct_series, pet_img, roi_names)
    return save_niftis(images, layout_paths(out_dir, cid, "nnunet", split=split))


def _mask_on_pet_grid(
    mask_files: SeriesFiles,
    pet: DicomSeries,
    ct: DicomSeries,
    pet_img: nib.Nifti1Image,
    roi_names: Sequence[str] | None,
) -> nib.Nifti1Image:
    ds = pydicom.dcmread(mask_files.files[0])
    refs = referenced_series_uids(ds)
    grids = [ct, pet] if ct.series_uid and ct.series_uid in refs else [pet, ct]

    def draw(grid: DicomSeries) -> np.ndarray:
        if mask_files.modality == "RTSTRUCT":
            return rtstruct_to_mask(ds, grid, roi_names)
        return seg_to_mask(ds, grid)

    try:
        grid, data = grids[0], draw(grids[0])
    except DicomSeriesError:
        if refs & {grids[0].series_uid}:
            raise
        grid, data = grids[1], draw(grids[1])
    img = grid.to_nifti(data, descrip="label")
    if grid is not pet:
        img = resample_to_reference(img, pet_img, order=0, cval=0)
    return img
