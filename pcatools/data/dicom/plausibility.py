"""Plausibility of a PET series for SUV: header values in range, the factor's attributes the same in every slice, SUVs that look like SUVs.

Values that are present but implausible are refused (:class:`ImplausibleValueError`), because a
wrong unit or a typo gives SUVs that look like numbers: a weight outside :data:`WEIGHT_KG`, a
height outside :data:`HEIGHT_CM` (where used), a dose outside :data:`DOSE_BQ`, an uptake time
outside ``-INJECTION_AFTER_SCAN_TOLERANCE`` .. :data:`MAX_UPTAKE_HALF_LIVES` half-lives, a
RadionuclideHalfLife more than :data:`HALF_LIFE_TOLERANCE` from that of the nuclide its code names
(:func:`pcatools.data.dicom.decay.check_half_life`), a maximum SUV above :data:`SUV_MAX_CEILING`
or a body median outside :data:`BODY_MEDIAN_SUV`. ``allow_implausible=True`` converts anyway with
an :class:`~pcatools.data.dicom.series.OverriddenCheckWarning`. Every factor-relevant attribute
must be the same in all slices of a series (:data:`SERIES_CONSTANT`). ``docs/refusals.md`` lists
every check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pcatools.data.dicom.pet_headers import ImplausibleValueError, SUVConversionError
from pcatools.data.dicom.series import refuse_unless_allowed

__all__ = [
    "BODY_MEDIAN_SUV",
    "DOSE_BQ",
    "HALF_LIFE_TOLERANCE",
    "HEIGHT_CM",
    "INJECTION_AFTER_SCAN_TOLERANCE",
    "MAX_UPTAKE_HALF_LIVES",
    "SERIES_CONSTANT",
    "SUV_MAX_CEILING",
    "WEIGHT_KG",
    "check_series_consistency",
]


HALF_LIFE_TOLERANCE = 0.01
"""RadionuclideHalfLife (0018,1075) may differ from the half-life of the nuclide its code names by
this fraction (rounding, other nuclear-data tables); a Ga-68 half-life with an F-18 code (38 %)
raises every SUV 27 % one hour after injection."""


INJECTION_AFTER_SCAN_TOLERANCE = timedelta(minutes=10)
"""A scan may start this long before the injection (a dynamic scan is started, then the tracer
injected); a time-only injection later than the scan by more than this is taken from the day
before, and an uptake time more negative than this is refused."""
MAX_UPTAKE_HALF_LIVES = 10.0
"""Uptake times (injection -> decay reference) of more than this many half-lives are refused: less
than 0.1 % of the dose is left, and it is what a date error (a day too early) produces."""
WEIGHT_KG = (1.0, 500.0)
"""Plausible PatientWeight (0010,1030) in kg (after reading values over 1000 as grams)."""
HEIGHT_CM = (30.0, 250.0)
"""Plausible PatientSize (0010,1020) in cm (after reading values up to 3 as metres), where used."""
DOSE_BQ = (1e6, 5e9)
"""Plausible administered dose in Bq (after reading values under MBQ_THRESHOLD as MBq): 1 MBq - 5
GBq, about an order of magnitude around clinical PET doses (the manual's Fig. 2 peaks at 4e8
Bq)."""
SUV_MAX_CEILING = 1000.0
"""Highest plausible voxel SUVbw: hot organs, bladder and lesions reach tens to a few hundred."""
BODY_MEDIAN_SUV = (0.05, 20.0)
"""Plausible median SUVbw of the body, taken as the voxels above the volume's mean (air excluded)."""
_IMPLAUSIBLE = ("allow_implausible", "--allow-implausible")


def _plausible(value: float, bounds: tuple[float, float], message: str, allow: bool) -> None:
    """Refuse ``value`` outside ``bounds`` (inclusive) with ``message`` plus the range, unless ``allow`` (then warn)."""
    lo, hi = bounds
    if not lo <= value <= hi:
        refuse_unless_allowed(ImplausibleValueError, message, allow, *_IMPLAUSIBLE, stacklevel=4)


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
"""Attributes that enter the SUVbw factor and so must be the same in every slice of a series:
(keyword or private tag, tag as text, inside RadiopharmaceuticalInformationSequence).
PatientSize and PatientSex are compared only where the units use them
(:func:`check_series_consistency`); RescaleSlope, AcquisitionTime, FrameReferenceTime and
ActualFrameDuration differ by design."""
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
