"""Reading NIfTI cases and discovering them in the autoPET, nnU-Net and flat dataset layouts (paper 2.1).

Three levels, each built on the one before:

- :func:`load_nifti` reads one file completely and checks it for its role (``"ct"``, ``"pet"``,
  ``"label"``): a truncated or corrupt file, a non-3-D image, NaN/inf in an image, or label values
  other than 0/1 raise :class:`DataError` naming the path and what was found.
- :func:`load_case` reads the CT, PET and label of one scan into a :class:`~pcatools.data.case.Case`
  after checking that they share one voxel grid (PET is the reference grid).
- :func:`discover_cases` finds every case under a dataset root, pairs the files **by case id**
  (never by sort order), loads and checks each, and returns the manifest DataFrame
  (:data:`MANIFEST_COLUMNS`), optionally saved as CSV.

Layouts are exactly those of :func:`pcatools.data.case.layout_paths`:

- ``nnunet``: ``imagesTr/<id>_0000.nii.gz`` (CT), ``imagesTr/<id>_0001.nii.gz`` (PET),
  ``labelsTr/<id>.nii.gz``; the same under ``imagesTs``/``labelsTs`` (both splits are read).
- ``autopet``: ``<patient>/<study>/CTres.nii.gz``, ``SUV.nii.gz``, ``SEG.nii.gz``. Other files in
  the study folder (autoPET's ``CT.nii.gz``, ``PET.nii.gz``) are ignored.
- ``flat``: ``<id>_ct.nii.gz``, ``<id>_pet.nii.gz``, ``<id>_label.nii.gz`` in one folder.

``.nii`` files are accepted wherever ``.nii.gz`` is.

Patient ids (splits are made per patient, :mod:`pcatools.data.splits`):

- ``autopet``: the patient folder.
- ``nnunet`` / ``flat``: a ``patients.csv`` at the dataset root with columns ``case_id, patient_id``
  when present (it must cover every case); otherwise the part of the case id before the first
  ``"__"`` (double underscore) when there is one, e.g. ``PSMA_0042__2019-03-01`` -> ``PSMA_0042``;
  otherwise the case id itself (one scan per patient).
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cc3d
import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.filebasedimages import ImageFileError
from nibabel.processing import resample_from_to
from tqdm.auto import tqdm

from pcatools.data.case import Case, layout_paths
from pcatools.data.errors import DataError
from pcatools.data.manifest import write_manifest

LayoutArg = Literal["auto", "nnunet", "autopet", "flat"]
Role = Literal["ct", "pet", "label"]

MANIFEST_COLUMNS: tuple[str, ...] = (
    "case_id",
    "patient_id",
    "ct",
    "pet",
    "label",
    "shape",
    "spacing",
    "n_lesions",
    "tmtv_ml",
)
"""Columns of the manifest returned by :func:`discover_cases` (the contract in ``docs/api.md``)."""

GRID_ATOL_MM = 0.01
"""Two grids are "the same" when they have one shape and their 8 corner voxel centres lie within this
distance (mm, per coordinate) of each other. Far below any PET/CT voxel size, far above float32
rounding of NIfTI headers (about 1e-4 mm at 1 m from the origin)."""

CT_FILL_HU = -1000.0
"""CT value (air) given to PET voxels outside the CT field of view when CT is resampled onto PET."""

PATIENT_SEPARATOR = "__"
"""In nnU-Net and flat layouts, ``<patient>__<rest>`` case ids give the patient id ``<patient>``."""

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_NNUNET_IMAGE = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})\.nii(?:\.gz)?$")
_NNUNET_LABEL = re.compile(r"^(?P<id>.+)\.nii(?:\.gz)?$")
_FLAT = re.compile(r"^(?P<id>.+)_(?P<kind>ct|pet|label)\.nii(?:\.gz)?$")
_NNUNET_CHANNELS = {"0000": "ct", "0001": "pet"}
_AUTOPET_FILES = {"ct": "CTres", "pet": "SUV", "label": "SEG"}
_ROLE_NAMES = {"ct": "CT", "pet": "PET", "label": "label"}


# --------------------------------------------------------------------------------------------------
# one file
# --------------------------------------------------------------------------------------------------


def load_nifti(
    path: str | os.PathLike[str], role: Role | None = None, *, name: str | None = None
) -> nib.Nifti1Image:
    """Read a NIfTI file completely and check it; return it as an in-memory ``Nifti1Image``.

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz`` file.
    role : {"ct", "pet", "label"} or None
        What the file should hold. ``"ct"`` and ``"pet"``: data become float32 and must be finite
        (no NaN or inf). ``"label"``: values must be exactly 0 or 1; data become uint8.
        ``None``: no value checks, data as stored (after the header's scaling).
    name : str, optional
        What messages call the file (default: the role, e.g. ``"label"``; ``"prediction"`` for a
        predicted mask read with role ``"label"``).

    Returns
    -------
    nibabel.Nifti1Image
        Image whose data array is already in memory (``img.dataobj`` is a numpy array), with the
        file's affine (sform when set, else qform, as nibabel chooses). A 4-D image with one
        volume (``(x, y, z, 1)``) is squeezed to 3-D.

    Raises
    ------
    DataError
        Missing file; truncated or corrupt file (names the path); not 3-D; NaN/inf in CT or PET
        (counts them); label values other than 0/1 (names the values found).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "seg.nii.gz"
    >>> nib.save(nib.Nifti1Image(np.array([[[0, 2]]], np.int16), np.eye(4)), p)
    >>> load_nifti(p, "label")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pcatools.data.errors.DataError: label .../seg.nii.gz: expected values 0 and 1 only, found other values [2]...
    """
    path = Path(path)
    what = name or _ROLE_NAMES.get(role or "", "NIfTI")
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    try:
        img: Any = nib.load(str(path))
        data = np.asanyarray(img.dataobj)  # reads (and decompresses) the whole file
    except (OSError, EOFError, zlib.error, ImageFileError, ValueError) as err:
        raise DataError(
            f"{what} {path}: cannot read the NIfTI file, it is truncated or corrupt ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(img, nib.Nifti1Image):
        raise DataError(f"{what} {path}: expected a NIfTI image, found {type(img).__name__}")
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{what} {path}: expected a 3-D (x, y, z) image, found shape {img.shape}")

    if role in ("ct", "pet"):
        data = np.asarray(data, dtype=np.float32)
        finite = np.isfinite(data)
        if not finite.all():
            n_nan = int(np.isnan(data).sum())
            n_inf = int(data.size - finite.sum()) - n_nan
            unit = "SUV" if role == "pet" else "HU"
            raise DataError(
                f"{what} {path}: expected finite {unit} values, found {n_nan} NaN and {n_inf} inf voxels "
                f"of {data.size}"
            )
    elif role == "label":
        if data.dtype != np.uint8 or data.max(initial=0) > 1:
            bad = (data != 0) & (data != 1)
            if bad.any():
                found = np.unique(data[bad])
                shown = ", ".join(f"{v:g}" for v in found[:10].tolist())
                more = f" and {found.size - 10} more" if found.size > 10 else ""
                raise DataError(
                    f"{what} {path}: expected values 0 and 1 only, found other values [{shown}]{more} "
                    f"in {int(bad.sum())} voxels"
                )
        data = np.asarray(data, dtype=np.uint8)
    elif role is not None:
        raise ValueError(f"role: expected 'ct', 'pet', 'label' or None, found {role!r}")

    out = nib.Nifti1Image(data, img.affine, header=img.header)
    out.set_data_dtype(data.dtype)
    return out


# --------------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------------


def _corners(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    idx = np.array(np.meshgrid(*[[0, n - 1] for n in shape[:3]], indexing="ij")).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:4]).T


def same_grid(
    shape_a: tuple[int, ...],
    affine_a: np.ndarray,
    shape_b: tuple[int, ...],
    affine_b: np.ndarray,
    atol_mm: float = GRID_ATOL_MM,
) -> bool:
    """True when two voxel grids have one shape and their corner voxel centres agree within ``atol_mm``.

    Comparing the 8 corner positions (mm) bounds the disagreement anywhere in the grid, whatever
    the spacing, direction or origin that causes it.

    Examples
    --------
    >>> a = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> b = a.copy(); b[0, 3] = 0.001
    >>> same_grid((4, 4, 4), a, (4, 4, 4), b), same_grid((4, 4, 4), a, (4, 4, 5), a)
    (True, False)
    """
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        return False
    diff = np.abs(_corners(shape_a, np.asarray(affine_a)) - _corners(shape_b, np.asarray(affine_b)))
    return bool(diff.max() <= atol_mm)


def describe_grid(shape: tuple[int, ...], affine: np.ndarray) -> str:
    """One-line geometry of a grid: shape, spacing (mm), origin (mm), orientation codes."""
    affine = np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    codes = "".join(nib.orientations.aff2axcodes(affine))
    return (
        f"shape {tuple(int(n) for n in shape[:3])}, spacing {tuple(round(float(s), 4) for s in spacing)} mm, "
        f"origin {tuple(round(float(o), 3) for o in affine[:3, 3])} mm, orientation {codes}"
    )


def _grid_error(
    ref: nib.Nifti1Image, ref_path: Path, img: nib.Nifti1Image, path: Path, role: str
) -> DataError:
    hint = " (pass resample_ct=True to resample CT onto the PET grid)" if role == "ct" else ""
    return DataError(
        f"{_ROLE_NAMES[role]} {path} and PET {ref_path} do not share one voxel grid{hint}: "
        f"{_ROLE_NAMES[role]} has {describe_grid(img.shape, img.affine)}; "
        f"PET has {describe_grid(ref.shape, ref.affine)}"
    )


def resample_to_grid(
    img: nib.Nifti1Image, shape: tuple[int, ...], affine: np.ndarray, order: int = 1, fill: float = CT_FILL_HU
) -> nib.Nifti1Image:
    """Resample an image onto another voxel grid (world coordinates; ``order=1`` is trilinear).

    Used to put CT on the PET grid, as autoPET's ``CTres.nii.gz`` does; voxels outside the source's
    field of view get ``fill`` (air for CT). Uses :func:`nibabel.processing.resample_from_to`.
    """
    out = resample_from_to(
        img, (tuple(shape[:3]), np.asarray(affine)), order=order, mode="constant", cval=fill
    )
    data = np.asarray(out.dataobj, dtype=np.float32)
    return nib.Nifti1Image(data, out.affine)


# --------------------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _strip_nifti(name: str) -> str:
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _default_case_id(pet_path: Path) -> str:
    """Case id from a PET path: nnU-Net ``<id>_0001`` -> ``<id>``; autoPET ``<patient>/<study>/SUV``
    -> ``<patient>__<study>``, the qualified form :func:`discover_cases` uses (a file loaded alone
    cannot know whether its study name is unique in its dataset)."""
    channel = _NNUNET_IMAGE.match(pet_path.name)
    if channel:
        return channel["id"]
    name = _strip_nifti(pet_path.name)
    if name == _AUTOPET_FILES["pet"] and pet_path.parent.parent.name:
        return f"{pet_path.parent.parent.name}{PATIENT_SEPARATOR}{pet_path.parent.name}"
    return name


def load_case(
    row_or_paths: Mapping[str, Any] | pd.Series,
    resample_ct: bool = False,
    *,
    grid_atol_mm: float = GRID_ATOL_MM,
) -> Case:
    """Load one scan (CT, PET and optional label) into a :class:`~pcatools.data.case.Case`.

    Parameters
    ----------
    row_or_paths : mapping or pandas.Series
        Keys ``ct``, ``pet`` (paths) and optionally ``label`` (path; None / NaN / "" for none),
        ``case_id`` (default: the PET file name without its suffix and nnU-Net channel, or ``<patient>__<study>`` for autoPET ``SUV.nii.gz``) and ``patient_id`` (default:
        the part of the case id before ``__``, else the case id). A manifest row from :func:`discover_cases` works as it is.
    resample_ct : bool
        When CT is on another grid than PET: False raises :class:`DataError`; True resamples CT
        trilinearly onto the PET grid (air, -1000 HU, outside the CT field of view), as autoPET's
        ``CTres.nii.gz`` is made. The label must always be on the PET grid.
    grid_atol_mm : float
        Tolerance of the grid comparison, see :func:`same_grid`.

    Returns
    -------
    Case
        PET float32 SUV, CT float32 HU, label uint8 0/1 or None, affine of the PET file.
        ``meta`` holds ``paths`` (the three file paths as str) and ``ct_resampled`` (bool).

    Raises
    ------
    DataError
        Missing keys or files, unreadable files, bad values (see :func:`load_nifti`), or grids that
        differ (the message names both files and both geometries).
    """
    paths: dict[str, Any] = {str(k): v for k, v in row_or_paths.items()}
    missing = [k for k in ("ct", "pet") if _is_missing(paths.get(k))]
    if missing:
        raise DataError(
            f"load_case: expected paths for 'ct' and 'pet', missing {missing} in keys {sorted(paths)}"
        )
    pet_path, ct_path = Path(str(paths["pet"])), Path(str(paths["ct"]))
    label_path = None if _is_missing(paths.get("label")) else Path(str(paths["label"]))
    case_id = str(paths["case_id"]) if not _is_missing(paths.get("case_id")) else _default_case_id(pet_path)
    patient_id = (
        str(paths["patient_id"])
        if not _is_missing(paths.get("patient_id"))
        else case_id.split(PATIENT_SEPARATOR, 1)[0]
    )

    pet = load_nifti(pet_path, "pet")
    ct = load_nifti(ct_path, "ct")
    ct_resampled = False
    if not same_grid(pet.shape, pet.affine, ct.shape, ct.affine, grid_atol_mm):
        if not resample_ct:
            raise _grid_error(pet, pet_path, ct, ct_path, "ct")
        ct = resample_to_grid(ct, pet.shape, pet.affine, order=1, fill=CT_FILL_HU)
        ct_resampled = True
    label = None
    if label_path is not None:
        label_img = load_nifti(label_path, "label")
        if not same_grid(pet.shape, pet.affine, label_img.shape, label_img.affine, grid_atol_mm):
            raise _grid_error(pet, pet_path, label_img, label_path, "label")
        label = np.asarray(label_img.dataobj)
    return Case(
        case_id=case_id,
        pet=np.asarray(pet.dataobj),
        ct=np.asarray(ct.dataobj),
        label=label,
        affine=np.asarray(pet.affine, dtype=np.float64),
        patient_id=patient_id,
        meta={
            "paths": {
                "ct": str(ct_path),
                "pet": str(pet_path),
                "label": str(label_path) if label_path else "",
            },
            "ct_resampled": ct_resampled,
            "zooms": tuple(float(z) for z in pet.header.get_zooms()[:3]),
        },
    )


def count_lesions(label: np.ndarray) -> int:
    """Number of lesions: 18-connected components of a 0/1 mask (``cc3d``), as everywhere in pcatools.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), np.uint8); m[0, 0, 0] = m[1, 1, 0] = 1; m[4, 4, 4] = 1
    >>> count_lesions(m)  # the first two touch along an edge (18-connected): 2 lesions
    2
    """
    _, n = cc3d.connected_components(np.asarray(label, dtype=np.uint8), connectivity=18, return_N=True)
    return int(n)


# --------------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    case_id: str
    patient_id: str | None
    paths: dict[str, Path | None]


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_NIFTI_SUFFIXES))


def detect_layout(root: str | os.PathLike[str]) -> Literal["nnunet", "autopet", "flat"]:
    """Which of the three layouts ``root`` holds.

    ``imagesTr``/``imagesTs`` folders -> ``nnunet``; ``<id>_ct|pet|label.nii[.gz]`` files in the
    root -> ``flat``; ``<patient>/<study>/SUV|CTres|SEG.nii[.gz]`` -> ``autopet``.

    Raises
    ------
    DataError
        ``root`` missing or not a folder, empty, or none of the layouts found (names what is there).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"dataset root {root}: expected a directory, found {'a file' if root.exists() else 'nothing'}"
        )
    entries = sorted(root.iterdir())
    if not entries:
        raise DataError(
            f"dataset root {root} is an empty directory: expected nnU-Net (imagesTr/, labelsTr/), "
            "autoPET (<patient>/<study>/SUV.nii.gz) or flat (<id>_pet.nii.gz) files"
        )
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        return "nnunet"
    if any(_FLAT.match(p.name) for p in entries if p.is_file()):
        return "flat"
    names = {f"{stem}{suffix}" for stem in _AUTOPET_FILES.values() for suffix in _NIFTI_SUFFIXES}
    for patient in (p for p in entries if p.is_dir()):
        for study in (s for s in patient.iterdir() if s.is_dir()):
            if any((study / n).is_file() for n in names):
                return "autopet"
    shown = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:8])
    raise DataError(
        f"dataset root {root}: no known layout found: expected nnU-Net (imagesTr/, labelsTr/), autoPET "
        f"(<patient>/<study>/SUV.nii.gz, CTres.nii.gz, SEG.nii.gz) or flat (<id>_ct/_pet/_label.nii.gz); "
        f"found {len(entries)} entries: {shown}{' ...' if len(entries) > 8 else ''}"
    )


def _pair(
    found: dict[str, dict[str, Path]],
    expected: dict[str, dict[str, Path]],
    need: tuple[Role, ...],
    optional: tuple[Role, ...] = (),
) -> list[_Entry]:
    """Check every case has the files of roles ``need`` by id; ``expected`` gives the path a missing file
    should have. Cases with no file of ``need`` or ``optional`` are left out."""
    entries = []
    for case_id in sorted(found):
        files = found[case_id]
        if not any(k in files for k in (*need, *optional)):
            continue
        absent = [k for k in need if k not in files]
        if absent:
            have = ", ".join(f"{_ROLE_NAMES[k]} {files[k]}" for k in ("ct", "pet", "label") if k in files)
            want = ", ".join(f"{_ROLE_NAMES[k]} {expected[case_id][k]}" for k in absent)
            raise DataError(f"case {case_id!r}: {have} has no partner file: expected {want}")
        entries.append(_Entry(case_id, None, {k: files.get(k) for k in ("ct", "pet", "label")}))
    return entries


def _find_nnunet(root: Path, need: tuple[Role, ...], optional: tuple[Role, ...] = ()) -> list[_Entry]:
    entries: list[_Entry] = []
    seen: dict[str, str] = {}
    splits: tuple[Literal["Tr", "Ts"], ...] = ("Tr", "Ts")
    for split in splits:
        images, labels = root / f"images{split}", root / f"labels{split}"
        if not images.is_dir():
            if labels.is_dir() and _nifti_files(labels):
                raise DataError(
                    f"{labels} holds labels but {images} is missing: expected the images beside them"
                )
            continue
        found: dict[str, dict[str, Path]] = {}
        for path in _nifti_files(images):
            m = _NNUNET_IMAGE.match(path.name)
            if m is None:
                raise DataError(
                    f"{path}: expected nnU-Net image names <id>_0000.nii.gz (CT) or <id>_0001.nii.gz (PET)"
                )
            role = _NNUNET_CHANNELS.get(m["channel"])
            if role is None:
                raise DataError(
                    f"{path}: unexpected channel {m['channel']}: expected 0000 (CT) and 0001 (PET) only"
                )
            found.setdefault(m["id"], {})[role] = path
        if labels.is_dir():
            for path in _nifti_files(labels):
                m = _NNUNET_LABEL.match(path.name)
                assert m is not None  # every NIfTI name matches
                found.setdefault(m["id"], {})["label"] = path
        expected = {cid: layout_paths(root, cid, "nnunet", split=split) for cid in found}
        for entry in _pair(found, expected, need, optional):
            if entry.case_id in seen:
                raise DataError(
                    f"case id {entry.case_id!r} appears in both images{seen[entry.case_id]} and images{split}"
                )
            seen[entry.case_id] = split
            entries.append(entry)
    return entries


def _find_flat(root: Path, need: tuple[Role, ...], optional: tuple[Role, ...] = ()) -> list[_Entry]:
    found: dict[str, dict[str, Path]] = {}
    for path in _nifti_files(root):
        m = _FLAT.match(path.name)
        if m is None:
            raise DataError(
                f"{path}: expected flat-layout names <id>_ct.nii.gz, <id>_pet.nii.gz or <id>_label.nii.gz"
            )
        if m["kind"] in found.get(m["id"], {}):
            raise DataError(
                f"case {m['id']!r}: two {m['kind']} files, {found[m['id']][m['kind']]} and {path}"
            )
        found.setdefault(m["id"], {})[m["kind"]] = path
    expected = {cid: {k: root / f"{cid}_{k}.nii.gz" for k in ("ct", "pet", "label")} for cid in found}
    return _pair(found, expected, need, optional)


def _find_autopet(root: Path, need: tuple[Role, ...], optional: tuple[Role, ...] = ()) -> list[_Entry]:
    raw: list[tuple[str, str, dict[str, Path]]] = []
    for patient in sorted(p for p in root.iterdir() if p.is_dir()):
        for study in sorted(s for s in patient.iterdir() if s.is_dir()):
            files: dict[str, Path] = {}
            for role, stem in _AUTOPET_FILES.items():
                for suffix in _NIFTI_SUFFIXES:
                    if (study / f"{stem}{suffix}").is_file():
                        files[role] = study / f"{stem}{suffix}"
                        break
            if files:
                raw.append((patient.name, study.name, files))
    studies = [s for _, s, _ in raw]
    qualify = len(set(studies)) != len(studies)
    found: dict[str, dict[str, Path]] = {}
    expected: dict[str, dict[str, Path]] = {}
    patients: dict[str, str] = {}
    for patient_name, study_name, study_files in raw:
        case_id = f"{patient_name}{PATIENT_SEPARATOR}{study_name}" if qualify else study_name
        found[case_id] = study_files
        d = root / patient_name / study_name
        expected[case_id] = {k: d / f"{stem}.nii.gz" for k, stem in _AUTOPET_FILES.items()}
        patients[case_id] = patient_name
    entries = _pair(found, expected, need, optional)
    for entry in entries:
        entry.patient_id = patients[entry.case_id]
    return entries


def patient_ids(case_ids: Iterable[str], root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Patient id of each case id for the nnU-Net and flat layouts (rules in the module docstring).

    Examples
    --------
    >>> patient_ids(["P1__2019", "P1__2021", "P2"])
    {'P1__2019': 'P1', 'P1__2021': 'P1', 'P2': 'P2'}
    """
    case_ids = list(case_ids)
    mapping_csv = Path(root) / "patients.csv" if root is not None else None
    if mapping_csv is not None and mapping_csv.is_file():
        table = pd.read_csv(mapping_csv, dtype=str)
        if not {"case_id", "patient_id"} <= set(table.columns):
            raise DataError(
                f"{mapping_csv}: expected columns case_id, patient_id, found {list(table.columns)}"
            )
        mapping = dict(zip(table["case_id"], table["patient_id"], strict=True))
        absent = [c for c in case_ids if c not in mapping or _is_missing(mapping[c])]
        if absent:
            raise DataError(f"{mapping_csv}: no patient_id for {len(absent)} case(s), e.g. {absent[:5]}")
        return {c: str(mapping[c]) for c in case_ids}
    return {c: c.split(PATIENT_SEPARATOR, 1)[0] if PATIENT_SEPARATOR in c else c for c in case_ids}


def _manifest_row(entry: _Entry, resample_ct: bool, grid_atol_mm: float) -> dict[str, Any]:
    case = load_case(
        {
            "case_id": entry.case_id,
            "patient_id": entry.patient_id,
            **{k: (str(v) if v is not None else None) for k, v in entry.paths.items()},
        },
        resample_ct=resample_ct,
        grid_atol_mm=grid_atol_mm,
    )
    zooms = case.meta["zooms"]
    voxel_ml = float(np.prod(zooms)) / 1000.0
    if case.label is None:
        n_lesions: float = float("nan")
        tmtv = float("nan")
    else:
        n_lesions = count_lesions(case.label)
        tmtv = float(np.count_nonzero(case.label)) * voxel_ml
    return {
        "case_id": case.case_id,
        "patient_id": case.patient_id,
        "ct": case.meta["paths"]["ct"],
        "pet": case.meta["paths"]["pet"],
        "label": case.meta["paths"]["label"],
        "shape": tuple(int(n) for n in case.pet.shape),
        "spacing": tuple(round(z, 6) for z in zooms),
        "n_lesions": n_lesions,
        "tmtv_ml": tmtv,
    }


def find_layout_cases(
    root: str | os.PathLike[str],
    layout: LayoutArg = "auto",
    need: tuple[Role, ...] = ("ct", "pet", "label"),
    optional: tuple[Role, ...] = (),
) -> tuple[Literal["nnunet", "autopet", "flat"], list[_Entry]]:
    """The layout of ``root`` and its cases paired by id, each with the files of roles ``need``.

    A case that has a file of a role in ``need`` or ``optional`` but lacks one of ``need`` is an
    error naming the file it should have; cases with none of them are left out (e.g.
    ``need=("label",)`` lists every labelled case). Files are found, not read; patient ids follow the module docstring.

    Raises
    ------
    DataError
        Missing, empty or unknown root, unexpected file names, duplicate ids, no case found.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"dataset root {root}: expected a directory, found {'a file' if root.exists() else 'nothing'}"
        )
    chosen = detect_layout(root) if layout == "auto" else layout
    if chosen == "nnunet":
        entries = _find_nnunet(root, need, optional)
    elif chosen == "autopet":
        entries = _find_autopet(root, need, optional)
    elif chosen == "flat":
        entries = _find_flat(root, need, optional)
    else:
        raise ValueError(f"layout: expected 'auto', 'nnunet', 'autopet' or 'flat', found {layout!r}")
    if not entries:
        wanted = ", ".join(_ROLE_NAMES[k] for k in need)
        raise DataError(f"dataset root {root}: no cases found in the {chosen} layout (with {wanted} files)")
    if chosen != "autopet":
        pids = patient_ids([e.case_id for e in entries], root)
        for e in entries:
            e.patient_id = pids[e.case_id]
    return chosen, entries


def discover_cases(
    root: str | os.PathLike[str],
    layout: LayoutArg = "auto",
    resample_ct: bool = False,
    out_csv: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    require_labels: bool = True,
    grid_atol_mm: float = GRID_ATOL_MM,
) -> pd.DataFrame:
    """Find, pair, load and check every case of a dataset; return (and optionally save) the manifest.

    Parameters
    ----------
    root : path-like
        Dataset root.
    layout : {"auto", "nnunet", "autopet", "flat"}
        ``"auto"`` uses :func:`detect_layout`.
    resample_ct : bool
        Accept CT on another grid than PET (it is resampled onto PET when loaded, see
        :func:`load_case`); the manifest keeps the original CT path, so pass ``resample_ct=True``
        to :func:`load_case` and to the transforms as well.
    out_csv : path-like, optional
        Save the manifest there (:func:`pcatools.data.manifest.write_manifest`). ``shape`` and
        ``spacing`` are written as ``"(x, y, z)"``; :func:`~pcatools.data.manifest.read_manifest`
        parses them back.
    progress : bool
        tqdm progress bar over the cases.
    require_labels : bool
        True: a case without a label file is an error naming the missing file. False: such cases
        get ``label=""`` and NaN ``n_lesions``/``tmtv_ml`` (unlabelled test images).
    grid_atol_mm : float
        Grid tolerance, see :func:`same_grid`.

    Returns
    -------
    pandas.DataFrame
        One row per case, sorted by ``case_id``, columns :data:`MANIFEST_COLUMNS`: ``ct``, ``pet``,
        ``label`` as str paths; ``shape`` (voxels) and ``spacing`` (mm, from the PET header) as
        tuples; ``n_lesions`` the number of 18-connected label components (``cc3d``); ``tmtv_ml``
        the label volume in ml from the header voxel size.

    Raises
    ------
    DataError
        Empty or unknown root, a file without its partner (named, with the path it should have),
        unexpected file names, duplicate case ids, grids that differ, unreadable or bad files.
    """
    root = Path(root).resolve()  # absolute paths: the manifest reads the same from any directory
    need: tuple[Role, ...] = ("ct", "pet", "label") if require_labels else ("ct", "pet")
    chosen, entries = find_layout_cases(root, layout, need, optional=("label",))

    rows = [
        _manifest_row(e, resample_ct, grid_atol_mm)
        for e in tqdm(entries, desc=f"discover {chosen} cases", unit="case", disable=not progress)
    ]
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest = manifest.sort_values("case_id", kind="stable").reset_index(drop=True)
    if out_csv is not None:
        write_manifest(manifest, out_csv, root=root)
    return manifest


def check_cases(
    manifest: pd.DataFrame | str | os.PathLike[str],
    progress: bool = True,
    *,
    require_labels: bool = False,
    resample_ct: bool = False,
    workers: int = 1,
    grid_atol_mm: float = GRID_ATOL_MM,
) -> None:
    """Check every case of a manifest as :func:`discover_cases` does: files exist, read, share a grid, hold valid values.

    Each case is loaded with :func:`load_case` (CT/PET/label on one grid, finite CT and PET, label
    values 0/1, no truncated file) and discarded. Training reads its cases through MONAI, which
    checks none of this, so a manifest made by hand or by another tool goes through the same checks
    as a discovered dataset before any epoch starts.

    Parameters
    ----------
    manifest : DataFrame or path to a CSV
        Read with :func:`~pcatools.data.manifest.read_manifest`; needs ``ct`` and ``pet``.
    progress : bool
        tqdm progress bar over the cases.
    require_labels : bool
        Every row must name a label file (training).
    resample_ct : bool
        Accept CT on another grid than PET (see :func:`load_case`).
    workers : int
        Cases loaded at once (threads; decompression releases the GIL).
    grid_atol_mm : float
        Grid tolerance, see :func:`same_grid`.

    Raises
    ------
    DataError
        The first bad case in manifest order, as ``case '<id>': <what load_case found>``; a missing
        file or label is reported for every row before anything is loaded.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pcatools.data.manifest import read_manifest

    table = read_manifest(manifest, required=("ct", "pet"), check_files=("ct", "pet", "label"))
    names = (
        [f"case {c!r}" for c in table["case_id"]]
        if "case_id" in table
        else [f"manifest row {i}" for i in range(len(table))]
    )
    if require_labels:
        labels = table["label"] if "label" in table else pd.Series([""] * len(table))
        unlabelled = [n for n, p in zip(names, labels, strict=True) if _is_missing(p)]
        if unlabelled:
            raise DataError(
                f"{unlabelled[0]}: expected a label file (training needs one), found none "
                f"({len(unlabelled)} case(s) without a label)"
            )
    rows = [{str(k): v for k, v in r.items()} for r in table.to_dict("records")]

    def one(i: int) -> None:
        try:
            load_case(rows[i], resample_ct=resample_ct, grid_atol_mm=grid_atol_mm)
        except DataError as err:
            raise DataError(f"{names[i]}: {err}") from None

    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
    bar = tqdm(total=len(rows), desc="check cases", unit="case", disable=not progress)
    try:
        for _ in pool.map(one, range(len(rows))):  # re-raises the first failure in manifest order
            bar.update()
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure, the cases not started are skipped
