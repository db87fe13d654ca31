"""DICOM PET -> SUVbw, the body-weight standardised uptake value.

Follows the "Comprehensive Manual for SUV Computation and Digital Reference Objects for its
Verification" (Vácha, Hofheinz, Braune, Löck, Zwanenburg; published with the SUV DROs of
oncoray/suv_computation, CC BY 4.0; called *the manual* below). For one PET instance with rescaled values ``m P + b`` (per-slice
``RescaleSlope`` m, ``RescaleIntercept`` b, which must be 0)::

    SUVbw = (m P + b) * factor,   factor = suvbw_factor(ds)

and the factor depends on ``Units`` (0054,1001):

======== ====================================================================================
Units    factor
======== ====================================================================================
BQML     W / D(t_ref): weight in g over the dose in Bq decayed to the time the image refers to
         (``DecayCorrection`` START: the series start; ADMIN: the injection; NONE: each frame,
         with the frame's own decay during acquisition)
GML      1 for ``SUVType`` BW or empty (already SUVbw); W / N for SUVType LBM, LBMJAMES128,
         LBMJANMA, IBW, with N the lean body mass / ideal body weight in kg
CM2ML    W[g] / BSA[cm2] (an SUVbsa image, ``SUVType`` BSA), BSA by Du Bois
CNTS     Philips private SUV Scale Factor (7053,1000); else Activity Concentration Scale Factor
         (7053,1009) times the BQML factor
======== ====================================================================================

Any other unit (CPS, PROPCNTS, PROPCPS, 1CM ...), a missing weight, dose, half-life or time
raises :class:`SUVConversionError` naming the tag: raw values are never returned as SUV.

The factor is computed here from the header values of :mod:`~pcatools.data.dicom.pet_headers`, the
time references and decay of :mod:`~pcatools.data.dicom.decay`, and refused where a value is
implausible or differs between slices (:mod:`~pcatools.data.dicom.plausibility`, which lists the
bounds; ``docs/refusals.md`` lists every check). The names of those modules that callers used from
here (the errors, the decay formulas and times,
:func:`~pcatools.data.dicom.decay.check_half_life`,
:func:`~pcatools.data.dicom.plausibility.check_series_consistency`) stay importable from this module.

The 17 digital reference objects (DROs) of the manual exercise every branch; the tests check the
12 shipped ones and rebuild the other 5 by editing tags.
"""

from __future__ import annotations

import math
import os
import warnings
from datetime import datetime
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset

from pcatools.data.dicom.decay import (
    average_count_rate_time,
    check_half_life,
    decay_reference_time,
    decayed_dose,
    frame_decay_factor,
    injection_datetime,
    radionuclide_half_life,
    uptake_seconds,
)
from pcatools.data.dicom.pet_headers import (
    ImplausibleValueError,
    SUVConversionError,
    _acquisition_datetime,
    _number,
    _private_float,
    _radiopharmaceutical,
)
from pcatools.data.dicom.plausibility import (
    DOSE_BQ,
    HEIGHT_CM,
    WEIGHT_KG,
    _check_suv_volume,
    _plausible,
    check_series_consistency,
)
from pcatools.data.dicom.series import (
    DicomSeries,
    DicomSeriesError,
    read_dicom_series,
    rescale_slopes,
)

__all__ = [
    "ImplausibleValueError",
    "SUVConversionError",
    "administered_dose_bq",
    "average_count_rate_time",
    "body_surface_area",
    "decay_reference_time",
    "decayed_dose",
    "dicom_pet_to_suv",
    "frame_decay_factor",
    "ideal_body_weight",
    "injection_datetime",
    "lean_body_mass",
    "patient_weight_kg",
    "pet_series_to_suv",
    "check_half_life",
    "check_series_consistency",
    "radionuclide_half_life",
    "suvbw_factor",
    "uptake_seconds",
]


#: A RadionuclideTotalDose below this is read as MBq (the manual's Fig. 2: peaks near 4e2 and 4e8).
MBQ_THRESHOLD = 1e5


Sex = Literal["M", "F", "O"]


def _mean_over_sex(sex: str, male: float, female: float, what: str) -> float:
    s = sex.upper()
    if s == "M":
        return male
    if s == "F":
        return female
    if s == "O":
        return 0.5 * (male + female)
    raise SUVConversionError(f"PatientSex (0010,0040) is {sex!r}; {what} needs 'M', 'F' or 'O'")


def lean_body_mass(weight_kg: float, height_cm: float, sex: str, formula: str = "LBMJAMES128") -> float:
    """Lean body mass in kg for the GML ``SUVType`` values of DICOM (manual, "Units = GML").

    - ``LBM`` (Morgan): male ``1.10 W - 120 (W/H)^2``, female ``1.07 W - 148 (W/H)^2``
    - ``LBMJAMES128`` (James): male ``1.10 W - 128 (W/H)^2``, female ``1.07 W - 148 (W/H)^2``
    - ``LBMJANMA`` (Janmahasatian): male ``9270 W / (6680 + 216 BMI)``, female
      ``9270 W / (8780 + 244 BMI)``, ``BMI = W / (H/100)^2``

    W in kg, H in cm. For ``sex="O"`` the mean of the male and female values (the manual's
    suggestion, read as the mean of the two masses).

    Examples
    --------
    >>> round(lean_body_mass(70.0, 175.0, "M"), 2)  # 77 - 128 * 0.16
    56.52
    """
    w, h = float(weight_kg), float(height_cm)
    f = formula.upper()
    if f in ("LBM", "LBMJAMES128"):
        k_male = 120.0 if f == "LBM" else 128.0
        male = 1.10 * w - k_male * (w / h) ** 2
        female = 1.07 * w - 148.0 * (w / h) ** 2
    elif f == "LBMJANMA":
        bmi = w / (h / 100.0) ** 2
        male = 9270.0 * w / (6680.0 + 216.0 * bmi)
        female = 9270.0 * w / (8780.0 + 244.0 * bmi)
    else:
        raise SUVConversionError(f"SUVType (0054,1006) {formula!r} is not a lean body mass formula")
    return _mean_over_sex(sex, male, female, f"SUVType {f}")


def ideal_body_weight(height_cm: float, sex: str) -> float:
    """Ideal body weight in kg (``SUVType`` IBW; manual, "Units = GML").

    Male ``48.0 + 1.06 (H - 152)``, female ``45.5 + 0.91 (H - 152)``, H in cm; ``sex="O"``: their mean.

    Examples
    --------
    >>> round(ideal_body_weight(175.0, "O"), 3)  # (72.38 + 66.43) / 2
    69.405
    """
    h = float(height_cm)
    return _mean_over_sex(sex, 48.0 + 1.06 * (h - 152.0), 45.5 + 0.91 * (h - 152.0), "SUVType IBW")


def body_surface_area(weight_kg: float, height_cm: float) -> float:
    """Body surface area in m^2 by Du Bois (``Units`` CM2ML; manual, "Units = CM2ML").

    .. math:: BSA = 0.007184 \\, H^{0.725} \\, W^{0.425}

    H in cm, W in kg.

    Examples
    --------
    >>> round(body_surface_area(70.0, 175.0), 4)
    1.8481
    """
    return 0.007184 * float(height_cm) ** 0.725 * float(weight_kg) ** 0.425


def patient_weight_kg(ds: Dataset, allow_implausible: bool = False) -> float:
    """``PatientWeight`` (0010,1030) in kg; values over 1000 were entered in grams (manual, "Patient's weight").

    A weight outside :data:`WEIGHT_KG` (after that conversion) is refused, because it is a typo or
    another unit (pounds are not told apart) and scales every SUV; ``allow_implausible`` warns instead.
    """
    w = _number(ds.get("PatientWeight", None))
    if w is not None and math.isnan(w):
        raise SUVConversionError("PatientWeight (0010,1030) is NaN; expected the weight in kg")
    if w is None or not math.isfinite(w) or w <= 0:
        raise SUVConversionError(
            f"PatientWeight (0010,1030) is missing or not positive (found {ds.get('PatientWeight', None)!r})"
        )
    kg = w / 1000.0 if w > 1000.0 else w
    _plausible(
        kg,
        WEIGHT_KG,
        f"PatientWeight (0010,1030) is {w:g}, read as {kg:g} kg; plausible {WEIGHT_KG[0]:g}-{WEIGHT_KG[1]:g} kg "
        "(values over 1000 are read as grams)",
        allow_implausible,
    )
    return kg


def _height_cm(ds: Dataset, why: str, allow_implausible: bool = False) -> float:
    h = _number(ds.get("PatientSize", None))
    if h is None or h <= 0:
        raise SUVConversionError(
            f"PatientSize (0010,1020) is missing or not positive; {why} needs the height"
        )
    cm = h if h > 3.0 else h * 100.0  # metres by the standard; > 3 can only be centimetres
    _plausible(
        cm,
        HEIGHT_CM,
        f"PatientSize (0010,1020) is {h:g}, read as {cm:g} cm; plausible {HEIGHT_CM[0]:g}-{HEIGHT_CM[1]:g} cm "
        f"(values up to 3 are read as metres); {why} needs the height",
        allow_implausible,
    )
    return cm


def _sex(ds: Dataset, why: str) -> str:
    sex = str(ds.get("PatientSex", "") or "").upper()
    if sex not in ("M", "F", "O"):
        raise SUVConversionError(
            f"PatientSex (0010,0040) is {sex or 'missing'!r}; {why} needs 'M', 'F' or 'O'"
        )
    return sex


def administered_dose_bq(ds: Dataset, allow_implausible: bool = False) -> float:
    """``RadionuclideTotalDose`` (0018,1074) in Bq; values below 1e5 are read as MBq (manual, "Radiopharmaceutical dose").

    A dose outside :data:`DOSE_BQ` after that reading is refused: a dose in kBq (368080) read as
    Bq would give SUVs a thousand times too high; ``allow_implausible`` warns instead.
    """
    d = _number(_radiopharmaceutical(ds).get("RadionuclideTotalDose", None))
    if d is not None and math.isnan(d):
        raise SUVConversionError(
            "RadionuclideTotalDose (0018,1074) is NaN in RadiopharmaceuticalInformationSequence (0054,0016); "
            "expected the administered dose in Bq or MBq"
        )
    if d is None or not math.isfinite(d) or d <= 0:
        raise SUVConversionError(
            "RadionuclideTotalDose (0018,1074) is missing or not positive in RadiopharmaceuticalInformationSequence (0054,0016)"
        )
    if d < 1.0:
        raise SUVConversionError(
            f"RadionuclideTotalDose (0018,1074) is {d}: neither Bq nor MBq (GBq is not supported)"
        )
    bq = d * 1e6 if d < MBQ_THRESHOLD else d
    unit = "MBq" if d < MBQ_THRESHOLD else "Bq"
    _plausible(
        bq,
        DOSE_BQ,
        f"RadionuclideTotalDose (0018,1074) is {d:g}, read as {unit} = {bq / 1e6:g} MBq; plausible "
        f"{DOSE_BQ[0] / 1e6:g}-{DOSE_BQ[1] / 1e6:g} MBq (values below {MBQ_THRESHOLD:g} are read as MBq, others as Bq"
        + ("; a dose in kBq?)" if bq < DOSE_BQ[0] else ")"),
        allow_implausible,
    )
    return bq


def _bqml_factor(ds: Dataset, reference_time: datetime | None, allow: bool) -> float:
    """``W[g] / D(t)`` for activity-concentration images, by ``DecayCorrection`` (0054,1102)."""
    weight_g = patient_weight_kg(ds, allow) * 1000.0
    dose = administered_dose_bq(ds, allow)
    dc = str(ds.get("DecayCorrection", "") or "").upper()
    if dc in ("START", "NONE"):
        check_half_life(ds, allow)
    if dc == "ADMIN":
        return weight_g / dose
    if dc == "START":
        t_ref = reference_time or decay_reference_time([ds])
        elapsed = uptake_seconds(ds, t_ref, allow)
        return weight_g / decayed_dose(dose, radionuclide_half_life(ds), elapsed)
    if dc == "NONE":
        t_acq = _acquisition_datetime(ds)
        if t_acq is None:
            raise SUVConversionError(
                "DecayCorrection NONE needs AcquisitionDate/AcquisitionTime (0008,0022/0032), missing"
            )
        duration = _number(ds.get("ActualFrameDuration", None))
        if duration is None or duration < 0:
            raise SUVConversionError("DecayCorrection NONE needs ActualFrameDuration (0018,1242), missing")
        elapsed = uptake_seconds(ds, t_acq, allow)
        return weight_g / dose * frame_decay_factor(elapsed, duration / 1000.0, radionuclide_half_life(ds))
    if not dc:
        raise SUVConversionError("DecayCorrection (0054,1102) is missing")
    raise SUVConversionError(f"DecayCorrection (0054,1102) is {dc!r}; expected START, ADMIN or NONE")


def _gml_factor(ds: Dataset, allow: bool) -> float:
    suv_type = str(ds.get("SUVType", "") or "").upper()
    if suv_type in ("", "BW"):
        return 1.0
    weight = patient_weight_kg(ds, allow)
    if suv_type == "BSA":
        raise SUVConversionError(
            "SUVType (0054,1006) BSA contradicts Units (0054,1001) GML (BSA images are CM2ML)"
        )
    if suv_type in ("LBM", "LBMJAMES128", "LBMJANMA"):
        why = f"SUVType {suv_type}"
        return weight / lean_body_mass(weight, _height_cm(ds, why, allow), _sex(ds, why), suv_type)
    if suv_type == "IBW":
        return weight / ideal_body_weight(_height_cm(ds, "SUVType IBW", allow), _sex(ds, "SUVType IBW"))
    raise SUVConversionError(
        f"SUVType (0054,1006) is {suv_type!r}; expected BW, LBM, LBMJAMES128, LBMJANMA or IBW"
    )


def _cm2ml_factor(ds: Dataset, allow: bool) -> float:
    suv_type = str(ds.get("SUVType", "") or "").upper()
    if suv_type not in ("", "BSA"):
        raise SUVConversionError(
            f"SUVType (0054,1006) {suv_type!r} contradicts Units (0054,1001) CM2ML (expected BSA)"
        )
    weight = patient_weight_kg(ds, allow)
    bsa_cm2 = body_surface_area(weight, _height_cm(ds, "Units CM2ML", allow)) * 1e4
    return weight * 1000.0 / bsa_cm2


def suvbw_factor(
    ds: Dataset, reference_time: datetime | None = None, *, allow_implausible: bool = False
) -> float:
    """The factor turning one PET instance's rescaled values ``P * RescaleSlope + RescaleIntercept`` into SUVbw.

    .. math:: SUV_{bw} = \\frac{m P \\, W}{D(t)}

    for ``Units`` BQML (W in g, D in Bq decayed to the time the image refers to); see the module
    docstring for GML, CM2ML and CNTS.

    Parameters
    ----------
    ds : pydicom.Dataset
        One PET instance (pixel data not needed).
    reference_time : datetime, optional
        The series' decay-correction reference time (:func:`decay_reference_time` over all its
        instances); computed from ``ds`` alone when omitted. Only used for ``DecayCorrection`` START.
    allow_implausible : bool
        Warn instead of refusing implausible weight, height, dose or uptake time.

    Raises
    ------
    SUVConversionError
        Not a PET (``Modality`` (0008,0060)), non-zero ``RescaleIntercept`` (0028,1052), not
        attenuation corrected (``CorrectedImage`` (0028,0051) without ATTN), unknown ``Units``
        (0054,1001), or a tag the units need is missing (``PatientWeight``,
        ``RadionuclideTotalDose``, ``RadionuclideHalfLife``, injection and scan times ...).
    ImplausibleValueError
        A value the units use lies outside its plausible range (module docstring).

    Examples
    --------
    The baseline DRO 0_0 (BQML, START; 70 kg, 368.08 MBq F-18 injected one hour before the scan)
    is built so that 3600 Bq/ml is SUV 1 (``DRO_0_0/`` of the SUV DROs of oncoray/suv_computation):

    >>> import pydicom  # doctest: +SKIP
    >>> ds = pydicom.dcmread("DRO_0_0/PT/pet_dro_0_0_slice_000.dcm")  # doctest: +SKIP
    >>> round(suvbw_factor(ds) * 3600, 4)  # 70000 / (368.08e6 * exp(-ln 2 * 3600 / 6586.2)) * 3600  # doctest: +SKIP
    1.0
    """
    modality = str(ds.get("Modality", "") or "")
    if modality.upper() != "PT":
        raise SUVConversionError(
            f"Modality (0008,0060) is {modality or 'missing'!r}, expected 'PT' (a PET image)"
        )
    intercept = _number(ds.get("RescaleIntercept", None))
    if intercept not in (None, 0.0):
        raise SUVConversionError(
            f"RescaleIntercept (0028,1052) is {intercept}; PET images must have 0 (the manual)"
        )
    corrected = [str(v).upper() for v in (ds.get("CorrectedImage", []) or [])]
    if corrected and "ATTN" not in corrected:
        raise SUVConversionError(
            f"CorrectedImage (0028,0051) {corrected} lacks ATTN: not attenuation corrected, not quantitative"
        )
    units = str(ds.get("Units", "") or "").upper()
    if units == "BQML":
        factor = _bqml_factor(ds, reference_time, allow_implausible)
    elif units == "GML":
        factor = _gml_factor(ds, allow_implausible)
    elif units == "CM2ML":
        factor = _cm2ml_factor(ds, allow_implausible)
    elif units == "CNTS":
        suv_scale = _private_float(ds, (0x7053, 0x1000))
        activity_scale = _private_float(ds, (0x7053, 0x1009))
        if suv_scale:
            factor = suv_scale
        elif activity_scale:
            factor = activity_scale * _bqml_factor(ds, reference_time, allow_implausible)
        else:
            raise SUVConversionError(
                "Units (0054,1001) is 'CNTS' but neither the Philips SUV Scale Factor (7053,1000) nor the Activity "
                "Concentration Scale Factor (7053,1009) is given (or both are 0): counts cannot be converted to SUVbw"
            )
    elif not units:
        raise SUVConversionError("Units (0054,1001) is missing")
    else:
        raise SUVConversionError(
            f"Units (0054,1001) is {units!r}; only BQML, GML, CM2ML and CNTS (with a Philips scale factor) can be "
            "converted to SUVbw"
        )
    if not math.isfinite(factor) or factor <= 0:
        raise SUVConversionError(f"SUVbw factor {factor} is not a positive number")
    return float(factor)


def pet_series_to_suv(series: DicomSeries, *, allow_implausible: bool = False) -> nib.Nifti1Image:
    """A PET :class:`~pcatools.data.dicom.series.DicomSeries` as a float32 SUVbw NIfTI image (RAS affine).

    Each slice is ``(stored * RescaleSlope + RescaleIntercept) * suvbw_factor(slice)`` with one
    decay-correction reference time for the whole series. The slices must agree on every factor
    attribute (:func:`check_series_consistency`) and each must give a finite RescaleSlope above 0
    (:func:`~pcatools.data.dicom.series.rescale_slopes`); implausible header values and SUVs are refused
    (see the module docstring) unless ``allow_implausible``, which warns once per message
    (naming the first slice and how many more) instead.

    Raises
    ------
    SUVConversionError
        As :func:`suvbw_factor`, prefixed with the file; or slices that disagree.
    ImplausibleValueError
        An implausible header value or SUV volume.
    """
    if series.modality != "PT":
        raise SUVConversionError(
            f"Modality (0008,0060) is {series.modality!r}, expected 'PT': {series.files[0]} is not a PET image"
        )
    check_series_consistency(series.files, series.headers)
    try:
        slopes = rescale_slopes(series)
    except DicomSeriesError as exc:
        raise SUVConversionError(str(exc)) from exc
    try:
        reference = decay_reference_time(series.headers)
    except SUVConversionError:
        reference = None  # not needed for every unit; suvbw_factor raises where it is
    factors = []
    sources: dict[tuple[type[Warning], str], list[Path]] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path, h in zip(series.files, series.headers, strict=True):
            seen = len(caught)
            try:
                factors.append(suvbw_factor(h, reference_time=reference, allow_implausible=allow_implausible))
            except SUVConversionError as exc:
                raise type(exc)(f"{path}: {exc}") from exc
            for w in caught[seen:]:
                sources.setdefault((w.category, str(w.message)), []).append(path)
    for (category, message), paths in sources.items():  # one warning per message, not one per slice
        more = f" and {len(paths) - 1} more slice(s)" if len(paths) > 1 else ""
        warnings.warn(f"{paths[0]}{more}: {message}", category, stacklevel=2)
    out = np.empty(series.shape, dtype=np.float32)
    for k, (_, stored) in enumerate(series.iter_slices("read PET")):
        out[:, :, k] = stored * slopes[k] * factors[k]
    if not np.all(np.isfinite(out)):
        raise SUVConversionError(f"non-finite SUV values in {series.files[0].parent}")
    _check_suv_volume(out, f"PET series {series.series_uid} in {series.files[0].parent}", allow_implausible)
    return series.to_nifti(out, descrip="SUVbw")


def dicom_pet_to_suv(
    directory: str | os.PathLike[str],
    series_uid: str | None = None,
    *,
    allow_implausible: bool = False,
    skip_unreadable: bool = False,
) -> nib.Nifti1Image:
    """Read one DICOM PET series as a float32 SUVbw NIfTI image that overlays NIfTI masks of the same scan.

    Slices are sorted by position along the slice normal (never by file name), rescaled with their
    own ``RescaleSlope`` and multiplied by :func:`suvbw_factor`; the affine is voxel -> RAS+ mm.

    Parameters
    ----------
    directory : path
        Folder with the series (searched recursively; other modalities and non-DICOM files are ignored).
    series_uid : str, optional
        Which PET series, where the folder holds several.
    allow_implausible : bool
        Warn instead of refusing implausible header values or SUVs (:func:`pet_series_to_suv`).
    skip_unreadable : bool
        Leave out empty or truncated DICOM files with a warning instead of refusing
        (:func:`pcatools.data.dicom.series.find_series`).

    Raises
    ------
    SUVConversionError
        Empty folder, unreadable files, no PET series (e.g. a CT), several PET series, bad geometry,
        slices that disagree, or a header that does not allow SUVbw (see :func:`suvbw_factor`).

    Examples
    --------
    DRO 0_0 of the SUV DROs of oncoray/suv_computation (SUV 0.20 / 1.00 / 4.00 in its mask):

    >>> img = dicom_pet_to_suv("DRO_0_0/PT")  # doctest: +SKIP
    >>> img.shape, float(img.get_fdata().max().round(2))  # doctest: +SKIP
    ((256, 256, 20), 4.0)
    """
    try:
        series = read_dicom_series(
            directory, modality="PT", series_uid=series_uid, skip_unreadable=skip_unreadable
        )
    except DicomSeriesError as exc:
        raise SUVConversionError(str(exc)) from exc
    return pet_series_to_suv(series, allow_implausible=allow_implausible)
