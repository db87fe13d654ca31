"""Which checkpoint a run continues from, and the ``best.pt`` that does not belong to it.

The rules (module docstring of :mod:`pcatools.training.loop`, "Exact resume"): ``resume=True``
takes ``last.pt``, or ``last.prev.pt`` with a warning where ``last.pt`` is gone; a folder holding
an earlier run with nothing to continue from is refused, because starting at epoch 0 there would
overwrite its history without a word.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pcatools.training.checkpoint import CheckpointError, load_checkpoint, previous_path
from pcatools.training.run_files import REPLACED_DIR, earlier_run, set_aside

__all__ = ["resume_state", "set_aside_stale_best", "start_over_hint"]

log = logging.getLogger("pcatools.training")


def start_over_hint(run_dir: Path) -> str:
    """The end of every refusal to continue a run: how to start over instead."""
    return (
        f"start over with resume=False (pcatools train --resume no), which moves the earlier run's files to "
        f"{run_dir / REPLACED_DIR}/, or use another run folder"
    )


def resume_state(
    run_dir: Path, resume: bool | str | os.PathLike[str]
) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint a run continues from and its state, or ``(None, None)`` for a new run.

    ``resume=True`` takes ``last.pt``; where it is gone but ``last.prev.pt`` reads, that one, with a
    warning. A folder with an earlier run's history or checkpoints but nothing to continue from is
    refused: starting at epoch 0 there would overwrite its history without a word.
    """
    last = run_dir / "last.pt"
    prev = previous_path(last)
    if resume is False:
        return None, None
    if resume is True:
        if last.exists():
            return last, load_checkpoint(last, map_location="cpu", kind="last")
        if prev.is_file():
            try:
                state = load_checkpoint(prev, map_location="cpu", kind="last")
            except CheckpointError as err:
                raise CheckpointError(
                    f"{last} is missing and the previous checkpoint cannot be used ({str(err).rstrip('.')}); "
                    f"{start_over_hint(run_dir)}"
                ) from None
            log.warning(
                "%s is missing: continuing from the previous checkpoint %s (epoch %d)",
                last,
                prev,
                state["epoch"],
            )
            return prev, state
        found = earlier_run(run_dir)
        if found:
            raise CheckpointError(
                f"run folder {run_dir} holds an earlier run ({', '.join(found)}) but no last.pt or "
                f"last.prev.pt to continue from; {start_over_hint(run_dir)}"
            )
        return None, None
    if isinstance(resume, str) and resume == "prev":
        if not prev.is_file():
            raise FileNotFoundError(f"resume='prev' but {prev} does not exist")
        return prev, load_checkpoint(prev, map_location="cpu", kind="last")
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"resume={str(resume)!r}: checkpoint {path} does not exist")
    return path, load_checkpoint(path, map_location="cpu", kind="last")


def set_aside_stale_best(run_dir: Path, start_epoch: int) -> bool:
    """Move ``best.pt`` aside when it is not from the history being continued (an epoch after the
    checkpoint, or unreadable), so that a result never points at a model of an abandoned run.

    Returns whether it did; the weights of the checkpoint's best epoch are then gone (that
    ``best.pt`` replaced them), so the caller lets the next validation write a new ``best.pt``.
    """
    best = run_dir / "best.pt"
    if not best.is_file():
        return False
    try:
        epoch: int | None = int(load_checkpoint(best, map_location="cpu", kind="best")["epoch"])
    except CheckpointError:
        epoch = None
    if epoch is not None and epoch <= start_epoch:
        return False
    target = set_aside(run_dir, ["best.pt"])
    found = "unreadable" if epoch is None else f"from epoch {epoch}"
    log.warning(
        "%s is %s, after the checkpoint this run continues from (epoch %d): moved to %s; the next "
        "validation writes a new one",
        best,
        found,
        start_epoch,
        target,
    )
    return True
