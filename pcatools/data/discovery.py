"""Discovering the cases of a dataset in the autoPET, nnU-Net and flat layouts (paper 2.1).

- :func:`detect_layout` tells which layout a dataset root holds; :func:`find_layout_cases` pairs
  the files of each case **by case id** (never by sort order) without reading them.
- :func:`discover_cases` finds every case under a dataset root, pairs the files by case id, loads
  and checks each (:func:`pcatools.data.io.load_case`), and returns the manifest DataFrame
  (:data:`MANIFEST_COLUMNS`), optionally saved as CSV; :func:`check_cases` runs the same checks on
  the cases of a manifest made elsewhere.

Layouts are exactly those of :func:`pcatools.data.case.layout_paths`:

- ``nnunet``: ``imagesTr/<id>_0000.nii.gz`` (CT), ``imagesTr/<id>_0001.nii.gz`` (PET),
  ``labelsTr/<id>.nii.gz``; the same under ``imagesTs``/``labelsTs`` (both splits are read).
- ``autopet``: ``<patient>/<study>/CTres.nii.gz``, ``SUV.nii.gz``, ``SEG.nii.gz``. Other files in
  the study folder (autoPET's ``CT.nii.gz``, ``PET.nii.gz``) are ignored. The case id is the study
  folder's name as it is (e.g. ``02-11-2019-NA-PET-CT Ganzkoerper  primaer mit KM-72572``, double
  space included), ``<patient>__<study>`` where one study name occurs under two patients; the
  evaluation reads ``SEG.mha`` / ``SUV.mha`` (``.nrrd``) as well.
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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pcatools.data.case import layout_paths
from pcatools.data.errors import DataError
from pcatools.data.io import (
    _AUTOPET_FILES,
    _NIFTI_SUFFIXES,
    _NNUNET_IMAGE,
    _ROLE_NAMES,
    GRID_ATOL_MM,
    IMAGE_SUFFIXES,
    PATIENT_SEPARATOR,
    Role,
    _is_missing,
    count_lesions,
    load_case,
)
from pcatools.data.manifest import read_manifest, write_manifest

LayoutArg = Literal["auto", "nnunet", "autopet", "flat"]
"""A layout to discover, or ``auto``: the one the folder's files show (:func:`detect_layout`)."""

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
"""Columns of the manifest returned by :func:`discover_cases` (the contract of the API reference)."""

_NNUNET_LABEL = re.compile(r"^(?P<id>.+)\.nii(?:\.gz)?$")
_FLAT = re.compile(r"^(?P<id>.+)_(?P<kind>ct|pet|label)\.nii(?:\.gz)?$")
_NNUNET_CHANNELS = {"0000": "ct", "0001": "pet"}


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
    names = {f"{stem}{suffix}" for stem in _AUTOPET_FILES.values() for suffix in IMAGE_SUFFIXES}
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


def _find_autopet(
    root: Path,
    need: tuple[Role, ...],
    optional: tuple[Role, ...] = (),
    suffixes: tuple[str, ...] = _NIFTI_SUFFIXES,
) -> list[_Entry]:
    raw: list[tuple[str, str, dict[str, Path]]] = []
    for patient in sorted(p for p in root.iterdir() if p.is_dir()):
        for study in sorted(s for s in patient.iterdir() if s.is_dir()):
            files: dict[str, Path] = {}
            for role, stem in _AUTOPET_FILES.items():
                for suffix in suffixes:
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


def read_patients_csv(path: str | os.PathLike[str], case_ids: Iterable[str]) -> dict[str, str]:
    """Patient id of each case id from a CSV with columns ``case_id, patient_id`` (a dataset root's
    ``patients.csv``, or ``pcatools evaluate --patients``); a case it does not name is refused, so that
    no study silently counts as its own patient."""
    table = pd.read_csv(path, dtype=str)
    if not {"case_id", "patient_id"} <= set(table.columns):
        raise DataError(f"{path}: expected columns case_id, patient_id, found {list(table.columns)}")
    mapping = dict(zip(table["case_id"], table["patient_id"], strict=True))
    case_ids = list(dict.fromkeys(case_ids))
    absent = [c for c in case_ids if c not in mapping or _is_missing(mapping[c])]
    if absent:
        raise DataError(f"{path}: no patient_id for {len(absent)} case(s), e.g. {absent[:5]}")
    return {c: str(mapping[c]) for c in case_ids}


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
        return read_patients_csv(mapping_csv, case_ids)
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
    *,
    suffixes: tuple[str, ...] = _NIFTI_SUFFIXES,
) -> tuple[Literal["nnunet", "autopet", "flat"], list[_Entry]]:
    """The layout of ``root`` and its cases paired by id, each with the files of roles ``need``.

    A case that has a file of a role in ``need`` or ``optional`` but lacks one of ``need`` is an
    error naming the file it should have; cases with none of them are left out (e.g.
    ``need=("label",)`` lists every labelled case). Files are found, not read; patient ids follow the module docstring.
    ``suffixes``: the autoPET layout's file formats; the evaluation passes
    :data:`~pcatools.data.io.IMAGE_SUFFIXES` (``SEG.mha`` too), training keeps NIfTI, which MONAI reads.

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
        entries = _find_autopet(root, need, optional, suffixes)
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
        Grid tolerance, see :func:`pcatools.data.io.same_grid`.

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
        Grid tolerance, see :func:`pcatools.data.io.same_grid`.

    Raises
    ------
    DataError
        The first bad case in manifest order, as ``case '<id>': <what load_case found>``; a missing
        file or label is reported for every row before anything is loaded.
    """

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
