"""`pcatools convert` (placeholder until its owner fills it in)."""

from __future__ import annotations

import typer

NAME = "convert"


def run() -> None:
    """Not implemented yet."""
    typer.echo("pcatools convert: not implemented yet", err=True)
    raise typer.Exit(code=2)
