"""`pcatools view`: open a case in napari (PET, CT, masks, L1 weights, any loss's weights, lesion table)."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "view"


def run(
    case: str = typer.Argument(
        ...,
        help="A case folder (autoPET study folder with CTres/SUV/SEG, or a folder with one flat-layout case), "
        "or a case id looked up under --data-dir (nnU-Net imagesTr/labelsTr or imagesTs, flat, autoPET) "
        "or under --study.",
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Dataset root for a case id."),
    study: Path | None = typer.Option(
        None,
        "--study",
        help="A finished study run folder (e.g. runs/demo): open case CASE with every model's "
        "prediction, one layer each, named network__loss.",
    ),
    pred: list[str] | None = typer.Option(
        None,
        "--pred",
        help="Predicted mask (NIfTI) on the case grid as NAME=PATH, or a bare PATH named after its "
        "folder; repeat for several (each its own layer and colour; names must differ).",
    ),
    probs: Path | None = typer.Option(
        None,
        "--probs",
        help="Foreground probability map (NIfTI, values in [0, 1], e.g. from pcatools predict "
        "--save-probs): adds Delta, bins, weights.",
    ),
    bin_width: float = typer.Option(0.1, "--bin-width", help="Initial L1 bin width Gamma (eq. 5)."),
    weights_of: list[str] | None = typer.Option(
        None,
        "--weights-of",
        help="A registered loss that declares voxel weights (e.g. l1dfl, or your own registered with "
        "weights=True): adds its weights as a layer '<label> weights'; needs --probs; repeatable.",
    ),
    suv_max: float = typer.Option(10.0, "--suv-max", help="Upper end of the PET SUV window."),
    screenshot: Path | None = typer.Option(
        None,
        "--screenshot",
        help="Write a PNG of the window to this path and exit (no event loop); "
        "under xvfb-run it needs no screen.",
    ),
) -> None:
    """Open a case in napari: PET (SUV window), CT, ground truth and predictions as labels, in mm.

    With --probs, also the L1 norm Delta = |g - p|, its bin index and the L1DFL voxel weights
    (paper eq. 4-10), with a slider for the bin width, and with --weights-of the voxel weights
    of any registered loss that declares them. A dock lists the ground-truth lesions
    (volume, SUVmax, centroid) and which prediction detects each (it covers the lesion's SUVmax
    voxel, paper 2.7.1); clicking a row jumps to the lesion. Needs a display (or xvfb-run -a)
    and the viewer extra: pip install 'pcatools\\[viewer]'.
    """
    from pcatools import viewer as pv  # deferred: start-up (see tests/test_imports.py)

    try:
        if study is not None and data_dir is not None:
            raise ValueError(
                "--study and --data-dir exclude each other: a study's cases are found in the study"
            )
        if study is not None:
            target, study_preds = pv.study_case(study, case)
        else:
            target, study_preds = pv.resolve_case_paths(case, data_dir), {}
        preds = pv.name_predictions([*study_preds.items(), *(pred or [])]) or None
        losses = [pv.weighted_loss(loss) for loss in weights_of or ()]
        if losses and probs is None:
            raise ValueError(
                f"--weights-of {' '.join(losses)} needs --probs (the foreground probability map)"
            )
        pv.require_display()
    except pv.NoDisplayError as err:
        typer.echo(f"pcatools view: {err}", err=True)
        raise typer.Exit(code=2) from err
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"pcatools view: {err}", err=True)
        raise typer.Exit(code=1) from err
    try:
        import napari  # deferred: start-up (see tests/test_imports.py)  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the installation
        typer.echo(f"pcatools view needs napari and PyQt6 (pip install 'pcatools[viewer]'): {err}", err=True)
        raise typer.Exit(code=2) from err
    try:
        viewer = pv.view_case(
            {k: str(v) for k, v in target.items()},
            pred=preds,
            probs=probs,
            bin_width=bin_width,
            suv_window=(0.0, suv_max),
            screenshot=screenshot,
            weights_of=losses,
        )
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"pcatools view: {err}", err=True)
        raise typer.Exit(code=1) from err
    if screenshot is not None:
        viewer.close()
        typer.echo(f"screenshot: {screenshot}")
