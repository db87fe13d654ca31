"""napari inspection of a case: PET, CT, masks, the L1 norms, bins and weights, and any loss's voxel weights.

:func:`build_layers` returns plain napari *layer data tuples* ``(data, kwargs, layer_type)`` (no
napari import needed to build them); :func:`view_case` opens a viewer with them, a dock with the
ground-truth lesion table (:func:`add_lesion_dock`, click a row to jump to the lesion; one column
per prediction says whether it detects the lesion) and, when a probability map is given, a
bin-width slider (:func:`bin_width_widget`) that recomputes the Delta / bins / weights layers.
Several predictions (:func:`name_predictions`, or every model of a study: :func:`study_case`)
each get their own labels layer and colour. Where there is no display,
:func:`static_layers_figure` draws the same layers as matplotlib slices.

One concern per module:

- :mod:`~pcatools.viewer.display`: whether napari can open a window here (found without Qt);
- :mod:`~pcatools.viewer.layer_style`: the fixed layer names and colours;
- :mod:`~pcatools.viewer.cases`: a case's files, its geometry in mm, its masks;
- :mod:`~pcatools.viewer.predictions`: predictions by name, every model of a study's case;
- :mod:`~pcatools.viewer.weights`: the L1 layers (eq. 4-10) and any registered loss's voxel weights;
- :mod:`~pcatools.viewer.layers`: the layer data tuples of a case;
- :mod:`~pcatools.viewer.lesions`: the lesion table and its dock;
- :mod:`~pcatools.viewer.widgets`: the bin-width slider and the weights view;
- :mod:`~pcatools.viewer.window`: :func:`view_case`, the napari window;
- :mod:`~pcatools.viewer.static`: the static fallback figure.

:func:`loss_weights`, :func:`weighted_loss` and :func:`weighted_losses` are offered here too, from
:mod:`pcatools.losses.voxel_weights` on first use (they need torch; the display checks do not).
"""

from __future__ import annotations

from pcatools._lazy import lazy_exports
from pcatools.viewer.cases import lesion_slice, load_target, physical_kwargs, resolve_case_paths, slice_mm
from pcatools.viewer.display import (
    NO_DISPLAY_HINT,
    NoDisplayError,
    display_available,
    display_problem,
    require_display,
)
from pcatools.viewer.layer_style import (
    BASE_LAYER_NAMES,
    GT_COLORMAP,
    L1_LAYER_NAMES,
    PRED_COLORMAP,
    LayerData,
    pred_colour,
)
from pcatools.viewer.layers import build_layers
from pcatools.viewer.lesions import (
    add_lesion_dock,
    detection_column,
    jump_to_lesion,
    lesion_table,
    lesion_table_widget,
    lesion_world_centroid,
)
from pcatools.viewer.predictions import name_predictions, study_case
from pcatools.viewer.static import static_layers_figure
from pcatools.viewer.weights import l1_layers, weight_layer_name
from pcatools.viewer.widgets import bin_width_widget, show_l1_weights, update_l1_layers
from pcatools.viewer.window import SCREENSHOT_SIZE, set_coronal, view_case

__all__ = [
    "LayerData",
    "BASE_LAYER_NAMES",
    "L1_LAYER_NAMES",
    "GT_COLORMAP",
    "PRED_COLORMAP",
    "NO_DISPLAY_HINT",
    "SCREENSHOT_SIZE",
    "NoDisplayError",
    "display_problem",
    "display_available",
    "require_display",
    "pred_colour",
    "name_predictions",
    "study_case",
    "lesion_slice",
    "slice_mm",
    "static_layers_figure",
    "physical_kwargs",
    "l1_layers",
    "loss_weights",
    "weighted_loss",
    "weighted_losses",
    "weight_layer_name",
    "build_layers",
    "detection_column",
    "lesion_table",
    "lesion_world_centroid",
    "jump_to_lesion",
    "lesion_table_widget",
    "add_lesion_dock",
    "update_l1_layers",
    "bin_width_widget",
    "show_l1_weights",
    "resolve_case_paths",
    "load_target",
    "set_coronal",
    "view_case",
]

#: names defined outside the viewer (they import torch), imported on first use (PEP 562)
_LAZY = {
    "loss_weights": "pcatools.losses.voxel_weights",
    "weighted_loss": "pcatools.losses.voxel_weights",
    "weighted_losses": "pcatools.losses.voxel_weights",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
