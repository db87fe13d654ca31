"""Figure 3 (paper 3): ground truth against each network and loss on one case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

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
from pcatools.vocabulary import LOSS_LABELS, NETWORK_LABELS, loss_label, network_label, ordered

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import plotly.graph_objects as go

__all__ = ["figure3_data", "figure3"]


def figure3_data(
    image: np.ndarray,
    gt: np.ndarray,
    preds: Mapping[tuple[str, str], np.ndarray],
    axis: int = 1,
    slice: int | None = None,
) -> dict[str, Any]:
    """Panels of Figure 3: GT and each (network, loss) prediction projected along ``axis``.

    Returns a dict with ``image`` (2-D MIP or slice of ``image``), ``gt`` (2-D), ``networks`` and
    ``losses`` (display order), ``panels`` mapping ``(network, loss)`` to the 2-D prediction, and
    ``dice`` mapping ``(network, loss)`` to the 3-D patient-level DSC = 2|G∩P| / (|G| + |P|)
    (eq. 13; 1.0 when both are empty). Masks are projected with ``any``.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((4, 4, 4), np.uint8); gt[1, 1, 1:3] = 1
    >>> d = figure3_data(gt.astype(float), gt, {("segresnet", "l1dfl"): gt})
    >>> d["dice"][("segresnet", "l1dfl")]
    1.0
    """
    axis = check_axis(axis)
    img = as_volume(image, "image")
    gt_b = as_volume(gt, "gt", img.shape) > 0
    if not preds:
        raise ValueError("figure3: preds is empty; expected {(network, loss): mask}")
    panels: dict[tuple[str, str], np.ndarray] = {}
    dice: dict[tuple[str, str], float] = {}
    for key, mask in preds.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"figure3: preds keys must be (network, loss) tuples, found {key!r}")
        p = as_volume(mask, f"preds[{key!r}]", img.shape) > 0
        denom = int(gt_b.sum()) + int(p.sum())
        dice[key] = 1.0 if denom == 0 else 2.0 * int(np.logical_and(gt_b, p).sum()) / denom
        panels[key] = project(p, axis, slice, "any")
    return {
        "image": project(img.astype(np.float32, copy=False), axis, slice, "max"),
        "gt": project(gt_b, axis, slice, "any"),
        "networks": ordered((k[0] for k in preds), NETWORK_LABELS),
        "losses": ordered((k[1] for k in preds), LOSS_LABELS),
        "panels": panels,
        "dice": dice,
        "axes": plane_axes(axis),
        "view": "MIP" if slice is None else f"slice {slice}",
    }


def _gt_boxes(
    gt2d: np.ndarray, sp: tuple[float, float], pad_mm: float = 4.0
) -> list[tuple[float, float, float, float]]:
    """Bounding boxes (u0, u1, v0, v1 in mm) of the 8-connected components of a 2-D GT projection."""
    from scipy import ndimage  # deferred: start-up (see tests/test_imports.py)

    lab, _ = ndimage.label(gt2d, structure=np.ones((3, 3), bool))
    boxes = []
    for sl in ndimage.find_objects(lab):
        if sl is None:
            continue
        boxes.append(
            (
                sl[0].start * sp[0] - pad_mm,
                sl[0].stop * sp[0] + pad_mm,
                sl[1].start * sp[1] - pad_mm,
                sl[1].stop * sp[1] + pad_mm,
            )
        )
    return boxes


def figure3(
    image: np.ndarray,
    gt: np.ndarray,
    preds: Mapping[tuple[str, str], np.ndarray],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    axis: int = 1,
    slice: int | None = None,
    window: tuple[float, float] | None = None,
    image_name: str = "PET",
    title: str | None = None,
) -> go.Figure:
    """Figure 3: ground truth vs each network and loss on one case.

    Rows: networks (Attention U-Net, SegResNet); columns: GT, DL, DFL, L1DFL. Background:
    ``image`` (PET: MIP, inverted grey; CT: pass a slice and an HU ``window``). Green: ground
    truth (GT column); red: the prediction; dashed green boxes: the ground-truth lesions (the
    paper's "bounded area"), so red outside them is a false positive. Each panel is titled with
    its 3-D DSC (eq. 13). A (network, loss) pair missing from ``preds`` leaves an empty panel.
    """
    from plotly.subplots import make_subplots  # deferred: start-up (see tests/test_imports.py)

    from pcatools.metrics.components import check_spacing  # deferred: start-up (see tests/test_imports.py)

    sp = check_spacing(spacing)
    d = figure3_data(image, gt, preds, axis=axis, slice=slice)
    ua, va = d["axes"]
    sp2 = (sp[ua], sp[va])
    nets, losses = d["networks"], d["losses"]
    ncol = 1 + len(losses)
    titles = []
    for net in nets:
        titles.append(f"{network_label(net)}: GT" if net else "GT")
        for loss in losses:
            dsc = d["dice"].get((net, loss))
            titles.append(f"{loss_label(loss)}" + ("" if dsc is None else f" (DSC {dsc:.2f})"))
    fig = make_subplots(
        rows=len(nets), cols=ncol, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.05
    )
    x = centres(d["image"].shape[0], sp2[0])
    y = centres(d["image"].shape[1], sp2[1])
    win = auto_window(d["image"], window)
    reverse = image_name.upper() == "PET"
    boxes = _gt_boxes(d["gt"], sp2)
    ttl = f"Figure 3: ground truth vs predictions ({image_name} {d['view']})" if title is None else title
    for r, net in enumerate(nets, start=1):
        for c in range(1, ncol + 1):
            fig.add_trace(image_heatmap(d["image"], x, y, win, image_name, reverse), row=r, col=c)
            if c == 1:
                fig.add_trace(
                    mask_heatmap(
                        d["gt"], x, y, GT_COLOR, 0.6, "ground truth", meta={"network": net, "loss": "GT"}
                    ),
                    row=r,
                    col=c,
                )
            else:
                loss = losses[c - 2]
                if (net, loss) in d["panels"]:
                    fig.add_trace(
                        mask_heatmap(
                            d["panels"][(net, loss)],
                            x,
                            y,
                            PRED_COLOR,
                            0.6,
                            f"{network_label(net)} {loss_label(loss)}",
                            meta={"network": net, "loss": loss},
                        ),
                        row=r,
                        col=c,
                    )
                for u0, u1, v0, v1 in boxes:
                    fig.add_shape(
                        type="rect",
                        x0=u0,
                        x1=u1,
                        y0=v0,
                        y1=v1,
                        row=r,
                        col=c,
                        line={"color": GT_COLOR, "dash": "dash", "width": 1.5},
                    )
    fig.update_xaxes(showticklabels=False, showgrid=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, constrain="domain")
    for i in range(1, len(nets) * ncol + 1):
        fig.update_yaxes(
            scaleanchor=f"x{'' if i == 1 else i}", selector={"anchor": f"x{'' if i == 1 else i}"}
        )
    h_mm = len(y) * sp2[1]
    w_mm = len(x) * sp2[0]
    panel_w = 230
    fig.update_layout(
        title=ttl,
        template="simple_white",
        width=panel_w * ncol + 40,
        height=int(len(nets) * panel_w * h_mm / max(w_mm, 1e-6)) + 100,
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 80, "b": 10},
    )
    return attach_static(fig, lambda: _figure3_mpl(d, sp2, win, reverse, boxes, ttl))


def _figure3_mpl(
    d: dict[str, Any],
    sp2: tuple[float, float],
    win: tuple[float, float],
    reverse: bool,
    boxes: list[tuple[float, float, float, float]],
    title: str,
) -> matplotlib.figure.Figure:
    from matplotlib.patches import Rectangle  # deferred: start-up (see tests/test_imports.py)

    nets, losses = d["networks"], d["losses"]
    ncol = 1 + len(losses)
    w_mm, h_mm = d["image"].shape[0] * sp2[0], d["image"].shape[1] * sp2[1]
    pw = 2.4
    mfig = new_mpl_figure(pw * ncol, len(nets) * pw * h_mm / max(w_mm, 1e-6) + 0.7)
    axes = np.atleast_2d(mfig.subplots(len(nets), ncol, squeeze=False))
    extent = (0.0, w_mm, 0.0, h_mm)
    for r, net in enumerate(nets):
        for c in range(ncol):
            ax = axes[r, c]
            ax.imshow(
                d["image"].T,
                origin="lower",
                extent=extent,
                cmap="gray_r" if reverse else "gray",
                vmin=win[0],
                vmax=win[1],
                interpolation="nearest",
            )
            if c == 0:
                overlay(ax, d["gt"], extent, GT_COLOR, 0.6)
                ax.set_title(f"{network_label(net)}: GT" if net else "GT", fontsize=9)
            else:
                loss = losses[c - 1]
                if (net, loss) in d["panels"]:
                    overlay(ax, d["panels"][(net, loss)], extent, PRED_COLOR, 0.6)
                    ax.set_title(f"{loss_label(loss)} (DSC {d['dice'][(net, loss)]:.2f})", fontsize=9)
                else:
                    ax.set_title(f"{loss_label(loss)} (missing)", fontsize=9)
                for u0, u1, v0, v1 in boxes:
                    ax.add_patch(
                        Rectangle((u0, v0), u1 - u0, v1 - v0, fill=False, ec=GT_COLOR, ls="--", lw=1)
                    )
            ax.set_xticks([])
            ax.set_yticks([])
    mfig.suptitle(title)
    return mfig
