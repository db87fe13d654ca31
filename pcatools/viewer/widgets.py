"""napari widgets: the bin-width slider that recomputes the weight layers, and the weights view.

Everything here needs a napari viewer (and so a display, :mod:`pcatools.viewer.display`); the
layer data come from :mod:`pcatools.viewer.weights`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pcatools.data.case import Case
from pcatools.loss_registry import accepts
from pcatools.viewer.cases import _check_case, physical_kwargs
from pcatools.viewer.layer_style import BASE_LAYER_NAMES, L1_LAYER_NAMES
from pcatools.viewer.weights import _check_probs, _l1_layer_tuples, _loss_weight_tuples, l1_layers

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["bin_width_widget", "show_l1_weights", "update_l1_layers"]


def update_l1_layers(
    viewer: napari.Viewer, case: Case, probs: np.ndarray, bin_width: float
) -> dict[str, np.ndarray]:
    """Recompute the Delta / bin index / weights layers of ``viewer`` for a new bin width.

    Layers missing from the viewer are added (hidden); existing ones get new data (and, for the
    weights, new contrast limits). A loss's weight layer already in the viewer
    (:func:`pcatools.losses.loss_weights`) is recomputed too when its loss takes
    ``bin_width``. Returns the L1 arrays (see :func:`~pcatools.viewer.weights.l1_layers`).
    """
    from napari.layers import Layer  # deferred: start-up (see tests/test_imports.py)

    case = _check_case(case)
    if case.label is None:
        raise ValueError("update_l1_layers: the case has no ground truth label")
    p = _check_probs(probs, case.pet.shape)
    l1 = l1_layers(case.label, p, bin_width)
    geo = physical_kwargs(case)
    shown = [layer.metadata.get("loss") for layer in viewer.layers]
    redo = [loss for loss in shown if loss and accepts(loss, "bin_width")]
    for data, kwargs, kind in [
        *_l1_layer_tuples(l1, geo, bin_width),
        *_loss_weight_tuples(case.label, p, redo, geo, bin_width),
    ]:
        name = kwargs["name"]
        if name in viewer.layers:
            layer = viewer.layers[name]
            layer.data = data
            layer.metadata["bin_width"] = bin_width
            if kind == "image" and name != L1_LAYER_NAMES[0]:
                layer.contrast_limits = kwargs["contrast_limits"]
        else:
            viewer.add_layer(Layer.create(data, kwargs, kind))
    return l1


def bin_width_widget(
    viewer: napari.Viewer,
    case: Case,
    probs: np.ndarray,
    value: float = 0.1,
    min_width: float = 0.01,
    max_width: float = 0.5,
    add_dock: bool = True,
) -> Any:
    """A magicgui slider for the bin width Gamma that recomputes the L1 layers (eq. 4-10).

    Returns the magicgui ``FunctionGui``; calling it (``widget(bin_width=0.2)``) or moving the
    slider runs :func:`update_l1_layers`. Docked on the right when ``add_dock``.
    """
    from magicgui import magicgui  # deferred: start-up (see tests/test_imports.py)

    @magicgui(
        auto_call=True,
        bin_width={
            "widget_type": "FloatSlider",
            "min": min_width,
            "max": max_width,
            "step": 0.01,
            "label": "bin width \u0393",
        },
    )
    def l1_bin_width(bin_width: float = value) -> None:
        update_l1_layers(viewer, case, probs, bin_width)

    if add_dock:
        viewer.window.add_dock_widget(l1_bin_width, name="L1 bin width", area="right")
    return l1_bin_width


def show_l1_weights(viewer: napari.Viewer) -> None:
    """Put the ``L1 weights`` layer on view: visible, translucent over the CT, with its colour bar.

    PET is hidden (tick it back on in the layer list), so that the weights are read against
    anatomy rather than against another hot colormap; this is the README's picture.
    """
    weights = viewer.layers[L1_LAYER_NAMES[2]]
    weights.visible, weights.blending, weights.opacity = True, "translucent", 0.6
    weights.colorbar.visible = True
    viewer.layers[BASE_LAYER_NAMES[1]].visible = False
