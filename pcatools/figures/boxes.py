"""Box plots of DSC per group and loss, shared by Figure 4 (scenario groups) and Figure 6 (Dmax groups)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pcatools.figures.style import new_mpl_figure
from pcatools.vocabulary import LOSS_LABELS, loss_color, loss_label, ordered

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure

__all__ = ["box_traces", "boxes_mpl"]


def box_traces(
    df: pd.DataFrame,
    group_col: str,
    group_order: list[Any],
    network: str,
    show_legend: bool,
    boxpoints: str | bool,
) -> list[Any]:
    """One plotly box trace per loss of ``network``: its DSCs (``dice``) at x = ``group_col``.

    Boxes: quartiles, median, whiskers at 1.5 IQR (plotly's default); ``boxpoints="all"`` adds
    every point with jitter, ``"outliers"`` only the points beyond the whiskers. Each trace's
    ``meta`` is ``{"network", "loss"}``.
    """

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


def boxes_mpl(
    panels: list[tuple[str, pd.DataFrame]],
    group_col: str,
    groups: list[str],
    title: str,
    points: str,
    seed: int,
    bars: tuple[str, pd.DataFrame] | None,
    tick_labels: list[str] | None = None,
) -> matplotlib.figure.Figure:
    """The matplotlib twin of :func:`box_traces` panels: one panel per ``(title, rows)`` of ``panels``.

    Without ``bars`` (Figure 4) the panels stand in one row; with ``bars = (title, table)``
    (Figure 6) they stand in a column above a panel of bars of ``median_tla`` per
    ``dmax_group`` and loss. ``points="all"`` jitters every point with a generator seeded by ``seed``.
    """
    rng = np.random.default_rng(seed)
    if (
        tick_labels is not None
    ):  # "G0 (9.0-10.5 cm, N = 2)": the range on a line of its own, so labels never overlap
        tick_labels = [t.replace(" (", "\n(", 1) for t in tick_labels]
    losses = ordered((loss for _, p in panels for loss in p["loss"]), LOSS_LABELS)
    if bars is None:  # figure 4: one row, a panel per network
        nrows, ncols = 1, max(1, len(panels))
    else:  # figure 6: a row per network, then the TLA bars
        nrows, ncols = len(panels) + 1, 1
    mfig = new_mpl_figure(4.6 * ncols + (3 if bars is not None else 0), 3.3 * nrows)
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
