"""DICOM in: image series on a RAS grid, PET -> SUVbw, CT -> HU, lesion masks from RTSTRUCT / SEG, whole studies.

One concept per module, from the bottom up (each imports only those above it):

- :mod:`~pcatools.data.dicom.series`: :func:`find_series` groups the DICOM files under a folder
  by ``SeriesInstanceUID`` (headers only, so it is cheap); :func:`read_dicom_series` turns one
  image series into a :class:`DicomSeries`: its instances sorted by position along the slice
  normal (never by file name or ``InstanceNumber``) and the voxel -> RAS+ affine of the NIfTI
  convention, so that what it writes overlays NIfTI files of the same scan. The errors
  (:class:`DicomSeriesError` ...) and :class:`OverriddenCheckWarning` live here.
- :mod:`~pcatools.data.dicom.ct`: :func:`dicom_ct_to_hu` reads a CT series in Hounsfield units
  (per-slice ``RescaleSlope`` / ``RescaleIntercept``).
- :mod:`~pcatools.data.dicom.masks`: :func:`rtstruct_to_mask` rasterises the closed planar
  contours of an RTSTRUCT onto a reference image grid; :func:`seg_to_mask` places the frames of a
  DICOM SEG onto one; :func:`resample_to_reference` brings an image onto another grid.
- :mod:`~pcatools.data.dicom.pet_headers`: PET header values (numbers, the radiopharmaceutical,
  dates and times) read one way, and the SUV errors (:class:`SUVConversionError` ...).
- :mod:`~pcatools.data.dicom.plausibility`: the bounds a header value or an SUV volume must keep,
  and the factor's attributes the same in every slice.
- :mod:`~pcatools.data.dicom.decay`: time references and decay (the radionuclide's half-life, the
  scan and injection times, the manual's decay formulas).
- :mod:`~pcatools.data.dicom.suv`: the SUVbw factor (:func:`suvbw_factor`) and
  :func:`dicom_pet_to_suv`, which reads a PET series in SUVbw.
- :mod:`~pcatools.data.dicom.convert`: :func:`convert_study` finds the PET, CT and (if present)
  RTSTRUCT / SEG series of a study folder and writes PET (SUVbw), CT (HU, on the PET grid unless
  asked otherwise) and label in the nnU-Net layout (:func:`pcatools.data.case.layout_paths`).

The public names of the modules are re-exported here (``from pcatools.data.dicom import
convert_study, read_dicom_series``); inside the package, modules import from the defining module,
never from this one.

What is refused rather than converted (unreadable files, a CT of another frame of reference,
implausible headers ...) and the option that overrides each check is listed in
``docs/refusals.md``; an override never passes silently: it emits :class:`OverriddenCheckWarning`.

Array axes are ``(x, y, z)`` = ``(column, row, slice)`` of the DICOM images, as nibabel returns
them; spacing in mm.
"""

from __future__ import annotations

from pcatools.data.dicom.convert import check_output_dir, convert_study
from pcatools.data.dicom.ct import ct_series_to_hu, dicom_ct_to_hu
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
    OverriddenCheckWarning,
    SeriesFiles,
    UnreadableDicomError,
    find_series,
    read_dicom_series,
    refuse_unless_allowed,
    rescale_slopes,
    unreadable_reason,
)
from pcatools.data.dicom.suv import (
    ImplausibleValueError,
    SUVConversionError,
    dicom_pet_to_suv,
    pet_series_to_suv,
    suvbw_factor,
)

__all__ = [
    "DicomSeries",
    "DicomSeriesError",
    "ImplausibleValueError",
    "OutputPathError",
    "OverriddenCheckWarning",
    "SUVConversionError",
    "SeriesFiles",
    "UnreadableDicomError",
    "check_output_dir",
    "convert_study",
    "ct_series_to_hu",
    "dicom_ct_to_hu",
    "dicom_pet_to_suv",
    "find_series",
    "pet_series_to_suv",
    "read_dicom_series",
    "referenced_series_uids",
    "refuse_unless_allowed",
    "resample_to_reference",
    "rescale_slopes",
    "rtstruct_to_mask",
    "seg_to_mask",
    "suvbw_factor",
    "unreadable_reason",
]
