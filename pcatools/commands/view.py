"""`pcatools view` (placeholder until its owner fills it in)."""

from __future__ import annotations

import typer

NAME = "view"


def run() -> None:
    """Not implemented yet."""
    typer.echo("pcatools view: not implemented yet", err=True)
    raise typer.Exit(code=2)
