"""`pcatools predict` (placeholder until its owner fills it in)."""

from __future__ import annotations

import typer

NAME = "predict"


def run() -> None:
    """Not implemented yet."""
    typer.echo("pcatools predict: not implemented yet", err=True)
    raise typer.Exit(code=2)
