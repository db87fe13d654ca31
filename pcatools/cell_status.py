"""Each cell of a study grid's state, read from its model folder: not started, queued, training,
done or failed.

The folder already says most of it, so nothing else records it: ``train.lock`` is held while a
process trains there (:func:`~pcatools.training.run_files.run_lock`; the operating system frees it
when that process dies), ``config.yaml`` holds the epochs to train and ``history.csv`` one row per
finished epoch with its validation DSC. The one thing a model folder cannot say is which job was
given the cell; :mod:`pcatools.launcher` writes that beside the job's own files, as
``RUN_DIR/jobs/<cell key>.json`` (:func:`job_record`), and its log's last line is a failed cell's
reason.

States
------
``not started``
    No epoch finished, no lock held, no job given the cell (or its job ended without starting it).
``queued``
    A job was given the cell and has not ended, but the cell's lock is free: waiting in the queue
    or starting up.
``training``
    A process holds the cell's ``train.lock``; the detail says ``epoch k of n``.
``done``
    ``history.csv`` reaches the epochs of ``config.yaml``; the detail is the best validation DSC.
``failed``
    Started, not done, nobody holds the lock: the detail is the last line of its job's log (the
    error), or the epoch it stopped at where no job ran it.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from pcatools.training.run_files import LOCK_NAME

if sys.platform != "win32":  # lock_holder's flock (POSIX only; Windows has no fcntl)
    import fcntl

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pcatools.cells import Cell

__all__ = [
    "CELL_STATES",
    "JOBS_DIR",
    "MissingCellsError",
    "CellState",
    "cell_state",
    "format_status",
    "job_record",
    "job_result",
    "last_line",
    "last_log_line",
    "lock_holder",
    "model_dir",
    "study_seed",
    "study_status",
    "training_progress",
]

CELL_STATES = ("not started", "queued", "training", "done", "failed")
"""The states of a cell (module docstring), in the order a cell goes through them."""

JOBS_DIR = "jobs"
"""Sub-folder of a study run folder that holds the launcher's job files and ``<cell key>.json``."""


@dataclass(frozen=True)
class CellState:
    """The state of one cell and what explains it (``detail``)."""

    cell: Cell
    #: one of :data:`CELL_STATES`
    state: str
    #: ``epoch k of n``, ``best validation DSC 0.412``, a failed job's last log line
    detail: str = ""
    #: epochs finished and to train (0 where unknown)
    epoch: int = 0
    epochs: int = 0
    #: the best validation DSC of the history (NaN before the first validation)
    best_dice: float = math.nan
    #: the log of the job last given the cell, where one was
    log: Path | None = None

    def line(self) -> str:
        """One line for a status listing: name, state, detail, and the log where there is one."""
        where = f"  (log {self.log})" if self.log is not None and self.state in ("failed", "queued") else ""
        return f"{self.cell.name:<36} {self.state:<12} {self.detail}{where}".rstrip()


def study_seed(run_dir: str | os.PathLike[str]) -> int:
    """The study's own seed (``config.yaml`` ``seed``): a cell trained with it has no seed in its key."""
    config = Path(run_dir) / "config.yaml"
    try:
        return int(yaml.safe_load(config.read_text())["seed"])
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as err:
        raise ValueError(
            f"{config}: expected a study's config.yaml with a 'seed' ({type(err).__name__})"
        ) from None


def model_dir(run_dir: str | os.PathLike[str], cell: Cell, seed: int | None = None) -> Path:
    """``RUN_DIR/models/<cell key>``; ``seed`` is the study's seed (default: read from ``config.yaml``)."""
    run = Path(run_dir)
    return run / "models" / cell.key(study_seed(run) if seed is None else seed)


def job_record(run_dir: str | os.PathLike[str], key: str) -> dict[str, Any] | None:
    """The job last given the cell with folder name ``key`` (``RUN_DIR/jobs/<key>.json``), or None."""
    path = Path(run_dir) / JOBS_DIR / f"{key}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def lock_holder(folder: str | os.PathLike[str]) -> str | None:
    """Who holds ``folder/train.lock`` (its text: pid, host, since when), or None where nobody does.

    Tries the lock without waiting and lets it go at once; never creates the file. Not on Windows
    (returns None there).
    """
    path = Path(folder) / LOCK_NAME
    if sys.platform == "win32" or not path.is_file():  # pragma: no cover
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return handle.read().strip() or "an unknown process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (a progress bar's redraws split at ``\\r``), stripped."""
    lines = [s.strip() for s in text.replace("\r", "\n").splitlines() if s.strip()]
    return lines[-1] if lines else ""


def last_log_line(path: str | os.PathLike[str] | None) -> str:
    """The last non-empty line of a log file (:func:`last_line` of its last 64 kB), or ``""``."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))
            return last_line(handle.read().decode("utf-8", errors="replace"))
    except OSError:
        return ""


def job_result(path: str | os.PathLike[str]) -> tuple[str, Any] | None:
    """A job's result file as submitit writes it when the job ends: ``("success", value)`` or
    ``("error", traceback text)``; None where there is none yet (or it is being written)."""
    try:
        outcome, value = pickle.loads(Path(path).read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError):
        return None
    return str(outcome), value


def _job_ended(record: dict[str, Any], run: Path) -> bool:
    """Whether the job of ``record`` has ended: its result file exists, or (local jobs on this
    host) its process is gone. A SLURM job without a result counts as not ended."""
    if (run / record.get("result", "")).is_file() and record.get("result"):
        return True
    if record.get("launcher") == "local" and record.get("host") == socket.gethostname():
        try:
            os.kill(int(record["pid"]), 0)
        except (ProcessLookupError, KeyError, ValueError):
            return True
        except PermissionError:
            return False
    return False


def _job_error(record: dict[str, Any], run: Path) -> str:
    """A finished job's error as one line: its traceback's last line, or its log's."""
    result = job_result(run / record["result"]) if record.get("result") else None
    if result is not None and result[0] == "error" and last_line(str(result[1])):
        return last_line(str(result[1]))
    log = record.get("log")
    return last_log_line(run / log if log else None) or f"job {record.get('job_id')} ended without a result"


def training_progress(folder: str | os.PathLike[str]) -> tuple[int, int, float]:
    """``(epochs finished, epochs to train, best validation DSC)`` of a model folder, from its
    ``history.csv`` and ``config.yaml`` (0, 0 and NaN where they are not there yet)."""
    folder = Path(folder)
    epochs = 0
    if (folder / "config.yaml").is_file():
        try:
            epochs = int(yaml.safe_load((folder / "config.yaml").read_text())["epochs"])
        except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError):
            epochs = 0
    epoch, best = 0, math.nan
    try:
        history = pd.read_csv(folder / "history.csv")
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
        history = pd.DataFrame({"epoch": [], "val_dice": []})
    if len(history):
        epoch = int(history["epoch"].iloc[-1])
        dice = pd.to_numeric(history["val_dice"], errors="coerce")
        best = float(dice.max()) if dice.notna().any() else math.nan
    return epoch, epochs, best


def cell_state(run_dir: str | os.PathLike[str], cell: Cell, seed: int | None = None) -> CellState:
    """The state of one cell of the study in ``run_dir`` (module docstring); ``seed``: the study's."""
    run = Path(run_dir)
    folder = model_dir(run, cell, seed)
    record = job_record(run, folder.name)
    log = run / record["log"] if record and record.get("log") else None
    epoch, epochs, best = training_progress(folder)
    base = CellState(cell, "not started", epoch=epoch, epochs=epochs, best_dice=best, log=log)
    if epochs and epoch >= epochs:
        return replace(base, state="done", detail=f"best validation DSC {best:.3f}")
    if lock_holder(folder) is not None:
        return replace(base, state="training", detail=f"epoch {epoch} of {epochs}" if epochs else "starting")
    if record is not None and not _job_ended(record, run):
        return replace(base, state="queued", detail=f"{record.get('launcher')} job {record.get('job_id')}")
    if record is not None:  # its job ended, the cell not done: the job's error
        return replace(base, state="failed", detail=_job_error(record, run))
    if epoch > 0 or (folder / "last.pt").exists():
        detail = f"stopped after epoch {epoch} of {epochs}; no process holds its {LOCK_NAME}"
        return replace(base, state="failed", detail=detail)
    return base


class MissingCellsError(RuntimeError):
    """Cells of a study grid are not done where the grid's results need them all; the message
    lists each with its state (one line).

    Attributes: ``run_dir``, ``missing`` (their :class:`CellState`), ``trained`` (the cells a
    ``--cells`` run was asked for, None otherwise).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        missing: Sequence[CellState],
        n_cells: int,
        trained: Sequence[Cell] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.missing = list(missing)
        self.trained = None if trained is None else list(trained)
        listing = ", ".join(
            f"{s.cell.name} {s.state}" + (f" ({s.detail})" if s.detail else "") for s in missing
        )
        counted = f"{len(missing)} of {n_cells} cells are not done: {listing}"
        if trained is None:
            message = (
                f"study {self.run_dir}: {counted}; run it again to train them (each resumes from its last.pt), "
                f"or pass --allow-missing to analyse the {n_cells - len(missing)} that are"
            )
        else:
            names = ", ".join(c.name for c in trained)
            message = f"study {self.run_dir}: trained {names}; the results wait for the grid's other cells: {counted}"
        super().__init__(message)


def study_status(
    run_dir: str | os.PathLike[str], cells: Sequence[Cell], seed: int | None = None
) -> list[CellState]:
    """:func:`cell_state` of each cell, in the order given; ``seed``: the study's (default: read
    from ``config.yaml``)."""
    seed = study_seed(run_dir) if seed is None else seed
    return [cell_state(run_dir, cell, seed) for cell in cells]


def format_status(states: Sequence[CellState]) -> str:
    """The states as lines (:meth:`CellState.line`) and a count per state."""
    counts = {s: sum(c.state == s for c in states) for s in CELL_STATES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return "\n".join([*(c.line() for c in states), f"{len(states)} cells: {summary}"])
