"""Figure 1 (paper 2.6): the L1 weighting of a 4x4 example, G, P(G), Delta, D and w as heatmaps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from pcatools.figures.output import attach_static
from pcatools.figures.style import new_mpl_figure

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure

__all__ = ["PAPER_FIGURE1_G", "PAPER_FIGURE1_P", "figure1_data", "figure1"]

PAPER_FIGURE1_G = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float64)
"""Figure 1 (a): the paper's 4x4 ground truth G."""
PAPER_FIGURE1_P = np.array(
    [
        [0.21, 0.24, 0.10, 0.35],
        [0.20, 0.15, 0.18, 0.45],
        [0.74, 0.61, 0.16, 0.18],
        [0.58, 0.62, 0.20, 0.21],
    ],
    dtype=np.float64,
)
"""Figure 1 (b): the paper's predicted foreground probabilities P(G) (Delta = |G - P| in panel c)."""


def figure1_data(
    g: np.ndarray | None = None, p: np.ndarray | None = None, bin_width: float = 0.1, loss: str = "l1dfl"
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
    loss : str
        A registered loss that declares weights (:mod:`pcatools.loss_registry`, ``weights=True``;
        L1DFL by default): panel w is its ``element_weights`` on logits ``log P`` (the foreground
        channel), built with ``bin_width`` where it takes one. Another loss is refused.

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
    import torch  # deferred: start-up (see tests/test_imports.py)

    from pcatools.losses import (  # deferred: start-up (see tests/test_imports.py)
        l1_binning,
        loss_weights,
        weighted_loss,
    )

    try:
        name = weighted_loss(loss)
    except ValueError as err:
        raise ValueError(f"figure1: {err}") from None
    w_np = loss_weights(g_arr, p_arr, name, bin_width)
    binning = l1_binning(torch.from_numpy(p_arr.copy()), torch.from_numpy(g_arr.copy()), bin_width=bin_width)
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


def figure1(
    g: np.ndarray | None = None, p: np.ndarray | None = None, bin_width: float = 0.1, loss: str = "l1dfl"
) -> go.Figure:
    """Figure 1: the L1 weighting of a 4x4 example as five annotated heatmaps (a-e).

    Panels: (a) G, (b) P(G), (c) Delta = |G - P| (eq. 4), (d) the norm density D (eq. 9),
    (e) the weights w = N / D (eq. 10), the last two from :func:`pcatools.losses.l1_weights`;
    (e) is the ``element_weights`` of ``loss``, any registered loss that declares weights.
    Each heatmap's ``z`` is the matrix itself (row 0 at the top, as printed in the paper).

    Examples
    --------
    >>> fig = figure1()
    >>> [round(float(v), 6) for v in fig.data[4].z[0]]
    [0.2, 0.2, 1.6, 0.8]
    """
    from plotly.subplots import make_subplots  # deferred: start-up (see tests/test_imports.py)

    data = figure1_data(g, p, bin_width, loss)
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
    return attach_static(fig, lambda: _figure1_mpl(data, bin_width))


def _figure1_mpl(data: dict[str, np.ndarray], bin_width: float) -> matplotlib.figure.Figure:
    mfig = new_mpl_figure(13, 3.2)
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
