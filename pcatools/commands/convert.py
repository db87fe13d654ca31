"""`pcatools convert`: DICOM PET/CT studies -> NIfTI (PET in SUVbw, CT in HU, lesion label) in the nnU-Net layout."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NoReturn

import typer

from pcatools.data.case_ids import (
    CaseIdError,
    case_id_from_name,
    colliding_case_ids,
    study_folder_name,
    validate_case_id,
)

NAME = "convert"


def run(
    study_dir: Path = typer.Argument(
        ..., help="DICOM study folder (PET, CT and optionally an RTSTRUCT or SEG)."
    ),
    out_dir: Path = typer.Argument(..., help="Dataset root; imagesTr/ and labelsTr/ are written inside."),
    case_id: str | None = typer.Option(
        None, "--case-id", help="nnU-Net case id (default: the study folder name)."
    ),
    ct_grid: str = typer.Option(
        "pet", "--ct-grid", help="'pet': resample the CT onto the PET grid; 'own': keep its grid."
    ),
    split: str = typer.Option("Tr", "--split", help="'Tr' (imagesTr/labelsTr) or 'Ts' (imagesTs/labelsTs)."),
    roi: list[str] | None = typer.Option(
        None, "--roi", help="RTSTRUCT ROI name to include (repeatable; default all)."
    ),
    batch: bool = typer.Option(
        False, "--batch", help="STUDY_DIR holds one study per sub-folder; convert each."
    ),
    pet_series_uid: str | None = typer.Option(
        None, "--pet-series-uid", help="SeriesInstanceUID of the PET, where the study holds several."
    ),
    ct_series_uid: str | None = typer.Option(
        None, "--ct-series-uid", help="SeriesInstanceUID of the CT, where the study holds several."
    ),
    mask_series_uid: str | None = typer.Option(
        None,
        "--mask-series-uid",
        help="SeriesInstanceUID of the RTSTRUCT / SEG, where the study holds several.",
    ),
    skip_unreadable: bool = typer.Option(
        False,
        "--skip-unreadable",
        help="Leave out empty, truncated or unparsable DICOM files, or ones whose pixel data is not the size "
        "Rows x Columns say (with a warning naming them), instead of refusing the study.",
    ),
    allow_implausible: bool = typer.Option(
        False,
        "--allow-implausible",
        help="Convert a PET with implausible weight, height, dose, uptake time, a half-life that contradicts "
        "its nuclide code, or implausible SUVs (with a warning) instead of refusing it.",
    ),
    allow_ct_mismatch: bool = typer.Option(
        False,
        "--allow-ct-mismatch",
        help="Convert a CT of another frame of reference, or one that does not overlap the PET "
        "(with a warning), instead of refusing it.",
    ),
) -> None:
    """Convert a DICOM PET/CT study to NIfTI in the nnU-Net layout.

    Writes imagesTr/<id>_0000.nii.gz (CT, HU), imagesTr/<id>_0001.nii.gz (PET, SUVbw) and, where the study holds an RTSTRUCT or DICOM SEG, labelsTr/<id>.nii.gz (lesion mask 0/1), all on the PET grid unless --ct-grid own. A case's files are written together: a failure leaves none of them.

    SUVbw follows the SUV DRO manual (Units BQML, GML, CM2ML, Philips CNTS; DecayCorrection START, ADMIN, NONE). A PET that cannot be converted is an error (exit code 1), never written as raw values. Implausible headers, unreadable files and a CT that does not match the PET are refused too; --allow-implausible, --skip-unreadable and --allow-ct-mismatch convert anyway with a warning (docs/refusals.md lists every check).
    """
    from tqdm.auto import tqdm  # deferred: start-up (see tests/test_imports.py)

    from pcatools.data.dicom import (  # deferred: start-up (see tests/test_imports.py)
        OutputPathError,
        OverriddenCheckWarning,
        check_output_dir,
        convert_study,
    )

    if ct_grid not in ("pet", "own"):
        raise typer.BadParameter(f"expected 'pet' or 'own', found {ct_grid!r}", param_hint="--ct-grid")
    if split not in ("Tr", "Ts"):
        raise typer.BadParameter(f"expected 'Tr' or 'Ts', found {split!r}", param_hint="--split")
    if batch:
        one_study = {
            "--case-id": case_id,
            "--pet-series-uid": pet_series_uid,
            "--ct-series-uid": ct_series_uid,
            "--mask-series-uid": mask_series_uid,
        }
        given = [flag for flag, value in one_study.items() if value is not None]
        if given:
            raise typer.BadParameter(
                f"{', '.join(given)} name(s) one study; with --batch ids come from the sub-folder names "
                "and each study must hold one series of each kind"
            )
        studies = sorted(p for p in study_dir.iterdir() if p.is_dir()) if study_dir.is_dir() else []
        if not studies:
            _fail(f"no study sub-folders in {study_dir}")
        collisions = colliding_case_ids(studies)
        if collisions:
            listed = "; ".join(
                f"{cid!r} from {', '.join(str(p) for p in paths)}" for cid, paths in collisions.items()
            )
            _fail(
                f"study folders map to the same case id (they would overwrite each other): {listed}; rename them"
            )
    else:
        studies = [study_dir]
    try:
        for study in studies:
            if case_id is not None:
                validate_case_id(case_id, "--case-id")
            else:
                validate_case_id(case_id_from_name(study_folder_name(study)), f"study folder {study}")
        check_output_dir(out_dir, "Ts" if split == "Ts" else "Tr")
    except (CaseIdError, OutputPathError) as exc:
        _fail(str(exc))
    failures = 0
    for study in tqdm(studies, desc="convert", disable=len(studies) < 2):
        written: dict[str, Path] = {}
        error = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OverriddenCheckWarning)
            try:
                written = convert_study(
                    study,
                    out_dir,
                    case_id,
                    ct_grid="own" if ct_grid == "own" else "pet",
                    split="Ts" if split == "Ts" else "Tr",
                    roi_names=roi or None,
                    pet_series_uid=pet_series_uid,
                    ct_series_uid=ct_series_uid,
                    mask_series_uid=mask_series_uid,
                    skip_unreadable=skip_unreadable,
                    allow_implausible=allow_implausible,
                    allow_ct_mismatch=allow_ct_mismatch,
                )
            except (ValueError, OSError) as exc:  # bad input, or a write that failed (disk full ...)
                error = str(exc)
        _echo_overrides(caught, study, OverriddenCheckWarning)
        if error:
            failures += 1
            typer.echo(f"error: {study}: {error}", err=True)
        for key, path in written.items():
            typer.echo(f"{key}\t{path}")
    if failures:
        raise typer.Exit(code=1)


def _echo_overrides(caught: list[warnings.WarningMessage], study: Path, category: type[Warning]) -> None:
    """Print each overridden check once as ``warning: <study>: ...`` on stderr; pass other warnings on unchanged.

    An override must be seen where the user looks (the command's output), not only in Python's
    warning machinery, which prints nothing under some runners.
    """
    shown: set[str] = set()
    for w in caught:
        if issubclass(w.category, category):
            if str(w.message) not in shown:
                shown.add(str(w.message))
                typer.echo(f"warning: {study}: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _fail(message: str) -> NoReturn:
    """Print one ``error:`` line and exit with code 1 (a user error, not a crash)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)
