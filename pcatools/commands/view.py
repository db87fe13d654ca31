"""`pcatools view`: open a case in napari (PET, CT, masks, L1 weights, lesion table)."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "view"


def run(
    case: str = typer.Argument(
        ...,
        help="A case folder (autoPET study folder with CTres/SUV/SEG, or a folder with one flat-layout case), "
        "or a case id looked up under --data-dir (nnU-Net imagesTr/labelsTr or imagesTs, flat, autoPET).",
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Dataset root for a case id."),
    pred: list[Path] | None = typer.Option(
        None, "--pred", help="Predicted mask (NIfTI) on the case grid; repeat for several."
    ),
    probs: Path | None = typer.Option(
        None,
        "--probs",
        help="Foreground probability map (NIfTI, values in [0, 1]): adds Delta, bins, weights.",
    ),
    bin_width: float = typer.Option(0.1, "--bin-width", help="Initial L1 bin width Gamma (eq. 5)."),
    suv_max: float = typer.Option(10.0, "--suv-max", help="Upper end of the PET SUV window."),
) -> None:
    """Open a case in napari: PET (SUV window), CT, ground truth and predictions as labels, in mm.

    With --probs, also the L1 norm Delta = |g - p|, its bin index and the L1DFL voxel weights
    (paper eq. 4-10), with a slider for the bin width. A dock lists the ground-truth lesions
    (volume, SUVmax, centroid); clicking a row jumps to the lesion. Needs a display (or Xvfb)
    and the viewer extra: pip install 'pcatools[viewer]'.
    """
    try:
        from pcatools.viewer import view_case
    except ImportError as err:  # pragma: no cover - depends on the installation
        typer.echo(f"pcatools view needs napari and PyQt6 (pip install 'pcatools[viewer]'): {err}", err=True)
        raise typer.Exit(code=2) from err
    preds = {p.name.split(".")[0]: p for p in pred} if pred else None
    try:
        view_case(
            case, pred=preds, probs=probs, bin_width=bin_width, data_dir=data_dir, suv_window=(0.0, suv_max)
        )
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"pcatools view: {err}", err=True)
        raise typer.Exit(code=1) from err
