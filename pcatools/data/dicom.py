"""DICOM in: image series on a RAS grid, CT -> HU, lesion masks from RTSTRUCT / SEG, whole studies.

The pieces, from the bottom up:

- :func:`find_series` groups the DICOM files under a folder by ``SeriesInstanceUID`` (headers
  only, so it is cheap); :func:`read_dicom_series` turns one image series into a
  :class:`DicomSeries`: its instances sorted by position along the slice normal (never by file
  name or ``InstanceNumber``) and the voxel -> RAS+ affine of the NIfTI convention, so that what it
  writes overlays NIfTI files of the same scan.
- :func:`dicom_ct_to_hu` reads a CT series in Hounsfield units (per-slice ``RescaleSlope`` /
  ``RescaleIntercept``).
- :func:`rtstruct_to_mask` rasterises the closed planar contours of an RTSTRUCT onto a reference
  image grid; :func:`seg_to_mask` places the frames of a DICOM SEG onto one.
- :func:`convert_study` finds the PET, CT and (if present) RTSTRUCT / SEG series of a study
  folder and writes PET (SUVbw, :mod:`pcatools.data.suv`), CT (HU, on the PET grid unless asked
  otherwise) and label in the nnU-Net layout (:func:`pcatools.data.case.layout_paths`).

What is refused rather than converted (unreadable files, a CT of another frame of reference,
implausible headers ...) and the option that overrides each check is listed in
``docs/refusals.md``; an override never passes silently: it emits :class:`OverriddenCheckWarning`.

Array axes are ``(x, y, z)`` = ``(column, row, slice)`` of the DICOM images, as nibabel returns
them; spacing in mm.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from tqdm.auto import tqdm

from pcatools.data.case import layout_paths, save_niftis
from pcatools.data.case_ids import case_id_from_name, validate_case_id
from pcatools.data.io import DataError

__all__ = [
    "DicomSeries",
    "DicomSeriesError",
    "OutputPathError",
    "OverriddenCheckWarning",
    "SeriesFiles",
    "UnreadableDicomError",
    "check_output_dir",
    "ct_series_to_hu",
    "convert_study",
    "dicom_ct_to_hu",
    "find_series",
    "read_dicom_series",
    "resample_to_reference",
    "rtstruct_to_mask",
    "seg_to_mask",
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
        """The volume ``stored * RescaleSlope + RescaleIntercept``, slope and intercept per slice, float32."""
        out = np.empty(self.shape, dtype=np.float32)
        for k, (ds, stored) in enumerate(self.iter_slices(desc)):
            slope = _float_tag(ds, "RescaleSlope", 1.0)
            intercept = _float_tag(ds, "RescaleIntercept", 0.0)
            out[:, :, k] = stored * slope + intercept
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

    Files that are not DICOM (NIfTI masks, notes ...) and DICOMDIR indexes are skipped. Series are
    keyed by ``(SeriesInstanceUID, Modality)``, so anonymised data with empty UIDs still splits by
    modality.

    A file that should be DICOM but cannot be read whole (see :func:`unreadable_reason`: empty,
    truncated, unparsable) is an error, because leaving it out silently would shorten a volume
    whose first or last slice it was; ``skip_unreadable=True`` leaves such files out with an
    :class:`OverriddenCheckWarning` naming them.

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
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
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
        refuse_unless_allowed(
            UnreadableDicomError,
            f"{len(unreadable)} unreadable DICOM file(s) under {root}: {'; '.join(unreadable)}",
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
    try:
        with warnings.catch_warnings():  # a damaged file is reported below, not by pydicom's warnings
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        # no 128-byte preamble: accept only what clearly is a DICOM data set
        try:
            with warnings.catch_warnings():  # pydicom warns about whatever it finds in a non-DICOM file
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
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
    reason = unreadable_reason(path, ds)
    return (None, reason) if reason else (ds, None)


def unreadable_reason(path: str | os.PathLike[str], header: Dataset | None = None) -> str | None:
    """Why the DICOM file ``path`` cannot be read whole (empty data set, truncated element, no pixel data), or None.

    pydicom reads a truncated file without complaint and returns what it got (an image without
    its last rows, a header cut in the middle, or nothing at all for cut compressed pixel data),
    so every element's declared length is compared with what the file holds. Large values are not
    loaded (only their offsets), so this costs about one header read. ``header`` is the file's
    header as already read (without pixels), if at hand.
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
    return None


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
    >>> s = read_dicom_series("../shared/data/suv-dro/DRO_0_0")  # doctest: +SKIP
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


# ----------------------------------------------------------------------------------------------
# CT


def ct_series_to_hu(series: DicomSeries) -> nib.Nifti1Image:
    """A CT :class:`DicomSeries` as float32 Hounsfield units: ``HU = stored * RescaleSlope + RescaleIntercept``.

    Slope and intercept are applied per slice. Raises :class:`DicomSeriesError` for a series that is
    not CT, a localizer (scout) or one whose ``RescaleType`` names other units than HU.
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
    >>> img = dicom_ct_to_hu("../shared/data/real-ct/dicom")  # doctest: +SKIP
    >>> img.shape, img.header.get_zooms()  # doctest: +SKIP
    ((512, 512, 20), (0.9765625, 0.9765625, 2.0))
    """
    return ct_series_to_hu(read_dicom_series(directory, modality="CT", series_uid=series_uid))


# ----------------------------------------------------------------------------------------------
# masks


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
    from matplotlib.path import Path as PolygonPath

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
# resampling and studies


def resample_to_reference(
    img: nib.Nifti1Image, reference: nib.Nifti1Image, order: int = 1, cval: float = 0.0
) -> nib.Nifti1Image:
    """Resample ``img`` onto the grid (shape and affine) of ``reference`` in world coordinates.

    ``order=1`` is trilinear (images), ``order=0`` nearest neighbour (labels); points outside
    ``img`` get ``cval``. Uses :func:`nibabel.processing.resample_from_to` (scipy); the result keeps
    the dtype of ``img``.
    """
    from nibabel.processing import resample_from_to

    out = resample_from_to(
        img, (reference.shape[:3], reference.affine), order=order, mode="constant", cval=cval
    )
    data = np.asarray(out.dataobj)
    dtype = img.get_data_dtype()
    if np.issubdtype(dtype, np.integer):
        data = np.rint(data)
    return _nifti(data.astype(dtype), reference.affine, str(img.header["descrip"].astype(str)))


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
    (:func:`pcatools.data.suv.pet_series_to_suv`) and, where the study holds an RTSTRUCT or a
    DICOM SEG, ``labelsTr/<id>.nii.gz`` (uint8 0/1, union of the ROIs / segments). The files are
    written together (:func:`pcatools.data.case.save_niftis`): a failure leaves none of them.

    The label is drawn on the grid of the series it references (PET or CT; the PET grid where it
    references neither) and then brought onto the PET grid by nearest neighbour. The CT is
    resampled onto the PET grid by trilinear interpolation (air, -1024 HU, outside the CT's field
    of view), as autoPET's ``CTres``; ``ct_grid="own"`` keeps its own grid instead.

    Before reading any DICOM the case id (:func:`pcatools.data.case_ids.validate_case_id`) and the
    output folders (:func:`check_output_dir`) are checked.

    Parameters
    ----------
    study_dir : path
        Folder with the study's DICOM files (any sub-folder structure).
    out_dir : path
        Dataset root (``imagesTr`` / ``labelsTr`` are created inside).
    case_id : str, optional
        nnU-Net case id; by default the study folder's name with unsafe characters replaced
        (:func:`pcatools.data.case_ids.case_id_from_name`).
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
        Convert a PET with implausible weight, dose, uptake time or SUVs with a warning
        (:func:`pcatools.data.suv.pet_series_to_suv`).
    allow_ct_mismatch : bool
        Convert a CT of another frame of reference, or one that does not overlap the PET, with a
        warning.

    Returns
    -------
    dict
        ``{"ct": Path, "pet": Path}`` plus ``"label"`` when a mask was written.

    Raises
    ------
    DicomSeriesError, pcatools.data.suv.SUVConversionError
        Missing or ambiguous series, unreadable files or geometry, a CT that does not match the
        PET, a PET that cannot be converted to SUV.
    pcatools.data.case_ids.CaseIdError, OutputPathError
        A case id that is not a plain file name; an output folder that is a file or not writable.
    """
    from pcatools.data.suv import pet_series_to_suv

    study = Path(study_dir)
    if ct_grid not in ("pet", "own"):
        raise ValueError(f"ct_grid must be 'pet' or 'own', found {ct_grid!r}")
    if case_id is None:
        cid = validate_case_id(case_id_from_name(study.resolve().name), f"study folder {study}")
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
