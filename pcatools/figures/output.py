"""Writing figures: the static (matplotlib) twin of each plotly figure, and HTML / PNG files.

Every ``figureN`` attaches a renderer of its own data with :func:`attach_static`; the PNG is drawn
by matplotlib from the same data as the HTML, headless, so no browser is needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcatools._atomic import atomic_path, write_text_atomic
from pcatools.figures.style import figure_style

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import plotly.graph_objects as go

__all__ = ["attach_static", "static_figure", "save_figure"]

_STATIC = "_pcatools_static"  # plotly allows private attributes on a figure


def attach_static(fig: go.Figure, render: Callable[[], matplotlib.figure.Figure]) -> go.Figure:
    """Attach ``render`` (which draws ``fig``'s data with matplotlib) to ``fig``; return ``fig``."""
    setattr(fig, _STATIC, render)
    return fig


def static_figure(fig: Any) -> matplotlib.figure.Figure:
    """The matplotlib twin of a figure made by :mod:`pcatools.figures` (a matplotlib Figure passes through).

    The twin is drawn in matplotlib's default style (:func:`~pcatools.figures.style.figure_style`).
    Raises ``TypeError`` for a plotly figure not made there (it has no static renderer).
    """
    from matplotlib.figure import Figure  # deferred: start-up (see tests/test_imports.py)

    if isinstance(fig, Figure):
        return fig
    render = getattr(fig, _STATIC, None)
    if render is None:
        raise TypeError(
            f"static_figure: {type(fig).__name__} was not made by pcatools.figures (no static renderer "
            "attached; note that go.Figure(fig) copies drop it)"
        )
    with figure_style():
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
    matplotlib from the same data (:func:`static_figure`), in matplotlib's default style whatever
    the process's ``rcParams`` hold, so the same data give the same file anywhere; a plotly figure not made by
    :mod:`pcatools.figures` falls back to ``fig.write_image`` (needs kaleido and Chrome).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from pcatools.figures.figure7 import figure7
    >>> fig = figure7({"dice": ([0.1, 0.9], [0.8, 0.1])})
    >>> out = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "f7", formats=("png",))
    >>> out["png"].suffix
    '.png'
    """
    from matplotlib.figure import Figure  # deferred: start-up (see tests/test_imports.py)

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
        elif isinstance(fig, Figure) or hasattr(fig, _STATIC):
            with figure_style(), atomic_path(target) as tmp:  # drawn and saved in one style
                if mfig is None:
                    mfig = static_figure(fig)
                mfig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white")
        else:
            with atomic_path(target) as tmp:
                fig.write_image(str(tmp), format=fmt)
        out[fmt] = target
    return out
