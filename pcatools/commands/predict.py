"""`pcatools predict`: masks on the original grid for every case of a manifest or dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pcatools.commands.train import _fail
from pcatools.data.manifest import read_manifest
from pcatools.training.config import check_window, parse_triple, setting_help

NAME = "predict"
_RUNS = " Not given: the training run's (its validation window)."


def run(
    checkpoint: Path = typer.Argument(..., help="best.pt / last.pt of a training run."),
    source: Path = typer.Argument(..., help="Manifest CSV (columns case_id, ct, pet) or a dataset folder."),
    out_dir: Path = typer.Argument(
        ..., help="Output folder: <case_id>.nii.gz, predictions.csv and provenance.json."
    ),
    split: str | None = typer.Option(
        None, help="Only rows of this split (train, val, test) of a manifest with 'split'."
    ),
    roi_size: str | None = typer.Option(None, help=setting_help("roi_size") + _RUNS),
    overlap: float | None = typer.Option(None, help=setting_help("overlap") + _RUNS),
    mode: str | None = typer.Option(None, help=setting_help("mode") + _RUNS),
    sw_batch_size: int | None = typer.Option(None, help=setting_help("sw_batch_size") + _RUNS),
    device: str | None = typer.Option(None, help="cpu / cuda (default: CUDA if available)."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="float16 autocast (default: on with CUDA)."),
    overwrite: bool = typer.Option(
        False,
        help="Predict every case again, replacing masks made by another checkpoint or with other options.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
    save_probs: bool = typer.Option(
        False,
        "--save-probs",
        help="Also write the foreground probability map (float32, the mask's grid) to "
        "OUT_DIR/<case_id>_probs.nii.gz, for pcatools view --probs.",
    ),
) -> None:
    """Predict lesion masks (paper 2.7): sliding window, argmax, inverted onto each PET's original grid.

    Writes uint8 NIfTI masks with the PET's affine to OUT_DIR/<case_id>.nii.gz, OUT_DIR/predictions.csv
    (the manifest plus a 'pred' column) and OUT_DIR/provenance.json (the checkpoint's SHA-256, the
    options and the input files of each mask). A mask already there is reused when the same
    checkpoint made it with the same options from the same files; masks made otherwise are refused
    unless --overwrite. The cases to predict are checked first (files whole, one voxel grid, finite
    values). With --save-probs also the foreground probability maps beside the masks
    (<case_id>_probs.nii.gz, column 'probs'); a mask is 1 exactly where its map is above 0.5.
    """
    from pcatools.inference import _device, predict_manifest  # deferred: start-up (see tests/test_imports.py)
    from pcatools.training.checkpoint import CheckpointError  # deferred: start-up (see tests/test_imports.py)

    try:  # the options, before anything is read: a bad one exits 2
        roi = parse_triple(roi_size, int, "roi_size") if roi_size is not None else None
        check_window(roi, overlap, mode, sw_batch_size)
        _device(device)
    except ValueError as err:
        _fail(str(err), code=2)
    given: dict[str, Any] = {
        "roi_size": roi,
        "overlap": overlap,
        "mode": mode,
        "sw_batch_size": sw_batch_size,
    }
    try:
        if source.is_dir():
            from pcatools.data.discovery import (
                discover_cases,  # deferred: start-up (see tests/test_imports.py)
            )

            table = discover_cases(source, progress=progress, require_labels=False)
        else:
            table = read_manifest(source)
        if split is not None:
            if "split" not in table:
                raise ValueError(f"--split {split}: expected a 'split' column in {source}, found none")
            table = table[table["split"] == split].reset_index(drop=True)
            if table.empty:
                raise ValueError(
                    f"--split {split}: expected rows with split == {split!r} in {source}, found none"
                )
        result = predict_manifest(
            checkpoint,
            table,
            out_dir,
            device=device,
            amp=amp,
            overwrite=overwrite,
            progress=progress,
            save_probs=save_probs,
            check_inputs=not source.is_dir(),  # discover_cases has just run the same checks
            **{k: v for k, v in given.items() if v is not None},  # the run's window for the others
        )
    except (CheckpointError, ValueError, OSError) as err:
        # a bad checkpoint, case, manifest or folder of other masks, a full disk: each names its file
        _fail(str(err))
    if result.attrs.get("reused"):
        typer.echo(f"reused {result.attrs['reused']} masks made by the same checkpoint and options")
    maps = " and probability maps" if save_probs else ""
    typer.echo(f"{len(result)} masks{maps} in {out_dir} (list: {Path(out_dir) / 'predictions.csv'})")
