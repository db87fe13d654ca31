"""The viewer's fixed layer names and colours, one place for napari and the static figure alike."""

from __future__ import annotations

import colorsys
from typing import Any

__all__ = ["BASE_LAYER_NAMES", "GT_COLORMAP", "L1_LAYER_NAMES", "LayerData", "PRED_COLORMAP", "pred_colour"]

LayerData = tuple[Any, dict[str, Any], str]
"""One napari layer data tuple: ``(data, kwargs, layer_type)``."""

GT_COLORMAP: dict[Any, str] = {1: "#00c000", None: "transparent"}
"""Label colours of the ground-truth layer (green)."""
PRED_COLORMAP: dict[Any, str] = {1: "#ff2020", None: "transparent"}
"""Label colours of a prediction layer (red)."""
L1_LAYER_NAMES = ("Delta |g - p|", "L1 bin index", "L1 weights")
"""Names of the L1 layers (eq. 4-10): Delta, the bin index and the weights."""
BASE_LAYER_NAMES = ("CT", "PET (SUV)", "ground truth")
"""Names of the layers every case has: CT, PET and (where labelled) the ground truth."""


_PRED_COLOURS = ("#ff2020", "#ff9900", "#ff00ff", "#00c8ff", "#ffff00", "#8080ff")


def pred_colour(index: int) -> str:
    """Colour of the ``index``-th prediction layer: six fixed colours, then evenly spread hues.

    The fixed colours avoid the ground truth's green; beyond them the hue steps by the golden
    angle so that any number of predictions get distinct colours.

    Examples
    --------
    >>> pred_colour(0), pred_colour(1), len({pred_colour(i) for i in range(20)})
    ('#ff2020', '#ff9900', 20)
    """
    if index < 0:
        raise ValueError(f"pred_colour: expected an index >= 0, found {index}")
    if index < len(_PRED_COLOURS):
        return _PRED_COLOURS[index]
    hue = ((index - len(_PRED_COLOURS)) * 0.381966 + 0.05) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
