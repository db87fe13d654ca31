"""nnU-Net's three folders (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``), set for a while.

nnU-Net reads its folders from ``os.environ`` when it uses them (and its spawned workers inherit
them), so the pipeline (:mod:`pcatools.nnunet.run`) and a standalone trainer
(:mod:`pcatools.nnunet.trainers`) both set them here; this module imports neither nnU-Net nor
torch, so that both can use it without importing each other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PATH_VARIABLES", "nnunet_paths", "required_folder"]

PATH_VARIABLES = {"raw": "nnUNet_raw", "preprocessed": "nnUNet_preprocessed", "results": "nnUNet_results"}
"""Folder role -> the environment variable nnU-Net reads it from."""


@contextlib.contextmanager
def nnunet_paths(
    raw: str | os.PathLike[str] | None = None,
    preprocessed: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    **extra: str | None,
) -> Iterator[None]:
    """Set nnU-Net's folder variables (and ``extra`` variables) for the duration; ``None`` keeps the current value.

    nnU-Net reads them from ``os.environ`` when it uses them (and its spawned workers inherit
    them), so setting them here is enough.
    """
    values = {
        PATH_VARIABLES[k]: v for k, v in (("raw", raw), ("preprocessed", preprocessed), ("results", results))
    }
    values.update(extra)
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is not None:
                os.environ[key] = str(Path(value).resolve()) if key in PATH_VARIABLES.values() else str(value)
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def required_folder(var: str) -> Path:
    """The folder of nnU-Net variable ``var`` (e.g. ``nnUNet_raw``); a one-line error naming the option when unset.

    Examples
    --------
    >>> with nnunet_paths(results="/tmp/r"):
    ...     required_folder("nnUNet_results").name
    'r'
    """
    value = os.environ.get(var)
    if not value:
        raise ValueError(f"{var} is not set: pass the folder (--{var.split('_')[1]}) or export {var}")
    return Path(value)
