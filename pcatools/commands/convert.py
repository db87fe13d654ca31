"""`pcatools convert`: DICOM PET/CT studies -> NIfTI (PET in SUVbw, CT in HU, lesion label) in the nnU-Net layout."""

from __future__ import annotations

from pathlib import Path

import typer

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
) -> None:
    """Convert a DICOM PET/CT study to NIfTI in the nnU-Net layout.

    Writes imagesTr/<id>_0000.nii.gz (CT, HU), imagesTr/<id>_0001.nii.gz (PET, SUVbw) and, where the study holds an RTSTRUCT or DICOM SEG, labelsTr/<id>.nii.gz (lesion mask 0/1), all on the PET grid unless --ct-grid own.

    SUVbw follows the SUV DRO manual (Units BQML, GML, CM2ML, Philips CNTS; DecayCorrection START, ADMIN, NONE). A PET that cannot be converted is an error (exit code 1), never written as raw values.
    """
    from tqdm.auto import tqdm

    from pcatools.data.dicom import convert_study

    if ct_grid not in ("pet", "own"):
        raise typer.BadParameter(f"expected 'pet' or 'own', found {ct_grid!r}", param_hint="--ct-grid")
    if split not in ("Tr", "Ts"):
        raise typer.BadParameter(f"expected 'Tr' or 'Ts', found {split!r}", param_hint="--split")
    if batch:
        if case_id is not None:
            raise typer.BadParameter(
                "--case-id names one study; with --batch ids come from the sub-folder names"
            )
        studies = sorted(p for p in study_dir.iterdir() if p.is_dir()) if study_dir.is_dir() else []
        if not studies:
            typer.echo(f"error: no study sub-folders in {study_dir}", err=True)
            raise typer.Exit(code=1)
    else:
        studies = [study_dir]
    failures = 0
    for study in tqdm(studies, desc="convert", disable=len(studies) < 2):
        try:
            written = convert_study(
                study,
                out_dir,
                case_id,
                ct_grid="own" if ct_grid == "own" else "pet",
                split="Ts" if split == "Ts" else "Tr",
                roi_names=roi or None,
            )
        except (ValueError, FileNotFoundError) as exc:
            failures += 1
            typer.echo(f"error: {study}: {exc}", err=True)
            continue
        for key, path in written.items():
            typer.echo(f"{key}\t{path}")
    if failures:
        raise typer.Exit(code=1)
