"""Figure 7 (paper 2.6): each loss against the predicted probability of the true class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pcatools.figures.output import attach_static
from pcatools.figures.style import new_mpl_figure
from pcatools.vocabulary import LOSS_LABELS, loss_color, loss_label, ordered

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import plotly.graph_objects as go

__all__ = ["figure7_data", "figure7"]


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


def figure7(curves: Any = None, title: str | None = None) -> go.Figure:
    """Figure 7: loss against the predicted probability of the true class (ground truth 1).

    One line per loss from :func:`pcatools.losses.loss_vs_probability` (default: every registered
    loss, DL, DFL, L1DFL and yours, in the registry's order and colours); see
    :func:`figure7_data` for the accepted forms. The default title names the construction
    recorded in ``curves.attrs["construction"]`` ("per sample", the paper's definition, or
    "patch"), so that a patch-based curve is never mistaken for the paper's figure.
    """

    if curves is None:
        from pcatools.losses import loss_vs_probability  # deferred: start-up (see tests/test_imports.py)

        curves = loss_vs_probability()
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

    return attach_static(fig, lambda: _figure7_mpl(df, ttl))


def _figure7_mpl(df: pd.DataFrame, title: str) -> matplotlib.figure.Figure:
    mfig = new_mpl_figure(6.5, 4.5)
    ax = mfig.subplots()
    for loss in ordered(df["loss"], LOSS_LABELS):
        sel = df[df["loss"] == loss]
        ax.plot(sel["probability"], sel["value"], lw=2.2, color=loss_color(loss), label=loss_label(loss))
    ax.axvline(0.5, ls=":", color="grey")
    ax.set_xlim(0, 1)
    ax.set_xlabel("predicted probability of the true class, P(G)")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title(title)
    return mfig
