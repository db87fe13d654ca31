"""What every figure shares in look: the GT / prediction colours, panel letters and drawing helpers.

Names, labels, colours and order of networks and losses come from :mod:`pcatools.vocabulary`;
this module holds only what is not a name: the mask colours, the letters of the panels, the
matplotlib figure every static renderer starts from, and the image / mask layers that Figures 2
and 3 (and :func:`pcatools.viewer.static_layers_figure`) draw in plotly and matplotlib alike.
Image layers show array axes as stored (no reorientation), in mm, the second drawn axis up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure

__all__ = [
    "GT_COLOR",
    "PRED_COLOR",
    "PANEL",
    "figure_style",
    "new_mpl_figure",
    "centres",
    "auto_window",
    "image_heatmap",
    "mask_heatmap",
    "overlay",
]

GT_COLOR = "#00A000"
"""Ground truth: green."""
PRED_COLOR = "#D62728"
"""Prediction: red."""
PANEL = "abcdefghijklmnopqrstuvwxyz"
"""Panel letters, ``(a)``, ``(b)``, ... in drawing order."""


@contextmanager
def figure_style() -> Iterator[None]:
    """Draw inside matplotlib's default style, whatever the process's ``rcParams`` hold.

    Every static figure of pcatools is drawn and saved inside it (also usable as a decorator),
    so the same data give the same PNG in any process: a library that restyles matplotlib
    globally on its way (nnU-Net's progress plot calls ``seaborn.set(font_scale=2.5)``) no
    longer changes our figures' fonts and frames.

    Examples
    --------
    >>> import matplotlib
    >>> with matplotlib.rc_context({"axes.titlesize": 40}), figure_style():
    ...     matplotlib.rcParams["axes.titlesize"]
    'large'
    """
    import matplotlib.style  # deferred: start-up (see tests/test_imports.py)

    with matplotlib.style.context("default"):
        yield


def new_mpl_figure(width_in: float, height_in: float) -> matplotlib.figure.Figure:
    """A headless matplotlib Figure (no pyplot state), 100 dpi, constrained layout."""
    from matplotlib.figure import Figure  # deferred: start-up (see tests/test_imports.py)

    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def centres(n: int, s: float) -> np.ndarray:
    """Positions in mm of the centres of ``n`` voxels of size ``s``.

    Examples
    --------
    >>> centres(3, 2.0).tolist()
    [1.0, 3.0, 5.0]
    """
    return (np.arange(n) + 0.5) * s


def auto_window(img: np.ndarray, window: tuple[float, float] | None) -> tuple[float, float]:
    """``window`` checked, or by default (min, 99.5th percentile) of ``img``."""
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
        if not hi > lo:
            raise ValueError(f"window: expected (low, high) with high > low, found {window!r}")
        return lo, hi
    lo = float(np.min(img))
    hi = float(np.percentile(img, 99.5))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def mask_heatmap(
    mask2d: np.ndarray, x: np.ndarray, y: np.ndarray, color: str, alpha: float, name: str, **kw: Any
) -> Any:
    """A 2-D mask ``[horizontal, vertical]`` as a plotly heatmap: ``color`` where set, transparent elsewhere."""

    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return go.Heatmap(
        z=mask2d.T.astype(np.uint8),
        x=x,
        y=y,
        zmin=0,
        zmax=1,
        showscale=False,
        name=name,
        colorscale=[[0.0, "rgba(0,0,0,0)"], [1.0, f"rgba({r},{g},{b},{alpha})"]],
        hoverinfo="skip",
        **kw,
    )


def image_heatmap(
    img2d: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    window: tuple[float, float],
    name: str,
    reverse: bool,
    **kw: Any,
) -> Any:
    """A 2-D image ``[horizontal, vertical]`` as a grey plotly heatmap (inverted with ``reverse``)."""

    return go.Heatmap(
        z=img2d.T,
        x=x,
        y=y,
        zmin=window[0],
        zmax=window[1],
        colorscale="gray",
        reversescale=reverse,
        showscale=False,
        name=name,
        hovertemplate="%{x:.0f} mm, %{y:.0f} mm: %{z:.2f}<extra></extra>",
        **kw,
    )


def overlay(
    ax: Any, mask2d: np.ndarray, extent: tuple[float, float, float, float], color: str, alpha: float
) -> None:
    """Draw a 2-D mask ``[horizontal, vertical]`` on a matplotlib axis in ``color`` (nothing if empty)."""
    from matplotlib.colors import ListedColormap  # deferred: start-up (see tests/test_imports.py)

    if mask2d.any():
        ax.imshow(
            np.ma.masked_where(~mask2d.T, mask2d.T.astype(np.uint8)),
            origin="lower",
            extent=extent,
            cmap=ListedColormap([color]),
            alpha=alpha,
            interpolation="nearest",
            vmin=0,
            vmax=1,
        )
