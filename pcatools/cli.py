"""The ``pcatools`` command line (typer). Each subcommand lives in ``pcatools.commands.<name>``."""

from __future__ import annotations

import typer

from pcatools import __version__
from pcatools.commands import convert, evaluate, nnunet, phantom, predict, study, train, view
from pcatools.reproducibility import hold_cpu_isa

app = typer.Typer(
    help="pcatools: L1-weighted Dice Focal Loss study toolkit for PSMA PET/CT lesion segmentation.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pcatools {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """pcatools command line."""
    # before any command imports torch: CPU runs add in the same order on every x86-64 CPU
    hold_cpu_isa()


for module in (convert, phantom, train, predict, study, evaluate, view):
    app.command(name=module.NAME, help=module.run.__doc__)(module.run)
app.add_typer(nnunet.app, name=nnunet.NAME)

if __name__ == "__main__":  # pragma: no cover
    app()
