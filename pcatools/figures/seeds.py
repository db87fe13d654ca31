"""The seed figure (beyond the paper): each training seed's mean DSC per model, beside their mean.

A study trained from several seeds (``pcatools study --seeds 0,1,2``) shows each model's mean
DSC once per seed, so a reader sees at once whether the difference between two losses is larger
than what the training seed alone moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pcatools.figures.inputs import require_columns
from pcatools.figures.output import attach_static
from pcatools.vocabulary import LOSS_LABELS, NETWORK_LABELS, loss_color, loss_label, network_label, ordered

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure

__all__ = ["seeds_figure_data", "seeds_figure"]


def seeds_figure_data(seed_means: pd.DataFrame) -> pd.DataFrame:
    """The points the seed figure draws, in Table 1's order: one row per (network, loss, seed) with
    the seed's mean DSC (``mean``), the model's ``label`` and ``model_mean``, the mean over its seeds.

    ``seed_means`` is :func:`pcatools.seed_stats.seed_means` (``network, loss, seed, mean``).

    Examples
    --------
    >>> df = pd.DataFrame({"network": "segresnet", "loss": ["l1dfl", "dice", "dice"], "seed": [0, 0, 1],
    ...                    "mean": [0.5, 0.2, 0.4]})
    >>> seeds_figure_data(df)[["label", "seed", "mean", "model_mean"]].round(2)
                 label  seed  mean  model_mean
    0     SegResNet DL     0   0.2         0.3
    1     SegResNet DL     1   0.4         0.3
    2  SegResNet L1DFL     0   0.5         0.5
    """
    require_columns(seed_means, ["network", "loss", "seed", "mean"], "seeds figure (seed means)")
    rows = []
    for net in ordered(seed_means["network"], NETWORK_LABELS):
        sub = seed_means[seed_means["network"] == net]
        for loss in ordered(sub["loss"], LOSS_LABELS):
            g = sub[sub["loss"] == loss].sort_values("seed")
            label = f"{network_label(net)} {loss_label(loss)}"
            model_mean = float(np.nanmean(g["mean"])) if g["mean"].notna().any() else np.nan
            rows.append(g.assign(label=label, model_mean=model_mean))
    cols = ["network", "loss", "seed", "mean", "label", "model_mean"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def seeds_figure(seed_means: pd.DataFrame, title: str | None = None) -> go.Figure:
    """The seed figure: per model (x, Table 1's order) a point per training seed at its mean DSC,
    and a bar at the mean over seeds, in the loss's colour (:func:`pcatools.vocabulary.loss_color`)."""
    df = seeds_figure_data(seed_means)
    n_seeds = int(df["seed"].nunique()) if len(df) else 0
    ttl = f"Mean DSC per training seed ({n_seeds} seeds) and their mean" if title is None else title
    fig = go.Figure()
    for loss in ordered(df["loss"], LOSS_LABELS):
        g = df[df["loss"] == loss]
        colour = loss_color(loss)
        fig.add_trace(
            go.Scatter(
                x=g["label"], y=g["mean"], mode="markers", name=f"{loss_label(loss)} (one seed)",
                marker={"color": colour, "size": 9, "opacity": 0.7}, text=[f"seed {s}" for s in g["seed"]],
                hovertemplate="%{x}, %{text}: mean DSC %{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
        means = g.drop_duplicates("label")
        fig.add_trace(
            go.Scatter(
                x=means["label"], y=means["model_mean"], mode="markers", name=f"{loss_label(loss)} (mean of seeds)",
                marker={"color": colour, "symbol": "line-ew-open", "size": 28, "line": {"width": 3}},
                hovertemplate="%{x}: mean over seeds %{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_xaxes(title="model", categoryorder="array", categoryarray=list(dict.fromkeys(df["label"])))
    fig.update_yaxes(title="mean DSC", range=[-0.03, 1.03])
    fig.update_layout(title=ttl, template="simple_white", width=900, height=480)
    return attach_static(fig, lambda: _seeds_mpl(df, ttl))


def _seeds_mpl(df: pd.DataFrame, title: str) -> matplotlib.figure.Figure:
    from matplotlib.figure import Figure  # deferred: start-up (see tests/test_imports.py)

    fig = Figure(figsize=(9, 4.8))
    ax = fig.add_subplot()
    labels = list(dict.fromkeys(df["label"]))
    for x, label in enumerate(labels):
        g = df[df["label"] == label]
        colour = loss_color(str(g["loss"].iloc[0]))
        ax.scatter(np.full(len(g), x), g["mean"], color=colour, alpha=0.7, s=36, zorder=3)
        ax.hlines(g["model_mean"].iloc[0], x - 0.25, x + 0.25, color=colour, linewidth=3, zorder=2)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("mean DSC")
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
