"""The napari window of a case: :func:`view_case` with its layers, the lesion dock and the bin-width slider.

The view opens coronal on the slice with the most lesion voxels; it checks for a display before
napari (and Qt) is imported (:func:`pcatools.viewer.display.require_display`), since Qt would
otherwise abort the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pcatools.viewer.cases import _load_mask, _nifti_dataobj, lesion_slice, load_target, slice_mm
from pcatools.viewer.display import require_display
from pcatools.viewer.layers import build_layers
from pcatools.viewer.lesions import _camera, add_lesion_dock
from pcatools.viewer.predictions import name_predictions
from pcatools.viewer.weights import _check_probs
from pcatools.viewer.widgets import bin_width_widget, show_l1_weights

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["SCREENSHOT_SIZE", "set_coronal", "view_case"]

SCREENSHOT_SIZE = (1500, 850)
"""Window size (width, height in pixels) of ``view_case(screenshot=...)``, for pictures that agree."""


def set_coronal(viewer: napari.Viewer) -> None:
    """Slice along y (array axis 1) and show x horizontally, z pointing up (a coronal view)."""
    viewer.dims.order = (1, 2, 0)
    _camera(viewer).orientation2d = ("up", "right")


def _named_preds(pred: Any) -> dict[str, Any] | None:
    """``{name: mask or path}`` of :func:`view_case`'s ``pred`` (see there), names checked."""
    if pred is None:
        return None
    if isinstance(pred, Mapping):
        return name_predictions(pred.items())
    if isinstance(pred, str | os.PathLike):
        return name_predictions([pred])
    if isinstance(pred, list | tuple):
        return name_predictions(pred)
    return {"prediction": pred}


def view_case(
    case_or_paths: Any,
    pred: Any = None,
    probs: Any = None,
    bin_width: float = 0.1,
    data_dir: str | os.PathLike[str] | None = None,
    suv_window: tuple[float, float] = (0.0, 10.0),
    show: bool = True,
    block: bool = True,
    screenshot: str | os.PathLike[str] | None = None,
    weights: bool = False,
    weights_of: Iterable[str] = (),
) -> napari.Viewer:
    """Open a case in napari with the PET, CT, masks, the L1 layers and the lesion dock.

    The view is coronal, on the slice with the most lesion voxels (:func:`~pcatools.viewer.cases.lesion_slice`), so
    that it opens on a lesion. Checks for a display first (:func:`~pcatools.viewer.display.require_display`, raises
    :class:`~pcatools.viewer.display.NoDisplayError`), since Qt would otherwise abort the process.

    Parameters
    ----------
    case_or_paths : Case, mapping of paths, folder or case id
        See :func:`~pcatools.viewer.cases.load_target`.
    pred : mask, path, ``{name: mask or path}`` or a list of ``NAME=PATH`` / paths, optional
        Predictions on the case grid, one labels layer each (names: :func:`~pcatools.viewer.predictions.name_predictions`; a
        single mask is called ``prediction``). The lesion dock says which detect each lesion.
    probs : array or path, optional
        Foreground probability map (e.g. ``pcatools predict --save-probs``); adds Delta / bins /
        weights and the bin-width slider.
    bin_width : float
        Initial Gamma.
    data_dir : path, optional
        Dataset root for a case id.
    show, block : bool
        Show the window; run the Qt event loop until it is closed (``napari.run()``).
    screenshot : path, optional
        Show the window at :data:`SCREENSHOT_SIZE`, write a PNG of it (frame, layer list and
        docks included) there and return without running the event loop (``block`` is
        ignored).
    weights : bool
        Open on the L1 weights (:func:`~pcatools.viewer.widgets.show_l1_weights`); needs ``probs``.
    weights_of : iterable of str
        Registered losses declaring voxel weights, one hidden layer ``"<label> weights"`` each
        (:func:`~pcatools.losses.loss_weights`); needs ``probs``.
    """
    if weights and probs is None:
        raise ValueError("view_case: weights=True needs probs (the foreground probability map)")
    losses = tuple(weights_of)
    if losses:
        from pcatools.losses import weighted_loss  # deferred: start-up (see tests/test_imports.py)

        losses = tuple(weighted_loss(loss) for loss in losses)
    if losses and probs is None:
        raise ValueError(f"view_case: weights_of={list(losses)} needs probs (the foreground probability map)")
    preds_in = _named_preds(pred)
    require_display()
    case = load_target(case_or_paths, data_dir)
    shape = case.pet.shape
    preds = (
        None if preds_in is None else {k: _load_mask(v, shape, f"pred {k!r}") for k, v in preds_in.items()}
    )
    p = None
    if probs is not None:
        if isinstance(probs, str | os.PathLike):
            probs = np.asarray(_nifti_dataobj(probs), dtype=np.float32)
        p = _check_probs(probs, shape)
    import napari  # deferred: start-up (see tests/test_imports.py)
    from napari.layers import Layer  # deferred: start-up (see tests/test_imports.py)

    viewer = napari.Viewer(title=f"pcatools: {case.case_id}", show=show or screenshot is not None)
    for data, kwargs, kind in build_layers(
        case, preds, p, bin_width=bin_width, suv_window=suv_window, weights_of=losses
    ):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    set_coronal(viewer)
    if case.label is not None:
        add_lesion_dock(viewer, case, preds)
    if p is not None:
        bin_width_widget(viewer, case, p, value=bin_width)
        if weights:
            show_l1_weights(viewer)
    viewer.dims.set_point(1, slice_mm(case, 1, lesion_slice(case, 1)))  # set_coronal slices along y
    if screenshot is not None:
        from qtpy.QtWidgets import QApplication  # deferred: start-up (see tests/test_imports.py)

        viewer.window.resize(*SCREENSHOT_SIZE)
        QApplication.processEvents()  # lays out the docks (absent from the picture otherwise)
    viewer.reset_view()
    if screenshot is not None:
        out = Path(screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(out), canvas_only=False, flash=False)
    elif show and block:
        napari.run()
    return viewer
