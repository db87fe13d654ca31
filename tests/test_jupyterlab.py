"""The README's JupyterLab command works: the command names an executable of ``.venv/bin``, the
server it starts serves Lab, and in a real browser (Debian's chromium driven by Playwright) the
notebooks run to what a user should see: Table 1, plotly figures and live ipywidgets.

Where chromium or Playwright is missing the browser tests skip, except under ``CI=true``, where
they fail so that a missing install step (``scripts/install_system_deps.sh``, the ``dev`` extra)
is caught. Screenshots go to ``tests/_artifacts/`` (git-ignored); the README shows a copy of the
first, ``docs/figures/jupyterlab_04_overall.png``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import REPO, _die_with_parent

ARTIFACTS = REPO / "tests" / "_artifacts"
LAB_NOTEBOOKS = ARTIFACTS / "jupyterlab"  # notebook copies with a parameters cell for the tiny study
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
START_TIMEOUT_S = 180  # Lab's first start on a busy 2-core machine took ~20 s (measured); leave room
UI_TIMEOUT_MS = 180_000  # every Playwright wait: loading Lab's bundle and running a notebook's cells
README_COMMAND = re.compile(r"`(\.venv/bin/jupyter lab\b[^`]*)`")


def _missing(what: str, how: str) -> NoReturn:
    """Skip for a user without ``what``; fail under CI, where its absence means a broken install step."""
    message = f"{what} not found ({how})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true, so this is an error rather than a skip")
    pytest.skip(message)


def _chromium() -> str:
    """Path of Debian's chromium; Playwright drives it instead of downloading a browser of its own."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
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


@dataclass
class Lab:
    url: str  # http://127.0.0.1:<port>
    token: str
    log: Path

    def page_url(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}?token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_jupyter_env(home: Path) -> dict[str, str]:
    """Environment whose Jupyter config, data, runtime and IPython folders are empty folders under
    ``home``, so no setting, workspace or startup file of the user's changes what the test sees.

    Lab's user settings (``JUPYTERLAB_SETTINGS_DIR``) attach every notebook cell to the page
    (``windowingMode: none``; Lab otherwise leaves off-screen cells out of the DOM) and never ask
    about or fetch Jupyter news (a pop-up over the screenshots, and a request to the internet).
    """
    env = dict(os.environ)
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "config" / "lab" / "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "config" / "lab" / "workspaces",
        "IPYTHONDIR": home / "ipython",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    settings = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    env.pop("JUPYTER_PATH", None)  # only this environment's kernels and Lab extensions
    env.pop("JUPYTER_TOKEN", None)
    return env


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def _log_tail(log: Path, n: int = 40) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(lines[-n:])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """``jupyter lab`` (the README's ``.venv/bin/jupyter`` when the tests run from ``.venv``) serving
    the checkout on a free port with a random token, up until ``/lab`` answers; stopped afterwards.

    The server is stopped with SIGTERM (it then shuts its kernels down), killed if it does not exit
    within 30 s, and gets SIGTERM if the test process dies first.
    """
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.is_file():
        _missing(f"{jupyter}", "install the notebooks extra (`pip install -e '.[notebooks]'`)")
    home = tmp_path_factory.mktemp("jupyter_home")
    port, token = _free_port(), secrets.token_hex(16)
    log = home / "jupyter_lab.log"
    argv = [
        str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
        "--ServerApp.open_browser=False",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI runners; Jupyter refuses root without it
        argv.append("--allow-root")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=_fresh_jupyter_env(home), stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {proc.returncode}:\n{_log_tail(log)}")
            try:
                status, _ = _get(server.page_url("lab"), timeout=5)
                if status == 200:
                    break
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer /lab within {START_TIMEOUT_S} s:\n{_log_tail(log)}")
            time.sleep(0.5)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_jupyterlab_serves_lab(lab: Lab) -> None:
    """``/lab`` answers 200 with JupyterLab's page, and refuses a request without the token."""
    status, html = _get(lab.page_url("lab"))
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
    status, _ = _get(f"{lab.url}/api/contents")
    assert status == 403, f"/api/contents without the token answered {status}, not 403"


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium under Playwright (``--no-sandbox``: the tests may run as root)."""
    exe = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright", "install the dev extra (`pip install -e '.[dev]'`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            b.close()


def _lab_notebook(name: str, run_dir: Path) -> Path:
    """Copy of ``notebooks/<name>.ipynb`` under ``tests/_artifacts/jupyterlab/`` (inside Lab's root,
    out of git) whose parameters cell reads the tiny study ``run_dir``, as papermill does in CI."""
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert re.search(r"^run_dir = ", cell.source, re.M), f"{name}: no run_dir in the parameters cell"
    cell.source = re.sub(r"^run_dir = .*$", f"run_dir = {str(run_dir)!r}", cell.source, flags=re.M)
    cell.source = re.sub(r"^profile = .*$", 'profile = "ci"', cell.source, flags=re.M)
    # Unpaired: jupytext would write a .py beside the copy on save, and refuse to open the copy
    # on the next run (an error dialog over the notebook) because the .ipynb is the newer file.
    nb.metadata.pop("jupytext", None)
    LAB_NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    (LAB_NOTEBOOKS / f"{name}.py").unlink(missing_ok=True)  # left by an earlier, paired version
    path = LAB_NOTEBOOKS / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


# True once the notebook's kernel is connected and idle. The execution indicator alone says "idle"
# before Lab has even chosen a kernel (status bar: "No Kernel | Initializing", seen in a trace), and
# Run All then runs nothing; the status bar's kernel item names the kernel once it is connected.
KERNEL_IDLE = """() => {
  const indicator = document.querySelector(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  const items = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent.trim());
  return indicator !== null && indicator.getAttribute('data-status') === 'idle'
    && items.some(t => / \\| Idle$/.test(t) && !t.startsWith('No Kernel'));
}"""

# True once every code cell has an execution count and the kernel is idle; "error" as soon as a cell
# shows a traceback (Run All then stops, and the remaining cells would never get a count).
ALL_CELLS_RAN = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return false;
  const outputs = [...panel.querySelectorAll('.jp-OutputArea-output')];
  if (outputs.some(o => o.textContent.includes('Traceback (most recent call last)'))) return 'error';
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  const busy = panel.querySelector('.jp-Notebook-ExecutionIndicator:not([data-status="idle"])');
  return prompts.length > 0 && !busy && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def _outputs_text(page: Any) -> str:
    """Every output of the open notebook as text, for a failure message."""
    texts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output").all_inner_texts()
    return "\n---\n".join(t[:800] for t in texts)[-6000:]


def _open_and_run_all(page: Any, lab: Lab, notebook: Path) -> None:
    """Open ``notebook`` in Lab (``/lab/workspaces/<stem>/tree/<path>``), wait for its kernel, run Run > Run All Cells, and wait until every
    code cell has an execution count and the kernel is idle again (a cell that raises stops the run
    and fails here, with the notebook's outputs in the message)."""
    # A workspace of its own: Lab would otherwise reopen (and reconnect) the previous test's notebook.
    path = f"lab/workspaces/{notebook.stem}/tree/{notebook.relative_to(REPO).as_posix()}"
    page.goto(lab.page_url(path), wait_until="domcontentloaded")
    page.wait_for_function(KERNEL_IDLE, timeout=UI_TIMEOUT_MS, polling=250)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    try:
        done = page.wait_for_function(ALL_CELLS_RAN, timeout=UI_TIMEOUT_MS, polling=500).json_value()
    except Exception as e:  # playwright's TimeoutError; the outputs say which cell hung
        shot = _failure_screenshot(page, notebook)
        raise AssertionError(
            f"{notebook.name}: not every cell ran in Lab ({e}); screenshot {shot};\noutputs:\n{_outputs_text(page)}"
        ) from None
    if done is not True:
        shot = _failure_screenshot(page, notebook)
        raise AssertionError(f"{notebook.name} raised in Lab (screenshot {shot}):\n{_outputs_text(page)}")


def _failure_screenshot(page: Any, notebook: Path) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"jupyterlab_failed_{notebook.stem}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.mark.slow
def test_04_overall_runs_in_jupyterlab(lab: Lab, page: Any, ci_study: Path) -> None:
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

    page.wait_for_function(KERNEL_IDLE, timeout=UI_TIMEOUT_MS, polling=250)
    page.locator(".jp-OutputArea .jp-RenderedMarkdown table").first.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab_04_overall.png"))


@pytest.mark.slow
def test_06_volume_widgets_update_output_in_jupyterlab(lab: Lab, page: Any, ci_study: Path) -> None:
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
