"""Figure 5 (paper 3.3): median DSC above TMTV (patient) and MTV (lesion) thresholds, with TLA areas."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pcatools.figures.inputs import require_columns
from pcatools.figures.output import attach_static
from pcatools.figures.style import PANEL, new_mpl_figure
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

__all__ = ["CURVE_COLUMNS", "figure5_data", "figure5"]

CURVE_COLUMNS = ("network", "loss", "scenario", "threshold_q", "threshold", "n", "median_dice", "median_tla")
"""Columns of a :func:`pcatools.stats.threshold_curve` table, what :func:`figure5_data` reads."""

_TLA_GREYS = ("#555555", "#9E9E9E", "#BBBBBB")  # one TLA area per network


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
    require_columns(patient_curve, CURVE_COLUMNS, "figure5 patient_curve (threshold_curve output)")
    require_columns(lesion_curve, CURVE_COLUMNS, "figure5 lesion_curve (threshold_curve output)")
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
    from plotly.subplots import make_subplots  # deferred: start-up (see tests/test_imports.py)

    df = figure5_data(patient_curve, lesion_curve)
    nets = ordered(df["network"], NETWORK_LABELS)
    scen = [str(s) for s in ordered(df["scenario"], SCENARIOS)]
    cols = [(lv, s) for lv in ("patient", "lesion") for s in scen]
    col_titles = [f"{'Patient (TMTV)' if lv == 'patient' else 'Lesion (MTV)'}: {s}" for lv, s in cols]
    row_titles = [f"({PANEL[i]}) {network_label(n)}" for i, n in enumerate(nets)] + [
        f"({PANEL[len(nets)]}) TLA"
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
                    line={"color": _TLA_GREYS[i % len(_TLA_GREYS)]},
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
    return attach_static(fig, lambda: _figure5_mpl(df, nets, cols, col_titles, row_titles, ttl))


def _figure5_mpl(
    df: pd.DataFrame,
    nets: list[str],
    cols: list[tuple[str, str]],
    col_titles: list[str],
    row_titles: list[str],
    title: str,
) -> matplotlib.figure.Figure:
    mfig = new_mpl_figure(3.2 * max(1, len(cols)), 2.5 * (len(nets) + 1) + 0.5)
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
                    color=_TLA_GREYS[i % len(_TLA_GREYS)],
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
