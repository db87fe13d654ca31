"""Figure 4 (paper 3.2): DSC by lesion scenario (S / M) and loss, box plots with swarm points."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from pcatools.figures.boxes import box_traces, boxes_mpl
from pcatools.figures.inputs import require_columns
from pcatools.figures.output import attach_static
from pcatools.figures.style import PANEL
from pcatools.vocabulary import NETWORK_LABELS, SCENARIOS, network_label, ordered

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import plotly.graph_objects as go

__all__ = ["figure4_data", "figure4"]


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
    require_columns(cases, ["network", "loss", "scenario", "dice"], "figure4 (per-case table)")
    cols = ["network", "loss", "scenario", "dice"] + (["case_id"] if "case_id" in cases.columns else [])
    keep = cases["dice"].notna() & cases["scenario"].notna() & (cases["scenario"].astype(str) != "none")
    out = cases.loc[keep, cols].reset_index(drop=True)
    return out


def figure4(cases: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Figure 4: box plots overlaid with strip (jittered swarm) plots of DSC by scenario and loss.

    One panel per network ((a) Attention U-Net, (b) SegResNet); x = scenario (S = one lesion,
    M = two or more); one coloured box per loss. Boxes: quartiles, median, whiskers at 1.5 IQR
    (plotly's and matplotlib's default, as in the paper). The paper's swarm is drawn as all points
    with jitter (seeded in the PNG).
    """
    from plotly.subplots import make_subplots  # deferred: start-up (see tests/test_imports.py)

    df = figure4_data(cases)
    nets = ordered(df["network"], NETWORK_LABELS)
    scen = [str(s) for s in ordered(df["scenario"].astype(str), SCENARIOS)]
    fig = make_subplots(
        rows=1,
        cols=max(1, len(nets)),
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=[f"({PANEL[i]}) {network_label(n)}" for i, n in enumerate(nets)],
    )
    for c, net in enumerate(nets, start=1):
        for tr in box_traces(
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
    return attach_static(fig, lambda: _figure4_mpl(df, nets, scen, ttl))


def _figure4_mpl(df: pd.DataFrame, nets: list[str], scen: list[str], title: str) -> matplotlib.figure.Figure:
    return boxes_mpl(
        [(f"({PANEL[i]}) {network_label(n)}", df[df["network"] == n]) for i, n in enumerate(nets)],
        "scenario",
        scen,
        title,
        "all",
        seed=0,
        bars=None,
    )
