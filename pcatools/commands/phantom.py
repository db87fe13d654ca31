"""`pcatools phantom`: write a synthetic PSMA PET/CT cohort (:func:`pcatools.data.phantom.make_cohort`)."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "phantom"


def run(
    out_dir: Path = typer.Argument(..., help="Dataset root to write (created)."),
    n: int = typer.Option(60, "--n", min=1, help="Number of cases."),
    spacing: float = typer.Option(
        4.0, "--spacing", min=0.5, max=8.0, help="Isotropic voxel size in mm (paper: 2)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Cohort seed; case i uses the seed (seed, i)."),
    layout: str = typer.Option("nnunet", "--layout", help="Dataset layout: nnunet, autopet or flat."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0: one per CPU)."),
    fwhm: float = typer.Option(
        6.0, "--fwhm", min=0.0, max=20.0, help="PET point-spread function FWHM in mm."
    ),
    lesion_free_fraction: float = typer.Option(
        0.0, "--lesion-free-fraction", min=0.0, max=1.0, help="Probability that a case has no lesion."
    ),
    no_hard_negatives: bool = typer.Option(
        False, "--no-hard-negatives", help="Leave out focal physiological uptake."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write a synthetic whole-body PSMA PET/CT cohort (NIfTI, manifest.csv, lesions.csv).

    Lesion statistics follow the paper's cohort: 1.8 lesions per scan, about 60 % single-lesion scans, volume 6.68 +/- 10.20 ml, SUVmax 12.65 +/- 14.46. Re-running skips complete cases and regenerates corrupt or partial ones.

    Example: pcatools phantom data/synth --n 60 --spacing 4 --workers 2
    """
    from pcatools.data.phantom import make_cohort  # deferred: start-up (see tests/test_imports.py)

    if layout not in ("nnunet", "autopet", "flat"):
        raise typer.BadParameter(f"expected nnunet, autopet or flat, found {layout!r}", param_hint="--layout")
    manifest = make_cohort(
        n,
        out_dir,
        seed=seed,
        layout=layout,  # type: ignore[arg-type]
        spacing=(spacing,) * 3,
        workers=None if workers == 0 else workers,
        progress=progress,
        lesion_free_fraction=lesion_free_fraction,
        fwhm_mm=fwhm,
        hard_negatives=not no_hard_negatives,
    )
    typer.echo(
        f"{len(manifest)} cases in {out_dir} ({manifest.attrs['generated']} generated, "
        f"{manifest.attrs['skipped']} already complete); {int(manifest['n_lesions'].sum())} lesions; "
        f"manifest: {Path(out_dir) / 'manifest.csv'}"
    )
