"""Figure 2 (paper 2.7.1): the SUVmax true-positive rule drawn on a case.

The rule itself is :mod:`pcatools.metrics`' own: one 18-connected labelling of the case
(:func:`pcatools.metrics.components.components`), each lesion's SUVmax voxel
(:func:`pcatools.metrics.burden.lesion_suv`) and :func:`pcatools.metrics.detection.detect` with
``criterion="suvmax"``, so that the figure counts exactly what the study's tables count. This
module only projects the result to 2-D and draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pcatools.figures.inputs import as_volume, check_axis, plane_axes, project
from pcatools.figures.output import attach_static
from pcatools.figures.style import (
    GT_COLOR,
    PRED_COLOR,
    auto_window,
    centres,
    image_heatmap,
    mask_heatmap,
    new_mpl_figure,
    overlay,
)

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import plotly.graph_objects as go

__all__ = ["DetectionView", "figure2_data", "figure2"]

_LESION_COLUMNS = ["lesion_id", "status", "suvmax", "i", "j", "k", "u_mm", "v_mm", "in_view"]
_FP_COLUMNS = ["component_id", "volume_voxels", "i", "j", "k", "u_mm", "v_mm", "in_view"]


@dataclass
class DetectionView:
    """What Figure 2 draws: a 2-D view of a case with the SUVmax detection rule applied in 3-D.

    ``image``, ``gt`` and ``pred`` are 2-D arrays indexed ``[horizontal, vertical]`` (array axes
    ``axes``); ``lesions`` has one row per ground-truth lesion (``lesion_id``, ``status`` TP/FN,
    ``suvmax``, the SUVmax voxel ``i, j, k`` and its display position ``u_mm, v_mm``);
    ``false_positives`` one row per predicted component that overlaps no lesion (``component_id``,
    ``volume_voxels``, ``i, j, k`` of its SUVmax voxel, ``u_mm, v_mm``).
    """

    image: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    axes: tuple[int, int]
    spacing: tuple[float, float]
    lesions: pd.DataFrame
    false_positives: pd.DataFrame
    title: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def extent_mm(self) -> tuple[float, float]:
        return self.image.shape[0] * self.spacing[0], self.image.shape[1] * self.spacing[1]


def figure2_data(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray,
    axis: int = 1,
    slice: int | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> DetectionView:
    """Apply the SUVmax true-positive rule (section 2.7.1) to a case and project it to 2-D.

    A ground-truth lesion G_l is a true positive when its SUVmax voxel G_{l,SUVmax} lies in the
    prediction (G_{l,SUVmax} ∩ P_l ≠ 0), otherwise a false negative; a predicted component that
    overlaps no ground-truth voxel is a false positive. Components (18-connected), lesion numbers
    (C order of their first voxel), SUVmax voxels (ties: the first voxel in C order) and the rule
    are those of :mod:`pcatools.metrics` (:func:`~pcatools.metrics.components.components`,
    :func:`~pcatools.metrics.burden.lesion_suv`, :func:`~pcatools.metrics.detection.detect`), on
    ``gt > 0``, ``pred > 0`` and the SUV as float32. A false positive is marked at its own SUVmax
    voxel. The rule is evaluated in 3-D; only the drawing is 2-D (MIP along ``axis``, or slice
    ``slice``; in slice mode only lesions/components present in that slice are annotated).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((5, 5, 5), np.uint8); gt[1:3, 1:3, 1:3] = 1
    >>> suv = np.ones((5, 5, 5)); suv[2, 2, 2] = 9
    >>> pred = np.zeros_like(gt); pred[2, 2, 2] = 1
    >>> figure2_data(gt, pred, suv).counts
    {'TP': 1, 'FN': 0, 'FP': 0}
    """
    from pcatools.metrics.burden import (  # deferred: start-up (see tests/test_imports.py)
        gt_suv,
        lesion_suv,
        pred_component_suv,
        pred_suv,
    )
    from pcatools.metrics.components import (  # deferred: start-up (see tests/test_imports.py)
        check_spacing,
        components,
    )
    from pcatools.metrics.detection import detect  # deferred: start-up (see tests/test_imports.py)

    axis = check_axis(axis)
    gt_a = as_volume(gt, "gt")
    pred_a = as_volume(pred, "pred", gt_a.shape)
    suv_a = as_volume(suv, "suv", gt_a.shape).astype(np.float32, copy=False)
    sp = check_spacing(spacing)
    ua, va = plane_axes(axis)
    if slice is not None and not 0 <= slice < gt_a.shape[axis]:
        raise ValueError(
            f"slice: expected an index in [0, {gt_a.shape[axis] - 1}] along axis {axis}, found {slice}"
        )
    gt_b = gt_a > 0
    pred_b = pred_a > 0

    comp = components(gt_b, pred_b, sp)
    lesion = lesion_suv(comp, gt_suv(comp, suv_a))
    det = detect(comp, lesion.argmax, criterion="suvmax")
    fp_ids = np.flatnonzero(det.false_positive) + 1
    fp_argmax = pred_component_suv(comp, pred_suv(comp, suv_a)).argmax[fp_ids - 1]

    def in_view(coords: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Per component of ``ids``: does it have a voxel in the shown slice (always True for a MIP)?"""
        if slice is None:
            return np.ones(ids.size, dtype=bool)
        return np.isin(ids, labels[coords[:, axis] == slice])

    def place(pos: np.ndarray) -> dict[str, np.ndarray]:
        """Voxel indices ``i, j, k`` and the display position in mm of the voxel centres ``pos``."""
        return {
            "i": pos[:, 0],
            "j": pos[:, 1],
            "k": pos[:, 2],
            "u_mm": (pos[:, ua] + 0.5) * sp[ua],
            "v_mm": (pos[:, va] + 0.5) * sp[va],
        }

    lesion_ids = np.arange(1, comp.n_gt + 1, dtype=np.int64)
    lesions = pd.DataFrame(
        {
            "lesion_id": lesion_ids,
            "status": np.where(det.detected, "TP", "FN").astype(object),
            "suvmax": lesion.suvmax.astype(np.float64),
            **place(comp.gt_coords[lesion.argmax].reshape(-1, 3)),
            "in_view": in_view(comp.gt_coords, comp.gt_voxel_label, lesion_ids),
        },
        columns=_LESION_COLUMNS,
    )
    fps = pd.DataFrame(
        {
            "component_id": fp_ids.astype(np.int64),
            "volume_voxels": comp.pred_sizes[fp_ids].astype(np.int64),
            **place(comp.pred_coords[fp_argmax].reshape(-1, 3)),
            "in_view": in_view(comp.pred_coords, comp.pred_voxel_label, fp_ids),
        },
        columns=_FP_COLUMNS,
    )
    counts = {"TP": det.tp, "FN": det.fn, "FP": det.fp}
    view = "MIP" if slice is None else f"slice {slice}"
    title = (
        f"Figure 2: SUVmax detection rule ({view} along axis {axis}): "
        f"TP = {counts['TP']}, FP = {counts['FP']}, FN = {counts['FN']}"
    )
    return DetectionView(
        image=project(suv_a, axis, slice, "max"),
        gt=project(gt_b, axis, slice, "any"),
        pred=project(pred_b, axis, slice, "any"),
        axes=(ua, va),
        spacing=(sp[ua], sp[va]),
        lesions=lesions,
        false_positives=fps,
        title=title,
        counts=counts,
    )


def figure2(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray,
    axis: int = 1,
    slice: int | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    window: tuple[float, float] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Figure 2: the SUVmax true-positive rule drawn on a case.

    Background: SUV MIP (or slice), inverted grey; green (outlined): ground-truth lesions; red:
    predicted components; markers at each lesion's SUVmax voxel (filled circle = TP, open = FN) and at each
    false-positive component's SUVmax voxel (x), each labelled TP / FN / FP. See
    :func:`figure2_data` for the rule.
    """

    d = figure2_data(gt, pred, suv, axis=axis, slice=slice, spacing=spacing)
    x = centres(d.image.shape[0], d.spacing[0])
    y = centres(d.image.shape[1], d.spacing[1])
    win = auto_window(d.image, window)
    fig = go.Figure()
    fig.add_trace(image_heatmap(d.image, x, y, win, "SUV", reverse=True))
    fig.add_trace(mask_heatmap(d.gt, x, y, GT_COLOR, 0.25, "ground truth"))
    fig.add_trace(mask_heatmap(d.pred, x, y, PRED_COLOR, 0.5, "prediction"))
    if d.gt.any():
        fig.add_trace(
            go.Contour(
                z=d.gt.T.astype(np.uint8),
                x=x,
                y=y,
                showscale=False,
                name="ground truth outline",
                hoverinfo="skip",
                contours={"start": 0.5, "end": 0.5, "size": 1.0, "coloring": "lines"},
                line={"color": GT_COLOR, "width": 2},
                colorscale=[[0, GT_COLOR], [1, GT_COLOR]],
            )
        )
    les = d.lesions[d.lesions["in_view"]] if len(d.lesions) else d.lesions
    for status, symbol in (("TP", "circle"), ("FN", "circle-open")):
        sel = les[les["status"] == status] if len(les) else les
        fig.add_trace(
            go.Scatter(
                x=sel["u_mm"],
                y=sel["v_mm"],
                mode="markers+text",
                name=f"SUVmax voxel ({status})",
                text=[f"{status} (G{int(i)})" for i in sel["lesion_id"]],
                textposition="top right",
                marker={
                    "symbol": symbol,
                    "size": 9,
                    "color": GT_COLOR,
                    "line": {"width": 2, "color": "black"},
                },
                customdata=sel[["lesion_id", "suvmax"]].to_numpy() if len(sel) else None,
                hovertemplate="lesion %{customdata[0]}: SUVmax %{customdata[1]:.2f}<extra>"
                + status
                + "</extra>",
            )
        )
    fps = d.false_positives[d.false_positives["in_view"]] if len(d.false_positives) else d.false_positives
    fig.add_trace(
        go.Scatter(
            x=fps["u_mm"],
            y=fps["v_mm"],
            mode="markers+text",
            name="false positive component",
            text=["FP"] * len(fps),
            textposition="top right",
            marker={"symbol": "x", "size": 9, "color": PRED_COLOR},
        )
    )
    fig.update_xaxes(title=f"array axis {d.axes[0]} (mm)", constrain="domain", showgrid=False)
    fig.update_yaxes(
        title=f"array axis {d.axes[1]} (mm)", scaleanchor="x", constrain="domain", showgrid=False
    )
    ttl = d.title if title is None else title
    fig.update_layout(
        title=ttl, template="simple_white", width=700, height=800, legend={"orientation": "h", "y": -0.08}
    )
    return attach_static(fig, lambda: _figure2_mpl(d, win, ttl))


def _figure2_mpl(d: DetectionView, win: tuple[float, float], title: str) -> matplotlib.figure.Figure:
    w_mm, h_mm = d.extent_mm
    mfig = new_mpl_figure(6.0, max(3.0, 6.0 * h_mm / max(w_mm, 1e-6)) + 0.8)
    ax = mfig.subplots()
    extent = (0.0, w_mm, 0.0, h_mm)
    ax.imshow(
        d.image.T,
        origin="lower",
        extent=extent,
        cmap="gray_r",
        vmin=win[0],
        vmax=win[1],
        interpolation="nearest",
    )
    overlay(ax, d.gt, extent, GT_COLOR, 0.25)
    overlay(ax, d.pred, extent, PRED_COLOR, 0.5)
    if d.gt.any():
        ax.contour(
            centres(d.gt.shape[0], d.spacing[0]),
            centres(d.gt.shape[1], d.spacing[1]),
            d.gt.T.astype(np.uint8),
            levels=[0.5],
            colors=[GT_COLOR],
            linewidths=1.5,
        )
    for _, r in d.lesions.iterrows():
        if not r["in_view"]:
            continue
        ax.plot(r["u_mm"], r["v_mm"], "o", ms=7, mec="black", mfc=GT_COLOR if r["status"] == "TP" else "none")
        ax.annotate(
            f"{r['status']} (G{int(r['lesion_id'])})",
            (r["u_mm"], r["v_mm"]),
            xytext=(5, 5),
            textcoords="offset points",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.75, "lw": 0},
            fontsize=8,
        )
    for _, r in d.false_positives.iterrows():
        if not r["in_view"]:
            continue
        ax.plot(r["u_mm"], r["v_mm"], "x", ms=7, color=PRED_COLOR)
        ax.annotate(
            "FP",
            (r["u_mm"], r["v_mm"]),
            xytext=(5, 5),
            textcoords="offset points",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.75, "lw": 0},
            fontsize=8,
            color=PRED_COLOR,
        )
    ax.set_xlabel(f"array axis {d.axes[0]} (mm)")
    ax.set_ylabel(f"array axis {d.axes[1]} (mm)")
    ax.set_title(title.replace(": ", ":\n", 1), fontsize=9)
    return mfig
