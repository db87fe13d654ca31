"""Checks of the figures' inputs (per-case tables, 3-D volumes) and the 2-D views drawn from volumes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["require_columns", "as_volume", "check_axis", "project", "plane_axes"]


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise unless ``df`` is a DataFrame with every column of ``columns``; ``what`` names it."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, found {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {missing}; expected at least {list(columns)}, found {list(df.columns)}"
        )


def as_volume(arr: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``arr`` as a 3-D array (of ``shape`` when given), or a ValueError naming ``name``."""
    a = np.asarray(arr)
    if a.ndim != 3:
        raise ValueError(f"{name}: expected a 3-D array (x, y, z), found shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (same grid as the other inputs), found {a.shape}")
    return a


def check_axis(axis: int) -> int:
    """``axis`` if it is 0, 1 or 2 (the array axis a view drops)."""
    if axis not in (0, 1, 2):
        raise ValueError(f"axis: expected 0, 1 or 2 (1 = coronal for RAS arrays), found {axis!r}")
    return axis


def project(vol: np.ndarray, axis: int, index: int | None, mode: str) -> np.ndarray:
    """2-D view of a volume: ``max`` (MIP) / ``any`` along ``axis``, or the slice ``index``.

    Examples
    --------
    >>> v = np.arange(8).reshape(2, 2, 2)
    >>> project(v, 0, None, "max").tolist(), project(v, 0, 0, "max").tolist()
    ([[4, 5], [6, 7]], [[0, 1], [2, 3]])
    """
    if index is not None:
        n = vol.shape[axis]
        if not 0 <= index < n:
            raise ValueError(f"slice: expected an index in [0, {n - 1}] along axis {axis}, found {index}")
        return np.take(vol, index, axis=axis)
    return np.asarray(vol.any(axis=axis) if mode == "any" else vol.max(axis=axis))


def plane_axes(axis: int) -> tuple[int, int]:
    """The (horizontal, vertical) array axes left after dropping ``axis``.

    Examples
    --------
    >>> plane_axes(1)
    (0, 2)
    """
    a, b = (i for i in range(3) if i != axis)
    return a, b
