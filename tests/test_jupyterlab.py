"""The README's JupyterLab command works: the command names an executable of ``.venv/bin``, the
server it starts serves Lab, and in a real browser (Debian's chromium driven by Playwright) the
notebooks run to what a user should see: Table 1, plotly figures and live ipywidgets.

Where chromium or Playwright is missing the browser tests skip, except under ``CI=true``, where
they fail so that a missing install step (``scripts/install_system_deps.sh``, the ``dev`` extra)
is caught. Screenshots go to ``tests/_artifacts/`` (git-ignored). The server, browser, Run All and
notebook 04's screenshot are :mod:`pcatools.figures.screenshots`' functions, the ones the gallery
command uses for ``docs/figures/jupyterlab_04_overall.png``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pcatools.figures.screenshots import (
    KERNEL_IDLE,
    UI_TIMEOUT_MS,
    LabServer,
    browser_page,
    chromium_path,
    headless_chromium,
    http_get,
    jupyter_lab,
    lab_notebook,
    run_all_cells,
    screenshot_04_overall,
)
from tests.conftest import REPO

ARTIFACTS = REPO / "tests" / "_artifacts"
LAB_NOTEBOOKS = ARTIFACTS / "jupyterlab"  # notebook copies with a parameters cell for the tiny study
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
README_COMMAND = re.compile(r"`(\.venv/bin/jupyter lab\b[^`]*)`")


def _missing(what: str, how: str) -> NoReturn:
    """Skip for a user without ``what``; fail under CI, where its absence means a broken install step."""
    message = f"{what} not found ({how})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true, so this is an error rather than a skip")
    pytest.skip(message)


def _chromium() -> str:
    """Path of Debian's chromium; Playwright drives it instead of downloading a browser of its own."""
    exe = chromium_path()
    if exe is None:
        _missing("chromium", "install it with `bash scripts/install_system_deps.sh`")
    return exe


# --- the README's command -------------------------------------------------------------------------


def test_readme_jupyterlab_command_names_a_venv_executable() -> None:
    """The one ``.venv/bin/jupyter lab ...`` command in README.md names ``.venv/bin/jupyter``, whose
    ``lab`` subcommand (``jupyter-lab``) is installed, and a folder of the checkout."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = README_COMMAND.findall(readme)
    assert len(commands) == 1, (
        f"expected one `.venv/bin/jupyter lab ...` command in README.md, found {commands}"
    )
    argv = shlex.split(commands[0])
    assert argv[:2] == [".venv/bin/jupyter", "lab"], argv
    venv_bin = REPO / ".venv" / "bin"
    if not venv_bin.is_dir():
        _missing(".venv", "make it with `bash scripts/setup.sh`")
    for exe in (REPO / argv[0], venv_bin / "jupyter-lab"):
        assert exe.is_file() and os.access(exe, os.X_OK), (
            f"{exe.relative_to(REPO)} is not an executable: the README's `{commands[0]}` cannot run; "
            "install the notebooks extra (`pip install -e '.[notebooks]'`)"
        )
    folders = [a for a in argv[2:] if not a.startswith("-")]
    for folder in folders:
        assert (REPO / folder).is_dir(), (
            f"the README's `{commands[0]}` opens {folder}, not a folder of the checkout"
        )


# --- the server -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """``jupyter lab`` (the README's ``.venv/bin/jupyter`` when the tests run from ``.venv``) serving
    the checkout (:func:`pcatools.figures.screenshots.jupyter_lab`, the gallery's server); stopped
    afterwards."""
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.is_file():
        _missing(f"{jupyter}", "install the notebooks extra (`pip install -e '.[notebooks]'`)")
    try:
        with jupyter_lab(REPO, tmp_path_factory.mktemp("jupyter_home")) as server:
            yield server
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.mark.slow
def test_jupyterlab_serves_lab(lab: LabServer) -> None:
    """``/lab`` answers 200 with JupyterLab's page, and refuses a request without the token."""
    status, html = http_get(lab.page_url("lab"))
    assert status == 200
    assert "<title>JupyterLab</title>" in html, html[:500]
    assert 'id="jupyter-config-data"' in html, "no Lab page config in /lab's markup"
    assert '"appName": "JupyterLab"' in html
    # scripts/setup.sh disables the "Jupyter news" pop-up's plugin for this environment (not only for
    # these tests' fresh user settings), so a user's first start shows the page, not the question
    config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"], config.get(
        "disabledExtensions"
    )
    status, _ = http_get(f"{lab.url}/api/contents")
    assert status == 403, f"/api/contents without the token answered {status}, not 403"


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium under Playwright (:func:`pcatools.figures.screenshots.headless_chromium`)."""
    _chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright", "install the dev extra (`pip install -e '.[dev]'`)")
    with headless_chromium() as b:
        yield b


def _lab_notebook(name: str, run_dir: Path) -> Path:
    """Copy of ``notebooks/<name>.ipynb`` under ``tests/_artifacts/jupyterlab/`` (inside Lab's root,
    out of git) whose parameters cell reads the tiny study ``run_dir``."""
    return lab_notebook(name, run_dir, LAB_NOTEBOOKS)


def _open_and_run_all(page: Any, lab: LabServer, notebook: Path) -> None:
    """Run All Cells on ``notebook`` in Lab; a failure leaves ``jupyterlab_failed_<stem>.png``."""
    run_all_cells(page, lab, notebook, failure_png=ARTIFACTS / f"jupyterlab_failed_{notebook.stem}.png")


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    with browser_page(browser) as pg:
        yield pg


@pytest.mark.slow
def test_04_overall_runs_in_jupyterlab(lab: LabServer, page: Any, ci_study: Path) -> None:
    """Run All on notebook 04 in Lab draws Table 1 (six network x loss rows), plotly's Figure 3 and
    the case dropdown, and picking another case in the dropdown draws that case's figure."""
    notebook = _lab_notebook("04_overall", ci_study)
    _open_and_run_all(page, lab, notebook)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    table1 = panel.locator(".jp-OutputArea .jp-RenderedMarkdown table").first
    header = table1.locator("thead").inner_text()
    for column in ("Network", "Loss", "DSC mean", "TP", "FP", "FN", "F1"):
        assert column in header, f"Table 1's header lacks {column!r}: {header!r}"
    rows = table1.locator("tbody tr")
    assert rows.count() == 6, (
        f"Table 1 has {rows.count()} body rows, not 2 networks x 3 losses:\n{table1.inner_text()}"
    )
    losses = [rows.nth(i).locator("td").nth(1).inner_text().strip() for i in range(6)]
    assert losses == ["DL", "DFL", "L1DFL"] * 2, losses

    plots = panel.locator(".jp-OutputArea .js-plotly-plot")
    plots.first.wait_for()
    assert panel.locator(".jp-OutputArea .plot-container .main-svg").count() > 0, "plotly drew no SVG"

    select = panel.locator(".widget-dropdown select").first
    select.wait_for()
    options = select.locator("option").all_inner_texts()
    assert len(options) >= 2, f"the case dropdown offers {options}"
    figure_out = panel.locator(".widget-vbox .widget-output")
    assert figure_out.locator(".js-plotly-plot").count() == 0  # empty until a case is picked
    select.select_option(label=options[1])
    figure_out.locator(".js-plotly-plot").wait_for()
    title = figure_out.locator(".gtitle").first.text_content() or ""
    assert options[1] in title, f"picked case {options[1]!r}, the figure's title is {title!r}"

    screenshot_04_overall(page, ARTIFACTS / "jupyterlab_04_overall.png")  # the gallery's picture


@pytest.mark.slow
def test_06_volume_widgets_update_output_in_jupyterlab(lab: LabServer, page: Any, ci_study: Path) -> None:
    """In notebook 06 the ``level`` toggle of the ipywidgets ``interact`` redraws the table below it:
    the kernel receives the click and the new output reaches the page."""
    notebook = _lab_notebook("06_volume", ci_study)
    _open_and_run_all(page, lab, notebook)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    interact = panel.locator(".widget-interact").first
    output = interact.locator(".widget-output")
    output.locator("table").wait_for()
    before = output.inner_text()
    lesion = interact.locator(".widget-toggle-button", has_text="lesion (MTV)")
    assert "mod-active" not in (lesion.get_attribute("class") or "")
    lesion.click()
    page.wait_for_function(
        "([el, before]) => el.innerText !== before && el.querySelector('table') !== null",
        arg=[output.element_handle(), before],
        timeout=UI_TIMEOUT_MS,
    )
    assert "mod-active" in (lesion.get_attribute("class") or ""), "the toggle did not switch to lesion (MTV)"
    after = output.inner_text()
    assert after != before

    page.wait_for_function(KERNEL_IDLE, timeout=UI_TIMEOUT_MS, polling=250)
    interact.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab_06_volume.png"))
