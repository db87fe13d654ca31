"""`evaluate_folders` from Python: the CLI's argument order, ``figures=False``, the components and
Wilcoxon tables it returns, and notebook 08 opening an existing evaluation folder without evaluating.

The cohort is ``tests/test_evaluate.py``'s (four cases, hand-counted components): model ``missed``
predicts 1 + 1 + 2 + 2 = 6 components, model ``extra`` the same lesions plus one false-positive
cube per case, 2 + 3 + 3 + 4 = 12 components of which 4 are false positives.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pandas as pd
import pytest

from pcatools.data.errors import DataError
from pcatools.evaluation import EvaluationResult, evaluate_folders, load_evaluation
from tests.test_evaluate import LESIONS, SHAPE, _gt, _pred, _save, _suv

MODELS = ("missed", "extra")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np

    root = tmp_path_factory.mktemp("api")
    for case in LESIONS:
        _save(_gt(case), root / "labelsTs" / f"{case}.nii.gz")
        _save(_suv(case), root / "imagesTs" / f"{case}_0001.nii.gz")
        _save(np.zeros(SHAPE, np.float32), root / "imagesTs" / f"{case}_0000.nii.gz")
        for model in MODELS:
            _save(_pred(model, case), root / model / f"{case}.nii.gz")
    return root


@pytest.fixture(scope="module")
def evaluated(cohort: Path) -> tuple[Path, EvaluationResult]:
    out = cohort / "out"
    result = evaluate_folders(
        out, cohort / "labelsTs", pred={m: cohort / m for m in MODELS}, suv=cohort / "imagesTs",
        workers=0, progress=False, figures=False,
    )  # fmt: skip
    return out, result


def test_keyword_arguments_follow_the_cli_options_in_order() -> None:
    from pcatools.commands.evaluate import run

    cli = list(inspect.signature(run).parameters)
    params = inspect.signature(evaluate_folders).parameters
    api = list(params)
    assert api[:2] == ["out", "gt"] and cli[:2] == ["out", "gt"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[2:])
    shared = [name for name in api if name in cli]
    assert shared == cli  # every CLI option is an argument, in the CLI's order
    with pytest.raises(TypeError):
        evaluate_folders("out", "gt", {"a": "p"})  # type: ignore[misc]


def test_figures_false_writes_the_tables_and_returns_components_and_wilcoxon(
    evaluated: tuple[Path, EvaluationResult],
) -> None:
    out, result = evaluated
    assert isinstance(result, EvaluationResult)
    assert not (out / "figures").exists() and result.figures == {}
    assert "- `figures/`: not drawn (`figures=False`)." in (out / "README.md").read_text()
    assert json.loads((out / "evaluation.json").read_text())["figures"] is False
    counts = result.components.groupby("model").size().to_dict()
    assert counts == {"missed": 6, "extra": 12}  # hand-counted (module docstring)
    fp = result.components.groupby("model")["false_positive"].sum().to_dict()
    assert fp == {"missed": 0, "extra": 4}
    pd.testing.assert_frame_equal(result.components, load_evaluation(out).table("components"))
    assert len(result.wilcoxon) == 1  # the reference (missed) against extra
    assert result.wilcoxon.equals(load_evaluation(out).table("wilcoxon"))


def test_load_evaluation_refuses_a_folder_evaluate_did_not_write(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_evaluation(tmp_path)
    assert str(err.value) == (
        f"evaluation folder {tmp_path}: expected a folder written by pcatools evaluate (with evaluation.json), "
        "found a folder without it"
    )


@pytest.mark.slow
def test_notebook_08_opens_an_existing_evaluation_without_evaluating(
    evaluated: tuple[Path, EvaluationResult], tmp_path: Path
) -> None:
    from tests.test_notebooks import _execute, _output_text

    out, _ = evaluated
    marker = out / "evaluation.json"
    before = (marker.read_bytes(), marker.stat().st_mtime_ns)
    params = {"out_dir": str(out), "show_napari": False, "study_dir": str(tmp_path / "no_study")}
    text = _output_text(_execute("08_your_predictions", params, tmp_path))
    assert f"opened the evaluation in {out} (reevaluate=True evaluates again)" in text
    assert "pcatools evaluate" not in text.split("opened the evaluation")[0]  # no command was run
    assert (marker.read_bytes(), marker.stat().st_mtime_ns) == before
    assert "false_positive" in text and "p_value" in text  # the components and Wilcoxon tables shown
