"""Checkpoints: atomic writes, a kept previous copy, RNG states, and clear errors on corrupt files.

A training run folder holds

``last.pt``
    Everything needed to continue exactly: model, optimizer, scheduler, AMP scaler, python /
    numpy / torch (and CUDA) RNG states, completed epochs, best metric and the history.
``last.prev.pt``
    The ``last.pt`` before the most recent save. Each save writes a temporary file beside the
    target, then renames the old ``last.pt`` to ``last.prev.pt`` and the new file onto
    ``last.pt`` (both ``os.replace``, atomic on POSIX). A crash at any moment therefore leaves at
    least one complete checkpoint under a final name.
``best.pt``
    Model weights and config of the epoch with the highest validation DSC (for inference).

Policy on a corrupt ``last.pt`` (decided here, documented in :func:`pcatools.training.train`):
loading raises :class:`CheckpointError` naming the file and pointing at ``last.prev.pt``; it
never silently falls back. ``train(..., resume="prev")`` continues from ``last.prev.pt`` when the
user asks for it; ``resume=False`` starts over. A ``last.pt`` that is gone (not corrupt) is
replaced by a readable ``last.prev.pt`` with a warning (:mod:`pcatools.training.loop`).

A checkpoint that cannot be written (disk full) raises :class:`CheckpointWriteError`, one line
naming the file, and leaves the file it would have replaced as it was.

Checkpoints are plain dicts of tensors, numbers, strings, lists and tuples, so they load with
``torch.load(weights_only=True)`` (no arbitrary code runs when a checkpoint is opened).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pcatools._atomic import atomic_path
from pcatools.training.run_files import versions

if TYPE_CHECKING:  # pragma: no cover - for annotations only
    from pcatools.training.callbacks import TrainState

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointWriteError",
    "capture_rng_state",
    "load_checkpoint",
    "previous_path",
    "restore_rng_state",
    "restore_run",
    "save_checkpoint",
    "save_run",
]

CHECKPOINT_FORMAT = "pcatools-checkpoint/1"
"""The format tag every checkpoint carries, so that a reader refuses another format by name."""
_REQUIRED = {
    "last": ("model", "optimizer", "scheduler", "scaler", "rng", "epoch", "config", "history"),
    "best": ("model", "epoch", "config"),
}


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or is not a pcatools checkpoint (the message names it)."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint cannot be written (disk full, folder not writable); the file it would replace is kept.

    An ``OSError`` as well, since that is what a failed write is; torch reports one as a
    ``RuntimeError`` from its zip writer (``inline_container.cc``), which names neither the file nor
    the cause.
    """


def _first_line(err: BaseException) -> str:
    """The cause of ``err`` in one line; for torch's ``weights_only`` refusal, its reason (the first
    line there only advises ``weights_only=False``, which must not be done with a file one does not trust)."""
    text = str(err).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = " ".join(text.split(marker, 1)[1].split("Check the documentation")[0].split())
        return f"not loadable with weights_only=True: {detail.split('. Please use')[0]}"
    return text.splitlines()[0] if text else ""


def previous_path(path: str | os.PathLike[str]) -> Path:
    """Where the copy kept before the latest save lives: ``last.pt`` -> ``last.prev.pt``.

    Examples
    --------
    >>> previous_path("runs/a/last.pt").as_posix()
    'runs/a/last.prev.pt'
    """
    p = Path(path)
    return p.with_name(f"{p.stem}.prev{p.suffix}")


def capture_rng_state() -> dict[str, Any]:
    """The python, numpy, torch and CUDA RNG states as a ``weights_only``-loadable dict."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]  # noqa: NPY002 (the global state is what we save)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states only where CUDA is in use)."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002 (restores the global state)
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_checkpoint(
    state: dict[str, Any], path: str | os.PathLike[str], keep_previous: bool = True, verify: bool = True
) -> Path:
    """Write ``state`` to ``path`` atomically; keep the file it replaces as :func:`previous_path`.

    Parameters
    ----------
    state
        The checkpoint dict (``format`` is added).
    path
        Target file (``.pt``).
    keep_previous
        Rename an existing ``path`` to ``<stem>.prev.pt`` just before the new file takes its name.
    verify
        Read the temporary file back with ``torch.load(weights_only=True)`` before it replaces
        anything, so that a file the loader would reject (a short write, a type that is not
        allowed) never takes the place of a good checkpoint.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CheckpointWriteError
        The file cannot be written (disk full, folder not writable): one line naming it.
    CheckpointError
        The file written does not read back.
    """
    final = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, **state}
    try:
        with atomic_path(final) as tmp:
            torch.save(payload, tmp)
            if verify:
                try:
                    torch.load(tmp, map_location="cpu", weights_only=True)
                except Exception as err:
                    raise CheckpointError(
                        f"the checkpoint just written for {final} does not read back ({type(err).__name__}: "
                        f"{_first_line(err)}); {final} is left as it was"
                    ) from err
            if keep_previous and final.exists():
                os.replace(final, previous_path(final))
    except CheckpointError:
        raise
    except (RuntimeError, OSError) as err:  # torch's zip writer reports a full disk as a RuntimeError
        raise CheckpointWriteError(
            f"cannot write checkpoint {final}: disk full or not writable ({type(err).__name__}: "
            f"{_first_line(err)}); {final} is left as it was"
        ) from err
    return final


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", kind: str | None = None
) -> dict[str, Any]:
    """Read a pcatools checkpoint, with a clear error where the file is missing or corrupt.

    Parameters
    ----------
    path
        The ``.pt`` file.
    map_location
        Device for the tensors.
    kind
        ``"last"`` (resumable state) or ``"best"`` (weights + config): check the keys it needs;
        ``None`` accepts either.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        The file cannot be unpickled (truncated, overwritten, not a torch file) or lacks the
        keys of a pcatools checkpoint. The message names the file and the previous copy, if any.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    prev = previous_path(p)
    hint = (
        f" The previous good checkpoint is kept at {prev}: pass resume='prev' (pcatools train --resume prev) "
        f"to continue from it, or resume=False (--resume no) to start over."
        if prev.is_file()
        else ""
    )
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {p} is corrupt or unreadable ({type(err).__name__}: {_first_line(err)}).{hint}"
        ) from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{p} is not a pcatools checkpoint: expected format {CHECKPOINT_FORMAT!r}, found {found!r}.{hint}"
        )
    needed = _REQUIRED.get(kind or state.get("kind", "best"), _REQUIRED["best"])
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {p} lacks {missing} (kind {state.get('kind')!r}).{hint}")
    return state


def save_run(state: TrainState, improved: bool) -> None:
    """The checkpoints of the epoch ``state`` has just trained, in ``state.run_dir``: ``best.pt``
    (weights, config, versions) when ``improved``, then ``last.pt`` (all :func:`restore_run` reads)."""
    if improved:
        save_checkpoint(
            {
                "kind": "best",
                "config": state.recorded,
                "model": state.model.state_dict(),
                "epoch": state.epoch,
                "best_metric": state.best_metric,
                "versions": versions(),
            },
            state.run_dir / "best.pt",
            keep_previous=False,
        )
    save_checkpoint(
        {
            "kind": "last",
            "config": state.recorded,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "scaler": state.scaler.state_dict(),
            "rng": capture_rng_state(),
            "epoch": state.epoch,
            "best_metric": state.best_metric,
            "best_epoch": state.best_epoch,
            "history": state.history,
        },
        state.run_dir / "last.pt",
    )


def restore_run(state: TrainState, saved: Mapping[str, Any]) -> None:
    """Put a ``last.pt`` (:func:`save_run`) back into ``state``: weights, optimiser, schedule, scaler,
    history, the best DSC so far and the RNG states, so that training continues exactly."""
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.scaler.load_state_dict(saved["scaler"])
    state.history = [dict(r) for r in saved["history"]]
    state.best_metric = float(saved.get("best_metric", math.nan))
    state.best_epoch = int(saved.get("best_epoch", 0))
    restore_rng_state(saved["rng"])
