"""`pcatools study` (placeholder until its owner fills it in)."""

from __future__ import annotations

import typer

NAME = "study"


def run() -> None:
    """Not implemented yet."""
    typer.echo("pcatools study: not implemented yet", err=True)
    raise typer.Exit(code=2)
