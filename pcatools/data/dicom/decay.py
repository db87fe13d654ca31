"""Time references and decay for SUV: the radionuclide and its half-life, the scan and injection times, the decayed dose.

The manual's formulas (:func:`decayed_dose`, :func:`average_count_rate_time`,
:func:`frame_decay_factor`) and the header times they need: the time the image's activity refers
to (:func:`decay_reference_time`, by ``DecayCorrection``), the injection (:func:`injection_datetime`)
and the uptake between them (:func:`uptake_seconds`), with the half-life checked against the
nuclide its code names (:func:`check_half_life`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, time, timedelta

from pydicom.dataset import Dataset

from pcatools.data.dicom.pet_headers import (
    ImplausibleValueError,
    SUVConversionError,
    _acquisition_datetime,
    _ge_scan_datetime,
    _number,
    _parse,
    _radiopharmaceutical,
    _series_datetime,
)
from pcatools.data.dicom.plausibility import (
    _IMPLAUSIBLE,
    HALF_LIFE_TOLERANCE,
    INJECTION_AFTER_SCAN_TOLERANCE,
    MAX_UPTAKE_HALF_LIVES,
    _plausible,
)
from pcatools.data.dicom.series import refuse_unless_allowed

__all__ = [
    "HALF_LIFE_BY_CODE",
    "HALF_LIFE_BY_NUCLIDE",
    "RADIONUCLIDES",
    "average_count_rate_time",
    "check_half_life",
    "decay_reference_time",
    "decayed_dose",
    "frame_decay_factor",
    "injection_datetime",
    "radionuclide_half_life",
    "uptake_seconds",
]


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
"""Common PET radionuclides: (element name, mass number) -> (half-life in s, SNOMED-RT code, SNOMED
CT code), the codes of DICOM PS3.16 CID 4020 "PET Radionuclide" for RadionuclideCodeSequence
(0054,0300) (SRT until 2019, SCT since; as pydicom's ``pydicom.sr`` tables map them). The half-
lives are the values PET scanners write (the manual's Table 10: 598, 1223, 4057, 6586 s), within
0.2 % of the nuclear-data values (Ga-68 67.71 min = 4062.6 s, C-11 20.36 min)."""
HALF_LIFE_BY_CODE: dict[str, float] = {
    code: half for half, *codes in RADIONUCLIDES.values() for code in codes
}
"""Half-lives (s) by code value (SNOMED-RT or SNOMED CT) of RadionuclideCodeSequence (0054,0300)."""
HALF_LIFE_BY_NUCLIDE: dict[tuple[str, int], float] = {
    key: half for key, (half, _, _) in RADIONUCLIDES.items()
}
"""The same by (element name, mass number), matched in the code meaning ("^18^Fluorine", "Ga-68"
...)."""


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
    pcatools.data.dicom.pet_headers.ImplausibleValueError: RadionuclideHalfLife (0018,1075) is 4062.6 s (67.71 min), but RadionuclideCodeSequence (0054,0300) names ^18^Fluorine (C-111A1), whose half-life is 6586.2 s (109.77 min): 38.3 % apart, tolerance 1 %; pass allow_implausible=True (--allow-implausible) to convert anyway
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
