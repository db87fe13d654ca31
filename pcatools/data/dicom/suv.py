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

Values that are present but implausible are refused as well (:class:`ImplausibleValueError`),
because a wrong unit or a typo gives SUVs that look like numbers: a weight outside
:data:`WEIGHT_KG`, a height outside :data:`HEIGHT_CM` (where used), a dose outside :data:`DOSE_BQ`,
an uptake time outside ``-INJECTION_AFTER_SCAN_TOLERANCE`` .. :data:`MAX_UPTAKE_HALF_LIVES`
half-lives, a RadionuclideHalfLife more than :data:`HALF_LIFE_TOLERANCE` from that of the nuclide
its code names (:func:`check_half_life`), a maximum SUV above :data:`SUV_MAX_CEILING` or a body median outside
:data:`BODY_MEDIAN_SUV`. ``allow_implausible=True`` converts anyway with an
:class:`~pcatools.data.dicom.series.OverriddenCheckWarning`. Every factor-relevant attribute must
be the same in all slices of a series (:data:`SERIES_CONSTANT`). ``docs/refusals.md`` lists every
check.

The 17 digital reference objects (DROs) of the manual exercise every branch; the tests check the
12 shipped ones and rebuild the other 5 by editing tags.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, DT, TM

from pcatools.data.dicom.series import (
    DicomSeries,
    DicomSeriesError,
    read_dicom_series,
    refuse_unless_allowed,
    rescale_slopes,
)
from pcatools.data.errors import DataError

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


class SUVConversionError(DataError):
    """A PET series cannot be converted to SUVbw; the message names the file, the missing or bad tag."""


class ImplausibleValueError(SUVConversionError):
    """A header value or the resulting SUVs lie outside the plausible range (overridable: ``allow_implausible``)."""


#: Common PET radionuclides: (element name, mass number) -> (half-life in s, SNOMED-RT code, SNOMED CT
#: code), the codes of DICOM PS3.16 CID 4020 "PET Radionuclide" for RadionuclideCodeSequence
#: (0054,0300) (SRT until 2019, SCT since; as pydicom's ``pydicom.sr`` tables map them). The
#: half-lives are the values PET scanners write (the manual's Table 10: 598, 1223, 4057, 6586 s),
#: within 0.2 % of the nuclear-data values (Ga-68 67.71 min = 4062.6 s, C-11 20.36 min).
RADIONUCLIDES: dict[tuple[str, int], tuple[float, str, str]] = {
    ("fluorine", 18): (6586.2, "C-111A1", "77004003"),  # 109.77 min
    ("gallium", 68): (4057.7, "C-131A3", "35337001"),  # 67.63 min
    ("carbon", 11): (1223.4, "C-105A1", "40565003"),  # 20.39 min
    ("nitrogen", 13): (597.9, "C-107A1", "21576001"),  # 9.965 min
    ("oxygen", 15): (122.24, "C-B1038", "129504001"),  # 2.04 min
    ("rubidium", 82): (75.45, "C-159A2", "79197006"),  # 1.26 min
    ("copper", 64): (45721.1, "C-127A2", "3932008"),  # 12.70 h
    ("zirconium", 89): (282240.0, "C-168A4", "63360001"),  # 78.4 h
    ("iodine", 124): (360806.4, "C-114A5", "40937006"),  # 4.18 days
}
#: Half-lives (s) by code value (SNOMED-RT or SNOMED CT) of RadionuclideCodeSequence (0054,0300).
HALF_LIFE_BY_CODE: dict[str, float] = {
    code: half for half, *codes in RADIONUCLIDES.values() for code in codes
}
#: The same by (element name, mass number), matched in the code meaning ("^18^Fluorine", "Ga-68" ...).
HALF_LIFE_BY_NUCLIDE: dict[tuple[str, int], float] = {
    key: half for key, (half, _, _) in RADIONUCLIDES.items()
}
#: RadionuclideHalfLife (0018,1075) may differ from the half-life of the nuclide its code names by
#: this fraction (rounding, other nuclear-data tables); a Ga-68 half-life with an F-18 code (38 %)
#: raises every SUV 27 % one hour after injection.
HALF_LIFE_TOLERANCE = 0.01
_SYMBOLS = {
    "f": "fluorine",
    "ga": "gallium",
    "c": "carbon",
    "n": "nitrogen",
    "o": "oxygen",
    "cu": "copper",
    "zr": "zirconium",
    "rb": "rubidium",
    "i": "iodine",
}

#: A RadionuclideTotalDose below this is read as MBq (the manual's Fig. 2: peaks near 4e2 and 4e8).
MBQ_THRESHOLD = 1e5
#: A scan may start this long before the injection (a dynamic scan is started, then the tracer
#: injected); a time-only injection later than the scan by more than this is taken from the day
#: before, and an uptake time more negative than this is refused.
INJECTION_AFTER_SCAN_TOLERANCE = timedelta(minutes=10)
#: Uptake times (injection -> decay reference) of more than this many half-lives are refused: less
#: than 0.1 % of the dose is left, and it is what a date error (a day too early) produces.
MAX_UPTAKE_HALF_LIVES = 10.0
#: Plausible PatientWeight (0010,1030) in kg (after reading values over 1000 as grams).
WEIGHT_KG = (1.0, 500.0)
#: Plausible PatientSize (0010,1020) in cm (after reading values up to 3 as metres), where used.
HEIGHT_CM = (30.0, 250.0)
#: Plausible administered dose in Bq (after reading values under MBQ_THRESHOLD as MBq): 1 MBq - 5 GBq,
#: about an order of magnitude around clinical PET doses (the manual's Fig. 2 peaks at 4e8 Bq).
DOSE_BQ = (1e6, 5e9)
#: Highest plausible voxel SUVbw: hot organs, bladder and lesions reach tens to a few hundred.
SUV_MAX_CEILING = 1000.0
#: Plausible median SUVbw of the body, taken as the voxels above the volume's mean (air excluded).
BODY_MEDIAN_SUV = (0.05, 20.0)
_IMPLAUSIBLE = ("allow_implausible", "--allow-implausible")

Sex = Literal["M", "F", "O"]


# ----------------------------------------------------------------------------------------------
# formulas of the manual


def decayed_dose(dose_bq: float, half_life_s: float, elapsed_s: float) -> float:
    """Administered dose decayed over ``elapsed_s`` seconds (manual, "Decay correction = START").

    .. math:: D = D_{adm} \\, e^{-\\lambda (t_{ref} - t_{adm})}, \\qquad \\lambda = \\ln 2 / T_{1/2}

    Examples
    --------
    >>> round(decayed_dose(368.08e6, 6586.2, 3600.0))  # 368.08 MBq of F-18, one hour later
    251999685
    """
    return float(dose_bq) * math.exp(-math.log(2.0) / float(half_life_s) * float(elapsed_s))


def average_count_rate_time(frame_duration_s: float, half_life_s: float) -> float:
    """Time after a frame's start at which the count rate equals its frame average (manual, option B).

    .. math:: T_{ave} = \\frac{1}{\\lambda} \\ln \\frac{\\lambda T}{1 - e^{-\\lambda T}}

    with ``T`` the frame duration; ``T_ave -> T / 2`` for short frames and ``0`` for ``T = 0``.

    Examples
    --------
    >>> round(average_count_rate_time(603.0, 6586.2), 3)
    299.906
    """
    lam = math.log(2.0) / float(half_life_s)
    x = lam * float(frame_duration_s)
    if x <= 0.0:
        return 0.0
    return math.log(x / -math.expm1(-x)) / lam


def frame_decay_factor(elapsed_s: float, frame_duration_s: float, half_life_s: float) -> float:
    """Factor turning a non-decay-corrected frame into activity at injection (``DecayCorrection`` NONE).

    The manual's formula for ``DecayCorrection`` NONE, ``SUVbw = m P W / D_adm * F`` with

    .. math:: F = \\frac{\\lambda T}{1 - e^{-\\lambda T}} \\, e^{\\lambda (t_{acq} - t_{adm})}

    where ``elapsed_s = t_acq - t_adm`` is the frame start after injection and ``T`` the frame
    duration: the first term undoes decay during the frame, the second decay before it.

    Examples
    --------
    >>> round(frame_decay_factor(3600.0, 0.0, 6586.2), 4)  # e^{ln2 * 3600 / 6586.2}
    1.4606
    """
    lam = math.log(2.0) / float(half_life_s)
    x = lam * float(frame_duration_s)
    during = 1.0 if x <= 0.0 else x / -math.expm1(-x)
    return during * math.exp(lam * float(elapsed_s))


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


# ----------------------------------------------------------------------------------------------
# header values


def _radiopharmaceutical(ds: Dataset) -> Dataset:
    seq = ds.get("RadiopharmaceuticalInformationSequence", None)
    if not seq:
        raise SUVConversionError("RadiopharmaceuticalInformationSequence (0054,0016) is missing or empty")
    return seq[0]


def _number(value: Any) -> float | None:
    """A DICOM numeric value (DS/IS/FD, bytes of an unknown-VR private tag, first of several) or None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore").strip("\x00 ")
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _plausible(value: float, bounds: tuple[float, float], message: str, allow: bool) -> None:
    """Refuse ``value`` outside ``bounds`` (inclusive) with ``message`` plus the range, unless ``allow`` (then warn)."""
    lo, hi = bounds
    if not lo <= value <= hi:
        refuse_unless_allowed(ImplausibleValueError, message, allow, *_IMPLAUSIBLE, stacklevel=4)


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


def _named_nuclides(rp: Dataset) -> dict[str, float]:
    """The nuclides RadionuclideCodeSequence (0054,0300) names, ``{"^18^Fluorine (C-111A1)": 6586.2}``.

    By code value (:data:`HALF_LIFE_BY_CODE`) where it is known, else by element and mass number
    in the code meaning: DRO 5_0 codes Ga-68 as ``C-131A1`` (that is Ga-66's SNOMED-RT code) with
    the meaning ``^68^Gallium``.
    """
    named: dict[str, float] = {}
    for code in rp.get("RadionuclideCodeSequence", []) or []:
        value = str(code.get("CodeValue", "") or "")
        meaning = str(code.get("CodeMeaning", "") or "")
        label = f"{meaning or '?'} ({value or 'no code value'})"
        if value in HALF_LIFE_BY_CODE:
            named[label] = HALF_LIFE_BY_CODE[value]
            continue
        mass = re.findall(r"\d+", meaning)
        names = {_SYMBOLS.get(w, w) for w in re.findall(r"[a-z]+", meaning.lower())}
        for (element, a), half in HALF_LIFE_BY_NUCLIDE.items():
            if element in names and str(a) in mass:
                named[label] = half
    return named


def radionuclide_half_life(ds: Dataset) -> float:
    """Half-life in s: ``RadionuclideHalfLife`` (0018,1075), else from ``RadionuclideCodeSequence`` (0054,0300).

    Raises
    ------
    SUVConversionError
        The tag is missing and the code sequence names no known nuclide, or nuclides of different
        half-lives.
    """
    rp = _radiopharmaceutical(ds)
    t = _number(rp.get("RadionuclideHalfLife", None))
    if t is not None and math.isfinite(t) and t > 0:
        return t
    named = _named_nuclides(rp)
    if len(set(named.values())) == 1:
        return next(iter(named.values()))
    if named:
        listed = ", ".join(f"{label}: {half:g} s" for label, half in named.items())
        raise SUVConversionError(
            f"RadionuclideHalfLife (0018,1075) is missing and RadionuclideCodeSequence (0054,0300) names nuclides "
            f"of different half-lives ({listed})"
        )
    raise SUVConversionError(
        "RadionuclideHalfLife (0018,1075) is missing and RadionuclideCodeSequence (0054,0300) names no known radionuclide"
    )


def check_half_life(ds: Dataset, allow_implausible: bool = False) -> None:
    """Refuse a RadionuclideHalfLife (0018,1075) that contradicts the nuclide RadionuclideCodeSequence names.

    The half-life sets the decay correction, ``exp(ln 2 t / T)``: Ga-68's 4062.6 s written into an
    F-18 scan (code C-111A1, 109.77 min) raises every SUV 27 % one hour after injection. Refused
    when the value differs from the half-life of every nuclide the code names by more than
    :data:`HALF_LIFE_TOLERANCE`; a code this table does not know is not compared.
    ``allow_implausible`` warns instead.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> code, rp, ds = Dataset(), Dataset(), Dataset()
    >>> code.CodeValue, code.CodeMeaning = "C-111A1", "^18^Fluorine"
    >>> rp.RadionuclideCodeSequence, rp.RadionuclideHalfLife = [code], "4062.6"
    >>> ds.RadiopharmaceuticalInformationSequence = [rp]
    >>> check_half_life(ds)
    Traceback (most recent call last):
    ...
    pcatools.data.dicom.suv.ImplausibleValueError: RadionuclideHalfLife (0018,1075) is 4062.6 s (67.71 min), but RadionuclideCodeSequence (0054,0300) names ^18^Fluorine (C-111A1), whose half-life is 6586.2 s (109.77 min): 38.3 % apart, tolerance 1 %; pass allow_implausible=True (--allow-implausible) to convert anyway
    """
    rp = _radiopharmaceutical(ds)
    t = _number(rp.get("RadionuclideHalfLife", None))
    named = _named_nuclides(rp)
    if t is None or not math.isfinite(t) or t <= 0 or not named:
        return
    if any(abs(t / half - 1.0) <= HALF_LIFE_TOLERANCE for half in named.values()):
        return
    label, half = next(iter(named.items()))
    refuse_unless_allowed(
        ImplausibleValueError,
        f"RadionuclideHalfLife (0018,1075) is {t:g} s ({t / 60:.2f} min), but RadionuclideCodeSequence (0054,0300) "
        f"names {label}, whose half-life is {half:g} s ({half / 60:.2f} min): {abs(t / half - 1.0) * 100:.1f} % apart, "
        f"tolerance {HALF_LIFE_TOLERANCE * 100:g} %",
        allow_implausible,
        *_IMPLAUSIBLE,
    )


def _parse(kind: str, value: Any, tag: str) -> Any:
    try:
        if kind == "DT":
            parsed = DT(str(value))
            return parsed.replace(tzinfo=None)
        if kind == "DA":
            return DA(str(value))
        return TM(str(value))
    except (TypeError, ValueError) as exc:
        raise SUVConversionError(f"{tag} is not a valid DICOM {kind}: {value!r}") from exc


def _datetime(
    ds: Dataset, dt_keyword: str | None, date_keywords: Sequence[str], time_keyword: str, tag: str
) -> datetime | None:
    if dt_keyword and ds.get(dt_keyword, None):
        return _parse("DT", ds.get(dt_keyword), tag)  # type: ignore[no-any-return]
    t = ds.get(time_keyword, None)
    if not t:
        return None
    for keyword in date_keywords:
        d = ds.get(keyword, None)
        if d:
            day: date = _parse("DA", d, f"{keyword}")
            tm: time = _parse("TM", t, tag)
            return datetime.combine(day, tm.replace(tzinfo=None))
    return None


def _acquisition_datetime(ds: Dataset) -> datetime | None:
    return _datetime(
        ds,
        "AcquisitionDateTime",
        ("AcquisitionDate", "SeriesDate", "StudyDate"),
        "AcquisitionTime",
        "AcquisitionTime (0008,0032)",
    )


def _series_datetime(ds: Dataset) -> datetime | None:
    return _datetime(ds, None, ("SeriesDate", "StudyDate"), "SeriesTime", "SeriesTime (0008,0031)")


def _ge_scan_datetime(ds: Dataset) -> datetime | None:
    """GE private PET scan_datetime (0009,100D), block ``GEMS_PETD_01`` (or no creator on a GE file)."""
    element = ds.get((0x0009, 0x100D), None)
    if element is None or not element.value:
        return None
    creator = ds.get((0x0009, 0x0010), None)
    creator_name = str(creator.value).strip() if creator is not None else ""
    manufacturer = str(ds.get("Manufacturer", "") or "").upper()
    if creator_name != "GEMS_PETD_01" and not (not creator_name and manufacturer.startswith("GE")):
        return None
    value = (
        element.value.decode("ascii", "ignore") if isinstance(element.value, bytes) else str(element.value)
    )
    value = value.strip("\x00 ")
    try:
        return DT(value).replace(tzinfo=None)
    except ValueError:
        return None


def _private_float(ds: Dataset, tag: tuple[int, int]) -> float | None:
    element = ds.get(tag, None)
    return None if element is None else _number(element.value)


def decay_reference_time(headers: Sequence[Dataset]) -> datetime:
    """The time a ``DecayCorrection`` START series is decay corrected to (the manual, "Determining the reference time").

    In order:

    1. the GE private PET scan_datetime (0009,100D) when present (the manual: it overrides the
       series time and is preferred);
    2. ``SeriesDate`` / ``SeriesTime`` when not after the earliest acquisition (QIBA; a later
       series time means the series was re-made in post-processing);
    3. back-computed from the earliest-acquired instance (the manual's option B):
       ``t_ref = t_acq + T_ave - Δt`` with ``Δt`` = ``FrameReferenceTime`` (0054,1300) and
       ``T_ave`` = :func:`average_count_rate_time` of ``ActualFrameDuration`` (0018,1242), only
       when both are > 0 (QIBA's vendor-neutral pseudo-code: ``if (frame reference time > 0 &&
       actual frame duration > 0)``);
    4. the earliest ``AcquisitionDate`` / ``AcquisitionTime`` (QIBA step 3) otherwise: a frame
       timing tag missing, or ``FrameReferenceTime`` / ``ActualFrameDuration`` of 0 (or below).

    Step 3 comes before step 4 because the earliest acquisition time is the start of the first
    *bed position*, not the start the images were decay corrected to: DRO 3_2 (series time after
    acquisition time, two bed positions at 11:02:30 and 11:05:00, both corrected to 11:00:00) gives
    SUV 1.02 / 4.06 instead of 1.00 / 4.00 with step 4. One reference time serves the whole series
    ("administered dose corrected to the same reference time among frames").

    A ``FrameReferenceTime`` of 0 goes to step 4 because QIBA accepts only a positive offset as
    a frame timing: back-computing with 0 would put the reference ``T_ave`` (about half a frame)
    after the acquisition start, 89.86 s for a 180 s F-18 frame, and raise every SUV by
    ``exp(λ 89.86 s) - 1 = 0.95 %``.

    Examples
    --------
    A series re-saved at 12:00 whose only frame started at 11:00:00, lasted 180 s and has
    ``FrameReferenceTime`` 0: the reference is the acquisition start, not 11:01:29.86.

    >>> from pydicom.dataset import Dataset
    >>> ds, rp = Dataset(), Dataset()
    >>> rp.RadionuclideHalfLife = "6586.2"
    >>> ds.RadiopharmaceuticalInformationSequence = [rp]
    >>> ds.SeriesDate, ds.SeriesTime = "20250101", "120000"
    >>> ds.AcquisitionDate, ds.AcquisitionTime = "20250101", "110000"
    >>> ds.FrameReferenceTime, ds.ActualFrameDuration = "0", "180000"
    >>> decay_reference_time([ds])
    datetime.datetime(2025, 1, 1, 11, 0)

    Raises
    ------
    SUVConversionError
        None of these times is present.
    """
    if not headers:
        raise SUVConversionError("no PET instances given")
    ge = _ge_scan_datetime(headers[0])
    if ge is not None:
        return ge
    acquisitions = [(_acquisition_datetime(h), i) for i, h in enumerate(headers)]
    valid = [(t, i) for t, i in acquisitions if t is not None]
    earliest, first = min(valid) if valid else (None, -1)
    series_times = [t for t in (_series_datetime(h) for h in headers) if t is not None]
    series = min(series_times) if series_times else None
    if series is not None and (earliest is None or series <= earliest):
        return series
    if earliest is not None:
        h = headers[first]
        frame_ref = _number(h.get("FrameReferenceTime", None))
        duration = _number(h.get("ActualFrameDuration", None))
        if frame_ref is not None and duration is not None and frame_ref > 0 and duration > 0:
            t_ave = average_count_rate_time(duration / 1000.0, radionuclide_half_life(h))
            return earliest + timedelta(seconds=t_ave - frame_ref / 1000.0)
        return earliest
    raise SUVConversionError(
        "cannot tell when the images were decay corrected to: SeriesDate/SeriesTime (0008,0021/0031) and "
        "AcquisitionDate/AcquisitionTime (0008,0022/0032) are missing"
    )


def injection_datetime(ds: Dataset, scan_time: datetime) -> datetime:
    """Injection time: ``RadiopharmaceuticalStartDateTime`` (0018,1078), else ``RadiopharmaceuticalStartTime`` (0018,1072).

    A time without a date takes the date of ``scan_time``; if that puts the injection after the
    scan (by more than :data:`INJECTION_AFTER_SCAN_TOLERANCE`, allowing for dynamic scans started
    just before injection) it was given the day before: injection before midnight, scan after
    (DRO 4_2). Time-zone offsets of DT values are dropped: all times are read as the scanner's
    local time. Whether the resulting uptake time is plausible is checked where it is used
    (:func:`uptake_seconds`).

    Raises
    ------
    SUVConversionError
        Neither tag is present, or one is not a valid DICOM DT / TM.
    """
    return _injection(ds, scan_time)[0]


def _injection(ds: Dataset, scan_time: datetime) -> tuple[datetime, str]:
    """:func:`injection_datetime` and, where a time-only injection was moved to the day before, a note saying so."""
    rp = _radiopharmaceutical(ds)
    if rp.get("RadiopharmaceuticalStartDateTime", None):
        inj: datetime = _parse(
            "DT", rp.RadiopharmaceuticalStartDateTime, "RadiopharmaceuticalStartDateTime (0018,1078)"
        )
        return inj, ""
    if rp.get("RadiopharmaceuticalStartTime", None):
        tm: time = _parse("TM", rp.RadiopharmaceuticalStartTime, "RadiopharmaceuticalStartTime (0018,1072)")
        inj = datetime.combine(scan_time.date(), tm.replace(tzinfo=None))
        if inj > scan_time + INJECTION_AFTER_SCAN_TOLERANCE:
            note = (
                f"; RadiopharmaceuticalStartTime (0018,1072) {tm.isoformat()} has no date and is after the scan "
                f"time of day {scan_time.time().isoformat()}, so it was taken from the day before"
            )
            return inj - timedelta(days=1), note
        return inj, ""
    raise SUVConversionError(
        "RadiopharmaceuticalStartDateTime (0018,1078) and RadiopharmaceuticalStartTime (0018,1072) are both missing"
    )


def uptake_seconds(ds: Dataset, scan_time: datetime, allow_implausible: bool = False) -> float:
    """Seconds from the injection (:func:`injection_datetime`) to ``scan_time``, checked for plausibility.

    Refused (``allow_implausible`` warns instead): an injection more than
    :data:`INJECTION_AFTER_SCAN_TOLERANCE` after ``scan_time``, or more than
    :data:`MAX_UPTAKE_HALF_LIVES` half-lives before it, because the decay correction then
    multiplies the SUVs by :math:`2^{10}` or more: the typical result of a wrong date, or of a
    time-only injection after the scan's time of day taken from the day before (DRO 0_0, an F-18
    scan at 11:00, with a time-only injection at 12:00: 23 h, 12.6 half-lives, SUV 4 read as 16,672).

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> rp = Dataset(); rp.RadiopharmaceuticalStartTime = "100000"; rp.RadionuclideHalfLife = "6586.2"
    >>> ds = Dataset(); ds.RadiopharmaceuticalInformationSequence = [rp]
    >>> uptake_seconds(ds, datetime(2025, 1, 1, 11, 0))
    3600.0
    """
    inj, note = _injection(ds, scan_time)
    elapsed = (scan_time - inj).total_seconds()
    half_life = radionuclide_half_life(ds)
    lo = -INJECTION_AFTER_SCAN_TOLERANCE.total_seconds()
    hi = MAX_UPTAKE_HALF_LIVES * half_life
    _plausible(
        elapsed,
        (lo, hi),
        f"uptake time from injection {inj.isoformat()} to the decay reference {scan_time.isoformat()} is "
        f"{elapsed / 3600:.2f} h ({elapsed / half_life:.1f} half-lives of {half_life:g} s){note}; plausible "
        f"{lo / 60:g} min to {hi / 3600:.1f} h ({MAX_UPTAKE_HALF_LIVES:g} half-lives)",
        allow_implausible,
    )
    return elapsed


# ----------------------------------------------------------------------------------------------
# the factor


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


# ----------------------------------------------------------------------------------------------
# series


#: Attributes that enter the SUVbw factor and so must be the same in every slice of a series:
#: (keyword or private tag, tag as text, inside RadiopharmaceuticalInformationSequence). PatientSize
#: and PatientSex are compared only where the units use them (:func:`check_series_consistency`);
#: RescaleSlope, AcquisitionTime, FrameReferenceTime and ActualFrameDuration differ by design.
SERIES_CONSTANT: tuple[tuple[str | tuple[int, int], str, bool], ...] = (
    ("Units", "(0054,1001)", False),
    ("SUVType", "(0054,1006)", False),
    ("DecayCorrection", "(0054,1102)", False),
    ("CorrectedImage", "(0028,0051)", False),
    ("PatientWeight", "(0010,1030)", False),
    ("SeriesDate", "(0008,0021)", False),
    ("SeriesTime", "(0008,0031)", False),
    ((0x0009, 0x100D), "(0009,100D) GE PET scan_datetime", False),
    ("RadionuclideTotalDose", "(0018,1074)", True),
    ("RadiopharmaceuticalStartDateTime", "(0018,1078)", True),
    ("RadiopharmaceuticalStartTime", "(0018,1072)", True),
    ("RadionuclideHalfLife", "(0018,1075)", True),
)
_BODY_SIZE_TYPES = ("LBM", "LBMJAMES128", "LBMJANMA", "IBW")


def _as_written(value: Any) -> Any:
    """A header value as written: the value of a (private) data element, bytes decoded, several values as a list."""
    if isinstance(value, DataElement):
        value = value.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore").strip("\x00 ")
    if isinstance(value, MultiValue):
        value = list(value)
    return value


def _comparable(value: Any) -> Any:
    """A value (:func:`_as_written`) in a form that compares equal when the value is: numbers as float, text upper-case."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(_comparable(v) for v in value)
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text.upper()
    return "NAN" if math.isnan(number) else number  # NaN != NaN: all NaNs are one value


def _shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, so that one value cannot fill the message."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def check_series_consistency(files: Sequence[os.PathLike[str] | str], headers: Sequence[Dataset]) -> None:
    """Refuse a PET series whose slices disagree on an attribute of the SUV factor (:data:`SERIES_CONSTANT`).

    A series has one patient, one injection and one reconstruction; slices that disagree come from
    another series or were edited one by one, and the SUVs of some slices would be wrong.
    ``PatientSize`` is compared where ``Units`` is CM2ML or ``SUVType`` a lean-body-mass or IBW
    type, ``PatientSex`` for the latter. Not overridable: no single factor would be right.

    Raises
    ------
    SUVConversionError
        Naming the attribute and the two most frequent values, each with the number of files
        holding it and an example file, and how many other values there are (a short line even
        where every slice differs).
    """
    keys: list[tuple[str | tuple[int, int], str, bool]] = list(SERIES_CONSTANT)
    units = {_comparable(h.get("Units", None)) for h in headers}
    suv_types = {_comparable(h.get("SUVType", None)) for h in headers}
    if "CM2ML" in units or suv_types & set(_BODY_SIZE_TYPES):
        keys.append(("PatientSize", "(0010,1020)", False))
    if suv_types & set(_BODY_SIZE_TYPES):
        keys.append(("PatientSex", "(0010,0040)", False))
    for key, tag, in_sequence in keys:
        found: dict[Any, tuple[str, list[str]]] = {}  # comparable value -> (value as written, files)
        for path, h in zip(files, headers, strict=True):
            holder = h
            if in_sequence:
                seq = h.get("RadiopharmaceuticalInformationSequence", None)
                holder = seq[0] if seq else Dataset()
            value = _as_written(holder.get(key, None))
            shown = "missing" if _comparable(value) is None else repr(value)
            found.setdefault(_comparable(value), (shown, []))[1].append(str(path))
        if len(found) > 1:
            label = f"{key} {tag}" if isinstance(key, str) else tag
            ranked = sorted(found.values(), key=lambda kv: -len(kv[1]))
            values = "; ".join(
                f"{_shorten(shown)} in {len(paths)} file(s), e.g. {paths[0]}" for shown, paths in ranked[:2]
            )
            if len(ranked) > 2:
                values += f"; and {len(ranked) - 2} more distinct value(s) in {sum(len(p) for _, p in ranked[2:])} file(s)"
            raise SUVConversionError(
                f"{label} differs between the {len(headers)} slices of the PET series in {Path(files[0]).parent}: "
                f"{values}; one series has one patient, injection and reconstruction, so these slices cannot share "
                "one SUV conversion"
            )


def _check_suv_volume(suv: np.ndarray, where: str, allow: bool) -> None:
    """Refuse SUVs above :data:`SUV_MAX_CEILING` or a body median outside :data:`BODY_MEDIAN_SUV` (``allow``: warn).

    The last line of defence: whatever header error the checks above miss (a slope or unit off by
    a power of ten) shows in the volume. The body is the voxels above the volume's mean, which
    leaves out the air around the patient without a threshold in SUV units.
    """
    peak = float(suv.max()) if suv.size else 0.0
    _plausible(
        peak,
        (-math.inf, SUV_MAX_CEILING),
        f"{where}: the maximum SUVbw is {peak:.6g}, above the ceiling of {SUV_MAX_CEILING:g}; plausible up to "
        f"{SUV_MAX_CEILING:g} (a unit, dose, weight or time in the header is off)",
        allow,
    )
    body = suv[suv > suv.mean()] if suv.size else suv
    if body.size:
        median = float(np.median(body))
        lo, hi = BODY_MEDIAN_SUV
        _plausible(
            median,
            BODY_MEDIAN_SUV,
            f"{where}: the median SUVbw of the body (voxels above the volume mean) is {median:.4g}; plausible "
            f"{lo:g}-{hi:g} (a unit, dose, weight or slope in the header is off)",
            allow,
        )


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
