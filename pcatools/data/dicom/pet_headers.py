"""PET header values as pcatools reads them for SUV: numbers, the radiopharmaceutical, dates and times, and the errors.

The lowest layer of the SUV conversion (:mod:`~pcatools.data.dicom.plausibility`,
:mod:`~pcatools.data.dicom.decay` and :mod:`~pcatools.data.dicom.suv` read headers through it), so
that a value missing or malformed is refused in one wording, naming the tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, DT, TM

from pcatools.data.errors import DataError

__all__ = ["ImplausibleValueError", "SUVConversionError"]


class SUVConversionError(DataError):
    """A PET series cannot be converted to SUVbw; the message names the file, the missing or bad tag."""


class ImplausibleValueError(SUVConversionError):
    """A header value or the resulting SUVs lie outside the plausible range (overridable: ``allow_implausible``)."""


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
