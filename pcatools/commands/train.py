"""`pcatools train` (placeholder until its owner fills it in)."""

from __future__ import annotations

import typer

NAME = "train"


def run() -> None:
    """Not implemented yet."""
    typer.echo("pcatools train: not implemented yet", err=True)
    raise typer.Exit(code=2)
