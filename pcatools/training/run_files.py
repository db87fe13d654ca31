"""The files of a training run folder that are not checkpoints: config, versions, split, history."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pcatools._atomic import write_text_atomic
from pcatools.data.manifest import write_manifest

__all__ = [
    "HISTORY_COLUMNS",
    "history_frame",
    "plain",
    "read_config",
    "versions",
    "write_history",
    "write_run_files",
]

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


def versions() -> dict[str, str]:
    """Versions of python, torch, CUDA/cuDNN, MONAI, numpy, pandas and pcatools, and the GPU names."""
    import monai
    import numpy
    import torch

    import pcatools

    out = {
        "python": platform.python_version(),
        "pcatools": pcatools.__version__,
        "torch": str(torch.__version__),
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "None",
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        out["gpus"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return {k: str(v) for k, v in out.items()}


def write_run_files(run_dir: Path, config: Mapping[str, Any], split: pd.DataFrame) -> None:
    """Write ``config.yaml`` (every argument of the run), ``versions.json`` and ``split.csv``."""
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(plain(dict(config)), sort_keys=False))
    write_text_atomic(run_dir / "versions.json", json.dumps(versions(), indent=2) + "\n")
    write_manifest(split, run_dir / "split.csv")


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.yaml`` of a run folder."""
    return dict(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()))


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> pd.DataFrame:
    """``history.csv``: one row per completed epoch (``val_dice`` empty where not validated)."""
    df = history_frame(history)
    write_text_atomic(run_dir / "history.csv", df.to_csv(index=False))
    return df


def history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    """The history records as a DataFrame with :data:`HISTORY_COLUMNS` (NaN where absent)."""
    rows = [{c: r.get(c, math.nan) for c in HISTORY_COLUMNS} for r in history]
    df = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return df.astype({"epoch": "int64"}) if len(df) else df
