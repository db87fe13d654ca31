"""`pcatools nnunet ...`: the paper's losses inside nnU-Net (:mod:`pcatools.nnunet`).

Subcommands: ``install-trainers`` (make ``nnUNetv2_train -tr nnUNetTrainerL1DFL`` work, or undo it),
``export-dataset`` (a phantom or discovered cohort as an nnU-Net raw dataset), ``plan`` (nnU-Net's
plan and preprocess), ``train`` (one fold with a registered loss, your own ``NAME=SPEC`` or nnU-Net's dice_ce) and
``predict`` (nnU-Net's predictor on a folder of images).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from pcatools.data.errors import DataError
from pcatools.loss_registry import loss_help
from pcatools.specs import SpecError

NAME = "nnunet"

app = typer.Typer(
    name=NAME,
    help="The paper's losses inside nnU-Net (nnunetv2): trainers, dataset export, plan, train, predict.",
    no_args_is_help=True,
    add_completion=False,
)

_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, ImportError)


def _fail(err: BaseException) -> typer.Exit:
    """One ``error:`` line; exit 2 for a loss that cannot be named, built or used (a bad option), else 1."""
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(code=2 if isinstance(err, SpecError) else 1)


_VERBOSE = "Show nnU-Net's own output (plans, per-case lines) instead of keeping it in nnunet_output.log in the run folder."


def _log_note(folder: Path, verbose: bool) -> str:
    """Where nnU-Net's output went (nothing with --verbose: it was on the screen)."""
    from pcatools.nnunet.run import NNUNET_LOG  # deferred: start-up (see tests/test_imports.py)

    return "" if verbose else f" (nnU-Net's output: {folder / NNUNET_LOG})"


def _set_workers(workers: int | None) -> None:
    """nnU-Net's process counts, set before nnU-Net is imported (it reads ``nnUNet_def_n_proc`` on import)."""
    if workers is not None:
        os.environ["nnUNet_n_proc_DA"] = str(workers)
        os.environ.setdefault("nnUNet_def_n_proc", str(max(1, workers)))


@app.command("install-trainers")
def install_trainers(
    uninstall: bool = typer.Option(
        False, "--uninstall", help="Remove the module written before (and only it)."
    ),
    target: Path | None = typer.Option(
        None, help="Folder to write into (default: nnU-Net's nnunetv2/training/nnUNetTrainer)."
    ),
) -> None:
    """Let nnUNetv2_train / nnUNetv2_predict find nnUNetTrainerL1DFL and nnUNetTrainerDiceFocal by name.

    Writes nnunetv2/training/nnUNetTrainer/pcatools_l1dfl.py, which imports them from pcatools.nnunet; idempotent; --uninstall removes it. A file of that name not written by pcatools is never touched.

    Example: pcatools nnunet install-trainers && nnUNetv2_train 501 3d_fullres 0 -tr nnUNetTrainerL1DFL
    """
    from pcatools.nnunet import install  # deferred: start-up (see tests/test_imports.py)

    try:
        changes = install.uninstall_trainers(target) if uninstall else install.install_trainers(target)
    except _ERRORS as err:
        raise _fail(err) from None
    for change in changes:
        typer.echo(str(change))


@app.command("export-dataset")
def export_dataset(
    out: Path = typer.Argument(
        ..., help="nnU-Net raw folder (nnUNet_raw); the dataset goes to OUT/DatasetNNN_Name."
    ),
    n_cases: int | None = typer.Option(None, "--n-cases", min=2, help="Phantom cases to generate."),
    data_dir: Path | None = typer.Option(
        None, help="Export this dataset (nnU-Net, autoPET or flat layout) instead of a phantom."
    ),
    spacing: float = typer.Option(4.0, min=0.5, max=8.0, help="Phantom voxel size in mm (paper: 2)."),
    dataset_id: int = typer.Option(501, min=1, max=999, help="nnU-Net dataset id."),
    name: str = typer.Option("PSMA", help="nnU-Net dataset name."),
    seed: int = typer.Option(0, min=0, help="Phantom and split seed."),
    test_fraction: float | None = typer.Option(
        None, min=0.0, max=0.9, help="Scans held out in imagesTs/labelsTs (default: the paper's 57/380)."
    ),
    pet_norm: str = typer.Option(
        "noNorm", help="PET channel name = nnU-Net normalisation: noNorm (SUV as is) or zscore."
    ),
    link: bool = typer.Option(False, help="Hard-link the --data-dir files instead of copying them."),
    workers: int = typer.Option(0, min=0, help="Phantom worker processes (0: one per CPU)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Write a cohort as an nnU-Net raw dataset: imagesTr/labelsTr (+ imagesTs/labelsTs), dataset.json, splits_final.json.

    Example: pcatools nnunet export-dataset $nnUNet_raw --n-cases 60 --spacing 4
    """
    from pcatools.nnunet.dataset import (  # deferred: start-up (see tests/test_imports.py)
        export_dataset as do_export,
    )

    try:
        ds = do_export(
            out, n_cases, data_dir=data_dir, spacing=spacing, dataset_id=dataset_id, name=name, seed=seed,
            test_fraction=test_fraction, pet_normalization=pet_norm, link=link,
            workers=None if workers == 0 else workers, progress=progress,
        )  # fmt: skip
    except (DataError, ValueError, OSError, ImportError) as err:
        raise _fail(err) from None

    info = json.loads((ds / "dataset.json").read_text())
    typer.echo(
        f"{ds}: {info['numTraining']} training case(s), {info['pcatools']['test_cases']} test case(s), "
        f"{info['pcatools']['folds']} folds; next: pcatools nnunet plan {dataset_id} --raw {out}"
    )


@app.command("plan")
def plan(
    dataset_id: int = typer.Argument(..., help="nnU-Net dataset id."),
    raw: Path | None = typer.Option(None, envvar="nnUNet_raw", help="nnU-Net raw folder."),
    preprocessed: Path | None = typer.Option(
        None, envvar="nnUNet_preprocessed", help="nnU-Net preprocessed folder."
    ),
    config: list[str] = typer.Option(["3d_fullres"], help="Configurations to preprocess; repeatable."),
    workers: int | None = typer.Option(None, min=1, help="Processes (default: CPUs, at most 8)."),
    verify: bool = typer.Option(True, help="nnU-Net's dataset integrity check first."),
    verbose: bool = typer.Option(False, help=_VERBOSE),
) -> None:
    """nnUNetv2_plan_and_preprocess through nnU-Net's API, keeping the exported patient-level folds.

    Example: pcatools nnunet plan 501 --raw raw --preprocessed preprocessed
    """
    from pcatools.nnunet.run import plan_and_preprocess  # deferred: start-up (see tests/test_imports.py)

    try:
        folder = plan_and_preprocess(
            dataset_id,
            raw=raw,
            preprocessed=preprocessed,
            configurations=config,
            workers=workers,
            verify=verify,
            verbose=verbose,
        )
    except _ERRORS as err:
        raise _fail(err) from None
    typer.echo(f"planned and preprocessed: {folder}{_log_note(folder, verbose)}")


@app.command("train")
def train(
    dataset: str = typer.Argument(..., help="Dataset id or DatasetNNN_Name."),
    configuration: str = typer.Argument(..., help="nnU-Net configuration, e.g. 3d_fullres."),
    fold: str = typer.Argument(..., help="Fold 0-4 or 'all'."),
    loss: str = typer.Option(
        "l1dfl", help=f"The loss of the trainer: dice_ce (nnU-Net's own nnUNetTrainer), {loss_help()}"
    ),
    device: str | None = typer.Option(
        None, help="cpu, cuda or mps (default: cuda when available, else cpu)."
    ),
    epochs: int | None = typer.Option(None, min=1, help="num_epochs (nnU-Net: 1000)."),
    iterations: int | None = typer.Option(None, min=1, help="num_iterations_per_epoch (nnU-Net: 250)."),
    val_iterations: int | None = typer.Option(
        None, min=1, help="num_val_iterations_per_epoch (nnU-Net: 50)."
    ),
    validate: bool = typer.Option(True, help="nnU-Net's final validation of the fold after training."),
    continue_training: bool = typer.Option(False, "--continue", help="Resume from the latest checkpoint."),
    preprocessed: Path | None = typer.Option(
        None, envvar="nnUNet_preprocessed", help="nnU-Net preprocessed folder."
    ),
    results: Path | None = typer.Option(None, envvar="nnUNet_results", help="nnU-Net results folder."),
    workers: int | None = typer.Option(
        None, min=0, help="nnU-Net worker processes: augmentation (0: in process) and validation export."
    ),
    verbose: bool = typer.Option(False, help=_VERBOSE),
    progress: bool = typer.Option(True, help="Progress bars over the epochs and the final validation."),
) -> None:
    """Train one fold as nnUNetv2_train DATASET CONFIG FOLD -tr <trainer>, without touching nnU-Net's folder.

    Settings of the loss, passed where it takes them: PCATOOLS_NNUNET_BIN_WIDTH, PCATOOLS_NNUNET_GAMMA, PCATOOLS_NNUNET_CONVENTION.

    Example: pcatools nnunet train 501 3d_fullres 0 --loss l1dfl --device cpu --epochs 1 --iterations 5
    """
    _set_workers(workers)
    from pcatools.nnunet.run import train as do_train  # deferred: start-up (see tests/test_imports.py)

    try:
        model = do_train(
            dataset, configuration, fold, loss, device=device, epochs=epochs, iterations=iterations,
            val_iterations=val_iterations, validate=validate, continue_training=continue_training,
            preprocessed=preprocessed, results=results, workers=workers, verbose=verbose, progress=progress,
        )  # fmt: skip
    except _ERRORS as err:
        raise _fail(err) from None
    typer.echo(f"trained: {model / f'fold_{fold}'}{_log_note(model / f'fold_{fold}', verbose)}")


@app.command("predict")
def predict(
    model_dir: Path = typer.Argument(..., help="Trained model folder <Trainer>__<plans>__<configuration>."),
    images: Path = typer.Argument(..., help="Folder of <case>_0000/_0001.nii.gz images, e.g. imagesTs."),
    out: Path = typer.Argument(..., help="Prediction folder (created)."),
    fold: list[str] | None = typer.Option(
        None, help="Fold(s) to ensemble; repeatable (default: all trained)."
    ),
    checkpoint: str = typer.Option(
        "checkpoint_final.pth", help="checkpoint_final.pth or checkpoint_best.pth."
    ),
    device: str | None = typer.Option(
        None, help="cpu, cuda or mps (default: cuda when available, else cpu)."
    ),
    tta: bool = typer.Option(True, help="nnU-Net's mirroring test-time augmentation."),
    workers: int | None = typer.Option(
        None, min=1, help="Preprocessing/export processes (default: CPUs, at most 8)."
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
    verbose: bool = typer.Option(False, help=_VERBOSE),
) -> None:
    """nnUNetv2_predict with nnU-Net's predictor; finds the pcatools trainers without install-trainers.

    Example: pcatools nnunet predict $nnUNet_results/Dataset501_PSMA/nnUNetTrainerL1DFL__nnUNetPlans__3d_fullres $nnUNet_raw/Dataset501_PSMA/imagesTs preds/l1dfl
    """
    from pcatools.nnunet.run import predict as do_predict  # deferred: start-up (see tests/test_imports.py)

    try:
        folder = do_predict(
            model_dir, images, out, folds=fold or None, checkpoint=checkpoint, device=device, tta=tta,
            workers=workers, progress=progress, verbose=verbose,
        )  # fmt: skip
    except _ERRORS as err:
        raise _fail(err) from None
    n = len(list(folder.glob("*.nii.gz")))
    typer.echo(
        f"{n} prediction(s) in {folder}{_log_note(folder, verbose)}; evaluate: pcatools evaluate EVAL "
        f"--gt LABELS --pred NAME={folder}"
    )
