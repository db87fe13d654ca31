"""`pcatools phantom` (placeholder until its owner fills it in)."""

from __future__ import annotations

import typer

NAME = "phantom"


def run() -> None:
    """Not implemented yet."""
    typer.echo("pcatools phantom: not implemented yet", err=True)
    raise typer.Exit(code=2)
