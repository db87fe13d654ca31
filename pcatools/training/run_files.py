"""The files of a training run folder that are not checkpoints: config, versions, split, history;
the folder's lock, and setting an earlier run's files aside."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import math
import os
import platform
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

import pcatools
from pcatools._atomic import write_text_atomic
from pcatools.data.manifest import write_manifest
from pcatools.reproducibility import numerical_environment

if sys.platform == "win32":  # pragma: no cover - the run lock (_lock)
    import msvcrt
else:
    import fcntl

__all__ = [
    "HISTORY_COLUMNS",
    "LOCK_NAME",
    "RUN_OUTPUTS",
    "RunBusyError",
    "earlier_run",
    "history_frame",
    "plain",
    "read_config",
    "run_lock",
    "set_aside",
    "describe_differences",
    "setting_differences",
    "versions",
    "write_history",
    "write_run_files",
]

LOCK_NAME = "train.lock"
"""The lock file of a run folder (:func:`run_lock`)."""

RUN_OUTPUTS = (
    "last.pt",
    "last.prev.pt",
    "best.pt",
    "history.csv",
    "tensorboard",
    "config.yaml",
    "versions.json",
    "split.csv",
)
"""What a training run writes in its folder (:func:`set_aside` moves these when a run starts over)."""

RUN_RESULTS = ("last.pt", "last.prev.pt", "best.pt", "history.csv")
"""The files that hold a run's training (:func:`earlier_run`); the others are rewritten at every start."""

REPLACED_DIR = "replaced"
"""Sub-folder of a run folder that receives the files of runs started over (:func:`set_aside`)."""

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "val_dice",
    "val_cases",
    "steps",
    "samples",
    "time_s",
    "data_time_s",
    "compute_time_s",
)
"""The columns of ``history.csv``, one row per epoch, in this order."""


def plain(obj: Any) -> Any:
    """``obj`` with tuples as lists, paths as strings and numpy scalars as python numbers (YAML-safe).

    Examples
    --------
    >>> plain({"a": (1, 2), "b": {"c": (3.0,)}})
    {'a': [1, 2], 'b': {'c': [3.0]}}
    """
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        return obj.item()
    return obj


def setting_differences(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    keys: Iterable[str],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for each of ``keys`` whose values differ once made YAML-plain (:func:`plain`).

    ``defaults`` stand in for keys a side lacks (settings added after a run folder was written),
    so that such a folder still compares equal to a run with the default.

    Examples
    --------
    >>> setting_differences({"lr": 0.1, "size": (2, 2)}, {"lr": 0.2, "size": [2, 2]}, ["lr", "size"])
    {'lr': (0.1, 0.2)}
    """
    defaults = defaults or {}
    out = {}
    for key in keys:
        a, b = plain(old.get(key, defaults.get(key))), plain(new.get(key, defaults.get(key)))
        if a != b:
            out[key] = (a, b)
    return out


def describe_differences(differences: Mapping[str, tuple[Any, Any]]) -> str:
    """``{key: (old, new)}`` as one line for messages.

    Examples
    --------
    >>> describe_differences({"lr": (0.003, 0.001), "epochs": (2, 4)})
    'lr: 0.003 -> 0.001; epochs: 2 -> 4'
    """
    return "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differences.items())


def versions() -> dict[str, str]:
    """Versions of what a run's numbers depend on, for its ``versions.json``: python, pcatools, torch,
    MONAI, numpy, pandas and the platform; where torch is loaded (training, prediction) also CUDA,
    cuDNN, the GPU names and what CPU numbers depend on
    (:func:`pcatools.reproducibility.numerical_environment`).

    A package not loaded is read from its installed metadata, so that recording versions does not
    import torch (seconds) into commands that never use it, such as ``pcatools evaluate``.
    """
    out: dict[str, Any] = {"python": platform.python_version(), "pcatools": pcatools.__version__}
    for name in ("torch", "monai", "numpy", "pandas"):
        loaded = getattr(sys.modules.get(name), "__version__", None)
        try:
            out[name] = loaded or importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["platform"] = platform.platform()
    torch = sys.modules.get("torch")
    if torch is None:
        out["cuda"] = "not loaded"
        return {k: str(v) for k, v in out.items()}
    out["cuda"] = str(torch.version.cuda)
    out["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "None"
    out.update(numerical_environment())
    if torch.cuda.is_available():
        out["gpus"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return {k: str(v) for k, v in out.items()}


SPLIT_FILE = "split.csv"
"""The manifest a run trained on, written into its folder (``config.yaml`` names it as ``manifest``)."""


def write_run_files(run_dir: Path, config: Mapping[str, Any], split: pd.DataFrame) -> None:
    """Write ``config.yaml`` (every argument of the run), ``versions.json`` and ``split.csv``."""
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(plain(dict(config)), sort_keys=False))
    write_text_atomic(run_dir / "versions.json", json.dumps(versions(), indent=2) + "\n")
    write_manifest(split, run_dir / SPLIT_FILE)


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.yaml`` of a run folder."""
    return dict(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()))


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> pd.DataFrame:
    """``history.csv``: one row per completed epoch (``val_dice`` empty where not validated)."""
    df = history_frame(history)
    write_text_atomic(run_dir / "history.csv", df.to_csv(index=False))
    return df


def history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    """The history records as a DataFrame with :data:`HISTORY_COLUMNS`, then the columns callbacks
    added (:class:`~pcatools.training.callbacks.TrainCallback`), in the order they first appear; NaN
    where a record lacks one."""
    columns = list(dict.fromkeys([*HISTORY_COLUMNS, *(k for r in history for k in r)]))
    rows = [{c: r.get(c, math.nan) for c in columns} for r in history]
    df = pd.DataFrame(rows, columns=columns)
    return df.astype({"epoch": "int64"}) if len(df) else df


class RunBusyError(RuntimeError):
    """Another process is training in the run folder (the message names the folder and that process)."""


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the run folder's exclusive lock (``run_dir/train.lock``) while the block runs.

    Two runs writing one folder would interleave their checkpoints and history. The lock is an
    ``fcntl.flock`` (``msvcrt.locking`` on Windows) on the open file, which the operating system
    releases when the holder exits or is killed, so a lock left by a dead process never blocks.
    The file itself stays (removing it would race with the next run taking it); it holds the
    process id and host of the last holder, for the message.

    Raises
    ------
    RunBusyError
        Another open lock on the file (another process, or another ``train`` in this one).
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 (kept open for as long as the lock is held)
    try:
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            raise RunBusyError(
                f"run folder {run} is in use by another training ({holder}, lock {path}); wait for it to "
                f"finish or use another run folder"
            ) from None
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {stamp}")
        handle.flush()
        yield path
    finally:
        handle.close()  # closing the file releases the lock


def _lock(handle: Any) -> None:
    if sys.platform == "win32":  # pragma: no cover
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def earlier_run(run_dir: str | os.PathLike[str]) -> list[str]:
    """The names of :data:`RUN_RESULTS` present in ``run_dir``: empty where no run has trained there."""
    return [n for n in RUN_RESULTS if (Path(run_dir) / n).exists()]


def set_aside(run_dir: str | os.PathLike[str], names: Sequence[str] = RUN_OUTPUTS) -> Path | None:
    """Move the files ``names`` of ``run_dir`` (those that exist) into ``run_dir/replaced/<time>/``.

    A run that starts over in its folder keeps the earlier run's history and checkpoints there
    instead of overwriting them. Returns the folder they went to, or None when none existed.
    """
    run = Path(run_dir)
    present = [n for n in names if (run / n).exists()]
    if not present:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = run / REPLACED_DIR / stamp
    n = 1
    while target.exists():
        n += 1
        target = run / REPLACED_DIR / f"{stamp}-{n}"
    target.mkdir(parents=True)
    for name in present:
        os.replace(run / name, target / name)
    return target
