"""Every image that README.md and ``docs/`` show, declared once with its producer, and the one
command that regenerates them.

``python -m pcatools.figures.gallery RUN_DIR docs/figures [--evaluation DIR] [--only NAME ...]``
writes each declared image whose producer can run here into ``docs/figures/`` (atomically) and
lists what it wrote and what it did not, with why. One declaration lets a test check that no page
shows an image nobody can remake, and that each producer still writes its image.

What each image needs (:attr:`GalleryImage.needs`):

- ``"study"``: a finished study run folder (``RUN_DIR``, e.g. ``runs/demo``);
- ``"evaluation"``: a ``pcatools evaluate`` folder (``--evaluation DIR``); without it the study's own
  test predictions are evaluated into a temporary folder when the study made its cohort in
  ``RUN_DIR/data``;
- ``"nothing"``: made from the built-in phantom alone;
- ``"display"``: a study run folder and a napari window, so an X display
  (``xvfb-run -a python -m pcatools.figures.gallery ...``);
- ``"browser"``: a study run folder, and Debian's chromium with Playwright to run a notebook in
  JupyterLab (:mod:`pcatools.figures.screenshots`).

An image whose needs are not met here is not written; the command says so in one line naming what
is missing and how to install it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pcatools.analysis import figure3_for_study, load_study
from pcatools.evaluation import evaluate_folders, study_predictions
from pcatools.figures.figure6 import figure6
from pcatools.figures.output import save_figure
from pcatools.figures.screenshots import (
    browser_problem,
    jupyterlab_04_overall_png,
    l1_weights_screenshot,
    viewer_png,
)

__all__ = [
    "GALLERY",
    "GalleryImage",
    "Needs",
    "figure3_png",
    "figure6_png",
    "regenerate",
]

Needs = Literal["study", "evaluation", "nothing", "display", "browser"]
"""What an image's producer reads (see the module docstring)."""


@dataclass(frozen=True)
class GalleryImage:
    """One image of README.md or ``docs/``: its file, what its producer needs, the producer, what it shows.

    ``producer`` is a function ``(folder, path) -> None`` writing the PNG ``path`` from the study or
    evaluation folder (``None`` for ``needs="nothing"``).
    """

    name: str
    needs: Needs
    producer: Callable[[Path | None, Path], None]
    shows: str


def figure3_png(folder: Path | None, path: Path) -> None:
    """Figure 3 (one case, the ground truth and every model's mask) of a study or evaluation folder,
    for the case the run's own ``figures/figure3.png`` shows."""
    save_figure(figure3_for_study(load_study(_folder(folder))), path, formats=("png",))


def figure6_png(folder: Path | None, path: Path) -> None:
    """Figure 6 (DSC per Dmax group) of a study or evaluation folder, from its ``dmax_groups`` table."""
    save_figure(figure6(load_study(_folder(folder)).table("dmax_groups")), path, formats=("png",))


def _phantom_png(folder: Path | None, path: Path) -> None:
    from pcatools.data.phantom.figure import save_overview  # deferred: start-up (see tests/test_imports.py)

    save_overview(path)


def _folder(folder: Path | None) -> Path:
    if folder is None:
        raise ValueError("gallery: this image's producer needs a study or evaluation folder, found none")
    return folder


GALLERY: tuple[GalleryImage, ...] = (
    GalleryImage(
        "demo_figure3.png", "study", figure3_png, "Figure 3 of the demo study (README, docs/demo.md)"
    ),
    GalleryImage("demo_figure6.png", "study", figure6_png, "Figure 6 of the demo study (docs/demo.md)"),
    GalleryImage(
        "evaluate_figure3.png",
        "evaluation",
        figure3_png,
        "Figure 3 of a pcatools evaluate folder (docs/evaluate.md)",
    ),
    GalleryImage(
        "phantom.png", "nothing", _phantom_png, "four phantom cases, PET MIP and CT (docs/phantom.md)"
    ),
    GalleryImage(
        "l1_weights_napari.png",
        "display",
        l1_weights_screenshot,
        "napari: the L1 weights of a training patch (docs/napari.md)",
    ),
    GalleryImage(
        "jupyterlab_04_overall.png",
        "browser",
        jupyterlab_04_overall_png,
        "notebook 04 in JupyterLab after Run All Cells (docs/index.md)",
    ),
    GalleryImage(
        "viewer.png",
        "display",
        viewer_png,
        "napari: PET/CT, ground truth and L1 bins of a training patch (kept in docs/figures, not shown)",
    ),
)
"""Every image under ``docs/figures/``, in the order the command makes them."""


def _display_problem() -> str | None:
    from pcatools.viewer import display_problem  # deferred: start-up (see tests/test_imports.py)

    return display_problem()


def _evaluate_study(run_dir: Path, into: Path) -> Path:
    """The study's test predictions evaluated like any model's into ``into`` (its cohort is ``RUN_DIR/data``)."""
    data = run_dir / "data"
    if not data.is_dir():
        raise FileNotFoundError(
            f"{run_dir}: expected the study's cohort in {data} to evaluate its predictions, found none; "
            "pass --evaluation DIR"
        )
    out = into / "evaluation"
    evaluate_folders(
        out,
        data,
        pred=study_predictions(run_dir),
        suv=data,
        allow_missing=True,
        workers=0,
        progress=False,
        figures=False,
    )
    return out


def regenerate(
    run_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    evaluation: str | os.PathLike[str] | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Path | str]:
    """Write the declared images (all, or those named in ``only``) into ``out_dir``.

    Returns ``{name: path}`` for each image written and ``{name: reason}`` for each not written (no
    display, no browser, no folder given). An unknown name in ``only`` raises ``ValueError``.
    """
    known = {image.name: image for image in GALLERY}
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ValueError(f"gallery: unknown image(s) {unknown}; expected names among {sorted(known)}")
    chosen = [image for image in GALLERY if only is None or image.name in only]
    out = Path(out_dir)
    study = Path(run_dir) if run_dir is not None else None
    done: dict[str, Path | str] = {}
    with tempfile.TemporaryDirectory(prefix="pcatools-gallery-") as scratch:
        evaluated = Path(evaluation) if evaluation is not None else None
        for image in chosen:
            if image.needs == "display" and (problem := _display_problem()) is not None:
                done[image.name] = f"not written: needs a display ({problem}); run under xvfb-run -a"
                continue
            if image.needs == "browser" and (problem := browser_problem()) is not None:
                done[image.name] = f"not written: {problem}"
                continue
            if image.needs in ("study", "display", "browser") and study is None:
                done[image.name] = "not written: needs a study run folder (RUN_DIR)"
                continue
            folder: Path | None = study
            if image.needs == "evaluation":
                if evaluated is None:
                    if study is None:
                        done[image.name] = "not written: needs --evaluation DIR or a study run folder"
                        continue
                    evaluated = _evaluate_study(study, Path(scratch))
                folder = evaluated
            elif image.needs == "nothing":
                folder = None
            image.producer(folder, out / image.name)
            done[image.name] = out / image.name
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pcatools.figures.gallery RUN_DIR OUT_DIR [--evaluation DIR] [--only NAME ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pcatools.figures.gallery", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="a finished study run folder, e.g. runs/demo")
    parser.add_argument("out_dir", type=Path, help="where the images go, e.g. docs/figures")
    parser.add_argument("--evaluation", type=Path, default=None, help="a pcatools evaluate folder")
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="only this image (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        done = regenerate(args.run_dir, args.out_dir, evaluation=args.evaluation, only=args.only)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, what in done.items():
        print(f"wrote {what}" if isinstance(what, Path) else f"{name}: {what}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
