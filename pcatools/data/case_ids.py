"""Case ids that become file names: derived from folder names, validated, checked for collisions.

A case id ends up in paths such as ``imagesTr/<id>_0000.nii.gz``; an id with a path separator,
``..`` or a leading dot would write outside the dataset or hide the file, so every id is checked
by :func:`validate_case_id` before anything is written.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from pcatools.data.errors import DataError

__all__ = ["CaseIdError", "case_id_from_name", "colliding_case_ids", "study_folder_name", "validate_case_id"]


class CaseIdError(DataError):
    """A case id cannot be used as a file name, or several studies map to one id."""


def validate_case_id(case_id: str, source: str = "") -> str:
    """Return ``case_id`` if it is safe as a file name, else raise :class:`CaseIdError`.

    Refused: an empty id, a path separator (``/`` or ``\\``), ``..``, a leading dot and control
    characters, because each would put the case's files outside its folder, hide them or fail
    to open. ``source`` (e.g. ``"--case-id"`` or the study folder) is named in the message.

    Examples
    --------
    >>> validate_case_id("psma_001")
    'psma_001'
    >>> validate_case_id("../x")
    Traceback (most recent call last):
    ...
    pcatools.data.case_ids.CaseIdError: case id '../x': contains a path separator ('/'); expected a plain file name such as 'psma_001'
    """
    where = f" (from {source})" if source else ""
    if not isinstance(case_id, str) or not case_id:
        problem = "is empty"
    elif "/" in case_id or "\\" in case_id:
        problem = f"contains a path separator ({'/' if '/' in case_id else chr(92)!r})"
    elif ".." in case_id:
        problem = "contains '..'"
    elif case_id.startswith("."):
        problem = "starts with a dot (a hidden file)"
    elif re.search(r"[\x00-\x1f\x7f]", case_id):
        problem = "contains a control character"
    else:
        return case_id
    raise CaseIdError(f"case id {case_id!r}{where}: {problem}; expected a plain file name such as 'psma_001'")


def case_id_from_name(name: str) -> str:
    """A case id from a folder name: runs of characters other than letters, digits, ``.`` and ``-`` become ``-``.

    Letters and digits are those of any script (``Jörg``, ``山田``), after NFC normalisation (macOS
    stores ``ö`` as ``o`` plus a combining mark), so that folders that differ only in non-ASCII
    letters keep distinct ids; every file system pcatools writes to stores such names. Leading and
    trailing ``-`` / ``.`` are dropped (an empty result becomes ``"case"``), so that any folder name
    gives an id that :func:`validate_case_id` accepts.

    Examples
    --------
    >>> [case_id_from_name(n) for n in ("Study 01", "case_1", ".hidden", "...", "Jörg", "山田 太郎")]
    ['Study-01', 'case-1', 'hidden', 'case', 'Jörg', '山田-太郎']
    """
    cleaned = re.sub(r"(?:[^\w.-]|_)+", "-", unicodedata.normalize("NFC", name)).strip("-.")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned or "case"


def study_folder_name(folder: str | os.PathLike[str]) -> str:
    """The name of a study folder as given, made absolute without following links (``.`` -> the current folder).

    A study folder that is a link keeps its own name, not its target's, so the id that
    :func:`colliding_case_ids` checks is the id the case is written under.

    Examples
    --------
    >>> study_folder_name("studies/Jörg/")
    'Jörg'
    """
    return Path(os.path.abspath(folder)).name


def colliding_case_ids(folders: Iterable[str | os.PathLike[str]]) -> dict[str, list[Path]]:
    """Ids that several ``folders`` map to (:func:`case_id_from_name`), with those folders.

    Ids are compared ignoring case, because on case-insensitive file systems (macOS, Windows)
    ``Case1`` and ``case1`` are one file.

    Examples
    --------
    >>> colliding_case_ids(["a/case 1", "a/case-1", "a/case_2"])
    {'case-1': [PosixPath('a/case 1'), PosixPath('a/case-1')]}
    """
    groups: dict[str, list[Path]] = {}
    for folder in folders:
        path = Path(folder)
        groups.setdefault(case_id_from_name(study_folder_name(path)).casefold(), []).append(path)
    return {
        case_id_from_name(study_folder_name(paths[0])): paths for paths in groups.values() if len(paths) > 1
    }
