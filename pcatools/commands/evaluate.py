"""`pcatools evaluate`: the paper's evaluation of any models' predictions against a ground truth."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import typer

from pcatools._docs import EVALUATE_PARAMETERS
from pcatools.data.errors import DataError

NAME = "evaluate"


def run(
    out: Path = typer.Argument(..., help="Evaluation folder to write (a previous one is replaced whole)."),
    gt: Path = typer.Option(..., help=EVALUATE_PARAMETERS["gt"]),
    pred: list[str] = typer.Option(..., help="NAME=DIR (repeatable): " + EVALUATE_PARAMETERS["pred"]),
    suv: Path | None = typer.Option(None, help=EVALUATE_PARAMETERS["suv"]),
    reference: str | None = typer.Option(None, help=EVALUATE_PARAMETERS["reference"]),
    criterion: str = typer.Option("suvmax", help=EVALUATE_PARAMETERS["criterion"]),
    label: int | None = typer.Option(None, help=EVALUATE_PARAMETERS["label"]),
    allow_missing: bool = typer.Option(False, help=EVALUATE_PARAMETERS["allow_missing"]),
    empty_cases: str = typer.Option("autopet", help=EVALUATE_PARAMETERS["empty_cases"]),
    connectivity: int = typer.Option(18, help=EVALUATE_PARAMETERS["connectivity"]),
    lesion_dice: str = typer.Option("union", help=EVALUATE_PARAMETERS["lesion_dice"]),
    panoptic: bool = typer.Option(False, help=EVALUATE_PARAMETERS["panoptic"]),
    patients: Path | None = typer.Option(None, help=EVALUATE_PARAMETERS["patients"]),
    workers: int | None = typer.Option(None, help=EVALUATE_PARAMETERS["workers"]),
    seed: int = typer.Option(0, help=EVALUATE_PARAMETERS["seed"]),
    progress: bool = typer.Option(True, help=EVALUATE_PARAMETERS["progress"]),
) -> None:
    """Evaluate predictions the paper's way: Table 1, Wilcoxon, scenarios, thresholds, Dmax groups, Figures 3-6."""
    from pcatools.evaluation import evaluate_folders  # deferred: start-up (see tests/test_imports.py)
    from pcatools.stats import table1_markdown  # deferred: start-up (see tests/test_imports.py)

    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the note below says which criterion was used
            result = evaluate_folders(
                out, gt, pred=pred, suv=suv, reference=reference, criterion=criterion, label=label,
                allow_missing=allow_missing, empty_cases=empty_cases, connectivity=connectivity,
                lesion_dice=lesion_dice, panoptic=panoptic, patients=patients, workers=workers,
                progress=progress, seed=seed,
            )  # fmt: skip
    except (DataError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    config = (result.run_dir / "evaluation.json").read_text()
    info = json.loads(config)
    if info["left_out"]:
        typer.echo(f"{len(info['left_out'])} case(s) left out (not in every folder): see {out / 'README.md'}")
    if result.criterion != criterion:
        typer.echo(f"note: without --suv, detection used the {result.criterion!r} rule")
    typer.echo(table1_markdown(result.table1, info.get("table1_notes", ())))
    typer.echo(
        f"\n{info['n_cases']} cases x {len(info['models'])} models evaluated into {result.run_dir} "
        f"in {time.perf_counter() - start:.0f} s"
    )
