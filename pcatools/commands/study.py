"""`pcatools study`: the paper's experiment grid end to end."""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "study"


def run(
    run_dir: Path = typer.Argument(
        Path("runs/demo"), help="Run folder (re-running continues where it stopped)."
    ),
    profile: str = typer.Option(
        "demo", help="demo (2-core CPU, minutes), paper (the paper's settings, GPUs) or ci."
    ),
    data_dir: Path | None = typer.Option(
        None, help="autoPET / nnU-Net / flat dataset; default: synthetic cohort."
    ),
    seed: int = typer.Option(0, help="Seed of the cohort, the split and training."),
    epochs: int | None = typer.Option(None, help="Override the profile's epochs."),
    n_cases: int | None = typer.Option(None, help="Override the synthetic cohort size."),
    network: list[str] | None = typer.Option(None, help="Restrict to these networks (repeatable)."),
    loss: list[str] | None = typer.Option(None, help="Restrict to these losses (repeatable)."),
    workers: int | None = typer.Option(None, help="Data-loading workers."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    restart: bool = typer.Option(
        False,
        "--restart",
        help="Start over: move the run folder's models, predictions and results to RUN_DIR/replaced/<time>/ "
        "(needed to re-run a folder with other settings).",
    ),
) -> None:
    """Run the study grid (2 networks x 3 losses): split, train, predict, evaluate, statistics, figures.

    Re-running continues where a run stopped; with other settings than the run folder holds it is
    refused (listing them) unless --restart is given.
    """
    import time

    from pcatools.study import run_study
    from pcatools.training import CheckpointError
    from pcatools.training.run_files import RunBusyError

    start = time.perf_counter()
    try:
        result = run_study(
            run_dir,
            profile=profile,
            data_dir=data_dir,
            seed=seed,
            progress=progress,
            restart=restart,
            epochs=epochs,
            n_cases=n_cases,
            networks=tuple(network) if network else None,
            losses=tuple(loss) if loss else None,
            workers=workers,
        )
    except (CheckpointError, RunBusyError, ValueError, OSError, FloatingPointError) as err:
        # other settings than the run folder's, bad data, a model folder in use, a full disk: one line each
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    from pcatools.stats import table1_markdown

    typer.echo(table1_markdown(result.table1))
    typer.echo(f"\nStudy written to {result.run_dir} in {time.perf_counter() - start:.0f} s")
    for name, path in result.figures.items():
        typer.echo(f"  {name}: {path}")
