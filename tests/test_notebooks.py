"""Every notebook is jupytext-paired, stripped of outputs, has a papermill ``parameters`` cell, and
executes with its CI parameters. A notebook that no test executes makes ``test_every_notebook_is_executed``
fail.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"

# Parameters each notebook runs with in CI (``run_dir`` is filled in with the shared tiny study,
# the ``ci_study`` fixture of tests/conftest.py).
CI_PARAMETERS: dict[str, dict[str, object]] = {
    "00_quickstart": {"profile": "ci"},
    "01_data": {"n_cases": 3, "spacing": 6.0, "patch": 32},
    "02_l1_weights": {"show_napari": True},
    "03_training": {
        "epochs": 2,
        "patch": 32,
        "spacing": 6.0,
        "n_cases": 6,
        "steps_per_epoch": 2,
        "run_dir": "runs/nb03",
    },
    "04_overall": {},
    "05_scenarios": {},
    "06_volume": {},
    "07_dissemination": {},
    "08_your_predictions": {},  # study_dir and out_dir are filled in with the shared tiny study
    "09_nnunet": {"work_dir": "nnunet_work", "n_cases": 8, "iterations": 1},
    "10_your_loss": {"run_dir": "runs/nb10"},  # its own study: the defaults (ci, one network, two seeds)
}

# the results notebooks also read a `pcatools evaluate` folder (the ``ci_evaluation`` fixture)
EVALUATION_NOTEBOOKS = ("04_overall", "05_scenarios", "06_volume", "07_dissemination")


def _notebook_names() -> list[str]:
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_every_notebook_is_executed() -> None:
    names = set(_notebook_names())
    assert names, "no notebooks found"
    assert names == set(CI_PARAMETERS), (
        f"notebooks without CI parameters (never executed): {sorted(names - set(CI_PARAMETERS))}; "
        f"parameters for missing notebooks: {sorted(set(CI_PARAMETERS) - names)}"
    )


@pytest.mark.parametrize("name", _notebook_names())
def test_notebook_is_paired_stripped_and_parameterised(name: str) -> None:
    import jupytext
    import nbformat

    py = jupytext.read(NOTEBOOKS / f"{name}.py")
    ipynb_path = NOTEBOOKS / f"{name}.ipynb"
    assert ipynb_path.exists(), f"{ipynb_path.name} missing: run `jupytext --sync notebooks/{name}.py`"
    nb = nbformat.read(ipynb_path, as_version=4)
    code_py = [c.source for c in py.cells if c.cell_type == "code"]
    code_nb = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code_py == code_nb, f"{name}.ipynb is out of sync with {name}.py: run `jupytext --sync`"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name}.ipynb has outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
    first_md = next(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "pcatools" in first_md or "Figure" in first_md or "Table" in first_md


def _execute(name: str, params: dict[str, object], tmp_path: Path) -> Path:
    """Run a notebook with papermill in ``tmp_path``; returns the executed notebook's path."""
    import papermill as pm

    out = tmp_path / f"{name}.out.ipynb"
    env_cwd = os.getcwd()
    # Four times (CI runs of 2026-11-27) 01_data hung in its ipywidgets cell (`widgets.interact`
    # displaying a plotly figure): the kernel had finished (idle in its event loop, seen with
    # py-spy) while nbclient kept waiting for a reply it never got, once with the other xdist
    # worker idle. This matches an open upstream report, jupyter/nbclient#312 ("when cell
    # contains ipywidget, execute cell will sometimes block"; also jupyter/nbconvert#2029).
    # Every cell here takes under a minute, so a lost reply times out after 2 minutes and the
    # notebook runs once more; a notebook that times out twice fails.
    from nbclient.exceptions import CellTimeoutError

    try:
        for attempt in (1, 2):
            try:
                pm.execute_notebook(
                    str(NOTEBOOKS / f"{name}.ipynb"),
                    str(out),
                    parameters=params,
                    cwd=str(tmp_path),
                    kernel_name="python3",
                    progress_bar=False,
                    execution_timeout=120,
                )
                break
            except CellTimeoutError:
                if attempt == 2:
                    raise
                warnings.warn(
                    f"{name}: a cell timed out (lost kernel reply?); running the notebook again", stacklevel=1
                )
    finally:
        os.chdir(env_cwd)
    assert out.exists()
    return out


def _output_text(path: Path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts += [str(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


@pytest.mark.xdist_group("notebooks")
@pytest.mark.slow
@pytest.mark.parametrize("name", _notebook_names())
def test_notebook_executes(name: str, ci_study: Path, tmp_path: Path, xvfb_display: str | None) -> None:
    params = dict(CI_PARAMETERS[name])
    if name == "08_your_predictions":
        params.update(study_dir=str(ci_study), out_dir=str(tmp_path / "evaluation"))
    elif name not in ("01_data", "09_nnunet"):  # these read data, not a study
        params.setdefault("run_dir", str(ci_study))
    if name in ("02_l1_weights", "08_your_predictions") and xvfb_display is None:
        params["show_napari"] = False
    if name == "02_l1_weights":  # the README's picture is made this way
        params["screenshot_path"] = str(tmp_path / "l1_weights_napari.png")
    out = _execute(name, params, tmp_path)
    if name == "02_l1_weights" and params["show_napari"]:
        from PIL import Image

        from pcatools.viewer import SCREENSHOT_SIZE

        assert Image.open(tmp_path / "l1_weights_napari.png").size == SCREENSHOT_SIZE
    if name == "08_your_predictions":
        text = _output_text(out)
        assert "pcatools evaluate" in text and "segresnet/l1dfl" in text  # the command and the models
        assert (tmp_path / "evaluation" / "evaluation.json").is_file()
        assert ("napari: case" in text) == (xvfb_display is not None), text[-2000:]
    if name == "10_your_loss":  # the loss checked, both seeds trained, Table 1 with their spread
        text = _output_text(out)
        assert "tversky passes the check" in text, text[-2000:]
        assert "seeds [0, 1], losses ['dice', 'l1dfl', 'tversky']" in text and "DSC mean SD (seeds)" in text


@pytest.mark.xdist_group("notebooks")
@pytest.mark.slow
@pytest.mark.parametrize("name", EVALUATION_NOTEBOOKS)
def test_results_notebook_reads_an_evaluation_folder(name: str, ci_evaluation: Path, tmp_path: Path) -> None:
    out = _execute(name, {**CI_PARAMETERS[name], "run_dir": str(ci_evaluation)}, tmp_path)
    if name == "04_overall":  # the evaluation's own Wilcoxon table: its first model against the others
        assert "attention_unet/dice" in _output_text(out)
