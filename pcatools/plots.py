"""The paper's Figures 1-7 as functions returning plotly figures, with a static (PNG) twin.

Each figure has three parts:

- ``figureN_data(...)``: prepares the numbers drawn (validated inputs, tidy tables, 2-D
  projections); this is what the tests check against known answers;
- ``figureN(...)``: the interactive plotly figure built from that data (returned);
- a private matplotlib renderer of the *same* data, attached to the plotly figure and used by
  :func:`save_figure` (and :func:`static_figure`) for the static PNG.

Why matplotlib for the PNG: plotly's ``write_image`` needs kaleido plus a Chrome/Chromium. Tried
here (kaleido 1.5 with Debian's chromium 156, as root on a 2-core CPU): the browser closed at start
(it needs ``--no-sandbox`` as root), it pulls ~25 Debian packages, and each image costs a browser
start. matplotlib is already a dependency, renders headless (Agg) in milliseconds and is
deterministic, so every PNG is drawn by matplotlib from the same prepared data as the HTML.

Names, labels, colours and order come from :mod:`pcatools.vocabulary`; unknown names (models
of ``pcatools evaluate``) are shown as they are, each in a colour of its own. Image panels show array axes as stored (no reorientation),
in mm, the third array axis pointing up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pcatools._atomic import atomic_path, write_text_atomic
from pcatools.vocabulary import (
    LOSS_LABELS,
    NETWORK_LABELS,
    SCENARIOS,
    loss_color,
    loss_label,
    network_label,
    ordered,
)

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import plotly.graph_objects as go

__all__ = [
    "PAPER_FIGURE1_G",
    "PAPER_FIGURE1_P",
    "DetectionView",
    "figure1_data",
    "figure1",
    "figure2_data",
    "figure2",
    "figure3_data",
    "figure3",
    "figure4_data",
    "figure4",
    "figure5_data",
    "figure5",
    "figure6_data",
    "figure6",
    "figure7_data",
    "figure7",
    "static_figure",
    "save_figure",
]

GT_COLOR = "#00A000"
PRED_COLOR = "#D62728"
_PANEL = "abcdefghijklmnopqrstuvwxyz"

#: Figure 1 (a): the paper's 4x4 ground truth G.
PAPER_FIGURE1_G = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float64)
#: Figure 1 (b): the paper's predicted foreground probabilities P(G) (Delta = |G - P| in panel c).
PAPER_FIGURE1_P = np.array(
    [
        [0.21, 0.24, 0.10, 0.35],
        [0.20, 0.15, 0.18, 0.45],
        [0.74, 0.61, 0.16, 0.18],
        [0.58, 0.62, 0.20, 0.21],
    ],
    dtype=np.float64,
)


# --------------------------------------------------------------------------- helpers


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, found {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {missing}; expected at least {list(columns)}, found {list(df.columns)}"
        )


def _attach_static(fig: go.Figure, render: Callable[[], matplotlib.figure.Figure]) -> go.Figure:
    fig._pcatools_static = render  # plotly allows private attributes; read by static_figure()
    return fig


def _new_mpl_figure(width_in: float, height_in: float) -> matplotlib.figure.Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def _as_volume(arr: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 3:
        raise ValueError(f"{name}: expected a 3-D array (x, y, z), found shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (same grid as the other inputs), found {a.shape}")
    return a


def _spacing3(spacing: Sequence[float]) -> tuple[float, float, float]:
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing: expected three positive numbers in mm, found {spacing!r}")
    return sp  # type: ignore[return-value]


def _check_axis(axis: int) -> int:
    if axis not in (0, 1, 2):
        raise ValueError(f"axis: expected 0, 1 or 2 (1 = coronal for RAS arrays), found {axis!r}")
    return axis


def _project(vol: np.ndarray, axis: int, index: int | None, mode: str) -> np.ndarray:
    """2-D view of a volume: ``max`` (MIP) / ``any`` along ``axis``, or the slice ``index``."""
    if index is not None:
        n = vol.shape[axis]
        if not 0 <= index < n:
            raise ValueError(f"slice: expected an index in [0, {n - 1}] along axis {axis}, found {index}")
        return np.take(vol, index, axis=axis)
    return np.asarray(vol.any(axis=axis) if mode == "any" else vol.max(axis=axis))


def _plane_axes(axis: int) -> tuple[int, int]:
    """The (horizontal, vertical) array axes left after dropping ``axis``."""
    a, b = (i for i in range(3) if i != axis)
    return a, b


# --------------------------------------------------------------------------- figure 1


def figure1_data(
    g: np.ndarray | None = None, p: np.ndarray | None = None, bin_width: float = 0.1
) -> dict[str, np.ndarray]:
    """The five matrices of Figure 1 (section 2.6): G, P(G), Delta, D and w.

    Delta_i = |g_i - p_i| (eq. 4); D_i = D(B_k) = C(B_k) / lambda(B_k) (eq. 9) and
    w_i = w(B_k) = N / D(B_k) (eq. 10) for the bin B_k that Delta_i belongs to, all from
    :func:`pcatools.losses.l1_binning` (the histogram behind :func:`pcatools.losses.l1_weights`,
    paper convention: inclusive bin boundaries, a tie going to the upper bin). N is the number of
    elements. Defaults are the paper's 4x4 matrices.

    Parameters
    ----------
    g : array (H, W) of 0/1, optional
        Ground truth; default :data:`PAPER_FIGURE1_G`.
    p : array (H, W) in [0, 1], optional
        Predicted foreground probability; default :data:`PAPER_FIGURE1_P`.
    bin_width : float
        Gamma of eq. 5.

    Returns
    -------
    dict
        ``{"G", "P", "Delta", "D", "w"}``, float64 arrays of the input shape.

    Examples
    --------
    >>> d = figure1_data()
    >>> d["w"].round(6)[0].tolist(), d["D"].round(6)[0].tolist()
    ([0.2, 0.2, 1.6, 0.8], [80.0, 80.0, 10.0, 20.0])
    """
    import torch

    from pcatools.losses import l1_binning

    g_arr = PAPER_FIGURE1_G if g is None else np.asarray(g, dtype=np.float64)
    p_arr = PAPER_FIGURE1_P if p is None else np.asarray(p, dtype=np.float64)
    if g_arr.ndim != 2 or g_arr.shape != p_arr.shape:
        raise ValueError(
            f"figure1: g and p must be 2-D arrays of one shape, found {g_arr.shape} and {p_arr.shape}"
        )
    if not np.isin(g_arr, (0.0, 1.0)).all():
        raise ValueError(f"figure1: g must hold only 0 and 1, found values {np.unique(g_arr)[:10].tolist()}")
    if p_arr.min() < 0 or p_arr.max() > 1:
        raise ValueError(
            f"figure1: p must be probabilities in [0, 1], found range [{p_arr.min()}, {p_arr.max()}]"
        )
    binning = l1_binning(torch.from_numpy(p_arr.copy()), torch.from_numpy(g_arr.copy()), bin_width=bin_width)
    w_np = binning.element_weights().detach().cpu().numpy().astype(np.float64)
    d_np = binning.element_density().detach().cpu().numpy().astype(np.float64)
    return {
        "G": g_arr.copy(),
        "P": p_arr.copy(),
        "Delta": np.abs(g_arr - p_arr),
        "D": d_np,
        "w": w_np,
    }


_FIG1_PANELS = (
    ("G", "(a) G", "Greys", "{:.0f}"),
    ("P", "(b) P(G)", "Reds", "{:.2f}"),
    ("Delta", "(c) \u0394", "Oranges", "{:.2f}"),
    ("D", "(d) D", "Blues", "{:.4g}"),
    ("w", "(e) w", "Greens", "{:.3g}"),
)


def figure1(g: np.ndarray | None = None, p: np.ndarray | None = None, bin_width: float = 0.1) -> go.Figure:
    """Figure 1: the L1 weighting of a 4x4 example as five annotated heatmaps (a-e).

    Panels: (a) G, (b) P(G), (c) Delta = |G - P| (eq. 4), (d) the norm density D (eq. 9),
    (e) the weights w = N / D (eq. 10), the last two from :func:`pcatools.losses.l1_weights`.
    Each heatmap's ``z`` is the matrix itself (row 0 at the top, as printed in the paper).

    Examples
    --------
    >>> fig = figure1()
    >>> [round(float(v), 6) for v in fig.data[4].z[0]]
    [0.2, 0.2, 1.6, 0.8]
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = figure1_data(g, p, bin_width)
    fig = make_subplots(
        rows=1, cols=5, subplot_titles=[t for _, t, _, _ in _FIG1_PANELS], horizontal_spacing=0.025
    )
    for col, (key, title, cmap, fmt) in enumerate(_FIG1_PANELS, start=1):
        z = data[key]
        fig.add_trace(
            go.Heatmap(
                z=z,
                text=[[fmt.format(v) for v in row] for row in z],
                texttemplate="%{text}",
                textfont={"size": 13},
                colorscale=cmap,
                showscale=False,
                name=title,
                meta={"panel": key},
                hovertemplate=f"{title}<br>row %{{y}}, col %{{x}}: %{{z}}<extra></extra>",
                xgap=1,
                ygap=1,
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(
            autorange="reversed",
            showticklabels=False,
            row=1,
            col=col,
            scaleanchor=f"x{'' if col == 1 else col}",
            constrain="domain",
        )
        fig.update_xaxes(showticklabels=False, row=1, col=col, constrain="domain")
    fig.update_layout(
        title=f"Figure 1: L1 weighting of a 4x4 example (bin width \u0393 = {bin_width:g})",
        width=1150,
        height=330,
        margin={"l": 20, "r": 20, "t": 80, "b": 20},
        template="simple_white",
    )
    return _attach_static(fig, lambda: _figure1_mpl(data, bin_width))


def _figure1_mpl(data: dict[str, np.ndarray], bin_width: float) -> matplotlib.figure.Figure:
    mfig = _new_mpl_figure(13, 3.2)
    axes = mfig.subplots(1, 5)
    for ax, (key, title, cmap, fmt) in zip(axes, _FIG1_PANELS, strict=True):
        z = data[key]
        ax.imshow(
            z,
            cmap=cmap,
            vmin=float(z.min()),
            vmax=float(z.max()) if z.max() > z.min() else float(z.min()) + 1,
        )
        thresh = (float(z.min()) + float(z.max())) / 2
        for (r, c), v in np.ndenumerate(z):
            ax.text(
                c,
                r,
                fmt.format(v),
                ha="center",
                va="center",
                fontsize=10,
                color="white" if v > thresh and z.max() > z.min() else "black",
            )
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    mfig.suptitle(f"Figure 1: L1 weighting of a 4x4 example (bin width \u0393 = {bin_width:g})")
    return mfig


# --------------------------------------------------------------------------- figure 2


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


def _component_maxima(
    labels: np.ndarray, n: int, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per component 1..n of a label image, on its foreground voxels only (not the whole grid).

    Returns the flat C-order indices of the foreground voxels and their labels, then per component:
    the (i, j, k) of its maximum of ``values`` (ties: the first voxel in C order), that maximum,
    and its size in voxels. Components must be labelled 1..n (as cc3d numbers them).
    """
    idx = np.flatnonzero(labels)
    lab = labels.ravel()[idx].astype(np.int64)
    if n == 0:
        empty = np.zeros((0, 3), dtype=np.int64)
        return idx, lab, empty, np.zeros(0), np.zeros(0, dtype=np.int64)
    val = values.ravel()[idx]
    order = np.lexsort((-val, lab))  # by label, then by decreasing value; stable, so C order on ties
    lab_sorted = lab[order]
    first = order[np.r_[True, lab_sorted[1:] != lab_sorted[:-1]]]
    pos = np.stack(np.unravel_index(idx[first], labels.shape), axis=1)
    sizes = np.bincount(lab, minlength=n + 1)[1:]
    return idx, lab, pos, val[first].astype(np.float64), sizes


def figure2_data(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray,
    axis: int = 1,
    slice: int | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> DetectionView:
    """Apply the SUVmax true-positive rule (section 2.7.1) to a case and project it to 2-D.

    Components are 18-connected (``cc3d``, via :mod:`pcatools.metrics`). A ground-truth lesion G_l is a true positive when its
    SUVmax voxel G_{l,SUVmax} lies in the prediction (G_{l,SUVmax} ∩ P_l ≠ 0), otherwise a false
    negative; a predicted component that overlaps no ground-truth voxel is a false positive. The
    rule is evaluated in 3-D (lesions numbered as :func:`pcatools.metrics.label_components` does,
    in C order of their first voxel); only the drawing is 2-D (MIP along ``axis``, or slice ``slice``; in
    slice mode only lesions/components present in that slice are annotated). Ties of SUVmax inside
    a lesion go to the first voxel in C order (as ``numpy.argmax``).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((5, 5, 5), np.uint8); gt[1:3, 1:3, 1:3] = 1
    >>> suv = np.ones((5, 5, 5)); suv[2, 2, 2] = 9
    >>> pred = np.zeros_like(gt); pred[2, 2, 2] = 1
    >>> figure2_data(gt, pred, suv).counts
    {'TP': 1, 'FN': 0, 'FP': 0}
    """
    from pcatools.metrics import label_components

    axis = _check_axis(axis)
    gt_a = _as_volume(gt, "gt")
    pred_a = _as_volume(pred, "pred", gt_a.shape)
    suv_a = _as_volume(suv, "suv", gt_a.shape).astype(np.float32, copy=False)
    sp = _spacing3(spacing)
    gt_b = gt_a > 0
    pred_b = pred_a > 0
    gt_lab, n_gt = label_components(gt_b)
    pred_lab, n_pred = label_components(pred_b)
    ua, va = _plane_axes(axis)
    if slice is not None and not 0 <= slice < gt_a.shape[axis]:
        raise ValueError(
            f"slice: expected an index in [0, {gt_a.shape[axis] - 1}] along axis {axis}, found {slice}"
        )

    gt_idx, gt_l, gt_pos, gt_max, _ = _component_maxima(gt_lab, n_gt, suv_a)
    pr_idx, pr_l, pr_pos, _, pr_sizes = _component_maxima(pred_lab, n_pred, suv_a)

    def visible(idx: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
        """Per component 1..n: does it have a voxel in the shown slice (always True for a MIP)?"""
        if slice is None:
            return np.ones(n, dtype=bool)
        on = np.unravel_index(idx, gt_a.shape)[axis] == slice
        return np.isin(np.arange(1, n + 1), labels[on])

    rows = []
    gt_vis = visible(gt_idx, gt_l, n_gt)
    for lid in range(1, n_gt + 1):
        pos = tuple(int(c) for c in gt_pos[lid - 1])
        rows.append(
            {
                "lesion_id": lid,
                "status": "TP" if pred_b[pos] else "FN",
                "suvmax": float(gt_max[lid - 1]),
                "i": pos[0],
                "j": pos[1],
                "k": pos[2],
                "u_mm": (pos[ua] + 0.5) * sp[ua],
                "v_mm": (pos[va] + 0.5) * sp[va],
                "in_view": bool(gt_vis[lid - 1]),
            }
        )
    lesions = pd.DataFrame(
        rows, columns=["lesion_id", "status", "suvmax", "i", "j", "k", "u_mm", "v_mm", "in_view"]
    )

    fp_rows = []
    if n_pred:
        hit = np.unique(pred_lab[gt_b])
        fp_ids = np.setdiff1d(np.arange(1, n_pred + 1), hit[hit > 0])
        pr_vis = visible(pr_idx, pr_l, n_pred)
        for cid in fp_ids.tolist():
            pos = tuple(int(c) for c in pr_pos[cid - 1])
            fp_rows.append(
                {
                    "component_id": cid,
                    "volume_voxels": int(pr_sizes[cid - 1]),
                    "i": pos[0],
                    "j": pos[1],
                    "k": pos[2],
                    "u_mm": (pos[ua] + 0.5) * sp[ua],
                    "v_mm": (pos[va] + 0.5) * sp[va],
                    "in_view": bool(pr_vis[cid - 1]),
                }
            )
    fps = pd.DataFrame(
        fp_rows, columns=["component_id", "volume_voxels", "i", "j", "k", "u_mm", "v_mm", "in_view"]
    )
    counts = {
        "TP": int((lesions["status"] == "TP").sum()),
        "FN": int((lesions["status"] == "FN").sum()),
        "FP": len(fps),
    }
    view = "MIP" if slice is None else f"slice {slice}"
    title = (
        f"Figure 2: SUVmax detection rule ({view} along axis {axis}): "
        f"TP = {counts['TP']}, FP = {counts['FP']}, FN = {counts['FN']}"
    )
    return DetectionView(
        image=_project(suv_a, axis, slice, "max"),
        gt=_project(gt_b, axis, slice, "any"),
        pred=_project(pred_b, axis, slice, "any"),
        axes=(ua, va),
        spacing=(sp[ua], sp[va]),
        lesions=lesions,
        false_positives=fps,
        title=title,
        counts=counts,
    )


def _mask_heatmap(
    mask2d: np.ndarray, x: np.ndarray, y: np.ndarray, color: str, alpha: float, name: str, **kw: Any
) -> Any:
    import plotly.graph_objects as go

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


def _image_heatmap(
    img2d: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    window: tuple[float, float],
    name: str,
    reverse: bool,
    **kw: Any,
) -> Any:
    import plotly.graph_objects as go

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


def _centres(n: int, s: float) -> np.ndarray:
    return (np.arange(n) + 0.5) * s


def _auto_window(img: np.ndarray, window: tuple[float, float] | None) -> tuple[float, float]:
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
        if not hi > lo:
            raise ValueError(f"window: expected (low, high) with high > low, found {window!r}")
        return lo, hi
    lo = float(np.min(img))
    hi = float(np.percentile(img, 99.5))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


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
    import plotly.graph_objects as go

    d = figure2_data(gt, pred, suv, axis=axis, slice=slice, spacing=spacing)
    x = _centres(d.image.shape[0], d.spacing[0])
    y = _centres(d.image.shape[1], d.spacing[1])
    win = _auto_window(d.image, window)
    fig = go.Figure()
    fig.add_trace(_image_heatmap(d.image, x, y, win, "SUV", reverse=True))
    fig.add_trace(_mask_heatmap(d.gt, x, y, GT_COLOR, 0.25, "ground truth"))
    fig.add_trace(_mask_heatmap(d.pred, x, y, PRED_COLOR, 0.5, "prediction"))
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
    return _attach_static(fig, lambda: _figure2_mpl(d, win, ttl))


def _overlay(
    ax: Any, mask2d: np.ndarray, extent: tuple[float, float, float, float], color: str, alpha: float
) -> None:
    from matplotlib.colors import ListedColormap

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


def _figure2_mpl(d: DetectionView, win: tuple[float, float], title: str) -> matplotlib.figure.Figure:
    w_mm, h_mm = d.extent_mm
    mfig = _new_mpl_figure(6.0, max(3.0, 6.0 * h_mm / max(w_mm, 1e-6)) + 0.8)
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
    _overlay(ax, d.gt, extent, GT_COLOR, 0.25)
    _overlay(ax, d.pred, extent, PRED_COLOR, 0.5)
    if d.gt.any():
        ax.contour(
            _centres(d.gt.shape[0], d.spacing[0]),
            _centres(d.gt.shape[1], d.spacing[1]),
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


# --------------------------------------------------------------------------- figure 3


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
    axis = _check_axis(axis)
    img = _as_volume(image, "image")
    gt_b = _as_volume(gt, "gt", img.shape) > 0
    if not preds:
        raise ValueError("figure3: preds is empty; expected {(network, loss): mask}")
    panels: dict[tuple[str, str], np.ndarray] = {}
    dice: dict[tuple[str, str], float] = {}
    for key, mask in preds.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"figure3: preds keys must be (network, loss) tuples, found {key!r}")
        p = _as_volume(mask, f"preds[{key!r}]", img.shape) > 0
        denom = int(gt_b.sum()) + int(p.sum())
        dice[key] = 1.0 if denom == 0 else 2.0 * int(np.logical_and(gt_b, p).sum()) / denom
        panels[key] = _project(p, axis, slice, "any")
    return {
        "image": _project(img.astype(np.float32, copy=False), axis, slice, "max"),
        "gt": _project(gt_b, axis, slice, "any"),
        "networks": ordered((k[0] for k in preds), NETWORK_LABELS),
        "losses": ordered((k[1] for k in preds), LOSS_LABELS),
        "panels": panels,
        "dice": dice,
        "axes": _plane_axes(axis),
        "view": "MIP" if slice is None else f"slice {slice}",
    }


def _gt_boxes(
    gt2d: np.ndarray, sp: tuple[float, float], pad_mm: float = 4.0
) -> list[tuple[float, float, float, float]]:
    """Bounding boxes (u0, u1, v0, v1 in mm) of the 8-connected components of a 2-D GT projection."""
    from scipy import ndimage

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
    from plotly.subplots import make_subplots

    sp = _spacing3(spacing)
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
    x = _centres(d["image"].shape[0], sp2[0])
    y = _centres(d["image"].shape[1], sp2[1])
    win = _auto_window(d["image"], window)
    reverse = image_name.upper() == "PET"
    boxes = _gt_boxes(d["gt"], sp2)
    ttl = f"Figure 3: ground truth vs predictions ({image_name} {d['view']})" if title is None else title
    for r, net in enumerate(nets, start=1):
        for c in range(1, ncol + 1):
            fig.add_trace(_image_heatmap(d["image"], x, y, win, image_name, reverse), row=r, col=c)
            if c == 1:
                fig.add_trace(
                    _mask_heatmap(
                        d["gt"], x, y, GT_COLOR, 0.6, "ground truth", meta={"network": net, "loss": "GT"}
                    ),
                    row=r,
                    col=c,
                )
            else:
                loss = losses[c - 2]
                if (net, loss) in d["panels"]:
                    fig.add_trace(
                        _mask_heatmap(
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
    return _attach_static(fig, lambda: _figure3_mpl(d, sp2, win, reverse, boxes, ttl))


def _figure3_mpl(
    d: dict[str, Any],
    sp2: tuple[float, float],
    win: tuple[float, float],
    reverse: bool,
    boxes: list[tuple[float, float, float, float]],
    title: str,
) -> matplotlib.figure.Figure:
    from matplotlib.patches import Rectangle

    nets, losses = d["networks"], d["losses"]
    ncol = 1 + len(losses)
    w_mm, h_mm = d["image"].shape[0] * sp2[0], d["image"].shape[1] * sp2[1]
    pw = 2.4
    mfig = _new_mpl_figure(pw * ncol, len(nets) * pw * h_mm / max(w_mm, 1e-6) + 0.7)
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
                _overlay(ax, d["gt"], extent, GT_COLOR, 0.6)
                ax.set_title(f"{network_label(net)}: GT" if net else "GT", fontsize=9)
            else:
                loss = losses[c - 1]
                if (net, loss) in d["panels"]:
                    _overlay(ax, d["panels"][(net, loss)], extent, PRED_COLOR, 0.6)
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


# --------------------------------------------------------------------------- figure 4 and 6 (box plots)


def figure4_data(cases: pd.DataFrame) -> pd.DataFrame:
    """The per-case rows Figure 4 draws: ``network, loss, scenario, dice, case_id``.

    Rows with a missing DSC or scenario, and cases without lesions (scenario ``"none"``, which the
    paper's S/M scenarios exclude) are dropped; everything else
    is passed through unchanged, so each box holds exactly the DSCs of its (network, loss,
    scenario) group.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"case_id": ["a", "b"], "network": "segresnet", "loss": "dice",
    ...                    "scenario": ["S", "M"], "dice": [0.5, 0.7]})
    >>> figure4_data(df)["dice"].tolist()
    [0.5, 0.7]
    """
    _require_columns(cases, ["network", "loss", "scenario", "dice"], "figure4 (per-case table)")
    cols = ["network", "loss", "scenario", "dice"] + (["case_id"] if "case_id" in cases.columns else [])
    keep = cases["dice"].notna() & cases["scenario"].notna() & (cases["scenario"].astype(str) != "none")
    out = cases.loc[keep, cols].reset_index(drop=True)
    return out


def _box_traces(
    df: pd.DataFrame,
    group_col: str,
    group_order: list[Any],
    network: str,
    show_legend: bool,
    boxpoints: str | bool,
) -> list[Any]:
    import plotly.graph_objects as go

    traces = []
    for loss in ordered(df["loss"], LOSS_LABELS):
        sel = df[(df["network"] == network) & (df["loss"] == loss)]
        if not len(sel):
            continue
        traces.append(
            go.Box(
                x=sel[group_col].astype(str).tolist(),
                y=sel["dice"].astype(float).tolist(),
                name=loss_label(loss),
                legendgroup=loss,
                offsetgroup=loss,
                showlegend=show_legend,
                marker={"color": loss_color(loss), "size": 5, "outliercolor": "black"},
                line={"width": 1.5},
                boxpoints=boxpoints,
                jitter=0.5 if boxpoints == "all" else 0.0,
                pointpos=0.0,
                meta={"network": network, "loss": loss},
                hovertemplate="%{x}: DSC %{y:.3f}<extra>" + loss_label(loss) + "</extra>",
            )
        )
    return traces


def figure4(cases: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Figure 4: box plots overlaid with strip (jittered swarm) plots of DSC by scenario and loss.

    One panel per network ((a) Attention U-Net, (b) SegResNet); x = scenario (S = one lesion,
    M = two or more); one coloured box per loss. Boxes: quartiles, median, whiskers at 1.5 IQR
    (plotly's and matplotlib's default, as in the paper). The paper's swarm is drawn as all points
    with jitter (seeded in the PNG).
    """
    from plotly.subplots import make_subplots

    df = figure4_data(cases)
    nets = ordered(df["network"], NETWORK_LABELS)
    scen = [str(s) for s in ordered(df["scenario"].astype(str), SCENARIOS)]
    fig = make_subplots(
        rows=1,
        cols=max(1, len(nets)),
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=[f"({_PANEL[i]}) {network_label(n)}" for i, n in enumerate(nets)],
    )
    for c, net in enumerate(nets, start=1):
        for tr in _box_traces(
            df.assign(scenario=df["scenario"].astype(str)), "scenario", scen, net, c == 1, "all"
        ):
            fig.add_trace(tr, row=1, col=c)
        fig.update_xaxes(title="scenario", categoryorder="array", categoryarray=scen, row=1, col=c)
    fig.update_yaxes(title="DSC", range=[-0.03, 1.03], row=1, col=1)
    n_by = (
        df.drop_duplicates([c for c in ("case_id", "scenario") if c in df.columns]).groupby("scenario").size()
    )
    note = ", ".join(f"{s}: N = {int(n_by.get(s, 0))}" for s in scen) if "case_id" in df.columns else ""
    ttl = ("Figure 4: DSC by lesion scenario" + (f" ({note})" if note else "")) if title is None else title
    fig.update_layout(
        title=ttl, boxmode="group", template="simple_white", width=1000, height=480, legend={"title": "loss"}
    )
    if len(df) == 0:
        fig.add_annotation(text="no cases", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return _attach_static(
        fig,
        lambda: _boxes_mpl(
            [(f"({_PANEL[i]}) {network_label(n)}", df[df["network"] == n]) for i, n in enumerate(nets)],
            "scenario",
            scen,
            ttl,
            "all",
            seed=0,
            bars=None,
        ),
    )


def _boxes_mpl(
    panels: list[tuple[str, pd.DataFrame]],
    group_col: str,
    groups: list[str],
    title: str,
    points: str,
    seed: int,
    bars: tuple[str, pd.DataFrame] | None,
    tick_labels: list[str] | None = None,
) -> matplotlib.figure.Figure:
    rng = np.random.default_rng(seed)
    losses = ordered((loss for _, p in panels for loss in p["loss"]), LOSS_LABELS)
    if bars is None:  # figure 4: one row, a panel per network
        nrows, ncols = 1, max(1, len(panels))
    else:  # figure 6: a row per network, then the TLA bars
        nrows, ncols = len(panels) + 1, 1
    mfig = _new_mpl_figure(4.6 * ncols + (3 if bars is not None else 0), 3.3 * nrows)
    axes = np.asarray(mfig.subplots(nrows, ncols, squeeze=False)).ravel()
    width = 0.8 / max(1, len(losses))
    for ax, (ptitle, pdf) in zip(axes, panels, strict=False):
        for li, loss in enumerate(losses):
            data, pos = [], []
            for gi, g in enumerate(groups):
                vals = pdf.loc[(pdf["loss"] == loss) & (pdf[group_col].astype(str) == g), "dice"].astype(
                    float
                )
                if len(vals):
                    data.append(vals.to_numpy())
                    pos.append(gi - 0.4 + width * (li + 0.5))
            if not data:
                continue
            color = loss_color(loss)
            ax.boxplot(
                data,
                positions=pos,
                widths=width * 0.85,
                whis=1.5,
                patch_artist=True,
                showfliers=points != "all",
                manage_ticks=False,
                boxprops={"facecolor": color + "55", "edgecolor": color},
                medianprops={"color": "black"},
                whiskerprops={"color": color},
                capprops={"color": color},
                flierprops={"marker": "o", "markerfacecolor": "black", "markersize": 3},
            )
            if points == "all":
                for vals, p in zip(data, pos, strict=True):
                    ax.scatter(
                        p + rng.uniform(-width * 0.3, width * 0.3, len(vals)),
                        vals,
                        s=8,
                        color=color,
                        alpha=0.8,
                        zorder=3,
                        linewidths=0,
                    )
            ax.plot([], [], "s", color=color, label=loss_label(loss))
        ax.set_xticks(range(len(groups)), tick_labels or groups)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("DSC")
        ax.set_title(ptitle, fontsize=10)
    if panels:
        handles, labels = axes[0].get_legend_handles_labels()
        mfig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)), fontsize=9)
    if bars is not None:
        btitle, bdf = bars
        ax = axes[len(panels)]
        for li, loss in enumerate(ordered(bdf["loss"], LOSS_LABELS)):
            sel = bdf[bdf["loss"] == loss].set_index("dmax_group").reindex(groups)
            ax.bar(
                np.arange(len(groups)) - 0.4 + width * (li + 0.5),
                sel["median_tla"].to_numpy(dtype=float),
                width * 0.9,
                color=loss_color(loss),
                label=loss_label(loss),
            )
        ax.set_xticks(range(len(groups)), tick_labels or groups)
        ax.set_ylabel("median TLA (SUV x ml)")
        ax.set_title(btitle, fontsize=10)
    mfig.suptitle(title)
    return mfig


def figure6_data(cases: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 6 data: the per-case DSCs by Dmax group, and the median TLA per (group, loss).

    ``cases`` is the per-case table with ``dmax_group`` (G0-G3, from
    :func:`pcatools.stats.dmax_groups`); rows without a group (e.g. single-lesion cases, whose Dmax
    is their one lesion's diameter, when the groups are made of the multiple-lesion cases as in the
    paper: :func:`pcatools.study.dmax_grouped`'s default) or without DSC are dropped. The second table has ``dmax_group, loss, median_tla, n``:
    the median of ``tla`` over the cases of that group, pooled over networks (TLA is a property of
    the ground truth, so it does not depend on the network).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"network": "segresnet", "loss": "dice", "dmax_group": ["G0", "G0", "G1"],
    ...                    "dice": [0.2, 0.4, 0.9], "tla": [10.0, 30.0, 5.0]})
    >>> figure6_data(df)[1]["median_tla"].tolist()
    [20.0, 5.0]
    """
    _require_columns(cases, ["network", "loss", "dmax_group", "dice", "tla"], "figure6 (per-case table)")
    df = cases.loc[cases["dmax_group"].notna() & cases["dice"].notna()].copy()
    df["dmax_group"] = df["dmax_group"].astype(str)
    keep = ["network", "loss", "dmax_group", "dice", "tla"] + [
        c for c in ("case_id", "dmax_mm") if c in df.columns
    ]
    df = df[keep].reset_index(drop=True)
    tla = (
        df.groupby(["dmax_group", "loss"], sort=True)["tla"].agg(median_tla="median", n="size").reset_index()
    )
    return df, tla


def figure6(cases: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Figure 6: DSC by Dmax quartile group (G0-G3), with median TLA bars.

    Rows (a) Attention U-Net and (b) SegResNet: box plots of DSC per group and loss (whiskers
    1.5 IQR, outliers as black dots); row (c): bars of the median TLA of the cases in each group,
    per loss. Group tick labels carry the group's Dmax range in cm when ``dmax_mm`` is present.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df, tla = figure6_data(cases)
    nets = ordered(df["network"], NETWORK_LABELS)
    groups = sorted(df["dmax_group"].unique().tolist())
    titles = [f"({_PANEL[i]}) {network_label(n)}" for i, n in enumerate(nets)] + [
        f"({_PANEL[len(nets)]}) median TLA per Dmax group"
    ]
    fig = make_subplots(
        rows=len(nets) + 1, cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=titles
    )
    for r, net in enumerate(nets, start=1):
        for tr in _box_traces(df, "dmax_group", groups, net, r == 1, "outliers"):
            fig.add_trace(tr, row=r, col=1)
        fig.update_yaxes(title="DSC", range=[-0.03, 1.03], row=r, col=1)
    for loss in ordered(tla["loss"], LOSS_LABELS):
        sel = tla[tla["loss"] == loss]
        fig.add_trace(
            go.Bar(
                x=sel["dmax_group"].tolist(),
                y=sel["median_tla"].astype(float).tolist(),
                name=loss_label(loss),
                legendgroup=loss,
                offsetgroup=loss,
                showlegend=False,
                marker={"color": loss_color(loss)},
                meta={"loss": loss, "kind": "median_tla"},
                customdata=sel["n"].tolist(),
                hovertemplate="%{x}: median TLA %{y:.1f} (n = %{customdata})<extra></extra>",
            ),
            row=len(nets) + 1,
            col=1,
        )
    fig.update_yaxes(title="median TLA", row=len(nets) + 1, col=1)
    ticktext = groups
    if "dmax_mm" in df.columns and df["dmax_mm"].notna().any():
        cases_g = df.drop_duplicates([c for c in ("case_id", "dmax_group") if c in df.columns])
        rng = cases_g.groupby("dmax_group")["dmax_mm"].agg(["min", "max", "size"])
        ticktext = [
            f"{g} ({rng.loc[g, 'min'] / 10:.1f}-{rng.loc[g, 'max'] / 10:.1f} cm, N = {int(rng.loc[g, 'size'])})"
            if g in rng.index
            else g
            for g in groups
        ]
    fig.update_xaxes(categoryorder="array", categoryarray=groups, tickvals=groups, ticktext=ticktext)
    fig.update_xaxes(title="Dmax group", row=len(nets) + 1, col=1)
    ttl = "Figure 6: DSC by lesion dissemination (Dmax quartile groups)" if title is None else title
    fig.update_layout(
        title=ttl,
        boxmode="group",
        barmode="group",
        template="simple_white",
        width=900,
        height=280 * (len(nets) + 1) + 80,
        legend={"title": "loss"},
    )
    return _attach_static(
        fig,
        lambda: _boxes_mpl(
            [(t, df[df["network"] == n]) for t, n in zip(titles, nets, strict=False)],
            "dmax_group",
            groups,
            ttl,
            "outliers",
            seed=0,
            bars=(titles[-1], tla),
            tick_labels=ticktext,
        ),
    )


# --------------------------------------------------------------------------- figure 5


CURVE_COLUMNS = ("network", "loss", "scenario", "threshold_q", "threshold", "n", "median_dice", "median_tla")


def figure5_data(patient_curve: pd.DataFrame, lesion_curve: pd.DataFrame) -> pd.DataFrame:
    """Stack the patient (TMTV) and lesion (MTV) threshold curves into one tidy table.

    Inputs are :func:`pcatools.stats.threshold_curve` outputs with columns ``network, loss,
    scenario, threshold_q, threshold, n, median_dice, median_tla``. Output: the same columns plus
    ``level`` (``patient`` / ``lesion``), sorted by level, network, loss, scenario, threshold.
    Rows of scenario ``"none"`` (cases without lesions) are dropped, as in the paper.

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"network": "segresnet", "loss": "dice", "scenario": "S", "threshold_q": [0.0],
    ...                   "threshold": [0.0], "n": [3], "median_dice": [0.6], "median_tla": [12.0]})
    >>> figure5_data(c, c)["level"].tolist()
    ['patient', 'lesion']
    """
    _require_columns(patient_curve, CURVE_COLUMNS, "figure5 patient_curve (threshold_curve output)")
    _require_columns(lesion_curve, CURVE_COLUMNS, "figure5 lesion_curve (threshold_curve output)")
    df = pd.concat(
        [
            patient_curve[list(CURVE_COLUMNS)].assign(level="patient"),
            lesion_curve[list(CURVE_COLUMNS)].assign(level="lesion"),
        ],
        ignore_index=True,
    )
    df["scenario"] = df["scenario"].astype(str)
    df = df[df["scenario"] != "none"]  # cases without lesions: outside the paper's S/M scenarios
    df["_lv"] = df["level"].map({"patient": 0, "lesion": 1})
    df = df.sort_values(["_lv", "network", "loss", "scenario", "threshold_q", "threshold"], kind="stable")
    return df.drop(columns="_lv").reset_index(drop=True)


def figure5(patient_curve: pd.DataFrame, lesion_curve: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Figure 5: median DSC against TMTV (patient) and MTV (lesion) thresholds, with TLA areas.

    Columns: patient level S, patient level M, lesion level S, lesion level M. Rows: one per
    network (median DSC of cases / lesions with volume > t, one line per loss), then a row of
    area plots of the median TLA above each threshold (one area per network). TLA and the
    thresholds are properties of the ground truth, equal for every loss of a network; should they
    differ, the area shows their median over the losses. x = threshold in ml.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = figure5_data(patient_curve, lesion_curve)
    nets = ordered(df["network"], NETWORK_LABELS)
    scen = [str(s) for s in ordered(df["scenario"], SCENARIOS)]
    cols = [(lv, s) for lv in ("patient", "lesion") for s in scen]
    col_titles = [f"{'Patient (TMTV)' if lv == 'patient' else 'Lesion (MTV)'}: {s}" for lv, s in cols]
    row_titles = [f"({_PANEL[i]}) {network_label(n)}" for i, n in enumerate(nets)] + [
        f"({_PANEL[len(nets)]}) TLA"
    ]
    fig = make_subplots(
        rows=len(nets) + 1,
        cols=max(1, len(cols)),
        column_titles=col_titles,
        row_titles=row_titles,
        horizontal_spacing=0.05,
        vertical_spacing=0.06,
    )
    for c, (lv, s) in enumerate(cols, start=1):
        sub = df[(df["level"] == lv) & (df["scenario"] == s)]
        for r, net in enumerate(nets, start=1):
            for loss in ordered(sub["loss"], LOSS_LABELS):
                sel = sub[(sub["network"] == net) & (sub["loss"] == loss)]
                if not len(sel):
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=sel["threshold"].astype(float).tolist(),
                        y=sel["median_dice"].astype(float).tolist(),
                        mode="lines+markers",
                        name=loss_label(loss),
                        legendgroup=loss,
                        showlegend=(r == 1 and c == 1),
                        line={"color": loss_color(loss)},
                        meta={
                            "level": lv,
                            "scenario": s,
                            "network": net,
                            "loss": loss,
                            "kind": "median_dice",
                        },
                        customdata=sel["n"].tolist(),
                        hovertemplate="t = %{x:.2f} ml: median DSC %{y:.3f} (n = %{customdata})<extra></extra>",
                    ),
                    row=r,
                    col=c,
                )
            fig.update_yaxes(range=[0, 1.02], row=r, col=c, title="median DSC" if c == 1 else None)
        for i, net in enumerate(nets):
            sel = (
                sub[sub["network"] == net]
                .groupby("threshold_q", sort=True)
                .agg(threshold=("threshold", "median"), median_tla=("median_tla", "median"))
                .reset_index()
            )
            if not len(sel):
                continue
            fig.add_trace(
                go.Scatter(
                    x=sel["threshold"].astype(float).tolist(),
                    y=sel["median_tla"].astype(float).tolist(),
                    mode="lines",
                    fill="tozeroy",
                    name=f"TLA ({network_label(net)})",
                    showlegend=(c == 1),
                    line={"color": ["#555555", "#9E9E9E", "#BBBBBB"][i % 3]},
                    meta={"level": lv, "scenario": s, "network": net, "kind": "median_tla"},
                ),
                row=len(nets) + 1,
                col=c,
            )
        fig.update_xaxes(
            title="TMTV threshold (ml)" if lv == "patient" else "MTV threshold (ml)", row=len(nets) + 1, col=c
        )
    fig.update_yaxes(title="median TLA", row=len(nets) + 1, col=1)
    ttl = "Figure 5: median DSC above volume thresholds" if title is None else title
    fig.update_layout(
        title=ttl,
        template="simple_white",
        width=300 * max(1, len(cols)) + 120,
        height=260 * (len(nets) + 1) + 100,
        legend={"title": "loss"},
    )
    return _attach_static(fig, lambda: _figure5_mpl(df, nets, cols, col_titles, row_titles, ttl))


def _figure5_mpl(
    df: pd.DataFrame,
    nets: list[str],
    cols: list[tuple[str, str]],
    col_titles: list[str],
    row_titles: list[str],
    title: str,
) -> matplotlib.figure.Figure:
    mfig = _new_mpl_figure(3.2 * max(1, len(cols)), 2.5 * (len(nets) + 1) + 0.5)
    axes = np.asarray(mfig.subplots(len(nets) + 1, max(1, len(cols)), squeeze=False))
    for c, (lv, s) in enumerate(cols):
        sub = df[(df["level"] == lv) & (df["scenario"] == s)]
        for r, net in enumerate(nets):
            ax = axes[r, c]
            for loss in ordered(sub["loss"], LOSS_LABELS):
                sel = sub[(sub["network"] == net) & (sub["loss"] == loss)]
                if len(sel):
                    ax.plot(
                        sel["threshold"],
                        sel["median_dice"],
                        "o-",
                        ms=3,
                        color=loss_color(loss),
                        label=loss_label(loss),
                    )
            ax.set_ylim(0, 1.02)
            if r == 0:
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{row_titles[r]}\nmedian DSC", fontsize=8)
        ax = axes[len(nets), c]
        for i, net in enumerate(nets):
            sel = (
                sub[sub["network"] == net]
                .groupby("threshold_q", sort=True)
                .agg(threshold=("threshold", "median"), median_tla=("median_tla", "median"))
                .reset_index()
            )
            if len(sel):
                ax.fill_between(
                    sel["threshold"],
                    sel["median_tla"],
                    color=["#555555", "#9E9E9E", "#BBBBBB"][i % 3],
                    alpha=0.5,
                    label=network_label(net),
                )
        ax.set_xlabel("TMTV threshold (ml)" if lv == "patient" else "MTV threshold (ml)", fontsize=8)
        if c == 0:
            ax.set_ylabel(f"{row_titles[-1]}\nmedian TLA", fontsize=8)
    if len(cols):
        axes[0, 0].legend(fontsize=7)
    mfig.suptitle(title)
    return mfig


# --------------------------------------------------------------------------- figure 7


def figure7_data(curves: Any) -> pd.DataFrame:
    """Loss-vs-probability curves as a long table ``probability, loss, value``.

    Accepts the output of :func:`pcatools.losses.loss_vs_probability` in any of these forms:
    a long DataFrame (a probability column named ``probability``, ``p`` or ``p_true``, a loss-name
    column ``loss`` and a value column ``value`` or ``loss_value``); a wide DataFrame (a
    probability column plus one column per loss); or a mapping ``{loss: (probabilities, values)}``
    / ``{"probability": p, loss: values, ...}``.

    Examples
    --------
    >>> import pandas as pd
    >>> w = pd.DataFrame({"probability": [0.1, 0.9], "dice": [0.8, 0.1]})
    >>> figure7_data(w)["value"].tolist()
    [0.8, 0.1]
    """
    prob_names = ("probability", "p", "p_true", "prob")
    if isinstance(curves, Mapping):
        if any(k in curves for k in prob_names):
            curves = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in curves.items()})
        else:
            frames = []
            for name, pair in curves.items():
                if not (isinstance(pair, Sequence | tuple) and len(pair) == 2):
                    raise ValueError(
                        f"figure7: curves[{name!r}] must be (probabilities, values), found {type(pair)}"
                    )
                frames.append(
                    pd.DataFrame(
                        {
                            "probability": np.asarray(pair[0], float),
                            "loss": str(name),
                            "value": np.asarray(pair[1], float),
                        }
                    )
                )
            return (
                pd.concat(frames, ignore_index=True)
                if frames
                else pd.DataFrame(columns=["probability", "loss", "value"])
            )
    if not isinstance(curves, pd.DataFrame):
        raise TypeError(
            f"figure7: expected a DataFrame or a mapping of curves, found {type(curves).__name__}"
        )
    pcol = next((c for c in prob_names if c in curves.columns), None)
    if pcol is None:
        raise ValueError(
            f"figure7: expected a probability column (one of {list(prob_names)}), found "
            f"{list(curves.columns)}"
        )
    vcol = next((c for c in ("value", "loss_value") if c in curves.columns), None)
    if "loss" in curves.columns and vcol is not None:
        out = curves[[pcol, "loss", vcol]].rename(columns={pcol: "probability", vcol: "value"})
    else:
        value_cols = [c for c in curves.columns if c != pcol and pd.api.types.is_numeric_dtype(curves[c])]
        if not value_cols:
            raise ValueError(f"figure7: no loss columns beside {pcol!r}; found {list(curves.columns)}")
        out = curves.melt(id_vars=[pcol], value_vars=value_cols, var_name="loss", value_name="value").rename(
            columns={pcol: "probability"}
        )
    out = out.astype({"probability": float, "value": float, "loss": str})
    order = {n: i for i, n in enumerate(ordered(out["loss"], LOSS_LABELS))}
    out = out.assign(_o=out["loss"].map(order)).sort_values(["_o", "probability"], kind="stable")
    return out.drop(columns="_o").reset_index(drop=True)


def figure7(curves: Any, title: str | None = None) -> go.Figure:
    """Figure 7: loss against the predicted probability of the true class (ground truth 1).

    One line per loss (DL, DFL, L1DFL) from :func:`pcatools.losses.loss_vs_probability`; see
    :func:`figure7_data` for the accepted forms. The default title names the construction
    recorded in ``curves.attrs["construction"]`` ("per sample", the paper's definition, or
    "patch"), so that a patch-based curve is never mistaken for the paper's figure.
    """
    import plotly.graph_objects as go

    construction = getattr(curves, "attrs", {}).get("construction")
    df = figure7_data(curves)
    fig = go.Figure()
    for loss in ordered(df["loss"], LOSS_LABELS):
        sel = df[df["loss"] == loss]
        fig.add_trace(
            go.Scatter(
                x=sel["probability"].tolist(),
                y=sel["value"].tolist(),
                mode="lines",
                name=loss_label(loss),
                line={"color": loss_color(loss), "width": 2.5},
                meta={"loss": loss},
            )
        )
    fig.add_vline(x=0.5, line={"dash": "dot", "color": "grey"})
    fig.update_xaxes(title="predicted probability of the true class, P(G)", range=[0, 1])
    fig.update_yaxes(title="loss")
    how = {"per_sample": ", per sample", "patch": ", patch construction"}.get(str(construction), "")
    ttl = f"Figure 7: loss vs probability (ground truth = 1{how})" if title is None else title
    fig.update_layout(title=ttl, template="simple_white", width=650, height=450, legend={"title": "loss"})

    def render() -> matplotlib.figure.Figure:
        mfig = _new_mpl_figure(6.5, 4.5)
        ax = mfig.subplots()
        for loss in ordered(df["loss"], LOSS_LABELS):
            sel = df[df["loss"] == loss]
            ax.plot(sel["probability"], sel["value"], lw=2.2, color=loss_color(loss), label=loss_label(loss))
        ax.axvline(0.5, ls=":", color="grey")
        ax.set_xlim(0, 1)
        ax.set_xlabel("predicted probability of the true class, P(G)")
        ax.set_ylabel("loss")
        ax.legend()
        ax.set_title(ttl)
        return mfig

    return _attach_static(fig, render)


# --------------------------------------------------------------------------- saving


def static_figure(fig: Any) -> matplotlib.figure.Figure:
    """The matplotlib twin of a figure made by this module (a matplotlib Figure passes through).

    Raises ``TypeError`` for a plotly figure not made here (it has no static renderer).
    """
    from matplotlib.figure import Figure

    if isinstance(fig, Figure):
        return fig
    render = getattr(fig, "_pcatools_static", None)
    if render is None:
        raise TypeError(
            f"static_figure: {type(fig).__name__} was not made by pcatools.plots (no static renderer attached; "
            "note that go.Figure(fig) copies drop it)"
        )
    return render()


def save_figure(
    fig: Any,
    path: str | os.PathLike[str],
    formats: Sequence[str] = ("html", "png"),
    dpi: int = 150,
    include_plotlyjs: bool | str = True,
) -> dict[str, Path]:
    """Write a figure as interactive HTML and static images, atomically; return ``{format: path}``.

    ``path`` is the file name without suffix (``runs/demo/figures/figure4``). ``html`` is written
    by plotly (``include_plotlyjs=True``: self-contained, opens offline; ``"cdn"``: small file that
    loads plotly.js from the internet). Static formats (``png``, ``svg``, ``pdf``) are drawn by
    matplotlib from the same data (see the module docstring for why not kaleido); a plotly figure
    not made by this module falls back to ``fig.write_image`` (needs kaleido and Chrome).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> fig = figure7({"dice": ([0.1, 0.9], [0.8, 0.1])})
    >>> out = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "f7", formats=("png",))
    >>> out["png"].suffix
    '.png'
    """
    from matplotlib.figure import Figure

    base = Path(path)
    if base.suffix.lower() in {".html", ".png", ".svg", ".pdf"}:
        base = base.with_suffix("")
    unknown = [f for f in formats if f not in {"html", "png", "svg", "pdf"}]
    if unknown:
        raise ValueError(f"save_figure: unknown format(s) {unknown}; expected any of html, png, svg, pdf")
    out: dict[str, Path] = {}
    mfig = None
    for fmt in formats:
        target = base.with_name(base.name + "." + fmt)
        if fmt == "html":
            if isinstance(fig, Figure):
                raise TypeError("save_figure: HTML needs a plotly figure, found a matplotlib Figure")
            write_text_atomic(target, fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True))
        elif isinstance(fig, Figure) or hasattr(fig, "_pcatools_static"):
            if mfig is None:
                mfig = static_figure(fig)
            with atomic_path(target) as tmp:
                mfig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white")
        else:
            with atomic_path(target) as tmp:
                fig.write_image(str(tmp), format=fmt)
        out[fmt] = target
    return out
