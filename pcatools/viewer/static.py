"""The static fallback figure: the napari layers as matplotlib slices, for where there is no display.

A notebook on a server cannot open napari's window (:mod:`pcatools.viewer.display`); it draws the
same layers (:func:`pcatools.viewer.layers.build_layers`) here instead, same colormaps and windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from pcatools.data.case import Case
from pcatools.figures.inputs import plane_axes as _plane_axes
from pcatools.figures.inputs import project as _project
from pcatools.figures.style import figure_style
from pcatools.figures.style import new_mpl_figure as _new_mpl_figure
from pcatools.figures.style import overlay as _overlay
from pcatools.viewer.cases import lesion_slice, slice_mm
from pcatools.viewer.layer_style import BASE_LAYER_NAMES, L1_LAYER_NAMES
from pcatools.viewer.layers import build_layers

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure

__all__ = ["static_layers_figure"]

_PLANES = ("sagittal", "coronal", "axial")  # the slice across array axis 0, 1, 2 of a RAS case


@figure_style()  # the same picture whatever the process's rcParams hold
def static_layers_figure(
    case: Case,
    probs: np.ndarray | None = None,
    pred: np.ndarray | Mapping[str, np.ndarray] | None = None,
    bin_width: float = 0.1,
    axis: int = 1,
    index: int | None = None,
    suv_window: tuple[float, float] = (0.0, 10.0),
    ct_window: tuple[float, float] = (-160.0, 240.0),
    weights_of: Iterable[str] = (),
) -> matplotlib.figure.Figure:
    """The napari layers of :func:`~pcatools.viewer.layers.build_layers` as matplotlib slices, one panel per layer.

    Panels: ``PET (SUV)``, ``ground truth`` and each prediction (over the CT), and with ``probs``
    ``Delta |g - p|``, ``L1 bin index`` (bin 0 transparent over the CT, as in napari) and ``L1
    weights``, then the weights of each loss of ``weights_of``
    (:func:`~pcatools.losses.loss_weights`), each image with a colour bar; same colormaps
    and windows as the napari layers (the L1 weights on a log scale when they span more than two decades, as they usually do), in
    mm (x to the right, the other axis up). The slice is ``index`` along ``axis`` (default
    :func:`~pcatools.viewer.cases.lesion_slice`). This is what a notebook shows where there is no display, since
    napari cannot open a window there.
    """
    # for start-up time: the napari window needs no matplotlib (measured: 1-1.5 s of the 5-6 s that
    # `import pcatools.viewer` took on two loaded cores)
    from matplotlib.colors import (  # deferred: start-up (see tests/test_imports.py)
        ListedColormap,
        LogNorm,
        Normalize,
    )

    if axis not in (0, 1, 2):
        raise ValueError(f"static_layers_figure: expected axis 0, 1 or 2, found {axis!r}")
    layers = build_layers(
        case,
        pred,
        probs,
        bin_width=bin_width,
        suv_window=suv_window,
        ct_window=ct_window,
        weights_of=weights_of,
    )
    idx = lesion_slice(case, axis) if index is None else int(index)
    h_ax, v_ax = _plane_axes(axis)
    n_h, n_v = case.pet.shape[h_ax], case.pet.shape[v_ax]
    # outer edges of the first and last voxels
    extent = (
        slice_mm(case, h_ax, -0.5),
        slice_mm(case, h_ax, n_h - 0.5),
        slice_mm(case, v_ax, -0.5),
        slice_mm(case, v_ax, n_v - 0.5),
    )
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in layers}
    ct_data, ct_kw, _ = by_name[BASE_LAYER_NAMES[0]]
    ct2d = _project(ct_data, axis, idx, "slice")
    panels = [name for name in by_name if name != BASE_LAYER_NAMES[0]]
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    width_mm, height_mm = extent[1] - extent[0], extent[3] - extent[2]
    panel_w = 13.0 / ncols
    fig = _new_mpl_figure(13.0, nrows * (panel_w * height_mm / width_mm + 0.5))
    where = f"{_PLANES[axis]} slice {idx} ({'xyz'[axis]} = {slice_mm(case, axis, idx):.1f} mm)"
    fig.suptitle(f"{case.case_id}: {where}, bin width \u0393 = {bin_width:g}")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    for ax, name in zip(axes, panels, strict=False):
        data, kw, kind = by_name[name]
        plane = _project(data, axis, idx, "slice")
        ax.set_title(name)
        ax.set_xlabel(f"{'xyz'[h_ax]} (mm)")
        ax.set_ylabel(f"{'xyz'[v_ax]} (mm)")
        if kind == "image":
            lo, hi = kw["contrast_limits"]
            positive = data[data > 0]
            norm: Normalize
            if name == L1_LAYER_NAMES[2] and positive.size and hi > 100 * positive.min():
                # w = N / D spans decades (rare bins weigh far more): linear, all but one bin is dark
                norm = LogNorm(vmin=float(positive.min()), vmax=float(hi))
            else:
                norm = Normalize(vmin=lo, vmax=hi)
            im = ax.imshow(
                plane.T,
                origin="lower",
                extent=extent,
                cmap=kw["colormap"],
                norm=norm,
                interpolation="nearest",
            )
            fig.colorbar(im, ax=ax, shrink=0.8)
            continue
        ax.imshow(
            ct2d.T,
            origin="lower",
            extent=extent,
            cmap="gray",
            vmin=ct_kw["contrast_limits"][0],
            vmax=ct_kw["contrast_limits"][1],
            interpolation="nearest",
        )
        if name == L1_LAYER_NAMES[1]:
            n_bins = int(data.max()) + 1
            cmap = ListedColormap([(0, 0, 0, 0)] + [tuple(c) for c in _tab_colours(n_bins - 1)])
            im = ax.imshow(
                np.ma.masked_equal(plane.T, 0),
                origin="lower",
                extent=extent,
                cmap=cmap,
                vmin=-0.5,
                vmax=n_bins - 0.5,
                interpolation="nearest",
            )
            fig.colorbar(im, ax=ax, shrink=0.8, ticks=range(n_bins), label="bin k")
        else:
            _overlay(ax, plane > 0, extent, kw["colormap"][1], 0.6)
    return fig


def _tab_colours(n: int) -> np.ndarray:
    """``n`` RGBA colours of matplotlib's ``tab20``, cycled (distinct neighbouring bins)."""
    import matplotlib  # deferred: start-up (see tests/test_imports.py)

    rgba = np.asarray(matplotlib.colormaps["tab20"](np.arange(20)))
    return rgba[np.arange(max(n, 0)) % len(rgba)]
