"""The two screenshots of the gallery that need more than matplotlib: a notebook in JupyterLab,
and a case in the napari window.

JupyterLab: :func:`jupyter_lab` starts ``jupyter lab`` on a free port in a fresh Jupyter
environment (:func:`fresh_jupyter_env`), :func:`headless_chromium` drives Debian's chromium
through Playwright, :func:`lab_notebook` copies a notebook with its parameters cell pointed at a
run folder, and :func:`run_all_cells` opens it and runs Run > Run All Cells.
:func:`jupyterlab_04_overall_png` chains them for ``docs/figures/jupyterlab_04_overall.png``; the
browser tests of ``tests/test_jupyterlab.py`` call the same functions, so that the picture and
the checks come from one code path. :func:`browser_problem` says in one line what is missing.

napari: :func:`save_viewer_screenshot` writes the docs' picture of an open viewer (PET/CT, the
ground truth outlined, the L1 bins), :func:`viewer_png` opens a study's training patch for it, and
:func:`l1_weights_screenshot` shows the same patch's L1 weights.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcatools._atomic import atomic_path
from pcatools._process import die_with_parent
from pcatools.cell_status import study_seed
from pcatools.cells import Cell

__all__ = [
    "ALL_CELLS_RAN",
    "KERNEL_IDLE",
    "NOTEBOOKS",
    "START_TIMEOUT_S",
    "UI_TIMEOUT_MS",
    "VIEWPORT",
    "LabServer",
    "browser_page",
    "browser_problem",
    "chromium_path",
    "fresh_jupyter_env",
    "headless_chromium",
    "http_get",
    "jupyter_lab",
    "jupyterlab_04_overall_png",
    "l1_weights_screenshot",
    "lab_notebook",
    "run_all_cells",
    "save_viewer_screenshot",
    "screenshot_04_overall",
    "viewer_png",
]

START_TIMEOUT_S = 180
"""Seconds Lab may take to answer ``/lab``: its first start on a busy 2-core machine took ~20 s (measured)."""
UI_TIMEOUT_MS = 180_000
"""Milliseconds of every Playwright wait: loading Lab's bundle and running a notebook's cells."""
VIEWPORT = {"width": 1400, "height": 1000}
"""The browser window of the screenshots, in CSS pixels (one image pixel each)."""
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
"""Where a source checkout keeps the notebooks (absent from an installed wheel)."""

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
"""JavaScript: true once the open notebook's kernel is connected and idle."""

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
"""JavaScript: true once every code cell ran and the kernel is idle, ``"error"`` on a traceback."""


# --- what is missing --------------------------------------------------------------------------


def chromium_path() -> str | None:
    """Path of Debian's chromium on ``PATH`` (Playwright drives it instead of downloading a browser)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _jupyter() -> Path:
    return Path(sys.executable).parent / "jupyter"


def browser_problem() -> str | None:
    """Why the JupyterLab screenshot cannot be made here, in a few words naming the fix, or ``None``."""
    if chromium_path() is None:
        return "no chromium (scripts/install_system_deps.sh)"
    if importlib.util.find_spec("playwright") is None:
        return "no playwright (pip install -e '.[dev]')"
    if not _jupyter().is_file():
        return f"no {_jupyter()} (pip install -e '.[notebooks]')"
    if not (NOTEBOOKS / "04_overall.ipynb").is_file():
        return f"no {NOTEBOOKS / '04_overall.ipynb'} (the notebooks of a source checkout)"
    return None


# --- the server -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabServer:
    """A running ``jupyter lab``: its address, token, served folder and log file."""

    url: str  # http://127.0.0.1:<port>
    token: str
    root: Path
    log: Path

    def page_url(self, path: str) -> str:
        """``path`` on the server, with the token."""
        return f"{self.url}/{path.lstrip('/')}?token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_jupyter_env(home: Path) -> dict[str, str]:
    """Environment whose Jupyter config, data, runtime and IPython folders are empty folders under
    ``home``, so no setting, workspace or startup file of the user's changes what the browser sees.

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
    (settings / "notebook-extension").mkdir(parents=True, exist_ok=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir(parents=True, exist_ok=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    env.pop("JUPYTER_PATH", None)  # only this environment's kernels and Lab extensions
    env.pop("JUPYTER_TOKEN", None)
    return env


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    """``(status, body)`` of a GET request; an HTTP error's status with an empty body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def _log_tail(log: Path, n: int = 40) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(lines[-n:])


@contextlib.contextmanager
def jupyter_lab(root: Path, home: Path) -> Iterator[LabServer]:
    """``jupyter lab`` of this Python's environment serving ``root`` on a free port with a random
    token and a fresh Jupyter environment under ``home``, up until ``/lab`` answers; stopped after.

    The server is stopped with SIGTERM (it then shuts its kernels down), killed if it does not exit
    within 30 s, and gets SIGTERM if this process dies first. Raises ``RuntimeError`` with the log's
    tail when it exits early or does not answer within :data:`START_TIMEOUT_S`.
    """
    jupyter = _jupyter()
    if not jupyter.is_file():
        raise RuntimeError(
            f"{jupyter}: expected jupyter of this environment, found none; pip install -e '.[notebooks]'"
        )
    home.mkdir(parents=True, exist_ok=True)
    port, token = _free_port(), secrets.token_hex(16)
    log = home / "jupyter_lab.log"
    argv = [
        str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI runners; Jupyter refuses root without it
        argv.append("--allow-root")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=root, env=fresh_jupyter_env(home), stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, root=Path(root), log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {proc.returncode}:\n{_log_tail(log)}")
            with contextlib.suppress(OSError):  # not listening yet
                if http_get(server.page_url("lab"), timeout=5)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"jupyter lab did not answer /lab within {START_TIMEOUT_S} s:\n{_log_tail(log)}"
                )
            time.sleep(0.5)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- the browser ------------------------------------------------------------------------------


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """Headless Debian chromium under Playwright (``--no-sandbox``: it may run as root)."""
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium: not found on PATH; run scripts/install_system_deps.sh")
    from playwright.sync_api import sync_playwright  # deferred: start-up (see tests/test_imports.py)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def browser_page(browser: Any) -> Iterator[Any]:
    """A page of a new browser context of :data:`VIEWPORT` size, every wait :data:`UI_TIMEOUT_MS`."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def lab_notebook(name: str, run_dir: Path, into: Path) -> Path:
    """Copy of ``notebooks/<name>.ipynb`` in ``into`` whose parameters cell reads ``run_dir`` with
    the ``ci`` profile, as papermill does in CI. ``ValueError`` if it has no ``run_dir =`` parameter."""
    import nbformat  # deferred: start-up (see tests/test_imports.py)

    source = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(source, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1 or not re.search(r"^run_dir = ", cells[0].source, re.M):
        raise ValueError(f"{source}: expected one parameters cell setting run_dir, found {len(cells)} cells")
    cell = cells[0]
    cell.source = re.sub(r"^run_dir = .*$", f"run_dir = {str(run_dir)!r}", cell.source, flags=re.M)
    cell.source = re.sub(r"^profile = .*$", 'profile = "ci"', cell.source, flags=re.M)
    # Unpaired: jupytext would write a .py beside the copy on save, and refuse to open the copy
    # on the next run (an error dialog over the notebook) because the .ipynb is the newer file.
    nb.metadata.pop("jupytext", None)
    into.mkdir(parents=True, exist_ok=True)
    (into / f"{name}.py").unlink(missing_ok=True)  # left by an earlier, paired version
    path = into / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def outputs_text(page: Any) -> str:
    """Every output of the open notebook as text (its last 6000 characters), for a failure message."""
    texts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output").all_inner_texts()
    return "\n---\n".join(t[:800] for t in texts)[-6000:]


def run_all_cells(page: Any, lab: LabServer, notebook: Path, failure_png: Path | None = None) -> None:
    """Open ``notebook`` (under ``lab.root``) in Lab, wait for its kernel, click Run > Run All Cells,
    and wait until every code cell has an execution count and the kernel is idle again.

    A cell that raises, or a run that does not finish within :data:`UI_TIMEOUT_MS`, raises
    ``AssertionError`` with the notebook's outputs (and a screenshot in ``failure_png`` if given).
    """
    # A workspace of its own: Lab would otherwise reopen (and reconnect) the previous notebook.
    path = f"lab/workspaces/{notebook.stem}/tree/{notebook.relative_to(lab.root).as_posix()}"
    page.goto(lab.page_url(path), wait_until="domcontentloaded")
    page.wait_for_function(KERNEL_IDLE, timeout=UI_TIMEOUT_MS, polling=250)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    try:
        done = page.wait_for_function(ALL_CELLS_RAN, timeout=UI_TIMEOUT_MS, polling=500).json_value()
    except Exception as e:  # playwright's TimeoutError; the outputs say which cell hung
        problem = f"not every cell ran in Lab ({e})"
    else:
        if done is True:
            return
        problem = "raised in Lab"
    shot = ""
    if failure_png is not None:
        failure_png.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(failure_png))
        shot = f" (screenshot {failure_png})"
    raise AssertionError(f"{notebook.name}: {problem}{shot}:\n{outputs_text(page)}")


def screenshot_04_overall(page: Any, path: Path) -> None:
    """The picture of notebook 04 after Run All: Table 1 scrolled into view once the kernel is
    idle, the page written to ``path`` atomically."""
    page.wait_for_function(KERNEL_IDLE, timeout=UI_TIMEOUT_MS, polling=250)
    page.locator(".jp-OutputArea .jp-RenderedMarkdown table").first.scroll_into_view_if_needed()
    with atomic_path(path) as tmp:
        page.screenshot(path=str(tmp), type="png")


def jupyterlab_04_overall_png(folder: Path | None, path: Path) -> None:
    """Notebook 04 on the study ``folder`` in JupyterLab after Run All Cells, Table 1 in view
    (``docs/figures/jupyterlab_04_overall.png``): a Lab server on a temporary folder holding the
    notebook's copy, headless chromium, :func:`screenshot_04_overall`."""
    if folder is None:
        raise ValueError("jupyterlab_04_overall_png: needs a study run folder, found none")
    with tempfile.TemporaryDirectory(prefix="pcatools-lab-") as scratch:
        root = Path(scratch) / "root"
        notebook = lab_notebook("04_overall", Path(folder).resolve(), root)
        with jupyter_lab(root, Path(scratch) / "home") as lab, headless_chromium() as browser:
            with browser_page(browser) as page:
                run_all_cells(page, lab, notebook)
                screenshot_04_overall(page, path)


# --- napari -----------------------------------------------------------------------------------


def save_viewer_screenshot(viewer: Any, path: Path) -> None:
    """The docs' picture of an open napari viewer (``docs/figures/viewer.png``): PET/CT, the ground
    truth outlined, the L1 bins of the probability map, on the first lesion of the lesion dock.

    Predictions are hidden for the picture; every layer's visibility and the outline are restored
    afterwards. The window (frame, layer list, docks) is thumbnailed to 1000 px and written with a
    128-colour palette (a few hundred kB instead of MBs), atomically.
    """
    from napari.layers import Labels  # deferred: start-up (see tests/test_imports.py)
    from PIL import Image  # deferred: start-up (see tests/test_imports.py)

    hidden = [
        layer
        for layer in viewer.layers
        if isinstance(layer, Labels) and layer.name not in ("ground truth", "L1 bin index") and layer.visible
    ]
    bins = viewer.layers["L1 bin index"]
    truth = viewer.layers["ground truth"]
    was = (bins.visible, truth.contour)
    viewer.window.resize(1250, 720)
    viewer.window.show()  # a never-shown vispy canvas renders black under Xvfb
    for layer in hidden:
        layer.visible = False
    truth.contour = 1
    bins.visible = True
    viewer.layers.selection.active = bins
    docks = [w for name, w in viewer.window.dock_widgets.items() if name.startswith("Lesions (")]
    if docks and docks[0].rowCount() > 0:
        docks[0].cellClicked.emit(0, 0)
    viewer.reset_view()
    img = Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).convert("RGB")
    img.thumbnail((1000, 1000))
    with atomic_path(path) as tmp:
        img.quantize(colors=128).save(tmp, format="PNG", optimize=True)
    for layer in hidden:
        layer.visible = True
    bins.visible, truth.contour = was


def _training_patch(folder: Path | None, network: str, loss: str) -> tuple[Any, Any]:
    """The first patch of the study's training batch and its probabilities under ``network``/``loss``."""
    if folder is None:
        raise ValueError("gallery: a napari screenshot needs a study run folder, found none")
    from pcatools.analysis import load_study  # deferred: start-up (see tests/test_imports.py)
    from pcatools.training import training_batch  # deferred: start-up (see tests/test_imports.py)

    study = load_study(folder)
    seed = study_seed(study.run_dir)  # the study seed's cell: the folder a one-seed study has
    key = Cell(network, loss, seed).key(seed)
    batch = training_batch(study.manifest, study.run_dir / "models" / key / "best.pt")
    return batch.patch_case(0)


def l1_weights_screenshot(
    folder: Path | None, path: Path, network: str = "segresnet", loss: str = "l1dfl"
) -> None:
    """napari's L1 weights over CT for the first patch of the study's training batch (notebook 02's
    view): ``training_batch`` through the ``network``/``loss`` model, then ``view_case(weights=True,
    screenshot=...)``; needs an X display."""
    from pcatools.viewer import view_case  # deferred: start-up (see tests/test_imports.py)

    patch_case, probs = _training_patch(folder, network, loss)
    with atomic_path(path) as tmp:
        viewer = view_case(patch_case, probs=probs, bin_width=0.1, block=False, weights=True, screenshot=tmp)
        viewer.close()


def viewer_png(folder: Path | None, path: Path, network: str = "segresnet", loss: str = "l1dfl") -> None:
    """:func:`save_viewer_screenshot` of the first patch of the study's training batch through the
    ``network``/``loss`` model (the case and probabilities of :func:`l1_weights_screenshot`)."""
    from pcatools.viewer import view_case  # deferred: start-up (see tests/test_imports.py)

    patch_case, probs = _training_patch(folder, network, loss)
    viewer = view_case(patch_case, probs=probs, bin_width=0.1, show=True, block=False)
    try:
        save_viewer_screenshot(viewer, path)
    finally:
        viewer.close()
