"""The paper's Figures 1-7 as functions returning plotly figures, each with a static (PNG) twin.

Each figure has three parts, in its own module ``pcatools.figures.figureN``:

- ``figureN_data(...)``: prepares the numbers drawn (validated inputs, tidy tables, 2-D
  projections); this is what the tests check against known answers;
- ``figureN(...)``: the interactive plotly figure built from that data (returned);
- a private matplotlib renderer of the *same* data, attached to the plotly figure and used by
  :func:`~pcatools.figures.output.save_figure` (and ``static_figure``) for the static PNG, so
  that a PNG needs no browser.

Shared: :mod:`~pcatools.figures.style` (GT / prediction colours, panel letters, image and mask
layers), :mod:`~pcatools.figures.inputs` (input checks, 2-D views of volumes),
:mod:`~pcatools.figures.boxes` (the box plots of Figures 4 and 6) and
:mod:`~pcatools.figures.output` (``save_figure``, ``static_figure``). Names, labels, colours and
order of networks and losses come from :mod:`pcatools.vocabulary`; unknown names (models of
``pcatools evaluate``) are shown as they are, each in a colour of its own.

Every public name is offered here (``from pcatools import figures; figures.figure3(...)``). The
function ``figureN`` shadows its module as an attribute of this package: reach a module with
``from pcatools.figures.figure3 import figure3_data`` or ``importlib.import_module``.
"""

from __future__ import annotations

from pcatools.figures.figure1 import PAPER_FIGURE1_G, PAPER_FIGURE1_P, figure1, figure1_data
from pcatools.figures.figure2 import DetectionView, figure2, figure2_data
from pcatools.figures.figure3 import figure3, figure3_data
from pcatools.figures.figure4 import figure4, figure4_data
from pcatools.figures.figure5 import figure5, figure5_data
from pcatools.figures.figure6 import figure6, figure6_data
from pcatools.figures.figure7 import figure7, figure7_data
from pcatools.figures.output import save_figure, static_figure
from pcatools.figures.seeds import seeds_figure, seeds_figure_data

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
    "seeds_figure_data",
    "seeds_figure",
]
