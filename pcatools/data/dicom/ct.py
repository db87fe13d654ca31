"""DICOM CT -> Hounsfield units.

:func:`dicom_ct_to_hu` reads a CT series in Hounsfield units (per-slice ``RescaleSlope`` /
``RescaleIntercept``); :func:`ct_series_to_hu` converts a series already read with
:func:`~pcatools.data.dicom.series.read_dicom_series`.

Array axes are ``(x, y, z)`` = ``(column, row, slice)`` of the DICOM images, as nibabel returns
them; spacing in mm.
"""

from __future__ import annotations

import os

import nibabel as nib

from pcatools.data.dicom.series import DicomSeries, DicomSeriesError, read_dicom_series

__all__ = ["ct_series_to_hu", "dicom_ct_to_hu"]


def ct_series_to_hu(series: DicomSeries) -> nib.Nifti1Image:
    """A CT :class:`DicomSeries` as float32 Hounsfield units: ``HU = stored * RescaleSlope + RescaleIntercept``.

    Slope and intercept are applied per slice. Raises :class:`DicomSeriesError` for a series that is
    not CT, a localizer (scout), one whose ``RescaleType`` names other units than HU, or one with a
    missing, non-finite or non-positive ``RescaleSlope``
    (:func:`~pcatools.data.dicom.series.rescale_slopes`).
    """
    if series.modality != "CT":
        raise DicomSeriesError(
            f"Modality (0008,0060) is {series.modality!r}, expected 'CT' ({series.files[0]})"
        )
    h = series.headers[0]
    image_type = [str(v).upper() for v in (h.get("ImageType", []) or [])]
    if "LOCALIZER" in image_type:
        raise DicomSeriesError(
            f"{series.files[0]}: ImageType (0008,0008) {image_type} is a localizer, not a CT volume"
        )
    for path, hh in zip(series.files, series.headers, strict=True):
        rescale_type = str(hh.get("RescaleType", "") or "").upper()
        if rescale_type not in ("", "HU", "US"):
            raise DicomSeriesError(f"{path}: RescaleType (0028,1054) is {rescale_type!r}, expected 'HU'")
    return series.to_nifti(series.rescaled("read CT"), descrip="CT HU")


def dicom_ct_to_hu(directory: str | os.PathLike[str], series_uid: str | None = None) -> nib.Nifti1Image:
    """Read a DICOM CT series as a float32 NIfTI image in Hounsfield units on a RAS+ affine.

    Parameters
    ----------
    directory : path
        Folder holding the series (other series and non-DICOM files may be there too).
    series_uid : str, optional
        Which CT series, when the folder holds several.

    Examples
    --------
    The 20 DICOM slices of a CT from TotalSegmentator's test files (Apache-2.0), in ``dicom/``:

    >>> img = dicom_ct_to_hu("dicom")  # doctest: +SKIP
    >>> img.shape, img.header.get_zooms()  # doctest: +SKIP
    ((512, 512, 20), (0.9765625, 0.9765625, 2.0))
    """
    return ct_series_to_hu(read_dicom_series(directory, modality="CT", series_uid=series_uid))
