"""Manifest CSVs: the one reader and writer of the tables that name a case's files.

A manifest has one row per case (or per case and model) with ids (``case_id``, ``patient_id``) and
file paths (:data:`PATH_COLUMNS`). Every table pcatools writes with paths (``manifest.csv``,
``split.csv``, a study's and an evaluation's ``results/*.csv``) goes through
:func:`write_manifest`, and every one it reads through :func:`read_manifest`, so that

- ids stay strings (``"0042"`` stays ``"0042"``);
- a path to a file inside the folder tree the table belongs to (``root``: the run or dataset
  folder) is written relative to the CSV's own folder and read back relative to it, so a run
  folder can be copied, moved or shared and still reads its own files, never the original's;
- a path outside it (the user's dataset elsewhere) is written absolute;
- a relative path is never read relative to the current directory, which would depend on where
  a command happens to be started.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pcatools._atomic import write_text_atomic
from pcatools.data.errors import DataError

PATH_COLUMNS: tuple[str, ...] = ("ct", "pet", "label", "pred", "probs")
"""Columns that hold file paths."""

ID_COLUMNS: tuple[str, ...] = ("case_id", "patient_id")
"""Columns that hold ids (read as strings)."""

_TEXT_COLUMNS: tuple[str, ...] = ("network", "loss", "model")


def _parse_tuple(value: Any, kind: type) -> Any:
    if isinstance(value, str):
        parts = [p for p in value.strip("()[] ").split(",") if p.strip()]
        return tuple(kind(float(p)) if kind is int else kind(p) for p in parts)
    return value


def _under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def write_manifest(
    table: pd.DataFrame, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``table`` as CSV atomically, paths under ``root`` relative to the CSV's folder.

    ``root`` (default: the CSV's folder) is the folder that travels with the table, e.g. the
    study run folder for ``results/cases.csv``; paths outside it stay absolute.

    Examples
    --------
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> df = pd.DataFrame({"case_id": ["0042"], "pet": [str(run / "data" / "a_pet.nii.gz")],
    ...                    "label": ["/elsewhere/a_label.nii.gz"]})
    >>> _ = write_manifest(df, run / "results" / "cases.csv", root=run)
    >>> print((run / "results" / "cases.csv").read_text().strip())
    case_id,pet,label
    0042,../data/a_pet.nii.gz,/elsewhere/a_label.nii.gz
    """
    path = Path(path)
    base = path.parent.resolve()
    top = Path(root).resolve() if root is not None else base
    out = table.copy()
    for col in PATH_COLUMNS:
        if col not in out.columns:
            continue
        values = []
        for v in out[col]:
            if isinstance(v, str | os.PathLike) and str(v):
                p = Path(os.path.abspath(v))
                v = os.path.relpath(p, base) if _under(p, top) else str(p)
            values.append(v)
        out[col] = values
    return write_text_atomic(path, out.to_csv(index=False))


def read_manifest(
    source: pd.DataFrame | str | os.PathLike[str],
    required: Sequence[str] = (),
    check_files: Sequence[str] = (),
) -> pd.DataFrame:
    """A manifest as a DataFrame: ids as strings, paths absolute, ``shape``/``spacing`` as tuples.

    Parameters
    ----------
    source : DataFrame or path to a CSV
        A DataFrame is copied (its paths are used as they are); a CSV's relative paths are taken
        relative to the CSV's folder (:func:`write_manifest` writes them so).
    required : sequence of str
        Columns that must be present.
    check_files : sequence of str
        Path columns whose (non-empty) files must exist.

    Raises
    ------
    DataError
        The CSV is missing, lacks a required column, or names a file that does not exist (each
        naming the manifest, the column, the case and the path).
    """
    if isinstance(source, pd.DataFrame):
        table = source.copy()
        where = "manifest"
    else:
        csv = Path(source)
        where = f"manifest {csv}"
        if not csv.is_file():
            raise DataError(f"{where}: file not found (expected a CSV from discover_cases, make_splits or a run)")
        dtypes = {c: str for c in (*ID_COLUMNS, *PATH_COLUMNS, *_TEXT_COLUMNS)}
        table = pd.read_csv(csv, dtype=dtypes)
        base = csv.resolve().parent
        for col in PATH_COLUMNS:
            if col in table.columns:
                table[col] = [
                    os.path.normpath(base / v) if isinstance(v, str) and v and not os.path.isabs(v) else v
                    for v in table[col]
                ]
    for col in ID_COLUMNS:
        if col in table.columns:
            table[col] = table[col].astype(str)
    for col in (*PATH_COLUMNS, *_TEXT_COLUMNS):
        if col in table.columns:
            table[col] = table[col].fillna("").astype(str)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(f"{where}: missing columns {missing}; found {list(table.columns)}")
    if "shape" in table.columns:
        table["shape"] = [_parse_tuple(v, int) for v in table["shape"]]
    if "spacing" in table.columns:
        table["spacing"] = [_parse_tuple(v, float) for v in table["spacing"]]
    for col in check_files:
        absent = [(i, p) for i, p in enumerate(table[col]) if p and not os.path.isfile(p)]
        if absent:
            i, p = absent[0]
            case = f"case {table['case_id'].iloc[i]!r}" if "case_id" in table.columns else f"row {i}"
            raise DataError(f"{where}: {len(absent)} {col} file(s) not found, first: {case}: {p}")
    return table
