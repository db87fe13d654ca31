"""Files of one role (ground truth, PET/SUV, prediction) in a user's folder, keyed by case id.

``pcatools evaluate`` pairs ground truth, SUV and every model's predictions **by case id, never by
sort order**. :func:`case_files` finds the files of one role in one folder, which may be

- a dataset root in one of the layouts :mod:`pcatools.data.discovery` reads (nnU-Net ``imagesTr``/
  ``labelsTr`` and ``imagesTs``/``labelsTs``, autoPET ``<patient>/<study>/SEG|SUV.nii.gz``, flat
  ``<id>_label|_pet.nii.gz``): the role's files of that layout, with its case ids;
- a plain folder of image files, as nnU-Net and MONAI write predictions and as nnU-Net keeps
  ``labelsTs/`` and ``imagesTs/``:

  ==========  =====================================================================================
  role        file names (``.nii.gz``, ``.nii``, ``.mha`` or ``.nrrd``) -> case id
  ==========  =====================================================================================
  ``label``,  ``<id>``, ``<id>_pred``, ``<id>_seg``, ``<id>_label``; MONAI's ``SaveImage`` folders
  ``pred``    ``<id>/<id>_seg`` (``separate_folder=True``, its default) as well; a mirror of the
              autoPET layout, ``<patient>/<study>/<one file>``, gives ``<patient>__<study>``
  ``pet``     ``<id>_0001`` (nnU-Net channel 1; other channels are skipped), ``<id>_pet``,
              ``<id>_suv``, ``<id>``
  ``ct``      ``<id>_0000`` (nnU-Net channel 0; other channels are skipped), ``<id>_ct``
  ==========  =====================================================================================

Two files that give one case id are an error naming both, so nothing is silently dropped; so is a
NIfTI name on a broken link, a named pipe or a device (never opened).

:func:`match_cases` then puts the files of SUV and prediction folders on the ground truth's case
ids, so that autoPET predictions pair however they are named: by study folder (the case id), by
``<patient>/<study>/`` mirror, or by patient folder (``PETCT_xxx.nii.gz``) where that patient has
one study; a patient-named file of a patient with several studies is refused as ambiguous.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Literal

from pcatools.data.discovery import detect_layout, find_layout_cases, patient_ids
from pcatools.data.errors import DataError
from pcatools.data.io import IMAGE_SUFFIXES, PATIENT_SEPARATOR

FolderRole = Literal["label", "pet", "pred", "ct"]
"""Which files of a case a folder holds: ground truth, PET (SUV), a model's predictions or CT."""

_NIFTI = re.compile(r"^(?P<stem>.+)\.(?:nii(?:\.gz)?|mha|nrrd)$")
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "label": ("_pred", "_seg", "_label"),
    "pred": ("_pred", "_seg", "_label"),
    "pet": ("_0001", "_pet", "_suv", "_SUV"),
    "ct": ("_0000", "_ct", "_CT"),
}
_CHANNEL = re.compile(r"^.+_(?P<channel>\d{4})$")  # an nnU-Net image channel
_CHANNELS = {"pet": "0001", "ct": "0000"}
_ROLE_WORDS = {"label": "ground-truth mask", "pet": "PET (SUV)", "pred": "prediction", "ct": "CT"}


def _case_id(stem: str, role: FolderRole) -> str | None:
    """Case id of a plain-folder file stem, or None for files of another role (other nnU-Net channels)."""
    channel = _CHANNEL.match(stem)
    if role in _CHANNELS and channel and channel["channel"] != _CHANNELS[role]:
        return None
    if (
        role == "pet"
        and stem.endswith(_SUFFIXES["ct"])
        or role == "ct"
        and not stem.endswith(_SUFFIXES["ct"])
    ):
        return None  # a CT beside the PET (or anything but a CT) is not this role's file
    for suffix in _SUFFIXES[role]:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _plain_files(root: Path, role: FolderRole) -> dict[str, Path]:
    found: dict[str, Path] = {}

    def add(case_id: str, path: Path) -> None:
        if case_id in found:
            raise DataError(
                f"{root}: two {_ROLE_WORDS[role]} files for case {case_id!r}: {found[case_id].name} and "
                f"{path.relative_to(root)}; expected one file per case"
            )
        found[case_id] = path

    for path in sorted(root.iterdir()):
        if path.is_dir():
            if role in ("label", "pred"):  # MONAI SaveImage: <id>/<id>_seg.nii.gz
                inner = [p for p in sorted(path.iterdir()) if _NIFTI.match(p.name) and _regular(p, role)]
                ids = [_case_id(_NIFTI.match(p.name)["stem"], role) for p in inner]  # type: ignore[index]
                for p, case_id in zip(inner, ids, strict=True):
                    if case_id == path.name:
                        add(case_id, p)
                for study in sorted(s for s in path.iterdir() if s.is_dir()):  # autoPET <patient>/<study>/
                    files = [p for p in sorted(study.iterdir()) if _NIFTI.match(p.name) and _regular(p, role)]
                    if len(files) > 1:
                        raise DataError(
                            f"{study}: {len(files)} {_ROLE_WORDS[role]} files in one study folder "
                            f"({', '.join(p.name for p in files[:4])}): expected one file per <patient>/<study>/"
                        )
                    if files:
                        add(f"{path.name}{PATIENT_SEPARATOR}{study.name}", files[0])
            continue
        m = _NIFTI.match(path.name)
        case_id = _case_id(m["stem"], role) if m else None
        if case_id is not None and _regular(path, role):
            add(case_id, path)
    return found


def _regular(path: Path, role: FolderRole) -> bool:
    """True for a regular file (or a link to one); a NIfTI name on anything else is a DataError.

    A broken link, a named pipe or a device under a case's file name would otherwise be reported
    as a missing case, or block (a pipe) or never end (``/dev/zero``) when read; ``os.stat`` looks
    without opening.
    """
    what = f"{_ROLE_WORDS[role]} {path}"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        target = os.readlink(path) if path.is_symlink() else "?"
        raise DataError(
            f"{what}: expected a NIfTI file, found a broken symbolic link (its target {target} is missing)"
        ) from None
    except OSError as err:
        raise DataError(f"{what}: expected a NIfTI file, cannot look at it ({err.strerror})") from None
    if stat.S_ISREG(mode):
        return True
    kind = (
        "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
        else "a character device" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )  # fmt: skip
    link = f" (a link to {os.readlink(path)})" if path.is_symlink() else ""
    raise DataError(f"{what}: expected a NIfTI file, found {kind}{link}, which is not a regular file")


def case_files(root: str | os.PathLike[str], role: FolderRole) -> dict[str, Path]:
    """The NIfTI files of ``role`` under ``root``, keyed by case id (naming rules in the module docstring).

    Parameters
    ----------
    root : path-like
        A dataset root in a known layout, or a plain folder of NIfTI files.
    role : {"label", "pet", "pred", "ct"}
        Ground-truth masks, PET in SUV, predicted masks or CT. A dataset root's layout is used for
        ``label``, ``pet`` and ``ct``; predictions are always a plain folder.

    Returns
    -------
    dict
        ``{case_id: path}``, sorted by case id.

    Raises
    ------
    DataError
        ``root`` missing or not a folder, no file of the role in it, or two files for one case id.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("PSMA_01.nii.gz", "PSMA_02_seg.nii.gz", "plans.json"):
    ...     _ = (d / name).write_bytes(b"")
    >>> sorted(case_files(d, "pred"))
    ['PSMA_01', 'PSMA_02']
    """
    return _case_entries(Path(root), role)[0]


def case_patients(root: str | os.PathLike[str], role: FolderRole = "label") -> dict[str, str]:
    """The patient id of each case of :func:`case_files` ``(root, role)``: the autoPET patient folder,
    else :func:`~pcatools.data.discovery.patient_ids` (``patients.csv`` in ``root``, ``<patient>__``)."""
    return _case_entries(Path(root), role)[1]


def _case_entries(root: Path, role: FolderRole) -> tuple[dict[str, Path], dict[str, str]]:
    if role not in _ROLE_WORDS:
        raise ValueError(f"role: expected one of {sorted(_ROLE_WORDS)}, found {role!r}")
    if not root.is_dir():
        raise DataError(
            f"{_ROLE_WORDS[role]} folder {root}: expected a directory, found "
            f"{'a file' if root.exists() else 'nothing'}"
        )
    if role != "pred":
        try:
            layout = detect_layout(root)
        except DataError:
            layout = None
        if layout is not None:
            _, entries = find_layout_cases(root, layout, need=(role,), suffixes=IMAGE_SUFFIXES)
            files = {e.case_id: Path(str(e.paths[role])) for e in entries}
            return files, {e.case_id: str(e.patient_id or e.case_id) for e in entries}
    found = _plain_files(root, role)
    if not found:
        raise DataError(
            f"{_ROLE_WORDS[role]} folder {root}: expected image files named <case_id>.nii.gz (.nii, .mha, "
            f".nrrd; or a dataset root in the nnU-Net, autoPET or flat layout), found {folder_summary(root)}"
        )
    found = dict(sorted(found.items()))
    return found, patient_ids(found, root)


def folder_summary(root: Path, shown: int = 6) -> str:
    """What a folder holds, for messages: its entry count and first names (folders with ``/``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "PETCT_1").mkdir(); _ = (d / "a.nii.gz").write_bytes(b"")
    >>> folder_summary(d)
    '2 entries: PETCT_1/, a.nii.gz'
    """
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(root).iterdir())
    if not names:
        return "nothing"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}: {', '.join(names[:shown])}{more}"


def match_cases(
    files: dict[str, Path], patients: dict[str, str], root: str | os.PathLike[str], role: FolderRole = "pred"
) -> dict[str, Path]:
    """Put the files of one folder (:func:`case_files`) on the ground truth's case ids.

    ``patients`` is the ground truth's ``{case_id: patient_id}`` (:func:`case_patients`). A file
    keeps its id when the ground truth has it; a ``<patient>__<study>`` id (an autoPET mirror) takes
    the ground truth's ``<study>`` id of that patient; a patient id (``PETCT_xxx.nii.gz``) takes the
    one case of that patient. Other ids are kept, and reported as unpaired by the caller.

    Raises
    ------
    DataError
        A patient-named file of a patient with several studies (ambiguous: which study?), or two
        files that name one case.

    Examples
    --------
    >>> match_cases({"P1": Path("p/P1.nii.gz")}, {"study_a": "P1", "study_b": "P2"}, "p")
    {'study_a': PosixPath('p/P1.nii.gz')}
    """
    by_patient: dict[str, list[str]] = {}
    for case_id, patient in patients.items():
        by_patient.setdefault(patient, []).append(case_id)
    matched: dict[str, Path] = {}
    named: dict[str, str] = {}
    for key, path in files.items():
        patient, sep, study = key.partition(PATIENT_SEPARATOR)
        target = key
        if key in patients:
            pass
        elif sep and study in patients and patients[study] == patient:
            target = study
        elif key in by_patient:
            studies = sorted(by_patient[key])
            if len(studies) > 1:
                raise DataError(
                    f"{_ROLE_WORDS[role]} {path}: named after patient {key!r}, who has {len(studies)} studies in "
                    f"the ground truth ({', '.join(repr(s) for s in studies[:4])}): ambiguous; expected one file "
                    f"per study, named after its study folder (e.g. {Path(root) / (studies[0] + '.nii.gz')}) or "
                    f"in {key}/<study>/"
                )
            target = studies[0]
        if target in matched:
            raise DataError(
                f"{root}: two {_ROLE_WORDS[role]} files for case {target!r}: {matched[target]} ({named[target]!r}) "
                f"and {path} ({key!r}); expected one file per case"
            )
        matched[target], named[target] = path, key
    return dict(sorted(matched.items()))
