"""Reading NIfTI cases with checks: one file, voxel grids, one case (paper 2.1).

Two levels, the second built on the first:

- :func:`load_nifti` reads one file (NIfTI, or MetaImage ``.mha`` / NRRD ``.nrrd`` through SimpleITK,
  as grand-challenge and autoPET's containers store them) completely and checks it for its role (``"ct"``, ``"pet"``,
  ``"label"``): a truncated or corrupt file, a non-3-D image, NaN/inf in an image, or label values
  other than 0/1 raise :class:`~pcatools.data.errors.DataError` naming the path and what was found.
- :func:`load_case` reads the CT, PET and label of one scan into a :class:`~pcatools.data.case.Case`
  after checking that they share one voxel grid (PET is the reference grid: :func:`same_grid`,
  :func:`describe_grid`; :func:`resample_to_grid` puts CT on it where asked).

:func:`count_lesions` counts the lesions of a label as everywhere in pcatools. Finding the cases
of a dataset (the autoPET, nnU-Net and flat layouts) and the manifest is
:mod:`pcatools.data.discovery`, built on this module.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cc3d
import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.filebasedimages import ImageFileError
from nibabel.processing import resample_from_to

from pcatools.data.case import Case
from pcatools.data.errors import DataError

Role = Literal["ct", "pet", "label"]
"""The part of a case a file holds: CT, PET (SUV) or the label."""

GRID_ATOL_MM = 0.01
"""Two grids are "the same" when they have one shape and their 8 corner voxel centres lie within this
distance (mm, per coordinate) of each other. Far below any PET/CT voxel size, far above float32
rounding of NIfTI headers (about 1e-4 mm at 1 m from the origin)."""

DEFLATE_MAX_RATIO = 1032
"""Deflate (gzip) expands data at most about 1032-fold: a ``.nii.gz`` whose header's grid needs more
bytes than this many times the file's size cannot hold it, and is refused before any voxel is read."""

CT_FILL_HU = -1000.0
"""CT value (air) given to PET voxels outside the CT field of view when CT is resampled onto PET."""

PATIENT_SEPARATOR = "__"
"""In nnU-Net and flat layouts, ``<patient>__<rest>`` case ids give the patient id ``<patient>``."""

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
SITK_SUFFIXES = (".mha", ".nrrd")
"""Single-file formats read through SimpleITK (MetaImage, grand-challenge's; NRRD) into the NIfTI form."""
IMAGE_SUFFIXES = (*_NIFTI_SUFFIXES, *SITK_SUFFIXES)
"""Every image file name the evaluation reads (ground truth, SUV, predictions)."""
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_NNUNET_IMAGE = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})\.nii(?:\.gz)?$")
_AUTOPET_FILES = {"ct": "CTres", "pet": "SUV", "label": "SEG"}
_ROLE_NAMES = {"ct": "CT", "pet": "PET", "label": "label"}


# --------------------------------------------------------------------------------------------------
# one file
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A reference voxel grid for :func:`load_nifti`: shape, affine, and the file messages name for it."""

    shape: tuple[int, ...]
    affine: np.ndarray
    name: str
    path: str


def _dtype_name(img: Any) -> str:
    label = img.header.get_value_label("datatype")
    return {"RGB": "RGB24", "RGBA": "RGBA32"}.get(label, label)


def open_nifti(path: str | os.PathLike[str], role: Role | None = None, *, name: str | None = None) -> Any:
    """Open a NIfTI file and check its header, without reading any voxel; return the lazy image.

    Checked: the file exists and is a NIfTI-1/2 image whose name (``.nii`` / ``.nii.gz``; a link's
    own name, not its target's) says how it is stored; its voxels are integer, boolean or float
    (not RGB or complex); its grid is 3-D (trailing axes of length 1 aside); and the file can hold
    the bytes that the header's shape needs (an uncompressed file at least that size, a gzip file
    at least 1/:data:`DEFLATE_MAX_RATIO` of it), so that a damaged or hostile header never makes
    pcatools allocate more than the file could give. Arguments as :func:`load_nifti`.
    """
    path = Path(path)
    what = name or _ROLE_NAMES.get(role or "", "NIfTI")
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    if path.name.lower().endswith(SITK_SUFFIXES):
        return _open_sitk(path, role, what)
    try:
        img: Any = nib.load(str(path))
    except (OSError, EOFError, zlib.error, ImageFileError, ValueError) as err:
        raise DataError(
            f"{what} {path}: cannot read the NIfTI file, it is truncated or corrupt ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(img, nib.Nifti1Image):
        raise DataError(f"{what} {path}: expected a NIfTI image, found {type(img).__name__}")
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        kind = "mask" if role in ("label", None) else "image"
        raise DataError(
            f"{what} {path}: expected an integer, boolean or float {kind}, found {_dtype_name(img)} voxels"
        )
    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise DataError(f"{what} {path}: expected a 3-D (x, y, z) image, found shape {img.shape}")
    needed = int(img.header.get_data_offset()) + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    size = path.stat().st_size
    gz = path.name.endswith(".gz")
    if needed > (size * DEFLATE_MAX_RATIO if gz else size):
        held = f"at most {size * DEFLATE_MAX_RATIO} once decompressed" if gz else f"{size} bytes"
        raise DataError(
            f"{what} {path}: cannot read the NIfTI file, it is truncated or corrupt (its header's shape "
            f"{tuple(img.shape)} of {dtype} needs {needed} bytes; the {size}-byte file holds {held})"
        )
    return img


def _open_sitk(path: Path, role: Role | None, what: str) -> nib.Nifti1Image:
    """Read a MetaImage or NRRD file with SimpleITK into an in-memory ``Nifti1Image``, checked as :func:`open_nifti`.

    The voxel axes become NIfTI's (x, y, z) order and the LPS geometry (origin, spacing, direction)
    becomes the RAS affine ``diag(-1, -1, 1) @ [direction @ diag(spacing) | origin]`` exactly, so an
    ``.mha`` gives the numbers of the NIfTI file it was written from. The header (voxel type, number
    of components, shape) is checked before any voxel is read, as for NIfTI: only what the file can
    hold (:data:`DEFLATE_MAX_RATIO` times its size) is ever allocated.
    """
    import SimpleITK as sitk  # deferred: start-up (see tests/test_imports.py)

    kind = "MetaImage" if path.name.lower().endswith(".mha") else "NRRD"
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{what} {path}: cannot read the {kind} file, it is truncated or corrupt ({first})"
        ) from None
    size = tuple(int(n) for n in reader.GetSize())
    components = int(reader.GetNumberOfComponents())
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if components != 1 or "complex" in pixel:
        kind_word = "mask" if role in ("label", None) else "image"
        raise DataError(
            f"{what} {path}: expected an integer, boolean or float {kind_word}, found {pixel} voxels "
            f"({components} component(s) each)"
        )
    shape = size
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise DataError(f"{what} {path}: expected a 3-D (x, y, z) image, found shape {size}")
    itemsize = sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], reader.GetPixelID())).itemsize
    needed = int(np.prod(shape, dtype=np.float64)) * itemsize
    held = path.stat().st_size * DEFLATE_MAX_RATIO
    if needed > held:
        raise DataError(
            f"{what} {path}: cannot read the {kind} file, it is truncated or corrupt (its header's shape {size} "
            f"of {pixel} needs {needed} bytes; the {path.stat().st_size}-byte file holds at most {held})"
        )
    try:
        image = reader.Execute()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{what} {path}: cannot read the {kind} file, it is truncated or corrupt ({first})"
        ) from None
    data = sitk.GetArrayFromImage(image).transpose(
        tuple(range(len(size) - 1, -1, -1))
    )  # (z, y, x) -> (x, y, z)
    dim = len(size)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(np.asarray(image.GetSpacing(), dtype=np.float64)[:3])
    affine[:3, 3] = _LPS_TO_RAS @ np.asarray(image.GetOrigin(), dtype=np.float64)[:3]
    return nib.Nifti1Image(np.ascontiguousarray(data), affine)


def load_nifti(
    path: str | os.PathLike[str],
    role: Role | None = None,
    *,
    name: str | None = None,
    onto: Grid | None = None,
) -> nib.Nifti1Image:
    """Read a NIfTI file completely and check it; return it as an in-memory ``Nifti1Image``.

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz`` file; ``.mha`` and ``.nrrd`` are read through SimpleITK
        (:func:`_open_sitk`: the same array and the RAS affine of the file's LPS geometry).
    role : {"ct", "pet", "label"} or None
        What the file should hold. ``"ct"`` and ``"pet"``: data become float32 and must be finite
        (no NaN or inf). ``"label"``: values must be exactly 0 or 1; data become uint8.
        ``None``: no value checks, data as stored (after the header's scaling).
    name : str, optional
        What messages call the file (default: the role, e.g. ``"label"``; ``"prediction"`` for a
        predicted mask read with role ``"label"``).
    onto : Grid, optional
        The file must lie on this grid, possibly stored in another orientation (axes flipped or
        permuted, as MONAI's ``Orientation`` writes): checked from the header before any voxel is
        read (:func:`reorientation`), and the voxels are then put on the grid exactly (no
        interpolation). The returned image has the grid's affine.

    Returns
    -------
    nibabel.Nifti1Image
        Image whose data array is already in memory (``img.dataobj`` is a numpy array), with the
        file's affine (sform when set, else qform, as nibabel chooses). A 4-D image with one
        volume (``(x, y, z, 1)``) is squeezed to 3-D.

    Raises
    ------
    DataError
        Missing file; truncated or corrupt file, or a header the file cannot hold (names the path,
        :func:`open_nifti`); RGB or complex voxels; not 3-D; not on ``onto``; NaN/inf in CT or
        PET (counts them); label values other than 0/1 (names the values found).

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
    if role not in ("ct", "pet", "label", None):
        raise ValueError(f"role: expected 'ct', 'pet', 'label' or None, found {role!r}")
    img = open_nifti(path, role, name=name)
    ornt = None
    if onto is not None:
        ornt = reorientation(img.shape, img.affine, onto.shape, onto.affine)
        if ornt is None:
            raise DataError(
                f"{what} {path} is not on the grid of {onto.name} {onto.path}: {what} has "
                f"{describe_grid(img.shape, img.affine)}; {onto.name} has "
                f"{describe_grid(onto.shape, onto.affine)}"
            )
    try:
        data = np.asanyarray(img.dataobj)  # reads (and decompresses) what the header's grid holds
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise DataError(
            f"{what} {path}: cannot read the NIfTI file, it is truncated or corrupt ({type(err).__name__}: {err})"
        ) from err
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    affine = img.affine
    if ornt is not None and onto is not None:
        data = nib.orientations.apply_orientation(data, ornt)
        affine = np.asarray(onto.affine, dtype=np.float64)

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

    out = nib.Nifti1Image(np.ascontiguousarray(data), affine, header=img.header)
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


def reorientation(
    shape: tuple[int, ...],
    affine: np.ndarray,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    atol_mm: float = GRID_ATOL_MM,
) -> np.ndarray | None:
    """The axis flips and permutations that put a grid exactly on a reference grid, or None.

    A mask saved after MONAI's ``Orientation`` (to RAS) without inverting it holds the same voxels
    as its ground truth in another axis order and direction; its affine says so. The result is a
    nibabel orientation transform (``nibabel.orientations.apply_orientation`` applies it; the
    identity when the grids already agree), given only when the reoriented grid passes
    :func:`same_grid` with the reference: no interpolation is ever needed or done.

    Examples
    --------
    >>> a = np.diag([2.0, 3.0, 4.0, 1.0])
    >>> flipped = a @ np.array([[-1, 0, 0, 4], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    >>> reorientation((5, 6, 7), flipped, (5, 6, 7), a).tolist()
    [[0.0, -1.0], [1.0, 1.0], [2.0, 1.0]]
    >>> reorientation((5, 6, 7), a, (5, 6, 8), a) is None
    True
    """
    if len(shape) < 3 or len(ref_shape) < 3:
        return None
    try:
        ornt = nib.orientations.ornt_transform(
            nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64)),
            nib.orientations.io_orientation(np.asarray(ref_affine, dtype=np.float64)),
        )
    except ValueError:  # a degenerate affine: no orientation
        return None
    if np.isnan(ornt).any():
        return None
    new_shape = tuple(int(shape[int(i)]) for i in np.argsort(ornt[:, 0]))  # axis k of the result
    new_affine = np.asarray(affine, dtype=np.float64) @ nib.orientations.inv_ornt_aff(ornt, tuple(shape[:3]))
    if not same_grid(new_shape, new_affine, tuple(ref_shape), ref_affine, atol_mm):
        return None
    return ornt


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
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _default_case_id(pet_path: Path) -> str:
    """Case id from a PET path: nnU-Net ``<id>_0001`` -> ``<id>``; autoPET ``<patient>/<study>/SUV``
    -> ``<patient>__<study>``, the qualified form :func:`~pcatools.data.discovery.discover_cases` uses
    (a file loaded alone cannot know whether its study name is unique in its dataset)."""
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
        the part of the case id before ``__``, else the case id). A manifest row from
        :func:`~pcatools.data.discovery.discover_cases` works as it is.
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
