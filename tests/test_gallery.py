"""pcatools.figures.gallery: one declaration of every image README.md and docs/ show, one command.

Known answers: the images the pages reference are exactly the declared ones, each file under
``docs/figures/``; the command, run as ``python -m pcatools.figures.gallery`` on the tests' ``ci``
study and its evaluation, writes each study and evaluation image with the same pixels as the
run's own ``figures/figureN.png`` (the same producer the study and ``pcatools evaluate`` use),
the phantom overview with the pixels of the committed ``docs/figures/phantom.png``; without a
display and with no chromium on ``PATH`` it says in one line each which screenshot was not written
and why. Under Xvfb (``gui``) with chromium it writes every declared image, the napari screenshots
(the L1 weights' colour bar drawn) and JupyterLab's included.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcatools.figures.gallery import GALLERY
from pcatools.figures.screenshots import VIEWPORT, browser_problem, l1_weights_screenshot
from tests.conftest import REPO

#: an image in Markdown (``![alt](path)``) or HTML (``<img src="path">``)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img\s[^>]*src=[\"']([^\"']+)[\"']")


def referenced_images(text: str) -> list[str]:
    """The file names of the images a Markdown page shows."""
    return [Path(a or b).name for a, b in IMAGE.findall(text)]


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _gallery_command(study: Path, evaluation: Path, out: Path, env: dict[str, str]) -> list[str]:
    """``python -m pcatools.figures.gallery STUDY OUT --evaluation EVALUATION`` in ``env``: its lines."""
    argv = [
        sys.executable,
        "-m",
        "pcatools.figures.gallery",
        str(study),
        str(out),
        "--evaluation",
        str(evaluation),
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, env={**env, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()


def test_the_image_parser_finds_both_forms() -> None:
    text = '![Fig 3](docs/figures/a.png) and <img src="figures/b.png" width=300> and ![x](c.png "title")'
    assert referenced_images(text) == ["a.png", "b.png", "c.png"]


def test_every_image_the_pages_show_is_declared_and_every_declared_image_exists() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    shown = {name: page for page in pages for name in referenced_images(page.read_text(encoding="utf-8"))}
    declared = [image.name for image in GALLERY]
    assert len(declared) == len(set(declared))
    assert set(shown) - set(declared) == set(), {n: str(shown[n]) for n in set(shown) - set(declared)}
    on_disk = {p.name for p in (REPO / "docs" / "figures").iterdir() if p.suffix in {".png", ".jpg", ".svg"}}
    assert on_disk == set(declared)
    assert {"demo_figure3.png", "evaluate_figure3.png", "l1_weights_napari.png"} <= set(shown)


def test_the_command_writes_each_study_and_evaluation_image(
    ci_study: Path, ci_evaluation: Path, tmp_path: Path
) -> None:
    out = tmp_path / "figures"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = str(Path(sys.executable).parent)  # no chromium: the JupyterLab picture says so
    lines = _gallery_command(ci_study, ci_evaluation, out, env)
    assert lines[:4] == [
        f"wrote {out / name}"
        for name in ("demo_figure3.png", "demo_figure6.png", "evaluate_figure3.png", "phantom.png")
    ]
    assert lines[4].startswith("l1_weights_napari.png: not written: needs a display")
    assert lines[5] == "jupyterlab_04_overall.png: not written: no chromium (scripts/install_system_deps.sh)"
    assert lines[6].startswith("viewer.png: not written: needs a display")
    assert len(lines) == 7 == len(GALLERY)
    assert sorted(p.name for p in out.iterdir()) == [
        "demo_figure3.png",
        "demo_figure6.png",
        "evaluate_figure3.png",
        "phantom.png",
    ]  # nothing half-written
    for name, own in (
        ("demo_figure3.png", ci_study / "figures" / "figure3.png"),
        ("demo_figure6.png", ci_study / "figures" / "figure6.png"),
        ("evaluate_figure3.png", ci_evaluation / "figures" / "figure3.png"),
        ("phantom.png", REPO / "docs" / "figures" / "phantom.png"),
    ):
        np.testing.assert_array_equal(_pixels(out / name), _pixels(own), err_msg=name)


def test_only_picks_images_and_an_unknown_name_is_refused(ci_study: Path, tmp_path: Path) -> None:
    from pcatools.figures.gallery import main, regenerate

    done = regenerate(ci_study, tmp_path, only=["demo_figure6.png"])
    assert done == {"demo_figure6.png": tmp_path / "demo_figure6.png"}
    assert [p.name for p in tmp_path.iterdir()] == ["demo_figure6.png"]
    with pytest.raises(ValueError, match=r"unknown image\(s\) \['nope.png'\]; expected names among"):
        regenerate(ci_study, tmp_path, only=["nope.png"])
    assert main([str(ci_study), str(tmp_path), "--only", "nope.png"]) == 2


@pytest.mark.slow
@pytest.mark.gui
def test_the_napari_screenshot_is_written_under_xvfb(
    ci_study: Path, xvfb_display: str | None, tmp_path: Path
) -> None:
    pytest.importorskip("napari", reason="napari is not installed (pip install 'pcatools[viewer]')")
    if xvfb_display is None:
        pytest.skip("Xvfb or PyQt6 is not installed (run scripts/install_system_deps.sh)")
    from napari.utils.colormaps import ensure_colormap

    from pcatools.viewer import SCREENSHOT_SIZE

    out = tmp_path / "l1_weights_napari.png"
    l1_weights_screenshot(ci_study, out)
    img = _pixels(out).astype(int)
    assert img.shape[:2] == SCREENSHOT_SIZE[::-1]
    assert list(tmp_path.iterdir()) == [out]
    top = (np.asarray(ensure_colormap("viridis").map(np.array([1.0])))[0, :3] * 255).astype(int)
    assert (np.abs(img - top).max(axis=-1) <= 12).sum() > 20  # the weights' colour bar is drawn


@pytest.mark.slow
@pytest.mark.gui
def test_the_command_writes_every_declared_image_under_xvfb_with_chromium(
    ci_study: Path, ci_evaluation: Path, xvfb_display: str | None, tmp_path: Path
) -> None:
    """With a display and chromium the command writes all of GALLERY, the screenshots included."""
    pytest.importorskip("napari", reason="napari is not installed (pip install 'pcatools[viewer]')")
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -e '.[dev]')")
    if xvfb_display is None:
        pytest.skip("Xvfb or PyQt6 is not installed (run scripts/install_system_deps.sh)")
    if browser_problem() is not None:
        pytest.skip(f"the JupyterLab screenshot needs {browser_problem()}")
    out = tmp_path / "figures"
    lines = _gallery_command(ci_study, ci_evaluation, out, dict(os.environ))
    assert lines == [f"wrote {out / image.name}" for image in GALLERY]
    assert sorted(p.name for p in out.iterdir()) == sorted(image.name for image in GALLERY)
    lab = _pixels(out / "jupyterlab_04_overall.png")
    assert lab.shape == (VIEWPORT["height"], VIEWPORT["width"], 3)  # the browser's viewport, 1 CSS px = 1 px
    assert max(_pixels(out / "viewer.png").shape[:2]) == 1000  # save_viewer_screenshot's thumbnail
