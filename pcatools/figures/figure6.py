"""Figure 6 (paper 3.4): DSC by lesion dissemination (Dmax quartile groups G0-G3), with median TLA bars."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from pcatools.figures.boxes import box_traces, boxes_mpl
from pcatools.figures.inputs import require_columns
from pcatools.figures.output import attach_static
from pcatools.figures.style import PANEL
from pcatools.vocabulary import LOSS_LABELS, NETWORK_LABELS, loss_color, loss_label, network_label, ordered

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import plotly.graph_objects as go

__all__ = ["figure6_data", "figure6"]


def figure6_data(cases: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 6 data: the per-case DSCs by Dmax group, and the median TLA per (group, loss).

    ``cases`` is the per-case table with ``dmax_group`` (G0-G3, from
    :func:`pcatools.stats.dmax_groups`); rows without a group (e.g. single-lesion cases, whose Dmax
    is their one lesion's diameter, when the groups are made of the multiple-lesion cases as in the
    paper: :func:`pcatools.study.dmax_grouped`'s default) or without DSC are dropped. The second table
    has ``dmax_group, loss, median_tla, n``: the median of ``tla`` over the cases of that group, pooled
    over networks (TLA is a property of the ground truth, so it does not depend on the network), and
    ``n`` the number of distinct cases (``case_id``; rows where the table has none), not cases x
    networks.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"network": "segresnet", "loss": "dice", "dmax_group": ["G0", "G0", "G1"],
    ...                    "dice": [0.2, 0.4, 0.9], "tla": [10.0, 30.0, 5.0]})
    >>> figure6_data(df)[1][["median_tla", "n"]].values.tolist()
    [[20.0, 2.0], [5.0, 1.0]]
    """
    require_columns(cases, ["network", "loss", "dmax_group", "dice", "tla"], "figure6 (per-case table)")
    df = cases.loc[cases["dmax_group"].notna() & cases["dice"].notna()].copy()
    df["dmax_group"] = df["dmax_group"].astype(str)
    keep = ["network", "loss", "dmax_group", "dice", "tla"] + [
        c for c in ("case_id", "dmax_mm", "dmax_low_mm", "dmax_high_mm") if c in df.columns
    ]
    df = df[keep].reset_index(drop=True)
    grouped = df.groupby(["dmax_group", "loss"], sort=True)
    tla = grouped["tla"].agg(median_tla="median").reset_index()
    tla["n"] = (grouped["case_id"].nunique() if "case_id" in df.columns else grouped.size()).to_numpy()
    return df, tla


def figure6(cases: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Figure 6: DSC by Dmax quartile group (G0-G3), with median TLA bars.

    Rows (a) Attention U-Net and (b) SegResNet: box plots of DSC per group and loss (whiskers
    1.5 IQR, outliers as black dots); row (c): bars of the median TLA of the cases in each group,
    per loss. Group tick labels carry the group's cut points in cm as the paper prints them
    (``"G0 (0-9 cm, N = 3)"``) when the table has them (``dmax_low_mm``, ``dmax_high_mm`` from
    :func:`pcatools.stats.dmax_groups`), else the range of its cases' ``dmax_mm``; N counts cases.
    """
    from plotly.subplots import make_subplots  # deferred: start-up (see tests/test_imports.py)

    df, tla = figure6_data(cases)
    nets = ordered(df["network"], NETWORK_LABELS)
    groups = sorted(df["dmax_group"].unique().tolist())
    titles = [f"({PANEL[i]}) {network_label(n)}" for i, n in enumerate(nets)] + [
        f"({PANEL[len(nets)]}) median TLA per Dmax group"
    ]
    fig = make_subplots(
        rows=len(nets) + 1, cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=titles
    )
    for r, net in enumerate(nets, start=1):
        for tr in box_traces(df, "dmax_group", groups, net, r == 1, "outliers"):
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
    cases_g = df.drop_duplicates([c for c in ("case_id", "dmax_group") if c in df.columns])
    if "dmax_low_mm" in df.columns and df["dmax_low_mm"].notna().all():
        rng = cases_g.groupby("dmax_group").agg(
            min=("dmax_low_mm", "first"), max=("dmax_high_mm", "first"), size=("dmax_group", "size")
        )
        cuts = {g: (lo, hi, n) for g, lo, hi, n in rng[["min", "max", "size"]].itertuples()}
        ticktext = [_group_label(g, *cuts[g], cut=True) if g in cuts else g for g in groups]
    elif "dmax_mm" in df.columns and df["dmax_mm"].notna().any():
        rng = cases_g.groupby("dmax_group")["dmax_mm"].agg(["min", "max", "size"])
        ticktext = [
            _group_label(g, *rng.loc[g, ["min", "max", "size"]]) if g in rng.index else g for g in groups
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
    return attach_static(fig, lambda: _figure6_mpl(df, tla, nets, groups, titles, ticktext, ttl))


def _cm(mm: float) -> str:
    """A cut point in cm as the paper prints it: ``90.0`` -> ``"9"``, ``187.5`` -> ``"18.8"``."""
    return f"{mm / 10:.1f}".removesuffix(".0")


def _group_label(group: str, low_mm: float, high_mm: float, n: int, cut: bool = False) -> str:
    """``"G0 (9.0-10.5 cm, N = 2)"``; one value where the group's cases share it (``"G1 (19.0 cm, N = 1)"``);
    with ``cut`` the group's cut points as the paper prints them (``"G0 (0-9 cm, N = 2)"``)."""
    if cut:
        return f"{group} ({_cm(low_mm)}-{_cm(high_mm)} cm, N = {int(n)})"
    span = (
        f"{low_mm / 10:.1f}"
        if f"{low_mm / 10:.1f}" == f"{high_mm / 10:.1f}"
        else f"{low_mm / 10:.1f}-{high_mm / 10:.1f}"
    )
    return f"{group} ({span} cm, N = {int(n)})"


def _figure6_mpl(
    df: pd.DataFrame,
    tla: pd.DataFrame,
    nets: list[str],
    groups: list[str],
    titles: list[str],
    ticktext: list[str],
    title: str,
) -> matplotlib.figure.Figure:
    return boxes_mpl(
        [(t, df[df["network"] == n]) for t, n in zip(titles, nets, strict=False)],
        "dmax_group",
        groups,
        title,
        "outliers",
        seed=0,
        bars=(titles[-1], tla),
        tick_labels=ticktext,
    )
