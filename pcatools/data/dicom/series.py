"""DICOM series: find the image series under a folder and read one onto a RAS grid; the errors of DICOM input.

:func:`find_series` groups the DICOM files under a folder by ``SeriesInstanceUID`` (headers
only, so it is cheap); :func:`read_dicom_series` turns one image series into a
:class:`DicomSeries`: its instances sorted by position along the slice normal (never by file
name or ``InstanceNumber``) and the voxel -> RAS+ affine of the NIfTI convention, so that what it
writes overlays NIfTI files of the same scan.

What is refused rather than converted (unreadable files, a CT of another frame of reference,
implausible headers ...) and the option that overrides each check is listed in
``docs/refusals.md``; an override never passes silently: :func:`refuse_unless_allowed` emits
:class:`OverriddenCheckWarning`. These errors and the warning serve the whole of
:mod:`pcatools.data.dicom`.

Array axes are ``(x, y, z)`` = ``(column, row, slice)`` of the DICOM images, as nibabel returns
them; spacing in mm.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID
from tqdm.auto import tqdm

from pcatools.data.errors import DataError

__all__ = [
    "DicomSeries",
    "DicomSeriesError",
    "OutputPathError",
    "OverriddenCheckWarning",
    "SeriesFiles",
    "UnreadableDicomError",
    "find_series",
    "read_dicom_series",
    "refuse_unless_allowed",
    "rescale_slopes",
    "unreadable_reason",
]

#: LPS (DICOM patient coordinates) -> RAS (NIfTI world coordinates): negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Modalities whose instances are not slices of an image volume.
NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG", "DOC", "OT"}
)

_DICOMDIR_UID = "1.2.840.10008.1.3.10"
_PROGRESS_MIN_FILES = 50
#: A message names at most this many unreadable files (and counts the others), so it stays one short line.
_LISTED_FILES = 2
#: SOP classes read besides images: RT Structure Set Storage and Segmentation Storage (the masks).
_MASK_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.66.4"})
#: Header values larger than this are not loaded (only their offsets), so that a raw-data object
#: with a gigabyte private blob costs as little as an image header.
_DEFER_SIZE = 1 << 16


class DicomSeriesError(DataError):
    """A DICOM folder or series cannot be read as asked (names the file, tag and what was found)."""


class UnreadableDicomError(DicomSeriesError):
    """A file that should be DICOM (DICM prefix or ``.dcm`` name) is empty, truncated or cannot be parsed."""


class OutputPathError(DataError):
    """An output folder is an existing file or cannot be written; raised before anything is written."""


class OverriddenCheckWarning(UserWarning):
    """A check that refuses bad input was overridden by an explicit option; the data were converted anyway."""


def refuse_unless_allowed(
    error: type[DataError], message: str, allowed: bool, option: str, flag: str, stacklevel: int = 3
) -> None:
    """Raise ``error(message)`` naming the override ``option`` / ``flag``, or with ``allowed`` warn instead.

    Every refusal that an option can override goes through here, so that an override is never
    silent: it emits :class:`OverriddenCheckWarning` with the same message.
    """
    if not allowed:
        raise error(f"{message}; pass {option}=True ({flag}) to convert anyway")
    warnings.warn(
        f"{message} (converted anyway: {option}=True)", OverriddenCheckWarning, stacklevel=stacklevel
    )


@dataclass(frozen=True, eq=False)
class SeriesFiles:
    """The files of one DICOM series, with their headers (no pixel data), as :func:`find_series` finds them."""

    series_uid: str
    modality: str
    description: str
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]

    def __str__(self) -> str:
        uid = self.series_uid or "<empty SeriesInstanceUID>"
        return f"{self.modality or '?'} series {uid} {self.description!r} ({len(self.files)} files)"

    @property
    def is_image(self) -> bool:
        """True for a series of image slices (not RTSTRUCT, SEG, SR ...)."""
        return self.modality not in NON_IMAGE_MODALITIES and all("Rows" in h for h in self.headers)


@dataclass(frozen=True, eq=False)
class DicomSeries:
    """One image series on a regular grid.

    Attributes
    ----------
    series_uid, modality, description : str
        From the headers.
    files : tuple of Path
        The instances sorted by position along the slice normal (ascending).
    headers : tuple of pydicom.Dataset
        Their headers (read without pixel data), in the same order.
    affine : ndarray (4, 4)
        Voxel ``(column, row, slice)`` -> RAS+ mm (NIfTI convention).
    """

    series_uid: str
    modality: str
    description: str
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(columns, rows, slices)``."""
        h = self.headers[0]
        return int(h.Columns), int(h.Rows), len(self.files)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing in mm, ``(x, y, z)``."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def affine_lps(self) -> np.ndarray:
        """Voxel -> DICOM patient coordinates (LPS mm)."""
        return LPS_TO_RAS @ self.affine

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.headers[0].get("FrameOfReferenceUID", "") or "")

    def iter_slices(self, desc: str | None = None) -> Iterator[tuple[Dataset, np.ndarray]]:
        """Yield ``(dataset with pixels, stored values as float64 (x, y))`` slice by slice, in order."""
        files = tqdm(
            self.files,
            desc=desc or f"read {self.modality}",
            leave=False,
            disable=len(self.files) < _PROGRESS_MIN_FILES,
        )
        expected = self.shape[:2]
        for path in files:
            ds = pydicom.dcmread(path)
            try:
                pixels = ds.pixel_array
            except Exception as exc:  # decoder missing, truncated file ...
                raise DicomSeriesError(f"{path}: cannot decode PixelData (7FE0,0010): {exc}") from exc
            if pixels.ndim != 2:
                raise DicomSeriesError(
                    f"{path}: expected one 2-D frame of {expected[1]} rows x {expected[0]} columns, "
                    f"found pixel array of shape {pixels.shape} (multi-frame or colour images are not supported)"
                )
            yield ds, np.asarray(pixels, dtype=np.float64).T

    def rescaled(self, desc: str | None = None) -> np.ndarray:
        """The volume ``stored * RescaleSlope + RescaleIntercept``, slope and intercept per slice, float32.

        The slopes are checked first (:func:`rescale_slopes`).
        """
        slopes = rescale_slopes(self)
        out = np.empty(self.shape, dtype=np.float32)
        for k, (ds, stored) in enumerate(self.iter_slices(desc)):
            intercept = _float_tag(ds, "RescaleIntercept", 0.0)
            out[:, :, k] = stored * slopes[k] + intercept
        return out

    def to_nifti(self, array: np.ndarray, descrip: str = "") -> nib.Nifti1Image:
        """A NIfTI image of ``array`` (shape :attr:`shape`) on this series' grid."""
        if tuple(array.shape) != self.shape:
            raise DicomSeriesError(f"array of shape {array.shape} does not fit the series grid {self.shape}")
        return _nifti(array, self.affine, descrip)


# ----------------------------------------------------------------------------------------------
# finding and reading series


def find_series(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, skip_unreadable: bool = False
) -> list[SeriesFiles]:
    """Group the DICOM files under ``path`` (a folder, searched recursively, or a list of files) by series.

    Folders are searched through symbolic links (each real folder once, so a link loop ends).
    Files that are not DICOM (NIfTI masks, notes ...), DICOMDIR indexes and DICOM objects of a SOP
    class that is neither an image nor an RTSTRUCT / SEG (raw data, list mode, SR, PDF ...: see
    :func:`_skipped_sop_class`) are skipped silently, as other series that are not converted are
    ignored; headers are read without pixel data and without values over 64 KiB. Series are keyed
    by ``(SeriesInstanceUID, Modality)``, so anonymised data with empty UIDs still splits by
    modality.

    A file that should be DICOM but cannot be read whole (see :func:`unreadable_reason`: empty,
    truncated, unparsable, pixel data of another size than its image tags say) is an error,
    because leaving it out silently would shorten a volume whose first or last slice it was;
    ``skip_unreadable=True`` leaves such files out with an :class:`OverriddenCheckWarning`. Either
    message names the first two files with their reasons and counts the others.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    UnreadableDicomError
        A DICOM file cannot be read whole (unless ``skip_unreadable``).
    """
    if isinstance(path, (str, os.PathLike)):
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(f"DICOM path {root} does not exist")
        files = [root] if root.is_file() else _files_under(root)
    else:
        root = Path(os.path.commonpath([str(p) for p in path])) if path else Path(".")
        files = [Path(p) for p in path]
    groups: dict[tuple[str, str], list[tuple[Path, Dataset]]] = {}
    unreadable: list[str] = []
    for f in tqdm(files, desc="scan DICOM", leave=False, disable=len(files) < 4 * _PROGRESS_MIN_FILES):
        ds, reason = _read_header(f)
        if reason is not None:
            unreadable.append(f"{f} ({reason})")
        if ds is None:
            continue
        key = (str(ds.get("SeriesInstanceUID", "") or ""), str(ds.get("Modality", "") or "").upper())
        groups.setdefault(key, []).append((f, ds))
    if unreadable:
        listed = "; ".join(unreadable[:_LISTED_FILES])
        if len(unreadable) > _LISTED_FILES:
            listed += f"; and {len(unreadable) - _LISTED_FILES} more"
        refuse_unless_allowed(
            UnreadableDicomError,
            f"{len(unreadable)} unreadable DICOM file(s) under {root}: {listed}",
            skip_unreadable,
            "skip_unreadable",
            "--skip-unreadable",
        )
    out = []
    for (uid, modality), items in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        description = str(items[0][1].get("SeriesDescription", "") or "")
        out.append(
            SeriesFiles(uid, modality, description, tuple(p for p, _ in items), tuple(d for _, d in items))
        )
    return out


def _files_under(root: Path) -> list[Path]:
    """Every file under ``root``, sorted, following links to folders; each real folder is searched once.

    ``Path.rglob`` does not follow folder links, so a study whose series folder is a link held no
    PET; tracking the real paths visited ends a link loop (``PET/again -> ..``) and keeps a folder
    reachable twice from giving its slices twice.
    """
    seen: set[str] = set()
    found: list[Path] = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        found.extend(Path(folder) / name for name in names)
    return sorted(p for p in found if p.is_file())


def _skipped_sop_class(sop_class: str) -> bool:
    """True for a SOP class pydicom knows that is neither an image storage class nor RTSTRUCT / SEG.

    Raw Data Storage (list mode, sinograms), SR, encapsulated PDF, presentation states, RT plans
    and doses are never slices of a volume or masks; an unknown or private class is read as before.
    """
    name = UID(sop_class).name
    return name != sop_class and sop_class not in _MASK_SOP_CLASSES and "Image Storage" not in name


def _may_start_a_data_set(head: bytes) -> bool:
    """Whether a file without the ``DICM`` prefix may start with a DICOM data set (its first element's group).

    Elements are stored in ascending tag order (DICOM PS3.5 section 7.1) and a data set pcatools
    reads holds SOPClassUID (0008,0016), so its first group is 0x0002 to 0x0008, little or big
    endian; anything else is not parsed at all, so that a large non-DICOM file named ``.dcm`` is
    refused at once instead of after a minute of forced parsing.
    """
    if len(head) < 8:
        return False
    little, big = int.from_bytes(head[:2], "little"), int.from_bytes(head[:2], "big")
    return 0x0002 <= little <= 0x0008 or 0x0002 <= big <= 0x0008


#: File name endings that say "this is a DICOM file" even where its content does not.
_DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".ima"})


def _named_like_dicom(path: Path, empty: bool) -> bool:
    """A ``.dcm`` / ``.dicom`` / ``.ima`` name or one ending in a UID (``CT.1.2.840.113619.2.55``); for an empty
    file also a name without suffix (``IM0001``), not hidden."""
    suffix = path.suffix.lower()
    return (
        suffix in _DICOM_SUFFIXES
        or suffix[1:].isdigit()
        or (empty and not suffix and not path.name.startswith("."))
    )


def _read_header(path: Path) -> tuple[Dataset | None, str | None]:
    """``(header without pixels, None)``; ``(None, None)`` for a file that is not DICOM; ``(None, reason)`` for an unreadable one."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            preamble = fh.read(132)
    except OSError as exc:
        return None, f"cannot be opened: {exc.strerror or exc}"
    if size == 0:
        return None, ("empty file (0 bytes)" if _named_like_dicom(path, empty=True) else None)
    has_prefix = preamble[128:132] == b"DICM"
    if not has_prefix and not _may_start_a_data_set(preamble):
        return None, ("not a DICOM data set" if _named_like_dicom(path, empty=False) else None)
    try:
        with warnings.catch_warnings():  # a damaged file is reported below, not by pydicom's warnings
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=_DEFER_SIZE)
    except InvalidDicomError:
        # no 128-byte preamble: accept only what clearly is a DICOM data set
        try:
            with warnings.catch_warnings():  # pydicom warns about whatever it finds in a non-DICOM file
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=_DEFER_SIZE, force=True)
        except Exception:
            ds = None
        modality = None if ds is None else ds.get("Modality", None)
        if ds is None or not (
            isinstance(modality, str) and re.fullmatch(r"[A-Z0-9_ ]{1,16}", modality) and "SOPClassUID" in ds
        ):
            return None, ("not a DICOM data set" if _named_like_dicom(path, empty=False) else None)
    except Exception as exc:  # pydicom raises many kinds on damaged input
        if has_prefix or _named_like_dicom(path, empty=False):
            return None, f"cannot be parsed: {exc}"
        return None, None
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR_UID:
        return None, None
    if ds is not None and _skipped_sop_class(str(ds.get("SOPClassUID", "") or "")):
        return None, None
    reason = unreadable_reason(path, ds)
    return (None, reason) if reason else (ds, None)


def unreadable_reason(path: str | os.PathLike[str], header: Dataset | None = None) -> str | None:
    """Why the DICOM file ``path`` cannot be read whole (empty data set, truncated element, no pixel data), or None.

    pydicom reads a truncated file without complaint and returns what it got (an image without
    its last rows, a header cut in the middle, or nothing at all for cut compressed pixel data),
    so every element's declared length is compared with what the file holds. Uncompressed pixel
    data must also hold what Rows x Columns x BitsAllocated (x SamplesPerPixel x NumberOfFrames)
    say (:func:`_pixel_data_size_reason`), because a volume is allocated from those tags before any
    slice is decoded (65535 x 65535 asked for 320 GiB). Large values are not loaded (only their
    offsets), so this costs about one header read. ``header`` is the file's header as already read
    (without pixels), if at hand.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            full = pydicom.dcmread(path, defer_size=4096, force=True)
    except Exception as exc:  # pydicom raises many kinds on damaged input
        return f"cannot be parsed: {exc}"
    if any("end of file" in str(w.message).lower() for w in caught):
        return "truncated: the file ends inside an element"
    if len(full) == 0 or "SOPClassUID" not in full:
        return "no data set after the file meta information (SOPClassUID (0008,0016) missing)"
    if header is not None and len(full) < len(header):
        return f"truncated: {len(header)} header elements but only {len(full)} in a full read"
    for tag in list(full.keys()):
        raw = full.get_item(tag, keep_deferred=True)
        if not isinstance(raw, RawDataElement) or raw.length == 0xFFFFFFFF:
            continue  # already converted, or undefined length (ends at a delimiter, checked above)
        held = (size - raw.value_tell) if raw.value is None else len(raw.value)
        if held < raw.length:
            keyword = keyword_for_tag(raw.tag) or "element"
            return (
                f"truncated: {keyword} {raw.tag} declares {raw.length} bytes, the file holds {max(held, 0)}"
            )
    rows = header.get("Rows", None) if header is not None else full.get("Rows", None)
    pixel_tags = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    if rows and not any(t in full for t in pixel_tags):
        return "truncated: Rows (0028,0010) is given but PixelData (7FE0,0010) is missing"
    return _pixel_data_size_reason(full)


def _pixel_data_size_reason(ds: Dataset) -> str | None:
    """Why uncompressed PixelData (7FE0,0010) does not hold the bytes its image tags describe, or None.

    Compressed (encapsulated) pixel data has no fixed size and is left to the decoder. One byte
    more than described is the padding to an even length (DICOM PS3.5 section 7.1.1).
    """
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", None)
    if "PixelData" not in ds or syntax is None or syntax.is_encapsulated or syntax.is_deflated:
        return None
    raw = ds.get_item(0x7FE00010, keep_deferred=True)
    length = raw.length if isinstance(raw, RawDataElement) else len(ds.PixelData or b"")
    if length == 0xFFFFFFFF:
        return None
    try:
        expected = int(get_expected_length(ds, "bytes"))
        rows, columns, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        samples, frames = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # a tag the size needs is missing: the decoder names it
    if length == expected or (length == expected + 1 and expected % 2):
        return None
    more = (f" x SamplesPerPixel (0028,0002) {samples}" if samples != 1 else "") + (
        f" x NumberOfFrames (0028,0008) {frames}" if frames != 1 else ""
    )
    return (
        f"Rows (0028,0010) {rows} x Columns (0028,0011) {columns}{more} x BitsAllocated (0028,0100) {bits} bits "
        f"= {expected} bytes of pixel data, but PixelData (7FE0,0010) holds {length} bytes"
    )


def rescale_slopes(series: DicomSeries) -> list[float]:
    """Each slice's RescaleSlope (0028,1053), in order: given in every slice, a finite number above 0.

    The slope scales the stored values of its slice (the manual: per slice, DRO 1_0). A missing
    slope was read as 1, so in a series whose slopes differ per slice that slice came out wrong by
    its slope (2.3 times too bright); a negative slope made its values negative, 0 blanked it, NaN
    filled it with NaN. The CT and PET Image modules make the slope Type 1 (DICOM PS3.3 C.8.2.1,
    C.8.9.4), so a series without any slope is refused as well. Checked on the headers, before
    any pixel data is read.

    Raises
    ------
    DicomSeriesError
        Naming the slice, the tag and the value found (no override: no slope would be right).
    """
    n = len(series.files)
    folder = series.files[0].parent
    given = [(f, h.get("RescaleSlope", None)) for f, h in zip(series.files, series.headers, strict=True)]
    missing = [f for f, v in given if v is None or v == ""]
    if missing:
        present = [(f, v) for f, v in given if not (v is None or v == "")]
        if present:
            raise DicomSeriesError(
                f"{missing[0]}: RescaleSlope (0028,1053) is missing in {len(missing)} of the {n} slices of the "
                f"{series.modality} series in {folder}, the others give it (e.g. {present[0][1]} in {present[0][0].name}); "
                "read as 1, such a slice would be off by its slope"
            )
        raise DicomSeriesError(
            f"{missing[0]}: RescaleSlope (0028,1053) is missing in all {n} slices of the {series.modality} series "
            f"in {folder}; the CT and PET Image modules require it (DICOM PS3.3 C.8.2.1, C.8.9.4)"
        )
    slopes = []
    for f, v in given:
        try:
            slope = float(v)
        except (TypeError, ValueError):
            raise DicomSeriesError(f"{f}: RescaleSlope (0028,1053) is not a number: {v!r}") from None
        if not math.isfinite(slope):
            raise DicomSeriesError(
                f"{f}: RescaleSlope (0028,1053) is {'NaN' if math.isnan(slope) else v}; expected a finite number "
                "above 0"
            )
        if slope <= 0:
            raise DicomSeriesError(
                f"{f}: RescaleSlope (0028,1053) is {slope:g}; expected a number above 0 (a negative slope turns "
                "the slice's values negative, 0 blanks it)"
            )
        slopes.append(slope)
    return slopes


def read_dicom_series(
    source: str | os.PathLike[str] | SeriesFiles,
    *,
    modality: str | None = None,
    series_uid: str | None = None,
    skip_unreadable: bool = False,
) -> DicomSeries:
    """Read one image series robustly: grouped by series, sorted geometrically, with a RAS affine.

    Parameters
    ----------
    source : folder or SeriesFiles
        A folder (searched recursively; RTSTRUCT, SEG and non-DICOM files are ignored) or a
        series found by :func:`find_series`.
    modality : str, optional
        Keep only series of this ``Modality`` (``"PT"``, ``"CT"`` ...).
    series_uid : str, optional
        Keep only this ``SeriesInstanceUID``.
    skip_unreadable : bool
        Leave out empty or truncated DICOM files with a warning instead of refusing the folder
        (:func:`find_series`).

    Returns
    -------
    DicomSeries
        Instances sorted by their position along the slice normal ``n = r x c`` (``r``, ``c`` the
        row and column direction cosines of ``ImageOrientationPatient``); the affine maps voxel
        ``(column i, row j, slice k)`` to RAS+ mm::

            x_LPS = IPP_0 + i * dc * r + j * dr * c + k * dz * n,   x_RAS = diag(-1, -1, 1) x_LPS

        with ``(dr, dc) = PixelSpacing`` and ``dz`` the spacing of the sorted positions.

    Raises
    ------
    DicomSeriesError
        An unreadable DICOM file (:class:`UnreadableDicomError`), no DICOM files, no (or several)
        matching image series, missing geometry tags, mixed
        orientations / matrix sizes, several instances at one position (a dynamic series),
        non-uniform slice spacing, or slices not stacked along their normal (gantry tilt).

    Examples
    --------
    DRO 0_0 of the SUV DROs of oncoray/suv_computation:

    >>> s = read_dicom_series("DRO_0_0")  # doctest: +SKIP
    >>> s.shape, s.spacing  # doctest: +SKIP
    ((256, 256, 20), (4.0, 4.0, 4.0))
    """
    if isinstance(source, SeriesFiles):
        chosen = source
    else:
        all_series = find_series(source, skip_unreadable=skip_unreadable)
        if not all_series:
            raise DicomSeriesError(f"no DICOM files found in {source}")
        images = [s for s in all_series if s.is_image]
        matching = [
            s
            for s in images
            if (modality is None or s.modality == modality.upper())
            and (series_uid is None or s.series_uid == series_uid)
        ]
        what = f"{modality.upper()} " if modality else ""
        if series_uid is not None:
            what += f"(SeriesInstanceUID {series_uid}) "
        if not matching:
            found = "; ".join(str(s) for s in all_series)
            need = f" (Modality (0008,0060) {modality.upper()!r})" if modality else ""
            raise DicomSeriesError(f"no {what}image series{need} in {source}; found: {found}")
        if len(matching) > 1:
            found = "; ".join(str(s) for s in matching)
            raise DicomSeriesError(
                f"{source} holds {len(matching)} {what}image series, expected one; pass series_uid=... "
                f"to choose: {found}"
            )
        chosen = matching[0]
    if not chosen.is_image:
        raise DicomSeriesError(f"{chosen} is not an image series")
    order, affine = _sort_and_affine(chosen.files, chosen.headers)
    return DicomSeries(
        series_uid=chosen.series_uid,
        modality=chosen.modality,
        description=chosen.description,
        files=tuple(chosen.files[i] for i in order),
        headers=tuple(chosen.headers[i] for i in order),
        affine=affine,
    )


def _unit(v: np.ndarray, what: str, path: Path) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-6:
        raise DicomSeriesError(f"{path}: ImageOrientationPatient (0020,0037) has a zero {what} direction")
    return v / n


def _sort_and_affine(files: Sequence[Path], headers: Sequence[Dataset]) -> tuple[np.ndarray, np.ndarray]:
    """Sort instances along the slice normal; return ``(order, voxel -> RAS affine)``."""
    for path, h in zip(files, headers, strict=True):
        for keyword, tag in (
            ("ImageOrientationPatient", "(0020,0037)"),
            ("ImagePositionPatient", "(0020,0032)"),
            ("PixelSpacing", "(0028,0030)"),
            ("Rows", "(0028,0010)"),
            ("Columns", "(0028,0011)"),
        ):
            if h.get(keyword, None) in (None, ""):
                raise DicomSeriesError(f"{path}: {keyword} {tag} is missing; cannot place the slice in space")
        frames = int(h.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise DicomSeriesError(
                f"{path}: NumberOfFrames (0028,0008) is {frames}; enhanced multi-frame images are not supported, "
                "expected one slice per file"
            )
    first = files[0]
    iop0 = np.array(headers[0].ImageOrientationPatient, dtype=float)
    size0 = (int(headers[0].Rows), int(headers[0].Columns))
    ps0 = np.array(headers[0].PixelSpacing, dtype=float)
    for path, h in zip(files, headers, strict=True):
        iop = np.array(h.ImageOrientationPatient, dtype=float)
        if iop.shape != (6,) or not np.allclose(iop, iop0, atol=1e-4):
            raise DicomSeriesError(
                f"mixed ImageOrientationPatient (0020,0037) in one series: {first} has {iop0.tolist()}, "
                f"{path} has {iop.tolist()}"
            )
        if (int(h.Rows), int(h.Columns)) != size0:
            raise DicomSeriesError(
                f"mixed matrix sizes in one series: {first} is {size0[0]}x{size0[1]} (rows x columns), "
                f"{path} is {int(h.Rows)}x{int(h.Columns)}"
            )
        ps = np.array(h.PixelSpacing, dtype=float)
        if not np.allclose(ps, ps0, rtol=1e-4, atol=1e-5):
            raise DicomSeriesError(
                f"mixed PixelSpacing (0028,0030) in one series: {first} has {ps0.tolist()}, {path} has {ps.tolist()}"
            )
    if np.any(ps0 <= 0):
        raise DicomSeriesError(f"{first}: PixelSpacing (0028,0030) must be positive, found {ps0.tolist()}")
    row_dir = _unit(iop0[:3], "row", first)
    col_dir = _unit(iop0[3:], "column", first)
    if abs(float(row_dir @ col_dir)) > 1e-3:
        raise DicomSeriesError(
            f"{first}: ImageOrientationPatient (0020,0037) directions are not orthogonal: {iop0.tolist()}"
        )
    normal = np.cross(row_dir, col_dir)
    positions = np.array([np.asarray(h.ImagePositionPatient, dtype=float) for h in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along_sorted = along[order]
    n = len(files)
    if n > 1:
        gaps = np.diff(along_sorted)
        if gaps.min() < 1e-3:
            distinct = len(np.unique(np.round(along_sorted, 3)))
            raise DicomSeriesError(
                f"{n} instances at only {distinct} slice positions (series in {first.parent}): several frames at "
                "one position (a dynamic / gated series) or duplicate files; expected one instance per position"
            )
        step = float(np.median(gaps))
        if np.abs(gaps - step).max() > 0.01 * step + 1e-3:
            raise DicomSeriesError(
                f"non-uniform slice spacing in {first.parent}: gaps between sorted slice positions range from "
                f"{gaps.min():.4f} to {gaps.max():.4f} mm (missing slices?)"
            )
        lateral = positions[order] - positions[order][0]
        lateral -= np.outer(lateral @ normal, normal)
        if np.linalg.norm(lateral, axis=1).max() > 0.01 * step + 1e-2:
            raise DicomSeriesError(
                f"slices in {first.parent} are not stacked along their normal (in-plane shift up to "
                f"{np.linalg.norm(lateral, axis=1).max():.3f} mm; gantry tilt?): not supported"
            )
        slice_vec = normal * (along_sorted[-1] - along_sorted[0]) / (n - 1)
    else:
        h = headers[0]
        dz = _float_tag(h, "SpacingBetweenSlices", 0.0) or _float_tag(h, "SliceThickness", 0.0) or 1.0
        slice_vec = normal * abs(dz)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps0[1]  # along a row: column index i grows, step = column spacing
    lps[:3, 1] = col_dir * ps0[0]  # down a column: row index j grows, step = row spacing
    lps[:3, 2] = slice_vec
    lps[:3, 3] = positions[order[0]]
    return order, LPS_TO_RAS @ lps


def _float_tag(ds: Dataset, keyword: str, default: float) -> float:
    value = ds.get(keyword, None)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DicomSeriesError(f"{keyword} is not a number: {value!r}") from exc


def _nifti(array: np.ndarray, affine: np.ndarray, descrip: str = "") -> nib.Nifti1Image:
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if descrip:
        img.header["descrip"] = descrip[:79].encode()
    return img
